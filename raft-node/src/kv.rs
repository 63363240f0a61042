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
}

/// An in-memory ordered map, rebuilt from the snapshot and the log after a restart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, String>,
}

impl KvStore {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn apply(&mut self, cmd: Command) -> ApplyResult {
        match cmd {
            Command::Put { key, value } => ApplyResult::Applied {
                previous: self.map.insert(key, value),
            },
            Command::Delete { key } => ApplyResult::Applied {
                previous: self.map.remove(&key),
            },
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

    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(&self.map).expect("maps always encode")
    }

    pub fn restore(data: &[u8]) -> Result<Self, postcard::Error> {
        Ok(KvStore {
            map: postcard::from_bytes(data)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let restored = KvStore::restore(&kv.snapshot()).unwrap();
        assert_eq!(restored, kv);
        assert_eq!(restored.get("k").map(String::as_str), Some("2"));
        assert!(KvStore::restore(&[0xFF, 0xFF]).is_err());
        let cmd = Command::Put {
            key: "ü".into(),
            value: "v".into(),
        };
        assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
    }
}
