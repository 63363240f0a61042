//! Synthetic histories from a simulated atomic object, for benchmarks and tests.
//!
//! Clients invoke operations; each takes effect atomically at a random moment between its
//! invocation and completion, so the history is linearizable by construction. A share of
//! operations ends `info` (they may take effect later, or never) and cas mismatches end
//! `fail`, as a real client records them. Runs in time linear in the number of operations.
//!
//! With `append`, keys hold text: operations are `append` of a short unique suffix and
//! `get` of the whole text (the kv model with a missing key read as `""`), the shape of
//! list-append and MIT 6.5840 histories. [`corrupt_reads`] then makes such a history
//! non-linearizable on purpose. Every get records the whole text, so keep such histories
//! to thousands of operations per key.

use serde_json::{json, Value};

use crate::history::{History, HistoryBuilder};

#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub processes: usize,
    pub ops: usize,
    /// Keys: 1 gives a single register.
    pub keys: usize,
    /// Values are drawn from `0..values`.
    pub values: u64,
    /// Percentages of reads and writes; the rest are cas.
    pub read_pct: u64,
    pub write_pct: u64,
    /// Percentage of operations whose outcome is unknown.
    pub info_pct: u64,
    /// Use kv function names (get/put) instead of register ones (read/write).
    pub kv: bool,
    /// Text keys: `read_pct` of the operations are gets, the rest appends.
    pub append: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            processes: 10,
            ops: 1000,
            keys: 1,
            values: 5,
            read_pct: 50,
            write_pct: 30,
            info_pct: 2,
            kv: false,
            append: false,
        }
    }
}

impl GenConfig {
    /// The append shape of issue 14: 50 clients on 10 keys of text, 2,000 operations, a
    /// fifth of them gets and 2% of unknown outcome (the shape that once took a minute
    /// and gigabytes to check).
    pub fn append_shape(seed: u64) -> GenConfig {
        GenConfig {
            seed,
            processes: 50,
            ops: 2_000,
            keys: 10,
            read_pct: 20,
            info_pct: 2,
            append: true,
            ..GenConfig::default()
        }
    }
}

/// SplitMix64: a tiny seedable generator, so generated histories are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with the given percentage.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone)]
enum Kind {
    Read,
    Write(u64),
    Cas(u64, u64),
    /// Appends `"<n>,"`: every append's suffix is its own.
    Append(u64),
}

#[derive(Clone)]
struct Pending {
    process: i64,
    key: usize,
    kind: Kind,
    /// Set once it took effect: (succeeded, value read).
    effect: Option<(bool, Value)>,
}

/// The simulated object: an integer register per key, or a text per key (append).
struct Store {
    ints: Vec<Option<u64>>,
    texts: Vec<String>,
    append: bool,
}

fn apply(store: &mut Store, p: &Pending) -> (bool, Value) {
    let cur = &mut store.ints[p.key];
    match p.kind {
        Kind::Read if store.append => (true, json!(store.texts[p.key])),
        Kind::Read => (true, cur.map_or(Value::Null, |v| json!(v))),
        Kind::Write(v) => {
            *cur = Some(v);
            (true, Value::Null)
        }
        Kind::Cas(e, n) => {
            if *cur == Some(e) {
                *cur = Some(n);
                (true, Value::Null)
            } else {
                (false, Value::Null)
            }
        }
        Kind::Append(n) => {
            store.texts[p.key].push_str(&format!("{n},"));
            (true, Value::Null)
        }
    }
}

