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

use crate::cluster::{etcd_binary, raft_node_binary, ClusterPlan, ServerKind};
use crate::fabric::Fabric;
use crate::nemesis::{self, FaultKind, Planned, Shape, Target};
use crate::netns::Range;

use super::args::{ApiArg, NetArg, TestArgs, WorkloadArg};

/// A validated `test` configuration.
pub struct Config {
    pub name: String,
    /// The server the nodes run (`--target`).
    pub server: ServerKind,
    /// The client dialect when the server or `--api` fixes it; `None`: ask the nodes.
    pub dialect: Option<Dialect>,
    /// Whether the mix came from `--mix` (then a cas share is never moved to writes).
    pub mix_given: bool,
    /// `--fail-fast`: check each key's history as it grows and stop at the first anomaly.
    pub fail_fast: bool,
    /// Operations per second across all clients; `None`: as fast as they go.
    pub rate: Option<f64>,
    /// Stop after this many operations.
    pub max_ops: Option<u64>,
    /// Decide every key instead of stopping at the first refuted one.
    pub all_keys: bool,
    /// Fewer ok operations than this make the verdict unknown.
    pub min_ok: u64,
    /// Where runs are kept.
    pub store: PathBuf,
    /// Stagger every kill of several nodes.
    pub staggered_kills: bool,
    /// The first run's seed (random when not given), and how many runs.
    pub seed: Option<u64>,
    pub test_count: u32,
    /// Where to write the JUnit report.
    pub junit: Option<PathBuf>,
    /// The nodes: how many, their extra flags, how their links are carried.
    pub nodes: u64,
    pub node_args: Vec<String>,
    /// How node-to-node traffic travels, with what that needs.
    pub fabric: Fabric,
    pub tls: bool,
    /// As test.json records them: the workload and preset named.
    pub workload_name: String,
    pub preset: Option<String>,
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

/// The links the flags ask for (`--hosts`, `--net`, `--net-range`, `--link-latency`,
/// `--tls`); in netns mode, what it needs is checked now, before anything is written
/// (missing privilege or tools is a set-up error). `requested`: the faults asked for
/// (a partition over ssh needs the hosts' firewalls).
fn links(args: &TestArgs, requested: &[FaultKind]) -> Result<Fabric> {
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
    Ok(Fabric::resolve(
        args.net,
        args.target,
        args.tls,
        args.link_latency,
        range,
        ssh,
    ))
}

/// The faults `--nemesis` asks for, by name (`all`: every kind).
fn requested_faults(args: &TestArgs) -> Result<Vec<FaultKind>> {
    list(
        args.nemesis(),
        &FaultKind::ALL,
        &FaultKind::ALL.map(FaultKind::name),
        FaultKind::parse,
        "fault",
    )
}

/// The requested fault kinds that the links can carry out: `all` means every kind they
/// can (etcd in proxy mode: kill and pause), and naming one they cannot is an error
/// that says why.
fn faults_for(
    args: &TestArgs,
    requested: Vec<FaultKind>,
    fabric: &Fabric,
) -> Result<Vec<FaultKind>> {
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
    if args.link_latency > 0 && !nemesis::carries(fabric, FaultKind::Latency) {
        bail!(
            "--link-latency: {}",
            nemesis::why_not(fabric, FaultKind::Latency)
        );
    }
    let server = args.target.server();
    let why_not = |k: FaultKind| -> Option<String> {
        if let Some(why) = server.refuses(k) {
            return Some(format!("{} cannot undergo it: {why}", args.target.name()));
        }
        (!nemesis::carries(fabric, k)).then(|| nemesis::why_not(fabric, k).to_string())
    };
    if args.nemesis().trim() == "all" {
        return Ok(requested
            .into_iter()
            .filter(|&k| why_not(k).is_none())
            .collect());
    }
    if let Some((k, why)) = requested.iter().find_map(|&k| why_not(k).map(|w| (k, w))) {
        bail!("--nemesis {}: {why}", k.name());
    }
    Ok(requested)
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
    let requested = requested_faults(&args)?;
    let fabric = links(&args, &requested)?;
    let faults = faults_for(&args, requested, &fabric)?;
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
        server: args.target,
        dialect: match (args.target.server().dialect(), args.api) {
            (Some(Dialect::Etcd), _) if args.etcd_serializable_reads => {
                Some(Dialect::EtcdSerializable)
            }
            (Some(d), _) => Some(d),
            (None, ApiArg::RaftNode) => Some(Dialect::RaftNode),
            (None, ApiArg::Seed) => Some(Dialect::Seed),
            (None, ApiArg::Auto) => None,
        },
        mix_given: args.mix.is_some(),
        fail_fast: args.fail_fast,
        rate: args.rate,
        max_ops: args.ops,
        all_keys: args.all_keys,
        min_ok: args.min_ok,
        store: args.store.clone(),
        staggered_kills: args.staggered_kills,
        seed: args.seed,
        test_count: args.test_count.max(1),
        junit: args.junit.clone(),
        nodes: fabric.node_count(args.nodes),
        node_args: args.node_args.clone(),
        fabric,
        tls: args.tls,
        workload_name: format!("{:?}", args.workload).to_lowercase(),
        preset: args.preset.clone(),
    };
    if cfg.dialect == Some(Dialect::Seed) {
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
        if self.mix_given {
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

    /// The cluster `test` starts: every link through a proxy or the switch, at
    /// `--link-latency` (etcd in proxy mode: direct links).
    pub fn cluster_plan(&self) -> ClusterPlan {
        ClusterPlan {
            kind: self.server,
            bin: self.bin.clone(),
            node_args: self.node_args.clone(),
            nodes: self.nodes,
            links: self.fabric.clone(),
            leader_within: Duration::from_secs(20),
            tls: self.tls,
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
        TestRecord {
            name: self.name.clone(),
            seed,
            command: command.to_string(),
            nodes: self.nodes,
            server: self.bin.clone(),
            node_args: self.node_args.clone(),
            workload: self.workload_name.clone(),
            preset: self.preset.clone(),
            keys: self.keys,
            concurrency: self.concurrency,
            rate: self.rate,
            api: dialect.map_or("auto", Dialect::name).to_string(),
            mix: mix.into(),
            time_limit_s: self.time_limit.as_secs_f64(),
            ops: self.max_ops,
            op_timeout_s: self.op_timeout.as_secs_f64(),
            nemesis: self.faults.iter().map(|f| f.name().to_string()).collect(),
            nemesis_interval_s: self.nemesis_interval.map_or(0.0, |d| d.as_secs_f64()),
            schedule_mode: if self.nemesis_interval.is_some() {
                "fixed"
            } else {
                "search"
            }
            .to_string(),
            net: self.fabric.net_name().to_string(),
            net_range: match &self.fabric {
                Fabric::Switch { range, .. } => range.map(|r| r.to_string()),
                _ => None,
            },
            link_latency_ms: self.fabric.latency_ms(),
            nemesis_targets: self.targets.iter().map(|t| t.name().to_string()).collect(),
            partitions: self.shapes.iter().map(|s| s.name().to_string()).collect(),
            schedule: schedule.iter().map(|p| p.to_string()).collect(),
            min_ok: self.min_ok,
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
