//! Phase 2: clients and nemesis for the time limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use checker::record::FailFast;
use tokio::sync::Notify;
use tokio::time::Instant;
use workloads::runner::{run_clients, ClientConfig};

use super::config::Config;
use super::start::Testbed;
use super::summary::Tail;
use super::{online, progress};
use crate::nemesis::{self, Planned};

/// Phase 2: clients and nemesis for the time limit (with `--fail-fast`, until the online
/// checker finds an anomaly, if sooner); returns the seconds of load, the clock of the
/// phases after it, and the anomaly that stopped it.
pub(super) async fn run_load(
    cfg: &Config,
    seed: u64,
    bed: &Testbed,
    schedule: Vec<Planned>,
) -> Result<(f64, Tail, Option<FailFast>)> {
    let started = Instant::now();
    let online = cfg.fail_fast.then(|| {
        let stop = bed.shared.stop.clone();
        online::Online::start(bed.recorder.clone(), cfg.judged(), move |a| {
            crate::console::say!(
                "online checker: anomaly on key {} at {:.2} s (found at {:.2} s): {}; stopping the load",
                a.key,
                a.returned_s,
                a.detected_s,
                a.what
            );
            stop.store(true, Ordering::Relaxed);
        })
    });
    let finish = Arc::new(Notify::new());
    let nemesis = tokio::spawn(nemesis::run(
        schedule,
        started,
        bed.env.clone(),
        bed.recorder.clone(),
        bed.live.clone(),
        finish.clone(),
    ));
    let progress_done = Arc::new(Notify::new());
    let progress = tokio::spawn(progress::run(
        bed.recorder.clone(),
        bed.live.clone(),
        bed.env.cluster.clone(),
        cfg.time_limit,
        online.as_ref().map(|o| o.state.clone()),
        progress_done.clone(),
    ));
    let clients = ClientConfig {
        concurrency: cfg.concurrency,
        rate: cfg.rate,
        time_limit: cfg.time_limit,
        max_ops: cfg.max_ops,
        op_timeout: cfg.op_timeout,
        seed,
        reads_at_home: true,
    };
    run_clients(bed.shared.clone(), clients).await;
    let load_secs = started.elapsed().as_secs_f64();
    let mut tail = Tail {
        limit_at: started + cfg.time_limit,
        phases: Vec::new(),
    };
    tail.mark("clients done");
    let found = online.and_then(online::Online::finish);
    finish.notify_one();
    nemesis.await.context("nemesis task")??;
    progress_done.notify_one();
    let _ = progress.await;
    Ok((load_secs, tail, found))
}
