//! One TCP proxy per directed link: node `i` reaches node `j` only through the proxy for
//! `i -> j`, so faults can hit one direction of one link.
//!
//! Raft responses travel as messages of their own on the reverse link, so cutting
//! `i -> j` means exactly "j no longer hears i".
//!
//! The proxies carry out link modes on byte streams and message faults on whole
//! HTTP/1.1 requests ([`messages`]; [`http`] frames them).

pub mod http;
pub mod messages;
mod pump;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use checker::fault::FaultKind;
use checker::record::MessageRecord;
use tokio::net::TcpListener;

pub use messages::{LinkMessages, MessageFault};
use pump::serve;

pub use crate::links::LinkMode;
use crate::links::{Carrier, LinkRecord, ModeWatches};

/// One TCP proxy per directed link, each with its message faults.
pub struct Proxies {
    modes: ModeWatches,
    /// Per link: where the sender connects, and the link's message faults.
    links: BTreeMap<(u64, u64), (SocketAddr, Arc<LinkMessages>)>,
}

impl Proxies {
    /// Starts a proxy for every ordered pair of `nodes` (id, transport address).
    pub async fn start(nodes: &[(u64, SocketAddr)]) -> Result<Proxies> {
        let ids: Vec<u64> = nodes.iter().map(|(i, _)| *i).collect();
        let (modes, mut watches) = ModeWatches::between(&ids);
        let mut links = BTreeMap::new();
        for &(from, _) in nodes {
            for &(to, target) in nodes {
                let Some(rx) = watches.remove(&(from, to)) else {
                    continue;
                };
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("cannot bind a proxy port")?;
                let addr = listener.local_addr()?;
                let messages = LinkMessages::new(target, rx.clone());
                tokio::spawn(serve(listener, target, rx, messages.clone()));
                links.insert((from, to), (addr, messages));
            }
        }
        Ok(Proxies { modes, links })
    }
}

/// The proxy's fault for a nemesis kind: whole requests, as HTTP/1.1 frames them.
fn message_fault(kind: FaultKind) -> Option<MessageFault> {
    match kind {
        FaultKind::Duplicate => Some(MessageFault::Duplicate),
        FaultKind::Reorder => Some(MessageFault::Reorder),
        FaultKind::Replay => Some(MessageFault::Replay),
        FaultKind::Drop => Some(MessageFault::Drop),
        _ => None,
    }
}

impl Carrier for Proxies {
    fn links(&self) -> Vec<(u64, u64)> {
        self.modes.links()
    }

