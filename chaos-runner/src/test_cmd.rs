//! `chaos-runner test`: a complete Jepsen-style test of a cluster on this machine.
//!
//! Start the nodes behind one proxy per directed link, wait for a leader, run the clients
//! and the nemesis for `--time-limit`, heal everything, read every key once more, stop
//! the nodes, check the history, and say valid / invalid / unknown.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::check::{check, CheckOptions, CheckReport};
use checker::model::{KeyValue, Register};
use checker::Verdict;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use workloads::client::{KvClient, NodeApi};
use workloads::generator::{mix_for, preset, Generator, Mix, WorkloadKind, PRESETS};
use workloads::recorder::{quantile, Recorder};
use workloads::runner::{final_reads, run_clients, ClientConfig, Shared};

use crate::cluster::{
    die_with_children_on_interrupt, find_leader, free_ports, raft_node_binary, wait_for_leader,
    Cluster, NodeSpec,
};
use crate::exit;
use crate::nemesis::{choose_nodes, grudge, grudge_json, plan, FaultKind, Planned, Shape, Target};
use crate::proxy::{LinkMode, Network};
use crate::store::RunDir;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Few keys; read, write and compare-and-set on small values (Jepsen's register).
    Register,
    /// Many keys; get, put (unique values) and delete. Needs no cas endpoint.
    Kv,
}

/// Run a chaos test against a local cluster and check it for linearizability.
///
/// With no flags: 3 raft-node processes, the register workload (5 clients, 5 keys), every
/// fault kind (kill, pause, partition, latency) every 3 s, for 30 s; then heal, read every
/// key, check. Results go to store/<name>/<timestamp>/ (store/latest points at the newest).
///
/// Exit codes: 0 valid, 1 invalid (an anomaly; the results name it), 2 unknown (too few
/// operations succeeded, or the checker ran out of budget), 3 harness error.
#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    /// Test name: the folder under the store (default: the workload's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=9))]
    pub nodes: u64,
    /// The server binary (default: raft-node beside this executable). Any server taking
    /// --id --transport-port --api-port --data-dir --peers and serving /kv/:key works.
    #[arg(long, value_name = "PATH")]
    pub raft_node: Option<PathBuf>,
    /// An extra argument for every node (repeat for several), e.g. --node-arg=--heartbeat-ms=30
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    #[arg(long, value_enum, default_value = "register")]
    pub workload: WorkloadArg,
    /// healthy (5 clients, 50% writes), high-concurrency (10 clients), write-heavy (80%
    /// writes), read-heavy (80% reads).
    #[arg(long, value_parser = ["healthy", "high-concurrency", "write-heavy", "read-heavy"])]
    pub preset: Option<String>,
    /// Keys the workload uses (default: 5 for register, 100 for kv).
    #[arg(long)]
    pub keys: Option<usize>,
    /// Concurrent clients (default: the preset's).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Target operations per second over all clients (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of load and faults.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub time_limit: f64,
    /// Stop the clients after this many operations.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Weights of read, write, cas and delete, e.g. read=50,write=30,cas=20 (overrides the preset).
    #[arg(long, value_name = "F=W,...")]
    pub mix: Option<String>,
    /// Seconds an operation may take before its outcome is recorded as unknown.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub op_timeout: f64,
    /// Faults to inject: any of kill,pause,partition,latency, or all, or none.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Seconds of each fault, and of each healthy gap between faults.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub nemesis_interval: f64,
    /// Whom kills and pauses hit: any of random,leader,minority,majority,every (all nodes
    /// at once), or all (the first four).
    #[arg(long, default_value = "all")]
    pub nemesis_targets: String,
    /// Partition shapes: any of isolate,halves,majorities-ring,bridge,random, or all.
    #[arg(long, default_value = "all")]
    pub partitions: String,
    /// One-way delay of every node-to-node link, in milliseconds, for the whole run (a
    /// slower network: every window a race needs, such as the first round trip of a new
    /// leader, grows with it). The latency fault adds 50 to 150 ms on top.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub link_latency: u64,
    /// Seed of the fault schedule and the clients' choices (default: random; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Root folder of the results.
    #[arg(long, default_value = "store", value_name = "DIR")]
    pub store: PathBuf,
    /// Fewer ok operations than this makes the verdict "unknown", never "valid".
    #[arg(long, default_value_t = 50)]
    pub min_ok: u64,
    /// Repeat the test this many times (seeds seed, seed+1, ...); stop at the first invalid.
    #[arg(long, default_value_t = 1)]
    pub test_count: u32,
    /// Seconds the checker may take.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub check_timeout: f64,
    /// Memory budget of the checker's search for one key, in MiB (keys are checked in
    /// parallel, one per core).
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub check_memory: u64,
    /// Also write a JUnit XML report here (one test case per run; an anomaly is a
    /// failure, an unknown verdict is skipped, a harness error is an error).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// What one run ended with, for the JUnit report.
