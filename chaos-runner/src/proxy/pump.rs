//! The data path of one proxied link: accept the sender's connections, dial the
//! receiver, and pump bytes both ways as the link's mode says (up, cut, black hole,
//! delayed), framing the sender's HTTP/1.1 requests so message faults act on whole
//! requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::http::RequestFramer;
use super::messages::LinkMessages;
use crate::links::LinkMode;

pub(super) fn reset(stream: TcpStream) {
    // Linger 0: close with RST, the way a dead network path looks to the peer. (Tokio
    // deprecates set_linger because a non-zero linger blocks on drop; zero never does.)
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

pub(super) async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<LinkMode>,
    messages: Arc<LinkMessages>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if *mode.borrow() == LinkMode::Cut {
            reset(inbound);
            continue;
        }
        tokio::spawn(connection(inbound, target, mode.clone(), messages.clone()));
    }
}

pub(super) async fn connection(
    inbound: TcpStream,
    target: SocketAddr,
    mode: watch::Receiver<LinkMode>,
    messages: Arc<LinkMessages>,
) {
    let _ = inbound.set_nodelay(true);
    let outbound = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(_) => {
            reset(inbound);
            return;
        }
    };
    let _ = outbound.set_nodelay(true);
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    // Requests flow client -> server: that direction is framed, when it is HTTP/1.1.
    let requests = Some((RequestFramer::default(), messages));
    let cut = tokio::select! {
        c = pump(&mut in_r, &mut out_w, mode.clone(), requests) => c,
        c = pump(&mut out_r, &mut in_w, mode.clone(), None) => c,
    };
    let inbound = in_r.reunite(in_w).expect("halves of one stream");
    let outbound = out_r.reunite(out_w).expect("halves of one stream");
    if cut {
        reset(inbound);
        reset(outbound);
    }
}

/// Puts into `out` what one read lets through: whole requests the message fault passes,
/// or raw bytes once the stream turns out not to be framed HTTP/1.1 (the framer is then
/// dropped). `out` is the caller's, reused for every read of the connection.
pub(super) fn pass(
    framing: &mut Option<(RequestFramer, Arc<LinkMessages>)>,
    read: &[u8],
    out: &mut Vec<Bytes>,
) {
    let Some((framer, messages)) = framing else {
        out.push(Bytes::copy_from_slice(read));
        return;
    };
    match framer.push(read) {
        Ok(frames) => out.extend(frames.into_iter().filter_map(|f| messages.decide(f))),
        Err(rest) => {
            *framing = None;
            out.push(rest);
        }
    }
}

/// When a chunk read now may leave: after the link's delay, and never before an
/// earlier chunk.
pub(super) fn due_time(current: LinkMode, last_due: Instant) -> Instant {
    let now = Instant::now();
    let due = match current {
        LinkMode::Delay { ms, jitter_ms } => {
            let extra = if jitter_ms > 0 {
                rand::thread_rng().gen_range(0..=jitter_ms)
            } else {
                0
            };
            now + Duration::from_millis(ms + extra)
        }
        _ => now,
    };
    due.max(last_due)
}

/// Copies `src` to `dst` as the link's mode says. Returns true if the link was cut,
/// false on a normal end of stream or error. With `framing`, whole requests pass (or
/// not) as the link's message fault decides.
///
/// Delay is a delay line, not a throttle: each chunk is stamped with the time it may
/// leave and queued, so a delayed link still carries a full pipeline (as a long cable
/// does) and bytes keep their order even with jitter.
pub(super) async fn pump(
    src: &mut tokio::net::tcp::OwnedReadHalf,
    dst: &mut tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<LinkMode>,
    mut framing: Option<(RequestFramer, Arc<LinkMessages>)>,
) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Bytes)>(256);
    let mut write_mode = mode.clone();
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut pieces = Vec::new();
        let mut last_due = Instant::now();
        loop {
            let current = *mode.borrow_and_update();
            match current {
                LinkMode::Cut => return true,
                LinkMode::BlackHole => {
                    // Read nothing: the sender's window fills and its requests time out.
                    if mode.changed().await.is_err() {
                        return false;
                    }
                }
                LinkMode::Up | LinkMode::Delay { .. } => {
                    let n = tokio::select! {
                        r = src.read(&mut buf) => match r {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => n,
                        },
                        changed = mode.changed() => {
                            if changed.is_err() {
                                return false;
                            }
                            continue;
                        }
                    };
                    pass(&mut framing, &buf[..n], &mut pieces);
                    for piece in pieces.drain(..) {
                        last_due = due_time(current, last_due);
                        if tx.send((last_due, piece)).await.is_err() {
                            return false;
                        }
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if *write_mode.borrow_and_update() == LinkMode::Cut {
                return true;
            }
            if dst.write_all(&chunk).await.is_err() {
                return false;
            }
        }
        false
    };
    tokio::pin!(writer);
    tokio::select! {
        // End of stream: deliver what is still queued, then close.
        cut = reader => if cut { true } else { writer.await },
        cut = &mut writer => cut,
    }
}
