//! One TCP proxy per directed link: node `i` reaches node `j` only through the proxy for
//! `i -> j`, so faults can hit one direction of one link.
//!
//! Raft responses travel as messages of their own on the reverse link, so cutting
//! `i -> j` means exactly "j no longer hears i".
//!
//! A link's state is the sum of independent layers, so faults that overlap (a partition
//! during a spell of slow links, a kill while requests are being duplicated) never undo
//! each other: a cut (partition), an added delay (the latency fault), the weather (a
//! delay the schedule changes during the run), the run's steady `--link-latency`, and a
//! message fault ([`messages`]) on whole HTTP/1.1 requests ([`http`] frames them).

pub mod http;
pub mod messages;
mod pump;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use messages::{LinkMessages, MessageEvent, MessageFault};
use pump::serve;

use crate::netns::switch::{PacketFault, PacketLink, SwitchLink};
use checker::record::PacketRecord;

pub use crate::link_mode::LinkMode;

/// The faults in force on one link, each set and cleared on its own.
#[derive(Debug, Clone, Copy, Default)]
struct Layers {
    /// A partition: `Cut` or `BlackHole`.
    cut: Option<LinkMode>,
    /// The latency fault: added delay and jitter.
    slow: Option<(u64, u64)>,
    /// The schedule's changing background delay and its jitter.
    weather: (u64, u64),
}

struct Link {
    /// Where the sender connects: the proxy's port (`None` under the packet switch,
    /// where senders use the receiver's own address).
    addr: Option<SocketAddr>,
    mode: watch::Sender<LinkMode>,
    layers: Mutex<Layers>,
    /// Message faults, done by the proxy (proxy mode).
    messages: Option<Arc<LinkMessages>>,
    /// Packet faults, done by the switch (netns mode).
    packets: Option<Arc<PacketLink>>,
}

/// The links of a cluster and the faults on them, carried out either by one TCP proxy
/// per directed link or by the packet switch of `--net netns`.
pub struct Network {
    links: BTreeMap<(u64, u64), Link>,
    /// The steady one-way delay of every link (`--link-latency`).
    base_ms: u64,
}

impl Network {
    /// Starts a proxy for every ordered pair of `nodes` (id, transport address).
    pub async fn start(nodes: &[(u64, SocketAddr)]) -> Result<Network> {
        let mut links = BTreeMap::new();
        for &(from, _) in nodes {
            for &(to, target) in nodes {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("cannot bind a proxy port")?;
                let addr = listener.local_addr()?;
                let (tx, rx) = watch::channel(LinkMode::Up);
                let messages = LinkMessages::new(target, rx.clone());
                tokio::spawn(serve(listener, target, rx, messages.clone()));
                links.insert(
                    (from, to),
                    Link {
                        addr: Some(addr),
                        mode: tx,
                        layers: Mutex::new(Layers::default()),
                        messages: Some(messages),
                        packets: None,
                    },
                );
            }
        }
        Ok(Network { links, base_ms: 0 })
    }

    /// The links between `ids` when something other than the proxies carries out their
    /// faults (the packet switch of netns mode, or the hosts' firewalls of ssh mode): the
    /// network keeps the control side, that something gets what it reads.
    pub fn switched(ids: &[u64]) -> (Network, BTreeMap<(u64, u64), SwitchLink>) {
        let mut links = BTreeMap::new();
        let mut for_switch = BTreeMap::new();
        for &from in ids {
            for &to in ids {
                if from == to {
                    continue;
                }
                let (tx, rx) = watch::channel(LinkMode::Up);
                let packets = Arc::new(PacketLink::default());
                for_switch.insert(
                    (from, to),
                    SwitchLink {
                        mode: rx,
                        packets: packets.clone(),
                    },
                );
                links.insert(
                    (from, to),
                    Link {
                        addr: None,
                        mode: tx,
                        layers: Mutex::new(Layers::default()),
                        messages: None,
                        packets: Some(packets),
                    },
                );
            }
        }
        (Network { links, base_ms: 0 }, for_switch)
    }

