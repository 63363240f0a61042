//! Operation generators.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// The function of an operation: the checker's own enum, so what the generator draws is
/// what the models compile.
pub use checker::Func;

/// One operation to perform.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSpec {
    pub f: Func,
    /// The key; for a transaction, its workload's name (see [`crate::txn`]).
    pub key: String,
    /// write: the value; cas: `[expected, new]`; read/delete: null; txn: its
    /// micro-operations.
    pub value: Value,
}

/// A value as the servers store it: a string as itself, anything else as its JSON.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl OpSpec {
    /// Whether it may change state: a write, or a transaction with a write in it.
    pub fn writes(&self) -> bool {
        match self.f {
            Func::Txn => self.value.as_array().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m.get(0).and_then(Value::as_str) != Some("r"))
            }),
            f => f.is_write(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Jepsen's register: few keys, reads, writes and compare-and-set over a small value
    /// range, so cas often succeeds and keys are contended.
    Register,
    /// Many keys, get/put/delete, every put a unique value so a read names its write.
    Kv,
    /// Jepsen's set-full: adds of unique elements to a few sets, and reads of a whole
    /// set. Nothing is ever overwritten, so an element lost or changed stays visible in
    /// every later read, where a register would hide it under the next write.
    Set,
    /// A totally ordered log: the set's operations, but each read returns the log in
    /// order, and every read must be a prefix of the longest (nothing reordered).
    Queue,
    /// Elle's list-append: transactions of appends of unique values to lists and reads
    /// of whole lists, checked for isolation anomalies.
    ListAppend,
    /// Elle's rw-register: transactions of writes of unique values and reads.
    RwRegister,
}

impl WorkloadKind {
    /// The name `--workload` takes (and an adapter's handshake says).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Kv => "kv",
            WorkloadKind::Set => "set",
            WorkloadKind::Queue => "queue",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::RwRegister => "rw-register",
        }
    }

    /// Whether its operations are transactions.
    pub fn transactional(self) -> bool {
        matches!(self, WorkloadKind::ListAppend | WorkloadKind::RwRegister)
    }

    /// Whether it adds elements and reads whole collections (set, queue).
    pub fn collects(self) -> bool {
        matches!(self, WorkloadKind::Set | WorkloadKind::Queue)
    }
}

/// Shares of each function, in percent (they need not add up to 100; they are weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
    pub delete: u32,
}

/// The mix as test.json and bench.json record it.
impl From<Mix> for checker::record::MixRecord {
    fn from(m: Mix) -> Self {
        checker::record::MixRecord {
            read: m.read,
            write: m.write,
            cas: m.cas,
            delete: m.delete,
        }
    }
}

impl Mix {
    fn total(&self) -> u32 {
        self.read + self.write + self.cas + self.delete
    }
}

/// Draws operations. Cheap to share between clients; each client brings its own RNG.
#[derive(Debug)]
pub struct Generator {
    pub kind: WorkloadKind,
    pub keys: usize,
    pub mix: Mix,
    /// Register values are drawn from `0..values`.
    pub values: u64,
    /// Pad every written value to this many bytes (0: no padding), for benchmarks.
    pub value_size: usize,
    unique: AtomicU64,
    /// The set workload's sets in use; see [`SET_SIZE`]. Transactions use the same
    /// slots for their active keys, each retired after [`Generator::writes_per_key`].
    sets: Mutex<Sets>,
    /// Micro-operations per transaction, at least and at most.
    pub txn_len: (usize, usize),
    /// Writes a transaction key takes before a fresh key replaces it, so reads of a
    /// list stay short however long the run.
    pub writes_per_key: u64,
}

/// Micro-operations per transaction by default (Elle's list-append tests use 1 to 4).
pub const TXN_LEN: (usize, usize) = (1, 4);
/// Writes per transaction key by default (Elle's default).
pub const WRITES_PER_KEY: u64 = 32;
/// At most this many keys are read by one final-read transaction.
const FINAL_READ_KEYS: usize = 16;

/// Adds a set takes before a fresh one replaces it. Every read returns a whole set, so
/// bounding sets bounds the history: at 1,000 elements a read is a few KiB however long
/// the run, and every set ever used is read once more at the end.
pub const SET_SIZE: u64 = 1000;

