//! The HTTP client that performs one operation against a cluster and says what became of
//! it.
//!
//! The classification is what makes a chaos test trustworthy:
//! - `Ok`: the server answered success.
//! - `Fail`: certainly not applied — the request never reached a server (connection
//!   refused), or the server said so (`not_leader`, `"outcome": "not_applied"`, a 409 cas
//!   mismatch, a 4xx rejection). Reads fail on any error: they change nothing.
//! - `Info`: a write whose request may have reached a server but whose answer did not come
//!   (timeout, reset, 504, other 5xx). It may still take effect.
//!
//! A write is retried on another node only after a definite "not applied", so no write is
//! ever applied twice by a retry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::generator::{Func, OpSpec};

/// A node's client API address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeApi {
    pub id: u64,
    /// `host:port`
    pub addr: String,
}

/// What became of an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Took effect; the value is the result (for reads, the value read).
    Ok(Value),
    /// Certainly did not take effect.
    Fail(String),
    /// May or may not have taken effect.
    Info(String),
}

/// How one HTTP attempt ended.
enum Attempt {
    /// Finished; `true` if the node itself answered.
    Done(Outcome, bool),
    /// Definitely not applied; try node `Some(index)` next, or the next one in turn.
    Redirect(Option<usize>, String),
}

/// The HTTP/JSON API a cluster speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// raft-node's `/kv/:key` API: followers answer `not_leader` with a hint.
    #[default]
    RaftNode,
    /// etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`,
    /// `/v3/kv/deleterange`): base64 keys and values, any member serves any request.
    Etcd,
}

pub struct KvClient {
    http: Client<HttpConnector, Full<Bytes>>,
    dialect: Dialect,
    nodes: Vec<NodeApi>,
    /// Index of the node believed to lead; shared by every operation.
    leader: AtomicUsize,
}

fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl KvClient {
    pub fn new(nodes: Vec<NodeApi>) -> Self {
        Self::with_dialect(nodes, Dialect::RaftNode)
    }

    pub fn with_dialect(nodes: Vec<NodeApi>, dialect: Dialect) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .build(connector);
        KvClient {
            http,
            dialect,
            nodes,
            leader: AtomicUsize::new(0),
        }
    }

    pub fn nodes(&self) -> &[NodeApi] {
        &self.nodes
    }

    /// Points operations without a home node at `nodes[index]` (the known leader).
    pub fn set_leader(&self, index: usize) {
        self.leader.store(index, Ordering::Relaxed);
    }

    /// Performs `op`, trying nodes until a definite answer or `deadline`. Reads start at
    /// node `home` when given (as Jepsen binds clients to nodes, so a node that answers
    /// reads it should not is asked); everything else starts at the presumed leader.
    pub async fn invoke(&self, op: &OpSpec, deadline: Instant, home: Option<usize>) -> Outcome {
        let homed = op.f == Func::Read && home.is_some();
        let mut target = match home {
            Some(h) if homed => h % self.nodes.len(),
            _ => self.leader.load(Ordering::Relaxed) % self.nodes.len(),
        };
        let mut last_error = String::from("no attempt made");
        let mut attempts = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Outcome::Fail(format!("not applied before the deadline: {last_error}"));
            }
            attempts += 1;
            match self.attempt(&self.nodes[target], op, deadline).await {
                Attempt::Done(outcome, answered) => {
                    if answered && !homed {
                        self.leader.store(target, Ordering::Relaxed);
                    } else {
                        // No answer (paused, partitioned, dead): steer the next
                        // operations elsewhere instead of queueing behind this node.
                        let next = (target + 1) % self.nodes.len();
                        let _ = self.leader.compare_exchange(
                            target,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    return outcome;
                }
                Attempt::Redirect(hint, why) => {
                    last_error = why;
                    target = match hint {
                        Some(i) if i != target => i,
                        _ => (target + 1) % self.nodes.len(),
                    };
                    // After trying every node once, slow down: an election is under way.
                    if attempts >= self.nodes.len() {
                        let pause = Duration::from_millis(25)
                            .min(deadline.saturating_duration_since(Instant::now()));
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
    }

    fn hint(&self, body: &Value) -> Option<usize> {
        let id = match &body["leader"] {
            Value::Object(o) => o.get("id").and_then(Value::as_u64),
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }?;
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The method, path and JSON body of `op` in this client's dialect.
    fn request_for(&self, op: &OpSpec) -> (Method, String, Option<Value>) {
        if self.dialect == Dialect::Etcd {
            return etcd::request(op);
        }
        let key = percent_encode(&op.key);
        match op.f {
            Func::Read => (Method::GET, format!("/kv/{key}"), None),
            Func::Write => (
                Method::POST,
                format!("/kv/{key}"),
                Some(json!({"value": op.value})),
            ),
            Func::Cas => (
                Method::POST,
                format!("/kv/{key}/cas"),
                Some(json!({"expected": op.value[0], "value": op.value[1]})),
            ),
            Func::Delete => (Method::DELETE, format!("/kv/{key}"), None),
        }
    }

    async fn attempt(&self, node: &NodeApi, op: &OpSpec, deadline: Instant) -> Attempt {
        let (method, path, body) = self.request_for(op);
        let is_read = op.f == Func::Read;
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", node.addr))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("valid request");
        let sent = tokio::time::timeout_at(deadline, async {
            let resp = self.http.request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, bytes))
        })
        .await;
        let unknown = |why: String, answered: bool| {
            if is_read {
                Attempt::Done(Outcome::Fail(why), answered)
            } else {
                Attempt::Done(Outcome::Info(why), answered)
            }
        };
        let (status, bytes) = match sent {
            Err(_) => return unknown(format!("no answer from node {} in time", node.id), false),
            Ok(Err(e)) => {
                let connect = e
                    .downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some_and(|e| e.is_connect());
                if connect {
                    return Attempt::Redirect(None, format!("node {} unreachable: {e}", node.id));
                }
                return unknown(format!("node {}: {e}", node.id), false);
            }
            Ok(Ok(r)) => r,
        };
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if self.dialect == Dialect::Etcd {
            return match etcd::outcome(op, status, &body) {
                Some(o) => Attempt::Done(o, true),
                None => unknown(
                    format!("node {}: {status} {}", node.id, body["error"]),
                    true,
                ),
            };
        }
        let error = body["error"].as_str().unwrap_or("").to_string();
        let done = |o: Outcome| Attempt::Done(o, true);
        match status {
            s if s.is_success() => done(Outcome::Ok(match op.f {
                Func::Read => body.get("value").cloned().unwrap_or(Value::Null),
                Func::Delete => Value::Null,
                _ => op.value.clone(),
            })),
            StatusCode::NOT_FOUND if is_read && (error != "not_found" || body.is_null()) => {
                // An absent key, for servers that say so with a 404.
                done(Outcome::Ok(Value::Null))
            }
            StatusCode::CONFLICT => done(Outcome::Fail(format!(
                "cas mismatch (current {})",
                body["current"]
            ))),
            _ if error == "not_leader" => Attempt::Redirect(
                self.hint(&body),
                format!("node {} is not the leader", node.id),
            ),
            _ if body["outcome"] == "not_applied" => {
                done(Outcome::Fail(format!("node {}: {error}", node.id)))
            }
            s if s.is_client_error() => done(Outcome::Fail(format!(
                "node {} rejected it: {s} {error}",
                node.id
            ))),
            // A 5xx without "not applied": the node answered but the outcome is open.
            s => unknown(format!("node {}: {s} {error}", node.id), true),
        }
    }
}

/// etcd's v3 JSON gateway: requests and what their answers mean.
mod etcd {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use hyper::{Method, StatusCode};
    use serde_json::{json, Value};

    use super::Outcome;
    use crate::generator::{Func, OpSpec};

    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn b64(s: &str) -> String {
        B64.encode(s.as_bytes())
    }

    pub(super) fn request(op: &OpSpec) -> (Method, String, Option<Value>) {
        let key = b64(&op.key);
        let (path, body) = match op.f {
            Func::Read => ("/v3/kv/range", json!({"key": key})),
            Func::Write => (
                "/v3/kv/put",
                json!({"key": key, "value": b64(&text(&op.value))}),
            ),
            Func::Cas => (
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": key, "result": "EQUAL", "target": "VALUE",
                                 "value": b64(&text(&op.value[0]))}],
                    "success": [{"requestPut": {"key": key, "value": b64(&text(&op.value[1]))}}],
                }),
            ),
            Func::Delete => ("/v3/kv/deleterange", json!({"key": key})),
        };
        (Method::POST, path.to_string(), Some(body))
    }

    /// A definite outcome, or `None` when the answer leaves it open. Proto3 JSON leaves
    /// out fields at their default, so a missing `kvs` is an absent key and a missing
    /// `succeeded` a failed comparison.
    pub(super) fn outcome(op: &OpSpec, status: StatusCode, body: &Value) -> Option<Outcome> {
        if !status.is_success() {
            // gRPC code 3 (invalid argument) and friends are rejections; anything else
            // (unavailable, deadline exceeded, leader changed) may still take effect.
            let code = body["code"].as_u64().unwrap_or(0);
            let why = format!("etcd: {}", body["error"].as_str().unwrap_or("error"));
            return match code {
                3 | 5 | 7 | 9 | 11 => Some(Outcome::Fail(why)),
                _ if op.f == Func::Read => Some(Outcome::Fail(why)),
                _ => None,
            };
        }
        Some(match op.f {
            Func::Read => {
                let raw = body["kvs"][0]["value"].as_str();
                match raw {
                    None if body["kvs"].is_null() => Outcome::Ok(Value::Null),
                    None => Outcome::Ok(json!("")),
                    Some(v) => match B64.decode(v) {
                        Ok(bytes) => Outcome::Ok(json!(String::from_utf8_lossy(&bytes))),
                        Err(e) => Outcome::Fail(format!("etcd sent a bad base64 value: {e}")),
                    },
                }
            }
            Func::Cas if body["succeeded"] != Value::Bool(true) => {
                Outcome::Fail("cas mismatch".into())
            }
            Func::Delete => Outcome::Ok(Value::Null),
            _ => Outcome::Ok(op.value.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{percent_encode, Outcome};

    #[test]
    fn etcd_requests_and_answers() {
        use super::etcd;
        use crate::generator::{Func, OpSpec};
        use hyper::StatusCode;
        use serde_json::json;
        let cas = OpSpec {
            f: Func::Cas,
            key: "k1".into(),
            value: json!(["1", "2"]),
        };
        let (_, path, body) = etcd::request(&cas);
        assert_eq!(path, "/v3/kv/txn");
        let body = body.unwrap();
        assert_eq!(body["compare"][0]["key"], "azE=");
        assert_eq!(body["compare"][0]["value"], "MQ==");
        assert_eq!(body["success"][0]["requestPut"]["value"], "Mg==");
        let ok = etcd::outcome(&cas, StatusCode::OK, &json!({"succeeded": true}));
        assert_eq!(ok, Some(Outcome::Ok(json!(["1", "2"]))));
        // Proto3 JSON omits false: a missing `succeeded` is a failed comparison.
        let miss = etcd::outcome(&cas, StatusCode::OK, &json!({"header": {}}));
        assert!(matches!(miss, Some(Outcome::Fail(_))));
        let read = OpSpec {
            f: Func::Read,
            key: "k1".into(),
            value: serde_json::Value::Null,
        };
        let got = etcd::outcome(
            &read,
            StatusCode::OK,
            &json!({"kvs": [{"key": "azE=", "value": "Mg=="}]}),
        );
        assert_eq!(got, Some(Outcome::Ok(json!("2"))));
        let absent = etcd::outcome(&read, StatusCode::OK, &json!({"header": {}}));
        assert_eq!(absent, Some(Outcome::Ok(serde_json::Value::Null)));
        // A write whose answer is an unavailable error may still take effect.
        let put = OpSpec {
            f: Func::Write,
            key: "k1".into(),
            value: json!("3"),
        };
        let err = json!({"error": "etcdserver: request timed out", "code": 14});
        assert_eq!(
            etcd::outcome(&put, StatusCode::SERVICE_UNAVAILABLE, &err),
            None
        );
    }

    #[test]
    fn keys_are_path_safe() {
        assert_eq!(percent_encode("r1"), "r1");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