    /// Whether faults act on packets (the switch) rather than on requests (proxies).
    pub fn is_switched(&self) -> bool {
        self.links.values().any(|l| l.packets.is_some())
    }

    /// Where node `from` must send to reach node `to`: its proxy, in proxy mode.
    pub fn addr(&self, from: u64, to: u64) -> Option<SocketAddr> {
        self.links.get(&(from, to)).and_then(|l| l.addr)
    }

    /// Every directed link, as (from, to).
    pub fn links(&self) -> Vec<(u64, u64)> {
        self.links.keys().copied().collect()
    }

    /// What the link from `from` to `to` does now (tests check faults with it).
    #[cfg(test)]
    pub fn mode(&self, from: u64, to: u64) -> Option<LinkMode> {
        self.links.get(&(from, to)).map(|l| *l.mode.borrow())
    }

    fn update(&self, link: &Link, change: impl FnOnce(&mut Layers)) {
        let mut layers = link.layers.lock().expect("link layers");
        change(&mut layers);
        let mode = layers.cut.unwrap_or_else(|| {
            let (extra, slow_jitter) = layers.slow.unwrap_or((0, 0));
            let ms = self.base_ms + layers.weather.0 + extra;
            let jitter_ms = slow_jitter + layers.weather.1;
            if ms == 0 && jitter_ms == 0 {
                LinkMode::Up
            } else {
                LinkMode::Delay { ms, jitter_ms }
            }
        });
        link.mode
            .send_if_modified(|m| std::mem::replace(m, mode) != mode);
    }

    fn update_all(&self, change: impl Fn(&mut Layers)) {
        for l in self.links.values() {
            self.update(l, &change);
        }
    }

    /// Partitions the link: `Cut` or `BlackHole`.
    pub fn cut(&self, from: u64, to: u64, mode: LinkMode) {
        if let Some(l) = self.links.get(&(from, to)) {
            self.update(l, |s| s.cut = Some(mode));
        }
    }

    /// Ends every partition.
    pub fn uncut_all(&self) {
        self.update_all(|s| s.cut = None);
    }

    /// Adds `ms` (plus up to `jitter_ms`) to every link, or removes it (`None`).
    pub fn slow_all(&self, slow: Option<(u64, u64)>) {
        self.update_all(|s| s.slow = slow);
    }

    /// Sets the background delay of every link: `ms`, plus up to `jitter_ms` drawn per
    /// chunk. Jitter keeps each connection's bytes in order, but two requests on two
    /// connections of one link may then arrive in either order.
    pub fn set_weather(&self, ms: u64, jitter_ms: u64) {
        self.update_all(|s| s.weather = (ms, jitter_ms));
    }

    /// Starts or ends a message fault on one link.
    pub fn set_message_fault(&self, from: u64, to: u64, fault: Option<MessageFault>, seed: u64) {
        if let Some(m) = self
            .links
            .get(&(from, to))
            .and_then(|l| l.messages.as_ref())
        {
            m.set(fault, seed);
        }
    }

    /// Starts or ends a packet fault on one link (netns mode).
    pub fn set_packet_fault(&self, from: u64, to: u64, fault: Option<PacketFault>, seed: u64) {
        if let Some(p) = self.links.get(&(from, to)).and_then(|l| l.packets.as_ref()) {
            p.set(fault, seed);
        }
    }

    /// What the packet fault last started on the link did.
    pub fn packet_record(&self, from: u64, to: u64) -> Option<PacketRecord> {
        let p = self.links.get(&(from, to))?.packets.as_ref()?;
        Some(p.record(from, to))
    }

    /// What message faults did on the link since the last call (events kept, events
    /// only counted).
    pub fn take_message_events(&self, from: u64, to: u64) -> (Vec<MessageEvent>, u64) {
        self.links
            .get(&(from, to))
            .and_then(|l| l.messages.as_ref())
            .map_or((Vec::new(), 0), |m| m.take_events())
    }

