//! The configuration `test`'s command line ([`super::args`]) resolves to: validated
//! once, every flag a typed field (durations as `Duration`s, the links as a plan, the
//! dialect chosen), so the phases never see a flag or check one again.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::check::CheckOptions;
use checker::record::TestRecord;
use workloads::client::Dialect;
use workloads::generator::{mix_for, preset, Mix, WorkloadKind, PRESETS};

use crate::cluster::clock::ClockScope;
use crate::cluster::command::{CommandServer, Readiness, Template};
use crate::cluster::disk::Layer;
use crate::cluster::{etcd_binary, nats_binary, raft_node_binary, ClusterPlan, Server, ServerKind};
use crate::fabric::Fabric;
use crate::nemesis::{self, Change, CorruptPlan, FaultKind, FaultPlan, FileKind, Shape, Target};
use crate::netns::Range;
use std::sync::Arc;

use super::args::{ApiArg, NetArg, TestArgs, WorkloadArg};

/// A validated `test` configuration.
pub struct Config {
    pub name: String,
    /// What the user should know before the run starts (said once, on the console): a
    /// fault `all` left out for a reason they can change.
    pub notes: Vec<String>,
    /// The cluster: server, binary, node count and flags, links, TLS.
    pub cluster: ClusterPlan,
    /// The client dialect when the server or `--api` fixes it; `None`: ask the nodes.
    pub dialect: Option<Dialect>,
    /// `--client-cmd`: the adapter program that speaks to the server instead of a
    /// built-in client.
    pub client_cmd: Option<String>,
    /// The mix for a server without compare-and-set (`Err`: `--mix` asked for cas).
    pub mix_without_cas: Result<Mix, String>,
    /// `--fail-fast`: check each key's history as it grows and stop at the first anomaly.
    pub fail_fast: bool,
    /// Operations per second across all clients; `None`: as fast as they go.
    pub rate: Option<f64>,
    /// Stop after this many operations.
    pub max_ops: Option<u64>,
    /// Decide every key instead of stopping at the first refuted one.
    pub all_keys: bool,
    /// Whether a set's or queue's stale reads make the run invalid (`--linearizable`).
    pub linearizable: bool,
    /// Fewer ok operations than this make the verdict unknown.
    pub min_ok: u64,
    /// Where runs are kept.
    pub store: PathBuf,
    /// The first run's seed (random when not given), and how many runs.
    pub seed: Option<u64>,
    pub test_count: u32,
    /// Where to write the JUnit report.
    pub junit: Option<PathBuf>,
    pub kind: WorkloadKind,
    /// For transactions: the model the verdict is about, micro-operations per
    /// transaction, writes per key.
    pub consistency: checker::txn::ConsistencyModel,
    pub txn_len: (usize, usize),
    pub writes_per_key: u64,
    pub keys: usize,
    pub concurrency: usize,
    pub mix: Mix,
    /// The faults every seed's schedule is drawn from.
    pub nemesis: FaultPlan,
    pub time_limit: Duration,
    pub op_timeout: Duration,
    pub check_timeout: Duration,
    /// `--check-memory` in bytes.
    pub check_memory: usize,
    /// What `corrupt` may do: how many nodes it may ever damage in a run (a minority, or
    /// all with `--corrupt-any`), which files and how.
    pub corrupt: CorruptPlan,
    /// `test.json` as the flags make it (a run fills in the rest).
    pub record: TestRecord,
}

/// What a history is judged as: the workload that made it, and whether a set's or
/// queue's stale reads make it invalid (`--linearizable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Judged {
    pub kind: WorkloadKind,
    pub linearizable: bool,
    /// For transactions: the model the verdict is about.
    pub consistency: checker::txn::ConsistencyModel,
}

impl Config {
    /// What the checker judges the history as.
    pub(super) fn judged(&self) -> Judged {
        Judged {
            kind: self.kind,
            linearizable: self.linearizable,
            consistency: self.consistency,
        }
    }
}

