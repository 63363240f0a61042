//! `chaos-runner bench`: a fault-free cluster driven at full speed by the same recording
//! client the tests use, so throughput and latency figures describe exactly the path a
//! chaos test exercises. It drives raft-node (default) or an etcd cluster started the same
//! way, both over HTTP/JSON, for side-by-side figures.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::check::CheckOptions;
use checker::record::{quantile_of_sorted, MixRecord};
use checker::{Outcome, Verdict};
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;
use workloads::client::{Dialect, FailReason};
use workloads::generator::{Generator, Mix, WorkloadKind};
use workloads::recorder::{Recorder, Sample};
use workloads::runner::{run_clients, ClientConfig, Shared};

use crate::cluster::{
    die_with_children_on_interrupt, etcd_binary, find_leader_of, nats_binary, raft_node_binary,
    start_cluster, ClusterPlan, Running, ServerKind,
};
use crate::exit;
use crate::fabric::{Fabric, NetArg};
use crate::store::RunDir;
use crate::test_cmd::{check_as, parse_mix, secs, txn_length, Judged};

mod paths;
use paths::{Alternating, Comparison};

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
    pub target: ServerKind,
    /// Number of nodes.
    #[arg(long, allow_negative_numbers = true, default_value_t = 3, value_parser = clap::builder::RangedI64ValueParser::<u64>::new().range(1..=9), value_name = "N")]
    pub nodes: u64,
    /// Concurrent clients, each with one operation in flight.
    #[arg(long, allow_negative_numbers = true, default_value_t = 16, value_parser = clap::builder::RangedI64ValueParser::<u64>::new().range(1..=512), value_name = "N")]
    pub concurrency: u64,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Seconds of load before measuring starts (recorded and checked, not counted).
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub warmup: f64,
    /// What the clients do: register (read, write, cas on one key each), or transactions
    /// of several keys: list-append or rw-register (raft-node's POST /txn; etcd's read,
    /// then a write guarded on revisions; adapters' txn), with --check judged for strict
    /// serializability.
    #[arg(long, value_enum, default_value = "register")]
    pub workload: BenchWorkload,
    /// Weights of write, read and cas, e.g. write=100 or write=50,read=50. For
    /// transactions, the share of reads and writes among their micro-operations.
    #[arg(long, default_value = "write=50,read=50", value_name = "F=W,...")]
    pub mix: String,
    /// For transactions: micro-operations per transaction, N or MIN-MAX.
    #[arg(long, default_value = "1-4", value_name = "N|MIN-MAX")]
    pub txn_length: String,
    /// Bytes of every written value (register; a transaction's values are numbers).
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_size: usize,
    /// Keys, chosen uniformly (for transactions: the keys in use at a time, each
    /// replaced by a fresh one after 32 writes).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub keys: usize,
    /// Also check the recorded history for linearizability (exit 1 if it is not).
    #[arg(long)]
    pub check: bool,
    /// Also write the figures to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Root folder of the results, as for `test`: each bench run goes to
    /// <DIR>/bench/<target>/<timestamp> (history, node logs and data, bench.json);
    /// <DIR>/latest keeps pointing at the newest test run.
    #[arg(long, default_value = "store", value_name = "DIR")]
    pub store: PathBuf,
    /// The raft-node binary (default: beside this executable).
    #[arg(long, value_name = "PATH")]
    pub raft_node: Option<PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd: PathBuf,
    /// The nats-server binary.
    #[arg(long, default_value = "nats-server", value_name = "PATH")]
    pub nats: PathBuf,
    /// An extra argument for every node (repeat for several).
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Drive the cluster through client adapters running this command (see `test
    /// --client-cmd` and docs/client-protocol.md) instead of the built-in client: what
    /// an adapter costs per operation.
    #[arg(long, value_name = "CMD")]
    pub client_cmd: Option<String>,
    /// With --client-cmd: send every other operation through the built-in client
    /// instead, in the same run, and report each path's latency per kind of operation
    /// and what the adapter adds at p50. Both paths then meet the same cluster, load and
    /// moment; two separate benches differ by more than an adapter costs.
    #[arg(long, requires = "client_cmd")]
    pub compare_builtin: bool,
    /// How node-to-node traffic travels, as for `test`: direct (nothing in the way),
    /// proxy (through the harness's proxies, as `test` does by default; raft-node only),
    /// netns (each node in a namespace of its own behind the runner's packet switch;
    /// needs root and iproute2). Compare runs to see what the proxies or the switch cost.
    #[arg(long, value_enum, default_value = "direct", conflicts_with = "hosts")]
    pub net: NetArg,
    /// The same as --net proxy (kept for scripts that use it).
    #[arg(long, hide = true, conflicts_with_all = ["net", "netns", "hosts"])]
    pub proxies: bool,
    /// The same as --net netns (kept for scripts that use it).
    #[arg(long, hide = true, conflicts_with_all = ["net", "hosts"])]
    pub netns: bool,
    /// One-way delay of every node-to-node link, in milliseconds (--net proxy or netns),
    /// as `test --link-latency` gives: what a slower network costs each write (two
    /// one-way delays per commit at the least).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub link_latency: u64,
    /// Mutual TLS on both ports of every node (raft-node only), with certificates the
    /// run makes, as `test --tls` does: compare with a run without to see what TLS costs.
    #[arg(long, conflicts_with = "hosts")]
    pub tls: bool,
    /// Put the disk faults' lazy layer (chaos-lazyfs, a FUSE filesystem that holds
    /// unsynced writes in memory) under every node, as a run with disk faults does:
    /// compare with a run without to see what the layer costs. Needs root and fuse3.
    #[arg(long, conflicts_with = "hosts")]
    pub lazy_disk: bool,
    #[command(flatten)]
    pub ssh: crate::ssh::SshArgs,
    /// Seconds an operation may take before it counts as an error. Longer than `test`'s
    /// 2 s: a cluster driven at full speed queues requests, and a bench measures that
    /// queueing rather than cutting it off.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub op_timeout: f64,
    /// Seed of the clients' choices. Fixed by default (unlike `test`, which explores a new
    /// schedule each run), so two benches compare the same operations.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
}

