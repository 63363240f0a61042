//! Transactions as clients send them: the generator's micro-operations (Elle's form,
//! `["append", k, v]`, `["w", k, v]`, `["r", k, null]`, integer keys and values, what
//! the history records and the checker reads) translated to a server's API and back.
//!
//! A transaction's [`OpSpec::key`] names its workload (`list-append` or `rw-register`):
//! a read-only transaction's `["r", k, null]` reads a list in one and a register in the
//! other, and nothing else in it says which.

use serde_json::{json, Value};

use crate::generator::{text, OpSpec, WorkloadKind};

/// Whether a transaction's reads are of lists (list-append) or registers.
pub fn reads_lists(op: &OpSpec) -> bool {
    op.key == WorkloadKind::ListAppend.name()
}

fn mops(op: &OpSpec) -> &[Value] {
    op.value.as_array().map_or(&[], Vec::as_slice)
}

fn f_of(m: &Value) -> &str {
    m.get(0).and_then(Value::as_str).unwrap_or("")
}

/// raft-node's `POST /txn` body: keys and values as decimal strings, list reads as
/// `["list", k]`.
pub fn raft_node_body(op: &OpSpec) -> Value {
    let ops: Vec<Value> = mops(op)
        .iter()
        .map(|m| {
            let k = text(&m[1]);
            match f_of(m) {
                "r" if reads_lists(op) => json!(["list", k]),
                "r" => json!(["r", k]),
                f => json!([f, k, text(&m[2])]),
            }
        })
        .collect();
    json!({ "ops": ops })
}

/// Whether raft-node's answer has one micro-operation per one asked, in order.
pub fn check_raft_node(op: &OpSpec, body: &Value) -> Result<(), String> {
    let asked = mops(op);
    let Some(got) = body["ops"].as_array() else {
        return Err("a transaction's answer has no \"ops\" list".into());
    };
    if got.len() != asked.len() {
        return Err(format!(
            "a transaction of {} micro-operations was answered with {}",
            asked.len(),
            got.len()
        ));
    }
    Ok(())
}

/// A value read back: the integer it was written as, or the text itself when it is not
/// one (the checker then names the transaction that read it).
fn int_or_text(v: &Value) -> Value {
    match v {
        Value::String(s) => s.parse::<i64>().map_or_else(|_| v.clone(), |n| json!(n)),
        other => other.clone(),
    }
}

/// The completed transaction in the history's form: the micro-operations asked, each
/// read filled with what raft-node answered.
pub fn from_raft_node(op: &OpSpec, body: &Value) -> Value {
    let got = body["ops"].as_array().map_or(&[][..], Vec::as_slice);
    let done: Vec<Value> = mops(op)
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if f_of(m) != "r" {
                return m.clone();
            }
            let read = got.get(i).and_then(|g| g.get(2)).unwrap_or(&Value::Null);
            let seen = match read {
                Value::Array(xs) => Value::Array(xs.iter().map(int_or_text).collect()),
                other => int_or_text(other),
            };
            json!(["r", m[1], seen])
        })
        .collect();
    Value::Array(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Func;

    #[test]
    fn raft_node_round_trip() {
        let op = OpSpec {
            f: Func::Txn,
            key: "list-append".into(),
            value: json!([["append", 3, 7], ["r", 3, null], ["r", 4, null]]),
        };
        assert_eq!(
            raft_node_body(&op),
            json!({"ops": [["append", "3", "7"], ["list", "3"], ["list", "4"]]})
        );
        let answer =
            json!({"ops": [["append", "3", "7"], ["list", "3", ["1", "7"]], ["list", "4", []]]});
        assert!(check_raft_node(&op, &answer).is_ok());
        assert_eq!(
            from_raft_node(&op, &answer),
            json!([["append", 3, 7], ["r", 3, [1, 7]], ["r", 4, []]])
        );
        assert!(check_raft_node(&op, &json!({"ops": []})).is_err());
        let reg = OpSpec {
            f: Func::Txn,
            key: "rw-register".into(),
            value: json!([["r", 1, null], ["w", 1, 9]]),
        };
        assert_eq!(
            raft_node_body(&reg),
            json!({"ops": [["r", "1"], ["w", "1", "9"]]})
        );
        assert_eq!(
            from_raft_node(&reg, &json!({"ops": [["r", "1", null], ["w", "1", "9"]]})),
            json!([["r", 1, null], ["w", 1, 9]])
        );
        assert!(!reg.writes() || reg.f == Func::Txn);
    }
}

