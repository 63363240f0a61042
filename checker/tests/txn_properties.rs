//! The transaction checker against the brute-force reference on thousands of small
//! random histories from a sloppy database (stale reads, reads out of order, lost and
//! phantom appends, fails and unknown outcomes), serializable and not.
//!
//! List-append: the two must agree exactly, for serializability and for strict
//! serializability. Every read of a list shows its whole prefix, so the version orders
//! are known and the graph decides exactly (Adya). Rw-register: reads do not reveal the
//! order of writes, so the checker, like Elle, may miss a violation; it must never
//! report one the reference disproves.

use checker::generate::Rng;
use checker::txn::reference::serializable;
use checker::txn::{check_txn, transactions, ConsistencyModel, TxnKind, TxnOptions};
use checker::{History, HistoryBuilder, Verdict};
use serde_json::{json, Value};

/// A small random history from a database that is sometimes wrong.
fn sloppy(seed: u64, kind: TxnKind) -> History {
    let mut rng = Rng(seed);
    let n = 2 + rng.below(6) as usize;
    let keys = 1 + rng.below(3);
    let processes = 1 + rng.below(3) as i64;
    let mut state: Vec<Vec<i64>> = vec![Vec::new(); keys as usize];
    let mut next = vec![0i64; keys as usize];
    let mut free_at = vec![0u64; processes as usize];
    let mut gen = vec![0i64; processes as usize];
    let mut events: Vec<(u64, bool, i64, Value, &str)> = Vec::new();
    for _ in 0..n {
        let slot = rng.below(processes as u64) as usize;
        let process = slot as i64 + processes * gen[slot];
        let call = free_at[slot] + rng.below(30);
        let ret = call + 1 + rng.below(40);
        free_at[slot] = ret + rng.below(2);
        let roll = rng.below(100);
        let (outcome, applies) = match roll {
            0..=9 => ("fail", rng.chance(10)), // a fail that took effect anyway: a bug
            10..=19 => ("info", rng.chance(50)),
            _ => ("ok", !rng.chance(3)), // an ok append that was lost
        };
        let len = 1 + rng.below(3);
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for _ in 0..len {
            let k = rng.below(keys) as usize;
            if rng.chance(50) {
                let now = &state[k];
                let seen: Vec<i64> = match rng.below(100) {
                    0..=14 => now[..rng.below(now.len() as u64 + 1) as usize].to_vec(),
                    15..=17 if now.len() > 1 => {
                        let mut v = now.clone();
                        v.swap(0, 1);
                        v
                    }
                    _ => now.clone(),
                };
                input.push(json!(["r", k, null]));
                output.push(match kind {
                    TxnKind::ListAppend => json!(["r", k, seen]),
                    TxnKind::RwRegister => json!(["r", k, seen.last()]),
                });
            } else {
                next[k] += 1;
                let v = next[k];
                let f = if kind == TxnKind::ListAppend {
                    "append"
                } else {
                    "w"
                };
                input.push(json!([f, k, v]));
                output.push(json!([f, k, v]));
                if applies {
                    match kind {
                        TxnKind::ListAppend => state[k].push(v),
                        TxnKind::RwRegister => state[k] = vec![v],
                    }
                }
            }
        }
        if outcome == "info" {
            gen[slot] += 1;
        }
        events.push((call, false, process, Value::Array(input.clone()), "invoke"));
        match outcome {
            "ok" => events.push((ret, true, process, Value::Array(output), "ok")),
            "fail" => events.push((ret, true, process, Value::Array(input), "fail")),
            _ => {}
        }
    }
    events.sort_by_key(|e| (e.0, !e.1));
    let mut b = HistoryBuilder::new();
    for (t, _, p, v, what) in events {
        match what {
            "invoke" => b.invoke(p, "txn", None, v, t),
            "ok" => b.ok(p, "txn", v, t),
            _ => b.fail(p, "txn", v, t),
        };
    }
    b.build()
}

fn show(h: &History) -> String {
    h.ops
        .iter()
        .map(|o| {
            format!(
                "T{} p{} [{}, {:?}] {:?} {}\n",
                o.id,
                o.process,
                o.call,
                o.ret,
                o.outcome,
                o.output.as_ref().unwrap_or(&o.input)
            )
        })
        .collect()
}

/// The checker's verdict; a history where nothing committed is unknown to the checker
/// (a gate must not pass on it) and trivially serializable to the reference.
fn verdict(h: &History, model: ConsistencyModel) -> Verdict {
    let r = check_txn(
        h,
        &TxnOptions {
            model,
            ..TxnOptions::default()
        },
    )
    .unwrap();
    if r.committed == 0 {
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.reason.is_some());
        return Verdict::Valid;
    }
    r.verdict
}

#[test]
fn list_append_verdicts_agree_with_every_serial_order() {
    let (mut valid, mut invalid, mut strict_only) = (0, 0, 0);
    for seed in 0..20_000 {
        let h = sloppy(seed, TxnKind::ListAppend);
        let txns = transactions(&h).unwrap();
        let ser = serializable(&txns, false, 9).expect("small");
        let strict = serializable(&txns, true, 9).expect("small");
        let got_ser = verdict(&h, ConsistencyModel::Serializable);
        let got_strict = verdict(&h, ConsistencyModel::StrictSerializable);
        let want = |b: bool| if b { Verdict::Valid } else { Verdict::Invalid };
        assert_eq!(got_ser, want(ser), "seed {seed} serializable: {}", show(&h));
        assert_eq!(got_strict, want(strict), "seed {seed} strict: {}", show(&h));
        match (ser, strict) {
            (true, true) => valid += 1,
            (true, false) => strict_only += 1,
            _ => invalid += 1,
        }
    }
    // The generator must exercise all three outcomes, or agreement means little.
    eprintln!("list-append: {valid} valid, {invalid} invalid, {strict_only} only strict invalid");
    assert!(
        valid > 2000 && invalid > 2000 && strict_only > 500,
        "{valid} {invalid} {strict_only}"
    );
}

#[test]
fn rw_register_never_reports_what_a_serial_order_explains() {
    let (mut caught, mut missed, mut valid) = (0, 0, 0);
    for seed in 0..10_000 {
        let h = sloppy(seed, TxnKind::RwRegister);
        let txns = transactions(&h).unwrap();
        for (model, realtime) in [
            (ConsistencyModel::Serializable, false),
            (ConsistencyModel::StrictSerializable, true),
        ] {
            let reference = serializable(&txns, realtime, 9).expect("small");
            let got = verdict(&h, model);
            if got == Verdict::Invalid {
                assert!(!reference, "seed {seed} {model}: {}", show(&h));
                caught += 1;
            } else if !reference {
                missed += 1;
            } else {
                valid += 1;
            }
        }
    }
    eprintln!("rw-register: {caught} caught, {missed} missed, {valid} valid");
    assert!(caught > 2000 && valid > 2000, "{caught} {missed} {valid}");
}
