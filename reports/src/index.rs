//! `store/index.html`: every run under the store, newest first.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use checker::record::{RunResults, TestRecord};

use crate::data::read_record;
use crate::escape::esc;
use crate::ReportError;

struct Row {
    rel: PathBuf,
    test: TestRecord,
    /// `None` while the run is unfinished (or its results cannot be read).
    results: Option<RunResults>,
}

/// Rebuilds `root/index.html`.
pub fn build(root: &Path) -> Result<PathBuf, ReportError> {
    let mut rows = Vec::new();
    let names = std::fs::read_dir(root).map_err(|source| ReportError::Io {
        path: root.into(),
        source,
    })?;
    for name in names.flatten() {
        let Ok(runs) = std::fs::read_dir(name.path()) else {
            continue;
        };
        if name.file_name() == "latest" {
            continue;
        }
        for run in runs.flatten() {
            let dir = run.path();
            // One unreadable run must not hide the others: it is left out, or listed as
            // unfinished when only its results are unreadable.
            let Ok(Some(test)) = read_record::<TestRecord>(&dir.join("test.json")) else {
                continue;
            };
            rows.push(Row {
                rel: dir.strip_prefix(root).unwrap_or(&dir).to_path_buf(),
                results: read_record(&dir.join("results.json")).ok().flatten(),
                test,
            });
        }
    }
    rows.sort_by(|a, b| (b.test.started.cmp(&a.test.started)).then(b.rel.cmp(&a.rel)));
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chaos-runner runs</title><style>\
         body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}\
         td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}\
         .valid{color:#1d6b3a;font-weight:700}.invalid{color:#9b1c1c;font-weight:700}.unknown{color:#8a5300;font-weight:700}\
         td.anomaly{max-width:32em;font-size:12px}\
         </style></head><body><h1>chaos-runner runs</h1><table><tr><th>started</th><th>test</th><th>seed</th>\
         <th>workload</th><th>s</th><th>faults</th><th>node args</th><th>ops ok/fail/info</th><th>verdict</th>\
         <th>first anomaly</th><th></th></tr>",
    );
    for r in &rows {
        let verdict = r
            .results
            .as_ref()
            .map_or("unfinished", |r| r.verdict.as_str());
        let class = match verdict {
            "valid" | "invalid" => verdict,
            _ => "unknown",
        };
        let counts = r.results.as_ref().map_or("-".into(), |r| {
            format!("{}/{}/{}", r.counts.ok, r.counts.fail, r.counts.info)
        });
        let faults = r.test.nemesis.join(", ");
        let link = r.rel.join("report.html");
        let secs = r
            .results
            .as_ref()
            .map_or("-".into(), |r| format!("{:.0}", r.duration_s));
        // "...; first anomaly: key r0 op 28 (history.jsonl line 55) read returned ..."
        let anomaly = r.results.as_ref().map_or(String::new(), |r| {
            r.checker_summary
                .split("; first anomaly: ")
                .nth(1)
                .map_or("", |a| a.split("; ").next().unwrap_or(a))
                .to_string()
        });
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{secs}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{class}\">{}</td><td class=\"anomaly\">{}</td><td><a href=\"{}\">report</a></td></tr>",
            esc(&r.test.started),
            esc(&r.test.name),
            r.test.seed,
            esc(&r.test.workload),
            esc(if faults.is_empty() { "none" } else { &faults }),
            esc(&r.test.node_args.join(" ")),
            counts,
            esc(verdict),
            esc(&anomaly),
            esc(&link.to_string_lossy())
        );
    }
    out.push_str("</table></body></html>\n");
    let path = root.join("index.html");
    std::fs::write(&path, out).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