/// Transactions on etcd's v3 JSON gateway, as Jepsen's etcd tests make them: read every
/// key the transaction touches in one `txn` of ranges (one revision), work the
/// micro-operations out locally, then write in one `txn` guarded on each key's
/// `mod_revision` being what was read. The guard makes the two steps one atomic
/// transaction at the write's revision; a guard that fails means nothing was written.
pub mod etcd {
    use std::collections::BTreeMap;

    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use serde_json::{json, Value};

    use super::{f_of, mops, reads_lists, text};
    use crate::generator::OpSpec;

    /// The etcd key of transaction key `k` (apart from the other workloads' keys).
    fn etcd_key(k: &Value) -> String {
        B64.encode(format!("txn/{}", text(k)))
    }

    /// The keys a transaction touches, each once, in order of first use.
    fn keys(op: &OpSpec) -> Vec<Value> {
        let mut ks: Vec<Value> = Vec::new();
        for m in mops(op) {
            if !ks.contains(&m[1]) {
                ks.push(m[1].clone());
            }
        }
        ks
    }

    /// The first step: every key in one transaction of ranges.
    pub fn read_request(op: &OpSpec, serializable: bool) -> Value {
        let ranges: Vec<Value> = keys(op)
            .iter()
            .map(|k| {
                let mut r = json!({"key": etcd_key(k)});
                if serializable {
                    r["serializable"] = json!(true);
                }
                json!({"requestRange": r})
            })
            .collect();
        json!({"success": ranges})
    }

    /// What the first step read: each key's value (a list, or a register) and
    /// `mod_revision` (0 when absent, which etcd compares as such).
    #[derive(Debug, Clone, PartialEq)]
    pub struct Snapshot {
        values: BTreeMap<String, (Vec<i64>, String)>,
    }

