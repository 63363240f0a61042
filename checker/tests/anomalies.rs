//! The classic anomalies, written by hand: each must be caught (or, for the tricky valid
//! ones, accepted), and the counterexample must name the right operation.

use checker::check::{check, CheckOptions, CheckReport};
use checker::model::{KeyValue, Register};
use checker::{HistoryBuilder, Verdict};
use serde_json::{json, Value};

/// (process, f, input, outcome, output, call, ret); outcome "info" leaves it open.
type Op = (i64, &'static str, Value, &'static str, Value, u64, u64);

fn run_keyed(ops: &[Op], key: Option<&str>, model: &str) -> CheckReport {
    // Emit events in time order so processes interleave as they would in a real run.
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        events.push((o.5, i, true));
        if o.3 != "info" {
            events.push((o.6, i, false));
        }
    }
    events.sort();
    let mut b = HistoryBuilder::new();
    for (t, i, is_call) in events {
        let (p, f, input, outcome, output, _, _) = &ops[i];
        if is_call {
            b.invoke(*p, f, key, input.clone(), t);
        } else if *outcome == "ok" {
            b.ok(*p, f, output.clone(), t);
        } else {
            b.fail(*p, f, output.clone(), t);
        }
    }
    let h = b.build();
    match model {
        "kv" => check(
            &KeyValue {
                missing_is_empty: false,
            },
            &h,
            &CheckOptions::default(),
        )
        .unwrap(),
        _ => check(&Register::new(true), &h, &CheckOptions::default()).unwrap(),
    }
}

fn run(ops: &[Op]) -> CheckReport {
    run_keyed(ops, None, "cas-register")
}

fn assert_invalid_at(r: &CheckReport, op_id: usize) {
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary());
    let f = &r.failures[0];
    assert_eq!(
        f.op.id,
        op_id,
        "wrong culprit: {}",
        serde_json::to_string_pretty(f).unwrap()
    );
    assert!(!f.states.is_empty());
}

#[test]
fn stale_read() {
    let r = run(&[
        (0, "write", json!(1), "ok", json!(1), 0, 10),
        (0, "write", json!(2), "ok", json!(2), 20, 30),
        (1, "read", Value::Null, "ok", json!(1), 40, 50),
    ]);
    assert_invalid_at(&r, 2);
    let f = &r.failures[0];
    assert_eq!(f.states[0].state, "2");
    assert!(
        f.states[0]
            .reason
            .contains("read returned 1, but the register held 2"),
        "{:?}",
        f.states
    );
}

#[test]
fn lost_write() {
    let r = run(&[
        (0, "write", json!(1), "ok", json!(1), 0, 10),
        (1, "read", Value::Null, "ok", Value::Null, 20, 30),
    ]);
    assert_invalid_at(&r, 1);
}

#[test]
fn read_of_a_value_never_written() {
    let r = run(&[
        (0, "write", json!(1), "ok", json!(1), 0, 10),
        (1, "read", Value::Null, "ok", json!(7), 5, 30),
    ]);
    assert_invalid_at(&r, 1);
    // Every state the read could have seen is listed: nil (before the write) and 1.
    let mut states: Vec<&str> = r.failures[0]
        .states
        .iter()
        .map(|s| s.state.as_str())
        .collect();
    states.sort();
    assert_eq!(states, vec!["1", "nil"]);
}

#[test]
fn dirty_read_of_a_failed_write() {
    let r = run(&[
        (0, "write", json!(5), "fail", Value::Null, 0, 10),
        (1, "read", Value::Null, "ok", json!(5), 20, 30),
    ]);
    assert_invalid_at(&r, 1);
}

#[test]
fn cas_that_succeeds_twice() {
    let r = run(&[
        (0, "write", json!(0), "ok", json!(0), 0, 5),
        (0, "cas", json!([0, 1]), "ok", json!([0, 1]), 10, 20),
        (1, "cas", json!([0, 2]), "ok", json!([0, 2]), 12, 22),
    ]);
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary());
}

