//! The verdict rules: when a run's checker verdict stands, and when it is downgraded to
//! unknown because a "valid" would prove nothing. Pure, so every rule has its own test.

use checker::check::{CheckReport, Verdict};
use checker::fault::{FaultEdge, FaultKind};
use checker::record::{FaultDetails, FinalReads};
use checker::{Func, History, Outcome};

/// A run's verdict and, when it is unknown, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: Option<String>,
}

/// What the rules look at besides the checker's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Operations that completed ok (reads and writes).
    pub ok_ops: u64,
    /// Writes (anything but a read) that completed ok.
    pub ok_writes: u64,
    /// `--min-ok`.
    pub min_ok: u64,
    /// Final reads after healing: how many keys were read, and how many could not be.
    pub final_reads: FinalReads,
    /// Nodes that exited on their own after a power loss had undone changes of names on
    /// their disks (creates, removes, renames whose folder was never fsynced), with how
    /// many: why a cluster may not come back, said in its words.
    pub crashed_after_lost_names: Vec<(u64, u64)>,
}

impl Evidence {
    /// What `history` shows, judged against `--min-ok`.
    pub fn of(history: &History, min_ok: u64, final_reads: FinalReads) -> Evidence {
        let ok = history.ops.iter().filter(|o| o.outcome == Outcome::Ok);
        Evidence {
            ok_ops: ok.clone().count() as u64,
            // A function the models do not know counts as a write: never a reason to doubt.
            ok_writes: ok.filter(|o| o.func().is_none_or(Func::is_write)).count() as u64,
            min_ok,
            final_reads,
            crashed_after_lost_names: crashed_after_lost_names(history),
        }
    }
}

/// See [`Evidence::crashed_after_lost_names`].
fn crashed_after_lost_names(history: &History) -> Vec<(u64, u64)> {
    let mut undone: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut crashed = Vec::new();
    for e in &history.nemesis {
        let details =
            || serde_json::from_value::<FaultDetails>(e.value.clone()).unwrap_or_default();
        match e.fault {
            Some(FaultEdge::Start(FaultKind::LoseUnsynced)) => {
                for l in details().disk {
                    *undone.entry(l.node).or_default() += l.names_undone;
                }
            }
            Some(FaultEdge::Crash) => {
                for n in details().nodes {
                    let names = undone.get(&n).copied().unwrap_or(0);
                    if names > 0 && !crashed.iter().any(|&(c, _)| c == n) {
                        crashed.push((n, names));
                    }
                }
            }
            _ => {}
        }
    }
    crashed
}