/// `--txn-length`: `N` or `MIN-MAX`, each 1 to 64 (raft-node's limit per transaction).
pub(crate) fn txn_length(text: &str) -> Result<(usize, usize)> {
    let parse = |t: &str| {
        t.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
    };
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(text), parse(text)),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Ok((lo, hi)),
        _ => bail!(
            "--txn-length {text:?}: give N or MIN-MAX, from 1 to 64 micro-operations, MIN \
             at most MAX (e.g. 1-4)"
        ),
    }
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

/// What the runner knows of the server `--target` names: a server it knows, or one made
/// from the `--node-*` templates.
fn server_of(args: &TestArgs) -> Result<Arc<dyn Server>> {
    if args.target != ServerKind::Command {
        let given = [
            ("--node-cmd", args.node_cmd.is_some()),
            ("--node-setup", args.node_setup.is_some()),
            ("--node-env", !args.node_env.is_empty()),
            ("--node-ready", args.node_ready != "port"),
            ("--node-leads", args.node_leads.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
            bail!("{flag} goes with --target command");
        }
        return args.target.builtin().context("a server the runner knows");
    }
    let node_cmd = args.node_cmd.as_deref().context(
        "--target command needs --node-cmd 'TEMPLATE': the command that starts node {id} \
         (see --help)",
    )?;
    if args.client_cmd.is_none() {
        bail!(
            "--target command needs --client-cmd CMD: the adapter that speaks to the server \
             (docs/client-protocol.md)"
        );
    }
    if !args.node_args.is_empty() {
        bail!("--node-arg is for servers the runner knows; put the arguments in --node-cmd");
    }
    if args.ssh.hosts.is_some() {
        bail!("--target command runs nodes on this machine (--net proxy or netns), not on --hosts yet");
    }
    let env = args
        .node_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--node-env {kv:?} is not K=V"),
        })
        .collect::<Result<Vec<_>>>()?;
    // Each template parsed once, and a `{peer_addr:K}` for a node the cluster lacks
    // refused with its flag.
    let template = |flag: &str, text: &str| -> Result<Template> {
        let t = Template::parse(flag, text)?;
        t.check_nodes(flag, args.nodes)?;
        Ok(t)
    };
    Ok(Arc::new(CommandServer {
        node_cmd: template("--node-cmd", node_cmd)?,
        setup: args
            .node_setup
            .as_deref()
            .map(|t| template("--node-setup", t))
            .transpose()?,
        env,
        ready: match args.node_ready.trim() {
            "port" => Readiness::Port,
            cmd => Readiness::Command(template("--node-ready", cmd)?),
        },
        leads: args
            .node_leads
            .as_deref()
            .map(|t| template("--node-leads", t))
            .transpose()?,
        members: Vec::new(),
    }))
}

/// The links the flags ask for (`--hosts`, `--net`, `--net-range`, `--link-latency`,
/// `--tls`), and how many nodes they hold; in netns mode, what it needs is checked now, before anything is written
/// (missing privilege or tools is a set-up error). `requested`: the faults asked for
/// (a partition over ssh needs the hosts' firewalls).
fn links(args: &TestArgs, server: &dyn Server, requested: &[FaultKind]) -> Result<(Fabric, u64)> {
    if args.net_range.is_some() && args.net != NetArg::Netns {
        bail!("--net-range goes with --net netns");
    }
    let range = args.net_range.as_deref().map(Range::parse).transpose()?;
    let ssh = args.ssh.plan(requested.contains(&FaultKind::Partition))?;
    if args.net == NetArg::Netns {
        crate::netns::preflight()?;
        if let Some(r) = range {
            crate::netns::check_free(r)?;
        }
    }
    let fabric = Fabric::resolve(
        args.net,
        server.per_peer_addresses(),
        args.tls,
        args.link_latency,
        range,
        ssh,
    );
    let nodes = fabric.node_count(args.nodes);
    Ok((fabric, nodes))
}

