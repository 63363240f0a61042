//! `test`'s command line, and the configuration it resolves to: validated once, with
//! durations as `Duration`s, so the phases never parse or check a flag again.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::check::CheckOptions;
use checker::record::TestRecord;
use clap::{Args, ValueEnum};
use workloads::client::Dialect;
use workloads::generator::{mix_for, preset, Mix, WorkloadKind, PRESETS};

use crate::cluster::{etcd_binary, raft_node_binary, ClusterPlan, LinkPlan, ServerKind};
use crate::nemesis::{Fabric, FaultKind, Planned, Shape, Target};
use crate::netns::Range;
use crate::ssh::{SshArgs, SshPlan};

/// How node-to-node traffic travels (`--net`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    /// One TCP proxy per directed link, on 127.0.0.1; the server must take a per-peer
    /// address map (--peers). Needs nothing.
    Proxy,
    /// Each node in a network namespace of its own, with its own address and its real
    /// peers' addresses, joined by the runner's packet switch. Needs root and iproute2.
    Netns,
}

impl NetArg {
    pub fn name(self) -> &'static str {
        match self {
            NetArg::Proxy => "proxy",
            NetArg::Netns => "netns",
        }
    }
}

/// The client API of the server under test.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    /// Ask /client/status once a leader is up: "role" means raft-node, "state" seed.
    Auto,
    /// raft-node's API (README): /kv/:key, /kv/:key/cas, not_leader with a hint.
    RaftNode,
    /// The seed-style API: /kv/:key with {"success": true}, 503 with leader_hint, no
    /// compare-and-set.
    Seed,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Few keys; read, write and compare-and-set on small values (Jepsen's register).
    Register,
    /// Many keys; get, put (unique values) and delete. Needs no cas endpoint.
    Kv,
}

