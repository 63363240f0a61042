//! Streams the history to `history.jsonl` as it happens (one write per event, so a crash
//! still leaves every event before it), and keeps the counts and latencies the summary
//! and plots need. Every line is a [`HistoryLine`], the checker's own type, so what is
//! written is by construction what `checker` reads.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use std::collections::{BTreeMap, HashMap};

use checker::history::{History, HistoryLine, LineType, Operation};
use checker::record::{Counts, FaultDetails, FaultEdge};
use checker::{Func, Outcome};
use serde_json::Value;

use crate::client::FailReason;

/// One completed operation's timing, for latency statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Completion time, ns since the start.
    pub at: u64,
    pub latency: u64,
    pub outcome: Outcome,
    /// Why a `fail` failed (a cas mismatch is an answer, not an error).
    pub reason: Option<FailReason>,
}

/// An invocation the recorder wrote; completing it needs it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub process: i64,
    pub f: Func,
    pub key: String,
    pub value: Value,
    /// Invocation time, ns on the history's clock.
    pub time: u64,
}

/// How an operation ended, as the recorder writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub outcome: Outcome,
    /// For `ok`, the result (for reads, the value read); otherwise the invocation's
    /// arguments.
    pub value: Value,
    /// Why a `fail` or `info` ended so, in words.
    pub error: Option<String>,
    pub reason: Option<FailReason>,
    /// The node that answered, when known.
    pub node: Option<u64>,
    /// The nodes tried before it.
    pub via: Vec<u64>,
}

struct Inner {
    file: File,
    counts: Counts,
    samples: Vec<Sample>,
    error: Option<std::io::Error>,
    /// Every event so far, when someone checks the history as it grows
    /// ([`KeyHistories`] takes the new ones each time, so the lock is held only to copy
    /// those).
    live: Option<Vec<LiveEvent>>,
}

/// One event of the history, as an online checker takes it.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Invoke {
        process: i64,
        f: &'static str,
        key: String,
        value: Value,
        time: u64,
    },
    Complete {
        process: i64,
        outcome: Outcome,
        value: Value,
        time: u64,
    },
}

/// The history so far, in the checker's own form, per key: what an online checker needs,
/// kept by the checker itself from the recorder's events. An operation still open is
/// `info` (it may or may not take effect), which is how a prefix of a history is judged:
/// if the prefix is not linearizable, neither is any history that extends it.
#[derive(Default)]
pub struct KeyHistories {
    /// Every key's history, operations in invocation order (checked where it stands).
    by_key: BTreeMap<String, History>,
    /// Where each process's open operation is: its key and index.
    open: HashMap<i64, (String, usize)>,
    /// How many events each key has seen, so a checker can skip keys that did not change.
    changes: BTreeMap<String, u64>,
    /// How many of the recorder's events are applied.
    cursor: usize,
}

impl KeyHistories {
    /// Takes the events recorded since the last update.
    pub fn update(&mut self, recorder: &Recorder) {
        let events = recorder.live_events(self.cursor);
        self.cursor += events.len();
        for e in events {
            self.apply(e);
        }
    }

    fn apply(&mut self, event: LiveEvent) {
        match event {
            LiveEvent::Invoke {
                process,
                f,
                key,
                value,
                time,
            } => {
                let ops = &mut self.by_key.entry(key.clone()).or_default().ops;
                ops.push(Operation {
                    id: ops.len(),
                    process,
                    f: f.to_string(),
                    key: Some(key.clone()),
                    input: value,
                    output: None,
                    call: time,
                    ret: None,
                    outcome: Outcome::Info,
                    line: 0,
                    route: Default::default(),
                    abandoned: None,
                });
                self.open.insert(process, (key.clone(), ops.len() - 1));
                *self.changes.entry(key).or_default() += 1;
            }
            LiveEvent::Complete {
                process,
                outcome,
                value,
                time,
            } => {
                let Some((key, i)) = self.open.remove(&process) else {
                    return;
                };
                if let Some(op) = self.by_key.get_mut(&key).and_then(|h| h.ops.get_mut(i)) {
                    op.outcome = outcome;
                    if outcome != Outcome::Info {
                        op.ret = Some(time);
                        op.output = Some(value);
                    }
                }
                *self.changes.entry(key).or_default() += 1;
            }
        }
    }

    /// The keys seen so far, each with its count of events (grows with every event).
    pub fn changes(&self) -> &BTreeMap<String, u64> {
        &self.changes
    }

