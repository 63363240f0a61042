//! The client HTTP API: JSON over HTTP/1.1.
//!
//! | request | success |
//! |---|---|
//! | `GET /kv/:key` | `200 {"key": k, "value": v}` (`"value": null` when absent); linearizable |
//! | `POST /kv/:key` `{"value": v}` | `200 {"key": k, "value": v}` |
//! | `DELETE /kv/:key` | `200 {"key": k, "deleted": bool}` |
//! | `POST /kv/:key/cas` `{"expected": e \| null, "value": v}` | `200 {"key": k, "value": v}`, or `409` `cas_mismatch` with `"current"` |
//! | `POST /kv/:key/append` `{"value": v}` | `200 {"key": k, "value": v}`: `v` appended to the list at `k` |
//! | `GET /kv/:key/list` | `200 {"key": k, "values": [...]}` (`[]` when absent); linearizable |
//! | `POST /txn` `{"ops": [["append", k, v], ["w", k, v], ["r", k], ["list", k], ...]}` | `200 {"ops": [...]}`, reads filled in; atomic, strict serializable (api_txn.rs) |
//! | `GET /client/status` | this node's role, term, leader, indexes |
//! | `GET /client/leader` | `{"id": …, "api": …, "term": …}` (`null`s when unknown) |
//!
//! Every error is JSON `{"error": CODE, "message": TEXT, ...}` with a stable `CODE`. Write
//! errors also say `"outcome"`: `"not_applied"` (certain: it will never take effect, safe
//! to retry) or `"unknown"` (it may still take effect). `503` means not applied, `504`
//! means unknown (or, for reads, that leadership could not be confirmed in time). A body
//! is read within `body::BodyLimits` (413 too large, 408 too slow, 503 `busy`) and must be
//! the documented JSON object; `/kv` takes no query string.
//! `not_leader` errors carry `"leader": {"id", "api"}` when the leader is known.

// Handlers return a ready-made error response as `Err`, so `?` ends a request early.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

pub use crate::answers::Limits;
use crate::answers::{dropped, error, json_response, not_leader, outcome_unknown, Resp};
use crate::body::{closing, read_body, BodyLimits};
use crate::kv::{ApplyResult, Command, Query};
use crate::node::{ChangeResult, NodeHandle, ReadResult, WriteResult};
use crate::raft::{ChangeError, MembershipChange, NodeId};

#[derive(Clone)]
pub struct Api {
    pub node: NodeHandle,
    pub limits: Limits,
    pub bodies: BodyLimits,
    /// The `txn-split` seeded bug: a transaction's micro-operations one at a time.
    pub txn_split: bool,
}

/// What a joining node says it waits for: "waiting for members 2, 3".
fn waiting_for(members: &[NodeId]) -> String {
    let list: Vec<String> = members.iter().map(u64::to_string).collect();
    match list.len() {
        0 => "deciding".into(),
        1 => format!("waiting for member {}", list[0]),
        _ => format!("waiting for members {}", list.join(", ")),
    }
}

/// Decodes `%XX` escapes in a path segment; `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    expected: Option<String>,
    value: String,
}