/// The sets taking adds: slot `i` holds set number `key[i]` with `adds[i]` adds so far.
#[derive(Debug)]
struct Sets {
    key: Vec<usize>,
    adds: Vec<u64>,
    next: usize,
}

impl Generator {
    pub fn new(kind: WorkloadKind, keys: usize, mix: Mix) -> Self {
        let mut mix = mix;
        if kind.collects() || kind.transactional() {
            // A set has adds and reads only; a transaction writes (or appends) and reads.
            mix.write += mix.cas + mix.delete;
            mix.cas = 0;
            mix.delete = 0;
        }
        if kind == WorkloadKind::Kv {
            // The kv workload has no cas: it must run against servers without that endpoint.
            mix.delete += mix.cas;
            mix.cas = 0;
        }
        if mix.total() == 0 {
            mix.read = 1;
        }
        Generator {
            kind,
            keys: keys.max(1),
            mix,
            values: 5,
            value_size: 0,
            unique: AtomicU64::new(1),
            sets: Mutex::new(Sets {
                key: (0..keys.max(1)).collect(),
                adds: vec![0; keys.max(1)],
                next: keys.max(1),
            }),
            txn_len: TXN_LEN,
            writes_per_key: WRITES_PER_KEY,
        }
    }

    /// Pads written values to `bytes` (the value still starts with what tells it apart).
    pub fn with_value_size(mut self, bytes: usize) -> Self {
        self.value_size = bytes;
        self
    }

    fn padded(&self, mut v: String) -> Value {
        if v.len() < self.value_size {
            let pad = self.value_size - v.len();
            v.extend(std::iter::repeat_n('.', pad));
        }
        json!(v)
    }

    /// The name of key number `i`.
    pub fn key(&self, i: usize) -> String {
        match self.kind {
            WorkloadKind::Register => format!("r{i}"),
            WorkloadKind::Kv => format!("k{i}"),
            WorkloadKind::Set => format!("s{i}"),
            WorkloadKind::Queue => format!("q{i}"),
            // Elle's keys are integers; the history keeps them so.
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => i.to_string(),
        }
    }

    /// How this workload reads a key: a value, or a whole set.
    pub fn read_func(&self) -> Func {
        match self.kind {
            WorkloadKind::Set | WorkloadKind::Queue => Func::ReadAll,
            WorkloadKind::Register | WorkloadKind::Kv => Func::Read,
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => Func::Txn,
        }
    }

    /// The reads after the run that make lost writes show: one per key, or for
    /// transactions read-only transactions of up to 16 keys each.
    pub fn final_reads(&self) -> Vec<OpSpec> {
        if !self.kind.transactional() {
            return self
                .all_keys()
                .into_iter()
                .map(|key| OpSpec {
                    f: self.read_func(),
                    key,
                    value: Value::Null,
                })
                .collect();
        }
        // Transaction keys are the slots' numbers themselves, as the history keeps them.
        let ids: Vec<usize> = (0..self.key_count()).collect();
        ids.chunks(FINAL_READ_KEYS)
            .map(|ks| OpSpec {
                f: Func::Txn,
                key: self.kind.name().to_string(),
                value: ks.iter().map(|k| json!(["r", k, null])).collect(),
            })
            .collect()
    }

    /// How many keys were used so far: their numbers are `0..` this.
    fn key_count(&self) -> usize {
        match self.kind {
            WorkloadKind::Set
            | WorkloadKind::Queue
            | WorkloadKind::ListAppend
            | WorkloadKind::RwRegister => self.sets.lock().expect("sets").next,
            WorkloadKind::Register | WorkloadKind::Kv => self.keys,
        }
    }

    /// Every key used so far (the set workload opens new sets as it goes).
    pub fn all_keys(&self) -> Vec<String> {
        (0..self.key_count()).map(|i| self.key(i)).collect()
    }

    /// The set in slot `slot`; an add counts towards its [`SET_SIZE`] (a transaction
    /// key's writes towards `writes_per_key`).
    fn set_key(&self, slot: usize, add: bool) -> String {
        self.key(self.slot_key(slot, add))
    }

