//! What a run leaves behind: `results.json` (a [`RunResults`]) and the lines printed at
//! the end, both from the same record so they always agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use checker::check::CheckReport;
use checker::record::{Counts, FailFast, FaultEntry, FinalReads, LatencyMs, PhaseTime, RunResults};
use tokio::time::Instant;
use workloads::recorder::{ok_latencies, Sample};

use super::verdict::Judgement;
use crate::store::RunDir;

/// Phase 5: results.json, the report and the store's index; returns the report's path
/// (a report that cannot be written is a warning: the results stand without it).
pub fn write(run: &RunDir, store: &Path, results: &RunResults) -> anyhow::Result<Option<PathBuf>> {
    run.write_json(&run.results(), results)?;
    let report = match reports::build(&run.path) {
        Ok(w) => Some(w.report),
        Err(e) => {
            crate::console::say!("warning: could not write the report: {e}");
            None
        }
    };
    if let Err(e) = reports::index::build(store) {
        crate::console::say!("warning: could not rebuild the run index: {e}");
    }
    Ok(report)
}

/// Seconds after the time limit at which each phase ended.
pub struct Tail {
    pub limit_at: Instant,
    pub phases: Vec<PhaseTime>,
}

impl Tail {
    pub fn mark(&mut self, phase: &str) {
        let s = Instant::now()
            .saturating_duration_since(self.limit_at)
            .as_secs_f64();
        self.phases.push(PhaseTime {
            phase: phase.into(),
            s,
        });
    }
}

/// Everything `results.json` is made of.
pub struct Facts {
    pub seed: u64,
    pub command: String,
    pub counts: Counts,
    /// Seconds the clients ran.
    pub load_secs: f64,
    pub samples: Vec<Sample>,
    pub faults: Vec<FaultEntry>,
    pub final_reads: FinalReads,
    pub warnings: Vec<String>,
    pub after_time_limit: Vec<PhaseTime>,
    /// What `--fail-fast`'s online checker found, if it stopped the load.
    pub fail_fast: Option<FailFast>,
}

/// Nanoseconds as milliseconds with two decimals.
fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| (n as f64 / 1e4).round() / 100.0)
}

pub fn results(facts: Facts, report: CheckReport, judged: Judgement) -> RunResults {
    let sorted = ok_latencies(&facts.samples);
    let q = |q: f64| ms(checker::record::quantile_of_sorted(&sorted, q));
    RunResults {
        verdict: judged.verdict,
        reason: judged.reason,
        seed: facts.seed,
        command: facts.command,
        counts: facts.counts,
        fail_reasons: facts.samples.iter().filter_map(|s| s.reason).fold(
            BTreeMap::new(),
            |mut m, r| {
                *m.entry(r.label().to_string()).or_insert(0) += 1;
                m
            },
        ),
        duration_s: facts.load_secs,
        throughput_ok_per_s: facts.counts.ok as f64 / facts.load_secs.max(1e-9),
        latency_ms: LatencyMs {
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            max: q(1.0),
        },
        faults: facts.faults,
        final_reads: facts.final_reads,
        warnings: facts.warnings,
        after_time_limit_s: facts.after_time_limit,
        checker_summary: report.summary_of(Some("history.jsonl")),
        fail_fast: facts.fail_fast,
        checker: report,
    }
}

/// The closing lines on standard output. `phases` is `after_time_limit_s` and what came
/// after results.json was written (the report).
pub fn print(
    r: &RunResults,
    planned: usize,
    phases: &[PhaseTime],
    dir: &Path,
    report: Option<&Path>,
) {
    let fmt_ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    let why = checker::record::fail_reasons_phrase(&r.fail_reasons);
    let why = if why.is_empty() {
        why
    } else {
        format!(" ({why})")
    };
    if let Some(f) = &r.fail_fast {
        crate::console::tell!(
            "fail-fast: the online checker found an anomaly on key {} {:.2} s after the \
             operation returned, and stopped the load at {:.1} s",
            f.key,
            (f.detected_s - f.returned_s).max(0.0),
            r.duration_s
        );
    }
    crate::console::tell!(
        "ops: {} ok, {} fail{why}, {} info in {:.1} s ({:.0} ok/s); latency p50 {}, p99 {}",
        r.counts.ok,
        r.counts.fail,
        r.counts.info,
        r.duration_s,
        r.throughput_ok_per_s,
        fmt_ms(r.latency_ms.p50),
        fmt_ms(r.latency_ms.p99)
    );
    crate::console::tell!("faults: {}", faults_line(&r.faults, planned));
    for w in &r.warnings {
        crate::console::tell!("warning: {}", w.lines().next().unwrap_or(""));
    }
    crate::console::tell!("checker: {}", r.checker_summary);
    let phases: Vec<String> = phases
        .iter()
        .map(|p| format!("{} {:.2}", p.phase, p.s))
        .collect();
    crate::console::tell!("seconds after the time limit: {}", phases.join(", "));
    let reason = r
        .reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    crate::console::tell!("verdict: {}{reason}", r.verdict.as_str().to_uppercase());
    crate::console::tell!("results: {}", dir.display());
    if let Some(p) = report {
        crate::console::tell!("report:  {}", p.display());
    }
    crate::console::tell!("replay:  {}", r.command);
}