    fn int64(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => "0".to_string(),
        }
    }

    /// Reads the first step's answer.
    pub fn parse_read(op: &OpSpec, body: &Value) -> Result<Snapshot, String> {
        let ks = keys(op);
        let responses = body["responses"].as_array().map_or(&[][..], Vec::as_slice);
        if responses.len() != ks.len() {
            return Err(format!(
                "etcd answered {} ranges to {} asked",
                responses.len(),
                ks.len()
            ));
        }
        let mut values = BTreeMap::new();
        for (k, r) in ks.iter().zip(responses) {
            let kv = &r["response_range"]["kvs"][0];
            let (list, rev) = if kv.is_null() {
                (Vec::new(), "0".to_string())
            } else {
                let raw = B64
                    .decode(kv["value"].as_str().unwrap_or(""))
                    .map_err(|e| format!("etcd sent a bad base64 value: {e}"))?;
                let text = String::from_utf8_lossy(&raw);
                let list: Vec<i64> = serde_json::from_str(&text)
                    .map_err(|e| format!("key {k} holds {text:?}, not a list of integers: {e}"))?;
                (list, int64(&kv["mod_revision"]))
            };
            values.insert(text(k), (list, rev));
        }
        Ok(Snapshot { values })
    }

    /// The micro-operations worked out on `snap`: the completed transaction (reads
    /// filled in) and, if it writes, the second step's guarded write.
    pub fn apply(op: &OpSpec, snap: &Snapshot) -> (Value, Option<Value>) {
        let lists = reads_lists(op);
        let mut state = snap.values.clone();
        let mut written: Vec<String> = Vec::new();
        let done: Vec<Value> = mops(op)
            .iter()
            .map(|m| {
                let k = text(&m[1]);
                let entry = state.entry(k.clone()).or_default();
                match f_of(m) {
                    "r" if lists => json!(["r", m[1], entry.0]),
                    "r" => json!(["r", m[1], entry.0.last()]),
                    f => {
                        let v = m[2].as_i64().unwrap_or(0);
                        if f == "append" {
                            entry.0.push(v);
                        } else {
                            entry.0 = vec![v];
                        }
                        if !written.contains(&k) {
                            written.push(k);
                        }
                        m.clone()
                    }
                }
            })
            .collect();
        if written.is_empty() {
            return (Value::Array(done), None);
        }
        let compare: Vec<Value> = snap
            .values
            .iter()
            .map(|(k, (_, rev))| {
                json!({"key": etcd_key(&json!(k)), "target": "MOD", "result": "EQUAL",
                       "mod_revision": rev})
            })
            .collect();
        let puts: Vec<Value> = written
            .iter()
            .map(|k| {
                let list = &state[k].0;
                let text = serde_json::to_string(list).expect("integers serialize");
                json!({"requestPut": {"key": etcd_key(&json!(k)), "value": B64.encode(text)}})
            })
            .collect();
        (
            Value::Array(done),
            Some(json!({"compare": compare, "success": puts})),
        )
    }

    /// Whether the guarded write took effect: proto3 JSON leaves out a false
    /// `succeeded`.
    pub fn written(body: &Value) -> bool {
        body["succeeded"] == Value::Bool(true)
    }
}

#[cfg(test)]
mod etcd_tests {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use serde_json::json;

    use super::etcd;
    use crate::generator::{Func, OpSpec};

    #[test]
    fn a_transaction_is_a_read_then_a_write_guarded_on_revisions() {
        let op = OpSpec {
            f: Func::Txn,
            key: "list-append".into(),
            value: json!([
                ["r", 1, null],
                ["append", 1, 5],
                ["append", 2, 6],
                ["r", 2, null]
            ]),
        };
        let read = etcd::read_request(&op, false);
        assert_eq!(read["success"].as_array().unwrap().len(), 2);
        assert_eq!(
            read["success"][0]["requestRange"]["key"],
            B64.encode("txn/1")
        );
        let answer = json!({"succeeded": true, "responses": [
            {"response_range": {"kvs": [{"key": B64.encode("txn/1"), "value": B64.encode("[3,4]"), "mod_revision": "17"}]}},
            {"response_range": {}}
        ]});
        let snap = etcd::parse_read(&op, &answer).unwrap();
        let (done, write) = etcd::apply(&op, &snap);
        assert_eq!(
            done,
            json!([
                ["r", 1, [3, 4]],
                ["append", 1, 5],
                ["append", 2, 6],
                ["r", 2, [6]]
            ])
        );
        let write = write.unwrap();
        let compare = write["compare"].as_array().unwrap();
        assert_eq!(compare.len(), 2);
        assert!(compare.iter().any(|c| c["mod_revision"] == "17"));
        assert!(compare.iter().any(|c| c["mod_revision"] == "0"));
        assert_eq!(
            write["success"][0]["requestPut"]["value"],
            B64.encode("[3,4,5]")
        );
        assert!(!etcd::written(&json!({"header": {}})));
        // Read-only: no second step.
        let ro = OpSpec {
            value: json!([["r", 1, null]]),
            ..op.clone()
        };
        assert!(etcd::apply(
            &ro,
            &etcd::parse_read(&ro, &json!({"responses": [{"response_range": {}}]})).unwrap()
        )
        .1
        .is_none());
        assert!(etcd::parse_read(&ro, &json!({"responses": []})).is_err());
    }
}
