//! The set checker (Jepsen's set-full, in our words): adds of unique elements and reads of
//! a whole set, judged element by element rather than by a search over orders.
//!
//! An element is *known* from the moment its add was acknowledged, or from the end of the
//! first read that saw it (an add whose outcome was unknown). Against the reads that began
//! after that moment, per key:
//! - **lost**: missing from the last of them (it was there, or was promised, and is gone);
//! - **stale**: missing from some of them but present in the last (a read that lagged);
//! - **never read**: acknowledged, but no read began after that;
//! - **recovered**: an add of unknown outcome that some read saw;
//! - **unexpected**: read, but never added, or added by an add that certainly failed;
//! - **duplicated**: held twice by one read (an add applied twice).
//!
//! A queue (a totally ordered log, `ordered`) also has **reordered** elements: every read
//! of a log must be a prefix of its longest read (all are prefixes of the one true log),
//! and the first element where a read departs from it is reordered.
//!
//! Lost, unexpected, duplicated and reordered elements make a history invalid; stale ones only when reads must
//! be linearizable (`linearizable`), since a set that promises less may lag. The work is
//! linear in the total size of the reads: each element keeps the sorted positions of the
//! reads that held it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::{CheckReport, KeyFailure, OpSummary, StateExplanation};
use crate::history::{Func, History, Operation, Outcome};
use crate::Verdict;

/// What happened to the elements of one set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOutcomes {
    pub key: String,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Elements with an ok add, or seen by a read.
    pub known: usize,
    pub lost: Vec<ElementFate>,
    pub stale: Vec<ElementFate>,
    pub unexpected: Vec<ElementFate>,
    pub duplicated: Vec<ElementFate>,
    /// A queue's reads that depart from its longest read: the element where each does.
    pub reordered: Vec<ElementFate>,
    /// Elements whose add's outcome was unknown and that a read saw.
    pub recovered: usize,
    pub never_read: usize,
    /// Ok reads of this set.
    pub reads: usize,
}

/// One element's anomaly: which element, when it became known, and the read that shows
/// the anomaly (for lost elements, the last read; for stale ones, the first that missed
/// it; for unexpected ones, the first that held it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementFate {
    pub element: String,
    /// The add, if there was one.
    pub add: Option<usize>,
    /// Nanoseconds: when the element became known (`None` for unexpected elements).
    pub known_at: Option<u64>,
    /// The read that shows it.
    pub read: usize,
}

/// The whole history's set outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReport {
    pub sets: Vec<SetOutcomes>,
    pub linearizable: bool,
    /// Whether reads return a log in order (a queue).
    pub ordered: bool,
}

impl SetReport {
    pub fn verdict(&self) -> Verdict {
        let bad = self.sets.iter().any(|s| {
            !s.lost.is_empty()
                || !s.unexpected.is_empty()
                || !s.duplicated.is_empty()
                || !s.reordered.is_empty()
                || (self.linearizable && !s.stale.is_empty())
        });
        if bad {
            Verdict::Invalid
        } else {
            Verdict::Valid
        }
    }

    fn total(&self, f: impl Fn(&SetOutcomes) -> usize) -> usize {
        self.sets.iter().map(f).sum()
    }

    /// One line: the counts of every outcome.
    pub fn counts(&self) -> String {
        format!(
            "{} acknowledged adds: {} lost, {} unexpected, {} duplicated, {}{} stale, {} recovered, {} never read",
            self.total(|s| s.acknowledged),
            self.total(|s| s.lost.len()),
            self.total(|s| s.unexpected.len()),
            self.total(|s| s.duplicated.len()),
            if self.ordered {
                format!("{} reordered, ", self.total(|s| s.reordered.len()))
            } else {
                String::new()
            },
            self.total(|s| s.stale.len()),
            self.total(|s| s.recovered),
            self.total(|s| s.never_read),
        )
    }
}

/// A history that is not a set history, or a set operation without what it needs.
#[derive(Debug, thiserror::Error)]
#[error("operation {id} (line {line}): {message}")]
pub struct SetError {
    pub id: usize,
    pub line: usize,
    pub message: String,
}

/// An element as the checker names it: a string as itself, anything else as its JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Add {
    op: usize,
    outcome: Outcome,
    ret: Option<u64>,
}

/// Judges every set in `history` (adds and reads-all, per key).
pub fn check_set(history: &History, linearizable: bool) -> Result<SetReport, SetError> {
    check_collection(history, linearizable, false)
}

