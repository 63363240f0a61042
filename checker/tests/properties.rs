//! Property tests: the checker must agree with the brute-force reference on thousands of
//! random histories, `info` operations included. Histories come from a simulated atomic
//! object (so they are linearizable by construction), and from mutations of those.

use checker::check::{check, CheckOptions};
use checker::generate::{corrupt_reads, generate, GenConfig, Rng};
use checker::history::{History, HistoryBuilder, Outcome};
use checker::model::{KeyValue, Model, Register};
use checker::reference::brute_force;
use checker::Verdict;
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Clone)]
struct Pending {
    process: i64,
    f: &'static str,
    key: Option<String>,
    input: Value,
    applied: Option<(bool, Value)>,
}

/// Simulates clients against one atomic map: each operation takes effect at a random moment
/// between its invocation and completion; some end `info` and may take effect later or
/// never; cas mismatches end `fail`, as a real client records them.
fn simulate(seed: u64, kv: bool) -> History {
    let mut rng = Rng(seed);
    let processes = 2 + rng.below(3) as i64;
    let total = 3 + rng.below(6);
    let keys = if kv { 2 } else { 1 };
    let mut store: Vec<Value> = vec![Value::Null; keys];
    let mut pending: Vec<Option<Pending>> = vec![None; processes as usize];
    let mut zombies: Vec<Pending> = Vec::new();
    let mut next_process = processes;
    let mut invoked = 0;
    let mut b = HistoryBuilder::new();
    let mut t = 0;
    let apply = |store: &mut Vec<Value>, p: &Pending| -> (bool, Value) {
        let k = p.key.as_deref().map_or(0, |k| k.parse::<usize>().unwrap());
        match p.f {
            "read" | "get" => (true, store[k].clone()),
            "write" | "put" => {
                store[k] = p.input.clone();
                (true, p.input.clone())
            }
            "delete" => {
                store[k] = Value::Null;
                (true, Value::Null)
            }
            _ => {
                let (e, n) = (p.input[0].clone(), p.input[1].clone());
                if store[k] == e {
                    store[k] = n;
                    (true, p.input.clone())
                } else {
                    (false, p.input.clone())
                }
            }
        }
    };
    loop {
        t += 1;
        let busy = pending.iter().any(Option::is_some);
        if invoked >= total && !busy {
            break;
        }
        // Late effects of operations whose outcome was never learned.
        if !zombies.is_empty() && rng.chance(20) {
            let z = zombies.swap_remove(rng.below(zombies.len() as u64) as usize);
            if rng.chance(60) {
                apply(&mut store, &z);
            }
        }
        let slot = rng.below(pending.len() as u64) as usize;
        match pending[slot].take() {
            None if invoked < total => {
                let v = json!(rng.below(3));
                let (f, input) = match rng.below(if kv { 4 } else { 3 }) {
                    0 => (if kv { "get" } else { "read" }, Value::Null),
                    1 => (if kv { "put" } else { "write" }, v),
                    2 => ("cas", json!([rng.below(3), rng.below(3)])),
                    _ => ("delete", Value::Null),
                };
                let key = kv.then(|| rng.below(keys as u64).to_string());
                // A fresh logical process per operation: ids retired after `info` stay open.
                next_process += 1;
                let p = Pending {
                    process: next_process,
                    f,
                    key,
                    input,
                    applied: None,
                };
                b.invoke(p.process, f, p.key.as_deref(), p.input.clone(), t);
                pending[slot] = Some(p);
                invoked += 1;
            }
            None => {}
            Some(mut p) => {
                if p.applied.is_none() && rng.chance(50) {
                    // Take effect now; complete later.
                    p.applied = Some(apply(&mut store, &p));
                    pending[slot] = Some(p);
                    continue;
                }
                if rng.chance(15) {
                    // Outcome unknown: it may already have happened, or happen later, or never.
                    b.info(p.process, p.f, p.input.clone(), t);
                    if p.applied.is_none() {
                        zombies.push(p);
                    }
                    continue;
                }
                let (ok, out) = match p.applied.take() {
                    Some(r) => r,
                    None if rng.chance(15) && p.f != "read" && p.f != "get" => {
                        b.fail(p.process, p.f, p.input.clone(), t);
                        continue;
                    }
                    None => apply(&mut store, &p),
                };
                if ok {
                    b.ok(p.process, p.f, out, t);
                } else {
                    b.fail(p.process, p.f, out, t);
                }
            }
        }
    }
    b.build()
}

