//! `chaos-runner bench`: a fault-free cluster driven at full speed by the same recording
//! client the tests use, so throughput and latency figures describe exactly the path a
//! chaos test exercises. It drives raft-node (default) or an etcd cluster started the same
//! way, both over HTTP/JSON, for side-by-side figures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::check::{check, CheckOptions};
use checker::model::Register;
use checker::Verdict;
use clap::{Args, ValueEnum};
use serde_json::json;
use tokio::time::Instant;
use workloads::client::{Dialect, KvClient, NodeApi};
use workloads::generator::{Generator, WorkloadKind};
use workloads::recorder::{quantile_of_sorted, Kind, Recorder, Sample};
use workloads::runner::{run_clients, ClientConfig, Shared};

use crate::cluster::{
    die_with_children_on_interrupt, find_leader_of, free_ports, raft_node_binary, wait_for_leader,
    Cluster, NodeSpec,
};
use crate::exit;
use crate::proxy::Network;
use crate::store::RunDir;
use crate::test_cmd::{parse_mix, secs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// The embedded Raft key-value store (raft-node beside this executable).
    RaftNode,
    /// etcd members, from Debian's etcd-server package (apt-get install etcd-server).
    Etcd,
}

/// Measure a fault-free cluster (raft-node or etcd) at full speed: ops/s and latency.
///
/// Starts `--nodes` servers on loopback, waits for a leader, runs `--concurrency` clients
/// (each with one operation in flight) for `--warmup` plus `--duration` seconds, and
/// reports what completed in the measured window. Every operation is recorded in
/// history.jsonl, so `--check` can prove the run linearizable too. Reads are
/// linearizable on both targets (raft-node: ReadIndex; etcd: its default, linearizable
/// range).
///
/// Writes go to the leader on both targets; so do reads. Results: the printed summary,
/// and bench.json in the run folder (and in --json FILE).
///
/// Exit codes: 0 done (and, with --check, linearizable), 1 not linearizable, 2 the check
/// ran out of budget, 3 error (bad flags, a node that would not start, no operation
/// succeeded).
///
/// Example: chaos-runner bench --target etcd --concurrency 128 --mix write=100
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to drive.
    #[arg(long, value_enum, default_value = "raft-node")]
    pub target: BenchTarget,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// Concurrent clients, each with one operation in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=512))]
    pub concurrency: u64,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Seconds of load before measuring starts (recorded and checked, not counted).
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub warmup: f64,
    /// Weights of write, read and cas, e.g. write=100 or write=50,read=50.
    #[arg(long, default_value = "write=50,read=50", value_name = "F=W,...")]
    pub mix: String,
    /// Bytes of every written value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Keys, chosen uniformly.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Also check the recorded history for linearizability (exit 1 if it is not).
    #[arg(long)]
    pub check: bool,
    /// Also write the figures to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Root folder of the bench runs (history, node logs and data, bench.json).
    #[arg(long, default_value = "store/bench", value_name = "DIR")]
    pub store: PathBuf,
    /// The raft-node binary (default: beside this executable).
    #[arg(long, value_name = "PATH")]
    pub raft_node: Option<PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd: PathBuf,
    /// An extra argument for every node (repeat for several).
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Route node-to-node traffic through the harness's proxies, as `test` does
    /// (raft-node only): compare with a run without to see what the proxies cost.
    #[arg(long)]
    pub proxies: bool,
    /// Seconds an operation may take before it counts as an error.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub op_timeout: f64,
    /// Seed of the clients' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Finds `name` on PATH (or takes it as a path).
fn which(name: &PathBuf) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.clone());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Latency quantiles and counts of the completions inside the measured window.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    ok: u64,
    fail: u64,
    info: u64,
    /// Sorted latencies of the ok operations, in nanoseconds.
    latencies: Vec<u64>,
}

impl Figures {
    fn from_samples(samples: &[Sample], from_ns: u64, to_ns: u64) -> Figures {
        let mut f = Figures::default();
        for s in samples.iter().filter(|s| s.at >= from_ns && s.at < to_ns) {
            match s.kind {
                Kind::Ok => {
                    f.ok += 1;
                    f.latencies.push(s.latency);
                }
                Kind::Fail => f.fail += 1,
                Kind::Info => f.info += 1,
            }
        }
        f.latencies.sort_unstable();
        f
    }

    /// Quantile `q` of the ok latencies, in milliseconds (as `test` computes them).
    fn ms(&self, q: f64) -> Option<f64> {
        quantile_of_sorted(&self.latencies, q).map(|ns| ns as f64 / 1e6)
    }
}