/// Judges every queue in `history`: as sets, and each read must be a prefix of the
/// longest read of its queue.
pub fn check_queue(history: &History, linearizable: bool) -> Result<SetReport, SetError> {
    check_collection(history, linearizable, true)
}

/// Judges every set (`ordered`: every queue) in `history`.
pub fn check_collection(
    history: &History,
    linearizable: bool,
    ordered: bool,
) -> Result<SetReport, SetError> {
    let bad = |op: &Operation, message: String| SetError {
        id: op.id,
        line: op.line,
        message,
    };
    // Per key: adds by element, and the ok reads in order of invocation.
    let mut adds: BTreeMap<String, HashMap<String, Add>> = BTreeMap::new();
    let mut reads: BTreeMap<String, Vec<&Operation>> = BTreeMap::new();
    for op in &history.ops {
        let key = op.key.clone().unwrap_or_default();
        match op.func() {
            Some(Func::Add) => {
                let element = text(&op.input);
                let add = Add {
                    op: op.id,
                    outcome: op.outcome,
                    ret: op.ret,
                };
                if adds
                    .entry(key)
                    .or_default()
                    .insert(element.clone(), add)
                    .is_some()
                {
                    return Err(bad(op, format!("element {element} is added twice")));
                }
            }
            Some(Func::ReadAll) => {
                if op.outcome != Outcome::Ok {
                    continue;
                }
                match &op.output {
                    Some(Value::Array(_)) => reads.entry(key).or_default().push(op),
                    other => {
                        return Err(bad(
                            op,
                            format!("a read-all returned {other:?}, not a list"),
                        ))
                    }
                }
            }
            _ => {
                return Err(bad(
                    op,
                    format!("the set checker knows add and read-all, not {:?}", op.f),
                ))
            }
        }
    }
    let mut report = SetReport {
        linearizable,
        ordered,
        ..SetReport::default()
    };
    let keys: Vec<String> = adds.keys().chain(reads.keys()).cloned().collect();
    let mut done = std::collections::BTreeSet::new();
    for key in keys {
        if !done.insert(key.clone()) {
            continue;
        }
        let empty = HashMap::new();
        let adds = adds.get(&key).unwrap_or(&empty);
        let mut rs: Vec<&Operation> = reads.remove(&key).unwrap_or_default();
        rs.sort_by_key(|r| (r.call, r.id));
        let mut outcomes = judge_set(&key, adds, &rs);
        if ordered {
            outcomes.reordered = out_of_order(adds, &rs);
        }
        report.sets.push(outcomes);
    }
    Ok(report)
}

fn judge_set(key: &str, adds: &HashMap<String, Add>, reads: &[&Operation]) -> SetOutcomes {
    let mut out = SetOutcomes {
        key: key.to_string(),
        reads: reads.len(),
        acknowledged: adds.values().filter(|a| a.outcome == Outcome::Ok).count(),
        ..SetOutcomes::default()
    };
    // Each element read: the positions (in `reads`) of the reads that held it, and when
    // the first of them returned.
    let mut seen: HashMap<String, (Vec<usize>, u64)> = HashMap::new();
    let mut twice: Vec<(String, usize)> = Vec::new();
    for (i, r) in reads.iter().enumerate() {
        let Some(Value::Array(elements)) = &r.output else {
            continue;
        };
        let ret = r.ret.unwrap_or(r.call);
        for e in elements {
            let element = text(e);
            let (at, first) = seen.entry(element.clone()).or_insert((Vec::new(), ret));
            if at.last() == Some(&i) {
                twice.push((element, i));
            } else {
                at.push(i);
            }
            *first = (*first).min(ret);
        }
    }
    let fate =
        |element: &str, add: Option<usize>, known_at: Option<u64>, read: usize| ElementFate {
            element: element.to_string(),
            add,
            known_at,
            read: reads[read].id,
        };
    twice.sort();
    twice.dedup_by(|a, b| a.0 == b.0);
    for (element, read) in twice {
        let add = adds.get(&element).map(|a| a.op);
        out.duplicated.push(fate(&element, add, None, read));
    }
    for (element, (at, _)) in &seen {
        let add = adds.get(element);
        if add.is_none_or(|a| a.outcome == Outcome::Fail) {
            out.unexpected
                .push(fate(element, add.map(|a| a.op), None, at[0]));
        }
    }
    for (element, add) in adds {
        let read_at = seen.get(element);
        if add.outcome == Outcome::Info && read_at.is_some() {
            out.recovered += 1;
        }
        let known_at = match (add.outcome, read_at) {
            (Outcome::Ok, _) => add.ret,
            (Outcome::Info, Some((_, first))) => Some(*first),
            _ => None,
        };
        let Some(known) = known_at else {
            continue;
        };
        out.known += 1;
        // The reads that began after it was known: a suffix of `reads`.
        let from = reads.partition_point(|r| r.call <= known);
        if from == reads.len() {
            // An unknown add known from a read was read; only an acknowledged one can
            // have gone unread.
            if add.outcome == Outcome::Ok {
                out.never_read += 1;
            }
            continue;
        }
        let held: &[usize] = read_at.map_or(&[], |(at, _)| at.as_slice());
        let after = &held[held.partition_point(|&i| i < from)..];
        let last = reads.len() - 1;
        if after.last() != Some(&last) {
            out.lost
                .push(fate(element, Some(add.op), Some(known), last));
        } else if after.len() < reads.len() - from {
            // Some read in the suffix missed it: the first such is the first gap.
            let missed = (from..reads.len())
                .zip(after.iter().copied().chain(std::iter::repeat(usize::MAX)))
                .find(|(want, got)| want != got)
                .map_or(from, |(want, _)| want);
            out.stale
                .push(fate(element, Some(add.op), Some(known), missed));
        }
    }
    for v in [
        &mut out.lost,
        &mut out.stale,
        &mut out.unexpected,
        &mut out.duplicated,
    ] {
        v.sort_by(|a, b| (a.known_at, &a.element).cmp(&(b.known_at, &b.element)));
    }
    out
}

