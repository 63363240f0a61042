//! The `raft-node` binary: one member of a Raft key-value cluster.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use raft_node::api::{Api, Limits};
use raft_node::body::BodyLimits;
use raft_node::kv::KvStore;
use raft_node::node::{Driver, DriverConfig};
use raft_node::raft::{Config, NodeId, Raft, ReadMode};
use raft_node::storage::Storage;
use raft_node::tls::{Tls, TlsFiles};
use raft_node::transport::{self, HttpOutbox, Membership, PortLimits};
use tokio::net::TcpListener;

/// One member of a Raft key-value cluster.
///
/// Start three of them, each knowing the others' transport addresses:
///
///   raft-node --id 1 --transport-port 8001 --api-port 9001 --data-dir /tmp/raft1 \
///             --peers 2=127.0.0.1:8002,3=127.0.0.1:8003
///
/// Clients talk JSON to the API port: `GET/POST/DELETE /kv/KEY`, `POST /kv/KEY/cas`,
/// `GET /client/status`, `GET /client/leader`. A node that is not the leader answers
/// `503 {"error": "not_leader", "leader": {"id", "api"}}`. Every acknowledged write was
/// fsync'd on a majority; SIGKILL loses nothing acknowledged.
///
/// Membership changes, one server at a time, through the leader's API port:
///
///   # start node 4 knowing the others, with the cluster's current voters
///   raft-node --id 4 --transport-port 8004 --api-port 9004 --data-dir /tmp/raft4 \
///             --peers 1=127.0.0.1:8001,2=127.0.0.1:8002,3=127.0.0.1:8003 --voters 1,2,3
///   curl -XPOST localhost:9001/cluster/members -d '{"id":4,"addr":"127.0.0.1:8004"}'
///   curl -XPOST localhost:9001/cluster/members -d '{"id":4,"role":"voter"}'
///   curl -XDELETE localhost:9001/cluster/members/3
///   curl -XPOST localhost:9001/cluster/transfer-leader -d '{"id":2}'
///   curl localhost:9001/cluster/members
#[derive(Parser, Debug)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Args {
    /// This node's id: a positive integer unique in the cluster.
    #[arg(long)]
    id: NodeId,
    /// Port for Raft messages from the other nodes.
    #[arg(long)]
    transport_port: u16,
    /// Port for the client JSON API.
    #[arg(long)]
    api_port: u16,
    /// Where the log, the hard state and snapshots live. Created if missing.
    #[arg(long)]
    data_dir: PathBuf,
    /// The other servers as ID=HOST:PORT of their transport port, comma-separated: the
    /// address book (members added later may bring their address with the change that
    /// adds them). Empty for a single-node cluster.
    #[arg(long, default_value = "", value_name = "ID=HOST:PORT,...")]
    peers: String,
    /// The voters of a new cluster, comma-separated ids (default: this node and every
    /// peer). Only a node with no state reads it, and only until the log holds a
    /// configuration. Give a server that will be added to a running cluster the
    /// cluster's voters, so that it never counts itself a voter before it is made one.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    voters: Option<Vec<NodeId>>,
    /// Address both ports bind to.
    #[arg(long, default_value = "127.0.0.1")]
    listen_addr: IpAddr,
    /// No longer needed, and ignored: a node with no state asks every member before it
    /// takes part, and so founds a new cluster or rejoins an old one safely by itself.
    #[arg(long, hide = true)]
    bootstrap: bool,
    /// The cluster's name: every peer request carries it, and requests naming another
    /// cluster are refused, so nodes of two clusters that can reach each other never mix.
    /// Give each cluster its own; all its nodes must share it.
    #[arg(long, default_value = "raft-node")]
    cluster_id: String,
    /// Mutual TLS on the peer port: this node's certificate (PEM). With --peer-key and
    /// --peer-ca, the port speaks only TLS, accepts only peers whose certificate the CA
    /// signed, and this node dials its peers over TLS, checking theirs the same way. The
    /// certificate must name every address peers dial for this node. Off by default.
    #[arg(long, value_name = "PEM", requires_all = ["peer_key", "peer_ca"])]
    peer_cert: Option<PathBuf>,
    /// The private key of --peer-cert (PEM).
    #[arg(long, value_name = "PEM", requires_all = ["peer_cert", "peer_ca"])]
    peer_key: Option<PathBuf>,
    /// The CA (PEM) that signs every member's peer certificate.
    #[arg(long, value_name = "PEM", requires_all = ["peer_cert", "peer_key"])]
    peer_ca: Option<PathBuf>,
    /// Mutual TLS on the client API port: this node's certificate (PEM). With
    /// --client-key and --client-ca, the port speaks only TLS and accepts only clients
    /// whose certificate the CA signed. Off by default.
    #[arg(long, value_name = "PEM", requires_all = ["client_key", "client_ca"])]
    client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(long, value_name = "PEM", requires_all = ["client_cert", "client_ca"])]
    client_key: Option<PathBuf>,
    /// The CA (PEM) that signs every client's certificate.
    #[arg(long, value_name = "PEM", requires_all = ["client_cert", "client_key"])]
    client_ca: Option<PathBuf>,
    /// Address other nodes' clients are told to use for this node's API (for leader hints).
    /// Defaults to LISTEN_ADDR:API_PORT.
    #[arg(long)]
    advertise_api: Option<String>,
    /// Lower bound of the randomized election timeout, in milliseconds.
    #[arg(long, default_value_t = 300)]
    election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, in milliseconds.
    #[arg(long, default_value_t = 600)]
    election_timeout_max_ms: u64,
    /// Interval between leader heartbeats, in milliseconds.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Resolution of the node's logical clock, in milliseconds.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// Snapshot the state machine and compact the log after this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    snapshot_threshold: u64,
    /// How long a client write may wait for commit before the answer is "outcome unknown".
    #[arg(long, default_value_t = 5_000)]
    request_timeout_ms: u64,
    /// Timeout of one request to a peer.
    #[arg(long, default_value_t = 1_000)]
    rpc_timeout_ms: u64,
    /// Largest client request body accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most connections each port (peers, clients) serves at once; more are closed as
    /// they arrive. Lowered at start if the process's file limit could not hold both
    /// ports' connections next to what storage and peers need.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// Milliseconds a connection may take to send a request's head, or stay idle
    /// between requests, before it is closed. With --body-timeout-ms, no slow or stuck
    /// client holds a slot longer than the two together.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Milliseconds a request's body may take to arrive once its head has, on either
    /// port; then the answer is 408 and the connection is closed.
    #[arg(long, default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// Memory, in MiB, that each port's large bodies (over 64 KiB) may hold together
    /// while they arrive; a large body that would go past it is refused with 503 before
    /// it is read. Smaller bodies, what a healthy cluster sends, are never refused for
    /// it. Raised to the port's largest body, or two per peer on the transport port.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    body_budget_mib: usize,
    /// How the leader serves reads. index (default): ReadIndex, a majority confirms the
    /// leadership for every round of reads; correct whatever the clocks do. lease: for
    /// 90% of the shortest election timeout after a majority last confirmed it, the
    /// leader answers reads at once, without a round trip; correct only while no node's
    /// clock runs more than 10% faster than another's and no clock jumps.
    #[arg(long, value_enum, default_value = "index")]
    read_mode: ReadModeArg,
    /// Largest key accepted, in bytes.
    #[arg(long, default_value_t = 1024)]
    max_key_bytes: usize,
    /// Largest value accepted, in bytes.
    #[arg(long, default_value_t = 256 << 10)]
    max_value_bytes: usize,
    /// UNSAFE: switch on a deliberately planted bug, to prove a test catches it. Never use
    /// for real data (docs/seeded-bugs.md says what each breaks). Repeat for several.
    #[arg(long = "unsafe-bug", value_name = "NAME", value_enum)]
    unsafe_bugs: Vec<SeededBug>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReadModeArg {
    Index,
    Lease,
}