/// Run a chaos test against a cluster and check it for linearizability.
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
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=9), value_name = "N")]
    pub nodes: u64,
    /// What to test: raft-node (or any server with its command line, see --raft-node), or
    /// an etcd cluster started by the runner. etcd members advertise one peer URL to all,
    /// so the per-link proxies cannot cut or slow its links: with etcd, `--nemesis all`
    /// means kill and pause, and partition or latency is an error.
    #[arg(long, value_enum, default_value = "raft-node")]
    pub target: ServerKind,
    /// The server binary (default: raft-node beside this executable). Any server taking
    /// --id --transport-port --api-port --data-dir --peers and serving /kv/:key works.
    #[arg(long, value_name = "PATH")]
    pub raft_node: Option<PathBuf>,
    /// The etcd binary, for --target etcd.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd: PathBuf,
    /// With --target etcd: read with etcd's serializable reads, which a member answers
    /// from its own, possibly stale, state. A positive control: expect "invalid".
    #[arg(long)]
    pub etcd_serializable_reads: bool,
    /// The server's client API. A server without compare-and-set (seed) runs the register
    /// workload with reads and writes only; asking for cas in --mix is then an error.
    #[arg(long, value_enum, default_value = "auto")]
    pub api: ApiArg,
    /// An extra argument for every node (repeat for several), e.g. --node-arg=--heartbeat-ms=30
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    #[arg(long, value_enum, default_value = "register")]
    pub workload: WorkloadArg,
    /// healthy (5 clients, 50% writes, and no faults unless --nemesis names some),
    /// high-concurrency (10 clients), write-heavy (80% writes), read-heavy (80% reads).
    #[arg(long, value_parser = ["healthy", "high-concurrency", "write-heavy", "read-heavy"], value_name = "NAME")]
    pub preset: Option<String>,
    /// Keys the workload uses (default: 5 for register, 100 for kv).
    #[arg(long, value_name = "N")]
    pub keys: Option<usize>,
    /// Concurrent clients (default: the preset's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024), value_name = "N")]
    pub concurrency: Option<u64>,
    /// Target operations per second over all clients (default: as fast as possible).
    #[arg(long, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// Seconds of load and faults.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub time_limit: f64,
    /// Stop the clients after this many operations.
    #[arg(long, value_name = "N")]
    pub ops: Option<u64>,
    /// Weights of read, write, cas and delete, e.g. read=50,write=30,cas=20 (overrides the preset).
    #[arg(long, value_name = "F=W,...")]
    pub mix: Option<String>,
    /// Seconds an operation may take before its outcome is recorded as unknown.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub op_timeout: f64,
    /// Faults to inject: any of kill,pause,partition,latency (processes and links),
    /// duplicate,reorder (whole peer requests, or packets with --net netns), replay,drop
    /// (whole requests: --net proxy), loss,bandwidth (packets: --net netns), or all (every
    /// kind the links can carry out), or none. `all` without
    /// --nemesis-interval is a search: kinds, targets, durations and gaps are drawn from
    /// the seed, with bursts of leader faults and, underneath, spells of link latency and
    /// message faults; successive seeds explore different schedules. Default: all, or
    /// none with --preset healthy (a fault-free baseline).
    #[arg(long, value_name = "KINDS")]
    pub nemesis: Option<String>,
    /// A fixed rota instead of the search: seconds of each fault, and of each healthy gap
    /// between faults, every named kind in turn (default 3 when --nemesis names kinds).
    #[arg(long, value_name = "SECS")]
    pub nemesis_interval: Option<f64>,
    /// Whom kills and pauses hit: any of random,leader,minority,majority,every (all nodes
    /// at once), or all (the first four).
    #[arg(long, default_value = "all", value_name = "TARGETS")]
    pub nemesis_targets: String,
    /// Kills of several nodes (every, majority, minority) take them down one by one, a
    /// few milliseconds apart, and bring them back one by one, up to 0.8 s apart, each in
    /// an order drawn from the seed: the last to die may hold writes nobody else has, and
    /// the first back elect a leader before the rest return. The search does this to three
    /// in four of those kills; with this flag, to all of them.
    #[arg(long)]
    pub staggered_kills: bool,
    /// Partition shapes: any of isolate,halves,majorities-ring,bridge,random, or all.
    #[arg(long, default_value = "all", value_name = "SHAPES")]
    pub partitions: String,
    /// How node-to-node traffic travels, which decides how network faults are made.
    /// proxy: one TCP proxy per directed link on 127.0.0.1 (faults on byte streams and
    /// whole HTTP requests: duplicate, reorder, replay, drop). netns: each node in a
    /// network namespace of its own, with its own address, joined by the runner's packet
    /// switch (faults on IP packets: duplicate, reorder, loss, bandwidth); any server that
    /// advertises one address per member can then be partitioned, etcd included. netns
    /// needs root (CAP_NET_ADMIN), /dev/net/tun and iproute2; it leaves nothing behind
    /// (`chaos-runner clean` removes what a killed run left).
    #[arg(long, value_enum, default_value = "proxy", conflicts_with = "hosts")]
    pub net: NetArg,
    /// With --net netns: the IPv4 range of the test network, e.g. 198.18.7.0/24; node N
    /// gets the Nth address, the runner the last usable one. Default: the first free /24
    /// of 198.18.0.0/15 (set aside for benchmark networks by RFC 2544). Nothing is routed
    /// beyond it.
    #[arg(long, value_name = "CIDR", conflicts_with = "hosts")]
    pub net_range: Option<String>,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Mutual TLS on both ports of every node (raft-node only). The run makes its own CA
    /// and certificates (in the run's tls/ folder) and passes them as --peer-* and
    /// --client-* flags; the runner's clients present one too. Faults on byte streams and
    /// packets work through TLS; duplicate, reorder, replay and drop under --net proxy act
    /// on whole HTTP requests, which TLS hides, so `all` leaves them out there (with
    /// --net netns, duplicate and reorder act on packets and stay).
    #[arg(long, conflicts_with = "hosts")]
    pub tls: bool,
    /// One-way delay of every node-to-node link, in milliseconds, for the whole run (a
    /// slower network: every window a race needs, such as the first round trip of a new
    /// leader, grows with it). The latency fault adds 50 to 150 ms on top.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub link_latency: u64,
    /// Seed of the fault schedule and the clients' choices (default: random; printed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Root folder of the results.
    #[arg(long, default_value = "store", value_name = "DIR")]
    pub store: PathBuf,
    /// Fewer ok operations than this makes the verdict "unknown", never "valid".
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub min_ok: u64,
    /// Repeat the test this many times (seeds seed, seed+1, ...); stop at the first invalid.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub test_count: u32,
    /// Seconds the checker may take.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub check_timeout: f64,
    /// Memory budget of the checker, in MiB: the searches of every key, on every core,
    /// draw from it together.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub check_memory: u64,
    /// Decide every key. By default the first key proven non-linearizable decides the
    /// verdict: the other keys' searches stop and they are reported as not decided.
    #[arg(long)]
    pub all_keys: bool,
    /// Check the history while the run goes, and stop the load at the first anomaly
    /// (then heal, read every key, stop the nodes and write the history, results and
    /// report as usual; the verdict is "invalid", exit 1). results.json's fail_fast says
    /// what was found, and when. The online checks take at most about a quarter of a
    /// core. For CI gates that should fail quickly.
    #[arg(long)]
    pub fail_fast: bool,
    /// Also write a JUnit XML report here (one test case per run; an anomaly is a
    /// failure, an unknown verdict is skipped, a harness error is an error).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