struct RunSummary {
    seed: u64,
    code: u8,
    seconds: f64,
    message: String,
    dir: Option<PathBuf>,
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the runs as a JUnit test suite.
fn write_junit(path: &std::path::Path, name: &str, runs: &[RunSummary]) -> Result<()> {
    let count = |c: u8| runs.iter().filter(|r| r.code == c).count();
    let total: f64 = runs.iter().map(|r| r.seconds).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"chaos-runner {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{total:.3}\">\n",
        xml(name),
        runs.len(),
        count(exit::INVALID),
        count(exit::ERROR),
        count(exit::UNKNOWN)
    );
    for r in runs {
        out += &format!(
            "  <testcase classname=\"chaos-runner.{}\" name=\"{} seed {}\" time=\"{:.3}\">\n",
            xml(name),
            xml(name),
            r.seed,
            r.seconds
        );
        let detail = r
            .dir
            .as_ref()
            .map(|d| format!("results: {}", d.display()))
            .unwrap_or_default();
        match r.code {
            exit::VALID => {}
            exit::INVALID => {
                out += &format!(
                    "    <failure type=\"invalid\" message=\"{}\">{}</failure>\n",
                    xml(&r.message),
                    xml(&detail)
                )
            }
            exit::UNKNOWN => out += &format!("    <skipped message=\"{}\"/>\n", xml(&r.message)),
            _ => {
                out += &format!(
                    "    <error message=\"{}\">{}</error>\n",
                    xml(&r.message),
                    xml(&detail)
                )
            }
        }
        out += "  </testcase>\n";
    }
    out += "</testsuite>\n";
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

struct Config {
    args: TestArgs,
    name: String,
    kind: WorkloadKind,
    keys: usize,
    concurrency: usize,
    mix: Mix,
    faults: Vec<FaultKind>,
    targets: Vec<Target>,
    shapes: Vec<Shape>,
    bin: PathBuf,
}

fn list<T: Copy>(
    s: &str,
    all: &[T],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>> {
    match s.trim() {
        "all" => Ok(all.to_vec()),
        "none" | "" => Ok(Vec::new()),
        s => s
            .split(',')
            .map(|p| parse(p.trim()).with_context(|| format!("unknown {what} {p:?}")))
            .collect(),
    }
}

pub(crate) fn parse_mix(s: &str) -> Result<Mix> {
    let mut mix = Mix {
        read: 0,
        write: 0,
        cas: 0,
        delete: 0,
    };
    for part in s.split(',') {
        let (f, w) = part
            .split_once('=')
            .with_context(|| format!("--mix part {part:?} is not F=WEIGHT"))?;
        let w: u32 = w
            .trim()
            .parse()
            .with_context(|| format!("--mix weight {w:?} is not a whole number"))?;
        match f.trim() {
            "read" | "get" => mix.read = w,
            "write" | "put" => mix.write = w,
            "cas" => mix.cas = w,
            "delete" => mix.delete = w,
            other => bail!("--mix knows read, write, cas, delete; not {other:?}"),
        }
    }
    Ok(mix)
}

pub(crate) fn secs(v: f64, flag: &str) -> Result<Duration> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{flag} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

fn resolve(args: TestArgs) -> Result<Config> {
    let kind = match args.workload {
        WorkloadArg::Register => WorkloadKind::Register,
        WorkloadArg::Kv => WorkloadKind::Kv,
    };
    let p = args
        .preset
        .as_deref()
        .map_or(PRESETS[0], |n| preset(n).expect("clap checked it"));
    let mix = match &args.mix {
        Some(m) => parse_mix(m)?,
        None => mix_for(kind, p.write_pct),
    };
    let bin = raft_node_binary(args.raft_node.as_ref())?;
    secs(args.time_limit, "--time-limit")?;
    secs(args.op_timeout, "--op-timeout")?;
    secs(args.check_timeout, "--check-timeout")?;
    let faults = list(&args.nemesis, &FaultKind::ALL, FaultKind::parse, "fault")?;
    if !faults.is_empty() {
        secs(args.nemesis_interval, "--nemesis-interval")?;
    }
    let targets = list(&args.nemesis_targets, &Target::ALL, Target::parse, "target")?;
    let shapes = list(
        &args.partitions,
        &Shape::ALL,
        Shape::parse,
        "partition shape",
    )?;
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of operations per second");
        }
    }
    let name = args.name.clone().unwrap_or_else(|| match kind {
        WorkloadKind::Register => "register".into(),
        WorkloadKind::Kv => "kv".into(),
    });
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("--name must be a plain folder name");
    }
    Ok(Config {
        keys: args
            .keys
            .unwrap_or(if kind == WorkloadKind::Kv { 100 } else { 5 })
            .max(1),
        concurrency: args.concurrency.unwrap_or(p.concurrency).clamp(1, 1024),
        name,
        kind,
        mix,
        faults,
        targets: if targets.is_empty() {
            vec![Target::Random]
        } else {
            targets
        },
        shapes: if shapes.is_empty() {
            vec![Shape::Halves]
        } else {
            shapes
        },
        bin,
        args,
    })
}

