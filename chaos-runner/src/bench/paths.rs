//! `bench --client-cmd CMD --compare-builtin`: what an adapter costs, measured in one run.
//!
//! Two separate benches cannot resolve a difference of tens of microseconds: the
//! cluster's state, the machine's other load and which core each process lands on move
//! a p50 by a tenth of a millisecond between runs, and the p50 of a mix of reads and
//! writes sits on the edge between two humps. So the operations alternate, one through
//! the adapter and the next through the built-in client, against the same cluster in
//! the same seconds, and each path's latency is kept per kind of operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use checker::record::quantile_of_sorted;
use checker::Outcome;
use serde::Serialize;
use tokio::time::Instant;
use workloads::client::{BoxFuture, Client, Reply};
use workloads::generator::OpSpec;

/// Which client served an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    BuiltIn,
    Adapter,
}

/// One operation that ended `ok`, as the alternating client timed it.
#[derive(Debug, Clone, Copy)]
struct Timed {
    path: Path,
    f: &'static str,
    /// When it completed.
    at: Instant,
    latency_ns: u64,
}

/// A [`Client`] that sends every other operation through the adapter.
pub struct Alternating {
    built_in: Arc<dyn Client>,
    adapter: Arc<dyn Client>,
    next: AtomicU64,
    timed: Mutex<Vec<Timed>>,
}

impl Alternating {
    pub fn new(built_in: Arc<dyn Client>, adapter: Arc<dyn Client>) -> Alternating {
        Alternating {
            built_in,
            adapter,
            next: AtomicU64::new(0),
            timed: Mutex::new(Vec::new()),
        }
    }

    /// Each path's figures for the operations that completed in `[from, to)`.
    pub fn figures(&self, from: Instant, to: Instant) -> Comparison {
        Comparison::of(&self.timed.lock().expect("not poisoned"), from, to)
    }
}

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|ns| ns as f64 / 1e6)
}

impl Client for Alternating {
    fn invoke<'a>(
        &'a self,
        op: &'a OpSpec,
        deadline: Instant,
        home: Option<usize>,
    ) -> BoxFuture<'a, Reply> {
        let path = if self.next.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            Path::Adapter
        } else {
            Path::BuiltIn
        };
        Box::pin(async move {
            let client = match path {
                Path::BuiltIn => &self.built_in,
                Path::Adapter => &self.adapter,
            };
            let started = Instant::now();
            let reply = client.invoke(op, deadline, home).await;
            let at = Instant::now();
            if reply.answer.outcome() == Outcome::Ok {
                self.timed.lock().expect("not poisoned").push(Timed {
                    path,
                    f: op.f.name(false),
                    at,
                    latency_ns: (at - started).as_nanos() as u64,
                });
            }
            reply
        })
    }

    fn set_leader(&self, index: usize) {
        self.built_in.set_leader(index);
        self.adapter.set_leader(index);
    }
}

/// One kind of operation on one path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KindFigures {
    pub ok: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// `bench.json`'s `compare_builtin`: each path's figures per kind of operation, and the
/// adapter's p50 less the built-in client's.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub built_in: BTreeMap<&'static str, KindFigures>,
    pub adapter: BTreeMap<&'static str, KindFigures>,
    pub adapter_adds_p50_ms: BTreeMap<&'static str, f64>,
}

