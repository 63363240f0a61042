//! A run as the report sees it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use checker::history::{read_jsonl, History, Operation, Outcome};
use serde_json::Value;

use crate::ReportError;

/// A fault with its interval (seconds from the start of the history clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: String,
    pub start: f64,
    pub end: f64,
    pub label: String,
}

pub struct Run {
    pub dir: PathBuf,
    pub test: Value,
    pub results: Value,
    pub history: History,
    pub faults: Vec<Fault>,
    /// End of the history clock, seconds.
    pub end: f64,
}

fn read_json(path: &Path) -> Result<Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Bad {
        path: path.into(),
        message: e.to_string(),
    })
}

fn label(kind: &str, value: &Value) -> String {
    let nodes = value["nodes"].as_array().map(|a| {
        a.iter()
            .map(|n| format!("n{n}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    match kind {
        "partition" => format!(
            "partition {}{}",
            value["shape"].as_str().unwrap_or(""),
            value["mode"]
                .as_str()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        "latency" => "latency".to_string(),
        k => format!("{k} {}", nodes.unwrap_or_default()),
    }
}

/// Pairs `start-X` / `stop-X` nemesis events into intervals; an unclosed one runs to `end`.
pub fn fault_intervals(history: &History, end: f64) -> Vec<Fault> {
    let mut open: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for ev in &history.nemesis {
        let t = ev.time as f64 / 1e9;
        if let Some(kind) = ev.f.strip_prefix("start-") {
            open.insert(kind.to_string(), (t, label(kind, &ev.value)));
        } else if let Some(kind) = ev.f.strip_prefix("stop-") {
            if let Some((start, label)) = open.remove(kind) {
                out.push(Fault {
                    kind: kind.to_string(),
                    start,
                    end: t,
                    label,
                });
            }
        } else if ev.f == "crash" {
            out.push(Fault {
                kind: "crash".into(),
                start: t,
                end: t,
                label: label("crash", &ev.value),
            });
        }
    }
    for (kind, (start, label)) in open {
        out.push(Fault {
            kind,
            start,
            end,
            label,
        });
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

impl Run {
    pub fn load(dir: &Path) -> Result<Run, ReportError> {
        let hpath = dir.join("history.jsonl");
        let file = std::fs::File::open(&hpath).map_err(|source| ReportError::Io {
            path: hpath.clone(),
            source,
        })?;
        let history = read_jsonl(std::io::BufReader::new(file)).map_err(|e| ReportError::Bad {
            path: hpath.clone(),
            message: e.to_string(),
        })?;
        let test = read_json(&dir.join("test.json")).unwrap_or(Value::Null);
        let results = read_json(&dir.join("results.json")).unwrap_or(Value::Null);
        let end = history
            .ops
            .iter()
            .map(|o| o.ret.unwrap_or(o.call))
            .chain(history.nemesis.iter().map(|n| n.time))
            .max()
            .unwrap_or(0) as f64
            / 1e9;
        let faults = fault_intervals(&history, end);
        Ok(Run {
            dir: dir.to_path_buf(),
            test,
            results,
            history,
            faults,
            end,
        })
    }

    pub fn verdict(&self) -> &str {
        self.results["verdict"].as_str().unwrap_or("unchecked")
    }

    pub fn ops(&self) -> &[Operation] {
        &self.history.ops
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.history
            .ops
            .iter()
            .filter(|o| o.outcome == outcome)
            .count()
    }
}