pub fn run(args: BenchArgs) -> Result<u8> {
    let duration = secs(args.duration, "--duration")?;
    let warmup = if args.warmup == 0.0 {
        Duration::ZERO
    } else {
        secs(args.warmup, "--warmup")?
    };
    let op_timeout = secs(args.op_timeout, "--op-timeout")?;
    let mix = parse_mix(&args.mix)?;
    if mix.delete > 0 {
        bail!("--mix for bench takes write, read and cas");
    }
    if mix.read + mix.write + mix.cas == 0 {
        bail!("--mix needs at least one non-zero weight");
    }
    let bin = match args.target {
        BenchTarget::RaftNode => raft_node_binary(args.raft_node.as_ref())?,
        BenchTarget::Etcd => which(&args.etcd).with_context(|| {
            format!(
                "no etcd binary {:?} on PATH: install Debian's etcd-server package \
                 (apt-get install etcd-server) or pass --etcd PATH",
                args.etcd
            )
        })?,
    };
    if args.proxies && args.target == BenchTarget::Etcd {
        bail!("--proxies works with --target raft-node only");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        die_with_children_on_interrupt();
        bench(&args, bin, mix, duration, warmup, op_timeout).await
    })
}

async fn bench(
    args: &BenchArgs,
    bin: PathBuf,
    mix: workloads::generator::Mix,
    duration: Duration,
    warmup: Duration,
    op_timeout: Duration,
) -> Result<u8> {
    let target = match args.target {
        BenchTarget::RaftNode => "raft-node",
        BenchTarget::Etcd => "etcd",
    };
    let run = RunDir::create(&args.store, target)?;
    let n = args.nodes;
    let ids: Vec<u64> = (1..=n).collect();
    let (ports, reserved) = free_ports(2 * n as usize)?;
    let transports: Vec<(u64, SocketAddr)> = ids
        .iter()
        .map(|&i| (i, SocketAddr::from(([127, 0, 0, 1], ports[i as usize - 1]))))
        .collect();
    let net = if args.proxies {
        Some(Network::start(&transports).await?)
    } else {
        None
    };
    let specs: Vec<NodeSpec> = ids
        .iter()
        .map(|&i| NodeSpec {
            id: i,
            transport_port: ports[i as usize - 1],
            api_port: ports[(n + i - 1) as usize],
            data_dir: run.node_dir(i),
            log: run.node_log(i),
            peers: transports
                .iter()
                .filter(|(j, _)| *j != i)
                .map(|&(j, addr)| match &net {
                    Some(net) => (j, net.addr(i, j).to_string()),
                    None => (j, addr.to_string()),
                })
                .collect(),
        })
        .collect();
    let apis: Vec<(u64, String)> = specs.iter().map(|s| (s.id, s.api_addr())).collect();
    drop(reserved);
    let mut cluster = match args.target {
        BenchTarget::RaftNode => Cluster::new(bin.clone(), args.node_args.clone(), specs),
        BenchTarget::Etcd => Cluster::etcd(bin.clone(), args.node_args.clone(), specs),
    };
    for &i in &ids {
        cluster.start(i)?;
    }
    let leader = wait_for_leader(&mut cluster, Duration::from_secs(30)).await?;
    eprintln!(
        "{target}: {n} nodes, leader node {leader}; {} clients, mix {}, {} B values, {} keys, {:.0} s (+{:.0} s warm-up)",
        args.concurrency,
        args.mix,
        args.value_size,
        args.keys,
        duration.as_secs_f64(),
        warmup.as_secs_f64()
    );

    let dialect = match args.target {
        BenchTarget::RaftNode => Dialect::RaftNode,
        BenchTarget::Etcd => Dialect::Etcd,
    };
    let client = Arc::new(KvClient::with_dialect(
        apis.iter()
            .map(|(id, addr)| NodeApi {
                id: *id,
                addr: addr.clone(),
            })
            .collect(),
        dialect,
    ));
    client.set_leader((leader - 1) as usize);
    let recorder = Arc::new(
        Recorder::create(&run.history(), false)
            .with_context(|| format!("cannot create {}", run.history().display()))?,
    );
    let generator = Arc::new(
        Generator::new(WorkloadKind::Register, args.keys, mix).with_value_size(args.value_size),
    );
    let shared = Shared::new(client, generator, recorder.clone());
    let start_ns = recorder.now();
    let started = Instant::now();
    run_clients(
        shared.clone(),
        ClientConfig {
            concurrency: args.concurrency as usize,
            rate: None,
            time_limit: warmup + duration,
            max_ops: None,
            op_timeout,
            seed: args.seed,
            // Every operation goes to the leader: this measures the cluster, not redirects.
            reads_at_home: false,
        },
    )
    .await;
    let wall = started.elapsed();
    recorder.finish().context("writing the history")?;
    let leader_after = find_leader_of(cluster.kind(), &apis).await;
    tokio::task::block_in_place(|| cluster.stop_all());

    let from = start_ns + warmup.as_nanos() as u64;
    let to = from + duration.as_nanos() as u64;
    let f = Figures::from_samples(&recorder.samples(), from, to);
    let secs = duration.as_secs_f64();
    // Read once: for the cas mismatches, and for the check.
    let history_text = std::fs::read_to_string(run.history())
        .with_context(|| format!("cannot read {}", run.history().display()))?;
    let mismatches = cas_mismatches(&history_text, from, to);
    let errors = f.info + f.fail - mismatches.min(f.fail);
    let mut out = json!({
        "target": target,
        "nodes": n,
        "concurrency": args.concurrency,
        "duration_s": secs,
        "warmup_s": warmup.as_secs_f64(),
        "mix": {"write": mix.write, "read": mix.read, "cas": mix.cas},
        "value_size": args.value_size,
        "keys": args.keys,
        "proxies": args.proxies,
        "node_args": args.node_args,
        "server": bin,
        "ok": f.ok,
        "fail": f.fail,
        "info": f.info,
        "cas_mismatches": mismatches,
        "errors": errors,
        "ok_per_s": f.ok as f64 / secs,
        "completed_per_s": (f.ok + f.fail) as f64 / secs,
        "latency_ms": {
            "p50": f.ms(0.5), "p90": f.ms(0.9), "p99": f.ms(0.99),
            "p999": f.ms(0.999), "max": f.ms(1.0),
        },
        "leader_changed": leader_after != Some(leader),
        "wall_s": wall.as_secs_f64(),
        "history": run.history(),
    });
    let fmt = |q: f64| f.ms(q).map_or("-".into(), |v| format!("{v:.2}"));
    println!(
        "{target}: {:.0} ok ops/s ({} ok, {} fail, {} info in {:.1} s); latency ms p50 {} p90 {} p99 {} p999 {} max {}",
        f.ok as f64 / secs,
        f.ok,
        f.fail,
        f.info,
        secs,
        fmt(0.5),
        fmt(0.9),
        fmt(0.99),
        fmt(0.999),
        fmt(1.0)
    );
    if mismatches > 0 {
        println!("{mismatches} of the fails are cas operations whose comparison did not hold");
    }
    if errors > 0 {
        println!("warning: {errors} operations ended in an error or an unknown outcome (see the history)");
    }
    if leader_after != Some(leader) {
        println!("warning: the leader changed during the run; the figures include an election");
    }
    let mut code = exit::VALID;
    if args.check {
        let history = checker::history::read_jsonl(history_text.as_bytes())
            .context("reading back the history")?;
        let report = tokio::task::spawn_blocking(move || {
            check(&Register::new(true), &history, &CheckOptions::default())
        })
        .await
        .context("checker thread")??;
        println!("checker: {}", report.summary());
        out["checker"] = json!({"verdict": report.verdict.as_str(), "summary": report.summary()});
        code = match report.verdict {
            Verdict::Valid => exit::VALID,
            Verdict::Invalid => exit::INVALID,
            Verdict::Unknown => exit::UNKNOWN,
        };
    }
    let text = serde_json::to_string_pretty(&out)? + "\n";
    let path = run.path.join("bench.json");
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(p) = &args.json {
        std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!("results: {}", path.display());
    if f.ok == 0 {
        bail!(
            "no operation succeeded; the end of node 1's log:\n{}",
            crate::cluster::tail(&run.node_log(1), 10)
        );
    }
    Ok(code)
}

/// Failed cas operations whose comparison did not hold (a normal answer, not an error)
/// that completed in `[from, to)` ns, from the recorded history's text.
fn cas_mismatches(history: &str, from: u64, to: u64) -> u64 {
    history
        .lines()
        .filter(|l| l.contains("cas mismatch"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["type"] == "fail"
                && v["time"].as_u64().is_some_and(|t| t >= from && t < to)
                && v["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("cas mismatch"))
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64, latency: u64, kind: Kind) -> Sample {
        Sample { at, latency, kind }
    }

    #[test]
    fn figures_count_only_the_measured_window() {
        let samples = vec![
            sample(5, 1_000_000, Kind::Ok), // warm-up: left out
            sample(10, 2_000_000, Kind::Ok),
            sample(11, 4_000_000, Kind::Ok),
            sample(12, 3_000_000, Kind::Fail),
            sample(13, 1_000_000, Kind::Ok),
            sample(14, 9_000_000, Kind::Info),
            sample(20, 1_000_000, Kind::Ok), // after the end: left out
        ];
        let f = Figures::from_samples(&samples, 10, 20);
        assert_eq!((f.ok, f.fail, f.info), (3, 1, 1));
        assert_eq!(f.ms(0.5), Some(2.0));
        assert_eq!(f.ms(1.0), Some(4.0));
        assert_eq!(f.ms(0.0), Some(1.0));
        assert_eq!(Figures::default().ms(0.5), None);
    }
}