/// The faults `--nemesis` asks for, by name. `all` is every kind but the opt-in ones,
/// and may be followed by kinds to leave out (`all,-clock-rate`) and opt-in kinds to add
/// (`all,wipe`); `clocks` and `disks` name their groups (`all,-clocks`, `kill,clocks`).
fn requested_faults(args: &TestArgs) -> Result<Vec<FaultKind>> {
    let every: Vec<FaultKind> = FaultKind::ALL
        .into_iter()
        .chain(FaultKind::DISK)
        .chain(FaultKind::CLOCK)
        .collect();
    let known: Vec<FaultKind> = every.iter().copied().chain(FaultKind::OPT_IN).collect();
    let mut names: Vec<&str> = known.iter().map(|k| k.name()).collect();
    names.extend(["clocks", "disks"]);
    let parse = |word: &str| -> Result<Vec<FaultKind>> {
        Ok(match word {
            "clocks" => FaultKind::CLOCK.to_vec(),
            "disks" => FaultKind::DISK.to_vec(),
            w => list(w, &known, &names, FaultKind::parse, "fault")?,
        })
    };
    let spec = args.nemesis().trim();
    let mut words = spec.split(',').map(str::trim);
    match words.next() {
        Some("all") => {
            let mut kinds = every.clone();
            for w in words {
                let Some(name) = w.strip_prefix('-') else {
                    let added = parse(w)?;
                    if added.iter().any(|k| !FaultKind::OPT_IN.contains(k)) {
                        bail!(
                            "--nemesis {spec:?}: `all` has {w} already; after it come kinds \
                             to leave out (`all,-{w}`) or opt-in kinds to add (`all,wipe`)"
                        );
                    }
                    for k in added {
                        if !kinds.contains(&k) {
                            kinds.push(k);
                        }
                    }
                    continue;
                };
                let out = parse(name)?;
                kinds.retain(|k| !out.contains(k));
            }
            Ok(kinds)
        }
        _ if spec == "none" || spec.is_empty() => Ok(Vec::new()),
        _ => {
            let mut kinds = Vec::new();
            for w in spec.split(',').map(str::trim) {
                if w.starts_with('-') || w == "all" || w == "none" {
                    bail!(
                        "--nemesis {spec:?}: `{w}` only goes with `all` first \
                         (`all,-clocks`)"
                    );
                }
                for k in parse(w)? {
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
            }
            Ok(kinds)
        }
    }
}

/// Whether `--nemesis` starts from every kind (`all`, or `all,-KIND...`): the search
/// unless an interval is given, and kinds the cluster cannot undergo are left out
/// rather than refused.
fn nemesis_is_all(args: &TestArgs) -> bool {
    args.nemesis().split(',').next().map(str::trim) == Some("all")
}

/// Flags that do not go together, refused before anything is looked up.
fn refuse_combinations(args: &TestArgs) -> Result<()> {
    if args.target != ServerKind::Etcd && args.etcd_serializable_reads {
        bail!("--etcd-serializable-reads goes with --target etcd");
    }
    if args.target != ServerKind::Nats && args.nats_direct_gets {
        bail!("--nats-direct-gets goes with --target nats");
    }
    if args.tls
        && matches!(
            args.target,
            ServerKind::Etcd | ServerKind::Nats | ServerKind::Command
        )
    {
        bail!(
            "--tls works with --target raft-node only (the runner would have to speak \
             etcd's TLS flags and its gateway over TLS, which it does not yet)"
        );
    }
    if args.target != ServerKind::RaftNode && args.api != ApiArg::Auto {
        bail!(
            "--api is for --target raft-node; {} has its own client",
            args.target.name()
        );
    }
    Ok(())
}

/// The fixed rota's interval, or `None` for the search (`--nemesis all` and no interval).
fn nemesis_interval(args: &TestArgs) -> Result<Option<Duration>> {
    Ok(match args.nemesis_interval {
        None if nemesis_is_all(args) => None,
        interval => Some(
            secs(interval.unwrap_or(3.0), "--nemesis-interval")?.max(Duration::from_millis(100)),
        ),
    })
}

/// Checks every flag and works out the defaults.
pub fn resolve(args: TestArgs) -> Result<Config> {
    // The flags on their own first, then what needs looking up (links, binaries).
    let kind = match args.workload {
        WorkloadArg::Register => WorkloadKind::Register,
        WorkloadArg::Kv => WorkloadKind::Kv,
        WorkloadArg::Set => WorkloadKind::Set,
        WorkloadArg::Queue => WorkloadKind::Queue,
        WorkloadArg::ListAppend => WorkloadKind::ListAppend,
        WorkloadArg::RwRegister => WorkloadKind::RwRegister,
    };
    refuse_combinations(&args)?;
    let txn_len = txn_length(&args.txn_length)?;
    if kind.transactional() {
        if args.fail_fast {
            bail!(
                "--fail-fast checks each key's history as it grows; transactions span keys \
                 and are checked once, at the end: leave --fail-fast out"
            );
        }
        if args.client_cmd.is_none()
            && !matches!(args.target, ServerKind::RaftNode | ServerKind::Etcd)
        {
            bail!(
                "--workload {}: {} has no transactions in our clients yet; raft-node (POST \
                 /txn), etcd (a read, then a write guarded on revisions) and adapters \
                 (--client-cmd, the protocol's txn operation) do",
                kind.name(),
                args.target.name()
            );
        }
    }
    // `--schedule`: the kinds the file names, carried out exactly (none left out quietly).
    let explicit = args
        .schedule
        .as_deref()
        .map(nemesis::schedule_file::read)
        .transpose()?;
    let requested = match &explicit {
        Some(s) => nemesis::schedule_file::kinds(s),
        None => requested_faults(&args)?,
    };
    let interval = match explicit {
        Some(_) => None,
        None => nemesis_interval(&args)?,
    };
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
    if args.keys == Some(0) {
        bail!("--keys must be at least 1");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of operations per second");
        }
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let workload = kind.name();
        match args.target {
            ServerKind::RaftNode => workload.to_string(),
            ServerKind::Etcd => format!("etcd-{workload}"),
            ServerKind::Nats => format!("nats-{workload}"),
            ServerKind::Command => format!("command-{workload}"),
        }
    });
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("--name must be a plain folder name");
    }
    let corrupt_files = list(
        &args.corrupt_files,
        &FileKind::ALL,
        &FileKind::ALL.map(FileKind::name),
        FileKind::parse,
        "file kind",
    )?;
    let corrupt_changes = list(
        &args.corrupt_changes,
        &Change::ALL,
        &Change::ALL.map(Change::name),
        Change::parse,
        "change",
    )?;
    if corrupt_files.is_empty() || corrupt_changes.is_empty() {
        bail!("--corrupt-files and --corrupt-changes need at least one each");
    }
    let time_limit = secs(args.time_limit, "--time-limit")?;
    let op_timeout = secs(args.op_timeout, "--op-timeout")?;
    let check_timeout = secs(args.check_timeout, "--check-timeout")?;
    let given_mix = args.mix.as_deref().map(parse_mix).transpose()?;
    let server = server_of(&args)?;
    let (fabric, nodes) = links(&args, &*server, &requested)?;
    if args.link_latency > 0 && !nemesis::carries(&fabric, FaultKind::Latency) {
        bail!(
            "--link-latency: {}",
            nemesis::why_not(&fabric, FaultKind::Latency)
        );
    }
    let all = explicit.is_none() && nemesis_is_all(&args);
    let mut notes = Vec::new();
    if all && requested.iter().any(|k| k.needs_layer()) && fabric.on_this_machine() {
        if let Some(why) = crate::cluster::disk::unavailable() {
            notes.push(format!(
                "no power losses, full disks or slow fsyncs in this run: {why}"
            ));
        }
    }
    if args.target == ServerKind::Nats && kind.collects() && args.linearizable.is_none() {
        notes.push(
            "stale reads are counted, not judged: NATS may serve a read's consumer from a \
             follower (--linearizable true judges them)"
                .to_string(),
        );
    }
    let faults = nemesis::usable(
        &fabric,
        &*server,
        args.target.name(),
        requested.clone(),
        all,
    )
    .map_err(|why| match &args.schedule {
        Some(f) => anyhow::anyhow!("--schedule {}: {why}", f.display()),
        None => anyhow::anyhow!("--nemesis {why}"),
    })?;
    let p = args
        .preset
        .as_deref()
        .map_or(PRESETS[0], |n| preset(n).expect("clap checked it"));
    let mix = given_mix.unwrap_or_else(|| mix_for(kind, p.write_pct));
    let mix_without_cas = mix.without_cas(kind, given_mix.is_some());
    let bin = match args.target {
        ServerKind::RaftNode => raft_node_binary(args.raft_node.as_ref())?,
        ServerKind::Etcd => etcd_binary(&args.etcd)?,
        ServerKind::Nats => nats_binary(&args.nats)?,
        ServerKind::Command => PathBuf::from("/bin/sh"),
    };
    let clocks = match faults.iter().any(|k| k.is_clock()) {
        true if args.clock_wall_only => Some(ClockScope::WallOnly),
        true => Some(ClockScope::WallAndMonotonic),
        false if args.clock_wall_only => {
            bail!("--clock-wall-only goes with clock faults, and this run has none")
        }
        false => None,
    };
    if all && requested.iter().any(|k| k.is_clock()) && fabric.on_this_machine() {
        if let Some(why) = crate::cluster::clock::unavailable() {
            notes.push(format!("no clock faults in this run: {why}"));
        } else if clocks.is_some() {
            notes.push(
                "clock faults: every node runs under libfaketime, which reads its control \
                 file at each clock call (raft-node serves about a third fewer operations \
                 per second); `--nemesis all,-clocks` leaves them out"
                    .to_string(),
            );
        }
    }
    let lazy_disk = match faults.iter().any(|k| k.needs_layer()) {
        true => Some(Layer::find(args.disk_names)?),
        false => None,
    };
    let mut cfg = Config {
        notes,
        keys: args.keys.unwrap_or(match kind {
            WorkloadKind::Kv => 100,
            k if k.transactional() => 10,
            _ => 5,
        }),
        consistency: args.consistency_model.model(),
        txn_len,
        writes_per_key: args.writes_per_key,
        concurrency: args.concurrency.map_or(p.concurrency, |c| c as usize),
        time_limit,
        op_timeout,
        check_timeout,
        check_memory: CheckOptions::bytes_for_mib(args.check_memory),
        corrupt: CorruptPlan {
            limit: if args.corrupt_any {
                nodes as usize
            } else {
                (nodes as usize - 1) / 2
            },
            files: corrupt_files,
            changes: corrupt_changes,
        },
        nemesis: FaultPlan {
            interval: if faults.is_empty() {
                Some(Duration::ZERO)
            } else {
                interval
            },
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
            time_limit,
            staggered_kills: args.staggered_kills,
            explicit,
        },
        name,
        kind,
        mix,
        client_cmd: args.client_cmd.clone(),
        cluster: ClusterPlan {
            server: server.clone(),
            bin,
            node_args: args.node_args.clone(),
            nodes,
            links: fabric,
            leader_within: Duration::from_secs(20),
            tls: args.tls,
            lazy_disk,
            clocks,
        },
        dialect: match (server.dialect(), args.api) {
            _ if args.client_cmd.is_some() => Some(Dialect::Adapter),
            (Some(Dialect::Etcd), _) if args.etcd_serializable_reads => {
                Some(Dialect::EtcdSerializable)
            }
            (Some(Dialect::Nats), _) if args.nats_direct_gets => Some(Dialect::NatsDirect),
            (Some(d), _) => Some(d),
            (None, ApiArg::RaftNode) => Some(Dialect::RaftNode),
            (None, ApiArg::Seed) => Some(Dialect::Seed),
            (None, ApiArg::Auto) => None,
        },
        mix_without_cas,
        fail_fast: args.fail_fast,
        rate: args.rate,
        max_ops: args.ops,
        all_keys: args.all_keys,
        linearizable: args.linearizable.unwrap_or(args.target != ServerKind::Nats),
        min_ok: args.min_ok,
        store: args.store.clone(),
        seed: args.seed,
        test_count: args.test_count.max(1),
        junit: args.junit.clone(),
        record: TestRecord::default(),
    };
    cfg.record = record_template(&cfg, &args);
    if let (Some(d), Err(e)) = (cfg.dialect, &cfg.mix_without_cas) {
        if !d.has_cas() {
            // Refuse cas before starting anything.
            bail!("the server speaks the {} API, {e}", d.name());
        }
    }
    Ok(cfg)
}

