//! The key-value state machine that the Raft log drives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A write, as it travels in a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// Compare-and-set: `expected: None` means "the key must be absent".
    Cas {
        key: String,
        expected: Option<String>,
        value: String,
    },
    /// Appends `value` to the list at `key` (lists live apart from values: the set
    /// workload's adds, and later transactions' appends).
    Append {
        key: String,
        value: String,
    },
    /// A transaction: its micro-operations applied in order, atomically, as one log
    /// entry, each read seeing the writes before it. Last, so entries written before
    /// transactions existed decode as they did.
    Txn {
        ops: Vec<TxnOp>,
    },
}

/// One micro-operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Append to the list at `key`.
    Append { key: String, value: String },
    /// Write the value at `key`.
    Write { key: String, value: String },
    /// Read the value at `key`.
    Read { key: String },
    /// Read the whole list at `key`.
    ReadList { key: String },
}

impl TxnOp {
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Append { key, .. }
            | TxnOp::Write { key, .. }
            | TxnOp::Read { key }
            | TxnOp::ReadList { key } => key,
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, TxnOp::Read { .. } | TxnOp::ReadList { .. })
    }
}

/// What a linearizable read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The value at a key.
    Value(String),
    /// The whole list at a key.
    List(String),
    /// A read-only transaction: every read at one state.
    Txn(Vec<TxnOp>),
}

impl From<&str> for Query {
    fn from(key: &str) -> Query {
        Query::Value(key.to_string())
    }
}

/// A read's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Value(Option<String>),
    List(Vec<String>),
    /// A transaction's reads, one per micro-operation (`None` for a write).
    Txn(Vec<Option<Answer>>),
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("commands always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// What applying a command did (the state machine's answer, not the client's outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// The write took effect; `previous` is the value it replaced.
    Applied { previous: Option<String> },
    /// A compare-and-set whose expectation did not hold; nothing changed.
    CasMismatch { current: Option<String> },
    /// A transaction applied: what each micro-operation read (`None` for a write).
    Txn { reads: Vec<Option<Answer>> },
}

/// An in-memory ordered map, rebuilt from the snapshot and the log after a restart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, String>,
    /// The lists `Append` builds, by key: a namespace of their own, so a put never
    /// meets a list.
    lists: BTreeMap<String, Vec<String>>,
}

