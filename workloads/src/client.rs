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
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use checker::Outcome;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
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

/// Why an operation certainly did not take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// A compare-and-set whose expected value did not hold: a normal answer, not an error.
    CasMismatch,
    /// An optimistic transaction whose reads changed before its write could commit, so
    /// none of it was applied: like a cas mismatch, an answer, not an error.
    Conflict,
    /// The server said so: the write never entered the log, or a new leader replaced it.
    NotApplied,
    /// The server refused the request (a 4xx: bad input, too large).
    Rejected,
    /// No node took the request before the deadline (refused connections, redirects).
    Unreachable,
    /// A read that got no value. Reads change nothing, so any error fails them.
    ReadFailed,
}

impl FailReason {
    /// How a count of them reads, for the console and results.json ("3 unreachable").
    pub fn label(self) -> &'static str {
        match self {
            FailReason::CasMismatch => "cas mismatches",
            FailReason::Conflict => "transaction conflicts",
            FailReason::NotApplied => "not applied",
            FailReason::Rejected => "rejected",
            FailReason::Unreachable => "unreachable",
            FailReason::ReadFailed => "failed reads",
        }
    }
}

/// What became of an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Took effect; the value is the result (for reads, the value read).
    Ok(Value),
    /// Certainly did not take effect.
    Fail(FailReason, String),
    /// May or may not have taken effect.
    Info(String),
}

impl Answer {
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Ok(_) => Outcome::Ok,
            Answer::Fail(..) => Outcome::Fail,
            Answer::Info(_) => Outcome::Info,
        }
    }
}

pub use checker::history::Route;

/// What became of an operation, and which node served it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub answer: Answer,
    pub route: Route,
}

impl Reply {
    /// An answer whose node is not known (clients that do not say).
    pub fn unrouted(answer: Answer) -> Reply {
        Reply {
            answer,
            route: Route::default(),
        }
    }
}

/// What one server answer means, before the client decides where to go next.
#[derive(Debug, Clone, PartialEq)]
enum Meaning {
    /// A definite answer.
    Done(Answer),
    /// Definitely not applied, because this node does not lead: try `leader` (an id) if
    /// it named one, or the next node.
    Redirect(Option<u64>, String),
    /// The node answered, but whether a write took effect is open.
    Open(String),
}

/// How one HTTP attempt ended.
enum Attempt {
    /// Finished; `true` if the node itself answered.
    Done(Answer, bool),
    /// Definitely not applied; try node `Some(index)` next, or the next one in turn.
    Redirect(Option<usize>, String),
}

/// The client API a cluster speaks: an HTTP/JSON dialect ([`KvClient`]), or NATS
/// ([`crate::nats::NatsClient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// raft-node's `/kv/:key` API: followers answer `not_leader` with a hint.
    #[default]
    RaftNode,
    /// etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`,
    /// `/v3/kv/deleterange`): base64 keys and values, any member serves any request.
    Etcd,
    /// etcd with serializable reads (`"serializable": true`): a member answers from its
    /// own state without asking the leader, which etcd documents as possibly stale. A
    /// positive control: a correct harness must catch it.
    EtcdSerializable,
    /// The seed-style API many educational Raft servers serve (run_cluster.sh's README):
    /// `/kv/:key` with `{"value"}`, `{"success": true}` answers, followers answering
    /// `503 {"error": "Not the leader", "leader_hint": id}`; status says
    /// `"state": "Leader"`. No compare-and-set.
    Seed,
    /// NATS JetStream ([`crate::nats`]): a stream for sets and queues, a key-value bucket
    /// for registers read at its stream leader.
    Nats,
    /// NATS with the bucket's direct gets, which any replica answers and NATS documents
    /// as possibly stale. A positive control, like [`Dialect::EtcdSerializable`].
    NatsDirect,
    /// An adapter program (`--client-cmd`) that speaks the server's own protocol
    /// ([`crate::adapter`]).
    Adapter,
}