/// `test.json` as the flags make it: each run adds its seed, command, schedule and
/// start time, and once the nodes say which API they speak, that API and its mix.
fn record_template(cfg: &Config, args: &TestArgs) -> TestRecord {
    let (n, fabric) = (&cfg.nemesis, &cfg.cluster.links);
    TestRecord {
        name: cfg.name.clone(),
        seed: 0,
        command: String::new(),
        args: Vec::new(),
        nodes: cfg.cluster.nodes,
        server: cfg.cluster.bin.clone(),
        node_args: cfg.cluster.node_args.clone(),
        // The words the user gave: the workload and preset named.
        workload: clap::ValueEnum::to_possible_value(&args.workload)
            .map_or_else(|| cfg.kind.name().to_string(), |v| v.get_name().to_string()),
        preset: args.preset.clone(),
        keys: cfg.keys,
        concurrency: cfg.concurrency,
        rate: cfg.rate,
        api: cfg.dialect.map_or("auto", Dialect::name).to_string(),
        linearizable: cfg.linearizable,
        mix: cfg.mix.into(),
        time_limit_s: cfg.time_limit.as_secs_f64(),
        ops: cfg.max_ops,
        op_timeout_s: cfg.op_timeout.as_secs_f64(),
        nemesis: n.faults.iter().map(|f| f.name().to_string()).collect(),
        nemesis_interval_s: n.interval.map_or(0.0, |d| d.as_secs_f64()),
        schedule_mode: match (&n.explicit, n.interval) {
            (Some(_), _) => "file",
            (None, Some(_)) => "fixed",
            (None, None) => "search",
        }
        .to_string(),
        net: fabric.net_name().to_string(),
        net_range: match fabric {
            Fabric::Switch { range, .. } => range.map(|r| r.to_string()),
            _ => None,
        },
        link_latency_ms: fabric.latency_ms(),
        nemesis_targets: n.targets.iter().map(|t| t.name().to_string()).collect(),
        partitions: n.shapes.iter().map(|s| s.name().to_string()).collect(),
        schedule: Vec::new(),
        disk_names: cfg.cluster.lazy_disk.as_ref().map(|l| {
            match l.names {
                lazyfs::fs::Names::Strict => "strict",
                lazyfs::fs::Names::Ext4 => "ext4",
            }
            .to_string()
        }),
        min_ok: cfg.min_ok,
        started: String::new(),
    }
}

