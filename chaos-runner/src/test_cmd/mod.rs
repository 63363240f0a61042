//! `chaos-runner test`: a complete Jepsen-style test of a cluster on this machine.
//!
//! A run is a short list of named phases, as Jepsen's `run!` is: [`start`] the cluster
//! behind one proxy per directed link, [`run_load`] (clients and nemesis for
//! `--time-limit`), [`heal_and_read`] (heal everything, read every key once more, stop the
//! nodes), [`check_history`] (read the history back and judge it), then write
//! `results.json` and the report, and print the summary.

mod args;
mod check;
mod config;
mod heal;
mod junit;
mod load;
mod online;
pub(crate) mod progress;
mod start;
mod summary;
mod verdict;

use std::path::PathBuf;

use anyhow::Result;

use crate::cluster::die_with_children_on_interrupt;
use crate::exit;
use crate::store::RunDir;
pub(crate) use args::TestArgs;
pub(crate) use check::check_as;
pub(crate) use config::{parse_mix, secs, shell_line, txn_length, Judged};
use config::{replay_args, replay_command, Config};
use junit::RunSummary;
use verdict::{judge, Evidence, Judgement};

/// Runs one test, phase by phase; returns its exit code, a one-line message and its
/// folder. What it says also goes to the run's `runner.log` (its caller adds an error).
async fn run_once(cfg: &Config, seed: u64) -> Result<(u8, String, PathBuf)> {
    let run = RunDir::create(&cfg.store, &cfg.name)?;
    let log = run.path.join("runner.log");
    if let Err(e) = crate::console::open(&log) {
        crate::console::say!("warning: cannot write {}: {e}", log.display());
    }
    let schedule = cfg.nemesis.schedule(seed);
    let replay = replay_command(seed);
    crate::nemesis::schedule_file::write(
        &run.schedule_json(),
        &schedule,
        &format!("planned for seed {seed}"),
    )?;
    let mut record = checker::record::TestRecord {
        seed,
        command: replay.clone(),
        args: replay_args(seed),
        schedule: schedule.iter().map(|p| p.to_string()).collect(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ..cfg.record.clone()
    };
    run.write_json(&run.test_json(), &record)?;
    crate::console::say!(
        "run {} (seed {seed}, {} nodes, {} planned)",
        run.path.display(),
        cfg.cluster.nodes,
        summary::plural(schedule.len(), "fault", "faults")
    );
    let bed = start::start(cfg, &run).await?;
    // Now the API and the mix are known for certain.
    record.api = bed.dialect.name().to_string();
    record.mix = bed.mix.into();
    run.write_json(&run.test_json(), &record)?;
    let (load_secs, mut tail, fail_fast) =
        load::run_load(cfg, seed, &bed, schedule.clone()).await?;
    let final_reads = heal::heal_and_read(&bed, &mut tail).await?;
    let (report, history) = check::check_history(cfg, &run, &mut tail).await?;
    let judged: Judgement = judge(&report, Evidence::of(&history, cfg.min_ok, final_reads));
    // The report reads the history from its file again: not two copies at once.
    drop(history);
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
    let report_path = summary::write(&run, &cfg.store, &results)?;
    tail.mark("report written");
    let planned = schedule.len();
    summary::print(
        &results,
        planned,
        &tail.phases,
        &run.path,
        report_path.as_deref(),
    );
    let message = match (&results.verdict, &results.reason) {
        (checker::Verdict::Unknown, Some(r)) => format!("unknown: {r}"),
        _ => results.checker_summary.clone(),
    };
    Ok((exit::of(results.verdict), message, run.path.clone()))
}

/// One run, started again once if another process took a reserved port first.
async fn run_with_retry(cfg: &Config, seed: u64) -> RunSummary {
    let t = std::time::Instant::now();
    let mut result = Err(anyhow::anyhow!("not run"));
    for attempt in 0..2 {
        result = run_once(cfg, seed).await;
        if let Err(e) = &result {
            crate::console::record(&format!("error: {e:#}"));
        }
        crate::console::close();
        match &result {
            Err(e) if attempt == 0 && format!("{e:#}").contains("Address already in use") => {
                crate::console::say!(
                    "a port was taken before a node could bind it; starting the run again"
                );
            }
            _ => break,
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

/// `--dry-run`: what a run would be (the cluster, the load, the faults and each seed's
/// schedule), without starting anything.
fn dry_run_plan(cfg: &config::Config) {
    let c = &cfg.cluster;
    crate::console::tell!(
        "cluster: {} nodes of {}, links: {}",
        c.nodes,
        c.bin.display(),
        c.links.net_name()
    );
    crate::console::tell!(
        "load: {} workload, {} clients, {} keys, for {:.0} s",
        cfg.kind.name(),
        cfg.concurrency,
        cfg.keys,
        cfg.time_limit.as_secs_f64()
    );
    let kinds: Vec<&str> = cfg.nemesis.faults.iter().map(|k| k.name()).collect();
    crate::console::tell!(
        "faults: {}",
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        }
    );
    for n in &cfg.notes {
        crate::console::tell!("note: {n}");
    }
    let base = cfg.seed.unwrap_or_else(rand::random);
    for i in 0..cfg.test_count {
        let seed = base.wrapping_add(u64::from(i));
        let mut schedule = cfg.nemesis.schedule(seed);
        schedule.sort_by_key(|p| p.start);
        crate::console::tell!("seed {seed}: {} faults", schedule.len());
        for p in &schedule {
            crate::console::tell!("  {p}");
        }
    }
}

pub fn run(args: TestArgs) -> Result<u8> {
    let dry_run = args.dry_run;
    let cfg = config::resolve(args)?;
    if dry_run {
        dry_run_plan(&cfg);
        return Ok(exit::VALID);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Ctrl-C or SIGTERM: take every node down with us.
        die_with_children_on_interrupt();
        for n in &cfg.notes {
            crate::console::say!("note: {n}");
        }
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