/// The command that replays this run: the same arguments with this seed.
fn replay_command(seed: u64) -> String {
    let mut out = vec!["chaos-runner".to_string()];
    let mut args = std::env::args().skip(1).peekable();
    while let Some(a) = args.next() {
        if a == "--seed" {
            args.next();
            continue;
        }
        if a.starts_with("--seed=") || a == "--test-count" || a.starts_with("--test-count=") {
            if a == "--test-count" {
                args.next();
            }
            continue;
        }
        out.push(if a.contains(' ') || a.is_empty() {
            format!("'{a}'")
        } else {
            a
        });
    }
    out.push(format!("--seed {seed}"));
    out.join(" ")
}

/// A fault that happened, for results and summary.
#[derive(Debug, Clone)]
struct FaultRecord {
    description: String,
    start: f64,
    end: f64,
    value: Value,
}

struct Live {
    active: Mutex<String>,
    faults: Mutex<Vec<FaultRecord>>,
    warnings: Mutex<Vec<String>>,
}

/// Applies one planned fault; returns what to record and the nodes it touched.
async fn start_fault(
    p: &Planned,
    cluster: &tokio::sync::Mutex<Cluster>,
    net: &Network,
    apis: &[(u64, String)],
) -> (String, Value) {
    let ids: Vec<u64> = apis.iter().map(|(i, _)| *i).collect();
    let leader = if p.target == Target::Leader {
        find_leader(apis).await
    } else {
        None
    };
    match p.kind {
        FaultKind::Kill | FaultKind::Pause => {
            let nodes = choose_nodes(p, &ids, leader);
            let mut c = cluster.lock().await;
            for &n in &nodes {
                if p.kind == FaultKind::Kill {
                    tokio::task::block_in_place(|| c.kill(n));
                } else {
                    c.pause(n);
                }
            }
            let d = format!("{} {} {:?}", p.kind.name(), p.target.name(), nodes);
            (d, json!({"nodes": nodes, "target": p.target.name()}))
        }
        FaultKind::Partition => {
            let g = grudge(p, &ids, leader);
            // Half the partitions refuse connections, half swallow them so timeouts fire.
            let (mode, how) = if p.pick.is_multiple_of(2) {
                (LinkMode::Cut, "cut")
            } else {
                (LinkMode::BlackHole, "black-hole")
            };
            for (a, deaf) in &g {
                for b in deaf {
                    // a does not hear b: the link b -> a fails.
                    net.set(*b, *a, mode);
                }
            }
            let d = format!("partition {} ({how})", p.shape.name());
            (
                d,
                json!({"shape": p.shape.name(), "mode": how, "grudge": grudge_json(&g), "nodes": ids}),
            )
        }
        FaultKind::Latency => {
            let base = match net.baseline() {
                LinkMode::Delay { ms, .. } => ms,
                _ => 0,
            };
            net.set_all(LinkMode::Delay {
                ms: base + 50,
                jitter_ms: 100,
            });
            (
                format!("latency {}-{}ms", base + 50, base + 150),
                json!({"delay_ms": base + 50, "jitter_ms": 100, "nodes": ids}),
            )
        }
    }
}

