//! Node-to-node messaging over HTTP/1.1 (hyper 1.x).
//!
//! Each peer gets one sender task with one keep-alive connection: it batches whatever
//! messages queued up while the previous request was in flight into a single POST of
//! postcard-encoded messages. Delivery is best effort by design: Raft retransmits, so a
//! full queue or a failed request simply drops messages, and a stalled peer (a black-holed
//! link) costs one request timeout, never unbounded memory.
//!
//! The transport knows nothing of the node: it delivers what arrives to an
//! [`InboundSink`], and the node drives an [`HttpOutbox`] through its own `Outbox` trait.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::body::{closing, read_body, BodyLimits};
use crate::parse_errors::JsonParseErrors;
use crate::raft::{Message, NodeId};

const QUEUE: usize = 4096;
const MAX_BATCH: usize = 256;
/// A request to a peer stops taking more messages past this many bytes (it always takes
/// one), so the largest legitimate body is this plus the largest single message.
const BATCH_BYTES: usize = 4 << 20;

/// The largest `/raft` body a node accepts: one full batch plus the largest message the
/// configuration allows (`largest_message`: an append of at most its byte limit plus one
/// entry, or a snapshot chunk), with headroom for framing. Anything larger is refused
/// (413) from its declared length, before a byte of it is read.
pub fn raft_body_limit(largest_message: usize) -> usize {
    BATCH_BYTES
        .saturating_add(largest_message)
        .saturating_add(64 << 10)
}

/// Limits of one listening port: how many connections it serves at once (the rest are
/// closed as they arrive) and how long a client may take to send a request's head, or
/// stay idle between requests, before its connection is closed.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}
const HEADER_FROM: &str = "x-raft-from";
const HEADER_API: &str = "x-raft-api";
const HEADER_CLUSTER: &str = "x-raft-cluster";

/// Who may send to this node: the members of its own cluster. Every request names its
/// cluster and sender in headers, and every message in it must be from that sender to
/// this node; anything else is refused (403) before it is decoded. This keeps a node of
/// another cluster, or a stray client, from being heard as a peer. It is not
/// authentication: anyone who can reach the port can still claim to be a member.
#[derive(Debug, Clone)]
pub struct Membership {
    pub id: NodeId,
    pub peers: std::collections::BTreeSet<NodeId>,
    pub cluster: String,
}

impl Membership {
    /// Why a request with these headers and messages must be refused, if it must.
    fn refuse<B>(&self, req: &Request<B>) -> Option<String> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        match header(HEADER_CLUSTER) {
            Some(c) if c == self.cluster => {}
            Some(c) => return Some(format!("wrong cluster {c:?}")),
            None => return Some("no cluster id".into()),
        }
        match header(HEADER_FROM).and_then(|f| f.parse::<NodeId>().ok()) {
            Some(from) if self.peers.contains(&from) => None,
            Some(from) => Some(format!("node {from} is not a member")),
            None => Some("no sender id".into()),
        }
    }

    /// Whether every message is from the request's sender and to this node.
    fn addressed(&self, from: NodeId, msgs: &[Message]) -> bool {
        msgs.iter().all(|m| m.from == from && m.to == self.id)
    }
}

/// What one peer request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub msgs: Vec<Message>,
    /// The sender's id and client API address, when it said (for leader hints).
    pub from_api: Option<(NodeId, String)>,
}

/// Where the transport delivers what peers send: the node's event queue in production,
/// a plain channel in tests. Delivery waits when the node is busy (back-pressure on the
/// peer's connection) rather than buffer without bound.
pub trait InboundSink: Clone + Send + Sync + 'static {
    /// Hands over one request's messages; `false` when the node is shutting down.
    fn deliver(&self, inbound: Inbound) -> impl Future<Output = bool> + Send;
}

/// Hands outgoing messages to the per-peer sender tasks without ever blocking.
pub struct HttpOutbox {
    peers: BTreeMap<NodeId, mpsc::Sender<Message>>,
}

