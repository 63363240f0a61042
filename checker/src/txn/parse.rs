//! Transactions read out of a history: operations with `f: "txn"` whose value is a list
//! of micro-operations, in Elle's form (`["append", k, v]`, `["r", k, v]`, `["w", k, v]`;
//! EDN keywords arrive as the same words). docs/history-format.md defines them.
//!
//! Keys are interned to small integers and values must be integers, so the inference
//! that follows works on plain numbers however large the history is.

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::history::{History, Operation, Outcome};

/// An interned key: an index into [`Txns::keys`].
pub type Key = u32;

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not known: the transaction did not complete `ok`.
    Unknown,
    /// A list-append read: the whole list (an absent key reads as empty).
    List(Box<[i64]>),
    /// A register read: `None` is the initial, never written, state.
    Register(Option<i64>),
}

/// One micro-operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mop {
    Append { key: Key, value: i64 },
    Write { key: Key, value: i64 },
    Read { key: Key, seen: Seen },
}

impl Mop {
    pub fn key(&self) -> Key {
        match self {
            Mop::Append { key, .. } | Mop::Write { key, .. } | Mop::Read { key, .. } => *key,
        }
    }
}

/// Which workload a history's transactions belong to: it decides what a read means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// Appends of unique values to lists, reads of whole lists.
    ListAppend,
    /// Writes of unique values to registers, reads of one value.
    RwRegister,
}

impl TxnKind {
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::ListAppend => "list-append",
            TxnKind::RwRegister => "rw-register",
        }
    }
}

/// One transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    /// The operation's id in the history ([`Operation::id`]): "T12" in explanations.
    pub op: usize,
    pub process: i64,
    pub call: u64,
    /// `None` unless it completed (`ok` or `fail`).
    pub ret: Option<u64>,
    pub outcome: Outcome,
    pub mops: Vec<Mop>,
    /// 1-based line of the invocation in the source file (0 when built in memory).
    pub line: usize,
}

/// A history's transactions, with the key names they share.
#[derive(Debug, Clone)]
pub struct Txns {
    pub kind: TxnKind,
    pub txns: Vec<Txn>,
    pub keys: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// `line` is the invocation's: a completion's value is named by the transaction
    /// it completes.
    #[error("the transaction invoked on line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("the history holds no transactions (operations with f \"txn\")")]
    Empty,
    #[error(
        "the history mixes appends and register writes; a history is list-append or rw-register"
    )]
    Mixed,
    #[error("line {line}: value {value} is {what} twice to key {key}; the workloads need every value unique per key")]
    Duplicate {
        line: usize,
        key: String,
        value: i64,
        what: &'static str,
    },
}

/// The function name of a micro-operation, with the EDN keyword's colon, if any, gone.
fn mop_name(v: &Value) -> Option<&str> {
    v.as_str().map(|s| s.strip_prefix(':').unwrap_or(s))
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

struct Interner {
    ids: FxHashMap<String, Key>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: String) -> Key {
        if let Some(id) = self.ids.get(&name) {
            return *id;
        }
        let id = self.names.len() as Key;
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }
}

/// Transactions as they are read, one operation at a time.
struct Collector {
    keys: Interner,
    txns: Vec<Txn>,
    appends: bool,
    writes: bool,
}

impl Collector {
    fn new() -> Collector {
        Collector {
            keys: Interner {
                ids: FxHashMap::default(),
                names: Vec::new(),
            },
            txns: Vec::new(),
            appends: false,
            writes: false,
        }
    }

    fn add(&mut self, op: &Operation) -> Result<(), TxnError> {
        if op.f != "txn" {
            return Ok(());
        }
        let txn = transaction(op, &mut self.keys)?;
        for m in &txn.mops {
            self.appends |= matches!(m, Mop::Append { .. });
            self.writes |= matches!(m, Mop::Write { .. });
        }
        self.txns.push(txn);
        Ok(())
    }

    fn finish(mut self) -> Result<Txns, TxnError> {
        if self.txns.is_empty() {
            return Err(TxnError::Empty);
        }
        if self.appends && self.writes {
            return Err(TxnError::Mixed);
        }
        let kind = if self.writes {
            TxnKind::RwRegister
        } else {
            TxnKind::ListAppend
        };
        self.txns.sort_unstable_by_key(|t| t.op);
        settle_reads(kind, &mut self.txns)?;
        Ok(Txns {
            kind,
            txns: self.txns,
            keys: self.keys.names,
        })
    }
}

