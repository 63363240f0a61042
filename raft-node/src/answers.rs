//! What every client API handler answers with: the response type, the error answers
//! whose `"outcome"` tells a client whether a write may still take effect, and the
//! bounds on what a request may carry. Shared by the `/kv` and `/cluster` handlers
//! (api.rs) and `/txn` (api_txn.rs), so both say the same thing the same way.

// Handlers return a ready-made error response as `Err`, so `?` ends a request early.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::node::LeaderHint;

pub(crate) type Resp = Response<Full<Bytes>>;

/// Bounds on what a client request may carry (the body's own limits are
/// [`BodyLimits`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key: usize,
    pub max_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key: 1024,
            max_value: 256 << 10,
        }
    }
}

impl Limits {
    pub(crate) fn check_key(&self, key: &str) -> Result<(), Resp> {
        if key.len() > self.max_key {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "key_too_large",
                format!("key is {} bytes; the limit is {}", key.len(), self.max_key),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_value(&self, v: &str) -> Result<(), Resp> {
        if v.len() > self.max_value {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
                format!(
                    "value is {} bytes; the limit is {}",
                    v.len(),
                    self.max_value
                ),
            ));
        }
        Ok(())
    }
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Resp {
    let mut text = serde_json::to_vec(&body).expect("json values serialize");
    text.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    r
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Resp {
    json_response(status, json!({"error": code, "message": message.into()}))
}

fn hint_json(hint: &Option<LeaderHint>) -> Value {
    match hint {
        Some(h) => json!({"id": h.id, "api": h.api}),
        None => Value::Null,
    }
}

/// A write or change whose log entry a new leader replaced: it never takes effect.
pub(crate) fn dropped(what: &str) -> Resp {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({
            "error": "dropped",
            "message": format!("a new leader replaced this {what}'s log entry; it will never take effect"),
            "outcome": "not_applied",
        }),
    )
}

/// A write or change that may or may not take effect.
pub(crate) fn outcome_unknown(what: &str, why: &str) -> Resp {
    json_response(
        StatusCode::GATEWAY_TIMEOUT,
        json!({
            "error": "outcome_unknown",
            "message": format!("{why}; the {what} may or may not take effect"),
            "outcome": "unknown",
        }),
    )
}

pub(crate) fn not_leader(hint: &Option<LeaderHint>, write: bool) -> Resp {
    let mut body = json!({
        "error": "not_leader",
        "message": match hint {
            Some(h) => format!("this node is not the leader; node {} is", h.id),
            None => "this node is not the leader and knows no leader yet".to_string(),
        },
        "leader": hint_json(hint),
    });
    if write {
        body["outcome"] = json!("not_applied");
    }
    json_response(StatusCode::SERVICE_UNAVAILABLE, body)
}