impl HttpOutbox {
    /// Starts one sender task per peer. `peers` maps ids to `host:port` transport
    /// addresses; with `tls`, peers are dialled over TLS and their certificates checked.
    pub fn start(
        id: NodeId,
        api_addr: String,
        peers: &BTreeMap<NodeId, String>,
        rpc_timeout: Duration,
        cluster: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> HttpOutbox {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(rpc_timeout));
        connector.enforce_http(false);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let connector = match tls {
            Some(config) => HttpsConnectorBuilder::new()
                .with_tls_config(Arc::unwrap_or_clone(config))
                .https_only()
                .enable_http1()
                .wrap_connector(connector),
            None => HttpsConnectorBuilder::new()
                .with_tls_config(crate::tls::unused_client_config())
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector),
        };
        let client: PeerClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        let mut senders = BTreeMap::new();
        for (&peer, addr) in peers {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.insert(peer, tx);
            let route = Route {
                url: format!("{scheme}://{addr}/raft"),
                id,
                api_addr: api_addr.clone(),
                cluster: cluster.clone(),
                rpc_timeout,
            };
            tokio::spawn(peer_loop(client.clone(), route, rx));
        }
        HttpOutbox { peers: senders }
    }

    /// Queues each message for its peer; drops it when that queue is full.
    pub fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(tx) = self.peers.get(&m.to) {
                if tx.try_send(m).is_err() {
                    tracing::trace!("queue to a peer is full: message dropped");
                }
            }
        }
    }
}

/// Where one peer is, and what every request to it says about the sender.
struct Route {
    url: String,
    id: NodeId,
    api_addr: String,
    cluster: String,
    rpc_timeout: Duration,
}

/// The HTTP client of the peer transport: plain or TLS, as the node was started.
type PeerClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

async fn peer_loop(client: PeerClient, route: Route, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut failures = 0u64;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for body in encode_batches(&batch) {
            let ok = send(&client, &route, body).await;
            failures = if ok { 0 } else { failures + 1 };
            if !ok && (failures == 1 || failures.is_multiple_of(100)) {
                tracing::debug!(url = %route.url, failures, "sends to the peer are failing");
            }
        }
        batch.clear();
    }
}

/// Encodes `msgs` as one or more `Vec<Message>` bodies of at most [`BATCH_BYTES`] each
/// (a single larger message gets a body of its own). postcard encodes a sequence as its
/// length then each element, so messages are encoded once and concatenated.
fn encode_batches(msgs: &[Message]) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut group: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    let finish = |group: &mut Vec<Vec<u8>>, bodies: &mut Vec<Vec<u8>>| {
        if group.is_empty() {
            return;
        }
        let mut body = varint(group.len() as u64);
        for m in group.drain(..) {
            body.extend_from_slice(&m);
        }
        bodies.push(body);
    };
    for m in msgs {
        let encoded = match postcard::to_stdvec(m) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot encode a message: {e}");
                continue;
            }
        };
        if !group.is_empty() && size + encoded.len() > BATCH_BYTES {
            finish(&mut group, &mut bodies);
            size = 0;
        }
        size += encoded.len();
        group.push(encoded);
    }
    finish(&mut group, &mut bodies);
    bodies
}

/// postcard's length prefix: LEB128.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// One POST of `body` to the peer; whether it was accepted in time.
async fn send(client: &PeerClient, route: &Route, body: Vec<u8>) -> bool {
    let url = &route.url;
    {
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(HEADER_FROM, route.id.to_string())
            .header(HEADER_API, &route.api_addr)
            .header(HEADER_CLUSTER, &route.cluster)
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let result = tokio::time::timeout(route.rpc_timeout, async {
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("peer answered {status}"))
            }
        })
        .await;
        match result {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::trace!(%url, "send to peer failed: {e}");
                false
            }
            Err(_) => {
                tracing::trace!(%url, "send to peer timed out");
                false
            }
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r
}