/// `bench --workload`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchWorkload {
    Register,
    ListAppend,
    RwRegister,
}

impl BenchWorkload {
    fn kind(self) -> WorkloadKind {
        match self {
            BenchWorkload::Register => WorkloadKind::Register,
            BenchWorkload::ListAppend => WorkloadKind::ListAppend,
            BenchWorkload::RwRegister => WorkloadKind::RwRegister,
        }
    }
}

/// Counts and latencies of the completions inside the measured window.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    ok: u64,
    fail: u64,
    info: u64,
    /// Failed cas operations whose comparison did not hold: answers, not errors.
    cas_mismatches: u64,
    /// Transactions that failed because what they read changed first: answers too.
    conflicts: u64,
    /// Sorted latencies of the ok operations, in nanoseconds.
    latencies: Vec<u64>,
}

impl Figures {
    fn from_samples(samples: &[Sample], from_ns: u64, to_ns: u64) -> Figures {
        let mut f = Figures::default();
        for s in samples.iter().filter(|s| s.at >= from_ns && s.at < to_ns) {
            match s.outcome {
                Outcome::Ok => {
                    f.ok += 1;
                    f.latencies.push(s.latency);
                }
                Outcome::Fail => f.fail += 1,
                Outcome::Info => f.info += 1,
            }
            match s.reason {
                Some(FailReason::CasMismatch) => f.cas_mismatches += 1,
                Some(FailReason::Conflict) => f.conflicts += 1,
                _ => {}
            }
        }
        f.latencies.sort_unstable();
        f
    }

    /// Operations that ended in an error or an unknown outcome.
    fn errors(&self) -> u64 {
        self.info + self.fail - self.cas_mismatches - self.conflicts
    }

    /// Quantile `q` of the ok latencies, in milliseconds (as `test` computes them).
    fn ms(&self, q: f64) -> Option<f64> {
        quantile_of_sorted(&self.latencies, q).map(|ns| ns as f64 / 1e6)
    }
}

/// `bench.json`.
#[derive(Debug, Serialize)]
struct BenchResults {
    target: &'static str,
    /// register, list-append or rw-register.
    workload: &'static str,
    nodes: u64,
    concurrency: u64,
    duration_s: f64,
    warmup_s: f64,
    mix: MixRecord,
    value_size: usize,
    keys: usize,
    proxies: bool,
    /// Nodes in namespaces joined by the packet switch.
    netns: bool,
    /// The one-way delay of every node-to-node link (--link-latency).
    link_latency_ms: u64,
    /// Nodes on hosts over ssh (--hosts).
    hosts: Option<String>,
    /// The disk faults' lazy layer under every node (--lazy-disk).
    lazy_disk: bool,
    node_args: Vec<String>,
    server: PathBuf,
    ok: u64,
    fail: u64,
    info: u64,
    cas_mismatches: u64,
    /// Transactions whose reads changed before they could commit (etcd's guard).
    conflicts: u64,
    errors: u64,
    ok_per_s: f64,
    completed_per_s: f64,
    latency_ms: BenchLatency,
    leader_changed: bool,
    wall_s: f64,
    history: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    checker: Option<BenchCheck>,
    /// --compare-builtin: each path's figures, per kind of operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    compare_builtin: Option<Comparison>,
}