    fn slot_key(&self, slot: usize, add: bool) -> usize {
        let limit = if self.kind.transactional() {
            self.writes_per_key
        } else {
            SET_SIZE
        };
        let mut s = self.sets.lock().expect("sets");
        let key = s.key[slot];
        if add {
            s.adds[slot] += 1;
            if s.adds[slot] >= limit {
                s.key[slot] = s.next;
                s.adds[slot] = 0;
                s.next += 1;
            }
        }
        key
    }

    /// A transaction: `txn_len` micro-operations on the active keys, reads in the share
    /// the mix gives reads, every written value unique in the run.
    fn txn(&self, rng: &mut StdRng) -> OpSpec {
        let (lo, hi) = self.txn_len;
        let len = rng.gen_range(lo.max(1)..=hi.max(lo.max(1)));
        let write = match self.kind {
            WorkloadKind::ListAppend => "append",
            _ => "w",
        };
        let mops: Vec<Value> = (0..len)
            .map(|_| {
                let slot = rng.gen_range(0..self.keys);
                let read = rng.gen_range(0..self.mix.total()) < self.mix.read;
                let key = self.slot_key(slot, !read);
                if read {
                    json!(["r", key, null])
                } else {
                    json!([write, key, self.unique.fetch_add(1, Ordering::Relaxed)])
                }
            })
            .collect();
        OpSpec {
            f: Func::Txn,
            key: self.kind.name().to_string(),
            value: Value::Array(mops),
        }
    }

    pub fn next(&self, rng: &mut StdRng) -> OpSpec {
        if self.kind.transactional() {
            return self.txn(rng);
        }
        let slot = rng.gen_range(0..self.keys);
        let key = self.key(slot);
        let roll = rng.gen_range(0..self.mix.total());
        let m = self.mix;
        let f = if roll < m.read {
            Func::Read
        } else if roll < m.read + m.write {
            Func::Write
        } else if roll < m.read + m.write + m.cas {
            Func::Cas
        } else {
            Func::Delete
        };
        let (f, key) = match (f, self.kind) {
            (Func::Read, k) if k.collects() => (Func::ReadAll, self.set_key(slot, false)),
            (_, k) if k.collects() => (Func::Add, self.set_key(slot, true)),
            (f, _) => (f, key),
        };
        let value = match (f, self.kind) {
            (Func::Read | Func::Delete | Func::Append | Func::ReadAll | Func::Txn, _) => {
                Value::Null
            }
            // Elements are unique across the run (and strings, as the API stores them).
            (Func::Add, _) => json!(self.unique.fetch_add(1, Ordering::Relaxed).to_string()),
            // Values are strings: the key-value API stores strings.
            (Func::Write, WorkloadKind::Register) => {
                self.padded(rng.gen_range(0..self.values).to_string())
            }
            (Func::Write, _) => {
                self.padded(format!("v{}", self.unique.fetch_add(1, Ordering::Relaxed)))
            }
            (Func::Cas, _) => json!([
                self.padded(rng.gen_range(0..self.values).to_string()),
                self.padded(rng.gen_range(0..self.values).to_string())
            ]),
        };
        OpSpec { f, key, value }
    }
}

/// Named workload presets, matching the seed's test suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub concurrency: usize,
    /// Percent of operations that write (split between write and cas, or put and delete).
    pub write_pct: u32,
}

pub const PRESETS: [Preset; 4] = [
    Preset {
        name: "healthy",
        concurrency: 5,
        write_pct: 50,
    },
    Preset {
        name: "high-concurrency",
        concurrency: 10,
        write_pct: 50,
    },
    Preset {
        name: "write-heavy",
        concurrency: 5,
        write_pct: 80,
    },
    Preset {
        name: "read-heavy",
        concurrency: 5,
        write_pct: 20,
    },
];

pub fn preset(name: &str) -> Option<Preset> {
    PRESETS.iter().copied().find(|p| p.name == name)
}

impl Mix {
    /// This mix for a server without compare-and-set: the register workload's cas share
    /// goes to writes, unless the user gave the mix (`given`) with cas in it, which is
    /// then refused (a run full of rejected operations would prove nothing). The error
    /// completes "the server speaks the X API, ...".
    pub fn without_cas(self, kind: WorkloadKind, given: bool) -> Result<Mix, String> {
        if kind != WorkloadKind::Register || self.cas == 0 {
            return Ok(self);
        }
        if given {
            return Err("which has no compare-and-set: leave cas out of --mix".into());
        }
        Ok(Mix {
            write: self.write + self.cas,
            cas: 0,
            ..self
        })
    }
}

