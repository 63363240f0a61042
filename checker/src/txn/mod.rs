//! The transaction checker: isolation anomalies in histories of multi-key transactions
//! (list-append and rw-register), found as Elle finds them (Kingsbury & Alvaro, VLDB
//! 2020) and judged against a consistency model.
//!
//! - [`parse`]: transactions out of a history (Elle's micro-operation form).
//! - [`infer`]: version orders and the dependency graph; anomalies that are not cycles.
//! - [`graph`]: the graph, its strongly connected components and paths.
//! - [`cycles`]: cycles found worst first, named (G0 … G2-item, process and real-time
//!   variants) and explained edge by edge.
//! - [`models`]: the anomalies and the consistency models that forbid them.
//! - [`generate`]: histories serializable by construction, and ways to break them.
//! - [`reference`]: a brute-force judge over every serial order, for the tests.
//!
//! Unlike the linearizability search, nothing here is exponential but the optional
//! G-single search, which runs under a step budget; a search cut short leaves the models
//! it would decide undecided, never valid.

pub mod cycles;
pub mod generate;
pub mod graph;
pub mod infer;
pub mod models;
pub mod parse;
pub mod reference;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::verdict::Verdict;
pub use models::{AnomalyKind, ConsistencyModel};
pub use parse::{transactions, Mop, Seen, Txn, TxnError, TxnKind, Txns};

/// How to check.
#[derive(Debug, Clone)]
pub struct TxnOptions {
    /// The model the verdict is about.
    pub model: ConsistencyModel,
    /// Edges the G-single search may look at before giving up (the rest of the check is
    /// linear and always finishes).
    pub steps: u64,
    pub time_limit: Option<Duration>,
    /// Bytes the dependency graph may take (the transactions themselves, like a history
    /// read for the linearizability checker, are not counted). Past it the cycles are
    /// not searched and only anomalies found without them can decide the verdict.
    pub memory_limit: usize,
    /// Anomalies explained per kind in the report (all are counted).
    pub examples: usize,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            model: ConsistencyModel::StrictSerializable,
            steps: 200_000_000,
            time_limit: None,
            memory_limit: 1 << 30,
            examples: 8,
        }
    }
}

/// One anomaly, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The operations (history ids) it involves, in the order the explanation walks.
    pub ops: Vec<usize>,
    /// Their lines in the history file (0 when built in memory).
    pub lines: Vec<usize>,
    /// One line per step; for a cycle, one per edge.
    pub explanation: Vec<String>,
    /// For a cycle: the dependency from each operation in `ops` to the next, the last
    /// back to the first (what the report draws); empty for other anomalies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<graph::Dependency>,
}

/// What the transaction checker concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnReport {
    /// About `model`: invalid if an anomaly it forbids was found, unknown if none was
    /// but the search that would decide it was cut short.
    pub verdict: Verdict,
    pub model: ConsistencyModel,
    /// `list-append` or `rw-register`.
    pub workload: String,
    pub txns: usize,
    /// Keys the transactions touched.
    pub keys: usize,
    /// Transactions known to have committed: the graph's nodes.
    pub committed: usize,
    pub edges: usize,
    /// How many of each anomaly kind were found (cycles count once per strongly
    /// connected component).
    pub counts: BTreeMap<AnomalyKind, usize>,
    /// Up to `examples` per kind, worst kind first.
    pub anomalies: Vec<Anomaly>,
    /// The weakest models the anomalies break (every stronger one is broken too).
    pub weakest_broken: Vec<ConsistencyModel>,
    /// The strongest models the history still satisfies (every weaker one too).
    pub strongest_satisfied: Vec<ConsistencyModel>,
    /// Models the budget left undecided.
    pub undecided: Vec<ConsistencyModel>,
    /// Why the verdict is unknown when no budget ran out (nothing committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub elapsed_ms: f64,
}

impl TxnReport {
    /// One line for a terminal.
    pub fn summary(&self) -> String {
        self.summary_of(None)
    }

    /// One line for a terminal, naming `source` (the history file) where it gives the
    /// line of the worst anomaly's first transaction.
    pub fn summary_of(&self, source: Option<&str>) -> String {
        let mut s = self.headline();
        if let Some(a) = self.anomalies.first() {
            let file = source.map_or(String::new(), |f| format!("{f} "));
            s += &format!(
                "; worst: {} through T{} ({file}line {})",
                a.kind,
                a.ops.first().copied().unwrap_or(0),
                a.lines.first().copied().unwrap_or(0)
            );
        }
        s
    }

