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
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::raft::{Message, NodeId};

const QUEUE: usize = 4096;
const MAX_BATCH: usize = 256;
/// Largest request body a node accepts from a peer.
pub const MAX_RAFT_BODY: usize = 256 << 20;
const HEADER_FROM: &str = "x-raft-from";
const HEADER_API: &str = "x-raft-api";

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
    /// Starts one sender task per peer. `peers` maps ids to `host:port` transport addresses.
    pub fn start(
        id: NodeId,
        api_addr: String,
        peers: &BTreeMap<NodeId, String>,
        rpc_timeout: Duration,
    ) -> HttpOutbox {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(rpc_timeout));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        let mut senders = BTreeMap::new();
        for (&peer, addr) in peers {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.insert(peer, tx);
            let url = format!("http://{addr}/raft");
            tokio::spawn(peer_loop(
                client.clone(),
                url,
                id,
                api_addr.clone(),
                rpc_timeout,
                rx,
            ));
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

async fn peer_loop(
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
    id: NodeId,
    api_addr: String,
    rpc_timeout: Duration,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut failures = 0u64;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let body = match postcard::to_stdvec(&batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot encode messages: {e}");
                batch.clear();
                continue;
            }
        };
        batch.clear();
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(HEADER_FROM, id.to_string())
            .header(HEADER_API, &api_addr)
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let result = tokio::time::timeout(rpc_timeout, async {
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
            Ok(Ok(())) => failures = 0,
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::debug!(%url, failures, "send to peer failed: {e}");
                }
            }
            Err(_) => {
                failures += 1;
                tracing::debug!(%url, failures, "send to peer timed out");
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
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/raft" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "raft transport: POST /raft only\n",
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
    let body = match Limited::new(req.into_body(), MAX_RAFT_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                &format!("cannot read body: {e}\n"),
            ))
        }
    };
    let msgs: Vec<Message> = match postcard::from_bytes(&body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                &format!("undecodable messages: {e}\n"),
            ))
        }
    };
    let from_api = from.zip(api);
    if !sink.deliver(Inbound { msgs, from_api }).await {
        return Ok(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "node is shutting down\n",
        ));
    }
    Ok(plain(StatusCode::NO_CONTENT, ""))
}

/// Serves `POST /raft` on `listener`, forwarding decoded messages to `sink`.
pub async fn serve(listener: TcpListener, sink: impl InboundSink) {
    serve_http(listener, move |req| handle_raft(req, sink.clone())).await
}

/// Accepts HTTP/1.1 connections forever, one task each.
pub async fn serve_http<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
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
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handler);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::trace!(%peer, "connection ended: {e}");
            }
        });
    }
}