#[derive(Debug, Serialize)]
struct BenchLatency {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Serialize)]
struct BenchCheck {
    verdict: Verdict,
    summary: String,
}

/// The validated flags.
struct Plan {
    mix: Mix,
    kind: WorkloadKind,
    txn_len: (usize, usize),
    duration: Duration,
    warmup: Duration,
    op_timeout: Duration,
    cluster: ClusterPlan,
}

fn resolve(args: &BenchArgs) -> Result<Plan> {
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
    let kind = args.workload.kind();
    let txn_len = txn_length(&args.txn_length)?;
    if kind.transactional() {
        if mix.cas > 0 {
            bail!("--mix: a transaction's micro-operations are reads and writes, not cas");
        }
        if args.target == ServerKind::Nats && args.client_cmd.is_none() {
            bail!(
                "--workload {}: the NATS client has no transactions; raft-node, etcd and \
                 adapters (--client-cmd) do",
                kind.name()
            );
        }
    }
    if mix.read + mix.write + mix.cas == 0 {
        bail!("--mix needs at least one non-zero weight");
    }
    let bin = match args.target {
        ServerKind::RaftNode => raft_node_binary(args.raft_node.as_ref())?,
        ServerKind::Etcd => etcd_binary(&args.etcd)?,
        ServerKind::Nats => nats_binary(&args.nats)?,
        ServerKind::Command => bail!(
            "bench starts the servers it knows (raft-node, etcd, nats); --client-cmd \
             measures an adapter against any of them"
        ),
    };
    let net = match (args.proxies, args.netns) {
        (true, _) => NetArg::Proxy,
        (_, true) => NetArg::Netns,
        _ => args.net,
    };
    if net == NetArg::Netns {
        crate::netns::preflight()?;
    }
    let server = args.target.builtin().context("a server the runner knows")?;
    if net == NetArg::Proxy && !server.per_peer_addresses() {
        bail!(
            "--net proxy: --target {} cannot be given an address per peer, so its links \
             cannot have proxies of their own",
            args.target.name()
        );
    }
    if args.tls && !server.tls() {
        bail!(
            "--tls: the runner cannot start --target {} with TLS yet",
            args.target.name()
        );
    }
    let ssh = args.ssh.plan(false)?;
    let links = Fabric::resolve(
        net,
        server.per_peer_addresses(),
        args.tls,
        args.link_latency,
        None,
        ssh,
    );
    if args.link_latency > 0 && !crate::nemesis::carries(&links, crate::nemesis::FaultKind::Latency)
    {
        bail!(
            "--link-latency: {}",
            crate::nemesis::why_not(&links, crate::nemesis::FaultKind::Latency)
        );
    }
    let cluster = ClusterPlan {
        server,
        bin,
        node_args: args.node_args.clone(),
        nodes: links.node_count(args.nodes),
        links,
        leader_within: Duration::from_secs(30),
        tls: args.tls,
        clocks: None,
        lazy_disk: if args.lazy_disk {
            let layer = crate::cluster::disk::Layer::find(lazyfs::fs::Names::Strict);
            Some(layer.context("--lazy-disk")?)
        } else {
            None
        },
    };
    Ok(Plan {
        mix,
        kind,
        txn_len,
        duration,
        warmup,
        op_timeout,
        cluster,
    })
}

pub fn run(args: BenchArgs) -> Result<u8> {
    let plan = resolve(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        die_with_children_on_interrupt();
        bench(&args, &plan).await
    })
}

