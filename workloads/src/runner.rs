//! The concurrent clients of a test.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use tokio::time::Instant;

use checker::Outcome;

use crate::client::{Answer, Client};
use crate::generator::{Func, Generator, OpSpec};
use crate::recorder::{Completion, Recorder};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub concurrency: usize,
    /// Total operations per second over all clients; `None`: as fast as they can.
    pub rate: Option<f64>,
    pub time_limit: Duration,
    /// Stop after this many operations in total.
    pub max_ops: Option<u64>,
    pub op_timeout: Duration,
    pub seed: u64,
    /// Send each client's reads to its own node first (as Jepsen binds clients to nodes,
    /// so a node that serves reads it should not is asked); otherwise to the leader.
    pub reads_at_home: bool,
}

/// What the clients share.
pub struct Shared {
    pub client: Arc<dyn Client>,
    pub generator: Arc<Generator>,
    pub recorder: Arc<Recorder>,
    /// Set to stop every client after its current operation.
    pub stop: Arc<AtomicBool>,
    next_process: AtomicI64,
    started: AtomicU64,
}

impl Shared {
    pub fn new(
        client: Arc<dyn Client>,
        generator: Arc<Generator>,
        recorder: Arc<Recorder>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            client,
            generator,
            recorder,
            stop: Arc::new(AtomicBool::new(false)),
            next_process: AtomicI64::new(0),
            started: AtomicU64::new(0),
        })
    }

    /// A fresh logical process id.
    pub fn fresh_process(&self) -> i64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Performs one operation as `process`, recording invocation and completion. Reads
    /// go first to node `home`, if given.
    pub async fn perform(
        &self,
        process: i64,
        op: &OpSpec,
        timeout: Duration,
        home: Option<usize>,
    ) -> Outcome {
        let invoke_value = match op.f {
            Func::Read => Value::Null,
            _ => op.value.clone(),
        };
        let inv = self.recorder.invoke(process, op.f, &op.key, invoke_value);
        let reply = self.client.invoke(op, Instant::now() + timeout, home).await;
        let (answer, route) = (reply.answer, reply.route);
        let outcome = answer.outcome();
        // A failed or unknown operation keeps the arguments of its invocation.
        let (value, error, reason) = match answer {
            Answer::Ok(value) => (value, None, None),
            Answer::Fail(reason, e) => (inv.value.clone(), Some(e), Some(reason)),
            Answer::Info(e) => (inv.value.clone(), Some(e), None),
        };
        let done = Completion {
            outcome,
            value,
            error,
            reason,
            node: route.node,
            via: route.via,
        };
        self.recorder.complete(&inv, done);
        outcome
    }
}

/// Runs the clients until the time limit, the operation limit or `shared.stop`.
pub async fn run_clients(shared: Arc<Shared>, cfg: ClientConfig) {
    let end = Instant::now() + cfg.time_limit;
    let mut tasks = Vec::new();
    for worker in 0..cfg.concurrency.max(1) {
        let shared = shared.clone();
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng =
                StdRng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(worker as u64));
            let mut process = shared.fresh_process();
            let period = cfg
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(cfg.concurrency as f64 / r));
            let mut next_at = Instant::now();
            loop {
                if shared.stop.load(Ordering::Relaxed) || Instant::now() >= end {
                    break;
                }
                if let Some(max) = cfg.max_ops {
                    if shared.started.fetch_add(1, Ordering::Relaxed) >= max {
                        break;
                    }
                }
                if let Some(p) = period {
                    tokio::time::sleep_until(next_at).await;
                    next_at = next_at.max(Instant::now() - p) + p;
                }
                let op = shared.generator.next(&mut rng);
                // Each client reads from its own node first, so every node gets asked.
                if shared
                    .perform(
                        process,
                        &op,
                        cfg.op_timeout,
                        cfg.reads_at_home.then_some(worker),
                    )
                    .await
                    == Outcome::Info
                {
                    // Its operation may still be in flight: Jepsen retires the process.
                    process = shared.fresh_process();
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Reads every key once more after the cluster healed, so lost writes show up
/// ([`crate::generator::Generator::final_reads`]). Retries a read until it succeeds or
/// `deadline`.
pub async fn final_reads(shared: &Shared, reads: &[OpSpec], deadline: Instant) -> (usize, usize) {
    let (mut done, mut failed) = (0, 0);
    for op in reads {
        loop {
            let process = shared.fresh_process();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                failed += 1;
                break;
            }
            if shared
                .perform(process, op, left.min(Duration::from_secs(5)), None)
                .await
                == Outcome::Ok
            {
                done += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (done, failed)
}
