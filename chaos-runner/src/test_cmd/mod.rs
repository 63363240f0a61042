//! `chaos-runner test`: a complete Jepsen-style test of a cluster on this machine.
//!
//! A run is a short list of named phases, as Jepsen's `run!` is: [`start`] the cluster
//! behind one proxy per directed link, [`run_load`] (clients and nemesis for
//! `--time-limit`), [`heal_and_read`] (heal everything, read every key once more, stop the
//! nodes), [`check_history`] (read the history back and judge it), then write
//! `results.json` and the report, and print the summary.

mod args;
mod config;
mod junit;
mod online;
pub(crate) mod progress;
mod summary;
mod verdict;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use checker::check::{check, CheckOptions, CheckReport};
use checker::model::{KeyValue, Register};
use checker::record::{FailFast, FaultDetails, FinalReads, PhaseTime, RunResults};
use checker::{Func, History, Outcome};
use tokio::sync::Notify;
use tokio::time::Instant;
use workloads::client::Dialect;
use workloads::generator::{Generator, Mix, WorkloadKind};
use workloads::recorder::Recorder;
use workloads::runner::{final_reads, run_clients, ClientConfig, Shared};

use crate::cluster::{
    detect_dialect, die_with_children_on_interrupt, start_cluster, wait_for_leader, Cluster,
};
use crate::exit;
use crate::nemesis::{self, Env, Live, Planned};
use crate::store::RunDir;
pub(crate) use args::TestArgs;
pub(crate) use config::{parse_mix, secs};
use config::{replay_command, Config};
use junit::RunSummary;
use verdict::{judge, Evidence, Judgement};

/// A cluster under test, and what records what happens to it.
struct Testbed {
    /// The API the server speaks, and the mix that fits it.
    dialect: Dialect,
    mix: Mix,
    env: Arc<Env>,
    recorder: Arc<Recorder>,
    shared: Arc<Shared>,
    keys: Vec<String>,
    live: Arc<Live>,
}

/// Seconds after the time limit at which each phase ended.
struct Tail {
    limit_at: Instant,
    phases: Vec<PhaseTime>,
}

impl Tail {
    fn mark(&mut self, phase: &str) {
        let s = Instant::now()
            .saturating_duration_since(self.limit_at)
            .as_secs_f64();
        self.phases.push(PhaseTime {
            phase: phase.into(),
            s,
        });
    }
}

/// Phase 1: the nodes are up behind their proxies and one leads; the recorder is open.
async fn start(cfg: &Config, run: &RunDir) -> Result<Testbed> {
    let running = start_cluster(&cfg.cluster_plan(), run).await?;
    let dialect = match cfg.dialect {
        Some(d) => d,
        None => detect_dialect(&running.access, &running.apis).await?,
    };
    let mix = cfg.mix_for(dialect)?;
    if dialect != Dialect::RaftNode {
        crate::console::say!("api: {}", dialect.name());
    }
    if mix != cfg.mix {
        crate::console::say!(
            "the server has no compare-and-set ({} API): the register workload runs reads and writes only",
            dialect.name()
        );
    }
    if let Some(line) = running.hosting.describe() {
        crate::console::say!("{line}");
    }
    crate::console::say!(
        "leader: node {}; running {} clients for {:.0} s",
        running.leader,
        cfg.concurrency,
        cfg.time_limit.as_secs_f64()
    );
    let recorder = Recorder::create(&run.history(), cfg.kind == WorkloadKind::Kv)
        .with_context(|| format!("cannot create {}", run.history().display()))?;
    // --fail-fast checks the history as it grows: the recorder keeps it in memory.
    let recorder = Arc::new(if cfg.fail_fast {
        recorder.keep_history()
    } else {
        recorder
    });
    let client = Arc::new(running.client(dialect));
    let generator = Arc::new(Generator::new(cfg.kind, cfg.keys, mix));
    let keys = generator.all_keys();
    let shared = Shared::new(client, generator, recorder.clone());
    let env = Env {
        kind: running.cluster.kind(),
        cluster: Arc::new(tokio::sync::Mutex::new(running.cluster)),
        net: running.net.map(Arc::new),
        apis: running.apis,
        access: running.access,
        epoch: recorder.epoch(),
        _hosting: running.hosting,
    };
    Ok(Testbed {
        dialect,
        mix,
        env: Arc::new(env),
        recorder,
        shared,
        keys,
        live: Arc::new(Live::default()),
    })
}

