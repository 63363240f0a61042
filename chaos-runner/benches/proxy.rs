//! What a link proxy costs: round trips of a 100-byte message over one persistent TCP
//! connection to an echo server, direct and through a proxy in `Up` mode. The proxy sits
//! on both directions of that connection, as it does for a Raft message and its answer.
//! Two kinds of message: raw bytes (copied as they come) and a 100-byte HTTP/1.1 request
//! (framed whole by the proxy, which is what lets message faults act on it; no fault is
//! active, so this is the cost of framing alone).
//!
//!     cargo bench -p chaos-runner --bench proxy [-- ROUND_TRIPS]

#[path = "../src/netns/mod.rs"]
#[allow(dead_code, unused_imports)]
mod netns;
#[path = "../src/proxy/mod.rs"]
#[allow(dead_code, unused_imports)]
mod proxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
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
        let net = proxy::Network::start(&[(1, unused), (2, target)])
            .await
            .expect("proxies");
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
    });
}