async fn handle_raft(
    req: Request<Incoming>,
    sink: impl InboundSink,
    bodies: BodyLimits,
    members: Arc<Membership>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/raft" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "raft transport: POST /raft only\n",
        ));
    }
    if let Some(why) = members.refuse(&req) {
        return Ok(plain(
            StatusCode::FORBIDDEN,
            &format!("not a peer of this cluster: {why}\n"),
        ));
    }
    let from: Option<NodeId> = req
        .headers()
        .get(HEADER_FROM)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok());
    let api = req
        .headers()
        .get(HEADER_API)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    // The body is held (and its share of the port's budget with it) until the messages
    // are delivered: decoded, they take about as much memory.
    let body = match read_body(req, &bodies).await {
        Ok(b) => b,
        Err(e) => return Ok(closing(plain(e.status(), &format!("{e}\n")))),
    };
    let msgs: Vec<Message> = match postcard::from_bytes(&body.bytes) {
        Ok(m) => m,
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                &format!("undecodable messages: {e}\n"),
            ))
        }
    };
    if !from.is_some_and(|f| members.addressed(f, &msgs)) {
        return Ok(plain(
            StatusCode::FORBIDDEN,
            "a message is not from the sender or not to this node\n",
        ));
    }
    let from_api = from.zip(api);
    let delivered = sink.deliver(Inbound { msgs, from_api }).await;
    drop(body);
    if !delivered {
        return Ok(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "node is shutting down\n",
        ));
    }
    Ok(plain(StatusCode::NO_CONTENT, ""))
}

/// Serves `POST /raft` on `listener` (with TLS when `tls` is given), forwarding decoded
/// messages to `sink`; bodies beyond `bodies`' limits, and requests not from a member of
/// `members`' cluster, are refused.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    sink: impl InboundSink,
    limits: PortLimits,
    bodies: BodyLimits,
    members: Membership,
) {
    let members = Arc::new(members);
    serve_http(listener, tls, limits, move |req| {
        handle_raft(req, sink.clone(), bodies.clone(), members.clone())
    })
    .await
}

/// Accepts HTTP/1.1 connections forever (over TLS when `tls` is given), one task each,
/// within `limits`: a connection over the cap is closed at once (its client sees a reset
/// or an early close and retries), so idle or slow clients can never take the
/// descriptors the node's storage and peers need. The TLS handshake counts as part of
/// the first request's head: it must finish within the header timeout too.
pub async fn serve_http<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: PortLimits,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let failed_handshakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: {} already open", limits.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        let failed_handshakes = failed_handshakes.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(tls) = tls else {
                return serve_connection(stream, peer, limits, handler).await;
            };
            match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, limits, handler).await,
                outcome => {
                    // A misconfigured peer fails every few milliseconds: say so on the
                    // first failure and every hundredth, not each time.
                    let n = failed_handshakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let why = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "it took longer than the header timeout".to_string(),
                    };
                    if n.is_multiple_of(100) {
                        tracing::warn!(%peer, failures = n + 1, "TLS handshake failed: {why}");
                    }
                }
            }
        });
    }
}

/// Serves one accepted connection until it closes.
async fn serve_connection<IO, F, Fut>(io: IO, peer: SocketAddr, limits: PortLimits, handler: F)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let service = hyper::service::service_fn(handler);
    // The header timeout also bounds idleness: hyper starts it whenever it waits for the
    // next request's head on a kept-alive connection.
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(JsonParseErrors::new(io)), service)
        .await
    {
        tracing::trace!(%peer, "connection ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Body, SnapshotChunk};

    fn chunk(from: NodeId, bytes: usize) -> Message {
        Message {
            from,
            to: 2,
            term: 3,
            body: Body::Snapshot(SnapshotChunk {
                last_index: 10,
                last_term: 3,
                offset: 0,
                data: vec![7; bytes],
                done: false,
                checksum: 1,
            }),
        }
    }

    #[test]
    fn batches_split_by_bytes_and_decode_as_sent() {
        // Five 1.5 MiB messages, one 6 MiB, and small ones: bodies stay under the batch
        // size unless one message alone is larger, and nothing is lost or reordered.
        let mut msgs: Vec<Message> = (1..=5).map(|i| chunk(i, 3 << 19)).collect();
        msgs.push(chunk(6, 6 << 20));
        msgs.extend((7..=20).map(|i| chunk(i, 10)));
        let bodies = encode_batches(&msgs);
        assert!(bodies.len() >= 3, "{} bodies", bodies.len());
        let mut decoded = Vec::new();
        for b in &bodies {
            let part: Vec<Message> = postcard::from_bytes(b).unwrap();
            assert!(
                b.len() <= BATCH_BYTES || part.len() == 1,
                "a {}-byte body of {} messages",
                b.len(),
                part.len()
            );
            assert!(b.len() <= raft_body_limit(6 << 20));
            decoded.extend(part);
        }
        assert_eq!(decoded, msgs);
        assert!(encode_batches(&[]).is_empty());
    }
}