impl Comparison {
    fn of(timed: &[Timed], from: Instant, to: Instant) -> Comparison {
        let mut by: BTreeMap<(Path, &'static str), Vec<u64>> = BTreeMap::new();
        for t in timed.iter().filter(|t| t.at >= from && t.at < to) {
            by.entry((t.path, t.f)).or_default().push(t.latency_ns);
        }
        let mut c = Comparison::default();
        for ((path, f), mut ns) in by {
            ns.sort_unstable();
            let kind = KindFigures {
                ok: ns.len() as u64,
                p50_ms: ms(quantile_of_sorted(&ns, 0.5)),
                p90_ms: ms(quantile_of_sorted(&ns, 0.9)),
                p99_ms: ms(quantile_of_sorted(&ns, 0.99)),
            };
            match path {
                Path::BuiltIn => c.built_in.insert(f, kind),
                Path::Adapter => c.adapter.insert(f, kind),
            };
        }
        for (f, a) in &c.adapter {
            if let (Some(a50), Some(b50)) = (a.p50_ms, c.built_in.get(f).and_then(|b| b.p50_ms)) {
                c.adapter_adds_p50_ms.insert(f, a50 - b50);
            }
        }
        c
    }

    /// The lines `bench` prints.
    pub fn lines(&self) -> Vec<String> {
        let side = |name: &str, m: &BTreeMap<&'static str, KindFigures>| {
            let parts: Vec<String> = m
                .iter()
                .map(|(f, k)| {
                    let q = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
                    format!(
                        "{f} p50 {} p90 {} p99 {} ms ({} ok)",
                        q(k.p50_ms),
                        q(k.p90_ms),
                        q(k.p99_ms),
                        k.ok
                    )
                })
                .collect();
            format!("{name}: {}", parts.join("; "))
        };
        let adds: Vec<String> = self
            .adapter_adds_p50_ms
            .iter()
            .map(|(f, d)| format!("{f} {:+.0} µs", d * 1000.0))
            .collect();
        vec![
            side("built-in client", &self.built_in),
            side("adapter        ", &self.adapter),
            format!("the adapter adds at p50: {}", adds.join(", ")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use workloads::client::Answer;
    use workloads::generator::Func;

    /// Counts the reads it is asked.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Client for Counting {
        fn invoke<'a>(
            &'a self,
            op: &'a OpSpec,
            _deadline: Instant,
            _home: Option<usize>,
        ) -> BoxFuture<'a, Reply> {
            if op.f == Func::Read {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            Box::pin(async { Reply::unrouted(Answer::Ok(Value::Null)) })
        }
        fn set_leader(&self, _index: usize) {}
    }

    #[tokio::test]
    async fn operations_alternate_between_the_two_clients_whatever_their_kind() {
        let (b, a) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
        let alt = Alternating::new(b.clone(), a.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        for i in 0..40 {
            // Reads come in pairs, as do writes: each path gets one of every pair.
            let f = if i % 4 < 2 { Func::Read } else { Func::Write };
            let op = OpSpec {
                f,
                key: "r1".into(),
                value: json!("1"),
            };
            alt.invoke(&op, deadline, None).await;
        }
        assert_eq!(b.0.load(Ordering::Relaxed), 10);
        assert_eq!(a.0.load(Ordering::Relaxed), 10);
        let c = alt.figures(deadline - Duration::from_secs(10), deadline);
        assert_eq!(c.built_in["read"].ok + c.built_in["write"].ok, 20);
        assert_eq!(c.adapter["read"].ok + c.adapter["write"].ok, 20);
    }

    #[test]
    fn each_path_is_timed_per_kind_inside_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut timed = Vec::new();
        for i in 0..10u64 {
            for (path, f, us) in [
                (Path::BuiltIn, "read", 200),
                (Path::Adapter, "read", 230),
                (Path::BuiltIn, "write", 700),
                (Path::Adapter, "write", 760),
            ] {
                timed.push(Timed {
                    path,
                    f,
                    at: at(10 + i),
                    latency_ns: (us + i) * 1000,
                });
            }
        }
        // Outside the window: left out.
        timed.push(Timed {
            path: Path::Adapter,
            f: "read",
            at: at(5),
            latency_ns: 9_000_000,
        });
        let c = Comparison::of(&timed, at(10), at(20));
        assert_eq!(c.adapter["read"].ok, 10);
        assert_eq!(c.built_in["read"].p50_ms, Some(0.204));
        assert_eq!(c.adapter["read"].p50_ms, Some(0.234));
        assert!(
            (c.adapter_adds_p50_ms["read"] - 0.030).abs() < 1e-9,
            "{c:?}"
        );
        assert!(
            (c.adapter_adds_p50_ms["write"] - 0.060).abs() < 1e-9,
            "{c:?}"
        );
        let lines = c.lines();
        assert!(lines[2].contains("read +30 µs, write +60 µs"), "{lines:?}");
        assert!(Comparison::of(&timed, at(0), at(1)).adapter.is_empty());
    }
}
