//! One peer's sender: a long-lived connection on which requests are pipelined.
//!
//! Each batch of messages is one `POST /raft` of HTTP/1.1, written as soon as it is
//! ready, without waiting for the answers to the batches before it (up to [`WINDOW`] in
//! flight). With one request at a time, an append waited behind the previous request's
//! round trip (a heartbeat's, say): under a 5 ms link that put a write's p50 at about
//! 19 ms where two one-way delays and two fsyncs take about 12. A reader task takes the
//! answers in order; the answer only says the batch was delivered (Raft's own responses
//! are messages of their own), so it serves flow control and failure detection alone.
//!
//! The requests stay plain HTTP/1.1, one batch each, so the peer's server is unchanged
//! and the chaos harness's proxies still see whole requests to drop, hold, copy or
//! replay. What pipelining changes for them: a request they swallow leaves its answer
//! missing, and the reader gives the connection up when the oldest answer is
//! `rpc_timeout` late (as the one-at-a-time sender timed out its request); messages
//! queued meanwhile are dropped (best effort: Raft retransmits).
//!
//! Reconnects back off from [`BACKOFF_MIN`] to [`BACKOFF_MAX`], dropping what is queued
//! while the peer is unreachable: stale heartbeats are worth nothing, and a node that
//! comes back must hear the leader within a fraction of an election timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::raft::Message;

/// Requests in flight on one connection before the sender waits for answers.
pub const WINDOW: usize = 64;
pub const BACKOFF_MIN: Duration = Duration::from_millis(5);
pub const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// The largest answer head the reader accepts (the node's answers are a few lines).
const MAX_HEAD: usize = 16 << 10;
/// The largest answer body the reader accepts (an error's text).
const MAX_BODY: usize = 64 << 10;

/// Where one peer is, and what every request to it says about the sender.
#[derive(Clone)]
pub struct Route {
    /// `host:port` of the peer's transport port.
    pub addr: String,
    pub id: u64,
    pub api_addr: String,
    pub cluster: String,
    pub rpc_timeout: Duration,
    /// Mutual TLS to the peer, when the node runs with it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The headers of every request a sender writes and the peer's server reads: who sends
/// it, where its client API is, and which cluster it belongs to.
pub(crate) const HEADER_FROM: &str = "x-raft-from";
pub(crate) const HEADER_API: &str = "x-raft-api";
pub(crate) const HEADER_CLUSTER: &str = "x-raft-cluster";

/// The last line of a request head: `len` bytes of messages follow.
fn content_length(len: usize) -> String {
    format!("content-length: {len}\r\n\r\n")
}

impl Route {
    /// The head of every request, up to its content length (which
    /// [`content_length`] adds): made once per sender, not per request.
    fn head_prefix(&self) -> String {
        format!(
            "POST /raft HTTP/1.1\r\nhost: {}\r\n{}: {}\r\n{}: {}\r\n{}: {}\r\n\
             content-type: application/octet-stream\r\n",
            self.addr,
            HEADER_FROM,
            self.id,
            HEADER_API,
            self.api_addr,
            HEADER_CLUSTER,
            self.cluster,
        )
    }

    /// Dials the peer (and shakes hands, with TLS), within the request timeout.
    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let dial = async {
            let tcp = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let Some(config) = &self.tls else {
                return Ok(Box::new(tcp) as Box<dyn Stream>);
            };
            let host = self
                .addr
                .rsplit_once(':')
                .map_or(self.addr.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| format!("peer name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            Ok(Box::new(tls) as Box<dyn Stream>)
        };
        tokio::time::timeout(self.rpc_timeout, dial)
            .await
            .map_err(|_| "connect: timed out".to_string())?
    }
}

/// A connection to a peer, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Sends everything `rx` yields to the peer until the node drops its sender.
/// `encode` turns a batch of messages into request bodies.
pub async fn run(
    route: Route,
    mut rx: mpsc::Receiver<Message>,
    encode: fn(&[Message]) -> Vec<Vec<u8>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let head = route.head_prefix();
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        let conn = match route.connect().await {
            Ok(c) => c,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::debug!(peer = %route.addr, failures, "cannot reach the peer: {e}");
                }
                // Whatever queued while the peer was out of reach is stale by now.
                batch.clear();
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                if rx.is_closed() && rx.is_empty() {
                    return;
                }
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let (reader, writer) = tokio::io::split(conn);
        let mut writer = BufWriter::with_capacity(64 << 10, writer);
        let (sent_tx, sent_rx) = mpsc::channel::<Instant>(WINDOW);
        let answers = tokio::spawn(read_answers(reader, sent_rx, route.rpc_timeout));
        let why = 'conn: loop {
            if batch.is_empty() && rx.recv_many(&mut batch, max_batch).await == 0 {
                answers.abort();
                return;
            }
            if answers.is_finished() {
                // Nothing of this batch was written: it goes on the next connection.
                break 'conn "the connection failed".to_string();
            }
            for body in encode(&batch) {
                // Wait for room in the window no longer than an answer may take.
                let permit = match tokio::time::timeout(route.rpc_timeout, sent_tx.reserve()).await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        batch.clear();
                        break 'conn "no answer within the request timeout".to_string();
                    }
                };
                let write = async {
                    writer.write_all(head.as_bytes()).await?;
                    writer
                        .write_all(content_length(body.len()).as_bytes())
                        .await?;
                    writer.write_all(&body).await
                };
                if let Err(e) = write.await {
                    batch.clear();
                    break 'conn format!("write: {e}");
                }
                permit.send(Instant::now());
            }
            batch.clear();
            if let Err(e) = writer.flush().await {
                break 'conn format!("write: {e}");
            }
            failures = 0;
        };
        answers.abort();
        failures += 1;
        if failures == 1 || failures.is_multiple_of(100) {
            tracing::debug!(peer = %route.addr, failures, "connection to the peer dropped: {why}");
        }
    }
}

