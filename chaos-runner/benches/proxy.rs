//! What a link proxy costs: round trips of a 100-byte message over one persistent TCP
//! connection to an echo server, direct and through a proxy in `Up` mode. The proxy sits
//! on both directions of that connection, as it does for a Raft message and its answer.
//!
//!     cargo bench -p chaos-runner --bench proxy [-- ROUND_TRIPS]

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

/// Sorted round-trip times of `n` ping-pongs on one connection.
async fn round_trips(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [7u8; 100];
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
        let via = net.addr(1, 2);
        // Warm up both paths, then alternate so both see the same machine load.
        round_trips(target, 1000).await;
        round_trips(via, 1000).await;
        let mut direct = Vec::new();
        let mut proxied = Vec::new();
        for _ in 0..5 {
            direct.extend(round_trips(target, n / 5).await);
            proxied.extend(round_trips(via, n / 5).await);
        }
        direct.sort_unstable();
        proxied.sort_unstable();
        println!("{n} round trips of 100 bytes on one connection (microseconds):");
        println!("           p50      p90      p99");
        for (name, v) in [("direct", &direct), ("proxied", &proxied)] {
            println!(
                "{name:8} {:8.1} {:8.1} {:8.1}",
                q(v, 0.5),
                q(v, 0.9),
                q(v, 0.99)
            );
        }
        println!(
            "the proxy adds {:.1} us per round trip at the median",
            q(&proxied, 0.5) - q(&direct, 0.5)
        );
    });
}