fn mutate(h: &mut History, seed: u64) {
    let mut rng = Rng(seed ^ 0xABCDEF);
    for _ in 0..1 + rng.below(2) {
        let i = rng.below(h.ops.len() as u64) as usize;
        let op = &mut h.ops[i];
        match rng.below(4) {
            0 if op.outcome == Outcome::Ok => op.output = Some(json!(rng.below(3))),
            1 if op.outcome == Outcome::Ok => op.output = Some(Value::Null),
            2 if op.outcome == Outcome::Fail => op.outcome = Outcome::Ok,
            3 if op.outcome == Outcome::Info => {
                op.outcome = Outcome::Ok;
                op.ret = Some(op.call + 1 + rng.below(30));
                op.output = Some(match op.f.as_str() {
                    "read" | "get" => json!(rng.below(3)),
                    _ => op.input.clone(),
                });
            }
            _ => {
                let shift = rng.below(20);
                op.call = op.call.saturating_sub(shift);
            }
        }
    }
}

/// The checker's verdict equals the reference's in every mode: one thread, two threads
/// whose searches the first refuted key cancels, and two threads deciding every key.
fn agree<M: Model>(model: &M, h: &History) -> Result<Verdict, TestCaseError> {
    let reference = brute_force(model, h, 14).expect("small histories compile");
    let expected = if reference {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    for (threads, all_keys) in [(1, false), (2, false), (2, true)] {
        let opts = CheckOptions {
            threads,
            all_keys,
            ..CheckOptions::default()
        };
        let report = check(model, h, &opts).unwrap();
        prop_assert_eq!(
            report.verdict,
            expected,
            "threads {} all_keys {}\nhistory: {:#?}\nreport: {}",
            threads,
            all_keys,
            h.ops,
            report.summary()
        );
        if all_keys {
            prop_assert_eq!(report.not_decided_keys, 0);
        }
    }
    Ok(expected)
}

/// A small append history from the generator (two keys of text), corrupted or not.
fn append_history(seed: u64, corrupt: bool) -> History {
    let mut h = generate(&GenConfig {
        seed,
        processes: 3,
        ops: 12,
        keys: 2,
        read_pct: 40,
        info_pct: 10,
        append: true,
        ..GenConfig::default()
    });
    if corrupt {
        corrupt_reads(&mut h, 1);
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn simulated_registers_are_linearizable(seed in any::<u64>()) {
        let h = simulate(seed, false);
        let v = agree(&Register::new(true), &h)?;
        prop_assert_eq!(v, Verdict::Valid);
    }

    #[test]
    fn simulated_maps_are_linearizable(seed in any::<u64>()) {
        let h = simulate(seed, true);
        let v = agree(&KeyValue { missing_is_empty: false }, &h)?;
        prop_assert_eq!(v, Verdict::Valid);
    }

    #[test]
    fn mutated_registers_agree_with_the_reference(seed in any::<u64>()) {
        let mut h = simulate(seed, false);
        mutate(&mut h, seed);
        agree(&Register::new(true), &h)?;
    }

    #[test]
    fn append_histories_agree_with_the_reference(seed in any::<u64>(), corrupt in any::<bool>()) {
        let h = append_history(seed, corrupt);
        let v = agree(&KeyValue { missing_is_empty: true }, &h)?;
        if !corrupt {
            prop_assert_eq!(v, Verdict::Valid);
        }
    }

    #[test]
    fn mutated_maps_agree_with_the_reference(seed in any::<u64>()) {
        let mut h = simulate(seed, true);
        mutate(&mut h, seed);
        agree(&KeyValue { missing_is_empty: false }, &h)?;
    }
}

#[test]
fn mutations_produce_both_verdicts() {
    // The mutation tests mean something only if mutants are often invalid.
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..500 {
        let mut h = simulate(seed, false);
        mutate(&mut h, seed);
        match brute_force(&Register::new(true), &h, 14) {
            Some(true) => valid += 1,
            Some(false) => invalid += 1,
            None => {}
        }
    }
    assert!(
        invalid > 50 && valid > 50,
        "valid {valid}, invalid {invalid}"
    );
}

#[test]
fn corrupted_append_histories_are_often_invalid() {
    // The append property means something only if corruption often bites.
    let model = KeyValue {
        missing_is_empty: true,
    };
    let (mut changed, mut invalid) = (0, 0);
    for seed in 0..500 {
        let clean = append_history(seed, false);
        let h = append_history(seed, true);
        if h.ops
            .iter()
            .zip(&clean.ops)
            .any(|(a, b)| a.output != b.output)
        {
            changed += 1;
        }
        if brute_force(&model, &h, 14) == Some(false) {
            invalid += 1;
        }
    }
    assert!(invalid > 50, "{invalid} invalid of {changed} corrupted");
}