/// Drives the cluster for warm-up plus duration, every operation to the leader. Returns
/// the wall time, and with --compare-builtin each path's figures in the measured window.
async fn drive(
    args: &BenchArgs,
    plan: &Plan,
    running: &Running,
    recorder: Arc<Recorder>,
    run_dir: &std::path::Path,
) -> Result<(Duration, Option<Comparison>)> {
    // The bench speaks raft-node's own API to servers of its command line.
    let dialect = plan.cluster.server.dialect().unwrap_or(Dialect::RaftNode);
    let mut alternating = None;
    let client: Arc<dyn workloads::client::Client> = match &args.client_cmd {
        Some(cmd) => {
            let adapters = running.adapter_client(
                cmd,
                plan.kind.name(),
                run_dir.join("adapters"),
                plan.op_timeout,
            );
            if args.compare_builtin {
                let alt = Arc::new(Alternating::new(running.client(dialect).await?, adapters));
                alternating = Some(alt.clone());
                alt
            } else {
                adapters
            }
        }
        None => running.client(dialect).await?,
    };
    client.set_leader((running.leader - 1) as usize);
    let mut generator = Generator::new(plan.kind, args.keys, plan.mix);
    generator.txn_len = plan.txn_len;
    let generator = Arc::new(generator.with_value_size(args.value_size));
    let shared = Shared::new(client, generator, recorder);
    let started = Instant::now();
    let clients = ClientConfig {
        concurrency: args.concurrency as usize,
        rate: None,
        time_limit: plan.warmup + plan.duration,
        max_ops: None,
        op_timeout: plan.op_timeout,
        seed: args.seed,
        // Every operation goes to the leader: this measures the cluster, not redirects.
        reads_at_home: false,
    };
    run_clients(shared, clients).await;
    let from = started + plan.warmup;
    let compared = alternating.map(|a| a.figures(from, from + plan.duration));
    Ok((started.elapsed(), compared))
}

