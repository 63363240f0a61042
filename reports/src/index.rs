//! `store/index.html`: every run under the store, newest first.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::html::esc;
use crate::ReportError;

struct Row {
    started: String,
    rel: PathBuf,
    test: Value,
    results: Value,
}

fn read(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
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
            let test = read(&dir.join("test.json"));
            if test.is_null() {
                continue;
            }
            rows.push(Row {
                started: test["started"].as_str().unwrap_or("").to_string(),
                rel: dir.strip_prefix(root).unwrap_or(&dir).to_path_buf(),
                results: read(&dir.join("results.json")),
                test,
            });
        }
    }
    rows.sort_by(|a, b| b.started.cmp(&a.started).then(b.rel.cmp(&a.rel)));
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chaos-runner runs</title><style>\
         body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}\
         td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}\
         .valid{color:#1d6b3a;font-weight:700}.invalid{color:#9b1c1c;font-weight:700}.unknown{color:#8a5300;font-weight:700}\
         </style></head><body><h1>chaos-runner runs</h1><table><tr><th>started</th><th>test</th><th>workload</th>\
         <th>faults</th><th>ops ok/fail/info</th><th>verdict</th><th></th></tr>",
    );
    for r in &rows {
        let verdict = r.results["verdict"].as_str().unwrap_or("unfinished");
        let class = match verdict {
            "valid" | "invalid" => verdict,
            _ => "unknown",
        };
        let c = &r.results["counts"];
        let faults = r.test["nemesis"].as_array().map_or(String::new(), |a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        });
        let link = r.rel.join("report.html");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}/{}</td><td class=\"{class}\">{}</td><td><a href=\"{}\">report</a></td></tr>",
            esc(&r.started),
            esc(r.test["name"].as_str().unwrap_or("")),
            esc(r.test["workload"].as_str().unwrap_or("")),
            esc(if faults.is_empty() { "none" } else { &faults }),
            c["ok"],
            c["fail"],
            c["info"],
            esc(verdict),
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