/// Takes the answers to the requests `sent` announces, in order, each within `timeout`
/// of its sending. Returns why the connection must go: it closed, an answer was late or
/// made no sense, or the peer asked to close.
async fn read_answers(
    mut reader: impl AsyncRead + Unpin,
    mut sent: mpsc::Receiver<Instant>,
    timeout: Duration,
) -> String {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // Between requests the socket is watched too: a peer that closes an idle
        // connection (its header timeout) is noticed now, before a batch is written
        // into a dead connection and lost. Bytes read meanwhile are an answer that
        // overtook its record; they wait in `buf`.
        let at = tokio::select! {
            at = sent.recv() => match at {
                Some(at) => at,
                None => return "the sender is gone".into(),
            },
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => return "the peer closed the connection".into(),
                Ok(_) if buf.len() > MAX_HEAD + MAX_BODY => {
                    return "the peer sent what was not asked for".into()
                }
                Ok(_) => continue,
                Err(e) => return format!("read: {e}"),
            },
        };
        let deadline = at + timeout;
        loop {
            match parse_answer(&buf) {
                Ok(Some(answer)) => {
                    buf.advance(answer.len);
                    if !(200..300).contains(&answer.status) {
                        tracing::trace!(status = answer.status, "the peer refused a request");
                    }
                    if answer.close {
                        return "the peer closed the connection".into();
                    }
                    break;
                }
                Ok(None) => {}
                Err(e) => return e,
            }
            match tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)).await {
                Ok(Ok(0)) => return "the peer closed the connection".into(),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("read: {e}"),
                Err(_) => return "an answer took longer than the request timeout".into(),
            }
        }
    }
}

/// One whole answer at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    /// Bytes it takes, head and body.
    len: usize,
    status: u16,
    /// `Connection: close`: nothing more will come on this connection.
    close: bool,
}

/// The answer at the start of `buf`: `Ok(None)` if it is not all there yet, `Err` if it is
/// not an answer this reader can frame (the connection must then go).
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err("an answer head over 16 KiB".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "an answer head not in UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 answer: {status_line:?}"))?;
    let mut body = 0usize;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            body = value
                .parse()
                .map_err(|_| format!("a bad content-length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("a chunked answer".into());
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if body > MAX_BODY {
        return Err(format!("an answer body of {body} bytes"));
    }
    let len = end + 4 + body;
    Ok((buf.len() >= len).then_some(Answer { len, status, close }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_framed_by_their_length() {
        let two = b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\nHTTP/1.1 403 Forbidden\r\ncontent-length: 5\r\nconnection: close\r\n\r\nno!\n\n";
        let first = parse_answer(two).unwrap().unwrap();
        assert_eq!((first.status, first.close), (204, false));
        let rest = &two[first.len..];
        let second = parse_answer(rest).unwrap().unwrap();
        assert_eq!(
            (second.status, second.close, second.len),
            (403, true, rest.len())
        );
        // Not all there yet.
        assert_eq!(parse_answer(&rest[..rest.len() - 1]).unwrap(), None);
        assert_eq!(parse_answer(b"HTTP/1.1 204").unwrap(), None);
        // What it cannot frame.
        for bad in [
            &b"SSH-2.0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999\r\n\r\n",
        ] {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
        assert!(parse_answer(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }
}