#[test]
fn a_long_info_write_may_take_effect_late() {
    // The write of 1 never completed: it may land after the write of 2.
    let ok = run(&[
        (0, "write", json!(1), "info", Value::Null, 0, 0),
        (1, "write", json!(2), "ok", json!(2), 10, 20),
        (1, "read", Value::Null, "ok", json!(2), 30, 40),
        (2, "read", Value::Null, "ok", json!(1), 50, 60),
    ]);
    assert_eq!(ok.verdict, Verdict::Valid, "{}", ok.summary());
    // ...but once it took effect, 2 cannot come back.
    let bad = run(&[
        (0, "write", json!(1), "info", Value::Null, 0, 0),
        (1, "write", json!(2), "ok", json!(2), 10, 20),
        (2, "read", Value::Null, "ok", json!(1), 50, 60),
        (2, "read", Value::Null, "ok", json!(2), 70, 80),
    ]);
    assert_invalid_at(&bad, 3);
}

#[test]
fn info_is_never_taken_as_fail() {
    let r = run(&[
        (0, "write", json!(1), "info", Value::Null, 0, 0),
        (1, "read", Value::Null, "ok", json!(1), 50, 60),
    ]);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
}

#[test]
fn the_only_order_that_fits_contradicts_real_time() {
    // To read 1 last, write 1 must follow write 2; but write 1 ended before the read of 2.
    let r = run(&[
        (0, "write", json!(1), "ok", json!(1), 0, 10),
        (1, "write", json!(2), "ok", json!(2), 5, 15),
        (2, "read", Value::Null, "ok", json!(2), 20, 25),
        (3, "read", Value::Null, "ok", json!(1), 30, 35),
    ]);
    assert_invalid_at(&r, 3);
    // Concurrent, the same reads are fine.
    let r = run(&[
        (0, "write", json!(1), "ok", json!(1), 0, 30),
        (1, "write", json!(2), "ok", json!(2), 5, 15),
        (2, "read", Value::Null, "ok", json!(2), 20, 25),
        (3, "read", Value::Null, "ok", json!(1), 26, 35),
    ]);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
}

