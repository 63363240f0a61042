//! One hand-made history per anomaly the transaction checker names: each must be found,
//! named, and judged against the right models; and the valid look-alikes must pass.

use checker::txn::{check_txn, AnomalyKind, ConsistencyModel, TxnOptions, TxnReport};
use checker::{HistoryBuilder, Verdict};
use serde_json::{json, Value};

/// (process, outcome, micro-ops as completed, call, ret). The invocation carries the
/// same micro-ops with reads blanked; "info" leaves the transaction open.
type T = (i64, &'static str, Value, u64, u64);

fn blank_reads(v: &Value) -> Value {
    Value::Array(
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let m = m.as_array().unwrap();
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    Value::Array(m.clone())
                }
            })
            .collect(),
    )
}

fn check(ts: &[T], model: ConsistencyModel) -> TxnReport {
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        events.push((t.3, false, i));
        if t.1 != "info" {
            events.push((t.4, true, i));
        }
    }
    // At equal times completions go first: a process's next invocation may touch its
    // last completion.
    events.sort_by_key(|e| (e.0, !e.1, e.2));
    let mut b = HistoryBuilder::new();
    for (time, done, i) in events {
        let (p, outcome, mops, _, _) = &ts[i];
        if !done {
            b.invoke(*p, "txn", None, blank_reads(mops), time);
        } else if *outcome == "ok" {
            b.ok(*p, "txn", mops.clone(), time);
        } else {
            b.fail(*p, "txn", blank_reads(mops), time);
        }
    }
    check_txn(
        &b.build(),
        &TxnOptions {
            model,
            ..TxnOptions::default()
        },
    )
    .unwrap()
}

fn strict(ts: &[T]) -> TxnReport {
    check(ts, ConsistencyModel::StrictSerializable)
}

fn has(r: &TxnReport, kind: AnomalyKind) -> bool {
    r.counts.contains_key(&kind)
}

#[test]
fn g0_write_cycle() {
    // x's order says T0 before T1, y's says T1 before T0.
    let r = strict(&[
        (
            0,
            "ok",
            json!([["append", "x", 1], ["append", "y", 1]]),
            0,
            100,
        ),
        (
            1,
            "ok",
            json!([["append", "x", 2], ["append", "y", 2]]),
            0,
            100,
        ),
        (
            2,
            "ok",
            json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]]),
            200,
            300,
        ),
    ]);
    assert!(has(&r, AnomalyKind::G0), "{}", r.summary());
    assert_eq!(r.weakest_broken, vec![ConsistencyModel::ReadUncommitted]);
    let g0 = r
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::G0)
        .unwrap();
    assert_eq!(g0.explanation.len(), 2, "{:?}", g0.explanation);
    assert!(g0.explanation[1].ends_with(": G0"), "{:?}", g0.explanation);
}

#[test]
fn g1a_aborted_read() {
    let r = strict(&[
        (0, "fail", json!([["append", "x", 1]]), 0, 10),
        (1, "ok", json!([["r", "x", [1]]]), 20, 30),
    ]);
    assert!(has(&r, AnomalyKind::G1a), "{}", r.summary());
    assert_eq!(r.weakest_broken, vec![ConsistencyModel::ReadCommitted]);
    assert_eq!(
        r.strongest_satisfied,
        vec![ConsistencyModel::ReadUncommitted]
    );
}

#[test]
fn g1b_intermediate_read() {
    let r = strict(&[
        (
            0,
            "ok",
            json!([["append", "x", 1], ["append", "x", 2]]),
            0,
            100,
        ),
        (1, "ok", json!([["r", "x", [1]]]), 0, 100),
        (2, "ok", json!([["r", "x", [1, 2]]]), 200, 300),
    ]);
    assert!(has(&r, AnomalyKind::G1b), "{}", r.summary());
}

#[test]
fn g1c_circular_information_flow() {
    let r = strict(&[
        (
            0,
            "ok",
            json!([["append", "x", 1], ["r", "y", [1]]]),
            0,
            100,
        ),
        (
            1,
            "ok",
            json!([["append", "y", 1], ["r", "x", [1]]]),
            0,
            100,
        ),
    ]);
    assert!(has(&r, AnomalyKind::G1c), "{}", r.summary());
    assert_eq!(r.verdict, Verdict::Invalid);
    let rc = check(
        &[
            (
                0,
                "ok",
                json!([["append", "x", 1], ["r", "y", [1]]]),
                0,
                100,
            ),
            (
                1,
                "ok",
                json!([["append", "y", 1], ["r", "x", [1]]]),
                0,
                100,
            ),
        ],
        ConsistencyModel::ReadCommitted,
    );
    assert_eq!(rc.verdict, Verdict::Invalid);
}

