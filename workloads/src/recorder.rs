//! Streams the history to `history.jsonl` as it happens (one write per event, so a crash
//! still leaves every event before it), and keeps the counts and latencies the summary
//! and plots need.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

/// How an operation ended, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    Fail,
    Info,
}

/// One completed operation's timing, for latency statistics.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Completion time, ns since the start.
    pub at: u64,
    pub latency: u64,
    pub kind: Kind,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

struct Inner {
    file: File,
    counts: Counts,
    samples: Vec<Sample>,
    error: Option<std::io::Error>,
}

pub struct Recorder {
    start: Instant,
    kv: bool,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Creates the history file and writes its header.
    pub fn create(path: &Path, kv: bool) -> std::io::Result<Recorder> {
        let mut file = File::create(path)?;
        file.write_all(b"{\"type\":\"header\",\"schema\":\"chaos-history\",\"version\":1}\n")?;
        Ok(Recorder {
            start: Instant::now(),
            kv,
            inner: Mutex::new(Inner {
                file,
                counts: Counts::default(),
                samples: Vec::new(),
                error: None,
            }),
        })
    }

    /// Nanoseconds since the recorder started: the history's clock.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn is_kv(&self) -> bool {
        self.kv
    }

    fn write(&self, inner: &mut Inner, event: &Value) {
        let mut line = serde_json::to_vec(event).expect("json values serialize");
        line.push(b'\n');
        if let Err(e) = inner.file.write_all(&line) {
            inner.error.get_or_insert(e);
        }
    }

    /// Records an invocation; returns its time.
    pub fn invoke(&self, process: i64, f: &str, key: &str, value: &Value) -> u64 {
        let mut inner = self.inner.lock().expect("recorder lock");
        let time = self.now();
        let ev = json!({"type": "invoke", "process": process, "f": f, "key": key, "value": value, "time": time});
        self.write(&mut inner, &ev);
        time
    }

    /// Records a completion. `error` explains fail/info outcomes.
    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        &self,
        process: i64,
        kind: Kind,
        f: &str,
        key: &str,
        value: &Value,
        invoked: u64,
        node: Option<u64>,
        error: Option<&str>,
    ) {
        let mut inner = self.inner.lock().expect("recorder lock");
        let time = self.now();
        let type_ = match kind {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        };
        let mut ev = json!({"type": type_, "process": process, "f": f, "key": key, "value": value, "time": time});
        if let Some(e) = error {
            ev["error"] = json!(e);
        }
        if let Some(n) = node {
            ev["node"] = json!(n);
        }
        self.write(&mut inner, &ev);
        match kind {
            Kind::Ok => inner.counts.ok += 1,
            Kind::Fail => inner.counts.fail += 1,
            Kind::Info => inner.counts.info += 1,
        }
        inner.samples.push(Sample {
            at: time,
            latency: time.saturating_sub(invoked),
            kind,
        });
    }

    /// Records a fault's start or end.
    pub fn nemesis(&self, f: &str, value: Value) -> u64 {
        let mut inner = self.inner.lock().expect("recorder lock");
        let time = self.now();
        let ev =
            json!({"type": "nemesis", "process": "nemesis", "f": f, "value": value, "time": time});
        self.write(&mut inner, &ev);
        time
    }

    pub fn counts(&self) -> Counts {
        self.inner.lock().expect("recorder lock").counts
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.inner.lock().expect("recorder lock").samples.clone()
    }

    /// Flushes to disk; reports the first write error, if any happened.
    pub fn finish(&self) -> std::io::Result<()> {
        let mut inner = self.inner.lock().expect("recorder lock");
        if let Some(e) = inner.error.take() {
            return Err(e);
        }
        inner.file.sync_all()
    }
}

/// Latency quantile (0.0..=1.0) of the `ok` operations, in nanoseconds.
pub fn quantile(samples: &[Sample], q: f64) -> Option<u64> {
    let mut l: Vec<u64> = samples
        .iter()
        .filter(|s| s.kind == Kind::Ok)
        .map(|s| s.latency)
        .collect();
    l.sort_unstable();
    quantile_of_sorted(&l, q)
}

/// Quantile (0.0..=1.0) of values already sorted ascending; `None` when empty. For
/// callers that take several quantiles of one sample and sort it once.
pub fn quantile_of_sorted(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(sorted[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_a_readable_history() {
        let dir = std::env::temp_dir().join(format!("rec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let r = Recorder::create(&path, false).unwrap();
        let t = r.invoke(1, "write", "r0", &json!(3));
        r.nemesis("start-kill", json!({"nodes": [2]}));
        r.complete(1, Kind::Ok, "write", "r0", &json!(3), t, Some(1), None);
        let t = r.invoke(2, "read", "r0", &Value::Null);
        r.complete(2, Kind::Ok, "read", "r0", &json!(3), t, Some(1), None);
        r.finish().unwrap();
        assert_eq!(
            r.counts(),
            Counts {
                ok: 2,
                fail: 0,
                info: 0
            }
        );
        assert!(quantile(&r.samples(), 0.5).is_some());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 6);
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
