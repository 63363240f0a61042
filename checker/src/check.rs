//! Checking a whole history: split it by key (P-compositionality: a history is
//! linearizable iff each key's sub-history is), search the parts in parallel within a
//! budget, verify every linearization found, and explain every failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{History, Operation, Outcome};
use crate::model::Model;
use crate::search::{search, Budget, MemoryBudget, SearchOp, SearchResult};

pub use crate::verdict::Verdict;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Wall-clock budget for the whole check; past it, undecided keys are `unknown`.
    pub timeout: Option<Duration>,
    /// Bytes the whole check's searches may hold at once, all threads together: their
    /// caches of configurations, their stacks of states and their arrays.
    pub memory_limit: usize,
    /// Worker threads (keys are checked in parallel).
    pub threads: usize,
    /// Separate budget for explaining each failure.
    pub explain_timeout: Duration,
    /// Bytes each explanation's search may hold (on top of `memory_limit`: explanations
    /// run after their key's search has given its memory back).
    pub explain_memory: usize,
    /// How many operations before the failure the report lists.
    pub report_prefix: usize,
    /// Decide every key. Without it, the first key proven non-linearizable decides the
    /// verdict: the other searches stop at once and their keys are reported as not
    /// decided, which turns minutes of searching into milliseconds on an invalid history.
    pub all_keys: bool,
}

impl CheckOptions {
    /// `mib` MiB in bytes (at least one MiB), for `memory_limit`.
    pub fn bytes_for_mib(mib: u64) -> usize {
        usize::try_from(mib.max(1))
            .unwrap_or(usize::MAX)
            .saturating_mul(1 << 20)
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: None,
            memory_limit: 1 << 30,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            explain_timeout: Duration::from_secs(10),
            explain_memory: 128 << 20,
            report_prefix: 30,
            all_keys: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("operation {id} (line {line}): {message}")]
    BadOperation {
        id: usize,
        line: usize,
        message: String,
    },
}

/// An operation as reports show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpSummary {
    pub id: usize,
    pub process: i64,
    pub f: String,
    pub key: Option<String>,
    pub value: Value,
    pub output: Option<Value>,
    pub call: u64,
    pub ret: Option<u64>,
    pub outcome: Outcome,
    pub line: usize,
    /// The operation in the model's words.
    pub description: String,
    /// In a prefix listing: the model state after this operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_after: Option<String>,
    /// Which node served it, when the history says.
    #[serde(default, skip_serializing_if = "is_unrouted")]
    pub route: crate::history::Route,
}

