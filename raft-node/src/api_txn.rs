//! `POST /txn`: a transaction of micro-operations, applied atomically.
//!
//! ```text
//! POST /txn {"ops": [["append", "x", "1"], ["list", "x"], ["w", "y", "2"], ["r", "y"]]}
//! 200 {"ops": [["append", "x", "1"], ["list", "x", ["1"]], ["w", "y", "2"], ["r", "y", "2"]]}
//! ```
//!
//! A transaction with a write is one log entry: committed and applied as a whole, each
//! read seeing the writes before it in the same transaction. A read-only one is a
//! ReadIndex read (one leadership confirmation, every read at one applied state), so it
//! costs no log entry and is as fresh as a plain read. Together this makes the store
//! strict serializable. Errors are those of writes (with `"outcome"`) or, for read-only
//! transactions, those of reads.

// Handlers return a ready-made error response as `Err`, as api.rs's do.
#![allow(clippy::result_large_err)]

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::answers::{dropped, error, json_response, not_leader, outcome_unknown, Limits, Resp};
use crate::kv::{Answer, ApplyResult, Command, Query, TxnOp};
use crate::node::{NodeHandle, ReadResult, WriteResult};

/// At most this many micro-operations per transaction.
pub const MAX_OPS: usize = 64;

fn bad(message: impl Into<String>) -> Resp {
    error(StatusCode::BAD_REQUEST, "bad_txn", message)
}

/// The micro-operations of a request body, checked against the API's limits.
pub(crate) fn parse(limits: &Limits, body: &Value) -> Result<Vec<TxnOp>, Resp> {
    let Some(ops) = body.get("ops").and_then(Value::as_array) else {
        return Err(bad(
            "the body is {\"ops\": [...]}, a list of micro-operations such as [\"append\", \"x\", \"1\"]",
        ));
    };
    if ops.is_empty() || ops.len() > MAX_OPS {
        return Err(bad(format!(
            "a transaction has 1 to {MAX_OPS} micro-operations, not {}",
            ops.len()
        )));
    }
    let text = |v: &Value, what: &str| -> Result<String, Resp> {
        v.as_str()
            .map(String::from)
            .ok_or_else(|| bad(format!("{what} must be a string, not {v}")))
    };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let parts = op.as_array().map(Vec::as_slice).unwrap_or_default();
        let (f, key) = match parts {
            [f, key, ..] => (f.as_str().unwrap_or(""), text(key, "a key")?),
            _ => return Err(bad(format!("a micro-operation is [f, key, ...], not {op}"))),
        };
        limits.check_key(&key)?;
        let value = || -> Result<String, Resp> {
            let v = text(parts.get(2).unwrap_or(&Value::Null), "a written value")?;
            limits.check_value(&v)?;
            Ok(v)
        };
        out.push(match (f, parts.len()) {
            ("append", 3) => TxnOp::Append { key, value: value()? },
            ("w", 3) => TxnOp::Write { key, value: value()? },
            ("r", 2) => TxnOp::Read { key },
            ("list", 2) => TxnOp::ReadList { key },
            _ => {
                return Err(bad(format!(
                    "unknown micro-operation {op}: [\"append\", k, v], [\"w\", k, v], [\"r\", k] or [\"list\", k]"
                )))
            }
        });
    }
    Ok(out)
}

/// The answer's ops: each micro-operation, reads with what they read.
fn echo(ops: &[TxnOp], reads: &[Option<Answer>]) -> Value {
    let items: Vec<Value> = ops
        .iter()
        .zip(reads.iter().chain(std::iter::repeat(&None)))
        .map(|(op, read)| match (op, read) {
            (TxnOp::Append { key, value }, _) => json!(["append", key, value]),
            (TxnOp::Write { key, value }, _) => json!(["w", key, value]),
            (TxnOp::Read { key }, Some(Answer::Value(v))) => json!(["r", key, v]),
            (TxnOp::ReadList { key }, Some(Answer::List(l))) => json!(["list", key, l]),
            (TxnOp::Read { key }, _) => json!(["r", key, null]),
            (TxnOp::ReadList { key }, _) => json!(["list", key, []]),
        })
        .collect();
    json!({ "ops": items })
}

/// Runs a transaction on `node`; `split` is the `txn-split` seeded bug.
pub(crate) async fn run(node: &NodeHandle, split: bool, ops: Vec<TxnOp>) -> Resp {
    if split {
        return run_split(node, ops).await;
    }
    if ops.iter().all(TxnOp::is_read) {
        return match node.read(Query::Txn(ops.clone())).await {
            ReadResult::Txn(reads) => json_response(StatusCode::OK, echo(&ops, &reads)),
            other => read_failed(other),
        };
    }
    match node.write(Command::Txn { ops: ops.clone() }).await {
        WriteResult::Done(ApplyResult::Txn { reads }) => {
            json_response(StatusCode::OK, echo(&ops, &reads))
        }
        other => write_failed(other),
    }
}

/// The `txn-split` seeded bug: each micro-operation on its own (a log entry per write, a
/// ReadIndex read per read), so other transactions interleave with it.
async fn run_split(node: &NodeHandle, ops: Vec<TxnOp>) -> Resp {
    let mut reads = Vec::with_capacity(ops.len());
    let mut applied = false;
    for op in &ops {
        let one = vec![op.clone()];
        let result = if op.is_read() {
            match node.read(Query::Txn(one)).await {
                ReadResult::Txn(mut r) => Ok(r.pop().flatten()),
                other => Err(read_failed(other)),
            }
        } else {
            match node.write(Command::Txn { ops: one }).await {
                WriteResult::Done(_) => Ok(None),
                other => Err(write_failed(other)),
            }
        };
        match result {
            Ok(r) => {
                applied |= !op.is_read();
                reads.push(r);
            }
            Err(_) if applied => {
                return outcome_unknown("transaction", "part of the transaction was applied")
            }
            Err(resp) => return resp,
        }
    }
    json_response(StatusCode::OK, echo(&ops, &reads))
}

fn read_failed(r: ReadResult) -> Resp {
    match r {
        ReadResult::NotLeader(hint) => not_leader(&hint, false),
        _ => error(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "leadership could not be confirmed in time; the transaction did nothing",
        ),
    }
}

fn write_failed(w: WriteResult) -> Resp {
    match w {
        WriteResult::NotLeader(hint) => not_leader(&hint, true),
        WriteResult::Dropped => dropped("transaction"),
        WriteResult::Unknown(why) => outcome_unknown("transaction", why),
        WriteResult::Done(_) => outcome_unknown(
            "transaction",
            "the node answered with another kind of result",
        ),
    }
}