impl Api {
    pub async fn handle(self, req: Request<Incoming>) -> Result<Resp, Infallible> {
        Ok(self.route(req).await.unwrap_or_else(|e| e))
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Resp, Resp> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        match path.as_str() {
            "/client/status" => {
                only(&method, Method::GET)?;
                return Ok(self.status().await);
            }
            "/client/leader" => {
                only(&method, Method::GET)?;
                return Ok(self.leader().await);
            }
            "/cluster/members" => {
                return match method {
                    Method::GET => Ok(self.members().await),
                    Method::POST => {
                        let b: AddMember = self.body(req).await?;
                        Ok(self.add_member(b).await)
                    }
                    _ => Err(method_not_allowed("GET, POST")),
                };
            }
            "/txn" => {
                only(&method, Method::POST)?;
                let body: Value = self.body(req).await?;
                let ops = crate::api_txn::parse(&self.limits, &body)?;
                return Ok(crate::api_txn::run(&self.node, self.txn_split, ops).await);
            }
            "/cluster/transfer-leader" => {
                only(&method, Method::POST)?;
                let b: TransferTo = self.body(req).await?;
                return Ok(self.transfer(b.id).await);
            }
            _ => {}
        }
        if let Some(id) = path.strip_prefix("/cluster/members/") {
            only(&method, Method::DELETE)?;
            let id: NodeId = id.parse().ok().filter(|&i| i > 0).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_id",
                    format!("{id:?} is not a node id (a positive integer)"),
                )
            })?;
            return Ok(self.change(MembershipChange::Remove { id }).await);
        }
        let Some(rest) = path.strip_prefix("/kv/") else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {path}"),
            ));
        };
        if req.uri().query().is_some() {
            // `/kv/q?x=1` would otherwise write key `q`: the key silently shortened.
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad_key",
                "/kv takes no query string: a '?' in a key must be percent-encoded as %3F \
                 (and '#' as %23)",
            ));
        }
        // The operation a suffix names; lists (append and list) live apart from values.
        let (raw_key, op) = [
            ("/cas", Suffix::Cas),
            ("/append", Suffix::Append),
            ("/list", Suffix::List),
        ]
        .into_iter()
        .find_map(|(s, op)| rest.strip_suffix(s).map(|k| (k, op)))
        .unwrap_or((rest, Suffix::None));
        if raw_key.contains('/') || raw_key.is_empty() {
            return Err(error(
                StatusCode::NOT_FOUND,
                "not_found",
                "keys are one non-empty path segment; encode '/' as %2F",
            ));
        }
        let key = percent_decode(raw_key).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_key",
                "key is not valid percent-encoded UTF-8",
            )
        })?;
        self.limits.check_key(&key)?;
        // One request per (suffix, method): a put and an append read the same body.
        match (op, method) {
            (Suffix::None, Method::GET) => Ok(self.read(Query::Value(key)).await),
            (Suffix::List, Method::GET) => Ok(self.read(Query::List(key)).await),
            (Suffix::None, Method::POST | Method::PUT) | (Suffix::Append, Method::POST) => {
                let body: PutBody = self.body(req).await?;
                self.limits.check_value(&body.value)?;
                let (k, value) = (key.clone(), body.value);
                let cmd = match op {
                    Suffix::Append => Command::Append { key: k, value },
                    _ => Command::Put { key: k, value },
                };
                Ok(self.write(key, cmd).await)
            }
            (Suffix::Cas, Method::POST) => {
                let body: CasBody = self.body(req).await?;
                self.limits.check_value(&body.value)?;
                let cmd = Command::Cas {
                    key: key.clone(),
                    expected: body.expected,
                    value: body.value,
                };
                Ok(self.write(key, cmd).await)
            }
            (Suffix::None, Method::DELETE) => {
                Ok(self.write(key.clone(), Command::Delete { key }).await)
            }
            (Suffix::None, _) => Err(method_not_allowed("GET, POST, PUT, DELETE")),
            (Suffix::List, _) => Err(method_not_allowed("GET")),
            (Suffix::Cas | Suffix::Append, _) => Err(method_not_allowed("POST")),
        }
    }

    async fn body<T: for<'de> Deserialize<'de>>(&self, req: Request<Incoming>) -> Result<T, Resp> {
        let body = read_body(req, &self.bodies).await.map_err(|e| {
            // Only writes have bodies, and this one never reached the log.
            let body =
                json!({"error": e.code(), "message": e.to_string(), "outcome": "not_applied"});
            closing(json_response(e.status(), body))
        })?;
        // Only the documented object: serde would also take a struct from a JSON array
        // (`["a"]` as `{"value": "a"}`).
        let value: Value = serde_json::from_slice(&body.bytes).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("invalid request body: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "the request body must be a JSON object, such as {\"value\": \"v\"}",
            ));
        }
        serde_json::from_value(value).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("invalid request body: {e}"),
            )
        })
    }

    async fn write(&self, key: String, cmd: Command) -> Resp {
        let deleting = matches!(cmd, Command::Delete { .. });
        let value = match &cmd {
            Command::Put { value, .. }
            | Command::Cas { value, .. }
            | Command::Append { value, .. } => Some(value.clone()),
            // Transactions answer through api_txn.rs, never here.
            Command::Delete { .. } | Command::Txn { .. } => None,
        };
        match self.node.write(cmd).await {
            WriteResult::Done(ApplyResult::Applied { previous }) if deleting => json_response(
                StatusCode::OK,
                json!({"key": key, "deleted": previous.is_some()}),
            ),
            WriteResult::Done(ApplyResult::Applied { .. } | ApplyResult::Txn { .. }) => {
                json_response(StatusCode::OK, json!({"key": key, "value": value}))
            }
            WriteResult::Done(ApplyResult::CasMismatch { current }) => json_response(
                StatusCode::CONFLICT,
                json!({
                    "error": "cas_mismatch",
                    "message": "the current value is not the expected one; nothing changed",
                    "key": key,
                    "current": current,
                    "outcome": "not_applied",
                }),
            ),
            WriteResult::NotLeader(hint) => not_leader(&hint, true),
            WriteResult::Dropped => dropped("write"),
            WriteResult::Unknown(why) => outcome_unknown("write", why),
        }
    }

    async fn read(&self, query: Query) -> Resp {
        let key = match &query {
            Query::Value(k) | Query::List(k) => k.clone(),
            // Transactions answer through api_txn.rs, never here.
            Query::Txn(_) => String::new(),
        };
        match self.node.read(query).await {
            ReadResult::Value(v) => json_response(StatusCode::OK, json!({"key": key, "value": v})),
            ReadResult::List(l) => json_response(StatusCode::OK, json!({"key": key, "values": l})),
            ReadResult::Txn(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "a transaction's answer reached the single-key read path",
            ),
            ReadResult::NotLeader(hint) => not_leader(&hint, false),
            ReadResult::Timeout => error(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "leadership could not be confirmed in time; the read did nothing",
            ),
        }
    }

    async fn status(&self) -> Resp {
        let s = match self.node_status().await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let r = &s.raft;
        json_response(
            StatusCode::OK,
            json!({
                "id": r.id,
                "role": r.role.as_str(),
                "term": r.term,
                "voted_for": r.vote,
                "leader": r.leader,
                "leader_api": s.leader.as_ref().and_then(|h| h.api.clone()),
                "commit_index": r.commit_index,
                "applied_index": r.applied_index,
                "last_log_index": r.last_log_index,
                "last_log_term": r.last_log_term,
                "log_length": r.log_length,
                "snapshot_index": r.snapshot_index,
                "refused_term_jumps": r.refused_term_jumps,
                "keys": s.keys,
                "joining": r.joining_waits_for.as_ref().map(|w| waiting_for(w)),
                "catching_up_to": r.catching_up_to.map(|p| json!({"term": p.term, "index": p.index})),
                "voters": r.members.voters,
                "learners": r.members.learners,
            }),
        )
    }

    /// The node's status, or the answer for a node that is stopping.
    async fn node_status(&self) -> Result<crate::node::NodeStatus, Resp> {
        self.node.status().await.ok_or_else(|| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "node is stopping",
            )
        })
    }

    async fn members(&self) -> Resp {
        let s = match self.node_status().await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let m = &s.raft.members;
        json_response(
            StatusCode::OK,
            json!({
                "voters": m.voters,
                "learners": m.learners,
                "addresses": m.addresses,
                "committed": s.raft.members_committed,
                "leader": s.raft.leader,
                "commit_index": s.raft.commit_index,
                "matches": s.matches,
            }),
        )
    }

    async fn add_member(&self, b: AddMember) -> Resp {
        if b.id == 0 {
            return error(StatusCode::BAD_REQUEST, "bad_id", "node id 0 is reserved");
        }
        let change = match b.role {
            MemberRole::Learner => MembershipChange::AddLearner {
                id: b.id,
                address: b.addr,
            },
            MemberRole::Voter => MembershipChange::Promote { id: b.id },
        };
        self.change(change).await
    }

    async fn change(&self, change: MembershipChange) -> Resp {
        match self.node.change(change).await {
            ChangeResult::Done(m) => json_response(
                StatusCode::OK,
                json!({"voters": m.voters, "learners": m.learners, "committed": true}),
            ),
            ChangeResult::Refused(ChangeError::NotLeader { .. }, hint) => not_leader(&hint, true),
            ChangeResult::Refused(e, _) => json_response(
                StatusCode::CONFLICT,
                json!({"error": "change_refused", "message": e.to_string(), "outcome": "not_applied"}),
            ),
            ChangeResult::Dropped => dropped("change"),
            ChangeResult::Unknown(why) => outcome_unknown("change", why),
        }
    }

    async fn transfer(&self, to: NodeId) -> Resp {
        match self.node.transfer(to).await {
            Ok(()) => json_response(
                StatusCode::ACCEPTED,
                json!({"transferring_to": to, "message": "the leader brings it up to date and \
                    tells it to campaign; GET /client/leader shows when it leads"}),
            ),
            Err((ChangeError::NotLeader { .. }, hint)) => not_leader(&hint, false),
            Err((e, _)) => error(StatusCode::CONFLICT, "transfer_refused", e.to_string()),
        }
    }

    async fn leader(&self) -> Resp {
        let s = match self.node_status().await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let hint = s.leader;
        json_response(
            StatusCode::OK,
            json!({
                "id": hint.as_ref().map(|h| h.id),
                "api": hint.as_ref().and_then(|h| h.api.clone()),
                "term": s.raft.term,
            }),
        )
    }
}

/// `POST /cluster/members`: add a learner, or promote one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: NodeId,
    /// Its transport address, for members whose `--peers` do not list it.
    #[serde(default)]
    addr: Option<String>,
    #[serde(default)]
    role: MemberRole,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum MemberRole {
    #[default]
    Learner,
    Voter,
}

/// `POST /cluster/transfer-leader`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferTo {
    id: NodeId,
}

fn only(method: &Method, allowed: Method) -> Result<(), Resp> {
    if *method == allowed {
        Ok(())
    } else {
        Err(method_not_allowed(allowed.as_str()))
    }
}

fn method_not_allowed(allow: &str) -> Resp {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("allowed methods: {allow}"),
    );
    r.headers_mut()
        .insert("allow", allow.parse().expect("static header"));
    r
}

/// The operation a `/kv/:key/...` suffix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    None,
    Cas,
    Append,
    List,
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