/// The seeded bugs, one name each: a misspelt name is a usage error, never a silently
/// healthy node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SeededBug {
    /// Serve reads from local state on any node, without ReadIndex.
    StaleRead,
    /// A leader serves reads from local state without confirming it still leads.
    LeaseRead,
    /// Acknowledge a write once it is in the leader's log, before a majority has it.
    AckBeforeCommit,
    /// Never persist voted-for.
    ForgetVote,
    /// Serve ReadIndex before the new leader's no-op commits.
    NoNoopRead,
    /// Commit entries of earlier terms by counting replicas (the paper's figure 8).
    CommitOldTerm,
    /// Drop the last fsync'd log entries at start-up.
    LostTruncate,
    /// A follower takes the leader's commit index beyond what the RPC proved.
    CommitOverreach,
    /// Acknowledge log writes after write(2), before fdatasync.
    NoFsync,
    /// Create, rename and remove segments, snapshots and state.bin without fsyncing the
    /// directory.
    NoDirFsync,
    /// Do not verify record checksums when recovering the log.
    TrustDisk,
    /// Start with no state as a voter at term 0 at once, without asking the members: a
    /// node whose disk was lost can vote twice in a term, and for a log that lacks the
    /// entries it had acknowledged.
    RejoinEmptyVoter,
    /// A leader takes a membership change while the previous one has not committed, and
    /// before it committed an entry of its term: two quick removals leave one server a
    /// majority of its own configuration while the others still count the old one.
    UnsafeMembership,
    /// Apply a transaction's micro-operations one at a time (a log entry per write, a
    /// read per read), so other transactions interleave with it.
    TxnSplit,
    /// Serve read-only transactions from local state on any node, without ReadIndex.
    TxnLocalRead,
}

