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

pub struct KvClient {
    http: Client<HttpConnector, Full<Bytes>>,
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
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .build(connector);
        KvClient {
            http,
            nodes,
            leader: AtomicUsize::new(0),
        }
    }

    pub fn nodes(&self) -> &[NodeApi] {
        &self.nodes
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

    async fn attempt(&self, node: &NodeApi, op: &OpSpec, deadline: Instant) -> Attempt {
        let key = percent_encode(&op.key);
        let (method, path, body) = match op.f {
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
        };
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

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn keys_are_path_safe() {
        assert_eq!(percent_encode("r1"), "r1");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