    /// `key`'s history so far, open operations as `info`.
    pub fn history(&self, key: &str) -> Option<&History> {
        self.by_key.get(key)
    }
}

pub struct Recorder {
    start: Instant,
    /// Names functions as the kv model does (get/put) instead of read/write.
    kv: bool,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Creates the history file and writes its header.
    pub fn create(path: &Path, kv: bool) -> std::io::Result<Recorder> {
        let mut file = File::create(path)?;
        file.write_all(&HistoryLine::header().to_json_line())?;
        Ok(Recorder {
            start: Instant::now(),
            kv,
            inner: Mutex::new(Inner {
                file,
                counts: Counts::default(),
                samples: Vec::new(),
                error: None,
                live: None,
            }),
        })
    }

    /// Also keeps the history in memory, per key, for [`Recorder::key_history`].
    pub fn keep_history(self) -> Recorder {
        self.inner.lock().expect("recorder lock").live = Some(Vec::new());
        self
    }

    /// The events recorded from index `from` on (none unless it keeps the history).
    pub fn live_events(&self, from: usize) -> Vec<LiveEvent> {
        let inner = self.inner.lock().expect("recorder lock");
        inner
            .live
            .as_ref()
            .and_then(|l| l.get(from..))
            .map(<[LiveEvent]>::to_vec)
            .unwrap_or_default()
    }

    /// The instant the history's clock counts from.
    pub fn epoch(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since the recorder started: the history's clock.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn write(&self, inner: &mut Inner, line: &HistoryLine) {
        if let Err(e) = inner.file.write_all(&line.to_json_line()) {
            inner.error.get_or_insert(e);
        }
    }

    /// Records an invocation.
    pub fn invoke(&self, process: i64, f: Func, key: &str, value: Value) -> Invocation {
        let mut inner = self.inner.lock().expect("recorder lock");
        let time = self.now();
        // A transaction's key names its workload for the client; the history's keys are
        // those of its micro-operations.
        let line = HistoryLine::op(
            LineType::Invoke,
            process,
            f.name(self.kv),
            (f != Func::Txn).then_some(key),
            value.clone(),
            time,
        );
        self.write(&mut inner, &line);
        if let Some(live) = &mut inner.live {
            live.push(LiveEvent::Invoke {
                process,
                f: f.name(self.kv),
                key: key.to_string(),
                value: value.clone(),
                time,
            });
        }
        Invocation {
            process,
            f,
            key: key.to_string(),
            value,
            time,
        }
    }

    /// Records the completion of `inv`.
    pub fn complete(&self, inv: &Invocation, done: Completion) {
        let mut inner = self.inner.lock().expect("recorder lock");
        let time = self.now();
        let mut line = HistoryLine::op(
            LineType::from(done.outcome),
            inv.process,
            inv.f.name(self.kv),
            (inv.f != Func::Txn).then_some(inv.key.as_str()),
            done.value,
            time,
        );
        line.error = done.error;
        line.node = done.node;
        line.via = done.via;
        self.write(&mut inner, &line);
        if let Some(live) = &mut inner.live {
            live.push(LiveEvent::Complete {
                process: inv.process,
                outcome: done.outcome,
                value: line.value.clone().unwrap_or_default(),
                time,
            });
        }
        match done.outcome {
            Outcome::Ok => inner.counts.ok += 1,
            Outcome::Fail => inner.counts.fail += 1,
            Outcome::Info => inner.counts.info += 1,
        }
        inner.samples.push(Sample {
            at: time,
            latency: time.saturating_sub(inv.time),
            outcome: done.outcome,
            reason: done.reason,
        });
    }

    /// Records a fault's start or end (`f` is `start-KIND`, `stop-KIND`, `heal` or
    /// `crash`); returns its time.
    /// Records a nemesis event: what happened, typed, and what it did; returns its time.
    pub fn nemesis(&self, edge: FaultEdge, details: &FaultDetails) -> u64 {
        let mut inner = self.inner.lock().expect("recorder lock");
        let time = self.now();
        self.write(
            &mut inner,
            &HistoryLine::nemesis(&edge.to_string(), details.to_value(), time),
        );
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

/// Sorted latencies (ns) of the `ok` operations among `samples`.
pub fn ok_latencies(samples: &[Sample]) -> Vec<u64> {
    let mut l: Vec<u64> = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Ok)
        .map(|s| s.latency)
        .collect();
    l.sort_unstable();
    l
}

#[cfg(test)]
mod tests {
    use checker::record::quantile_of_sorted;
    use serde_json::json;

