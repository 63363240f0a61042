//! What a link proxy costs: round trips of a 100-byte message over one persistent TCP
//! connection to an echo server, direct and through a proxy in `Up` mode. The proxy sits
//! on both directions of that connection, as it does for a Raft message and its answer.
//! Two kinds of message: raw bytes (copied as they come) and a 100-byte HTTP/1.1 request
//! (framed whole by the proxy, which is what lets message faults act on it; no fault is
//! active, so this is the cost of framing alone).
//!
//!     cargo bench -p chaos-runner --bench proxy [-- ROUND_TRIPS]

#[path = "../src/console.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod console;
#[path = "../src/links.rs"]
#[allow(dead_code)]
mod links;
#[path = "../src/netns/mod.rs"]
#[allow(dead_code, unused_imports)]
mod netns;
#[path = "../src/proxy/mod.rs"]
#[allow(dead_code, unused_imports)]
mod proxy;
#[path = "../src/run_lock.rs"]
#[allow(dead_code)]
mod run_lock;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> SocketAddr {
    echo_on(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
}

fn echo_on(l: TcpListener) -> SocketAddr {
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
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

/// A 100-byte message: raw bytes, or a whole HTTP/1.1 request.
fn message(http: bool) -> Vec<u8> {
    if !http {
        return vec![7u8; 100];
    }
    let head = "POST /raft HTTP/1.1\r\nhost: b\r\ncontent-length: ";
    let body_len = 100 - head.len() - "NN\r\n\r\n".len();
    let mut m = format!("{head}{body_len}\r\n\r\n").into_bytes();
    m.resize(100, 7);
    m
}

/// Sorted round-trip times of `n` ping-pongs on one connection.
async fn round_trips(addr: SocketAddr, n: usize, http: bool) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    round_trips_on(&mut s, n, http).await
}

async fn round_trips_on(s: &mut TcpStream, n: usize, http: bool) -> Vec<Duration> {
    s.set_nodelay(true).expect("nodelay");
    let msg = message(http);
    let mut buf = [0u8; 100];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut buf).await.expect("read");
        out.push(t.elapsed());
    }
    out.sort_unstable();
    out
}

fn q(v: &[Duration], q: f64) -> f64 {
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let target = echo_server().await;
        let unused: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let proxies = proxy::Proxies::start(&[(1, unused), (2, target)])
            .await
            .expect("proxies");
        let net = links::Network::new(proxies, 0);
        let via = net.addr(1, 2).unwrap();
        // Warm up every path, then alternate so all see the same machine load.
        round_trips(target, 1000, false).await;
        round_trips(via, 1000, false).await;
        round_trips(via, 1000, true).await;
        let mut direct = Vec::new();
        let mut proxied = Vec::new();
        let mut framed = Vec::new();
        for _ in 0..5 {
            direct.extend(round_trips(target, n / 5, false).await);
            proxied.extend(round_trips(via, n / 5, false).await);
            framed.extend(round_trips(via, n / 5, true).await);
        }
        direct.sort_unstable();
        proxied.sort_unstable();
        framed.sort_unstable();
        println!("{n} round trips of 100 bytes on one connection (microseconds):");
        println!("                 p50      p90      p99");
        for (name, v) in [
            ("direct", &direct),
            ("proxied bytes", &proxied),
            ("proxied HTTP", &framed),
        ] {
            println!(
                "{name:14} {:8.1} {:8.1} {:8.1}",
                q(v, 0.5),
                q(v, 0.9),
                q(v, 0.99)
            );
        }
        println!(
            "the proxy adds {:.1} us per round trip at the median ({:.1} us for a framed HTTP request)",
            q(&proxied, 0.5) - q(&direct, 0.5),
            q(&framed, 0.5) - q(&direct, 0.5)
        );
        switched(n, q(&direct, 0.5)).await;
    });
}

/// Runs `f` on a thread that has entered the network namespace at `path` (sockets it
/// creates stay in that namespace).
fn in_netns<T: Send>(path: &std::path::Path, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(path).expect("open the namespace");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns on an open namespace descriptor, for this thread only.
                assert_eq!(
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                    0,
                    "setns"
                );
                f()
            })
            .join()
            .expect("namespace thread")
    })
}

/// The same round trips between two namespaces through the packet switch of
/// `--net netns` (root only: it makes namespaces and TUN devices).
async fn switched(n: usize, direct_p50: f64) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("switched: skipped (needs root to make namespaces)");
        return;
    }
    let mut hosts = netns::Hosts::create(&[1, 2], None).expect("namespaces");
    let (_carrier, links) = netns::carrier::SwitchCarrier::between(&[1, 2]);
    hosts.start_switch(links);
    let server = std::net::SocketAddr::new(hosts.addr(2).into(), 9000);
    let listener = in_netns(&hosts.netns_path(2), || {
        std::net::TcpListener::bind(server).expect("bind in namespace 2")
    });
    listener.set_nonblocking(true).expect("nonblocking");
    echo_on(TcpListener::from_std(listener).expect("listener"));
    let client = in_netns(&hosts.netns_path(1), || {
        std::net::TcpStream::connect(server).expect("connect from namespace 1")
    });
    client.set_nonblocking(true).expect("nonblocking");
    let mut s = TcpStream::from_std(client).expect("stream");
    round_trips_on(&mut s, 1000, false).await;
    let v = round_trips_on(&mut s, n, false).await;
    println!(
        "switched bytes {:8.1} {:8.1} {:8.1}",
        q(&v, 0.5),
        q(&v, 0.9),
        q(&v, 0.99)
    );
    println!(
        "the switch adds {:.1} us per round trip at the median (namespace to namespace, vs loopback)",
        q(&v, 0.5) - direct_p50
    );
}
