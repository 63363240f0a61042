//! A run as the report sees it: the typed records of its folder.

use std::collections::BTreeMap;
use std::path::Path;

use checker::history::{read_jsonl, History, Operation, Outcome};
use checker::record::{FaultDetails, FaultEdge, FaultKind, RunResults, Shape, TestRecord};
use serde::de::DeserializeOwned;

use crate::ReportError;

/// A fault with its interval (seconds from the start of the history clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: Happened,
    pub start: f64,
    pub end: f64,
    pub label: String,
}

/// What a drawn interval was: a fault the nemesis injected, or a crash nobody asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    Fault(FaultKind),
    Crash,
}

pub struct Run {
    /// `test.json`; `None` when the file is missing.
    pub test: Option<TestRecord>,
    /// `results.json`; `None` while the run has not finished.
    pub results: Option<RunResults>,
    pub history: History,
    pub faults: Vec<Fault>,
    /// End of the history clock, seconds.
    pub end: f64,
    /// The run's files the report links to, relative to its folder, as found: records,
    /// the runner's log, each node's log.
    pub files: Vec<String>,
    /// Whether the run sits in a store (`store/<name>/<run>`, the store holding
    /// `latest`), whose index the report links to as "all runs".
    pub in_store: bool,
    /// The set checker's findings, for a set history: worked out once, on first use.
    pub set: std::sync::OnceLock<Option<checker::set::SetReport>>,
}

/// Reads one of the run's records: `None` when the file does not exist, an error naming
/// the file when it exists but is not that record.
pub fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReportError::Io {
                path: path.into(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::Bad {
            path: path.into(),
            message: e.to_string(),
        })
}

/// A fault's label in words.
fn label(what: Happened, d: &FaultDetails) -> String {
    let nodes: Vec<String> = d.nodes.iter().map(|n| format!("n{n}")).collect();
    match what {
        Happened::Fault(FaultKind::Partition) => format!(
            "partition {}{}{}",
            d.shape.map_or("", Shape::name),
            d.sides().map(|s| format!(" {s}")).unwrap_or_default(),
            d.mode
                .map(|m| format!(" ({})", m.name()))
                .unwrap_or_default()
        ),
        Happened::Fault(FaultKind::Latency) => "latency".to_string(),
        Happened::Fault(FaultKind::LinkLatency) => {
            format!("link latency {} ms", d.delay_ms.unwrap_or(0))
        }
        Happened::Fault(FaultKind::LoseUnsynced) => {
            let bytes: u64 = d.disk.iter().map(|l| l.lost_bytes).sum();
            let names: u64 = d.disk.iter().map(|l| l.names_undone).sum();
            format!(
                "power loss {}: lost {bytes} unsynced bytes, {names} name changes",
                nodes.join(",")
            )
        }
        Happened::Fault(FaultKind::Wipe) => {
            let lost: Vec<String> = d
                .wiped
                .iter()
                .filter(|w| w.spared.is_empty())
                .map(|w| format!("n{} ({} files)", w.node, w.files))
                .collect();
            format!(
                "wipe {}: lost the disk of {}",
                nodes.join(","),
                if lost.is_empty() {
                    "none (the last wiped node had not caught up)".to_string()
                } else {
                    lost.join(", ")
                }
            )
        }
        Happened::Fault(FaultKind::Membership) => {
            // "refused: one change at a time..." is kept to its first word.
            let changes: Vec<String> = d
                .members
                .iter()
                .map(|c| {
                    let outcome = c.outcome.split(':').next().unwrap_or("");
                    format!("{} n{} {outcome}", c.change, c.node)
                })
                .collect();
            format!("membership: {}", changes.join(", "))
        }
        Happened::Fault(FaultKind::SlowFsync) => format!(
            "slow fsync {} ({} ms)",
            nodes.join(","),
            d.fsync_delay_ms.unwrap_or(0)
        ),
        Happened::Fault(k) if k.is_clock() => {
            let c = d.clocks.first().copied().unwrap_or_default();
            let how = match k {
                FaultKind::ClockRate => format!("{:.2}x", f64::from(c.rate_percent) / 100.0),
                FaultKind::ClockStrobe => format!("±{:.1} s", c.offset_ms as f64 / 1e3),
                _ => format!("{:+.1} s", c.offset_ms as f64 / 1e3),
            };
            format!("{k} {} ({how})", nodes.join(","))
        }
        Happened::Fault(k) => format!("{k} {}", nodes.join(",")),
        Happened::Crash => format!("crash {}", nodes.join(",")),
    }
}