impl Dialect {
    /// The name `--api` and test.json use.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::RaftNode => "raft-node",
            Dialect::Etcd => "etcd",
            Dialect::EtcdSerializable => "etcd-serializable",
            Dialect::Seed => "seed",
            Dialect::Nats => "nats",
            Dialect::NatsDirect => "nats-direct",
            Dialect::Adapter => "adapter",
        }
    }

    /// Whether it is spoken over NATS rather than HTTP.
    pub fn is_nats(self) -> bool {
        matches!(self, Dialect::Nats | Dialect::NatsDirect)
    }

    /// Whether the dialect has a compare-and-set request.
    pub fn has_cas(self) -> bool {
        self != Dialect::Seed
    }

    /// Which `/kv` dialect a node's `/client/status` answer shows: raft-node says
    /// `"role": "leader"`, seed-style servers `"state": "Leader"`.
    pub fn from_status(status: &Value) -> Option<Dialect> {
        if status["role"].is_string() {
            Some(Dialect::RaftNode)
        } else if status["state"].is_string() {
            Some(Dialect::Seed)
        } else {
            None
        }
    }

    /// Whether a `/client/status` answer, in either `/kv` dialect, says its node leads.
    pub fn status_says_leader(status: &Value) -> bool {
        status["role"] == "leader" || status["state"] == "Leader"
    }
}

/// A boxed future that can cross tasks: what [`Client::invoke`] returns, so that clients
/// of different kinds fit behind one `dyn Client`.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the runner needs of a client, whatever protocol it speaks: perform one operation
/// and say what became of it ([`Answer`]), by the rules in this module's doc.
pub trait Client: Send + Sync {
    /// Performs `op`, until a definite answer or `deadline`. Reads start at node index
    /// `home` when given; everything else at the presumed leader.
    fn invoke<'a>(
        &'a self,
        op: &'a OpSpec,
        deadline: Instant,
        home: Option<usize>,
    ) -> BoxFuture<'a, Reply>;
    /// Points operations without a home node at node index `index` (the known leader).
    fn set_leader(&self, index: usize);
}