/// The command that replays this run: the same arguments with this seed.
pub fn replay_command(seed: u64) -> String {
    format!("chaos-runner {}", shell_line(&replay_args(seed)))
}

/// `words` as one line for a POSIX shell, each quoted as [`shell_word`] quotes it.
pub fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// This process's arguments (after the program) as they replay the run with `seed`:
/// without `--seed` and `--test-count`, then `--seed seed`.
pub fn replay_args(seed: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seed" || a == "--test-count" {
            args.next();
            continue;
        }
        if a.starts_with("--seed=") || a.starts_with("--test-count=") {
            continue;
        }
        out.push(a);
    }
    out.extend(["--seed".to_string(), seed.to_string()]);
    out
}

/// `a` as one word for a POSIX shell: as it is when nothing in it is special, else in
/// single quotes (a quote inside as `'\''`).
pub fn shell_word(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !a.is_empty() && a.chars().all(plain) {
        return a.to_string();
    }
    format!("'{}'", a.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_arguments_survive_the_shell() {
        assert_eq!(shell_word("--time-limit"), "--time-limit");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(r#"grep -q '"x"'"#), r#"'grep -q '\''"x"'\'''"#);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_word(r#"a 'b' "c" $d {e}"#)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), r#"a 'b' "c" $d {e}"#);
    }

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

    fn parse(args: &[&str]) -> Result<TestArgs> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            test: TestArgs,
        }
        let mut argv = vec!["test", "--raft-node", "/bin/sh"];
        argv.extend_from_slice(args);
        Ok(<Cli as clap::Parser>::try_parse_from(argv)?.test)
    }

    fn config(args: &[&str]) -> Result<Config> {
        resolve(parse(args)?)
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

    /// `all` may leave kinds out, groups name the clock and disk kinds, and a word that
    /// only makes sense after `all` is refused elsewhere. The default run on this machine
    /// has clock faults exactly when libfaketime is installed, and says so either way.
    #[test]
    fn all_can_leave_kinds_out_and_groups_name_clocks_and_disks() {
        let kinds = |spec: &str| -> Vec<FaultKind> {
            requested_faults(&parse(&["--nemesis", spec]).unwrap()).unwrap()
        };
        let every = kinds("all");
        assert!(FaultKind::CLOCK.iter().all(|k| every.contains(k)));
        let no_clocks = kinds("all, -clocks");
        assert_eq!(no_clocks.len(), every.len() - 3);
        assert!(!no_clocks.iter().any(|k| k.is_clock()));
        let fewer = kinds("all,-partition,-disks");
        assert!(!fewer.contains(&FaultKind::Partition) && !fewer.iter().any(|k| k.is_disk()));
        assert_eq!(
            kinds("kill,clocks,kill"),
            [
                FaultKind::Kill,
                FaultKind::ClockJump,
                FaultKind::ClockRate,
                FaultKind::ClockStrobe
            ]
        );
        // `wipe` is opt-in: named alone, or added to `all`.
        assert!(!every.contains(&FaultKind::Wipe));
        let with_wipe = kinds("all,wipe");
        assert_eq!(with_wipe.len(), every.len() + 1);
        assert!(with_wipe.contains(&FaultKind::Wipe));
        assert_eq!(kinds("wipe,kill"), [FaultKind::Wipe, FaultKind::Kill]);
        assert_eq!(kinds("all,wipe,-wipe"), every);
        for bad in ["kill,-clocks", "all,kill", "kill,all"] {
            let e = config(&["--nemesis", bad]).err().unwrap().to_string();
            assert!(e.contains("all"), "{bad}: {e}");
        }
        let e = config(&["--nemesis", "all,-clokcs"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("did you mean \"clocks\"?"), "{e}");
        // A search with the kinds left out; the search either way.
        let cfg = config(&["--nemesis", "all,-clocks"]).unwrap();
        assert_eq!(cfg.nemesis.interval, None);
        assert!(cfg.cluster.clocks.is_none());
        let cfg = config(&[]).unwrap();
        let faketime = crate::cluster::clock::unavailable().is_none();
        assert_eq!(cfg.cluster.clocks.is_some(), faketime);
        assert_eq!(cfg.nemesis.faults.iter().any(|k| k.is_clock()), faketime);
        let said = |what: &str| cfg.notes.iter().any(|n| n.contains(what));
        assert!(said(if faketime {
            "libfaketime"
        } else {
            "no clock faults"
        }));
        let e = config(&["--nemesis", "kill", "--clock-wall-only"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("no clock faults") || e.contains("has none"),
            "{e}"
        );
    }

    /// A command server's flags are checked before anything starts, and what its
    /// template implies decides which faults it can have.
    #[test]
    fn command_templates_are_checked_and_decide_the_faults() {
        let cmd = |node_cmd: &str, more: &[&str]| {
            let mut a = vec!["--target", "command", "--node-cmd", node_cmd];
            a.extend_from_slice(more);
            config(&a)
        };
        let err = |r: Result<Config>| r.err().unwrap().to_string();
        let e = err(cmd("srv {id}", &[]));
        assert!(e.contains("needs --client-cmd"), "{e}");
        let e = err(cmd("srv {idd}", &["--client-cmd", "a"]));
        assert!(e.contains("unknown placeholder {idd}"), "{e}");
        let e = err(config(&["--target", "command", "--client-cmd", "a"]));
        assert!(e.contains("needs --node-cmd"), "{e}");
        let e = err(config(&["--node-cmd", "srv"]));
        assert!(e.contains("--node-cmd goes with --target command"), "{e}");
        // Peers it dials itself: the proxies can cut its links.
        let with_peers = cmd(
            "srv {id} {peers}",
            &["--client-cmd", "a", "--nemesis", "partition"],
        );
        assert!(with_peers.is_ok());
        // Only {members}: no per-link address, so no proxy partitions, and why.
        let e = err(cmd(
            "srv {id} {members}",
            &["--client-cmd", "a", "--nemesis", "partition"],
        ));
        assert!(e.contains("{peers}") && e.contains("--net netns"), "{e}");
        let all = cmd("srv {members}", &["--client-cmd", "a"]).unwrap();
        assert!(!all.nemesis.faults.contains(&FaultKind::Partition));
        assert!(!all.nemesis.faults.contains(&FaultKind::Corrupt));
        assert!(all.nemesis.faults.contains(&FaultKind::Kill));
        assert_eq!(all.dialect, Some(Dialect::Adapter));
    }

    #[test]
    fn the_healthy_preset_is_fault_free_unless_faults_are_named() {
        assert!(config(&["--preset", "healthy"])
            .unwrap()
            .nemesis
            .faults
            .is_empty());
        let named = config(&["--preset", "healthy", "--nemesis", "kill"]).unwrap();
        assert_eq!(named.nemesis.faults, [FaultKind::Kill]);
        assert!(!config(&["--preset", "write-heavy"])
            .unwrap()
            .nemesis
            .faults
            .is_empty());
        assert!(!config(&[]).unwrap().nemesis.faults.is_empty());
    }

    #[test]
    fn a_server_without_cas_gets_its_share_as_writes_unless_cas_was_asked_for() {
        let cfg = config(&[]).unwrap();
        let seed = cfg.mix_without_cas.unwrap();
        assert_eq!((seed.read, seed.write, seed.cas), (50, 50, 0));
        let asked = config(&["--mix", "read=50,write=30,cas=20"]).unwrap();
        let err = asked.mix_without_cas.unwrap_err();
        assert!(err.contains("no compare-and-set"), "{err}");
        // With --api seed the refusal comes before anything starts.
        assert!(config(&["--api", "seed", "--mix", "cas=1"]).is_err());
        assert!(config(&["--api", "seed"]).is_ok());
        // The kv workload never issues cas.
        let kv = config(&["--workload", "kv", "--mix", "read=1,cas=1"]).unwrap();
        assert_eq!(kv.mix_without_cas.unwrap(), kv.mix);
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

    /// Negative numbers reach the flag's own check (clap would take `-1` for a flag),
    /// and no count is silently raised.
    #[test]
    fn negative_and_zero_counts_get_their_range() {
        let err = |args: &[&str]| config(args).err().unwrap().to_string();
        let e = err(&["--nodes", "-1"]);
        assert!(e.contains("3..=9"), "{e}");
        let e = err(&["--time-limit", "-5"]);
        assert!(e.contains("--time-limit must be a positive number"), "{e}");
        let e = err(&["--keys", "0"]);
        assert!(e.contains("--keys must be at least 1"), "{e}");
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(secs(1.5, "--x").unwrap(), Duration::from_millis(1500));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(secs(bad, "--x").is_err(), "{bad}");
        }
    }
}