fn is_unrouted(r: &crate::history::Route) -> bool {
    r.node.is_none() && r.via.is_empty()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateExplanation {
    pub state: String,
    pub reason: String,
}

/// Why one key's history is not linearizable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFailure {
    pub key: Option<String>,
    /// The operation that could not be linearized.
    pub op: OpSummary,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// Its last operations, in linearization order.
    pub prefix: Vec<OpSummary>,
    /// The model state after the whole prefix.
    pub state: String,
    /// States the model could be in when the operation had to take effect, and why each
    /// rejects it.
    pub states: Vec<StateExplanation>,
    /// Whether `states` is complete or the explanation budget ran out.
    pub states_complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyUnknown {
    pub key: Option<String>,
    pub ops: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub verdict: Verdict,
    pub model: String,
    /// Operations in the history.
    pub ops: usize,
    /// Operations the search had to place (not `fail`, not unconstraining).
    pub checked_ops: usize,
    pub keys: usize,
    pub valid_keys: usize,
    pub invalid_keys: usize,
    pub unknown_keys: usize,
    pub configurations: usize,
    pub elapsed_ms: f64,
    pub failures: Vec<KeyFailure>,
    pub unknown: Vec<KeyUnknown>,
    /// Keys left undecided because another key had already proven the history invalid.
    #[serde(default)]
    pub not_decided_keys: usize,
    /// Whether every key was to be decided (`--all-keys`), or the first refuted key
    /// stopped the check.
    #[serde(default)]
    pub all_keys: bool,
    /// What a checker that counts (the set checker) found, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<String>,
    /// The transaction checker's own report, for transaction workloads: the anomalies,
    /// their explanations and the models broken and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<crate::txn::TxnReport>,
}

impl CheckReport {
    /// A transaction checker's report in the shape every run record carries
    /// (results.json, `check --out`), with it inside.
    pub fn of_txn(t: &crate::txn::TxnReport, ops: usize) -> CheckReport {
        CheckReport {
            verdict: t.verdict,
            model: format!("{} ({})", t.workload, t.model),
            ops,
            checked_ops: t.committed,
            keys: t.keys,
            valid_keys: 0,
            invalid_keys: 0,
            unknown_keys: 0,
            configurations: 0,
            elapsed_ms: t.elapsed_ms,
            failures: Vec::new(),
            unknown: Vec::new(),
            not_decided_keys: 0,
            all_keys: true,
            counts: Some(t.headline()),
            txn: Some(t.clone()),
        }
    }

    /// One line for a terminal.
    pub fn summary(&self) -> String {
        self.summary_of(None)
    }

    /// One line for a terminal, naming `source` (the history file) where it gives a line
    /// number, so "line 28" says which file it counts in.
    pub fn summary_of(&self, source: Option<&str>) -> String {
        if let Some(t) = &self.txn {
            return t.summary_of(source);
        }
        let mut s = format!(
            "{}: {} ops, {} keys ({} valid, {} invalid, {} unknown), {} model, {:.0} ms",
            self.verdict.as_str().to_uppercase(),
            self.ops,
            self.keys,
            self.valid_keys,
            self.invalid_keys,
            self.unknown_keys,
            self.model,
            self.elapsed_ms
        );
        if let Some(c) = &self.counts {
            s += &format!("; {c}");
        }
        if let Some(f) = self.failures.first() {
            let file = source.map_or(String::new(), |f| format!("{f} "));
            s += &format!(
                "; first anomaly: key {} op {} ({file}line {}{}) {}",
                f.key.as_deref().unwrap_or("-"),
                f.op.id,
                f.op.line,
                f.op.route
                    .node
                    .map_or(String::new(), |n| format!(", served by node {n}")),
                f.states
                    .first()
                    .map_or_else(|| f.op.description.clone(), |e| e.reason.clone())
            );
        }
        if let Some(u) = self.unknown.first() {
            s += &format!("; undecided: {}", u.reason);
        }
        if self.not_decided_keys > 0 {
            s += &format!(
                "; {} more keys not decided: the history is already invalid (--all-keys decides them)",
                self.not_decided_keys
            );
        }
        s
    }
}

enum KeyOutcome {
    Valid(usize),
    Invalid(Box<KeyFailure>, usize),
    Unknown(KeyUnknown, usize),
    /// Stopped because another key was refuted first.
    NotDecided(usize),
}

struct Part<'h, O> {
    key: Option<String>,
    ops: Vec<SearchOp<O>>,
    source: Vec<&'h Operation>,
}

fn summarize<M: Model>(model: &M, op: &Operation, compiled: Option<&M::Op>) -> OpSummary {
    OpSummary::of(
        op,
        compiled.map_or_else(|| op.f.clone(), |c| model.describe_op(c)),
    )
}

impl OpSummary {
    /// `op` as a report shows it, described in a checker's words.
    pub fn of(op: &Operation, description: String) -> OpSummary {
        OpSummary {
            id: op.id,
            process: op.process,
            f: op.f.clone(),
            key: op.key.clone(),
            value: op.input.clone(),
            output: op.output.clone(),
            call: op.call,
            ret: op.ret,
            outcome: op.outcome,
            line: op.line,
            description,
            state_after: None,
            route: op.route.clone(),
        }
    }
}

