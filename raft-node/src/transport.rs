//! Node-to-node messaging over HTTP/1.1 (hyper 1.x).
//!
//! Each peer gets one sender task with one long-lived connection (`pipeline.rs`): it
//! batches whatever messages queued up into a POST of postcard-encoded messages and
//! writes it at once, pipelined behind the requests still in flight. Delivery is best
//! effort by design: Raft retransmits, so a full queue or a failed connection simply drops
//! messages, and a stalled peer (a black-holed link) costs one request timeout, never
//! unbounded memory.
//!
//! The transport knows nothing of the node: it delivers what arrives to an
//! [`InboundSink`], and the node drives an [`HttpOutbox`] through its own `Outbox` trait.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::body::{closing, read_body, BodyLimits};
use crate::parse_errors::JsonParseErrors;
use crate::pipeline::{Route, HEADER_API, HEADER_CLUSTER, HEADER_FROM};
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

/// Who may send to this node: the members of its own cluster. Every request names its
/// cluster and sender in headers, and every message in it must be from that sender to
/// this node; anything else is refused (403) before it is decoded. This keeps a node of
/// another cluster, or a stray client, from being heard as a peer. It is not
/// authentication: anyone who can reach the port can still claim to be a member.
#[derive(Debug, Clone)]
pub struct Membership {
    pub id: NodeId,
    /// Shared with the [`HttpOutbox`], which adds the members a configuration brings.
    pub peers: Admitted,
    pub cluster: String,
}

/// The senders a node hears: its address book, and members added at run time.
pub type Admitted = Arc<std::sync::RwLock<std::collections::BTreeSet<NodeId>>>;

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
            Some(from) if self.peers.read().is_ok_and(|p| p.contains(&from)) => None,
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
    /// What every route shares but the address, for members learned at run time.
    template: Route,
    admitted: Admitted,
}

impl HttpOutbox {
    /// Starts one sender task per peer, each with its own pipelined connection
    /// (`pipeline.rs`). `peers` maps ids to `host:port` transport addresses; with `tls`,
    /// peers are dialled over TLS and their certificates checked.
    pub fn start(
        id: NodeId,
        api_addr: String,
        peers: &BTreeMap<NodeId, String>,
        rpc_timeout: Duration,
        cluster: String,
        tls: Option<Arc<rustls::ClientConfig>>,
        admitted: Admitted,
    ) -> HttpOutbox {
        let template = Route {
            addr: String::new(),
            id,
            api_addr,
            cluster,
            rpc_timeout,
            tls,
        };
        let mut outbox = HttpOutbox {
            peers: BTreeMap::new(),
            template,
            admitted,
        };
        for (&peer, addr) in peers {
            outbox.learn(peer, addr);
        }
        outbox
    }