/// Generates a linearizable history.
pub fn generate(cfg: &GenConfig) -> History {
    let mut rng = Rng(cfg.seed);
    let keys = cfg.keys.max(1);
    let mut store = Store {
        ints: vec![None; keys],
        texts: vec![String::new(); keys],
        append: cfg.append,
    };
    let mut slots: Vec<Option<Pending>> = vec![None; cfg.processes.max(1)];
    let mut zombies: Vec<Pending> = Vec::new();
    let mut next_process = 0i64;
    let mut invoked = 0;
    let mut open = 0;
    let mut b = HistoryBuilder::new();
    let mut t: u64 = 0;
    let names = if cfg.kv || cfg.append {
        ("get", "put")
    } else {
        ("read", "write")
    };
    while invoked < cfg.ops || open > 0 {
        t += 1 + rng.below(3);
        if !zombies.is_empty() && rng.below(100) < 5 {
            let z = zombies.swap_remove(rng.below(zombies.len() as u64) as usize);
            if rng.below(2) == 0 {
                apply(&mut store, &z);
            }
        }
        let slot = rng.below(slots.len() as u64) as usize;
        let key_text = |k: usize| (cfg.keys > 1).then(|| k.to_string());
        match slots[slot].take() {
            None => {
                if invoked >= cfg.ops {
                    continue;
                }
                let roll = rng.below(100);
                let kind = if roll < cfg.read_pct {
                    Kind::Read
                } else if cfg.append {
                    Kind::Append(invoked as u64)
                } else if roll < cfg.read_pct + cfg.write_pct {
                    Kind::Write(rng.below(cfg.values))
                } else {
                    Kind::Cas(rng.below(cfg.values), rng.below(cfg.values))
                };
                let (f, input) = match kind {
                    Kind::Read => (names.0, Value::Null),
                    Kind::Write(v) => (names.1, json!(v)),
                    Kind::Cas(e, n) => ("cas", json!([e, n])),
                    Kind::Append(n) => ("append", json!(format!("{n},"))),
                };
                let key = rng.below(keys as u64) as usize;
                next_process += 1;
                b.invoke(next_process, f, key_text(key).as_deref(), input, t);
                slots[slot] = Some(Pending {
                    process: next_process,
                    key,
                    kind,
                    effect: None,
                });
                invoked += 1;
                open += 1;
            }
            Some(mut p) => {
                if p.effect.is_none() && rng.below(2) == 0 {
                    p.effect = Some(apply(&mut store, &p));
                    slots[slot] = Some(p);
                    continue;
                }
                open -= 1;
                let f = match p.kind {
                    Kind::Read => names.0,
                    Kind::Write(_) => names.1,
                    Kind::Cas(..) => "cas",
                    Kind::Append(_) => "append",
                };
                if rng.below(100) < cfg.info_pct {
                    b.info(p.process, f, Value::Null, t);
                    if p.effect.is_none() {
                        zombies.push(p);
                    }
                    continue;
                }
                let (ok, read) = match p.effect {
                    Some(e) => e,
                    None => apply(&mut store, &p),
                };
                let out = match p.kind {
                    Kind::Read => read,
                    Kind::Write(v) => json!(v),
                    Kind::Cas(e, n) => json!([e, n]),
                    Kind::Append(n) => json!(format!("{n},")),
                };
                if ok {
                    b.ok(p.process, f, out, t);
                } else {
                    b.fail(p.process, f, out, t);
                }
            }
        }
    }
    b.build()
}

/// Makes an append history non-linearizable: in up to `count` `ok` gets of the first
/// half of the history, each on a key of its own, the first two appended suffixes are
/// swapped, an order no later get of that key agrees with. Returns the ids changed.
pub fn corrupt_reads(h: &mut History, count: usize) -> Vec<usize> {
    use crate::history::Outcome;
    let half = h.ops.len() / 2;
    let mut keys = std::collections::BTreeSet::new();
    let mut changed = Vec::new();
    for op in h.ops.iter_mut().take(half) {
        if changed.len() >= count {
            break;
        }
        if op.f != "get" || op.outcome != Outcome::Ok || keys.contains(&op.key) {
            continue;
        }
        let Some(Value::String(text)) = &op.output else {
            continue;
        };
        let parts: Vec<&str> = text.split_terminator(',').collect();
        if parts.len() < 3 {
            continue;
        }
        let mut swapped = vec![parts[1], parts[0]];
        swapped.extend(&parts[2..]);
        op.output = Some(json!(format!("{},", swapped.join(","))));
        keys.insert(op.key.clone());
        changed.push(op.id);
    }
    changed
}

/// Writes a history as JSON Lines in the documented format.
pub fn write_jsonl(h: &History, mut w: impl std::io::Write) -> std::io::Result<()> {
    use crate::history::{HistoryLine, LineType};
    w.write_all(&HistoryLine::header().to_json_line())?;
    // (time, order at that time, index): invocations, then completions, then faults.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(h.ops.len() * 2);
    for (i, op) in h.ops.iter().enumerate() {
        events.push((op.call, 0, i));
        match (op.outcome, op.ret, op.abandoned) {
            (crate::history::Outcome::Info, _, Some(t)) => events.push((t, 1, i)),
            (crate::history::Outcome::Info, _, None) => {}
            (_, ret, _) => events.push((ret.expect("completed"), 1, i)),
        }
    }
    for (i, n) in h.nemesis.iter().enumerate() {
        events.push((n.time, 2, i));
    }
    events.sort();
    for (t, what, i) in events {
        let line = match what {
            2 => {
                let n = &h.nemesis[i];
                HistoryLine::nemesis(&n.f, n.value.clone(), t)
            }
            0 => {
                let op = &h.ops[i];
                HistoryLine::op(
                    LineType::Invoke,
                    op.process,
                    &op.f,
                    op.key.as_deref(),
                    op.input.clone(),
                    t,
                )
            }
            _ => {
                let op = &h.ops[i];
                let value = op.output.clone().unwrap_or(Value::Null);
                let mut line = HistoryLine::op(
                    LineType::from(op.outcome),
                    op.process,
                    &op.f,
                    op.key.as_deref(),
                    value,
                    t,
                );
                line.node = op.route.node;
                line.via = op.route.via.clone();
                line
            }
        };
        w.write_all(&line.to_json_line())?;
    }
    Ok(())
}