/// Checks that `order` is a real linearization: the model accepts it step by step, every
/// `ok` operation is in it once, and it respects real time.
fn verify<M: Model>(model: &M, ops: &[SearchOp<M::Op>], order: &[usize]) -> Result<(), String> {
    let mut seen = vec![false; ops.len()];
    let mut state = model.init();
    for &i in order {
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("operation {} appears twice", ops[i].id));
        }
        state = model.step(&state, &ops[i].op).ok_or_else(|| {
            format!(
                "the model rejects operation {} in the order found",
                ops[i].id
            )
        })?;
    }
    if let Some(i) = (0..ops.len()).find(|&i| ops[i].ret.is_some() && !seen[i]) {
        return Err(format!(
            "ok operation {} is missing from the order",
            ops[i].id
        ));
    }
    // No operation may come after one that was invoked after it returned.
    let mut min_ret_after = u64::MAX;
    for &i in order.iter().rev() {
        if ops[i].call > min_ret_after {
            return Err(format!(
                "operation {} is placed after one that returned before it began",
                ops[i].id
            ));
        }
        min_ret_after = min_ret_after.min(ops[i].ret.unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Searches one key. `refuted` is set by whichever key is proven non-linearizable first
/// (unless every key is to be decided), and stops the searches of the others.
fn check_part<M: Model>(
    model: &M,
    part: &Part<'_, M::Op>,
    opts: &CheckOptions,
    deadline: Option<Instant>,
    memory: &MemoryBudget,
    refuted: &AtomicBool,
) -> KeyOutcome {
    let budget = Budget {
        deadline,
        memory,
        cancel: refuted,
    };
    let mut none = Vec::new();
    match search(model, &part.ops, &budget, None, &mut none, 0) {
        SearchResult::Linearizable { order, configs } => match verify(model, &part.ops, &order) {
            Ok(()) => KeyOutcome::Valid(configs),
            Err(e) => KeyOutcome::Unknown(
                KeyUnknown {
                    key: part.key.clone(),
                    ops: part.ops.len(),
                    reason: format!("internal error, the order found does not verify: {e}"),
                },
                0,
            ),
        },
        SearchResult::Unknown { configs, .. } if refuted.load(Ordering::Relaxed) => {
            KeyOutcome::NotDecided(configs)
        }
        SearchResult::Unknown { reason, configs } => KeyOutcome::Unknown(
            KeyUnknown {
                key: part.key.clone(),
                ops: part.ops.len(),
                reason,
            },
            configs,
        ),
        SearchResult::NotLinearizable {
            best_prefix,
            blocked,
            state,
            configs,
        } => {
            if !opts.all_keys {
                refuted.store(true, Ordering::Relaxed);
            }
            // The explanation has a budget of its own, which no other key stops.
            let own = AtomicBool::new(false);
            let failure = explain(model, part, opts, &own, &best_prefix, blocked, &state);
            KeyOutcome::Invalid(Box::new(failure), configs)
        }
    }
}

fn explain<M: Model>(
    model: &M,
    part: &Part<'_, M::Op>,
    opts: &CheckOptions,
    cancel: &AtomicBool,
    best_prefix: &[usize],
    blocked: usize,
    state: &M::State,
) -> KeyFailure {
    // Re-run the search on what can precede the blocked operation's return, watching the
    // states in which the model rejects it. It has its own budget.
    let end = part.ops[blocked].ret.unwrap_or(u64::MAX);
    let keep: Vec<usize> = (0..part.ops.len())
        .filter(|&i| part.ops[i].call <= end)
        .collect();
    let sub: Vec<SearchOp<M::Op>> = keep.iter().map(|&i| part.ops[i].clone()).collect();
    let watch = keep.iter().position(|&i| i == blocked);
    let memory = MemoryBudget::new(opts.explain_memory);
    let budget = Budget {
        deadline: Some(Instant::now() + opts.explain_timeout),
        memory: &memory,
        cancel,
    };
    let mut rejected = Vec::new();
    let complete = match search(model, &sub, &budget, watch, &mut rejected, 16) {
        SearchResult::NotLinearizable { .. } => rejected.len() < 16,
        _ => false,
    };
    if rejected.is_empty() {
        rejected.push(state.clone());
    }
    let bad = &part.ops[blocked].op;
    let states = rejected
        .iter()
        .map(|s| StateExplanation {
            state: model.describe_state(s),
            reason: model.explain(s, bad),
        })
        .collect();
    // The tail of the longest prefix, with the state after each operation.
    let mut s = model.init();
    let skip = best_prefix.len().saturating_sub(opts.report_prefix);
    let mut prefix = Vec::new();
    for (n, &i) in best_prefix.iter().enumerate() {
        s = model
            .step(&s, &part.ops[i].op)
            .expect("the prefix was linearized");
        if n >= skip {
            let mut summary = summarize(model, part.source[i], Some(&part.ops[i].op));
            summary.state_after = Some(model.describe_state(&s));
            prefix.push(summary);
        }
    }
    KeyFailure {
        key: part.key.clone(),
        op: summarize(model, part.source[blocked], Some(bad)),
        prefix_len: best_prefix.len(),
        prefix,
        state: model.describe_state(state),
        states,
        states_complete: complete,
    }
}

/// `op` in the model's form; a malformed one is an error naming its line.
fn compile<M: Model>(model: &M, op: &Operation) -> Result<Option<M::Op>, CheckError> {
    model
        .compile(op)
        .map_err(|message| CheckError::BadOperation {
            id: op.id,
            line: op.line,
            message,
        })
}

/// The report when the history alone, in the searches' form, exceeds the budget.
fn over_budget<M: Model>(
    model: &M,
    history: &History,
    opts: &CheckOptions,
    keys: usize,
    needed: usize,
    started: Instant,
) -> CheckReport {
    CheckReport {
        verdict: Verdict::Unknown,
        model: model.name().to_string(),
        ops: history.ops.len(),
        checked_ops: 0,
        keys,
        valid_keys: 0,
        invalid_keys: 0,
        unknown_keys: keys,
        configurations: 0,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        failures: Vec::new(),
        unknown: vec![KeyUnknown {
            key: None,
            ops: history.ops.len(),
            reason: format!(
                "memory budget exhausted: the history in the search's form needs {} MiB, \
                 more than the {} MiB budget (raise --memory-limit)",
                needed.div_ceil(1 << 20),
                opts.memory_limit >> 20
            ),
        }],
        not_decided_keys: 0,
        all_keys: opts.all_keys,
        counts: None,
        txn: None,
    }
}

/// Histories with at most this many operations to place are checked on the calling
/// thread, whatever `threads` says.
pub const SMALL_HISTORY: usize = 1000;

/// Checks `history` against `model`.
pub fn check<M: Model>(
    model: &M,
    history: &History,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| started + t);
    let memory = MemoryBudget::new(opts.memory_limit);
    // The history in the searches' form is held for the whole check, so it counts
    // first, before it is built: sized per key, exactly.
    let mut counts: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for op in history.ops.iter().filter(|o| o.outcome != Outcome::Fail) {
        *counts.entry(op.key.as_deref()).or_default() += 1;
    }
    let per_op = std::mem::size_of::<SearchOp<M::Op>>() + std::mem::size_of::<&Operation>();
    let compiled_bytes = counts.values().sum::<usize>().saturating_mul(per_op)
        + counts.len() * (std::mem::size_of::<Part<'_, M::Op>>() + 64);
    let Some(_held) = memory.hold(compiled_bytes) else {
        // Still say which operation is malformed, if one is: that is an error, not
        // a matter of budget.
        for op in history.ops.iter().filter(|o| o.outcome != Outcome::Fail) {
            compile(model, op)?;
        }
        return Ok(over_budget(
            model,
            history,
            opts,
            counts.len(),
            compiled_bytes,
            started,
        ));
    };
    let mut parts: BTreeMap<Option<String>, Part<'_, M::Op>> = BTreeMap::new();
    let mut checked_ops = 0;
    for op in &history.ops {
        if op.outcome == Outcome::Fail {
            continue;
        }
        let compiled = compile(model, op)?;
        let part = parts.entry(op.key.clone()).or_insert_with(|| {
            let n = counts[&op.key.as_deref()];
            Part {
                key: op.key.clone(),
                ops: Vec::with_capacity(n),
                source: Vec::with_capacity(n),
            }
        });
        if let Some(c) = compiled {
            checked_ops += 1;
            part.ops.push(SearchOp {
                id: op.id,
                op: c,
                call: op.call,
                ret: op.ret,
            });
            part.source.push(op);
        }
    }
    let mut parts: Vec<Part<'_, M::Op>> = parts.into_values().collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.ops.len()));

    let next = AtomicUsize::new(0);
    let refuted = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, KeyOutcome)>> = Mutex::new(Vec::new());
    // A small history is searched in microseconds, key after key: starting threads
    // would cost more than the search (issue 32, item 4; BENCHMARKS.md).
    let threads = if checked_ops <= SMALL_HISTORY {
        1
    } else {
        opts.threads.clamp(1, parts.len().max(1))
    };
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(part) = parts.get(i) else { break };
        let outcome = if refuted.load(Ordering::Relaxed) {
            KeyOutcome::NotDecided(0)
        } else {
            check_part(model, part, opts, deadline, &memory, &refuted)
        };
        results
            .lock()
            .expect("no panics while holding it")
            .push((i, outcome));
    };
    if threads == 1 {
        // One key, one thread or a small history: no thread to start.
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    let mut results = results.into_inner().expect("workers finished");
    results.sort_by_key(|(i, _)| *i);

    let mut report = CheckReport {
        verdict: Verdict::Valid,
        model: model.name().to_string(),
        ops: history.ops.len(),
        checked_ops,
        keys: parts.len(),
        valid_keys: 0,
        invalid_keys: 0,
        unknown_keys: 0,
        configurations: 0,
        elapsed_ms: 0.0,
        failures: Vec::new(),
        unknown: Vec::new(),
        not_decided_keys: 0,
        all_keys: opts.all_keys,
        counts: None,
        txn: None,
    };
    for (_, outcome) in results {
        match outcome {
            KeyOutcome::Valid(c) => {
                report.valid_keys += 1;
                report.configurations += c;
            }
            KeyOutcome::Invalid(f, c) => {
                report.invalid_keys += 1;
                report.configurations += c;
                report.failures.push(*f);
            }
            KeyOutcome::Unknown(u, c) => {
                report.unknown_keys += 1;
                report.configurations += c;
                report.unknown.push(u);
            }
            KeyOutcome::NotDecided(c) => {
                report.not_decided_keys += 1;
                report.configurations += c;
            }
        }
    }
    report.failures.sort_by_key(|f| f.op.call);
    report.verdict = if report.invalid_keys > 0 {
        Verdict::Invalid
    } else if report.unknown_keys > 0 {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(report)
}