    /// Starts a sender to `peer` at `addr`, and hears it, unless it is known already
    /// (the address book given at start wins over addresses learned later).
    pub fn learn(&mut self, peer: NodeId, addr: &str) {
        if self.peers.contains_key(&peer) || peer == self.template.id {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        self.peers.insert(peer, tx);
        if let Ok(mut a) = self.admitted.write() {
            a.insert(peer);
        }
        let route = Route {
            addr: addr.to_string(),
            ..self.template.clone()
        };
        tokio::spawn(crate::pipeline::run(route, rx, encode_batches, MAX_BATCH));
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
                members: None,
            }),
        }
    }

    /// A channel as the node's inbox.
    #[derive(Clone)]
    struct Inbox(mpsc::UnboundedSender<Inbound>);

    impl InboundSink for Inbox {
        async fn deliver(&self, inbound: Inbound) -> bool {
            self.0.send(inbound).is_ok()
        }
    }

    fn heartbeat(from: NodeId, n: u64) -> Message {
        Message {
            from,
            to: 2,
            term: n,
            body: Body::Heartbeat(crate::raft::Heartbeat {
                commit: 0,
                read_ctx: n,
            }),
        }
    }

    /// Serves node 2's peer port on `listener`; what arrives goes to the returned channel.
    fn serve_node_2(listener: TcpListener) -> mpsc::UnboundedReceiver<Inbound> {
        serve_node_2_closing_idle_after(listener, Duration::from_secs(5))
    }

    /// [`serve_node_2`], closing connections idle for `idle`.
    fn serve_node_2_closing_idle_after(
        listener: TcpListener,
        idle: Duration,
    ) -> mpsc::UnboundedReceiver<Inbound> {
        let (tx, rx) = mpsc::unbounded_channel();
        let members = Membership {
            id: 2,
            peers: Arc::new(std::sync::RwLock::new([1].into())),
            cluster: "c".into(),
        };
        let limits = PortLimits {
            max_connections: 16,
            header_timeout: idle,
        };
        let bodies = BodyLimits::new(raft_body_limit(1 << 20), Duration::from_secs(5), 64 << 20);
        tokio::spawn(serve(listener, None, Inbox(tx), limits, bodies, members));
        rx
    }

    /// Node 1's outbox, with node 2 at `addr`.
    fn outbox_to_node_2(addr: String, rpc_timeout: Duration) -> HttpOutbox {
        HttpOutbox::start(
            1,
            "api-of-1".into(),
            &[(2, addr)].into(),
            rpc_timeout,
            "c".into(),
            None,
            Arc::new(std::sync::RwLock::new([2].into())),
        )
    }

    /// Receives until `want` messages arrived (or 10 s passed); their terms, in order.
    async fn terms_received(rx: &mut mpsc::UnboundedReceiver<Inbound>, want: usize) -> Vec<u64> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < want {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(inbound)) => got.extend(inbound.msgs.iter().map(|m| m.term)),
                _ => break,
            }
        }
        got
    }

    /// Bursts sent without waiting for answers arrive whole and in order, on one
    /// connection, with the sender's id and API address.
    #[tokio::test]
    async fn pipelined_bursts_arrive_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut rx = serve_node_2(listener);
        let outbox = outbox_to_node_2(addr, Duration::from_secs(2));
        for burst in 0..20u64 {
            outbox.send(
                (0..100)
                    .map(|i| heartbeat(1, burst * 100 + i + 1))
                    .collect(),
            );
            tokio::task::yield_now().await;
        }
        let terms = terms_received(&mut rx, 2000).await;
        assert_eq!(terms, (1..=2000).collect::<Vec<u64>>());
    }

    /// A peer closes a connection left idle (its header timeout): the sender notices
    /// while idle and dials again, so the next message is not written into a dead
    /// connection and lost.
    #[tokio::test]
    async fn a_connection_the_peer_closed_while_idle_loses_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut rx = serve_node_2_closing_idle_after(listener, Duration::from_millis(100));
        let outbox = outbox_to_node_2(addr, Duration::from_secs(2));
        for n in 1..=4 {
            outbox.send(vec![heartbeat(1, n)]);
            assert_eq!(terms_received(&mut rx, 1).await, [n]);
            // Longer than the server lets a connection sit idle.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A peer that is not there yet costs what was sent meanwhile (best effort), never
    /// the link: once it listens, messages flow within the reconnect back-off.
    #[tokio::test]
    async fn a_peer_that_comes_up_late_is_reached() {
        // A port that refuses connections until the server takes it.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let outbox = outbox_to_node_2(addr.to_string(), Duration::from_millis(500));
        for n in 1..=5 {
            outbox.send(vec![heartbeat(1, n)]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut rx = serve_node_2(TcpListener::bind(addr).await.unwrap());
        // Keep sending until something new arrives: the sender dials again within its
        // back-off (100 ms at most). What queued during the last back-off may come first.
        let mut n = 100;
        let mut seen = Vec::new();
        while !seen.iter().any(|&t| t >= 100) {
            outbox.send(vec![heartbeat(1, n)]);
            if let Ok(Some(inbound)) =
                tokio::time::timeout(Duration::from_millis(20), rx.recv()).await
            {
                seen.extend(inbound.msgs.iter().map(|m| m.term));
            }
            n += 1;
            assert!(n < 600, "nothing arrived within 10 s of the peer coming up");
        }
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "out of order: {seen:?}"
        );
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