/// The HTTP client, for raft-node, seed-style servers and etcd's JSON gateway.
pub struct KvClient {
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http` or `https`: every node of a cluster speaks the same.
    scheme: &'static str,
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
    /// A client of `nodes`, all speaking `dialect`, with one connection pool for every
    /// operation.
    pub fn with_dialect(nodes: Vec<NodeApi>, dialect: Dialect) -> Self {
        KvClient::with_tls(nodes, dialect, None)
    }

    /// [`KvClient::with_dialect`], over TLS when `tls` is given: the nodes' certificates
    /// are checked against its roots by the address dialled, and it presents its own.
    /// A failed handshake is a failed connection: no request was sent.
    pub fn with_tls(
        nodes: Vec<NodeApi>,
        dialect: Dialect,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        connector.enforce_http(false);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let builder = match tls {
            Some(config) => HttpsConnectorBuilder::new()
                .with_tls_config(Arc::unwrap_or_clone(config))
                .https_only(),
            // Never used for a handshake: every URL is http://.
            None => HttpsConnectorBuilder::new()
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
                .https_or_http(),
        };
        let connector = builder.enable_http1().wrap_connector(connector);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .build(connector);
        KvClient {
            http,
            scheme,
            dialect,
            nodes,
            leader: AtomicUsize::new(0),
        }
    }

    /// Points operations without a home node at `nodes[index]` (the known leader).
    pub fn set_leader(&self, index: usize) {
        self.leader.store(index, Ordering::Relaxed);
    }

    /// Performs `op`, trying nodes until a definite answer or `deadline`. Reads start at
    /// node `home` when given (as Jepsen binds clients to nodes, so a node that answers
    /// reads it should not is asked); everything else starts at the presumed leader.
    pub async fn invoke(&self, op: &OpSpec, deadline: Instant, home: Option<usize>) -> Reply {
        let homed = !op.writes() && home.is_some();
        let mut target = match home {
            Some(h) if homed => h % self.nodes.len(),
            _ => self.leader.load(Ordering::Relaxed) % self.nodes.len(),
        };
        let mut last_error = String::from("no attempt made");
        let mut attempts = 0usize;
        // The nodes tried, in order: the route the history records.
        let mut tried: Vec<u64> = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                let node = tried.pop();
                return Reply {
                    answer: Answer::Fail(
                        FailReason::Unreachable,
                        format!("not applied before the deadline: {last_error}"),
                    ),
                    route: Route { node, via: tried },
                };
            }
            attempts += 1;
            tried.push(self.nodes[target].id);
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
                    let node = tried.pop();
                    return Reply {
                        answer: outcome,
                        route: Route { node, via: tried },
                    };
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

    fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The method, path and JSON body of `op` in this client's dialect; `None` for a
    /// function the dialect has no request for.
    fn request_for(&self, op: &OpSpec) -> Option<(Method, String, Option<Value>)> {
        match self.dialect {
            Dialect::Etcd => return etcd::request(op, false),
            Dialect::EtcdSerializable => return etcd::request(op, true),
            Dialect::RaftNode | Dialect::Seed => {}
            Dialect::Nats | Dialect::NatsDirect | Dialect::Adapter => return None,
        }
        let key = percent_encode(&op.key);
        Some(match op.f {
            Func::Read => (Method::GET, format!("/kv/{key}"), None),
            Func::Write => (
                Method::POST,
                format!("/kv/{key}"),
                Some(json!({"value": op.value})),
            ),
            Func::Cas if self.dialect.has_cas() => (
                Method::POST,
                format!("/kv/{key}/cas"),
                Some(json!({"expected": op.value[0], "value": op.value[1]})),
            ),
            Func::Delete => (Method::DELETE, format!("/kv/{key}"), None),
            Func::Add if self.dialect == Dialect::RaftNode => (
                Method::POST,
                format!("/kv/{key}/append"),
                Some(json!({"value": op.value})),
            ),
            Func::ReadAll if self.dialect == Dialect::RaftNode => {
                (Method::GET, format!("/kv/{key}/list"), None)
            }
            Func::Txn if self.dialect == Dialect::RaftNode => (
                Method::POST,
                "/txn".to_string(),
                Some(crate::txn::raft_node_body(op)),
            ),
            Func::Cas | Func::Append | Func::Add | Func::ReadAll | Func::Txn => return None,
        })
    }

    /// One HTTP request: its status and JSON body (`Value::Null` when not JSON), or how
    /// it failed (`Err(true)`: the connection was refused, so nothing was sent).
    async fn send(
        &self,
        node: &NodeApi,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<(StatusCode, Value), (bool, String)> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("{}://{}{path}", self.scheme, node.addr))
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
        match sent {
            Err(_) => Err((false, format!("no answer from node {} in time", node.id))),
            Ok(Err(e)) => {
                let connect = e
                    .downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some_and(|e| e.is_connect());
                match connect {
                    true => Err((true, format!("node {} unreachable: {e}", node.id))),
                    false => Err((false, format!("node {}: {e}", node.id))),
                }
            }
            Ok(Ok((status, bytes))) => Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )),
        }
    }

    /// A transaction on etcd ([`crate::txn::etcd`]): the read step, then, if it writes,
    /// the guarded write. Nothing is written before the second request, so any failure
    /// of the first is a certain failure.
    async fn etcd_txn(&self, node: &NodeApi, op: &OpSpec, deadline: Instant) -> Attempt {
        use crate::txn::etcd;
        let serializable = self.dialect == Dialect::EtcdSerializable;
        let read_failed = |why: String| {
            let reason = if op.writes() {
                FailReason::NotApplied
            } else {
                FailReason::ReadFailed
            };
            Attempt::Done(Answer::Fail(reason, why), false)
        };
        let snap = match self
            .send(
                node,
                Method::POST,
                "/v3/kv/txn",
                Some(&etcd::read_request(op, serializable)),
                deadline,
            )
            .await
        {
            Err((true, why)) => return Attempt::Redirect(None, why),
            Err((false, why)) => return read_failed(why),
            Ok((status, body)) if status.is_success() => match etcd::parse_read(op, &body) {
                Ok(s) => s,
                Err(why) => return read_failed(format!("node {}: {why}", node.id)),
            },
            Ok((status, body)) => {
                return read_failed(format!("node {}: {status} {}", node.id, body["error"]))
            }
        };
        let (done, write) = etcd::apply(op, &snap);
        let Some(write) = write else {
            return Attempt::Done(Answer::Ok(done), true);
        };
        match self
            .send(node, Method::POST, "/v3/kv/txn", Some(&write), deadline)
            .await
        {
            Err((true, why)) => Attempt::Done(Answer::Fail(FailReason::Unreachable, why), false),
            Err((false, why)) => Attempt::Done(Answer::Info(why), false),
            Ok((status, body)) if status.is_success() => {
                if etcd::written(&body) {
                    Attempt::Done(Answer::Ok(done), true)
                } else {
                    Attempt::Done(
                        Answer::Fail(
                            FailReason::Conflict,
                            "a key changed between the read and the guarded write".into(),
                        ),
                        true,
                    )
                }
            }
            // etcd's invalid-argument codes: refused before anything was applied.
            Ok((status, body)) if matches!(body["code"].as_u64(), Some(3 | 5 | 7 | 9 | 11)) => {
                Attempt::Done(
                    Answer::Fail(
                        FailReason::Rejected,
                        format!("node {}: {status} {}", node.id, body["error"]),
                    ),
                    true,
                )
            }
            Ok((status, body)) => Attempt::Done(
                Answer::Info(format!("node {}: {status} {}", node.id, body["error"])),
                true,
            ),
        }
    }

    async fn attempt(&self, node: &NodeApi, op: &OpSpec, deadline: Instant) -> Attempt {
        if op.f == Func::Txn && matches!(self.dialect, Dialect::Etcd | Dialect::EtcdSerializable) {
            return self.etcd_txn(node, op, deadline).await;
        }
        let Some((method, path, body)) = self.request_for(op) else {
            let why = format!("the {:?} API has no {:?} request", self.dialect, op.f);
            return Attempt::Done(Answer::Fail(FailReason::Rejected, why), false);
        };
        let unknown = |why: String, answered: bool| Attempt::Done(open(op, why), answered);
        let (status, body) = match self
            .send(node, method, &path, body.as_ref(), deadline)
            .await
        {
            Err((true, why)) => return Attempt::Redirect(None, why),
            Err((false, why)) => return unknown(why, false),
            Ok(r) => r,
        };
        let meaning = match self.dialect {
            Dialect::Etcd | Dialect::EtcdSerializable => match etcd::outcome(op, status, &body) {
                Some(a) => Meaning::Done(a),
                None => Meaning::Open(format!("node {}: {status} {}", node.id, body["error"])),
            },
            Dialect::RaftNode => raft_node_meaning(op, node.id, status, &body),
            Dialect::Seed => seed_meaning(op, node.id, status, &body),
            Dialect::Nats | Dialect::NatsDirect | Dialect::Adapter => {
                Meaning::Done(Answer::Fail(FailReason::Rejected, "not an HTTP API".into()))
            }
        };
        match meaning {
            Meaning::Done(a) => Attempt::Done(a, true),
            Meaning::Redirect(leader, why) => {
                Attempt::Redirect(leader.and_then(|id| self.index_of(id)), why)
            }
            Meaning::Open(why) => unknown(why, true),
        }
    }
}

impl Client for KvClient {
    fn invoke<'a>(
        &'a self,
        op: &'a OpSpec,
        deadline: Instant,
        home: Option<usize>,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(KvClient::invoke(self, op, deadline, home))
    }

    fn set_leader(&self, index: usize) {
        KvClient::set_leader(self, index)
    }
}

/// An answer that leaves the outcome open: a read certainly changed nothing (fail), a
/// write may still take effect (info).
fn open(op: &OpSpec, why: String) -> Answer {
    if !op.writes() {
        Answer::Fail(FailReason::ReadFailed, why)
    } else {
        Answer::Info(why)
    }
}

/// The leader a raft-node (or seed-style) error body names: `{"leader": {"id": 2}}`,
/// `{"leader": 2}` or `{"leader": "2"}`.
fn leader_hint(body: &Value) -> Option<u64> {
    match &body["leader"] {
        Value::Object(o) => o.get("id").and_then(Value::as_u64),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// What a successful `/kv` answer (raft-node or seed-style) says `op` returned: a read's
/// `value` (`null` when absent), nothing for a delete, the written value otherwise.
fn success_value(op: &OpSpec, body: &Value) -> Value {
    match op.f {
        Func::Txn => crate::txn::from_raft_node(op, body),
        Func::Read => body.get("value").cloned().unwrap_or(Value::Null),
        Func::ReadAll => body.get("values").cloned().unwrap_or(Value::Null),
        Func::Delete => Value::Null,
        _ => op.value.clone(),
    }
}

/// What a seed-style server's answer to `op` from node `node` means: 2xx is success
/// (a read's `value`, `null` when absent); a 503 naming `leader_hint` (or saying "Not the
/// leader") was not applied: follow the hint; other 4xx (415 without the JSON content
/// type, 422 for a value that is not a string) are rejections; anything else leaves a
/// write's outcome open.
fn seed_meaning(op: &OpSpec, node: u64, status: StatusCode, body: &Value) -> Meaning {
    let error = body["error"].as_str().unwrap_or("");
    match status {
        s if s.is_success() => Meaning::Done(Answer::Ok(success_value(op, body))),
        StatusCode::SERVICE_UNAVAILABLE
            if body.get("leader_hint").is_some() || error == "Not the leader" =>
        {
            let hint = body["leader_hint"]
                .as_u64()
                .or_else(|| body["leader_hint"].as_str().and_then(|s| s.parse().ok()));
            Meaning::Redirect(hint, format!("node {node} is not the leader"))
        }
        s if s.is_client_error() => Meaning::Done(Answer::Fail(
            FailReason::Rejected,
            format!("node {node} rejected it: {s} {error}"),
        )),
        s => Meaning::Open(format!("node {node}: {s} {error}")),
    }
}

/// What raft-node's answer to `op` from node `node` means (README's API tables): success;
/// a 404 read is an absent key; 409 is a cas mismatch; `not_leader` redirects;
/// `"outcome": "not_applied"` and other 4xx are definite failures; any other 5xx leaves a
/// write's outcome open.
fn raft_node_meaning(op: &OpSpec, node: u64, status: StatusCode, body: &Value) -> Meaning {
    let error = body["error"].as_str().unwrap_or("");
    let is_read = op.f == Func::Read;
    if op.f == Func::ReadAll && status.is_success() && !body["values"].is_array() {
        return Meaning::Done(Answer::Fail(
            FailReason::ReadFailed,
            format!("node {node} answered a list read without a \"values\" array"),
        ));
    }
    if op.f == Func::Txn && status.is_success() {
        if let Err(why) = crate::txn::check_raft_node(op, body) {
            return Meaning::Open(format!("node {node}: {why}"));
        }
    }
    match status {
        s if s.is_success() => Meaning::Done(Answer::Ok(success_value(op, body))),
        StatusCode::NOT_FOUND if is_read && (error != "not_found" || body.is_null()) => {
            // An absent key, for servers that say so with a 404.
            Meaning::Done(Answer::Ok(Value::Null))
        }
        StatusCode::CONFLICT => Meaning::Done(Answer::Fail(
            FailReason::CasMismatch,
            format!("cas mismatch (current {})", body["current"]),
        )),
        _ if error == "not_leader" => {
            Meaning::Redirect(leader_hint(body), format!("node {node} is not the leader"))
        }
        _ if body["outcome"] == "not_applied" => Meaning::Done(Answer::Fail(
            FailReason::NotApplied,
            format!("node {node}: {error}"),
        )),
        s if s.is_client_error() => Meaning::Done(Answer::Fail(
            FailReason::Rejected,
            format!("node {node} rejected it: {s} {error}"),
        )),
        // A 5xx without "not applied": the node answered but the outcome is open.
        s => Meaning::Open(format!("node {node}: {s} {error}")),
    }
}

/// etcd's v3 JSON gateway: requests and what their answers mean.
mod etcd {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use hyper::{Method, StatusCode};
    use serde_json::{json, Value};

    use super::{Answer, FailReason};
    use crate::generator::{text, Func, OpSpec};

    fn b64(s: &str) -> String {
        B64.encode(s.as_bytes())
    }

    /// The key that holds one element of set `op.key`.
    fn element_key(op: &OpSpec) -> String {
        format!("{}/{}", op.key, text(&op.value))
    }

    /// The request for `op`; `serializable` reads skip etcd's linearizable read path.
    pub(super) fn request(
        op: &OpSpec,
        serializable: bool,
    ) -> Option<(Method, String, Option<Value>)> {
        let key = b64(&op.key);
        let (path, body) = match op.f {
            Func::Read if serializable => {
                ("/v3/kv/range", json!({"key": key, "serializable": true}))
            }
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
            // A set is one key per element under `KEY/` (elements are unique in a run),
            // and its read the range of that prefix in order of creation: the order the
            // adds committed in, which a queue needs.
            Func::Add => (
                "/v3/kv/put",
                json!({"key": b64(&element_key(op)), "value": b64(&text(&op.value))}),
            ),
            Func::ReadAll => {
                let prefix = format!("{}/", op.key);
                let end = format!("{}0", op.key); // '0' is the byte after '/'
                let mut body = json!({"key": b64(&prefix), "range_end": b64(&end),
                                      "sort_order": "ASCEND", "sort_target": "CREATE"});
                if serializable {
                    body["serializable"] = json!(true);
                }
                ("/v3/kv/range", body)
            }
            Func::Append | Func::Txn => return None,
        };
        Some((Method::POST, path.to_string(), Some(body)))
    }

    /// A definite outcome, or `None` when the answer leaves it open. Proto3 JSON leaves
    /// out fields at their default, so a missing `kvs` is an absent key and a missing
    /// `succeeded` a failed comparison.
    pub(super) fn outcome(op: &OpSpec, status: StatusCode, body: &Value) -> Option<Answer> {
        if !status.is_success() {
            // gRPC code 3 (invalid argument) and friends are rejections; anything else
            // (unavailable, deadline exceeded, leader changed) may still take effect.
            let code = body["code"].as_u64().unwrap_or(0);
            let why = format!("etcd: {}", body["error"].as_str().unwrap_or("error"));
            return match code {
                3 | 5 | 7 | 9 | 11 => Some(Answer::Fail(FailReason::Rejected, why)),
                _ if !op.writes() => Some(Answer::Fail(FailReason::ReadFailed, why)),
                _ => None,
            };
        }
        Some(match op.f {
            Func::Read => {
                let raw = body["kvs"][0]["value"].as_str();
                match raw {
                    None if body["kvs"].is_null() => Answer::Ok(Value::Null),
                    None => Answer::Ok(json!("")),
                    Some(v) => match B64.decode(v) {
                        Ok(bytes) => Answer::Ok(json!(String::from_utf8_lossy(&bytes))),
                        Err(e) => Answer::Fail(
                            FailReason::ReadFailed,
                            format!("etcd sent a bad base64 value: {e}"),
                        ),
                    },
                }
            }
            Func::ReadAll => {
                let mut values = Vec::new();
                for kv in body["kvs"].as_array().into_iter().flatten() {
                    let raw = kv["value"].as_str().unwrap_or("");
                    match B64.decode(raw) {
                        Ok(bytes) => values.push(json!(String::from_utf8_lossy(&bytes))),
                        Err(e) => {
                            return Some(Answer::Fail(
                                FailReason::ReadFailed,
                                format!("etcd sent a bad base64 value: {e}"),
                            ))
                        }
                    }
                }
                Answer::Ok(Value::Array(values))
            }
            Func::Cas if body["succeeded"] != Value::Bool(true) => {
                Answer::Fail(FailReason::CasMismatch, "cas mismatch".into())
            }
            Func::Delete => Answer::Ok(Value::Null),
            _ => Answer::Ok(op.value.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use hyper::StatusCode;
    use serde_json::json;

    use super::*;

    fn op(f: Func, value: Value) -> OpSpec {
        OpSpec {
            f,
            key: "k1".into(),
            value,
        }
    }

    #[test]
    fn etcd_requests_and_answers() {
        let cas = op(Func::Cas, json!(["1", "2"]));
        let (_, path, body) = etcd::request(&cas, false).unwrap();
        assert_eq!(path, "/v3/kv/txn");
        let body = body.unwrap();
        assert_eq!(body["compare"][0]["key"], "azE=");
        assert_eq!(body["compare"][0]["value"], "MQ==");
        assert_eq!(body["success"][0]["requestPut"]["value"], "Mg==");
        let ok = etcd::outcome(&cas, StatusCode::OK, &json!({"succeeded": true}));
        assert_eq!(ok, Some(Answer::Ok(json!(["1", "2"]))));
        // Proto3 JSON omits false: a missing `succeeded` is a failed comparison.
        let miss = etcd::outcome(&cas, StatusCode::OK, &json!({"header": {}}));
        assert!(matches!(
            miss,
            Some(Answer::Fail(FailReason::CasMismatch, _))
        ));
        let read = op(Func::Read, Value::Null);
        let got = etcd::outcome(
            &read,
            StatusCode::OK,
            &json!({"kvs": [{"key": "azE=", "value": "Mg=="}]}),
        );
        assert_eq!(got, Some(Answer::Ok(json!("2"))));
        let absent = etcd::outcome(&read, StatusCode::OK, &json!({"header": {}}));
        assert_eq!(absent, Some(Answer::Ok(Value::Null)));
        // A write whose answer is an unavailable error may still take effect.
        let put = op(Func::Write, json!("3"));
        let err = json!({"error": "etcdserver: request timed out", "code": 14});
        assert_eq!(
            etcd::outcome(&put, StatusCode::SERVICE_UNAVAILABLE, &err),
            None
        );
        assert!(etcd::request(&op(Func::Append, json!("x")), false).is_none());
        // A set: one key per element, read back as a prefix in order of creation.
        let add = op(Func::Add, json!("17"));
        let (_, path, body) = etcd::request(&add, false).unwrap();
        assert_eq!(path, "/v3/kv/put");
        assert_eq!(body.unwrap()["key"], B64.encode("k1/17"));
        let all = op(Func::ReadAll, Value::Null);
        let (_, path, body) = etcd::request(&all, false).unwrap();
        let body = body.unwrap();
        assert_eq!(path, "/v3/kv/range");
        assert_eq!(body["key"], B64.encode("k1/"));
        assert_eq!(body["range_end"], B64.encode("k10"));
        assert_eq!(body["sort_target"], "CREATE");
        let got = etcd::outcome(
            &all,
            StatusCode::OK,
            &json!({"kvs": [{"value": B64.encode("3")}, {"value": B64.encode("1")}]}),
        );
        assert_eq!(got, Some(Answer::Ok(json!(["3", "1"]))));
        let empty = etcd::outcome(&all, StatusCode::OK, &json!({"header": {}}));
        assert_eq!(empty, Some(Answer::Ok(json!([]))));
        let (_, _, body) = etcd::request(&read, true).unwrap();
        assert_eq!(body.unwrap()["serializable"], true);
    }

    /// Every row of the README's error table, and the answers around it.
    #[test]
    fn raft_node_answers_mean_what_the_api_says() {
        let put = op(Func::Write, json!("3"));
        let read = op(Func::Read, Value::Null);
        let cas = op(Func::Cas, json!(["1", "2"]));
        let del = op(Func::Delete, Value::Null);
        let m = |o: &OpSpec, status: u16, body: Value| {
            raft_node_meaning(o, 1, StatusCode::from_u16(status).unwrap(), &body)
        };
        assert_eq!(
            m(&put, 200, json!({"key": "k1", "value": "3"})),
            Meaning::Done(Answer::Ok(json!("3")))
        );
        assert_eq!(
            m(&read, 200, json!({"key": "k1", "value": "7"})),
            Meaning::Done(Answer::Ok(json!("7")))
        );
        assert_eq!(
            m(&read, 200, json!({"key": "k1", "value": null})),
            Meaning::Done(Answer::Ok(Value::Null))
        );
        assert_eq!(
            m(&del, 200, json!({"key": "k1", "deleted": true})),
            Meaning::Done(Answer::Ok(Value::Null))
        );
        assert!(matches!(
            m(&cas, 409, json!({"error": "cas_mismatch", "current": "4"})),
            Meaning::Done(Answer::Fail(FailReason::CasMismatch, _))
        ));
        // Followers redirect, with or without a known leader; the write was not applied.
        let not_leader = json!({"error": "not_leader", "outcome": "not_applied",
                                "leader": {"id": 3, "api": "127.0.0.1:9003"}});
        assert!(matches!(
            m(&put, 503, not_leader),
            Meaning::Redirect(Some(3), _)
        ));
        let no_hint = json!({"error": "not_leader", "outcome": "not_applied", "leader": null});
        assert!(matches!(m(&put, 503, no_hint), Meaning::Redirect(None, _)));
        let dropped = json!({"error": "dropped", "outcome": "not_applied"});
        assert!(matches!(
            m(&put, 503, dropped),
            Meaning::Done(Answer::Fail(FailReason::NotApplied, _))
        ));
        // In flight when leadership was lost or time ran out: it may still commit.
        let unknown = json!({"error": "outcome_unknown", "outcome": "unknown"});
        assert!(matches!(m(&put, 504, unknown.clone()), Meaning::Open(_)));
        assert!(matches!(m(&put, 500, Value::Null), Meaning::Open(_)));
        assert!(matches!(
            m(&put, 400, json!({"error": "bad_json"})),
            Meaning::Done(Answer::Fail(FailReason::Rejected, _))
        ));
        assert!(matches!(
            m(&put, 413, json!({"error": "value_too_large"})),
            Meaning::Done(Answer::Fail(FailReason::Rejected, _))
        ));
        // A read that timed out changed nothing: the caller turns Open into a failure.
        assert!(matches!(
            m(&read, 504, json!({"error": "timeout"})),
            Meaning::Open(_)
        ));
        assert!(matches!(
            open(&read, "timeout".into()),
            Answer::Fail(FailReason::ReadFailed, _)
        ));
        assert!(matches!(open(&put, "timeout".into()), Answer::Info(_)));
        // Servers that answer an absent key with a bare 404.
        assert_eq!(
            m(&read, 404, Value::Null),
            Meaning::Done(Answer::Ok(Value::Null))
        );
        assert_eq!(leader_hint(&json!({"leader": "2"})), Some(2));
        assert_eq!(leader_hint(&json!({"leader": 2})), Some(2));
    }

    /// The seed-style API, answer by answer.
    #[test]
    fn seed_answers_mean_what_the_seed_api_says() {
        let put = op(Func::Write, json!("3"));
        let read = op(Func::Read, Value::Null);
        let del = op(Func::Delete, Value::Null);
        let m = |o: &OpSpec, status: u16, body: Value| {
            seed_meaning(o, 1, StatusCode::from_u16(status).unwrap(), &body)
        };
        assert_eq!(
            m(&put, 200, json!({"key": "k1", "success": true})),
            Meaning::Done(Answer::Ok(json!("3")))
        );
        assert_eq!(
            m(&read, 200, json!({"key": "k1", "value": "v"})),
            Meaning::Done(Answer::Ok(json!("v")))
        );
        assert_eq!(
            m(&read, 200, json!({"key": "k1", "value": null})),
            Meaning::Done(Answer::Ok(Value::Null))
        );
        assert_eq!(
            m(&del, 200, json!({"key": "k1", "success": true})),
            Meaning::Done(Answer::Ok(Value::Null))
        );
        let follower = json!({"error": "Not the leader", "leader_hint": 2});
        assert!(matches!(
            m(&put, 503, follower.clone()),
            Meaning::Redirect(Some(2), _)
        ));
        assert!(matches!(
            m(&read, 503, follower),
            Meaning::Redirect(Some(2), _)
        ));
        let no_leader = json!({"error": "Not the leader", "leader_hint": null});
        assert!(matches!(
            m(&del, 503, no_leader),
            Meaning::Redirect(None, _)
        ));
        // Plain-text rejections: wrong content type, a value that is not a string.
        for status in [415, 422] {
            assert!(matches!(
                m(&put, status, Value::Null),
                Meaning::Done(Answer::Fail(FailReason::Rejected, _))
            ));
        }
        // A 5xx without a hint, or a 503 that names no leader at all: open.
        assert!(matches!(
            m(&put, 500, json!({"error": "boom"})),
            Meaning::Open(_)
        ));
        assert!(matches!(m(&put, 503, Value::Null), Meaning::Open(_)));
    }

    #[test]
    fn status_answers_tell_the_dialect_and_the_leader() {
        let raft = json!({"id": 1, "role": "leader", "term": 3});
        let seed = json!({"node_id": 1, "state": "Follower", "leader_id": null});
        assert_eq!(Dialect::from_status(&raft), Some(Dialect::RaftNode));
        assert_eq!(Dialect::from_status(&seed), Some(Dialect::Seed));
        assert_eq!(Dialect::from_status(&json!({"ok": true})), None);
        assert!(Dialect::status_says_leader(&raft));
        assert!(!Dialect::status_says_leader(&seed));
        assert!(Dialect::status_says_leader(&json!({"state": "Leader"})));
        assert!(!Dialect::Seed.has_cas() && Dialect::RaftNode.has_cas());
    }

    #[test]
    fn keys_are_path_safe() {
        assert_eq!(percent_encode("r1"), "r1");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