#[test]
fn g_single_read_skew_breaks_snapshot_isolation() {
    // T1 saw T0's append to y but not its append to x.
    let r = strict(&[
        (
            0,
            "ok",
            json!([["append", "x", 1], ["append", "y", 1]]),
            0,
            100,
        ),
        (1, "ok", json!([["r", "x", []], ["r", "y", [1]]]), 0, 100),
    ]);
    assert!(has(&r, AnomalyKind::GSingle), "{}", r.summary());
    assert_eq!(r.weakest_broken, vec![ConsistencyModel::SnapshotIsolation]);
    assert_eq!(r.strongest_satisfied, vec![ConsistencyModel::ReadCommitted]);
    let a = &r.anomalies[0];
    assert!(
        a.explanation
            .iter()
            .any(|l| l.contains("without 1") && l.contains("rw")),
        "{:?}",
        a.explanation
    );
}

#[test]
fn g2_item_write_skew_is_allowed_by_snapshot_isolation() {
    let ts = [
        (0, "ok", json!([["r", "x", []], ["append", "y", 1]]), 0, 100),
        (1, "ok", json!([["r", "y", []], ["append", "x", 1]]), 0, 100),
        (2, "ok", json!([["r", "x", [1]], ["r", "y", [1]]]), 200, 300),
    ];
    let r = strict(&ts);
    assert!(has(&r, AnomalyKind::G2Item), "{}", r.summary());
    assert_eq!(r.weakest_broken, vec![ConsistencyModel::Serializable]);
    assert_eq!(
        r.strongest_satisfied,
        vec![ConsistencyModel::SnapshotIsolation]
    );
    assert_eq!(
        check(&ts, ConsistencyModel::SnapshotIsolation).verdict,
        Verdict::Valid
    );
    assert_eq!(
        check(&ts, ConsistencyModel::Serializable).verdict,
        Verdict::Invalid
    );
}

#[test]
fn lost_update() {
    let r = strict(&[
        (0, "ok", json!([["r", "x", []], ["append", "x", 1]]), 0, 100),
        (1, "ok", json!([["r", "x", []], ["append", "x", 2]]), 0, 100),
        (2, "ok", json!([["r", "x", [1, 2]]]), 200, 300),
    ]);
    assert!(has(&r, AnomalyKind::LostUpdate), "{}", r.summary());
    assert!(has(&r, AnomalyKind::GSingle), "{}", r.summary());
}

#[test]
fn internal_inconsistency() {
    let r = strict(&[(0, "ok", json!([["append", "x", 1], ["r", "x", []]]), 0, 10)]);
    assert!(has(&r, AnomalyKind::Internal), "{}", r.summary());
    assert_eq!(r.weakest_broken, vec![ConsistencyModel::ReadUncommitted]);
    // Reading one's own appends on top of what was there is fine.
    let r = strict(&[
        (0, "ok", json!([["append", "x", 1]]), 0, 10),
        (
            1,
            "ok",
            json!([["append", "x", 2], ["r", "x", [1, 2]]]),
            20,
            30,
        ),
    ]);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
}

#[test]
fn incompatible_orders_duplicates_and_garbage() {
    let r = strict(&[
        (0, "ok", json!([["append", "x", 1]]), 0, 10),
        (1, "ok", json!([["append", "x", 2]]), 0, 10),
        (2, "ok", json!([["r", "x", [1, 2]]]), 20, 30),
        (3, "ok", json!([["r", "x", [2, 1]]]), 20, 30),
    ]);
    assert!(has(&r, AnomalyKind::IncompatibleOrder), "{}", r.summary());
    let r = strict(&[
        (0, "ok", json!([["append", "x", 1]]), 0, 10),
        (1, "ok", json!([["r", "x", [1, 1]]]), 20, 30),
    ]);
    assert!(has(&r, AnomalyKind::DuplicateElements), "{}", r.summary());
    let r = strict(&[(1, "ok", json!([["r", "x", [9]]]), 20, 30)]);
    assert!(has(&r, AnomalyKind::GarbageRead), "{}", r.summary());
}

