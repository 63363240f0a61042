//! Transaction histories that are strict serializable by construction, for the bench
//! and the tests, and ways to break them.
//!
//! Transaction `i` takes effect at time `t_i` (strictly increasing) and runs on slot
//! `i mod processes`; its invocation and completion lie within half a slot period of
//! `t_i`, so a slot's transactions never overlap and the serial order `0, 1, 2, …`
//! agrees with real time. Keys are used by `active_keys` at a time and each is retired
//! for a fresh one after `writes_per_key` writes, as Elle's generators do, so reads stay
//! short however long the history.

use serde_json::{json, Value};

use super::parse::TxnKind;
use crate::generate::Rng;
use crate::history::{History, HistoryBuilder};

#[derive(Debug, Clone)]
pub struct TxnGenConfig {
    pub seed: u64,
    pub kind: TxnKind,
    pub txns: usize,
    pub processes: usize,
    pub active_keys: usize,
    pub min_len: usize,
    pub max_len: usize,
    pub writes_per_key: usize,
    /// Percentage of micro-operations that are reads.
    pub read_pct: u64,
    /// Percentages of transactions that end `fail` (not applied) and `info` (applied or
    /// not, at random).
    pub fail_pct: u64,
    pub info_pct: u64,
}

impl Default for TxnGenConfig {
    fn default() -> Self {
        TxnGenConfig {
            seed: 1,
            kind: TxnKind::ListAppend,
            txns: 1000,
            processes: 10,
            active_keys: 10,
            min_len: 1,
            max_len: 4,
            writes_per_key: 32,
            read_pct: 50,
            fail_pct: 2,
            info_pct: 2,
        }
    }
}

enum End {
    Ok,
    Fail,
    /// Applied or not.
    Info(bool),
}

struct Generated {
    process: i64,
    call: u64,
    ret: u64,
    input: Value,
    output: Value,
    end: End,
}

/// A history of `cfg.txns` transactions.
pub fn history(cfg: &TxnGenConfig) -> History {
    let mut rng = Rng(cfg.seed);
    let slots = cfg.processes.max(1);
    const UNIT: u64 = 1000;
    let half = (slots as u64 - 1) / 2;
    let mut generation = vec![0i64; slots];
    let mut active: Vec<u64> = (0..cfg.active_keys.max(1) as u64).collect();
    let mut next_key = active.len() as u64;
    // Per key: its list (list-append; a register's value is the last), writes so far.
    let mut lists: rustc_hash::FxHashMap<u64, (Vec<i64>, usize)> = Default::default();
    let mut t = (half + 1) * UNIT;
    let mut out = Vec::with_capacity(cfg.txns);
    for i in 0..cfg.txns {
        t += UNIT * (1 + rng.below(2));
        let slot = i % slots;
        let process = slot as i64 + slots as i64 * generation[slot];
        let len = cfg.min_len + rng.below((cfg.max_len - cfg.min_len + 1) as u64) as usize;
        let roll = rng.below(100);
        let end = if roll < cfg.fail_pct {
            End::Fail
        } else if roll < cfg.fail_pct + cfg.info_pct {
            End::Info(rng.chance(50))
        } else {
            End::Ok
        };
        let applies = matches!(end, End::Ok | End::Info(true));
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for _ in 0..len {
            let slot_k = rng.below(active.len() as u64) as usize;
            let k = active[slot_k];
            let entry = lists.entry(k).or_default();
            if rng.chance(cfg.read_pct) {
                input.push(json!(["r", k, null]));
                let seen = match cfg.kind {
                    TxnKind::ListAppend => json!(entry.0),
                    TxnKind::RwRegister => entry.0.last().map_or(Value::Null, |v| json!(v)),
                };
                output.push(json!(["r", k, seen]));
            } else {
                let f = match cfg.kind {
                    TxnKind::ListAppend => "append",
                    TxnKind::RwRegister => "w",
                };
                entry.1 += 1;
                let v = entry.1 as i64;
                input.push(json!([f, k, v]));
                output.push(json!([f, k, v]));
                if applies {
                    entry.0.push(v);
                }
                if entry.1 >= cfg.writes_per_key {
                    active[slot_k] = next_key;
                    next_key += 1;
                }
            }
        }
        if let End::Info(_) = end {
            generation[slot] += 1;
        }
        out.push(Generated {
            process,
            call: t - UNIT * rng.below(half + 1),
            ret: t + UNIT * rng.below(half + 1),
            input: Value::Array(input),
            output: Value::Array(output),
            end,
        });
    }
    build(out)
}

fn build(txns: Vec<Generated>) -> History {
    // Events in time order, invocations first at equal times.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(txns.len() * 2);
    for (i, g) in txns.iter().enumerate() {
        events.push((g.call, false, i));
        events.push((g.ret, true, i));
    }
    events.sort_unstable();
    let mut b = HistoryBuilder::new();
    for (time, done, i) in events {
        let g = &txns[i];
        if !done {
            b.invoke(g.process, "txn", None, g.input.clone(), time);
            continue;
        }
        match g.end {
            End::Ok => b.ok(g.process, "txn", g.output.clone(), time),
            End::Fail => b.fail(g.process, "txn", g.input.clone(), time),
            End::Info(_) => b.info(g.process, "txn", g.input.clone(), time),
        };
    }
    b.build()
}

/// Makes the `n`th long enough read of the history stale: it loses its newer half, as a
/// read served by a lagging replica would. Whoever appended the element it now stops
/// before completed long before the read began (keys are written by every tenth
/// transaction or so), so the history is no longer strict serializable. Returns whether
/// a read long enough was found.
pub fn stale_read(history: &mut History, n: usize) -> bool {
    let mut seen = 0;
    for op in history.ops.iter_mut().rev() {
        let Some(Value::Array(mops)) = op.output.as_mut() else {
            continue;
        };
        for m in mops.iter_mut() {
            let Some(Value::Array(xs)) = m.get_mut(2) else {
                continue;
            };
            if xs.len() >= 8 {
                if seen == n {
                    let keep = xs.len() / 2;
                    xs.truncate(keep);
                    return true;
                }
                seen += 1;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{check_txn, ConsistencyModel, TxnOptions};
    use crate::verdict::Verdict;

    #[test]
    fn generated_histories_are_strict_serializable_and_a_stale_read_is_not() {
        for kind in [TxnKind::ListAppend, TxnKind::RwRegister] {
            for seed in 0..20 {
                let cfg = TxnGenConfig {
                    seed,
                    kind,
                    txns: 2000,
                    ..TxnGenConfig::default()
                };
                let h = history(&cfg);
                let r = check_txn(&h, &TxnOptions::default()).unwrap();
                assert_eq!(
                    r.verdict,
                    Verdict::Valid,
                    "{kind:?} seed {seed}: {}",
                    r.summary()
                );
                assert_eq!(
                    r.strongest_satisfied,
                    vec![ConsistencyModel::StrictSerializable]
                );
            }
        }
        for seed in 0..20 {
            let mut h = history(&TxnGenConfig {
                seed,
                txns: 2000,
                ..TxnGenConfig::default()
            });
            assert!(stale_read(&mut h, seed as usize));
            let r = check_txn(&h, &TxnOptions::default()).unwrap();
            assert_eq!(r.verdict, Verdict::Invalid, "seed {seed}: {}", r.summary());
        }
    }
}