    /// Makes `ms` the steady delay of every link, now and after each heal.
    pub fn set_base_latency(&mut self, ms: u64) {
        self.base_ms = ms;
        self.update_all(|_| {});
    }

    /// The steady delay of every link.
    pub fn base_latency(&self) -> u64 {
        self.base_ms
    }

    /// Ends every fault: each link returns to the steady delay.
    pub fn heal(&self) {
        for (&(from, to), l) in &self.links {
            self.update(l, |s| *s = Layers::default());
            self.set_message_fault(from, to, None, 0);
            self.set_packet_fault(from, to, None, 0);
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
        let net = Network::start(&[(1, other), (2, target)]).await.unwrap();
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
        let net = Network::start(&[(1, other), (2, target)]).await.unwrap();
        let link = net.addr(1, 2).unwrap();
        let in_order: Vec<u32> = (0..20).collect();

        let patient = Duration::from_secs(5);
        let impatient = Duration::from_millis(250);
        assert_eq!(send_numbered(link, 20, patient).await, 20);
        let got = received(&mut rx, Duration::from_millis(50)).await;
        assert_eq!(got, in_order, "no fault: each request once, in order");

        net.set_message_fault(1, 2, Some(MessageFault::Drop), 1);
        let answered = send_numbered(link, 40, impatient).await;
        let got = received(&mut rx, Duration::from_millis(50)).await;
        let (events, _) = net.take_message_events(1, 2);
        assert!(answered < 40 && answered > 10, "{answered} answered");
        assert_eq!(
            got.len() as u32,
            answered,
            "a dropped request is never delivered"
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(events.len() as u32, 40 - answered);
        assert!(events.iter().all(|e| e.action.name() == "dropped"));

        net.set_message_fault(1, 2, Some(MessageFault::Duplicate), 2);
        assert_eq!(
            send_numbered(link, 40, patient).await,
            40,
            "copies never cost the sender"
        );
        let got = received(&mut rx, Duration::from_millis(800)).await;
        let (events, _) = net.take_message_events(1, 2);
        assert!(got.len() > 45, "{} deliveries of 40", got.len());
        assert_eq!(got.len(), 40 + events.len(), "each copy is recorded");
        for id in 0..40 {
            assert!(got.contains(&id), "original {id} delivered");
        }

        net.set_message_fault(1, 2, Some(MessageFault::Reorder), 3);
        send_numbered(link, 30, impatient).await;
        net.set_message_fault(1, 2, None, 0);
        let got = received(&mut rx, Duration::from_millis(300)).await;
        let (events, _) = net.take_message_events(1, 2);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>(), "held, not lost");
        assert!(
            got.windows(2).any(|w| w[0] > w[1]),
            "some overtaken: {got:?}"
        );
        let held = events.iter().filter(|e| e.action.name() == "held").count();
        let released = events
            .iter()
            .filter(|e| e.action.name() == "released")
            .count();
        assert!(
            held > 0 && held == released,
            "{held} held, {released} released"
        );

        net.set_message_fault(1, 2, Some(MessageFault::Replay), 4);
        tokio::time::sleep(Duration::from_millis(600)).await;
        net.set_message_fault(1, 2, None, 0);
        let got = received(&mut rx, Duration::from_millis(300)).await;
        assert!(!got.is_empty(), "old requests came again");
        assert!(
            got.iter().all(|id| *id < 40),
            "only copies of requests seen: {got:?}"
        );

        // A cut link loses copies too.
        net.cut(1, 2, LinkMode::Cut);
        net.set_message_fault(1, 2, Some(MessageFault::Replay), 5);
        tokio::time::sleep(Duration::from_millis(500)).await;
        net.heal();
        assert!(received(&mut rx, Duration::from_millis(100))
            .await
            .is_empty());
    }
}