#[test]
fn keys_are_checked_independently() {
    let mut b = HistoryBuilder::new();
    b.invoke(0, "put", Some("a"), json!("x"), 0)
        .ok(0, "put", json!("x"), 10);
    b.invoke(1, "put", Some("b"), json!("y"), 1)
        .ok(1, "put", json!("y"), 11);
    b.invoke(0, "get", Some("a"), Value::Null, 20)
        .ok(0, "get", json!("x"), 30);
    b.invoke(1, "get", Some("b"), Value::Null, 21)
        .ok(1, "get", json!("x"), 31);
    let all = CheckOptions {
        all_keys: true,
        ..CheckOptions::default()
    };
    let r = check(
        &KeyValue {
            missing_is_empty: false,
        },
        &b.build(),
        &all,
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!((r.keys, r.valid_keys, r.invalid_keys), (2, 1, 1));
    assert_eq!(r.failures[0].key.as_deref(), Some("b"));
}

/// One key proven non-linearizable decides the verdict: the keys not yet searched are
/// reported as not decided, unless every key is asked for.
#[test]
fn the_first_refuted_key_decides_unless_all_keys_are_asked_for() {
    let mut b = HistoryBuilder::new();
    // The largest key, so one thread searches it first: a stale read.
    b.invoke(0, "put", Some("big"), json!("1"), 0)
        .ok(0, "put", json!("1"), 10);
    b.invoke(0, "put", Some("big"), json!("2"), 20)
        .ok(0, "put", json!("2"), 30);
    b.invoke(0, "get", Some("big"), Value::Null, 40)
        .ok(0, "get", json!("1"), 50);
    for (p, key) in [(1, "k1"), (2, "k2"), (3, "k3")] {
        b.invoke(p, "put", Some(key), json!("v"), 60)
            .ok(p, "put", json!("v"), 70);
    }
    let h = b.build();
    let model = KeyValue {
        missing_is_empty: false,
    };
    let fast = CheckOptions {
        threads: 1,
        ..CheckOptions::default()
    };
    let r = check(&model, &h, &fast).unwrap();
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(
        (r.keys, r.valid_keys, r.invalid_keys, r.unknown_keys),
        (4, 0, 1, 0)
    );
    assert_eq!(r.not_decided_keys, 3);
    assert!(!r.all_keys);
    assert_eq!(r.failures[0].key.as_deref(), Some("big"));
    assert!(
        !r.failures[0].states.is_empty(),
        "the refuted key is explained"
    );
    assert!(
        r.summary().contains("3 more keys not decided"),
        "{}",
        r.summary()
    );

    let all = CheckOptions {
        all_keys: true,
        ..fast
    };
    let r = check(&model, &h, &all).unwrap();
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(
        (r.valid_keys, r.invalid_keys, r.not_decided_keys),
        (3, 1, 0)
    );
    assert!(r.all_keys);

    // A valid history decides every key either way.
    let mut b = HistoryBuilder::new();
    for (p, key) in [(1, "k1"), (2, "k2")] {
        b.invoke(p, "put", Some(key), json!("v"), 60)
            .ok(p, "put", json!("v"), 70);
    }
    let r = check(&model, &b.build(), &fast).unwrap();
    assert_eq!(
        (r.verdict, r.valid_keys, r.not_decided_keys),
        (Verdict::Valid, 2, 0)
    );
}

#[test]
fn appends_concatenate_and_missing_keys_read_empty() {
    let mut b = HistoryBuilder::new();
    b.invoke(0, "get", Some("k"), Value::Null, 0)
        .ok(0, "get", json!(""), 1);
    b.invoke(0, "append", Some("k"), json!("a"), 2)
        .ok(0, "append", Value::Null, 3);
    b.invoke(1, "append", Some("k"), json!("b"), 2)
        .ok(1, "append", Value::Null, 4);
    b.invoke(0, "get", Some("k"), Value::Null, 5)
        .ok(0, "get", json!("ba"), 6);
    let r = check(
        &KeyValue {
            missing_is_empty: true,
        },
        &b.build(),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
}

#[test]
fn a_budget_that_runs_out_is_unknown_never_valid() {
    // Many concurrent unknown writes of distinct values and reads that cycle through them.
    let mut b = HistoryBuilder::new();
    for p in 0..40 {
        b.invoke(p, "write", None, json!(p), p as u64);
    }
    let mut t = 100;
    for i in 0..400 {
        let p = 1000 + i;
        b.invoke(p, "read", None, Value::Null, t)
            .ok(p, "read", json!((i * 7) % 40), t + 1);
        t += 2;
    }
    let opts = CheckOptions {
        memory_limit: 64 << 10,
        ..CheckOptions::default()
    };
    let r = check(&Register::new(false), &b.build(), &opts).unwrap();
    assert_ne!(r.verdict, Verdict::Valid);
    if r.verdict == Verdict::Unknown {
        assert!(r.unknown[0].reason.contains("budget"), "{}", r.summary());
    }
}

/// An append history whose gets disagree on the order of two appends: the anomaly named
/// is the get that can no longer happen (not an append, which always can), with the
/// state that rules it out.
#[test]
fn a_disordered_append_is_explained_by_the_read_that_sees_it() {
    use checker::generate::{corrupt_reads, generate, GenConfig};
    let mut h = generate(&GenConfig::append_shape(14));
    let changed = corrupt_reads(&mut h, 3);
    let model = KeyValue {
        missing_is_empty: true,
    };
    let opts = CheckOptions {
        all_keys: true,
        ..CheckOptions::default()
    };
    let r = check(&model, &h, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary());
    assert_eq!(r.invalid_keys, 3, "{}", r.summary());
    for f in &r.failures {
        assert_eq!(f.op.f, "get", "{f:?}");
        let reason = &f.states[0].reason;
        assert!(reason.contains("but the key held"), "{reason}");
    }
    // Each corrupted get is on a key found invalid.
    let keys: Vec<_> = r.failures.iter().map(|f| f.key.clone()).collect();
    for id in changed {
        assert!(
            keys.contains(&h.ops[id].key),
            "op {id} on {:?}",
            h.ops[id].key
        );
    }
}