async fn end_fault(
    p: &Planned,
    value: &Value,
    cluster: &tokio::sync::Mutex<Cluster>,
    net: &Network,
) -> Result<()> {
    match p.kind {
        FaultKind::Kill | FaultKind::Pause => {
            let nodes: Vec<u64> =
                serde_json::from_value(value["nodes"].clone()).unwrap_or_default();
            let mut c = cluster.lock().await;
            for n in nodes {
                if p.kind == FaultKind::Kill {
                    c.start(n)?;
                } else {
                    c.resume(n);
                }
            }
        }
        FaultKind::Partition | FaultKind::Latency => net.heal(),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn nemesis_loop(
    schedule: Vec<Planned>,
    started: Instant,
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    net: Arc<Network>,
    apis: Vec<(u64, String)>,
    recorder: Arc<Recorder>,
    live: Arc<Live>,
    finish: Arc<Notify>,
) -> Result<()> {
    for p in schedule {
        tokio::select! {
            _ = tokio::time::sleep_until(started + p.start) => {}
            _ = finish.notified() => return Ok(()),
        }
        let (description, value) = start_fault(&p, &cluster, &net, &apis).await;
        let t0 = recorder.nemesis(&format!("start-{}", p.kind.name()), value.clone());
        *live.active.lock().expect("lock") = description.clone();
        let finished = tokio::select! {
            _ = tokio::time::sleep_until(started + p.end) => false,
            _ = finish.notified() => true,
        };
        end_fault(&p, &value, &cluster, &net).await?;
        let t1 = recorder.nemesis(&format!("stop-{}", p.kind.name()), value.clone());
        live.active.lock().expect("lock").clear();
        live.faults.lock().expect("lock").push(FaultRecord {
            description,
            start: t0 as f64 / 1e9,
            end: t1 as f64 / 1e9,
            value,
        });
        if finished {
            return Ok(());
        }
    }
    Ok(())
}

async fn progress_loop(
    recorder: Arc<Recorder>,
    live: Arc<Live>,
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    time_limit: Duration,
    done: Arc<Notify>,
) {
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let b = indicatif::ProgressBar::new(time_limit.as_millis() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:24}] {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    });
    let start = Instant::now();
    let mut last_line = Instant::now();
    let mut last_ok = 0;
    let mut last_t = Instant::now();
    let mut rate = 0.0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = done.notified() => break,
        }
        // A node that exits on its own (not by the nemesis) is a finding worth shouting.
        {
            let mut c = cluster.lock().await;
            for id in c.ids() {
                if let Some(status) = c.exited(id) {
                    let w = format!(
                        "node {id} exited on its own ({status}); the end of its log:\n{}",
                        c.log_tail(id, 10)
                    );
                    recorder.nemesis("crash", json!({"nodes": [id], "status": status}));
                    live.warnings.lock().expect("lock").push(w.clone());
                    eprintln!("WARNING: {w}");
                }
            }
        }
        let counts = recorder.counts();
        let dt = last_t.elapsed().as_secs_f64();
        if dt >= 1.0 {
            rate = (counts.ok + counts.fail + counts.info - last_ok) as f64 / dt;
            last_ok = counts.ok + counts.fail + counts.info;
            last_t = Instant::now();
        }
        let active = live.active.lock().expect("lock").clone();
        let msg = format!(
            "ok {} fail {} info {} | {:.0} ops/s | {}",
            counts.ok,
            counts.fail,
            counts.info,
            rate,
            if active.is_empty() {
                "no fault"
            } else {
                &active
            }
        );
        match &bar {
            Some(b) => {
                b.set_position(start.elapsed().as_millis() as u64);
                b.set_message(msg);
            }
            None => {
                if last_line.elapsed() >= Duration::from_secs(5) {
                    eprintln!("[{:>5.1}s] {msg}", start.elapsed().as_secs_f64());
                    last_line = Instant::now();
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

fn ms(ns: Option<u64>) -> Value {
    ns.map_or(Value::Null, |n| json!((n as f64 / 1e4).round() / 100.0))
}

/// Runs one test; returns its exit code, a one-line message and its folder.
async fn run_once(cfg: &Config, seed: u64) -> Result<(u8, String, PathBuf)> {
    let a = &cfg.args;
    let run = RunDir::create(&a.store, &cfg.name)?;
    let time_limit = secs(a.time_limit, "--time-limit")?;
    let interval = Duration::from_secs_f64(a.nemesis_interval.max(0.1));
    let schedule = plan(
        seed,
        &cfg.faults,
        &cfg.targets,
        &cfg.shapes,
        interval,
        time_limit,
    );
    let replay = replay_command(seed);
    let n = a.nodes;
    let ids: Vec<u64> = (1..=n).collect();
    let (ports, reserved) = free_ports(2 * n as usize)?;
    let transports: Vec<(u64, SocketAddr)> = ids
        .iter()
        .map(|&i| {
            (
                i,
                SocketAddr::from(([127, 0, 0, 1], ports[(i - 1) as usize])),
            )
        })
        .collect();
    let mut net = Network::start(&transports).await?;
    if a.link_latency > 0 {
        net.set_baseline(LinkMode::Delay {
            ms: a.link_latency,
            jitter_ms: 0,
        });
    }
    let net = Arc::new(net);
    let specs: Vec<NodeSpec> = ids
        .iter()
        .map(|&i| NodeSpec {
            id: i,
            transport_port: ports[(i - 1) as usize],
            api_port: ports[(n + i - 1) as usize],
            data_dir: run.node_dir(i),
            log: run.node_log(i),
            peers: ids
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| (j, net.addr(i, j).to_string()))
                .collect(),
        })
        .collect();
    let apis: Vec<(u64, String)> = specs.iter().map(|s| (s.id, s.api_addr())).collect();
    run.write_json(
        &run.test_json(),
        &json!({
            "name": cfg.name,
            "seed": seed,
            "command": replay,
            "nodes": n,
            "server": cfg.bin,
            "node_args": a.node_args,
            "workload": format!("{:?}", a.workload).to_lowercase(),
            "preset": a.preset,
            "keys": cfg.keys,
            "concurrency": cfg.concurrency,
            "rate": a.rate,
            "mix": {"read": cfg.mix.read, "write": cfg.mix.write, "cas": cfg.mix.cas, "delete": cfg.mix.delete},
            "time_limit_s": a.time_limit,
            "ops": a.ops,
            "op_timeout_s": a.op_timeout,
            "nemesis": cfg.faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "nemesis_interval_s": a.nemesis_interval,
            "link_latency_ms": a.link_latency,
            "nemesis_targets": cfg.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "partitions": cfg.shapes.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "schedule": schedule.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "min_ok": a.min_ok,
            "started": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }),
    )?;
    eprintln!(
        "run {} (seed {seed}, {n} nodes, {} faults planned)",
        run.path.display(),
        schedule.len()
    );

    drop(reserved);
    let mut cluster = Cluster::new(cfg.bin.clone(), a.node_args.clone(), specs);
    for &i in &ids {
        cluster.start(i)?;
    }
    let leader = wait_for_leader(&mut cluster, Duration::from_secs(20)).await?;
    eprintln!(
        "leader: node {leader}; running {} clients for {:.0} s",
        cfg.concurrency, a.time_limit
    );
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));

    let recorder = Arc::new(
        Recorder::create(&run.history(), cfg.kind == WorkloadKind::Kv)
            .with_context(|| format!("cannot create {}", run.history().display()))?,
    );
    let client = Arc::new(KvClient::new(
        apis.iter()
            .map(|(id, addr)| NodeApi {
                id: *id,
                addr: addr.clone(),
            })
            .collect(),
    ));
    let generator = Arc::new(Generator::new(cfg.kind, cfg.keys, cfg.mix));
    let shared = Shared::new(client, generator.clone(), recorder.clone());
    let live = Arc::new(Live {
        active: Mutex::new(String::new()),
        faults: Mutex::new(Vec::new()),
        warnings: Mutex::new(Vec::new()),
    });
    let started = Instant::now();
    let finish = Arc::new(Notify::new());
    let nemesis = tokio::spawn(nemesis_loop(
        schedule,
        started,
        cluster.clone(),
        net.clone(),
        apis.clone(),
        recorder.clone(),
        live.clone(),
        finish.clone(),
    ));
    let progress_done = Arc::new(Notify::new());
    let progress = tokio::spawn(progress_loop(
        recorder.clone(),
        live.clone(),
        cluster.clone(),
        time_limit,
        progress_done.clone(),
    ));
    run_clients(
        shared.clone(),
        ClientConfig {
            concurrency: cfg.concurrency,
            rate: a.rate,
            time_limit,
            max_ops: a.ops,
            op_timeout: secs(a.op_timeout, "--op-timeout")?,
            seed,
            reads_at_home: true,
        },
    )
    .await;
    let load_secs = started.elapsed().as_secs_f64();
    // How long the verdict takes after the time limit, phase by phase.
    let limit_at = started + time_limit;
    let after_limit = move || {
        Instant::now()
            .saturating_duration_since(limit_at)
            .as_secs_f64()
    };
    let mut tail = vec![("clients done", after_limit())];
    finish.notify_one();
    nemesis.await.context("nemesis task")??;
    progress_done.notify_one();
    let _ = progress.await;

    // Heal everything and let the cluster recover, then read every key.
    net.heal();
    {
        let mut c = cluster.lock().await;
        for &i in &ids {
            c.resume(i);
            if !c.is_running(i) {
                c.start(i)?;
            }
        }
    }
    recorder.nemesis("heal", json!({"nodes": ids}));
    let recovered = {
        let mut c = cluster.lock().await;
        wait_for_leader(&mut c, Duration::from_secs(30)).await
    };
    tail.push(("recovered", after_limit()));
    if let Err(e) = &recovered {
        live.warnings
            .lock()
            .expect("lock")
            .push(format!("the cluster did not recover after healing: {e}"));
    }
    let (read_ok, read_failed) = final_reads(
        &shared,
        &generator.all_keys(),
        Instant::now() + Duration::from_secs(30),
    )
    .await;
    tail.push(("final reads", after_limit()));
    shared.stop.store(true, Ordering::Relaxed);
    recorder.finish().context("writing the history")?;
    {
        let mut c = cluster.lock().await;
        tokio::task::block_in_place(|| c.stop_all());
    }
    tail.push(("nodes stopped", after_limit()));

    // Check what was recorded, from the file, as anyone re-checking it would.
    let counts = recorder.counts();
    eprintln!(
        "checking {} operations...",
        counts.ok + counts.fail + counts.info
    );
    let text = std::fs::read_to_string(run.history())?;
    let history =
        checker::history::read_jsonl(text.as_bytes()).context("reading back the history")?;
    let history_len = history.ops.len();
    let opts = CheckOptions {
        timeout: Some(secs(a.check_timeout, "--check-timeout")?),
        max_configs: ((a.check_memory.max(1) << 20) / 64) as usize,
        ..CheckOptions::default()
    };
    // The check runs on a blocking thread; on a terminal a spinner shows it is alive.
    let kind = cfg.kind;
    let checking = tokio::task::spawn_blocking(move || match kind {
        WorkloadKind::Register => {
            check(&Register::new(true), &history, &opts).map(|r| (r, history))
        }
        WorkloadKind::Kv => check(
            &KeyValue {
                missing_is_empty: false,
            },
            &history,
            &opts,
        )
        .map(|r| (r, history)),
    });
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!("checking {} operations", history_len));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let (report, history): (CheckReport, _) = checking.await.context("checker thread")??;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    tail.push(("checked", after_limit()));
    let mut verdict = report.verdict;
    let mut reason = (verdict == Verdict::Unknown)
        .then(|| report.unknown.first().map(|u| u.reason.clone()))
        .flatten();
    let ok_writes = history
        .ops
        .iter()
        .filter(|o| o.outcome == checker::Outcome::Ok && !matches!(o.f.as_str(), "read" | "get"))
        .count();
    if verdict == Verdict::Valid && counts.ok < a.min_ok {
        verdict = Verdict::Unknown;
        reason = Some(format!(
            "only {} operations succeeded (--min-ok {})",
            counts.ok, a.min_ok
        ));
    } else if verdict == Verdict::Valid && ok_writes == 0 {
        verdict = Verdict::Unknown;
        reason = Some(
            "no write succeeded, so the reads prove nothing (see the errors in history.jsonl)"
                .into(),
        );
    }
    let samples = recorder.samples();
    let faults = live.faults.lock().expect("lock").clone();
    let warnings = live.warnings.lock().expect("lock").clone();
    let results = json!({
        "verdict": verdict.as_str(),
        "reason": reason,
        "seed": seed,
        "command": replay,
        "counts": {"ok": counts.ok, "fail": counts.fail, "info": counts.info},
        "duration_s": load_secs,
        "throughput_ok_per_s": counts.ok as f64 / load_secs.max(1e-9),
        "latency_ms": {
            "p50": ms(quantile(&samples, 0.5)),
            "p95": ms(quantile(&samples, 0.95)),
            "p99": ms(quantile(&samples, 0.99)),
            "max": ms(quantile(&samples, 1.0)),
        },
        "faults": faults.iter().map(|f| json!({"fault": f.description, "start_s": f.start, "end_s": f.end, "value": f.value})).collect::<Vec<_>>(),
        "final_reads": {"ok": read_ok, "failed": read_failed},
        "warnings": warnings,
        "after_time_limit_s": tail.iter().map(|(k, v)| json!({"phase": k, "s": v})).collect::<Vec<_>>(),
        "checker_summary": report.summary(),
        "checker": report,
    });
    run.write_json(&run.results(), &results)?;
    let report_path = match reports::build(&run.path) {
        Ok(w) => Some(w.report),
        Err(e) => {
            eprintln!("warning: could not write the report: {e}");
            None
        }
    };
    if let Err(e) = reports::index::build(&a.store) {
        eprintln!("warning: could not rebuild the run index: {e}");
    }
    tail.push(("report written", after_limit()));

    let fmt_ms = |q: f64| {
        quantile(&samples, q).map_or("-".to_string(), |n| format!("{:.1} ms", n as f64 / 1e6))
    };
    println!(
        "ops: {} ok, {} fail, {} info in {:.1} s ({:.0} ok/s); latency p50 {}, p99 {}",
        counts.ok,
        counts.fail,
        counts.info,
        load_secs,
        counts.ok as f64 / load_secs.max(1e-9),
        fmt_ms(0.5),
        fmt_ms(0.99)
    );
    let fault_list: Vec<String> = faults
        .iter()
        .map(|f| format!("{:.1}s {}", f.start, f.description))
        .collect();
    println!(
        "faults: {}{}",
        faults.len(),
        if fault_list.is_empty() {
            String::new()
        } else {
            format!(" ({})", fault_list.join(", "))
        }
    );
    for w in &warnings {
        println!("warning: {}", w.lines().next().unwrap_or(""));
    }
    println!("checker: {}", report.summary());
    let phases: Vec<String> = tail
        .iter()
        .map(|(what, at)| format!("{what} {at:.2}"))
        .collect();
    println!("seconds after the time limit: {}", phases.join(", "));
    println!(
        "verdict: {}{}",
        verdict.as_str().to_uppercase(),
        reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!("results: {}", run.path.display());
    if let Some(r) = report_path {
        println!("report:  {}", r.display());
    }
    println!("replay:  {replay}");
    let code = match verdict {
        Verdict::Valid => exit::VALID,
        Verdict::Invalid => exit::INVALID,
        Verdict::Unknown => exit::UNKNOWN,
    };
    let message = match (verdict, reason) {
        (Verdict::Unknown, Some(r)) => format!("unknown: {r}"),
        _ => report.summary(),
    };
    Ok((code, message, run.path.clone()))
}