    fn addr(&self, from: u64, to: u64) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(|(a, _)| *a)
    }

    fn set_mode(&self, link: (u64, u64), mode: LinkMode) {
        self.modes.set(link, mode);
    }

    fn set_fault(&self, link: (u64, u64), fault: Option<(FaultKind, u64)>) -> Result<(), String> {
        let Some((_, m)) = self.links.get(&link) else {
            return Ok(());
        };
        match fault {
            None => m.set(None, 0),
            Some((kind, seed)) => {
                let f = message_fault(kind)
                    .ok_or_else(|| format!("{} cannot act on requests", kind.name()))?;
                m.set(Some(f), seed);
            }
        }
        Ok(())
    }

    fn take_record(&self, (a, b): (u64, u64), epoch: std::time::Instant) -> LinkRecord {
        let Some((_, m)) = self.links.get(&(a, b)) else {
            return LinkRecord::default();
        };
        let at = |t: tokio::time::Instant| {
            t.into_std().saturating_duration_since(epoch).as_nanos() as u64
        };
        let (events, not_listed) = m.take_events();
        LinkRecord {
            messages: events
                .into_iter()
                .map(|e| MessageRecord {
                    action: e.action.name().to_string(),
                    from: a,
                    to: b,
                    method: e.frame.method.clone(),
                    path: e.frame.path.clone(),
                    bytes: e.frame.bytes.len() as u64,
                    seen: at(e.frame.seen),
                    at: at(e.at),
                })
                .collect(),
            not_listed,
            packet: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::http::RequestFramer;
    use super::*;
    use crate::links::Network;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(
        addr: SocketAddr,
        within: Duration,
    ) -> std::result::Result<Duration, String> {
        let t = tokio::time::Instant::now();
        let r = tokio::time::timeout(within, async {
            let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            s.write_all(b"ping").await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(t.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timed out".into()),
        }
    }

    #[tokio::test]
    async fn modes_cut_stall_delay_and_heal() {
        let target = echo_server().await;
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let net = Network::new(Proxies::start(&[(1, other), (2, target)]).await.unwrap(), 0);
        let link = net.addr(1, 2).unwrap();
        assert!(round_trip(link, Duration::from_secs(2)).await.is_ok());
        net.cut(1, 2, LinkMode::Cut);
        let e = round_trip(link, Duration::from_secs(2)).await.unwrap_err();
        assert_ne!(e, "timed out", "a cut link refuses at once");
        net.cut(1, 2, LinkMode::BlackHole);
        assert_eq!(
            round_trip(link, Duration::from_millis(300))
                .await
                .unwrap_err(),
            "timed out"
        );
        net.uncut_all();
        net.slow_all(Some((100, 0)));
        let rtt = round_trip(link, Duration::from_secs(2)).await.unwrap();
        assert!(
            rtt >= Duration::from_millis(200),
            "two delayed chunks: {rtt:?}"
        );
        // A delay line, not a throttle: ten chunks in a row all arrive about one delay
        // later, where a per-chunk wait would take ten delays.
        let t = tokio::time::Instant::now();
        let mut s = TcpStream::connect(link).await.unwrap();
        for _ in 0..10 {
            s.write_all(b"ping").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut buf = [0u8; 40];
        s.read_exact(&mut buf).await.unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
        assert_eq!(&buf[..8], b"pingping", "order kept");
        net.heal();
        assert!(round_trip(link, Duration::from_secs(2)).await.is_ok());
        // The reverse direction is a different link.
        net.cut(2, 1, LinkMode::Cut);
        assert!(round_trip(link, Duration::from_secs(2)).await.is_ok());
    }

    /// An HTTP/1.1 server that answers every request at once and reports each request's
    /// body (a number) as it arrives.
    async fn numbered_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<u32>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut framer = RequestFramer::default();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        for f in framer.push(&buf[..n]).unwrap() {
                            let at = f.bytes.len() - 4;
                            let id = u32::from_be_bytes(f.bytes[at..].try_into().unwrap());
                            let _ = tx.send(id);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if s.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    /// Sends requests 0..n one at a time, as a Raft peer does: wait for the answer, and
    /// on a timeout open a new connection. Returns how many were answered.
    async fn send_numbered(link: SocketAddr, n: u32, timeout: Duration) -> u32 {
        let mut conn: Option<TcpStream> = None;
        let mut answered = 0;
        for id in 0..n {
            let mut s = match conn.take() {
                Some(s) => s,
                None => TcpStream::connect(link).await.unwrap(),
            };
            let mut req = b"POST /raft HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\n".to_vec();
            req.extend(id.to_be_bytes());
            s.write_all(&req).await.unwrap();
            let mut answer = Vec::new();
            let got = tokio::time::timeout(timeout, async {
                let mut buf = [0u8; 256];
                while !http::response_complete(&answer) {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return false;
                    }
                    answer.extend_from_slice(&buf[..n]);
                }
                true
            })
            .await;
            if got == Ok(true) {
                answered += 1;
                conn = Some(s);
            }
        }
        answered
    }

    /// What the server received, once the proxy has had `settle` to deliver copies.
    async fn received(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<u32>,
        settle: Duration,
    ) -> Vec<u32> {
        tokio::time::sleep(settle).await;
        let mut out = Vec::new();
        while let Ok(id) = rx.try_recv() {
            out.push(id);
        }
        out
    }

    #[tokio::test]
    async fn message_faults_act_on_whole_requests() {
        let (target, mut rx) = numbered_server().await;
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let net = Network::new(Proxies::start(&[(1, other), (2, target)]).await.unwrap(), 0);
        let link = net.addr(1, 2).unwrap();
        let in_order: Vec<u32> = (0..20).collect();

        let patient = Duration::from_secs(5);
        let impatient = Duration::from_millis(250);
        assert_eq!(send_numbered(link, 20, patient).await, 20);
        let got = received(&mut rx, Duration::from_millis(50)).await;
        assert_eq!(got, in_order, "no fault: each request once, in order");

        net.set_fault((1, 2), Some((FaultKind::Drop, 1))).unwrap();
        let answered = send_numbered(link, 40, impatient).await;
        let got = received(&mut rx, Duration::from_millis(50)).await;
        let events = net.take_record((1, 2), std::time::Instant::now()).messages;
        assert!(answered < 40 && answered > 10, "{answered} answered");
        assert_eq!(
            got.len() as u32,
            answered,
            "a dropped request is never delivered"
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(events.len() as u32, 40 - answered);
        assert!(events.iter().all(|e| e.action == "dropped"));

        net.set_fault((1, 2), Some((FaultKind::Duplicate, 2)))
            .unwrap();
        assert_eq!(
            send_numbered(link, 40, patient).await,
            40,
            "copies never cost the sender"
        );
        let got = received(&mut rx, Duration::from_millis(800)).await;
        let events = net.take_record((1, 2), std::time::Instant::now()).messages;
        assert!(got.len() > 45, "{} deliveries of 40", got.len());
        assert_eq!(got.len(), 40 + events.len(), "each copy is recorded");
        for id in 0..40 {
            assert!(got.contains(&id), "original {id} delivered");
        }

        net.set_fault((1, 2), Some((FaultKind::Reorder, 3)))
            .unwrap();
        send_numbered(link, 30, impatient).await;
        net.set_fault((1, 2), None).unwrap();
        let got = received(&mut rx, Duration::from_millis(300)).await;
        let events = net.take_record((1, 2), std::time::Instant::now()).messages;
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>(), "held, not lost");
        assert!(
            got.windows(2).any(|w| w[0] > w[1]),
            "some overtaken: {got:?}"
        );
        let held = events.iter().filter(|e| e.action == "held").count();
        let released = events.iter().filter(|e| e.action == "released").count();
        assert!(
            held > 0 && held == released,
            "{held} held, {released} released"
        );

        net.set_fault((1, 2), Some((FaultKind::Replay, 4))).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        net.set_fault((1, 2), None).unwrap();
        let got = received(&mut rx, Duration::from_millis(300)).await;
        assert!(!got.is_empty(), "old requests came again");
        assert!(
            got.iter().all(|id| *id < 40),
            "only copies of requests seen: {got:?}"
        );

        // A cut link loses copies too.
        net.cut(1, 2, LinkMode::Cut);
        net.set_fault((1, 2), Some((FaultKind::Replay, 5))).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        net.heal();
        assert!(received(&mut rx, Duration::from_millis(100))
            .await
            .is_empty());
    }
}