/// How many fsync'd entries `lost-truncate` drops at start-up.
const LOST_ENTRIES: usize = 3;

fn parse_peers(s: &str, me: NodeId) -> Result<BTreeMap<NodeId, String>> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("peer {part:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .with_context(|| format!("peer id {id:?} is not a positive integer"))?;
        if id == 0 || id == me {
            bail!("peer id {id} is invalid (zero, or this node's own id)");
        }
        let addr = addr.trim();
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => bail!("peer {id} address {addr:?} is not HOST:PORT"),
        }
        if peers.insert(id, addr.to_string()).is_some() {
            bail!("peer {id} is listed twice");
        }
    }
    Ok(peers)
}

fn ticks(ms: u64, tick_ms: u64, what: &str) -> Result<u32> {
    let t = ms / tick_ms;
    if t == 0 || !ms.is_multiple_of(tick_ms) {
        bail!("{what} ({ms} ms) must be a positive multiple of --tick-ms ({tick_ms} ms)");
    }
    u32::try_from(t).with_context(|| format!("{what} is too long"))
}

/// Descriptors kept for everything but client and peer connections: log segments,
/// snapshots, the outbox's connections to peers, the runtime.
const FD_RESERVE: u64 = 256;

/// How many connections each port may hold: `wanted`, or fewer if the file limit (raised
/// to its hard maximum first) cannot hold two ports' worth plus [`FD_RESERVE`]. A node
/// that runs out of descriptors fails at its next snapshot; refusing a connection is
/// the cheaper failure.
fn connection_budget(wanted: usize) -> Result<usize> {
    if wanted == 0 {
        bail!("--max-connections must be positive");
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(wanted);
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let fits = (lim.rlim_cur.saturating_sub(FD_RESERVE) / 2) as usize;
    if fits == 0 {
        bail!(
            "the file limit ({}) leaves no room for connections; raise it (ulimit -n)",
            lim.rlim_cur
        );
    }
    if fits < wanted {
        tracing::warn!(
            wanted,
            allowed = fits,
            file_limit = lim.rlim_cur,
            "fewer connections per port than asked: the file limit is too low"
        );
    }
    Ok(wanted.min(fits))
}

/// The TLS of one port, when its three files are given (clap makes it all or none).
fn tls_of(
    flags: &str,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    ca: &Option<PathBuf>,
) -> Result<Option<Tls>> {
    let (Some(cert), Some(key), Some(ca)) = (cert, key, ca) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        ca: ca.clone(),
    };
    Tls::load(&files)
        .map(Some)
        .with_context(|| format!("cannot set up TLS from {flags}"))
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

async fn run(args: Args) -> Result<()> {
    if args.id == 0 {
        bail!("--id must be a positive integer");
    }
    if args.tick_ms == 0 {
        bail!("--tick-ms must be positive");
    }
    let id_ok = |c: &str| (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok(&args.cluster_id) {
        bail!("--cluster-id must be 1 to 64 visible ASCII characters (no spaces)");
    }
    let peers = parse_peers(&args.peers, args.id)?;
    let mut cfg = Config::new(args.id, peers.keys().copied().collect());
    cfg.voters = args.voters.clone();
    cfg.election_ticks_min = ticks(
        args.election_timeout_min_ms,
        args.tick_ms,
        "--election-timeout-min-ms",
    )?;
    cfg.election_ticks_max = ticks(
        args.election_timeout_max_ms,
        args.tick_ms,
        "--election-timeout-max-ms",
    )?;
    cfg.heartbeat_ticks = ticks(args.heartbeat_ms, args.tick_ms, "--heartbeat-ms")?;
    cfg.seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    cfg.read_mode = match args.read_mode {
        ReadModeArg::Index => ReadMode::Index,
        ReadModeArg::Lease => ReadMode::Lease,
    };
    // Only a snapshot the key-value store can load may replace this node's state.
    cfg.snapshot_check = |data| KvStore::restore(data).is_ok();
    cfg.validate()
        .map_err(anyhow::Error::msg)
        .context("invalid flags")?;
    for b in &args.unsafe_bugs {
        tracing::error!(bug = ?b, "UNSAFE: seeded bug enabled; this node breaks Raft on purpose");
    }
    let bug = |b: SeededBug| args.unsafe_bugs.contains(&b);
    cfg.bugs.no_noop_read = bug(SeededBug::NoNoopRead);
    cfg.bugs.commit_old_term = bug(SeededBug::CommitOldTerm);
    cfg.bugs.commit_overreach = bug(SeededBug::CommitOverreach);
    cfg.bugs.unsafe_membership = bug(SeededBug::UnsafeMembership);
    if args.snapshot_threshold == 0 {
        bail!("--snapshot-threshold must be positive");
    }

    if !Storage::holds_state(&args.data_dir) && Storage::holds_log(&args.data_dir) {
        bail!(
            "{} holds a log but its term/vote file (state.bin) is missing: the node's term and \
             vote are lost, and started without them it could take its term back or vote twice \
             in one term. Restore state.bin from where it went (a backup), or empty the \
             directory: started with nothing, node {} asks the other members and rejoins safely.",
            args.data_dir.display(),
            args.id
        );
    }
    if args.bootstrap {
        tracing::warn!(
            "--bootstrap is no longer needed and is ignored: a node with no state asks every \
             member first, then founds a new cluster or rejoins its old one"
        );
    }

    let storage_bugs = raft_node::storage::StorageBugs {
        no_fsync: bug(SeededBug::NoFsync),
        no_dir_fsync: bug(SeededBug::NoDirFsync),
        trust_disk: bug(SeededBug::TrustDisk),
    };
    let (storage, recovered, report) = Storage::open_with(&args.data_dir, storage_bugs)
        .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?;
    let kv = match &recovered.snapshot {
        Some(s) => KvStore::restore(&s.data).context("the snapshot does not decode")?,
        None => KvStore::default(),
    };
    let snapshot_index = recovered.snapshot.as_ref().map_or(0, |s| s.index);
    tracing::info!(
        id = args.id,
        term = recovered.hard_state.term,
        vote = ?recovered.hard_state.vote,
        snapshot_index,
        entries = recovered.entries.len(),
        segments = report.segments,
        torn_bytes_cut = report.truncated_bytes,
        "recovered durable state from {}",
        args.data_dir.display()
    );
    if report.truncated_bytes > 0 {
        tracing::warn!(
            bytes = report.truncated_bytes,
            "cut a torn tail off the log (an unacknowledged write)"
        );
    }
    let mut recovered = recovered;
    if bug(SeededBug::RejoinEmptyVoter) {
        recovered.hard_state.joining = false;
    }
    if bug(SeededBug::LostTruncate) {
        let keep = recovered.entries.len().saturating_sub(LOST_ENTRIES);
        recovered.entries.truncate(keep);
    }
    // The largest message a peer with this configuration sends: an append of at most
    // its byte limit plus one more entry (a client body at most) and each entry's
    // framing, or a snapshot chunk.
    let largest_message =
        (cfg.max_append_bytes + args.max_body_bytes + cfg.max_append_entries * 64)
            .max(cfg.snapshot_chunk_bytes + (64 << 10));
    let raft = Raft::new(cfg, recovered).context("cannot start the consensus core")?;

    let peer_tls = tls_of("--peer-*", &args.peer_cert, &args.peer_key, &args.peer_ca)?;
    let client_tls = tls_of(
        "--client-*",
        &args.client_cert,
        &args.client_key,
        &args.client_ca,
    )?;
    let api_addr = SocketAddr::new(args.listen_addr, args.api_port);
    let transport_addr = SocketAddr::new(args.listen_addr, args.transport_port);
    let transport_listener = bind(transport_addr, "raft transport").await?;
    let api_listener = bind(api_addr, "the client API").await?;
    let advertise = args
        .advertise_api
        .clone()
        .unwrap_or_else(|| api_addr.to_string());

    let rpc_timeout = Duration::from_millis(args.rpc_timeout_ms.max(1));
    let admitted: transport::Admitted =
        std::sync::Arc::new(std::sync::RwLock::new(peers.keys().copied().collect()));
    let outbox = HttpOutbox::start(
        args.id,
        advertise.clone(),
        &peers,
        rpc_timeout,
        args.cluster_id.clone(),
        peer_tls.as_ref().map(|t| t.client.clone()),
        admitted.clone(),
    );
    let driver_cfg = DriverConfig {
        tick: Duration::from_millis(args.tick_ms),
        request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
        lost_leader_grace: Duration::from_millis(2 * args.election_timeout_max_ms),
        snapshot_threshold: args.snapshot_threshold,
        api_addr: advertise,
        catch_up_ticks: args.read_mode == ReadModeArg::Lease,
        bugs: raft_node::node::NodeBugs {
            stale_read: bug(SeededBug::StaleRead),
            lease_read: bug(SeededBug::LeaseRead),
            ack_before_commit: bug(SeededBug::AckBeforeCommit),
            forget_vote: bug(SeededBug::ForgetVote),
            txn_local_read: bug(SeededBug::TxnLocalRead),
        },
    };
    let (handle, rx) = raft_node::node::channel();
    let driver = Driver::new(driver_cfg, raft, storage, kv, snapshot_index, outbox);
    let limits = Limits {
        max_key: args.max_key_bytes,
        max_value: args.max_value_bytes,
    };
    let body_timeout = Duration::from_millis(args.body_timeout_ms.max(1));
    let budget = args.body_budget_mib.saturating_mul(1 << 20);
    let api = Api {
        node: handle.clone(),
        limits,
        bodies: BodyLimits::new(args.max_body_bytes, body_timeout, budget),
        txn_split: bug(SeededBug::TxnSplit),
    };
    let ports = PortLimits {
        max_connections: connection_budget(args.max_connections)?,
        header_timeout: Duration::from_millis(args.header_timeout_ms.max(1)),
    };
    let raft_body = transport::raft_body_limit(largest_message);
    // Each peer sends one request at a time: two per peer always fit.
    let raft_bodies = BodyLimits::new(
        raft_body,
        body_timeout,
        budget.max(raft_body.saturating_mul(2 * peers.len())),
    );
    let members = Membership {
        id: args.id,
        peers: admitted,
        cluster: args.cluster_id.clone(),
    };
    tokio::spawn(transport::serve(
        transport_listener,
        peer_tls.as_ref().map(Tls::acceptor),
        handle.clone(),
        ports,
        raft_bodies,
        members,
    ));
    tokio::spawn(transport::serve_http(
        api_listener,
        client_tls.as_ref().map(Tls::acceptor),
        ports,
        move |req| api.clone().handle(req),
    ));
    tracing::info!(
        %transport_addr,
        %api_addr,
        peers = ?peers,
        peer_tls = peer_tls.is_some(),
        client_tls = client_tls.is_some(),
        "raft-node {} serving",
        args.id
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut driver_task = tokio::spawn(driver.run(rx));
    tokio::select! {
        res = &mut driver_task => {
            match res {
                Ok(Ok(())) => bail!("the node stopped unexpectedly"),
                Ok(Err(e)) => return Err(anyhow::Error::new(e).context("storage failed; stopping so that nothing unsafe is acknowledged")),
                Err(e) => bail!("the node crashed: {e}"),
            }
        }
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    // Everything acknowledged is already on disk; nothing to flush.
    Ok(())
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAFT_NODE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raft-node: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("raft-node: error: {e:#}");
        std::process::exit(1);
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
}
