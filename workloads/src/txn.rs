//! Transactions as clients send them: the generator's micro-operations (Elle's form,
//! `["append", k, v]`, `["w", k, v]`, `["r", k, null]`, integer keys and values, what
//! the history records and the checker reads) translated to a server's API and back.
//!
//! A transaction's [`OpSpec::key`] names its workload (`list-append` or `rw-register`):
//! a read-only transaction's `["r", k, null]` reads a list in one and a register in the
//! other, and nothing else in it says which.

use serde_json::{json, Value};

use crate::generator::{OpSpec, WorkloadKind};

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
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
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