/// "1 fault", "3 faults".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// After `--test-count N`: one line per run and the tally, so the runs need no scrolling
/// back.
pub fn print_runs(runs: &[super::junit::RunSummary], count: u32) {
    crate::console::tell!("=== {} of {count} runs done", runs.len());
    for r in runs {
        let verdict = match r.code {
            crate::exit::VALID => "valid",
            crate::exit::INVALID => "INVALID",
            crate::exit::UNKNOWN => "unknown",
            _ => "error",
        };
        let dir = r
            .dir
            .as_ref()
            .map_or(String::new(), |d| format!("  {}", d.display()));
        crate::console::tell!("seed {:<20} {verdict:<8} {:>6.1} s{dir}", r.seed, r.seconds);
    }
    let tally = |code: u8| runs.iter().filter(|r| r.code == code).count();
    crate::console::tell!(
        "{} valid, {} invalid, {} unknown, {} error{}",
        tally(crate::exit::VALID),
        tally(crate::exit::INVALID),
        tally(crate::exit::UNKNOWN),
        tally(crate::exit::ERROR),
        if runs.len() < count as usize {
            " (stopped at the first invalid run or error)"
        } else {
            ""
        }
    );
}

/// How many faults ran, how many of each kind, the first few (runner.log has them all),
/// and why any planned fault did not run: bounded, however long the run.
fn faults_line(faults: &[checker::record::FaultEntry], planned: usize) -> String {
    const SHOWN: usize = 8;
    let mut line = faults.len().to_string();
    if faults.is_empty() {
        return line;
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in faults {
        *kinds
            .entry(f.kind.map_or("other", |k| k.name()))
            .or_insert(0) += 1;
    }
    let mut by_count: Vec<(&str, usize)> = kinds.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let counts: Vec<String> = by_count.iter().map(|(k, n)| format!("{k} {n}")).collect();
    line += &format!(" ({})", counts.join(", "));
    let first: Vec<String> = faults
        .iter()
        .take(SHOWN)
        .map(|f| format!("{:.1}s {}", f.start_s, f.fault))
        .collect();
    line += &format!(": {}", first.join(", "));
    if faults.len() > SHOWN {
        line += &format!(", and {} more in runner.log", faults.len() - SHOWN);
    }
    if planned > faults.len() {
        line += &format!(
            "; {} planned did not start: the load ended first (a restart that takes longer \
             than planned pushes the rest of its layer back)",
            planned - faults.len()
        );
    }
    line
}

#[cfg(test)]
mod faults_line_tests {
    use super::*;
    use checker::record::FaultKind;

    #[test]
    fn the_faults_line_is_bounded_and_explains_what_did_not_run() {
        let entry = |i: usize, what: &str| checker::record::FaultEntry {
            kind: Some(match what.split_whitespace().next() {
                Some("kill") => FaultKind::Kill,
                _ => FaultKind::Partition,
            }),
            fault: what.to_string(),
            start_s: i as f64,
            end_s: i as f64 + 0.5,
            value: Default::default(),
        };
        let faults: Vec<_> = (0..300)
            .map(|i| {
                entry(
                    i,
                    if i % 3 == 0 {
                        "kill random [2]"
                    } else {
                        "partition halves [1] | [2, 3] (cut)"
                    },
                )
            })
            .collect();
        let line = faults_line(&faults, 301);
        assert!(
            line.starts_with("300 (partition 200, kill 100): 0.0s kill random [2]"),
            "{line}"
        );
        assert!(line.contains("and 292 more in runner.log"), "{line}");
        assert!(line.contains("1 planned did not start"), "{line}");
        assert!(line.len() < 800, "{}", line.len());
        assert_eq!(faults_line(&[], 0), "0");
    }
}