/// Phase 2: clients and nemesis for the time limit (with `--fail-fast`, until the online
/// checker finds an anomaly, if sooner); returns the seconds of load, the clock of the
/// phases after it, and the anomaly that stopped it.
async fn run_load(
    cfg: &Config,
    seed: u64,
    bed: &Testbed,
    schedule: Vec<Planned>,
) -> Result<(f64, Tail, Option<FailFast>)> {
    let started = Instant::now();
    let online = cfg.fail_fast.then(|| {
        let stop = bed.shared.stop.clone();
        online::Online::start(bed.recorder.clone(), cfg.kind, move |a| {
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

/// Phase 3: heal every link, restart and resume every node, wait for a leader, read every
/// key once more (so lost writes show), close the history and stop the nodes.
async fn heal_and_read(bed: &Testbed, tail: &mut Tail) -> Result<FinalReads> {
    if let Some(net) = &bed.env.net {
        net.heal();
    }
    let ids: Vec<u64> = bed.env.apis.iter().map(|(i, _)| *i).collect();
    {
        let mut c = bed.env.cluster.lock().await;
        for &i in &ids {
            c.resume(i);
            if !c.is_running(i) {
                c.start(i)?;
            }
        }
    }
    let healed = FaultDetails {
        nodes: ids,
        ..FaultDetails::default()
    };
    bed.recorder
        .nemesis(checker::record::FaultEdge::Heal, &healed);
    let recovered = {
        let mut c = bed.env.cluster.lock().await;
        wait_for_leader(&mut c, Duration::from_secs(30)).await
    };
    tail.mark("recovered");
    if let Err(e) = &recovered {
        bed.live
            .warn(format!("the cluster did not recover after healing: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ok, failed) = final_reads(&bed.shared, &bed.keys, deadline).await;
    tail.mark("final reads");
    bed.shared.stop.store(true, Ordering::Relaxed);
    bed.recorder.finish().context("writing the history")?;
    stop_nodes(&bed.env.cluster).await;
    tail.mark("nodes stopped");
    Ok(FinalReads { ok, failed })
}

async fn stop_nodes(cluster: &tokio::sync::Mutex<Cluster>) {
    let mut c = cluster.lock().await;
    tokio::task::block_in_place(|| c.stop_all());
}

/// Phase 4: reads the history back from the file, as anyone re-checking it would, and
/// checks it on a blocking thread (a spinner on terminals shows it is alive).
async fn check_history(
    cfg: &Config,
    run: &RunDir,
    tail: &mut Tail,
) -> Result<(CheckReport, History)> {
    let text = std::fs::read_to_string(run.history())?;
    let history =
        checker::history::read_jsonl(text.as_bytes()).context("reading back the history")?;
    crate::console::say!("checking {} operations...", history.ops.len());
    let opts = CheckOptions {
        timeout: Some(cfg.check_timeout),
        memory_limit: cfg.check_memory,
        all_keys: cfg.all_keys,
        ..CheckOptions::default()
    };
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!("checking {} operations", history.ops.len()));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let kind = cfg.kind;
    let checked =
        tokio::task::spawn_blocking(move || check_as(kind, &history, &opts).map(|r| (r, history)))
            .await
            .context("checker thread")??;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    tail.mark("checked");
    Ok(checked)
}

/// Checks `history` with the model of the workload that made it: a cas register per key,
/// or a map whose missing keys read as nil. The final check and the online one agree.
fn check_as(
    kind: WorkloadKind,
    history: &History,
    opts: &CheckOptions,
) -> Result<CheckReport, checker::check::CheckError> {
    match kind {
        WorkloadKind::Register => check(&Register::new(true), history, opts),
        WorkloadKind::Kv => check(
            &KeyValue {
                missing_is_empty: false,
            },
            history,
            opts,
        ),
    }
}

/// The verdict rules' evidence, from the history.
fn evidence(cfg: &Config, history: &History) -> Evidence {
    let ok = history.ops.iter().filter(|o| o.outcome == Outcome::Ok);
    Evidence {
        ok_ops: ok.clone().count() as u64,
        // A function the models do not know counts as a write: never a reason to doubt.
        ok_writes: ok.filter(|o| o.func().is_none_or(Func::is_write)).count() as u64,
        min_ok: cfg.min_ok,
    }
}

/// Phase 5: results.json, the report and the store's index.
fn write_results(
    run: &RunDir,
    store: &std::path::Path,
    results: &RunResults,
) -> Result<Option<PathBuf>> {
    run.write_json(&run.results(), results)?;
    let report = match reports::build(&run.path) {
        Ok(w) => Some(w.report),
        Err(e) => {
            crate::console::say!("warning: could not write the report: {e}");
            None
        }
    };
    if let Err(e) = reports::index::build(store) {
        crate::console::say!("warning: could not rebuild the run index: {e}");
    }
    Ok(report)
}

/// Runs one test; returns its exit code, a one-line message and its folder. What it says
/// also goes to the run's `runner.log`, an error included.
async fn run_once(cfg: &Config, seed: u64) -> Result<(u8, String, PathBuf)> {
    let run = RunDir::create(&cfg.store, &cfg.name)?;
    let log = run.path.join("runner.log");
    if let Err(e) = crate::console::open(&log) {
        crate::console::say!("warning: cannot write {}: {e}", log.display());
    }
    let result = run_in(cfg, seed, run).await;
    if let Err(e) = &result {
        crate::console::record(&format!("error: {e:#}"));
    }
    crate::console::close();
    result
}

/// The phases of one run, in its folder `run`.
async fn run_in(cfg: &Config, seed: u64, run: RunDir) -> Result<(u8, String, PathBuf)> {
    let mut schedule = match cfg.nemesis_interval {
        Some(interval) => nemesis::plan(
            seed,
            &cfg.faults,
            &cfg.targets,
            &cfg.shapes,
            interval,
            cfg.time_limit,
        ),
        None => nemesis::plan_search(seed, &cfg.faults, &cfg.targets, &cfg.shapes, cfg.time_limit),
    };
    if cfg.staggered_kills {
        for p in schedule.iter_mut().filter(|p| p.can_stagger()) {
            p.staggered = true;
        }
    }
    let replay = replay_command(seed);
    let record = |dialect, mix| cfg.test_record(seed, &replay, &schedule, dialect, mix);
    run.write_json(&run.test_json(), &record(None, cfg.mix))?;
    crate::console::say!(
        "run {} (seed {seed}, {} nodes, {} planned)",
        run.path.display(),
        cfg.nodes,
        summary::plural(schedule.len(), "fault", "faults")
    );
    let bed = start(cfg, &run).await?;
    // Now the API and the mix are known for certain.
    run.write_json(&run.test_json(), &record(Some(bed.dialect), bed.mix))?;
    let (load_secs, mut tail, fail_fast) = run_load(cfg, seed, &bed, schedule.clone()).await?;
    let final_reads = heal_and_read(&bed, &mut tail).await?;
    let (report, history) = check_history(cfg, &run, &mut tail).await?;
    let judged: Judgement = judge(&report, evidence(cfg, &history));
    let facts = summary::Facts {
        seed,
        command: replay,
        counts: bed.recorder.counts(),
        load_secs,
        samples: bed.recorder.samples(),
        faults: {
            // The layers finish faults out of order; results list them as they began.
            let mut f = bed.live.faults.lock().expect("lock").clone();
            f.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
            f
        },
        final_reads,
        warnings: bed.live.warnings.lock().expect("lock").clone(),
        after_time_limit: tail.phases.clone(),
        fail_fast,
    };
    let results = summary::results(facts, report, judged);
    let report_path = write_results(&run, &cfg.store, &results)?;
    tail.mark("report written");
    summary::print(&results, &tail.phases, &run.path, report_path.as_deref());
    let message = match (&results.verdict, &results.reason) {
        (checker::Verdict::Unknown, Some(r)) => format!("unknown: {r}"),
        _ => results.checker_summary.clone(),
    };
    Ok((exit::of(results.verdict), message, run.path.clone()))
}

/// One run, started again once if another process took a reserved port first.
async fn run_with_retry(cfg: &Config, seed: u64) -> RunSummary {
    let t = std::time::Instant::now();
    let mut result = run_once(cfg, seed).await;
    if let Err(e) = &result {
        if format!("{e:#}").contains("Address already in use") {
            crate::console::say!(
                "a port was taken before a node could bind it; starting the run again"
            );
            result = run_once(cfg, seed).await;
        }
    }
    let (code, message, dir) = match result {
        Ok((code, message, dir)) => (code, message, Some(dir)),
        Err(e) => (exit::ERROR, format!("{e:#}"), None),
    };
    RunSummary {
        seed,
        code,
        seconds: t.elapsed().as_secs_f64(),
        message,
        dir,
    }
}

pub fn run(args: TestArgs) -> Result<u8> {
    let cfg = config::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Ctrl-C or SIGTERM: take every node down with us.
        die_with_children_on_interrupt();
        let base = cfg.seed.unwrap_or_else(rand::random);
        let count = cfg.test_count;
        let mut runs = Vec::new();
        for i in 0..count {
            if count > 1 {
                crate::console::say!("=== test {} of {count}", i + 1);
            }
            let r = run_with_retry(&cfg, base.wrapping_add(u64::from(i))).await;
            let stop = r.code == exit::INVALID || r.code == exit::ERROR;
            runs.push(r);
            if stop {
                break;
            }
        }
        if count > 1 {
            summary::print_runs(&runs, count);
        }
        if let Some(path) = &cfg.junit {
            junit::write(path, &cfg.name, &runs)?;
        }
        if let Some(failed) = runs.iter().find(|r| r.code == exit::ERROR) {
            anyhow::bail!("{}", failed.message);
        }
        // Invalid outranks everything: the first invalid run decides.
        Ok(if runs.iter().any(|r| r.code == exit::INVALID) {
            exit::INVALID
        } else {
            runs.iter().map(|r| r.code).max().unwrap_or(exit::VALID)
        })
    })
}