#[test]
fn a_stale_read_after_a_completed_append_is_g_single_realtime() {
    let ts = [
        (0, "ok", json!([["append", "x", 1]]), 0, 10),
        (1, "ok", json!([["r", "x", []]]), 20, 30),
    ];
    let r = strict(&ts);
    assert!(has(&r, AnomalyKind::GSingleRealtime), "{}", r.summary());
    assert_eq!(
        r.strongest_satisfied,
        vec![ConsistencyModel::StrongSessionSerializable]
    );
    assert_eq!(
        check(&ts, ConsistencyModel::Serializable).verdict,
        Verdict::Valid
    );
    // Overlapping, the same read is fine.
    let r = strict(&[
        (0, "ok", json!([["append", "x", 1]]), 0, 25),
        (1, "ok", json!([["r", "x", []]]), 20, 30),
    ]);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
}

#[test]
fn a_process_that_does_not_see_its_own_append_is_g_single_process() {
    // The two touch in time (concurrent by the clock), but one process ran them in turn.
    let ts = [
        (0, "ok", json!([["append", "x", 1]]), 0, 10),
        (0, "ok", json!([["r", "x", []]]), 10, 20),
    ];
    let r = check(&ts, ConsistencyModel::StrongSessionSerializable);
    assert!(has(&r, AnomalyKind::GSingleProcess), "{}", r.summary());
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(
        check(&ts, ConsistencyModel::Serializable).verdict,
        Verdict::Valid
    );
}

#[test]
fn an_info_append_that_was_read_took_effect() {
    let r = strict(&[
        (
            0,
            "info",
            json!([["append", "x", 1], ["append", "y", 1]]),
            0,
            0,
        ),
        (1, "ok", json!([["r", "x", [1]], ["r", "y", []]]), 50, 60),
    ]);
    // T0 happened (x shows it), so y must show it too: read skew.
    assert!(has(&r, AnomalyKind::GSingle), "{}", r.summary());
    let r = strict(&[
        (0, "info", json!([["append", "x", 1]]), 0, 0),
        (1, "ok", json!([["r", "x", []]]), 50, 60),
    ]);
    assert_eq!(r.verdict, Verdict::Valid, "an info append may never happen");
}

#[test]
fn rw_register_anomalies() {
    // Write skew on registers.
    let r = strict(&[
        (0, "ok", json!([["r", "x", null], ["w", "y", 1]]), 0, 100),
        (1, "ok", json!([["r", "y", null], ["w", "x", 1]]), 0, 100),
    ]);
    assert_eq!(r.workload, "rw-register");
    assert!(has(&r, AnomalyKind::G2Item), "{}", r.summary());
    // Circular information flow.
    let r = strict(&[
        (0, "ok", json!([["w", "x", 1], ["r", "y", 1]]), 0, 100),
        (1, "ok", json!([["w", "y", 1], ["r", "x", 1]]), 0, 100),
    ]);
    assert!(has(&r, AnomalyKind::G1c), "{}", r.summary());
    // Aborted and intermediate reads, internal inconsistency.
    let r = strict(&[
        (0, "fail", json!([["w", "x", 1]]), 0, 10),
        (1, "ok", json!([["w", "y", 1], ["w", "y", 2]]), 0, 10),
        (2, "ok", json!([["r", "x", 1], ["r", "y", 1]]), 20, 30),
        (3, "ok", json!([["w", "z", 5], ["r", "z", 6]]), 20, 30),
    ]);
    for k in [AnomalyKind::G1a, AnomalyKind::G1b, AnomalyKind::Internal] {
        assert!(has(&r, k), "{k}: {}", r.summary());
    }
    // A read-modify-write chain read in order is fine.
    let r = strict(&[
        (0, "ok", json!([["r", "x", null], ["w", "x", 1]]), 0, 10),
        (1, "ok", json!([["r", "x", 1], ["w", "x", 2]]), 20, 30),
        (2, "ok", json!([["r", "x", 2]]), 40, 50),
    ]);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
}