/// Pairs each fault's start and stop events into an interval (an unclosed one runs to
/// `end`); a crash is a point. Other tools' nemesis events are not drawn.
pub fn fault_intervals(history: &History, end: f64) -> Vec<Fault> {
    let mut open: BTreeMap<FaultKind, (f64, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for ev in &history.nemesis {
        let t = ev.time as f64 / 1e9;
        let details = FaultDetails::from_value(&ev.value);
        match ev.fault {
            Some(FaultEdge::Start(kind)) => {
                open.insert(kind, (t, label(Happened::Fault(kind), &details)));
            }
            Some(FaultEdge::Stop(kind)) => {
                if let Some((start, mut label)) = open.remove(&kind) {
                    // A membership fault's stop record holds the changes that brought
                    // its nodes back too.
                    if kind == FaultKind::Membership {
                        label = self::label(Happened::Fault(kind), &details);
                    }
                    out.push(Fault {
                        kind: Happened::Fault(kind),
                        start,
                        end: t,
                        label,
                    });
                }
            }
            Some(FaultEdge::Crash) => out.push(Fault {
                kind: Happened::Crash,
                start: t,
                end: t,
                label: label(Happened::Crash, &details),
            }),
            Some(FaultEdge::Heal) | None => {}
        }
    }
    for (kind, (start, label)) in open {
        out.push(Fault {
            kind: Happened::Fault(kind),
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
        let test = read_record(&dir.join("test.json"))?;
        let results = read_record(&dir.join("results.json"))?;
        let end = history
            .ops
            .iter()
            .map(|o| o.ret.unwrap_or(o.call))
            .chain(history.nemesis.iter().map(|n| n.time))
            .max()
            .unwrap_or(0) as f64
            / 1e9;
        let faults = fault_intervals(&history, end);
        let mut files: Vec<String> = ["history.jsonl", "results.json", "test.json", "runner.log"]
            .into_iter()
            .filter(|f| dir.join(f).is_file())
            .map(String::from)
            .collect();
        let mut logs: Vec<String> = std::fs::read_dir(dir.join("nodes"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".log"))
                    .map(|n| format!("nodes/{n}"))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        files.extend(logs);
        Ok(Run {
            test,
            results,
            history,
            faults,
            end,
            files,
            in_store: dir
                .parent()
                .and_then(Path::parent)
                .is_some_and(|root| root.join("latest").exists()),
            set: Default::default(),
        })
    }

    /// What the set checker finds in this history; `None` unless it is a set history.
    pub fn set_report(&self) -> Option<&checker::set::SetReport> {
        self.set
            .get_or_init(|| {
                let ops = &self.history.ops;
                if !ops.iter().any(|o| o.func() == Some(checker::Func::Add)) {
                    return None;
                }
                // A queue's history is a set's whose reads come in order.
                let queue = self.test.as_ref().is_some_and(|t| t.workload == "queue");
                checker::set::check_collection(&self.history, true, queue).ok()
            })
            .as_ref()
    }

    /// `valid`, `invalid`, `unknown`, or `unfinished` while there are no results (the word the index uses too).
    pub fn verdict(&self) -> &str {
        self.results
            .as_ref()
            .map_or("unfinished", |r| r.verdict.as_str())
    }

    /// The test's name, or `run` when test.json is missing.
    pub fn name(&self) -> &str {
        self.test.as_ref().map_or("run", |t| t.name.as_str())
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