impl TestArgs {
    /// `--nemesis` as given, or its default: none for `--preset healthy`, else all.
    pub fn nemesis(&self) -> &str {
        match (&self.nemesis, self.preset.as_deref()) {
            (Some(n), _) => n,
            (None, Some("healthy")) => "none",
            (None, _) => "all",
        }
    }
}

/// A validated `test` configuration.
pub struct Config {
    pub args: TestArgs,
    pub name: String,
    pub kind: WorkloadKind,
    pub keys: usize,
    pub concurrency: usize,
    pub mix: Mix,
    pub faults: Vec<FaultKind>,
    pub targets: Vec<Target>,
    pub shapes: Vec<Shape>,
    /// The server binary.
    pub bin: PathBuf,
    pub time_limit: Duration,
    pub op_timeout: Duration,
    pub check_timeout: Duration,
    /// Length of each fault and of each healthy gap; `None` for the search schedule (and
    /// zero when no fault is planned).
    pub nemesis_interval: Option<Duration>,
    /// `--check-memory` in bytes.
    pub check_memory: usize,
    /// `--net-range`, parsed.
    pub net_range: Option<Range>,
    /// `--hosts` and its options, parsed.
    pub ssh: Option<SshPlan>,
}

/// The name in `names` nearest to `word` (at most two edits away), for "did you mean".
fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    names
        .iter()
        .map(|n| (distance(word, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

/// Parses a comma-separated list against `all` (named `names`); `all` and `none` are
/// words too.
fn list<T: Copy>(
    s: &str,
    all: &[T],
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>> {
    match s.trim() {
        "all" => Ok(all.to_vec()),
        "none" | "" => Ok(Vec::new()),
        s => s
            .split(',')
            .map(|p| {
                parse(p.trim()).with_context(|| {
                    let names: Vec<&str> = names.to_vec();
                    match closest(p.trim(), &names) {
                        Some(n) => format!("unknown {what} {p:?}: did you mean {n:?}?"),
                        None => format!("unknown {what} {p:?}; known: {}", names.join(", ")),
                    }
                })
            })
            .collect(),
    }
}

/// Parses `--mix read=50,write=30,...` (get and put are read and write).
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
        match checker::Func::parse(f.trim()) {
            Some(checker::Func::Read) => mix.read = w,
            Some(checker::Func::Write) => mix.write = w,
            Some(checker::Func::Cas) if f.trim() == "cas" => mix.cas = w,
            Some(checker::Func::Delete) if f.trim() == "delete" => mix.delete = w,
            _ => bail!("--mix knows read, write, cas, delete; not {:?}", f.trim()),
        }
    }
    Ok(mix)
}

/// A flag's seconds as a `Duration`, refusing zero, negative and non-finite values.
pub(crate) fn secs(v: f64, flag: &str) -> Result<Duration> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{flag} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

/// What carries node-to-node traffic for these flags.
fn fabric(args: &TestArgs) -> Fabric {
    if args.ssh.hosts.is_some() {
        return Fabric::Hosts;
    }
    match args.net {
        NetArg::Netns => Fabric::Switch,
        NetArg::Proxy if !args.target.server().per_peer_addresses() => Fabric::Direct,
        NetArg::Proxy if args.tls => Fabric::TlsProxies,
        NetArg::Proxy => Fabric::Proxies,
    }
}

/// The fault kinds `--nemesis` asks for that the links can carry out: `all` means every
/// kind they can (etcd in proxy mode: kill and pause), and naming one they cannot is an
/// error that says why.
fn faults_for_target(args: &TestArgs) -> Result<Vec<FaultKind>> {
    let faults = list(
        args.nemesis(),
        &FaultKind::ALL,
        &FaultKind::ALL.map(FaultKind::name),
        FaultKind::parse,
        "fault",
    )?;
    let fabric = fabric(args);
    if args.target == ServerKind::RaftNode && args.etcd_serializable_reads {
        bail!("--etcd-serializable-reads goes with --target etcd");
    }
    if args.tls && !args.target.server().tls() {
        bail!(
            "--tls works with --target raft-node only (the runner would have to speak \
             etcd's TLS flags and its gateway over TLS, which it does not yet)"
        );
    }
    if args.target == ServerKind::Etcd && args.api != ApiArg::Auto {
        bail!("--api is for --target raft-node; etcd speaks its v3 JSON gateway");
    }
    if args.link_latency > 0 && !fabric.carries(FaultKind::Latency) {
        bail!("--link-latency: {}", fabric.why_not(FaultKind::Latency));
    }
    if args.net_range.is_some() && args.net != NetArg::Netns {
        bail!("--net-range goes with --net netns");
    }
    if args.nemesis().trim() == "all" {
        return Ok(faults.into_iter().filter(|&k| fabric.carries(k)).collect());
    }
    if let Some(k) = faults.iter().find(|&&k| !fabric.carries(k)) {
        bail!("--nemesis {}: {}", k.name(), fabric.why_not(*k));
    }
    Ok(faults)
}

/// `--net-range` and `--hosts`, parsed; in netns mode, what it needs is checked now,
/// before anything is written (missing privilege or tools is a set-up error).
fn where_nodes_run(
    args: &TestArgs,
    faults: &[FaultKind],
) -> Result<(Option<Range>, Option<SshPlan>)> {
    let net_range = args.net_range.as_deref().map(Range::parse).transpose()?;
    let ssh = args.ssh.plan(faults.contains(&FaultKind::Partition))?;
    if args.net == NetArg::Netns {
        crate::netns::preflight()?;
        if let Some(r) = net_range {
            crate::netns::check_free(r)?;
        }
    }
    Ok((net_range, ssh))
}

/// The fixed rota's interval, or `None` for the search (`--nemesis all` and no interval).
fn nemesis_interval(args: &TestArgs, faults: &[FaultKind]) -> Result<Option<Duration>> {
    Ok(match args.nemesis_interval {
        _ if faults.is_empty() => Some(Duration::ZERO),
        None if args.nemesis().trim() == "all" => None,
        interval => Some(
            secs(interval.unwrap_or(3.0), "--nemesis-interval")?.max(Duration::from_millis(100)),
        ),
    })
}

/// Checks every flag and works out the defaults.
pub fn resolve(args: TestArgs) -> Result<Config> {
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
    let bin = match args.target {
        ServerKind::RaftNode => raft_node_binary(args.raft_node.as_ref())?,
        ServerKind::Etcd => etcd_binary(&args.etcd)?,
    };
    let faults = faults_for_target(&args)?;
    let (net_range, ssh) = where_nodes_run(&args, &faults)?;
    let nemesis_interval = nemesis_interval(&args, &faults)?;
    let targets = list(
        &args.nemesis_targets,
        &Target::ALL,
        &Target::ALL.map(Target::name),
        Target::parse,
        "target",
    )?;
    let shapes = list(
        &args.partitions,
        &Shape::ALL,
        &Shape::ALL.map(Shape::name),
        Shape::parse,
        "partition shape",
    )?;
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of operations per second");
        }
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let workload = match kind {
            WorkloadKind::Register => "register",
            WorkloadKind::Kv => "kv",
        };
        match args.target {
            ServerKind::RaftNode => workload.to_string(),
            ServerKind::Etcd => format!("etcd-{workload}"),
        }
    });
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("--name must be a plain folder name");
    }
    let cfg = Config {
        keys: args
            .keys
            .unwrap_or(if kind == WorkloadKind::Kv { 100 } else { 5 })
            .max(1),
        concurrency: args.concurrency.map_or(p.concurrency, |c| c as usize),
        time_limit: secs(args.time_limit, "--time-limit")?,
        op_timeout: secs(args.op_timeout, "--op-timeout")?,
        check_timeout: secs(args.check_timeout, "--check-timeout")?,
        check_memory: CheckOptions::bytes_for_mib(args.check_memory),
        nemesis_interval,
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
        net_range,
        ssh,
        args,
    };
    if cfg.args.api == ApiArg::Seed {
        // Refuse cas before starting anything.
        cfg.mix_for(Dialect::Seed)?;
    }
    Ok(cfg)
}