async fn bench(args: &BenchArgs, plan: &Plan) -> Result<u8> {
    let target = args.target.name();
    let run = RunDir::create_in(&args.store, &format!("bench/{target}"), false)?;
    let mut running = start_cluster(&plan.cluster, &run).await?;
    crate::console::say!(
        "{target}: {} nodes, leader node {}; {} clients, {}, mix {}, {}, {} keys, {:.0} s (+{:.0} s warm-up)",
        plan.cluster.nodes,
        running.leader,
        args.concurrency,
        plan.kind.name(),
        args.mix,
        if plan.kind.transactional() {
            format!("{}-{} micro-operations", plan.txn_len.0, plan.txn_len.1)
        } else {
            format!("{} B values", args.value_size)
        },
        args.keys,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    let recorder = Arc::new(
        Recorder::create(&run.history(), false)
            .with_context(|| format!("cannot create {}", run.history().display()))?,
    );
    let start_ns = recorder.now();
    let done = Arc::new(tokio::sync::Notify::new());
    let progress = tokio::spawn(crate::test_cmd::progress::bench(
        recorder.clone(),
        plan.warmup,
        plan.warmup + plan.duration,
        done.clone(),
    ));
    let (wall, compared) = drive(args, plan, &running, recorder.clone(), &run.path).await?;
    done.notify_one();
    let _ = progress.await;
    recorder.finish().context("writing the history")?;
    let leader_after =
        find_leader_of(running.cluster.server(), &running.access, &running.probes).await;
    tokio::task::block_in_place(|| running.cluster.stop_all());

    let from = start_ns + plan.warmup.as_nanos() as u64;
    let to = from + plan.duration.as_nanos() as u64;
    let f = Figures::from_samples(&recorder.samples(), from, to);
    let mut out = bench_results(args, plan, &run, &f, wall);
    out.leader_changed = leader_after != Some(running.leader);
    print_figures(target, &f, plan.duration.as_secs_f64(), out.leader_changed);
    if let Some(c) = &compared {
        for line in c.lines() {
            crate::console::tell!("{line}");
        }
    }
    out.compare_builtin = compared;
    let mut code = exit::VALID;
    if args.check {
        let check = check_history(&run, plan.kind).await?;
        crate::console::tell!("checker: {}", check.summary);
        code = exit::of(check.verdict);
        out.checker = Some(check);
    }
    let text = serde_json::to_string_pretty(&out)? + "\n";
    let path = run.path.join("bench.json");
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(p) = &args.json {
        std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    crate::console::tell!("results: {}", path.display());
    if f.ok == 0 {
        bail!(
            "no operation succeeded; the end of node 1's log:\n{}",
            crate::cluster::tail(&run.node_log(1), 10)
        );
    }
    Ok(code)
}

fn bench_results(
    args: &BenchArgs,
    plan: &Plan,
    run: &RunDir,
    f: &Figures,
    wall: Duration,
) -> BenchResults {
    let secs = plan.duration.as_secs_f64();
    BenchResults {
        target: args.target.name(),
        workload: plan.kind.name(),
        nodes: plan.cluster.nodes,
        concurrency: args.concurrency,
        duration_s: secs,
        warmup_s: plan.warmup.as_secs_f64(),
        mix: plan.mix.into(),
        value_size: args.value_size,
        keys: args.keys,
        proxies: matches!(plan.cluster.links, Fabric::Proxies { .. }),
        netns: matches!(plan.cluster.links, Fabric::Switch { .. }),
        link_latency_ms: plan.cluster.links.latency_ms(),
        hosts: args.ssh.hosts.clone(),
        lazy_disk: plan.cluster.lazy_disk.is_some(),
        node_args: args.node_args.clone(),
        server: plan.cluster.bin.clone(),
        ok: f.ok,
        fail: f.fail,
        info: f.info,
        cas_mismatches: f.cas_mismatches,
        conflicts: f.conflicts,
        errors: f.errors(),
        ok_per_s: f.ok as f64 / secs,
        completed_per_s: (f.ok + f.fail) as f64 / secs,
        latency_ms: BenchLatency {
            p50: f.ms(0.5),
            p90: f.ms(0.9),
            p99: f.ms(0.99),
            p999: f.ms(0.999),
            max: f.ms(1.0),
        },
        leader_changed: false,
        wall_s: wall.as_secs_f64(),
        history: run.history(),
        checker: None,
        compare_builtin: None,
    }
}

fn print_figures(target: &str, f: &Figures, secs: f64, leader_changed: bool) {
    let fmt = |q: f64| f.ms(q).map_or("-".into(), |v| format!("{v:.2}"));
    crate::console::tell!(
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
    if f.cas_mismatches > 0 {
        crate::console::tell!(
            "{} of the fails are cas operations whose comparison did not hold",
            f.cas_mismatches
        );
    }
    if f.conflicts > 0 {
        crate::console::tell!(
            "{} of the fails are transactions whose reads changed before they could commit",
            f.conflicts
        );
    }
    if f.errors() > 0 {
        crate::console::tell!(
            "warning: {} operations ended in an error or an unknown outcome (see the history)",
            f.errors()
        );
    }
    if leader_changed {
        crate::console::tell!(
            "warning: the leader changed during the run; the figures include an election"
        );
    }
}

/// `--check`: the whole recorded history, warm-up included, as `test` checks its
/// workload's (the cas register; transactions for strict serializability).
async fn check_history(run: &RunDir, kind: WorkloadKind) -> Result<BenchCheck> {
    let history = checker::history::read_jsonl_file(&run.history())
        .with_context(|| format!("reading back {}", run.history().display()))?;
    let judged = Judged {
        kind,
        linearizable: true,
        consistency: checker::txn::ConsistencyModel::StrictSerializable,
    };
    let report =
        tokio::task::spawn_blocking(move || check_as(judged, &history, &CheckOptions::default()))
            .await
            .context("checker thread")??;
    Ok(BenchCheck {
        verdict: report.verdict,
        summary: report.summary(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64, latency: u64, outcome: Outcome) -> Sample {
        Sample {
            at,
            latency,
            outcome,
            reason: None,
        }
    }

    #[test]
    fn figures_count_only_the_measured_window() {
        let mismatch = Sample {
            reason: Some(FailReason::CasMismatch),
            ..sample(15, 1_000_000, Outcome::Fail)
        };
        let samples = vec![
            sample(5, 1_000_000, Outcome::Ok), // warm-up: left out
            sample(10, 2_000_000, Outcome::Ok),
            sample(11, 4_000_000, Outcome::Ok),
            sample(12, 3_000_000, Outcome::Fail),
            sample(13, 1_000_000, Outcome::Ok),
            sample(14, 9_000_000, Outcome::Info),
            mismatch,
            Sample {
                reason: Some(FailReason::Conflict),
                ..sample(16, 1_000_000, Outcome::Fail)
            },
            sample(20, 1_000_000, Outcome::Ok), // after the end: left out
        ];
        let f = Figures::from_samples(&samples, 10, 20);
        assert_eq!((f.ok, f.fail, f.info, f.cas_mismatches), (3, 3, 1, 1));
        assert_eq!(f.conflicts, 1);
        assert_eq!(
            f.errors(),
            2,
            "the mismatch and the conflict are answers, not errors"
        );
        assert_eq!(f.ms(0.5), Some(2.0));
        assert_eq!(f.ms(1.0), Some(4.0));
        assert_eq!(f.ms(0.0), Some(1.0));
        assert_eq!(Figures::default().ms(0.5), None);
    }
}