/// The reads of one log that are not a prefix of its longest read, each with the first
/// element where it departs.
fn out_of_order(adds: &HashMap<String, Add>, reads: &[&Operation]) -> Vec<ElementFate> {
    let list = |r: &Operation| match &r.output {
        Some(Value::Array(a)) => a.iter().map(text).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let Some(longest) = reads.iter().map(|r| list(r)).max_by_key(Vec::len) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in reads {
        let l = list(r);
        if let Some(i) = (0..l.len()).find(|&i| l[i] != longest[i]) {
            out.push(ElementFate {
                element: l[i].clone(),
                add: adds.get(&l[i]).map(|a| a.op),
                known_at: None,
                read: r.id,
            });
        }
    }
    out
}

fn summary(op: &Operation, description: String) -> OpSummary {
    let mut s = OpSummary::of(op, description);
    // A read's whole set would swamp a report: its size stands in for it.
    if let Some(Value::Array(a)) = &op.output {
        s.output = Some(Value::String(format!("{} elements", a.len())));
    }
    s
}

/// A set (`ordered`: queue) history judged (stale reads too when `linearizable`), as the
/// report every other part of the tool reads, timed.
pub fn check_report(
    history: &History,
    linearizable: bool,
    ordered: bool,
) -> Result<CheckReport, SetError> {
    let started = std::time::Instant::now();
    let r = check_collection(history, linearizable, ordered)?;
    Ok(r.to_check_report(history, started.elapsed().as_secs_f64() * 1e3))
}

impl SetReport {
    /// The report every other part of the tool reads (results.json, the console, the
    /// HTML report): per key, the first anomaly, explained in the set's words.
    pub fn to_check_report(&self, history: &History, elapsed_ms: f64) -> CheckReport {
        let mut failures = Vec::new();
        let mut invalid = 0;
        for s in &self.sets {
            let first = s
                .lost
                .first()
                .map(|f| {
                    (
                        f,
                        "lost",
                        "acknowledged or seen, then missing from the last read",
                    )
                })
                .or_else(|| {
                    s.unexpected
                        .first()
                        .map(|f| (f, "unexpected", "read, but never added (or its add failed)"))
                })
                .or_else(|| {
                    s.duplicated
                        .first()
                        .map(|f| (f, "duplicated", "held twice by one read: added twice"))
                })
                .or_else(|| {
                    s.reordered.first().map(|f| {
                        (
                            f,
                            "reordered",
                            "where this read of the log departs from its longest read",
                        )
                    })
                })
                .or_else(|| {
                    self.linearizable
                        .then_some(())
                        .and(s.stale.first().map(|f| {
                            (
                                f,
                                "stale",
                                "missing from a read that began after it was known to be in",
                            )
                        }))
                });
            let Some((fate, what, why)) = first else {
                continue;
            };
            invalid += 1;
            let read = &history.ops[fate.read];
            let description = format!("read-all {} without {:?}", s.key, fate.element);
            let reason = format!(
                "element {:?} is {what}: {why} ({} lost, {} unexpected, {} stale in set {})",
                fate.element,
                s.lost.len(),
                s.unexpected.len(),
                s.stale.len(),
                s.key
            );
            failures.push(KeyFailure {
                key: Some(s.key.clone()),
                op: summary(read, description),
                prefix_len: 0,
                prefix: fate
                    .add
                    .map(|a| {
                        let op = &history.ops[a];
                        summary(op, format!("add {:?} to {}", fate.element, s.key))
                    })
                    .into_iter()
                    .collect(),
                state: self.counts(),
                states: vec![StateExplanation {
                    state: format!("set {}", s.key),
                    reason,
                }],
                states_complete: true,
            });
        }
        CheckReport {
            verdict: self.verdict(),
            model: if self.ordered { "queue" } else { "set" }.into(),
            ops: history.ops.len(),
            checked_ops: history.ops.len(),
            keys: self.sets.len(),
            valid_keys: self.sets.len() - invalid,
            invalid_keys: invalid,
            unknown_keys: 0,
            configurations: 0,
            elapsed_ms,
            failures,
            unknown: Vec::new(),
            not_decided_keys: 0,
            all_keys: true,
            counts: Some(self.counts()),
            txn: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::HistoryBuilder;

    /// A history from (process, f, value, call, ret, outcome) rows on key "s".
    fn history(rows: &[(i64, &str, Value, u64, u64, Outcome)]) -> History {
        let mut b = HistoryBuilder::new();
        for (p, f, v, call, ret, outcome) in rows {
            let input = if *f == "add" { v.clone() } else { Value::Null };
            b.invoke(*p, f, Some("s"), input, *call);
            match outcome {
                Outcome::Ok => b.ok(*p, f, v.clone(), *ret),
                Outcome::Fail => b.fail(*p, f, Value::Null, *ret),
                Outcome::Info => b.info(*p, f, Value::Null, *ret),
            };
        }
        b.build()
    }

    use Outcome::{Fail, Info, Ok};

    #[test]
    fn each_outcome_is_named() {
        let h = history(&[
            (0, "add", json!("1"), 0, 10, Ok),    // read everywhere: fine
            (1, "add", json!("2"), 0, 10, Ok),    // missing from the last read: lost
            (2, "add", json!("3"), 0, 10, Ok),    // missing from the first read only: stale
            (3, "add", json!("4"), 0, 10, Info),  // seen: recovered
            (4, "add", json!("5"), 0, 10, Fail),  // seen though it failed: unexpected
            (5, "add", json!("6"), 100, 200, Ok), // no read after it: never read
            (6, "read-all", json!(["1", "2", "4", "5", "9"]), 20, 30, Ok),
            (7, "read-all", json!(["1", "3", "4", "5", "1"]), 40, 50, Ok),
        ]);
        let r = check_set(&h, false).unwrap();
        let s = &r.sets[0];
        let names = |v: &[ElementFate]| v.iter().map(|f| f.element.clone()).collect::<Vec<_>>();
        assert_eq!(names(&s.lost), ["2"]);
        assert_eq!(names(&s.stale), ["3"]);
        assert_eq!(names(&s.unexpected), ["5", "9"]);
        assert_eq!(names(&s.duplicated), ["1"]);
        assert_eq!(s.duplicated[0].read, 7);
        assert_eq!((s.recovered, s.never_read, s.acknowledged), (1, 1, 4));
        assert_eq!(s.lost[0].read, 7, "the last read shows the loss");
        assert_eq!(s.stale[0].read, 6, "the first read missed it");
        assert_eq!(r.verdict(), Verdict::Invalid);
        let c = r.to_check_report(&h, 0.0);
        assert_eq!(c.verdict, Verdict::Invalid);
        assert!(
            c.summary().contains("element \"2\" is lost"),
            "{}",
            c.summary()
        );
    }

    #[test]
    fn a_sound_history_is_valid_and_stale_reads_count_only_when_linearizable() {
        let h = history(&[
            (0, "add", json!("1"), 0, 10, Ok),
            // Began before the add returned: may miss it.
            (1, "read-all", json!([]), 5, 15, Ok),
            (2, "add", json!("2"), 12, 20, Info),
            (3, "read-all", json!(["1"]), 30, 40, Ok),
            (4, "read-all", json!(["1", "2"]), 50, 60, Ok),
            (5, "read-all", json!(["1", "2"]), 70, 80, Ok),
        ]);
        let r = check_set(&h, true).unwrap();
        assert_eq!(r.verdict(), Verdict::Valid, "{r:?}");
        assert_eq!(r.sets[0].recovered, 1);
        // 2 was seen at 60, then a later read missed it and the last held it: stale.
        let h = history(&[
            (0, "add", json!("2"), 0, 10, Info),
            (1, "read-all", json!(["2"]), 20, 30, Ok),
            (2, "read-all", json!([]), 40, 50, Ok),
            (3, "read-all", json!(["2"]), 60, 70, Ok),
        ]);
        assert_eq!(check_set(&h, false).unwrap().verdict(), Verdict::Valid);
        let r = check_set(&h, true).unwrap();
        assert_eq!(r.sets[0].stale.len(), 1);
        assert_eq!(r.verdict(), Verdict::Invalid);
    }

    #[test]
    fn an_unknown_add_first_seen_by_the_last_read_is_recovered_not_unread() {
        let h = history(&[
            (0, "add", json!("1"), 0, 10, Info),
            (1, "read-all", json!(["1"]), 20, 30, Ok),
        ]);
        let s = &check_set(&h, true).unwrap().sets[0];
        assert_eq!((s.recovered, s.never_read), (1, 0));
    }

    #[test]
    fn what_is_not_a_set_history_is_refused() {
        let h = history(&[
            (0, "add", json!("1"), 0, 1, Ok),
            (1, "add", json!("1"), 2, 3, Ok),
        ]);
        assert!(check_set(&h, false)
            .unwrap_err()
            .message
            .contains("added twice"));
        let h = history(&[(0, "read-all", json!("x"), 0, 1, Ok)]);
        assert!(check_set(&h, false)
            .unwrap_err()
            .message
            .contains("not a list"));
        let h = history(&[(0, "write", json!("x"), 0, 1, Ok)]);
        assert!(check_set(&h, false).is_err());
    }

    #[test]
    fn a_large_history_is_decided() {
        // 20,000 adds and 200 reads of a growing set, one element lost at the end.
        let mut b = HistoryBuilder::new();
        let mut t = 0;
        let mut present: Vec<Value> = Vec::new();
        for i in 0..20_000u64 {
            b.invoke(0, "add", Some("s"), json!(i.to_string()), t);
            b.ok(0, "add", json!(i.to_string()), t + 1);
            present.push(json!(i.to_string()));
            t += 2;
            if i % 100 == 99 {
                let mut shown = present.clone();
                if i == 19_999 {
                    shown.remove(5);
                }
                b.invoke(1, "read-all", Some("s"), Value::Null, t);
                b.ok(1, "read-all", Value::Array(shown), t + 1);
                t += 2;
            }
        }
        let r = check_set(&b.build(), true).unwrap();
        assert_eq!(r.sets[0].lost.len(), 1);
        assert_eq!(r.sets[0].lost[0].element, "5");
        assert_eq!(r.sets[0].stale.len(), 0);
    }

    #[test]
    fn a_queue_read_that_is_not_a_prefix_of_the_longest_is_reordered() {
        let h = history(&[
            (0, "add", json!("a"), 0, 10, Ok),
            (1, "add", json!("b"), 0, 10, Ok),
            (2, "add", json!("c"), 25, 35, Ok),
            (3, "read-all", json!(["a", "b"]), 20, 30, Ok),
            (4, "read-all", json!(["b", "a"]), 20, 30, Ok),
            (5, "read-all", json!(["a", "b", "c"]), 40, 50, Ok),
        ]);
        // As a set, fine; as a log, read 4 put b first.
        assert_eq!(check_set(&h, true).unwrap().verdict(), Verdict::Valid);
        let r = check_queue(&h, true).unwrap();
        assert_eq!(r.verdict(), Verdict::Invalid);
        let s = &r.sets[0];
        assert_eq!(s.reordered.len(), 1);
        assert_eq!(
            (s.reordered[0].element.as_str(), s.reordered[0].read),
            ("b", 4)
        );
        assert!(r.counts().contains("1 reordered"), "{}", r.counts());
        assert_eq!(r.to_check_report(&h, 0.0).model, "queue");
    }
}