impl Config {
    /// The mix to run against a server speaking `dialect`: without compare-and-set, the
    /// register workload's cas share goes to writes, unless `--mix` asked for cas, which
    /// is then an error (a run full of rejected operations would prove nothing).
    pub fn mix_for(&self, dialect: Dialect) -> Result<Mix> {
        let issues_cas = self.kind == WorkloadKind::Register && self.mix.cas > 0;
        if dialect.has_cas() || !issues_cas {
            return Ok(self.mix);
        }
        if self.args.mix.is_some() {
            bail!(
                "the server speaks the {} API, which has no compare-and-set: leave cas out of --mix",
                dialect.name()
            );
        }
        Ok(Mix {
            write: self.mix.write + self.mix.cas,
            cas: 0,
            ..self.mix
        })
    }

    /// How many nodes: one per host with --hosts, else --nodes.
    pub fn nodes(&self) -> u64 {
        self.ssh
            .as_ref()
            .map_or(self.args.nodes, |s| s.hosts.len() as u64)
    }

    /// The cluster `test` starts: every link through a proxy or the switch, at
    /// `--link-latency` (etcd in proxy mode: direct links).
    pub fn cluster_plan(&self) -> ClusterPlan {
        ClusterPlan {
            kind: self.args.target,
            bin: self.bin.clone(),
            node_args: self.args.node_args.clone(),
            nodes: self.nodes(),
            links: match fabric(&self.args) {
                Fabric::Direct => LinkPlan::Direct,
                Fabric::Proxies | Fabric::TlsProxies => LinkPlan::Proxies {
                    latency_ms: self.args.link_latency,
                },
                Fabric::Switch => LinkPlan::Switch {
                    latency_ms: self.args.link_latency,
                    range: self.net_range,
                },
                Fabric::Hosts => LinkPlan::Ssh(Box::new(self.ssh.clone().expect("--hosts"))),
            },
            leader_within: Duration::from_secs(20),
            tls: self.args.tls,
        }
    }