/// The mix for a write share: register splits writes evenly between write and cas; kv
/// gives most to put and a tenth to delete.
pub fn mix_for(kind: WorkloadKind, write_pct: u32) -> Mix {
    let write_pct = write_pct.min(100);
    match kind {
        WorkloadKind::Register => Mix {
            read: 100 - write_pct,
            write: write_pct - write_pct / 2,
            cas: write_pct / 2,
            delete: 0,
        },
        WorkloadKind::Kv => Mix {
            read: 100 - write_pct,
            write: write_pct - write_pct / 10,
            cas: 0,
            delete: write_pct / 10,
        },
        // The shares of micro-operations that read and write.
        WorkloadKind::ListAppend | WorkloadKind::RwRegister => Mix {
            read: 100 - write_pct,
            write: write_pct,
            cas: 0,
            delete: 0,
        },
        // A read returns a whole set: a fifth of the reads another workload would do.
        WorkloadKind::Set | WorkloadKind::Queue => Mix {
            read: (100 - write_pct) / 5,
            write: write_pct,
            cas: 0,
            delete: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mixes_and_unique_values() {
        let g = Generator::new(WorkloadKind::Kv, 100, mix_for(WorkloadKind::Kv, 80));
        let mut rng = StdRng::seed_from_u64(1);
        let ops: Vec<OpSpec> = (0..2000).map(|_| g.next(&mut rng)).collect();
        let reads = ops.iter().filter(|o| o.f == Func::Read).count();
        assert!((300..500).contains(&reads), "{reads} reads of 2000 at 20%");
        assert!(ops.iter().all(|o| o.f != Func::Cas), "kv never uses cas");
        let mut puts: Vec<&Value> = ops
            .iter()
            .filter(|o| o.f == Func::Write)
            .map(|o| &o.value)
            .collect();
        let n = puts.len();
        puts.sort_by_key(|v| v.to_string());
        puts.dedup();
        assert_eq!(puts.len(), n, "every put writes a unique value");
        let r = Generator::new(
            WorkloadKind::Register,
            5,
            mix_for(WorkloadKind::Register, 50),
        );
        let ops: Vec<OpSpec> = (0..1000).map(|_| r.next(&mut rng)).collect();
        assert!(ops.iter().any(|o| o.f == Func::Cas) && ops.iter().all(|o| o.key.starts_with('r')));
        let s = Generator::new(WorkloadKind::Set, 3, mix_for(WorkloadKind::Set, 80));
        let ops: Vec<OpSpec> = (0..1000).map(|_| s.next(&mut rng)).collect();
        assert!(ops.iter().all(|o| matches!(o.f, Func::Add | Func::ReadAll)));
        let mut adds: Vec<&Value> = ops
            .iter()
            .filter(|o| o.f == Func::Add)
            .map(|o| &o.value)
            .collect();
        let n = adds.len();
        // 80% writes: adds 80, reads 20 / 5 = 4.
        assert!((900..980).contains(&n), "{n} adds of 1000");
        adds.sort_by_key(|v| v.to_string());
        adds.dedup();
        assert_eq!(adds.len(), n, "every element is added once");
        // Sets are bounded: after 3,000 more adds to 3 slots, new sets took over.
        let s = Generator::new(WorkloadKind::Set, 3, mix_for(WorkloadKind::Set, 100));
        let ops: Vec<OpSpec> = (0..3 * SET_SIZE).map(|_| s.next(&mut rng)).collect();
        let mut per_key = std::collections::BTreeMap::new();
        for o in &ops {
            *per_key.entry(o.key.clone()).or_insert(0u64) += 1;
        }
        assert!(per_key.values().all(|&n| n <= SET_SIZE), "{per_key:?}");
        assert!(s.all_keys().len() > 3, "{:?}", s.all_keys());
        assert!(per_key.keys().all(|k| s.all_keys().contains(k)));
    }
}
