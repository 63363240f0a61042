//! `test`'s command line, as clap reads it. [`super::config`] resolves it once into a
//! typed configuration; nothing after that sees these flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cluster::ServerKind;
pub use crate::fabric::NetArg;
use crate::ssh::SshArgs;

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
    /// A few sets; adds of unique elements and reads of a whole set (Jepsen's set-full),
    /// checked element by element: lost, unexpected, stale. Nothing is overwritten, so
    /// damage stays visible. raft-node, etcd, nats, and adapters.
    Set,
    /// A totally ordered log: the set's adds and whole reads, where every read must also
    /// be a prefix of the longest (nothing reordered). As set.
    Queue,
    /// Transactions of appends to lists and reads of whole lists (Elle's list-append),
    /// checked for isolation anomalies against --consistency-model. raft-node (POST
    /// /txn), etcd (a read, then a write guarded on revisions) and adapters.
    ListAppend,
    /// Transactions of register writes and reads (Elle's rw-register), checked as
    /// list-append is; reads reveal less of the order of writes, so fewer anomalies can
    /// be proven.
    RwRegister,
}

/// Run a chaos test against a cluster and check it for linearizability.
///
/// With no flags: 3 raft-node processes, the register workload (5 clients, 5 keys) and a
/// seeded search over every fault these links, this server and this machine can carry
/// out (see --nemesis), for 30 s; then heal, read every key, check. Results go to
/// store/<name>/<timestamp>/ (store/latest points at the newest); --seed replays a run.
///
/// Exit codes: 0 valid, 1 invalid (an anomaly; the results name it), 2 unknown (too few
/// operations succeeded, or the checker ran out of budget), 3 harness error.
#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    /// Test name: the folder under the store (default: the workload's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of nodes, 3 to 9.
    #[arg(long, allow_negative_numbers = true, default_value_t = 3, value_parser = clap::builder::RangedI64ValueParser::<u64>::new().range(3..=9), value_name = "N")]
    pub nodes: u64,
    /// What to test: raft-node (or any server with its command line, see --raft-node), an
    /// etcd cluster, a NATS JetStream cluster, or any server at all (command: started
    /// from --node-cmd, spoken to through --client-cmd), started by the runner. etcd
    /// members advertise one peer URL to all and NATS servers gossip their route
    /// addresses, so the per-link proxies cannot cut or slow their links: with either,
    /// `--nemesis all` leaves partitions and latency out unless `--net netns`.
    #[arg(long, value_enum, default_value = "raft-node")]
    pub target: ServerKind,
    /// With --target command: the command that starts node N, run by `sh -c` in the
    /// node's own process group (and namespace with --net netns). Placeholders: {id},
    /// {n} (nodes), {listen} (its address), {api_port}, {peer_port}, {aux_port} (a third
    /// port), {data_dir}, {peers} (ID=HOST:PORT,... of the others, as this node must
    /// dial them: through the link's proxy with --net proxy), {members} (ID=HOST:PORT,...
    /// of every node at its own address), {members_aux} (the same with aux ports) and
    /// {peer_addr:K} (the address to dial for node K). Proxy partitions need {peers} or
    /// {peer_addr:K}; otherwise use --net netns. Example: --node-cmd 'my-server --id {id}
    /// --listen {listen}:{api_port} --peers {peers} --data {data_dir}'.
    #[arg(long, value_name = "TEMPLATE")]
    pub node_cmd: Option<String>,
    /// With --target command: run once per node before its first start (same
    /// placeholders), e.g. to write a config file into {data_dir}.
    #[arg(long, value_name = "TEMPLATE")]
    pub node_setup: Option<String>,
    /// With --target command: an environment variable for every node (repeat for
    /// several).
    #[arg(long = "node-env", value_name = "K=V")]
    pub node_env: Vec<String>,
    /// With --target command: when a node is up. port: its {api_port} accepts a TCP
    /// connection; anything else is a command (same placeholders) that exits 0 once it
    /// is.
    #[arg(long, default_value = "port", value_name = "port|CMD")]
    pub node_ready: String,
    /// With --target command: a command (same placeholders) that exits 0 when node N
    /// leads, so that faults aimed at the leader find it. Without it they hit a random
    /// node.
    #[arg(long, value_name = "CMD")]
    pub node_leads: Option<String>,
    /// The client: run this command (by `sh -c`) once per logical client and speak to it
    /// in JSON lines over its stdin and stdout, as docs/client-protocol.md specifies. It
    /// is given the nodes' client addresses and performs each operation with whatever
    /// client library the server has. Required with --target command; with another
    /// target it replaces the built-in client.
    #[arg(long, value_name = "CMD")]
    pub client_cmd: Option<String>,
    /// The server binary (default: raft-node beside this executable). Any server taking
    /// --id --transport-port --api-port --data-dir --peers and serving /kv/:key works.
    #[arg(long, value_name = "PATH")]
    pub raft_node: Option<PathBuf>,
    /// The etcd binary, for --target etcd.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd: PathBuf,
    /// The nats-server binary, for --target nats.
    #[arg(long, default_value = "nats-server", value_name = "PATH")]
    pub nats: PathBuf,
    /// With --target etcd: read with etcd's serializable reads, which a member answers
    /// from its own, possibly stale, state. A positive control: expect "invalid".
    #[arg(long)]
    pub etcd_serializable_reads: bool,
    /// With --target nats: read registers with the bucket's direct gets, which any
    /// replica answers from its own, possibly stale, state. A positive control.
    #[arg(long)]
    pub nats_direct_gets: bool,
    /// The server's client API. A server without compare-and-set (seed) runs the register
    /// workload with reads and writes only; asking for cas in --mix is then an error.
    #[arg(long, value_enum, default_value = "auto")]
    pub api: ApiArg,
    /// An extra argument for every node (repeat for several), e.g. --node-arg=--heartbeat-ms=30
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// What the clients do, and so what the checker judges: register (linearizability
    /// of a few contended keys), kv (many keys), set or queue (element by element),
    /// list-append or rw-register (transactions, isolation anomalies).
    #[arg(long, value_enum, default_value = "register")]
    pub workload: WorkloadArg,
    /// healthy (5 clients, 50% writes, and no faults unless --nemesis names some),
    /// high-concurrency (10 clients), write-heavy (80% writes), read-heavy (80% reads).
    #[arg(long, value_parser = ["healthy", "high-concurrency", "write-heavy", "read-heavy"], value_name = "NAME")]
    pub preset: Option<String>,
    /// For --workload list-append and rw-register: the model the verdict is about. The
    /// summary also names the weakest models the anomalies break and the strongest the
    /// history keeps.
    #[arg(long, value_enum, default_value = "strict-serializable")]
    pub consistency_model: crate::check_cmd::ConsistencyArg,
    /// For transactions: micro-operations per transaction, N or MIN-MAX.
    #[arg(long, default_value = "1-4", value_name = "N|MIN-MAX")]
    pub txn_length: String,
    /// For transactions: writes a key takes before a fresh key replaces it (so list
    /// reads stay short however long the run).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub writes_per_key: u64,
    /// Keys the workload uses (default: 5 for register, 100 for kv; for transactions,
    /// the keys in use at a time, 10).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub keys: Option<usize>,
    /// Concurrent clients (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::builder::RangedI64ValueParser::<u64>::new().range(1..=1024), value_name = "N")]
    pub concurrency: Option<u64>,
    /// Target operations per second over all clients (default: as fast as possible).
    #[arg(long, allow_negative_numbers = true, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// Seconds of load and faults.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 30.0,
        value_name = "SECS"
    )]
    pub time_limit: f64,
    /// Stop the clients after this many operations.
    #[arg(long, value_name = "N")]
    pub ops: Option<u64>,
    /// Weights of read, write, cas and delete, e.g. read=50,write=30,cas=20 (overrides the preset).
    #[arg(long, value_name = "F=W,...")]
    pub mix: Option<String>,
    /// Seconds an operation may take before its outcome is recorded as unknown.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 2.0,
        value_name = "SECS"
    )]
    pub op_timeout: f64,
    /// Faults to inject: any of kill,pause,partition,latency (processes and links),
    /// duplicate,reorder (whole peer requests, or packets with --net netns), replay,drop
    /// (whole requests: --net proxy), loss,bandwidth (packets: --net netns), the disk
    /// faults (`disks`) lose-unsynced (a power loss: the nodes are killed and lose what
    /// they wrote but did not fsync), disk-full (writes fail with ENOSPC for a spell),
    /// slow-fsync (each fsync takes 50-500 ms for a spell), which act through a FUSE layer
    /// under each node's data and need root and fuse3, and corrupt (while a node is down,
    /// damage one of its durable files: flip bits, truncate, zero or misdirect a block,
    /// delete; no root needed), the clock faults (`clocks`) clock-jump (a node's clocks
    /// jump 0.1-6.4 s either way), clock-rate (they run at 0.25x to 4x for a spell) and
    /// clock-strobe (they jump back and forth every 10-50 ms), through libfaketime
    /// (apt-get install libfaketime) for servers whose clock calls go through libc (not
    /// Go's etcd or nats-server), named beside other kinds they run in a rota of their own,
    /// and wipe (a lost disk: kill a node, delete its whole data directory, restart it on
    /// nothing; a minority at most, and not again before the last wiped node caught up;
    /// only by name, as most servers need a membership change to take a member back),
    /// and membership (through raft-node's /cluster/members API: a voter removed, or two
    /// at once, the leader sometimes cut off from them first, or leadership moved; the
    /// removed nodes come back emptied, as learners, then voters; only by name);
    /// or all (every kind these links, this server and this machine can carry out but
    /// wipe and membership), optionally leaving some out (`all,-clocks`,
    /// `all,-partition`) or adding them (`all,wipe`, `all,membership`: the search then
    /// draws them beside kills and pauses), or none. No disk or
    /// clock fault reaches --hosts. `all` without --nemesis-interval is a search: kinds,
    /// targets, durations and gaps are drawn from the seed, with bursts of leader faults
    /// (a third of the kills power losses, some corruptions, a third of the pauses disk
    /// spells) and, underneath, spells of link latency, message faults and clock faults;
    /// successive seeds explore different schedules. Default: all, or none with --preset
    /// healthy (a fault-free baseline).
    #[arg(long, value_name = "KINDS")]
    pub nemesis: Option<String>,
    /// A fixed rota instead of the search: seconds of each fault, and of each healthy gap
    /// between faults, every named kind in turn (default 3 when --nemesis names kinds).
    #[arg(long, allow_negative_numbers = true, value_name = "SECS")]
    pub nemesis_interval: Option<f64>,
    /// Whom kills, pauses and power losses hit: any of random,leader,minority,majority,
    /// every (all nodes at once), or all (the first four; the search then also hits every
    /// node at once). Targets named are what the search's foreground uses, exactly; its
    /// message and clock spells pick their own.
    #[arg(long, default_value = "all", value_name = "TARGETS")]
    pub nemesis_targets: String,
    /// Kills of several nodes (every, majority, minority) take them down one by one, a
    /// few milliseconds apart, and bring them back one by one, up to 0.8 s apart, each in
    /// an order drawn from the seed: the last to die may hold writes nobody else has, and
    /// the first back elect a leader before the rest return. The search does this to three
    /// in four of those kills; with this flag, to all of them. Wipes of several nodes
    /// are kills too, and staggered the same way.
    #[arg(long)]
    pub staggered_kills: bool,
    /// Print what the run would be (the cluster, the load, the faults and each seed's
    /// fault schedule) and exit, starting nothing. With --seed, the schedule that seed
    /// replays.
    #[arg(long)]
    pub dry_run: bool,
    /// Run exactly the faults FILE lists instead of the seed's search: every run writes
    /// its own as schedule.json, and `chaos-runner shrink` writes the smallest one that
    /// still fails. Edit one to try a schedule by hand. The run carries out the kinds the
    /// file names (so it goes without --nemesis and the flags that shape the search); the
    /// seed still drives the clients.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["nemesis", "nemesis_interval", "staggered_kills"]
    )]
    pub schedule: Option<std::path::PathBuf>,
    /// Clock faults move only the nodes' wall clocks (`CLOCK_REALTIME`, gettimeofday,
    /// time), as a step of the system time or a bad NTP server would: monotonic clocks,
    /// and with them timers, timeouts and sleeps, keep real time. A server that takes
    /// leases or timestamps from the wall clock must survive this; raft-node's timers
    /// are monotonic and do not see it.
    #[arg(long)]
    pub clock_wall_only: bool,
    /// When a create, removal or rename in a node's data survives a power loss
    /// (lose-unsynced). strict: once its folder is fsynced, all that POSIX promises and
    /// what a careful server assumes. ext4: once anything is fsynced, as ext4's journal
    /// (data=ordered) does in practice; a server that never fsyncs its folders passes
    /// here and may fail under strict.
    #[arg(long, value_enum, default_value = "strict", value_name = "MODEL")]
    pub disk_names: lazyfs::fs::Names,
    /// Let `corrupt` damage any node. By default it damages at most a minority over the
    /// whole run (the same nodes again and again), so a correct cluster always keeps a
    /// majority of sound copies and must stay valid.
    #[arg(long)]
    pub corrupt_any: bool,
    /// Which files `corrupt` damages: any of newest-log,older-log (the server's
    /// write-ahead log: its newest segment, or an older one), snapshot, metadata (term and
    /// vote, what was synced), or all.
    #[arg(long, default_value = "all", value_name = "KINDS")]
    pub corrupt_files: String,
    /// How `corrupt` damages them: any of flip-bit (one bit), flip-bits (1-8 bits in 16 bytes), truncate (cut short), zero-block,
    /// copy-block (a block written over another: a misdirected write), delete, or all.
    #[arg(long, default_value = "all", value_name = "CHANGES")]
    pub corrupt_changes: String,
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
    /// (`chaos-runner clean` removes what a killed run left). direct: nothing in the way
    /// (kill and pause only).
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
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0,
        value_name = "MS"
    )]
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
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 1,
        value_name = "N"
    )]
    pub test_count: u32,
    /// Seconds the checker may take.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 120.0,
        value_name = "SECS"
    )]
    pub check_timeout: f64,
    /// Memory budget of the checker, in MiB: the searches of every key, on every core,
    /// draw from it together.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub check_memory: u64,
    /// Decide every key. By default the first key proven non-linearizable decides the
    /// verdict: the other keys' searches stop and they are reported as not decided.
    #[arg(long)]
    pub all_keys: bool,
    /// For --workload set and queue: whether a stale read (one that misses an element
    /// whose add had completed before the read began) makes the run invalid. Stale reads
    /// are counted and shown either way; lost and unexpected elements are always invalid.
    /// Default: true, except with --target nats, whose reads go through a consumer that
    /// JetStream may place on a follower.
    #[arg(long, value_name = "BOOL")]
    pub linearizable: Option<bool>,
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