    /// `test.json` for a run with this seed and schedule, against `dialect` (`None`: not
    /// known yet) with `mix`.
    pub fn test_record(
        &self,
        seed: u64,
        command: &str,
        schedule: &[Planned],
        dialect: Option<Dialect>,
        mix: Mix,
    ) -> TestRecord {
        let a = &self.args;
        TestRecord {
            name: self.name.clone(),
            seed,
            command: command.to_string(),
            nodes: self.nodes(),
            server: self.bin.clone(),
            node_args: a.node_args.clone(),
            workload: format!("{:?}", a.workload).to_lowercase(),
            preset: a.preset.clone(),
            keys: self.keys,
            concurrency: self.concurrency,
            rate: a.rate,
            api: dialect.map_or("auto", Dialect::name).to_string(),
            mix: mix.into(),
            time_limit_s: a.time_limit,
            ops: a.ops,
            op_timeout_s: a.op_timeout,
            nemesis: self.faults.iter().map(|f| f.name().to_string()).collect(),
            nemesis_interval_s: self.nemesis_interval.map_or(0.0, |d| d.as_secs_f64()),
            schedule_mode: if self.nemesis_interval.is_some() {
                "fixed"
            } else {
                "search"
            }
            .to_string(),
            net: if a.ssh.hosts.is_some() {
                "ssh".to_string()
            } else {
                a.net.name().to_string()
            },
            net_range: self.net_range.map(|r| r.to_string()),
            link_latency_ms: a.link_latency,
            nemesis_targets: self.targets.iter().map(|t| t.name().to_string()).collect(),
            partitions: self.shapes.iter().map(|s| s.name().to_string()).collect(),
            schedule: schedule.iter().map(|p| p.to_string()).collect(),
            min_ok: a.min_ok,
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// The command that replays this run: the same arguments with this seed.
pub fn replay_command(seed: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_bad_ones_are_named() {
        let m = parse_mix("read=50,write=30,cas=20").unwrap();
        assert_eq!((m.read, m.write, m.cas, m.delete), (50, 30, 20, 0));
        let m = parse_mix("get=1, put=2,delete=3").unwrap();
        assert_eq!((m.read, m.write, m.delete), (1, 2, 3));
        let err = parse_mix("append=1").unwrap_err().to_string();
        assert!(err.contains("\"append\""), "{err}");
        assert!(parse_mix("read").is_err());
        assert!(parse_mix("read=x").is_err());
    }

    fn config(args: &[&str]) -> Result<Config> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            test: TestArgs,
        }
        let mut argv = vec!["test", "--raft-node", "/bin/sh"];
        argv.extend_from_slice(args);
        resolve(<Cli as clap::Parser>::try_parse_from(argv)?.test)
    }

    #[test]
    fn a_misspelt_kind_suggests_the_nearest_name() {
        let e = config(&["--nemesis", "kil,pause"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("did you mean \"kill\"?"), "{e}");
        let e = config(&["--partitions", "halfs"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("did you mean \"halves\"?"), "{e}");
        let e = config(&["--nemesis-targets", "zzzzzzz"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("known: random, leader"), "{e}");
    }

    #[test]
    fn the_healthy_preset_is_fault_free_unless_faults_are_named() {
        assert!(config(&["--preset", "healthy"]).unwrap().faults.is_empty());
        let named = config(&["--preset", "healthy", "--nemesis", "kill"]).unwrap();
        assert_eq!(named.faults, [FaultKind::Kill]);
        assert!(!config(&["--preset", "write-heavy"])
            .unwrap()
            .faults
            .is_empty());
        assert!(!config(&[]).unwrap().faults.is_empty());
    }

    #[test]
    fn a_server_without_cas_gets_its_share_as_writes_unless_cas_was_asked_for() {
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.mix_for(Dialect::RaftNode).unwrap(), cfg.mix);
        let seed = cfg.mix_for(Dialect::Seed).unwrap();
        assert_eq!((seed.read, seed.write, seed.cas), (50, 50, 0));
        let asked = config(&["--mix", "read=50,write=30,cas=20"]).unwrap();
        let err = asked.mix_for(Dialect::Seed).unwrap_err().to_string();
        assert!(err.contains("no compare-and-set"), "{err}");
        // With --api seed the refusal comes before anything starts.
        assert!(config(&["--api", "seed", "--mix", "cas=1"]).is_err());
        assert!(config(&["--api", "seed"]).is_ok());
        // The kv workload never issues cas.
        let kv = config(&["--workload", "kv", "--mix", "read=1,cas=1"]).unwrap();
        assert_eq!(kv.mix_for(Dialect::Seed).unwrap(), kv.mix);
    }

    #[test]
    fn out_of_range_concurrency_is_refused_not_clamped() {
        for bad in ["0", "1025"] {
            let err = config(&["--concurrency", bad]).err().unwrap().to_string();
            assert!(err.contains("1..=1024"), "{err}");
        }
        assert_eq!(
            config(&["--concurrency", "1024"]).unwrap().concurrency,
            1024
        );
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(secs(1.5, "--x").unwrap(), Duration::from_millis(1500));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(secs(bad, "--x").is_err(), "{bad}");
        }
    }
}