    /// The counts, models broken and kept, in one line.
    pub fn headline(&self) -> String {
        let models =
            |ms: &[ConsistencyModel]| ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
        let mut s = format!(
            "{}: {} transactions ({} committed), {} edges, {} checked for {}, {:.0} ms",
            self.verdict.as_str().to_uppercase(),
            self.txns,
            self.committed,
            self.edges,
            self.workload,
            self.model,
            self.elapsed_ms
        );
        if !self.counts.is_empty() {
            let found: Vec<String> = self
                .counts
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            s += &format!("; found {}", found.join(", "));
            s += &format!("; breaks {}", models(&self.weakest_broken));
        }
        if !self.strongest_satisfied.is_empty() {
            s += &format!("; satisfies {}", models(&self.strongest_satisfied));
        }
        if !self.undecided.is_empty() {
            s += &format!("; undecided (budget): {}", models(&self.undecided));
        }
        if let Some(r) = &self.reason {
            s += &format!("; {r}");
        }
        s
    }
}

/// Checks the transactions of `history` against `opts.model`.
pub fn check_txn(history: &History, opts: &TxnOptions) -> Result<TxnReport, TxnError> {
    let started = Instant::now();
    let txns = transactions(history)?;
    check_txns(&txns, opts, started)
}

/// Checks transactions already read (the bench times this part apart from parsing).
pub fn check_txns(txns: &Txns, opts: &TxnOptions, started: Instant) -> Result<TxnReport, TxnError> {
    let mut inferred = infer::infer(txns, opts.memory_limit)?;
    let deadline = opts.time_limit.map(|t| started + t);
    let cycles = match inferred.over_budget {
        None => cycles::find(txns, &inferred, opts.steps, deadline),
        Some(_) => cycles::CycleResult::none(false),
    };
    let mut found = std::mem::take(&mut inferred.found);
    found.extend(cycles.found);
    found.sort_by_key(|f| f.kind.severity());
    let mut counts: BTreeMap<AnomalyKind, usize> = BTreeMap::new();
    for k in found
        .iter()
        .map(|f| f.kind)
        .chain(cycles.unnamed.iter().copied())
    {
        *counts.entry(k).or_default() += 1;
    }
    let mut anomalies = Vec::new();
    let mut shown: BTreeMap<AnomalyKind, usize> = BTreeMap::new();
    for f in &found {
        let n = shown.entry(f.kind).or_default();
        if *n >= opts.examples {
            continue;
        }
        *n += 1;
        let ts: Vec<&Txn> = f.txns.iter().map(|t| &txns.txns[*t as usize]).collect();
        anomalies.push(Anomaly {
            kind: f.kind,
            ops: ts.iter().map(|t| t.op).collect(),
            lines: ts.iter().map(|t| t.line).collect(),
            explanation: f.why.clone(),
            edges: f.edges.clone(),
        });
    }
    let kinds: Vec<AnomalyKind> = counts.keys().copied().collect();
    // Only snapshot isolation rests on the budgeted search: it is undecided when that
    // search was cut short and nothing else broke it.
    let undecided: Vec<ConsistencyModel> = if inferred.over_budget.is_some() {
        // No cycle was looked for: every model a cycle could break is undecided, unless
        // an anomaly found without the graph breaks it already.
        ConsistencyModel::ALL
            .into_iter()
            .filter(|m| !kinds.iter().any(|k| m.forbids(*k)))
            .collect()
    } else if !cycles.g_single_complete
        && !kinds
            .iter()
            .any(|k| ConsistencyModel::SnapshotIsolation.forbids(*k))
    {
        vec![ConsistencyModel::SnapshotIsolation]
    } else {
        Vec::new()
    };
    let (weakest_broken, strongest_satisfied) = models::judge(&kinds, &undecided);
    let mut reason = inferred.over_budget.clone();
    let verdict = if kinds.iter().any(|k| opts.model.forbids(*k)) {
        Verdict::Invalid
    } else if undecided.iter().any(|m| opts.model.implies(*m)) {
        Verdict::Unknown
    } else if inferred.nodes.is_empty() {
        // Nothing committed says nothing: a gate must not pass on it.
        reason = Some(format!(
            "no transaction is known to have committed ({} in the history): nothing was checked",
            txns.txns.len()
        ));
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    Ok(TxnReport {
        verdict,
        model: opts.model,
        workload: txns.kind.name().to_string(),
        txns: txns.txns.len(),
        keys: txns.keys.len(),
        committed: inferred.nodes.len(),
        edges: inferred.graph.edges(),
        counts,
        anomalies,
        weakest_broken,
        strongest_satisfied,
        undecided,
        reason,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}