    use super::*;

    fn ok(value: Value) -> Completion {
        Completion {
            outcome: Outcome::Ok,
            value,
            error: None,
            reason: None,
            node: Some(1),
            via: vec![3],
        }
    }

    #[test]
    fn records_a_history_the_checker_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let r = Recorder::create(&path, false).unwrap();
        let w = r.invoke(1, Func::Write, "r0", json!("3"));
        let kill = FaultDetails {
            nodes: vec![2],
            target: Some(checker::record::Target::Random),
            ..FaultDetails::default()
        };
        r.nemesis(FaultEdge::Start(checker::record::FaultKind::Kill), &kill);
        r.complete(&w, ok(json!("3")));
        let rd = r.invoke(2, Func::Read, "r0", Value::Null);
        r.complete(&rd, ok(json!("3")));
        let c = r.invoke(3, Func::Cas, "r0", json!(["1", "2"]));
        r.complete(
            &c,
            Completion {
                outcome: Outcome::Fail,
                value: json!(["1", "2"]),
                error: Some("cas mismatch".into()),
                reason: Some(FailReason::CasMismatch),
                node: None,
                via: Vec::new(),
            },
        );
        r.finish().unwrap();
        assert_eq!(
            r.counts(),
            Counts {
                ok: 2,
                fail: 1,
                info: 0
            }
        );
        assert_eq!(
            r.samples()[2].reason,
            Some(FailReason::CasMismatch),
            "a failure keeps its reason"
        );
        assert!(quantile_of_sorted(&ok_latencies(&r.samples()), 0.5).is_some());

        let file = std::fs::File::open(&path).unwrap();
        let h = checker::history::read_jsonl(std::io::BufReader::new(file)).unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(
            (h.ops[0].func(), h.ops[0].key.as_deref(), h.ops[0].outcome),
            (Some(Func::Write), Some("r0"), Outcome::Ok)
        );
        assert_eq!(h.ops[1].output, Some(json!("3")));
        // Which node served each operation comes back with it.
        assert_eq!(
            (h.ops[1].route.node, &h.ops[1].route.via[..]),
            (Some(1), &[3][..])
        );
        assert_eq!(h.ops[2].outcome, Outcome::Fail);
        assert_eq!(h.ops[2].route, Default::default());
        assert_eq!(h.nemesis.len(), 1);
        assert_eq!(FaultDetails::from_value(&h.nemesis[0].value), kill);
    }

    /// What an online checker sees equals what the file says, per key, except that an
    /// operation still open is `info`; and an update takes only new events.
    #[test]
    fn key_histories_follow_the_recorder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let r = Recorder::create(&path, false).unwrap().keep_history();
        let mut live = KeyHistories::default();
        let w = r.invoke(1, Func::Write, "a", json!(1));
        r.complete(&w, ok(json!(1)));
        let rd = r.invoke(2, Func::Read, "b", Value::Null);
        live.update(&r);
        assert_eq!(live.changes().get("a"), Some(&2));
        let b = live.history("b").unwrap();
        assert_eq!((b.ops[0].outcome, b.ops[0].ret), (Outcome::Info, None));
        r.complete(&rd, ok(json!(7)));
        live.update(&r);
        let b = live.history("b").unwrap();
        assert_eq!(b.ops[0].outcome, Outcome::Ok);
        assert_eq!(b.ops[0].output, Some(json!(7)));
        r.finish().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let h = checker::history::read_jsonl(std::io::BufReader::new(file)).unwrap();
        let a = live.history("a").unwrap();
        assert_eq!(
            (a.ops[0].call, a.ops[0].ret, &a.ops[0].output, &a.ops[0].f),
            (h.ops[0].call, h.ops[0].ret, &h.ops[0].output, &h.ops[0].f)
        );
        assert_eq!(live.changes().get("b"), Some(&2));
        assert!(
            r.live_events(4).is_empty(),
            "an update takes only what is new"
        );
    }

    #[test]
    fn kv_histories_say_get_and_put() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let r = Recorder::create(&path, true).unwrap();
        let w = r.invoke(0, Func::Write, "k1", json!("v1"));
        r.complete(&w, ok(json!("v1")));
        r.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""f":"put""#), "{text}");
    }
}