/// Invalid always stands: one anomaly is proof whatever else happened. Unknown keeps the
/// checker's reason. Valid stands only with at least `min_ok` ok operations and at least
/// one ok write, since reads of a never-written register agree with any history.
pub fn judge(report: &CheckReport, e: Evidence) -> Judgement {
    let unknown = |reason: String| Judgement {
        verdict: Verdict::Unknown,
        reason: Some(reason),
    };
    match report.verdict {
        Verdict::Invalid => Judgement {
            verdict: Verdict::Invalid,
            reason: None,
        },
        Verdict::Unknown => Judgement {
            verdict: Verdict::Unknown,
            reason: report.unknown.first().map(|u| u.reason.clone()),
        },
        Verdict::Valid if e.ok_ops < e.min_ok => unknown(format!(
            "only {} operations succeeded (--min-ok {})",
            e.ok_ops, e.min_ok
        )),
        Verdict::Valid if e.ok_writes == 0 => unknown(
            "no write succeeded, so the reads prove nothing (see the errors in history.jsonl)"
                .into(),
        ),
        Verdict::Valid if e.final_reads.ok == 0 && e.final_reads.failed > 0 => {
            let mut why = format!(
                "the cluster did not recover after healing: none of the {} final reads \
                 succeeded, so writes it lost cannot be seen (see the nodes' logs)",
                e.final_reads.failed
            );
            if !e.crashed_after_lost_names.is_empty() {
                let nodes: Vec<String> = e
                    .crashed_after_lost_names
                    .iter()
                    .map(|(n, names)| format!("node {n} ({names})"))
                    .collect();
                why += &format!(
                    "; {} exited on their own after power losses undid creates, removes \
                     or renames never made durable by a folder fsync: a server must restart \
                     on what it fsynced",
                    nodes.join(", ")
                );
            }
            unknown(why)
        }
        Verdict::Valid => Judgement {
            verdict: Verdict::Valid,
            reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use checker::check::{check, CheckOptions};
    use checker::model::Register;
    use checker::HistoryBuilder;
    use serde_json::json;

    use super::*;

    fn report(stale: bool) -> CheckReport {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "write", None, json!("1"), 1)
            .ok(0, "write", json!("1"), 2);
        let read = if stale { json!("0") } else { json!("1") };
        b.invoke(1, "read", None, json!(null), 3)
            .ok(1, "read", read, 4);
        check(&Register::new(true), &b.build(), &CheckOptions::default()).unwrap()
    }

    fn evidence(ok_ops: u64, ok_writes: u64, min_ok: u64) -> Evidence {
        Evidence {
            ok_ops,
            ok_writes,
            min_ok,
            final_reads: FinalReads { ok: 5, failed: 0 },
            crashed_after_lost_names: Vec::new(),
        }
    }

    #[test]
    fn a_cluster_that_never_recovered_makes_valid_unknown() {
        let mut e = evidence(100, 10, 50);
        e.final_reads = FinalReads { ok: 0, failed: 5 };
        let j = judge(&report(false), e.clone());
        assert_eq!(j.verdict, Verdict::Unknown);
        let why = j.reason.unwrap();
        assert!(why.contains("did not recover"));
        assert!(!why.contains("folder fsync"), "{why}");
        // Nodes that died after power losses undid names: said.
        let mut lost = e.clone();
        lost.crashed_after_lost_names = vec![(1, 3), (2, 4)];
        let why = judge(&report(false), lost).reason.unwrap();
        assert!(
            why.contains("node 1 (3), node 2 (4) exited on their own"),
            "{why}"
        );
        // Some keys read back: the lost writes on those would show.
        e.final_reads = FinalReads { ok: 1, failed: 4 };
        assert_eq!(judge(&report(false), e).verdict, Verdict::Valid);
    }

    #[test]
    fn a_valid_run_with_enough_evidence_is_valid() {
        let j = judge(&report(false), evidence(100, 10, 50));
        assert_eq!((j.verdict, j.reason), (Verdict::Valid, None));
    }

    #[test]
    fn too_few_ok_operations_make_valid_unknown() {
        let j = judge(&report(false), evidence(49, 10, 50));
        assert_eq!(j.verdict, Verdict::Unknown);
        assert!(j.reason.unwrap().contains("--min-ok 50"));
    }

    #[test]
    fn no_ok_write_makes_valid_unknown() {
        let j = judge(&report(false), evidence(100, 0, 50));
        assert_eq!(j.verdict, Verdict::Unknown);
        assert!(j.reason.unwrap().contains("no write succeeded"));
    }

    #[test]
    fn invalid_is_never_downgraded() {
        let j = judge(&report(true), evidence(0, 0, 50));
        assert_eq!((j.verdict, j.reason), (Verdict::Invalid, None));
    }

    #[test]
    fn unknown_keeps_the_checkers_reason() {
        let mut r = report(false);
        r.verdict = Verdict::Unknown;
        r.unknown.push(checker::check::KeyUnknown {
            key: None,
            ops: 2,
            reason: "the search ran out of time".into(),
        });
        let j = judge(&r, evidence(100, 10, 50));
        assert_eq!(j.verdict, Verdict::Unknown);
        assert_eq!(j.reason.as_deref(), Some("the search ran out of time"));
    }
}