#[test]
fn malformed_transactions_are_named_errors() {
    let mut b = HistoryBuilder::new();
    b.invoke(0, "txn", None, json!([["append", "x", "one"]]), 0)
        .ok(0, "txn", json!([["append", "x", "one"]]), 1);
    let e = check_txn(&b.build(), &TxnOptions::default()).unwrap_err();
    assert!(e.to_string().contains("append takes an integer"), "{e}");
    let mut b = HistoryBuilder::new();
    b.invoke(
        0,
        "txn",
        None,
        json!([["append", "x", 1], ["w", "y", 1]]),
        0,
    )
    .ok(0, "txn", json!([["append", "x", 1], ["w", "y", 1]]), 1);
    let e = check_txn(&b.build(), &TxnOptions::default()).unwrap_err();
    assert!(e.to_string().contains("mixes"), "{e}");
    let mut b = HistoryBuilder::new();
    b.invoke(0, "txn", None, json!([["append", "x", 1]]), 0)
        .ok(0, "txn", json!([["append", "x", 1]]), 1)
        .invoke(0, "txn", None, json!([["append", "x", 1]]), 2)
        .ok(0, "txn", json!([["append", "x", 1]]), 3);
    let e = check_txn(&b.build(), &TxnOptions::default()).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let mut b = HistoryBuilder::new();
    b.invoke(0, "read", Some("x"), Value::Null, 0)
        .ok(0, "read", json!(1), 1);
    assert!(check_txn(&b.build(), &TxnOptions::default()).is_err());
}

#[test]
fn a_g_single_search_cut_short_leaves_snapshot_isolation_undecided() {
    let ts = [
        (0, "ok", json!([["r", "x", []], ["append", "y", 1]]), 0, 100),
        (1, "ok", json!([["r", "y", []], ["append", "x", 1]]), 0, 100),
    ];
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        events.push((t.3, false, i));
        events.push((t.4, true, i));
    }
    events.sort_by_key(|e| (e.0, !e.1, e.2));
    let mut b = HistoryBuilder::new();
    for (time, done, i) in events {
        let (p, _, mops, _, _) = &ts[i];
        if done {
            b.ok(*p, "txn", mops.clone(), time);
        } else {
            b.invoke(*p, "txn", None, blank_reads(mops), time);
        }
    }
    let h = b.build();
    let with = |model, steps| {
        check_txn(
            &h,
            &TxnOptions {
                model,
                steps,
                ..TxnOptions::default()
            },
        )
        .unwrap()
    };
    let cut = with(ConsistencyModel::SnapshotIsolation, 0);
    assert_eq!(cut.verdict, Verdict::Unknown, "{}", cut.summary());
    assert_eq!(cut.undecided, vec![ConsistencyModel::SnapshotIsolation]);
    assert!(cut.summary().contains("undecided"), "{}", cut.summary());
    // The write skew itself needs no budget: serializability is decided.
    assert_eq!(
        with(ConsistencyModel::Serializable, 0).verdict,
        Verdict::Invalid
    );
    assert_eq!(
        with(ConsistencyModel::ReadCommitted, 0).verdict,
        Verdict::Valid
    );
    // With the budget, snapshot isolation holds.
    assert_eq!(
        with(ConsistencyModel::SnapshotIsolation, 1000).verdict,
        Verdict::Valid
    );
}

#[test]
fn a_graph_over_the_memory_budget_is_unknown_but_what_needs_no_graph_still_decides() {
    use checker::txn::generate::{history, TxnGenConfig};
    let h = history(&TxnGenConfig {
        txns: 2000,
        ..TxnGenConfig::default()
    });
    let tight = TxnOptions {
        memory_limit: 64 << 10,
        ..TxnOptions::default()
    };
    let r = check_txn(&h, &tight).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary());
    assert!(
        r.reason.as_deref().unwrap().contains("memory budget"),
        "{r:?}"
    );
    assert!(r.summary().contains("memory budget"), "{}", r.summary());
    assert_eq!(
        check_txn(&h, &TxnOptions::default()).unwrap().verdict,
        Verdict::Valid
    );
    // An aborted read needs no graph: invalid for read committed within any budget.
    let mut b = HistoryBuilder::new();
    b.invoke(0, "txn", None, json!([["append", "x", 1]]), 0)
        .fail(0, "txn", json!([["append", "x", 1]]), 10)
        .invoke(1, "txn", None, json!([["r", "x", null]]), 20)
        .ok(1, "txn", json!([["r", "x", [1]]]), 30);
    let r = check_txn(
        &b.build(),
        &TxnOptions {
            memory_limit: 0,
            model: ConsistencyModel::ReadCommitted,
            ..TxnOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary());
}
