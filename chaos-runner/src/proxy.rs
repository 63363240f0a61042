//! One TCP proxy per directed link: node `i` reaches node `j` only through the proxy for
//! `i -> j`, so faults can hit one direction of one link.
//!
//! Raft responses travel as messages of their own on the reverse link, so cutting
//! `i -> j` means exactly "j no longer hears i".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What a link does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Up,
    /// Live connections are reset, new ones refused (reset at once).
    Cut,
    /// Connections are accepted and then stall: nothing passes, so timeouts fire.
    BlackHole,
    /// Every chunk waits `ms` plus up to `jitter_ms` more.
    Delay {
        ms: u64,
        jitter_ms: u64,
    },
}

struct Link {
    addr: SocketAddr,
    mode: watch::Sender<LinkMode>,
}

/// The proxies of a cluster.
pub struct Network {
    links: BTreeMap<(u64, u64), Link>,
    /// What a healed link returns to: `Up`, or a steady delay (`--link-latency`).
    baseline: LinkMode,
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
                tokio::spawn(serve(listener, target, rx));
                links.insert((from, to), Link { addr, mode: tx });
            }
        }
        Ok(Network {
            links,
            baseline: LinkMode::Up,
        })
    }

    /// Where node `from` must send to reach node `to`.
    pub fn addr(&self, from: u64, to: u64) -> SocketAddr {
        self.links[&(from, to)].addr
    }

    /// What the link from `from` to `to` does now (tests check faults with it).
    #[cfg(test)]
    pub fn mode(&self, from: u64, to: u64) -> Option<LinkMode> {
        self.links.get(&(from, to)).map(|l| *l.mode.borrow())
    }

    pub fn set(&self, from: u64, to: u64, mode: LinkMode) {
        if let Some(l) = self.links.get(&(from, to)) {
            l.mode.send_replace(mode);
        }
    }

    pub fn set_all(&self, mode: LinkMode) {
        for l in self.links.values() {
            l.mode.send_replace(mode);
        }
    }

    /// Makes `mode` the normal state of every link, now and after each heal.
    pub fn set_baseline(&mut self, mode: LinkMode) {
        self.baseline = mode;
        self.heal();
    }

    pub fn baseline(&self) -> LinkMode {
        self.baseline
    }

    /// Ends every fault: each link returns to the baseline.
    pub fn heal(&self) {
        self.set_all(self.baseline);
    }
}

fn reset(stream: TcpStream) {
    // Linger 0: close with RST, the way a dead network path looks to the peer. (Tokio
    // deprecates set_linger because a non-zero linger blocks on drop; zero never does.)
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<LinkMode>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if *mode.borrow() == LinkMode::Cut {
            reset(inbound);
            continue;
        }
        tokio::spawn(connection(inbound, target, mode.clone()));
    }
}

async fn connection(inbound: TcpStream, target: SocketAddr, mode: watch::Receiver<LinkMode>) {
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
    let cut = tokio::select! {
        c = pump(&mut in_r, &mut out_w, mode.clone()) => c,
        c = pump(&mut out_r, &mut in_w, mode.clone()) => c,
    };
    let inbound = in_r.reunite(in_w).expect("halves of one stream");
    let outbound = out_r.reunite(out_w).expect("halves of one stream");
    if cut {
        reset(inbound);
        reset(outbound);
    }
}

/// Copies `src` to `dst` as the link's mode says. Returns true if the link was cut,
/// false on a normal end of stream or error.
///
/// Delay is a delay line, not a throttle: each chunk is stamped with the time it may
/// leave and queued, so a delayed link still carries a full pipeline (as a long cable
/// does) and bytes keep their order even with jitter.
async fn pump(
    src: &mut tokio::net::tcp::OwnedReadHalf,
    dst: &mut tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<LinkMode>,
) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let mut write_mode = mode.clone();
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
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
                    // Never overtake an earlier chunk.
                    last_due = due.max(last_due);
                    if tx.send((last_due, buf[..n].to_vec())).await.is_err() {
                        return false;
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

#[cfg(test)]
mod tests {
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
        let link = net.addr(1, 2);
        assert!(round_trip(link, Duration::from_secs(2)).await.is_ok());
        net.set(1, 2, LinkMode::Cut);
        let e = round_trip(link, Duration::from_secs(2)).await.unwrap_err();
        assert_ne!(e, "timed out", "a cut link refuses at once");
        net.set(1, 2, LinkMode::BlackHole);
        assert_eq!(
            round_trip(link, Duration::from_millis(300))
                .await
                .unwrap_err(),
            "timed out"
        );
        net.set(
            1,
            2,
            LinkMode::Delay {
                ms: 100,
                jitter_ms: 0,
            },
        );
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
        net.set(2, 1, LinkMode::Cut);
        assert!(round_trip(link, Duration::from_secs(2)).await.is_ok());
    }
}