/// Reads the transactions of `history`; other operations are ignored (a history may
/// also carry nemesis events and final reads of other shapes).
pub fn transactions(history: &History) -> Result<Txns, TxnError> {
    let mut c = Collector::new();
    for op in &history.ops {
        c.add(op)?;
    }
    c.finish()
}

/// Reads the transactions of a JSON Lines history (docs/history-format.md) as it goes:
/// each operation's JSON is dropped once it is paired, so a million transactions cost
/// their compact form, not a million JSON trees.
pub fn read_jsonl(reader: impl std::io::BufRead) -> Result<Txns, TxnError> {
    let mut pairing = crate::history::Pairing::new();
    let mut c = Collector::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(crate::history::HistoryError::from)?;
        let Some(ev) = crate::history::parse_jsonl_line(&line, i + 1)? else {
            continue;
        };
        if let Some(op) = pairing.push_closing(ev)? {
            c.add(op)?;
            op.input = Value::Null;
            op.output = None;
        }
    }
    for op in pairing.open_ops() {
        c.add(op)?;
    }
    c.finish()
}

/// What a read means depends on the kind, known only once every transaction is read: a
/// null list read is the empty list.
fn settle_reads(kind: TxnKind, txns: &mut [Txn]) -> Result<(), TxnError> {
    for t in txns {
        for m in &mut t.mops {
            let Mop::Read { seen, .. } = m else { continue };
            match (kind, &*seen) {
                (TxnKind::ListAppend, Seen::Register(None)) => *seen = Seen::List(Box::new([])),
                (TxnKind::ListAppend, Seen::Register(Some(v))) => {
                    return Err(TxnError::Malformed {
                        line: t.line,
                        message: format!("a list-append read returns a list, not {v}"),
                    })
                }
                (TxnKind::RwRegister, Seen::List(_)) => {
                    return Err(TxnError::Malformed {
                        line: t.line,
                        message: "a register read returns one value or null, not a list"
                            .to_string(),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn transaction(op: &Operation, keys: &mut Interner) -> Result<Txn, TxnError> {
    let bad = |message: String| TxnError::Malformed {
        line: op.line,
        message,
    };
    // An ok completion carries the reads; otherwise the invocation says what was tried.
    let value = match (&op.outcome, &op.output) {
        (Outcome::Ok, Some(v)) => v,
        _ => &op.input,
    };
    let known = op.outcome == Outcome::Ok && op.output.is_some();
    let Value::Array(items) = value else {
        return Err(bad(format!(
            "a txn's value must be a list of micro-operations, not {value}"
        )));
    };
    let mut mops = Vec::with_capacity(items.len());
    for item in items {
        let parts = match item {
            Value::Array(p) if p.len() == 3 || p.len() == 2 => p,
            _ => {
                return Err(bad(format!(
                    "a micro-operation is [f, key, value], not {item}"
                )))
            }
        };
        let f = mop_name(&parts[0])
            .ok_or_else(|| bad(format!("a micro-operation's f is a word, not {}", parts[0])))?;
        let key = key_text(&parts[1])
            .ok_or_else(|| bad(format!("a key is a string or a number, not {}", parts[1])))?;
        let key = keys.id(key);
        let arg = parts.get(2).unwrap_or(&Value::Null);
        let int = |what: &str| {
            arg.as_i64()
                .ok_or_else(|| bad(format!("{what} takes an integer value, not {arg}")))
        };
        mops.push(match f {
            "append" => Mop::Append {
                key,
                value: int("append")?,
            },
            "w" | "write" => Mop::Write {
                key,
                value: int("w")?,
            },
            "r" | "read" => Mop::Read {
                key,
                seen: if !known {
                    Seen::Unknown
                } else {
                    match arg {
                        Value::Null => Seen::Register(None),
                        Value::Array(xs) => Seen::List(
                            xs.iter()
                                .map(|x| {
                                    x.as_i64().ok_or_else(|| {
                                        bad(format!("a list read holds integers, not {x}"))
                                    })
                                })
                                .collect::<Result<Box<[i64]>, _>>()?,
                        ),
                        other => Seen::Register(Some(other.as_i64().ok_or_else(|| {
                            bad(format!(
                                "a register read is an integer or null, not {other}"
                            ))
                        })?)),
                    }
                },
            },
            other => {
                return Err(bad(format!(
                    "unknown micro-operation {other:?} (append, r or w)"
                )))
            }
        });
    }
    Ok(Txn {
        op: op.id,
        process: op.process,
        call: op.call,
        ret: op.ret,
        outcome: op.outcome,
        mops,
        line: op.line,
    })
}