impl KvStore {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }

    pub fn len(&self) -> usize {
        self.map.len() + self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.lists.is_empty()
    }

    pub fn query(&self, q: &Query) -> Answer {
        match q {
            Query::Value(key) => Answer::Value(self.map.get(key).cloned()),
            Query::List(key) => Answer::List(self.lists.get(key).cloned().unwrap_or_default()),
            Query::Txn(ops) => Answer::Txn(ops.iter().map(|op| self.read_op(op)).collect()),
        }
    }

    /// What a micro-operation reads (`None` for a write).
    fn read_op(&self, op: &TxnOp) -> Option<Answer> {
        match op {
            TxnOp::Read { key } => Some(Answer::Value(self.map.get(key).cloned())),
            TxnOp::ReadList { key } => Some(Answer::List(
                self.lists.get(key).cloned().unwrap_or_default(),
            )),
            TxnOp::Append { .. } | TxnOp::Write { .. } => None,
        }
    }

    pub fn apply(&mut self, cmd: Command) -> ApplyResult {
        match cmd {
            Command::Put { key, value } => ApplyResult::Applied {
                previous: self.map.insert(key, value),
            },
            Command::Delete { key } => ApplyResult::Applied {
                previous: self.map.remove(&key),
            },
            Command::Append { key, value } => {
                self.lists.entry(key).or_default().push(value);
                ApplyResult::Applied { previous: None }
            }
            Command::Txn { ops } => {
                let mut reads = Vec::with_capacity(ops.len());
                for op in ops {
                    reads.push(self.read_op(&op));
                    match op {
                        TxnOp::Append { key, value } => {
                            self.lists.entry(key).or_default().push(value)
                        }
                        TxnOp::Write { key, value } => {
                            self.map.insert(key, value);
                        }
                        TxnOp::Read { .. } | TxnOp::ReadList { .. } => {}
                    }
                }
                ApplyResult::Txn { reads }
            }
            Command::Cas {
                key,
                expected,
                value,
            } => {
                let current = self.map.get(&key);
                if current != expected.as_ref() {
                    return ApplyResult::CasMismatch {
                        current: current.cloned(),
                    };
                }
                ApplyResult::Applied {
                    previous: self.map.insert(key, value),
                }
            }
        }
    }

    /// The map, then the lists only if there are any: a snapshot without lists is
    /// byte for byte what nodes wrote before lists existed, and both restore.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = postcard::to_stdvec(&self.map).expect("maps always encode");
        if !self.lists.is_empty() {
            out.extend(postcard::to_stdvec(&self.lists).expect("maps always encode"));
        }
        out
    }

    pub fn restore(data: &[u8]) -> Result<Self, postcard::Error> {
        let (map, rest) = postcard::take_from_bytes(data)?;
        let lists = match rest.is_empty() {
            true => BTreeMap::new(),
            false => {
                let (lists, rest) = postcard::take_from_bytes(rest)?;
                if !rest.is_empty() {
                    return Err(postcard::Error::DeserializeBadEncoding);
                }
                lists
            }
        };
        Ok(KvStore { map, lists })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_reads_its_own_writes_and_survives_a_snapshot() {
        let mut kv = KvStore::default();
        let op = |f: &str, k: &str, v: &str| match f {
            "append" => TxnOp::Append {
                key: k.into(),
                value: v.into(),
            },
            "w" => TxnOp::Write {
                key: k.into(),
                value: v.into(),
            },
            "r" => TxnOp::Read { key: k.into() },
            _ => TxnOp::ReadList { key: k.into() },
        };
        let r = kv.apply(Command::Txn {
            ops: vec![
                op("list", "x", ""),
                op("append", "x", "1"),
                op("list", "x", ""),
                op("r", "y", ""),
                op("w", "y", "5"),
                op("r", "y", ""),
            ],
        });
        assert_eq!(
            r,
            ApplyResult::Txn {
                reads: vec![
                    Some(Answer::List(vec![])),
                    None,
                    Some(Answer::List(vec!["1".into()])),
                    Some(Answer::Value(None)),
                    None,
                    Some(Answer::Value(Some("5".into()))),
                ]
            }
        );
        let cmd = Command::Txn {
            ops: vec![op("append", "x", "2")],
        };
        assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
        let back = KvStore::restore(&kv.snapshot()).unwrap();
        assert_eq!(
            back.query(&Query::Txn(vec![op("list", "x", ""), op("r", "y", "")])),
            Answer::Txn(vec![
                Some(Answer::List(vec!["1".into()])),
                Some(Answer::Value(Some("5".into())))
            ])
        );
    }

    #[test]
    fn cas_put_delete_and_snapshot_round_trip() {
        let mut kv = KvStore::default();
        let cas = |e: Option<&str>, v: &str| Command::Cas {
            key: "k".into(),
            expected: e.map(String::from),
            value: v.into(),
        };
        assert_eq!(
            kv.apply(cas(None, "1")),
            ApplyResult::Applied { previous: None }
        );
        assert_eq!(
            kv.apply(cas(None, "2")),
            ApplyResult::CasMismatch {
                current: Some("1".into())
            }
        );
        assert_eq!(
            kv.apply(cas(Some("1"), "2")),
            ApplyResult::Applied {
                previous: Some("1".into())
            }
        );
        kv.apply(Command::Put {
            key: "a".into(),
            value: "x".into(),
        });
        kv.apply(Command::Delete { key: "a".into() });
        // A snapshot without lists is the old format: the map alone.
        assert_eq!(kv.snapshot(), postcard::to_stdvec(&kv.map).unwrap());
        for v in ["1", "2"] {
            kv.apply(Command::Append {
                key: "s".into(),
                value: v.into(),
            });
        }
        assert_eq!(
            kv.query(&Query::List("s".into())),
            Answer::List(vec!["1".into(), "2".into()])
        );
        assert_eq!(kv.query(&Query::List("k".into())), Answer::List(vec![]));
        assert_eq!(kv.query(&"s".into()), Answer::Value(None));
        let restored = KvStore::restore(&kv.snapshot()).unwrap();
        assert_eq!(restored, kv);
        assert_eq!(restored.get("k").map(String::as_str), Some("2"));
        assert!(KvStore::restore(&[0xFF, 0xFF]).is_err());
        let mut trailing = kv.snapshot();
        trailing.push(0);
        assert!(
            KvStore::restore(&trailing).is_err(),
            "bytes after the lists"
        );
        let cmd = Command::Put {
            key: "ü".into(),
            value: "v".into(),
        };
        assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
    }
}