pub fn run(args: TestArgs) -> Result<u8> {
    let cfg = resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Ctrl-C or SIGTERM: take every node down with us.
        die_with_children_on_interrupt();
        let base = cfg.args.seed.unwrap_or_else(rand::random);
        let mut worst = exit::VALID;
        let mut runs = Vec::new();
        let mut failure = None;
        for i in 0..cfg.args.test_count.max(1) {
            let seed = base.wrapping_add(u64::from(i));
            if cfg.args.test_count > 1 {
                eprintln!("=== test {} of {}", i + 1, cfg.args.test_count);
            }
            let t = std::time::Instant::now();
            let mut result = run_once(&cfg, seed).await;
            if let Err(e) = &result {
                if format!("{e:#}").contains("Address already in use") {
                    // Another process took a reserved port before the node bound it.
                    eprintln!(
                        "a port was taken before a node could bind it; starting the run again"
                    );
                    crate::cluster::kill_all_children();
                    result = run_once(&cfg, seed).await;
                }
            }
            let (code, message, dir) = match result {
                Ok(r) => (r.0, r.1, Some(r.2)),
                Err(e) => {
                    crate::cluster::kill_all_children();
                    let message = format!("{e:#}");
                    failure = Some(e);
                    (exit::ERROR, message, None)
                }
            };
            runs.push(RunSummary {
                seed,
                code,
                seconds: t.elapsed().as_secs_f64(),
                message,
                dir,
            });
            worst = worst.max(code);
            if code == exit::INVALID || code == exit::ERROR {
                break;
            }
        }
        if let Some(path) = &cfg.args.junit {
            write_junit(path, &cfg.name, &runs)?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Invalid outranks everything: the first invalid run decides.
        Ok(if runs.iter().any(|r| r.code == exit::INVALID) {
            exit::INVALID
        } else {
            worst
        })
    })
}
