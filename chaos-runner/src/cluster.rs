//! The nodes under test: real processes, each in its own process group, each told to die
//! with the runner.
//!
//! Every child is started with `PR_SET_PDEATHSIG = SIGKILL` and its own process group.
//! The death signal fires when the *thread* that forked the child exits, so all children
//! are forked by one spawner thread that lives as long as the runner. Every child's
//! process group is also in a global registry, which the Ctrl-C handler, the panic hook
//! and normal shutdown all kill.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use workloads::client::{Dialect, KvClient, NodeApi};

use crate::netns::{self, Hosts};
use crate::proxy::Network;
use crate::ssh::{Remote, RemoteNode, SshHosts, SshPlan};
use crate::store::RunDir;
use crate::tls::{ApiAccess, NodeTls};

/// Process groups of every child alive, for emergency cleanup.
static CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// SIGKILLs every child process group still registered, and removes the network
/// namespaces of netns mode. Safe to call from anywhere, including a panic hook or a
/// signal handler task.
pub fn kill_all_children() {
    let groups: Vec<i32> = match CHILDREN.lock() {
        Ok(mut c) => std::mem::take(&mut *c).into_iter().collect(),
        Err(p) => std::mem::take(&mut *p.into_inner()).into_iter().collect(),
    };
    for pg in groups {
        let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
    }
    crate::netns::remove_live();
}

/// The server a command drives (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// The embedded Raft key-value store (raft-node beside this executable), or any
    /// server with its command line (--raft-node PATH).
    RaftNode,
    /// etcd members, from Debian's etcd-server package (apt-get install etcd-server).
    Etcd,
}

impl TargetArg {
    pub fn name(self) -> &'static str {
        match self {
            TargetArg::RaftNode => "raft-node",
            TargetArg::Etcd => "etcd",
        }
    }

    pub fn kind(self) -> ServerKind {
        match self {
            TargetArg::RaftNode => ServerKind::RaftNode,
            TargetArg::Etcd => ServerKind::Etcd,
        }
    }
}

/// Finds `name` on PATH (or takes it as a path).
fn which(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// `--etcd PATH`, or `etcd` on PATH.
pub fn etcd_binary(given: &Path) -> Result<PathBuf> {
    which(given).with_context(|| {
        format!(
            "no etcd binary {:?} on PATH: install Debian's etcd-server package \
             (apt-get install etcd-server) or pass --etcd PATH",
            given
        )
    })
}

/// `--raft-node PATH`, or raft-node beside this executable.
pub fn raft_node_binary(given: Option<&PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("raft-node"),
    };
    if !bin.is_file() {
        bail!(
            "no server binary at {}; build it (cargo build --release) or pass --raft-node PATH",
            bin.display()
        );
    }
    Ok(bin)
}

/// On Ctrl-C or SIGTERM, kills every node and exits with the error code.
pub fn die_with_children_on_interrupt() {
    tokio::spawn(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        crate::console::say!("\ninterrupted: stopping every node");
        kill_all_children();
        std::process::exit(crate::exit::ERROR as i32);
    });
}

/// Reserves `n` free loopback ports. The listeners hold them until the caller drops them
/// (just before the nodes start), so nothing this process binds meanwhile (the proxies)
/// can take one.
pub fn free_ports(n: usize) -> Result<(Vec<u16>, Vec<std::net::TcpListener>)> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("cannot find free ports")?;
    let ports = listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect();
    Ok((ports, listeners))
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts `cmd` as a child that dies with the runner (its own process group, the death
/// signal, registered for the emergency path): for helpers such as ssh clients.
pub fn spawn_child(cmd: Command) -> std::io::Result<Child> {
    Spawner::global().spawn(cmd, None)
}

/// Unregisters a child that has been reaped.
fn forget_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(pid as i32));
}

/// Runs blocking work (an ssh round trip) without stalling the async runtime's worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The one long-lived thread that forks every child (see the module docs).
struct Spawner {
    tx: mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    fn global() -> &'static Spawner {
        static SPAWNER: std::sync::OnceLock<Spawner> = std::sync::OnceLock::new();
        SPAWNER.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("child-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("spawn the child-spawner thread");
            Spawner { tx }
        })
    }

    /// Starts `cmd`; with `netns`, inside that network namespace.
    fn spawn(&self, mut cmd: Command, netns: Option<&Path>) -> std::io::Result<Child> {
        let parent = std::process::id() as i32;
        // Opened here, entered in the child: the descriptor outlives the fork (and is
        // closed on exec).
        let ns = netns.map(File::open).transpose()?;
        let ns_fd = ns.as_ref().map(|f| f.as_raw_fd());
        // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid, setns) run
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The runner may have died between fork and prctl.
                if nix::unistd::getppid().as_raw() != parent {
                    return Err(std::io::Error::other("the runner exited"));
                }
                if let Some(fd) = ns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let (reply, rx) = mpsc::channel();
        self.tx
            .send((cmd, reply))
            .map_err(|_| std::io::Error::other("spawner thread gone"))?;
        let child = rx
            .recv()
            .map_err(|_| std::io::Error::other("spawner thread gone"))??;
        drop(ns);
        CHILDREN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(child.id() as i32);
        Ok(child)
    }
}

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub transport_port: u16,
    pub api_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// `ID=HOST:PORT` of every peer, as this node must reach it (through its proxies).
    pub peers: Vec<(u64, String)>,
    /// The address it listens on: 127.0.0.1, or its own in netns and ssh modes.
    pub host: IpAddr,
    /// The network namespace it runs in (netns mode).
    pub netns: Option<PathBuf>,
    /// The host it runs on (ssh mode): `data_dir` is then a path there, and `log` and
    /// `local_data` are where they are copied back to at the end.
    pub remote: Option<Arc<Remote>>,
    /// The node's data folder in the run's store.
    pub local_data: PathBuf,
    /// Its certificate, key and CA, when the run uses TLS (`--tls`).
    pub tls: Option<NodeTls>,
}

impl NodeSpec {
    pub fn api_addr(&self) -> String {
        format!("{}:{}", self.host, self.api_port)
    }

    fn transport_addr(&self) -> String {
        format!("{}:{}", self.host, self.transport_port)
    }
}

/// A node's process: a child of the runner, or a node on a host over ssh.
enum Proc {
    Local(Child),
    Remote(RemoteNode),
}

struct Node {
    spec: NodeSpec,
    proc: Option<Proc>,
    paused: bool,
}

/// Which server the nodes run, which decides their command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `--id --transport-port --api-port --data-dir --peers` (raft-node, or any server
    /// that takes the same flags).
    RaftNode,
    /// An etcd member: `--name n<id>`, peer and client URLs on loopback, and the whole
    /// cluster in `--initial-cluster`.
    Etcd,
}

/// The running cluster.
pub struct Cluster {
    kind: ServerKind,
    bin: PathBuf,
    extra_args: Vec<String>,
    nodes: Vec<Node>,
    /// How the runner asks the nodes who leads (plain, or TLS).
    access: ApiAccess,
}

impl Cluster {
    pub fn new(
        kind: ServerKind,
        bin: PathBuf,
        extra_args: Vec<String>,
        specs: Vec<NodeSpec>,
        access: ApiAccess,
    ) -> Cluster {
        let nodes = specs
            .into_iter()
            .map(|spec| Node {
                spec,
                proc: None,
                paused: false,
            })
            .collect();
        Cluster {
            kind,
            bin,
            extra_args,
            nodes,
            access,
        }
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// How the runner reaches the nodes' client APIs.
    pub fn access(&self) -> &ApiAccess {
        &self.access
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.spec.id).collect()
    }

    pub fn spec(&self, id: u64) -> &NodeSpec {
        &self.node(id).spec
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.spec.id == id)
            .expect("known node id")
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.spec.id == id)
            .expect("known node id")
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).proc.is_some()
    }

    /// Starts node `id` (no-op if running) with exactly the standard flags plus the extra
    /// ones, stdout and stderr appended to its log.
    pub fn start(&mut self, id: u64) -> Result<()> {
        let bin = self.bin.clone();
        let extra = self.extra_args.clone();
        let kind = self.kind;
        let node = self.node_mut(id);
        if node.proc.is_some() {
            return Ok(());
        }
        let spec = &node.spec;
        let mut args = match kind {
            ServerKind::RaftNode => raft_node_args(spec),
            ServerKind::Etcd => etcd_args(spec),
        };
        args.extend(extra);
        let proc = match &spec.remote {
            Some(r) => {
                // Python servers buffer stdout into a file: unflushed lines die with a kill.
                let mut argv = vec![
                    "env".into(),
                    "PYTHONUNBUFFERED=1".into(),
                    "RAFT_NODE_BOOTSTRAP=1".into(),
                    r.bin.clone(),
                ];
                argv.extend(args);
                let started = blocking(|| r.start_node(&argv, spawn_child));
                Proc::Remote(started.with_context(|| format!("cannot start node {id}"))?)
            }
            None => Proc::Local(start_local(&bin, &args, spec)?),
        };
        node.proc = Some(proc);
        node.paused = false;
        Ok(())
    }

    fn signal(&self, id: u64, sig: Signal) {
        let node = self.node(id);
        match &node.proc {
            Some(Proc::Local(c)) => {
                let _ = killpg(Pid::from_raw(c.id() as i32), sig);
            }
            Some(Proc::Remote(n)) => {
                let r = node.spec.remote.as_ref().expect("a remote node's host");
                let name = sig.as_str().trim_start_matches("SIG");
                if let Err(e) = blocking(|| r.signal(n.pgid, name)) {
                    crate::console::say!("warning: {e:#}");
                }
            }
            None => {}
        }
    }

    /// SIGKILL: the node loses everything not on disk.
    pub fn kill(&mut self, id: u64) {
        self.signal(id, Signal::SIGKILL);
        let node = self.node_mut(id);
        match node.proc.take() {
            Some(Proc::Local(mut c)) => {
                let _ = c.wait();
                forget_child(c.id());
            }
            Some(Proc::Remote(n)) => {
                blocking(|| n.wait(Duration::from_secs(5)));
                forget_child(n.session_pid());
            }
            None => {}
        }
        node.paused = false;
    }

    /// SIGSTOP: the node freezes mid-flight.
    pub fn pause(&mut self, id: u64) {
        if self.is_running(id) {
            self.signal(id, Signal::SIGSTOP);
            self.node_mut(id).paused = true;
        }
    }

    pub fn resume(&mut self, id: u64) {
        if self.node(id).paused {
            self.signal(id, Signal::SIGCONT);
            self.node_mut(id).paused = false;
        }
    }

    /// Whether node `id`'s process exited on its own (a crash), with its status.
    pub fn exited(&mut self, id: u64) -> Option<String> {
        let node = self.node_mut(id);
        let status = match node.proc.as_mut()? {
            Proc::Local(c) => match c.try_wait() {
                Ok(Some(status)) => status.to_string(),
                _ => return None,
            },
            Proc::Remote(n) => n.exited()?,
        };
        node.proc = None;
        Some(status)
    }

    /// Stops every node: SIGTERM, then SIGKILL for those still alive after a grace period.
    pub fn stop_all(&mut self) {
        for id in self.ids() {
            self.resume(id);
            self.signal(id, Signal::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        for id in self.ids() {
            while std::time::Instant::now() < deadline {
                if self.exited(id).is_some() || !self.is_running(id) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.kill(id);
        }
        self.fetch_remote();
    }

    /// Copies each remote node's log and data folder into the run's store.
    fn fetch_remote(&self) {
        for n in &self.nodes {
            if let Some(r) = &n.spec.remote {
                if let Err(e) = blocking(|| r.fetch(&n.spec.log, &n.spec.local_data)) {
                    crate::console::say!(
                        "warning: node {}'s log and data not copied back: {e:#}",
                        n.spec.id
                    );
                }
            }
        }
    }

    /// The last `lines` lines of node `id`'s log, or a note that it is empty.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let spec = &self.node(id).spec;
        let t = match &spec.remote {
            Some(r) => blocking(|| r.log_tail(lines)),
            None => tail(&spec.log, lines),
        };
        if t.trim().is_empty() {
            "(the log is empty: the node printed nothing to stdout or stderr)".into()
        } else {
            t
        }
    }
}

/// Starts a node here: a child of the runner, in its namespace in netns mode.
fn start_local(bin: &Path, args: &[String], spec: &NodeSpec) -> Result<Child> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("cannot open {}", spec.log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        // Python servers buffer stdout into a file: unflushed lines die with a kill.
        .env("PYTHONUNBUFFERED", "1")
        // The runner founds every cluster it starts and never wipes a node's data, so a
        // node may create its state (raft-node refuses to start without any otherwise).
        .env("RAFT_NODE_BOOTSTRAP", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Spawner::global()
        .spawn(cmd, spec.netns.as_deref())
        .with_context(|| format!("cannot start node {} ({})", spec.id, bin.display()))
}

/// raft-node's flags: `--id --transport-port --api-port --data-dir --peers`.
fn raft_node_args(spec: &NodeSpec) -> Vec<String> {
    let peers: Vec<String> = spec.peers.iter().map(|(i, a)| format!("{i}={a}")).collect();
    let mut args: Vec<String> = vec![
        "--id".into(),
        spec.id.to_string(),
        "--transport-port".into(),
        spec.transport_port.to_string(),
        "--api-port".into(),
        spec.api_port.to_string(),
        "--data-dir".into(),
        spec.data_dir.display().to_string(),
        "--peers".into(),
        peers.join(","),
    ];
    // Only when it is not the default, so servers without the flag still run in proxy
    // mode.
    if !spec.host.is_loopback() {
        args.push("--listen-addr".into());
        args.push(spec.host.to_string());
    }
    if let Some(tls) = &spec.tls {
        args.extend(tls.args());
    }
    args
}

/// An etcd member: `--name n<id>`, peer and client URLs on its address, and the whole
/// cluster in `--initial-cluster`.
fn etcd_args(spec: &NodeSpec) -> Vec<String> {
    let peer_url = format!("http://{}", spec.transport_addr());
    let client_url = format!("http://{}", spec.api_addr());
    let mut members = vec![format!("n{}={peer_url}", spec.id)];
    members.extend(spec.peers.iter().map(|(i, a)| format!("n{i}=http://{a}")));
    members.sort();
    [
        "--name",
        &format!("n{}", spec.id),
        "--data-dir",
        &spec.data_dir.display().to_string(),
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--initial-cluster",
        &members.join(","),
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "chaos-runner",
        "--logger",
        "zap",
        "--log-level",
        "warn",
    ]
    .map(String::from)
    .to_vec()
}

/// How node-to-node traffic travels, which decides how network faults are made.
#[derive(Debug, Clone)]
pub enum LinkPlan {
    /// Straight over loopback: no network faults (`bench`, etcd in proxy mode).
    Direct,
    /// One TCP proxy per directed link, each with this steady one-way delay (ms).
    Proxies { latency_ms: u64 },
    /// A network namespace per node, joined by the runner's packet switch.
    Switch {
        latency_ms: u64,
        range: Option<netns::Range>,
    },
    /// A node per host over ssh; partitions by nftables on the hosts.
    Ssh(Box<SshPlan>),
}

/// What must outlive the nodes and go after them: netns mode's namespaces and switch,
/// ssh mode's connections and firewall followers. Dropped after the cluster.
#[derive(Default)]
pub struct Hosting {
    netns: Option<Hosts>,
    ssh: Option<(Arc<SshHosts>, Vec<tokio::task::JoinHandle<()>>)>,
}

impl Hosting {
    /// One line for the console about where the nodes are, if not on loopback.
    pub fn describe(&self) -> Option<String> {
        if let Some(h) = &self.netns {
            return Some(h.describe());
        }
        let (ssh, _) = self.ssh.as_ref()?;
        let hosts: Vec<String> = ssh
            .remotes
            .values()
            .map(|r| format!("n{}={}", r.id, r.target.host))
            .collect();
        Some(format!("hosts (ssh): {}", hosts.join(", ")))
    }
}

impl Drop for Hosting {
    fn drop(&mut self) {
        if let Some((_, tasks)) = &self.ssh {
            for t in tasks {
                t.abort();
            }
        }
    }
}

/// How to bring a cluster up: which server, how many nodes, how their links are made,
/// and how long a leader may take.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub kind: ServerKind,
    pub bin: PathBuf,
    pub node_args: Vec<String>,
    pub nodes: u64,
    pub links: LinkPlan,
    pub leader_within: Duration,
    /// Mutual TLS on both ports of every node, with certificates the run makes.
    pub tls: bool,
}

/// A cluster that is up and has a leader.
pub struct Running {
    pub cluster: Cluster,
    pub net: Option<Network>,
    /// Every node's id and client API address.
    pub apis: Vec<(u64, String)>,
    /// How the runner reaches those APIs (plain, or TLS: `--tls`).
    pub access: ApiAccess,
    pub leader: u64,
    /// Namespaces and switch, or ssh hosts. Declared after `cluster`, so the nodes are
    /// gone before their namespaces or hosts are cleared.
    pub hosting: Hosting,
}

impl Running {
    /// A recording client for this cluster, speaking `dialect`.
    pub fn client(&self, dialect: Dialect) -> KvClient {
        let nodes = self
            .apis
            .iter()
            .map(|(id, addr)| NodeApi {
                id: *id,
                addr: addr.clone(),
            })
            .collect();
        KvClient::with_tls(nodes, dialect, self.access.client_config())
    }
}

/// Where each node listens and how it reaches its peers, under each [`LinkPlan`].
struct Addressing {
    net: Option<Network>,
    hosting: Hosting,
    /// Node id -> (listen address, transport port, API port).
    nodes: BTreeMap<u64, (IpAddr, u16, u16)>,
    /// Loopback ports held until the nodes start.
    reserved: Vec<std::net::TcpListener>,
}

impl Addressing {
    /// The ports every node uses in its own namespace (nothing else listens there).
    const NETNS_PORTS: (u16, u16) = (7000, 8000);

    async fn new(plan: &ClusterPlan, ids: &[u64]) -> Result<Addressing> {
        let (t, a) = Self::NETNS_PORTS;
        if let LinkPlan::Switch { latency_ms, range } = plan.links.clone() {
            let mut hosts = Hosts::create(ids, range)?;
            let (mut net, links) = Network::switched(ids);
            net.set_base_latency(latency_ms);
            hosts.start_switch(links);
            let nodes = ids
                .iter()
                .map(|&i| (i, (IpAddr::V4(hosts.addr(i)), t, a)))
                .collect();
            return Ok(Addressing {
                net: Some(net),
                hosting: Hosting {
                    netns: Some(hosts),
                    ssh: None,
                },
                nodes,
                reserved: Vec::new(),
            });
        }
        if let LinkPlan::Ssh(ssh) = &plan.links {
            let hosts = blocking(|| SshHosts::connect(ssh, &plan.bin, spawn_child))?;
            let hosts = Arc::new(hosts);
            let (net, links) = Network::switched(ids);
            let follow = crate::ssh::firewall::follow(&hosts, links);
            let nodes = ids
                .iter()
                .map(|&i| (i, (hosts.remotes[&i].target.addr, t, a)))
                .collect();
            return Ok(Addressing {
                net: Some(net),
                hosting: Hosting {
                    netns: None,
                    ssh: Some((hosts, follow)),
                },
                nodes,
                reserved: Vec::new(),
            });
        }
        let n = ids.len();
        let (ports, reserved) = free_ports(2 * n)?;
        let nodes: BTreeMap<u64, (IpAddr, u16, u16)> = ids
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, (IpAddr::from([127, 0, 0, 1]), ports[k], ports[n + k])))
            .collect();
        let net = match plan.links {
            LinkPlan::Proxies { latency_ms } => {
                let targets: Vec<(u64, std::net::SocketAddr)> = nodes
                    .iter()
                    .map(|(&i, &(host, t, _))| (i, std::net::SocketAddr::new(host, t)))
                    .collect();
                let mut net = Network::start(&targets).await?;
                net.set_base_latency(latency_ms);
                Some(net)
            }
            _ => None,
        };
        Ok(Addressing {
            net,
            hosting: Hosting::default(),
            nodes,
            reserved,
        })
    }

    /// How node `from` reaches node `to`: its proxy, or `to`'s own address.
    fn peer(&self, from: u64, to: u64) -> String {
        if let Some(addr) = self.net.as_ref().and_then(|n| n.addr(from, to)) {
            return addr.to_string();
        }
        let (host, t, _) = self.nodes[&to];
        std::net::SocketAddr::new(host, t).to_string()
    }
}

/// Makes the links (proxies, or namespaces and switch), starts every node with its data
/// and log in `run`'s folder, and waits for a leader. The one way `test` and `bench`
/// start clusters.
pub async fn start_cluster(plan: &ClusterPlan, run: &RunDir) -> Result<Running> {
    let ids: Vec<u64> = (1..=plan.nodes).collect();
    let mut addressing = Addressing::new(plan, &ids).await?;
    let specs: Vec<NodeSpec> = ids
        .iter()
        .map(|&i| {
            let (host, transport_port, api_port) = addressing.nodes[&i];
            let remote = addressing
                .hosting
                .ssh
                .as_ref()
                .map(|(h, _)| h.remotes[&i].clone());
            NodeSpec {
                id: i,
                transport_port,
                api_port,
                log: run.node_log(i),
                peers: ids
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| (j, addressing.peer(i, j)))
                    .collect(),
                host,
                netns: addressing.hosting.netns.as_ref().map(|h| h.netns_path(i)),
                remote: remote.clone(),
                local_data: run.node_dir(i),
                tls: None,
                data_dir: match &remote {
                    Some(r) => PathBuf::from(r.data()),
                    None => run.node_dir(i),
                },
            }
        })
        .collect();
    let mut specs = specs;
    let mut access = ApiAccess::default();
    if plan.tls {
        let hosts: Vec<(u64, IpAddr)> = specs.iter().map(|s| (s.id, s.host)).collect();
        let (files, run_access) = crate::tls::create(&run.path.join("tls"), &hosts)?;
        for s in &mut specs {
            s.tls = files.get(&s.id).cloned();
        }
        access = run_access;
    }
    let apis: Vec<(u64, String)> = specs.iter().map(|s| (s.id, s.api_addr())).collect();
    // Free the ports only now, so nothing this process bound meanwhile took one.
    addressing.reserved.clear();
    let mut cluster = Cluster::new(
        plan.kind,
        plan.bin.clone(),
        plan.node_args.clone(),
        specs,
        access.clone(),
    );
    for &i in &ids {
        cluster.start(i)?;
    }
    let leader = wait_for_leader(&mut cluster, plan.leader_within).await?;
    Ok(Running {
        cluster,
        net: addressing.net,
        apis,
        access,
        leader,
        hosting: addressing.hosting,
    })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One HTTP/1.1 request with a JSON answer, on a fresh connection, within a second.
async fn http_json(
    access: &ApiAccess,
    api: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Option<Value> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tokio::time::timeout(Duration::from_secs(1), access.exchange(api, req.as_bytes()))
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str::<Value>(body.trim()).ok()
}

/// Which `/kv` dialect the nodes at `apis` speak, from the first `/client/status` that
/// answers in a known one; `Err` with what the nodes said when none does.
pub async fn detect_dialect(access: &ApiAccess, apis: &[(u64, String)]) -> Result<Dialect> {
    let mut said = Vec::new();
    for (id, api) in apis {
        match status(access, api).await {
            Some(s) => match Dialect::from_status(&s) {
                Some(d) => return Ok(d),
                None => said.push(format!("node {id}: {s}")),
            },
            None => said.push(format!("node {id}: no JSON answer")),
        }
    }
    bail!(
        "cannot tell which API the server speaks: /client/status has neither \"role\" \
         (raft-node) nor \"state\" (seed-style); pass --api. The nodes said:\n{}",
        said.join("\n")
    )
}

/// Asks a node for its status: role and leader, if it speaks `/client/status`.
pub async fn status(access: &ApiAccess, api: &str) -> Option<Value> {
    http_json(access, api, "GET", "/client/status", "").await
}

/// Whether the etcd member at `api` says it is the leader.
async fn etcd_leads(access: &ApiAccess, api: &str) -> bool {
    let Some(s) = http_json(access, api, "POST", "/v3/maintenance/status", "{}").await else {
        return false;
    };
    s["leader"].is_string() && s["leader"] == s["header"]["member_id"]
}

/// The id of the node that says it leads, among `apis` (id, address).
pub async fn find_leader_of(
    kind: ServerKind,
    access: &ApiAccess,
    apis: &[(u64, String)],
) -> Option<u64> {
    for (id, api) in apis {
        let leads = match kind {
            ServerKind::RaftNode => status(access, api)
                .await
                .is_some_and(|s| Dialect::status_says_leader(&s)),
            ServerKind::Etcd => etcd_leads(access, api).await,
        };
        if leads {
            return Some(*id);
        }
    }
    None
}

/// Waits until some node leads, or fails with every node's log tail.
pub async fn wait_for_leader(cluster: &mut Cluster, within: Duration) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let apis: Vec<(u64, String)> = cluster
        .ids()
        .iter()
        .map(|&i| (i, cluster.spec(i).api_addr()))
        .collect();
    loop {
        for id in cluster.ids() {
            if let Some(status) = cluster.exited(id) {
                bail!(
                    "node {id} exited ({status}) while the cluster was starting; the end of its log:\n{}",
                    cluster.log_tail(id, 15)
                );
            }
        }
        if let Some(l) = find_leader_of(cluster.kind(), cluster.access(), &apis).await {
            return Ok(l);
        }
        if tokio::time::Instant::now() >= deadline {
            let tails: Vec<String> = cluster
                .ids()
                .iter()
                .map(|&i| {
                    format!(
                        "--- node {i} ({}):\n{}",
                        cluster.spec(i).log.display(),
                        cluster.log_tail(i, 8)
                    )
                })
                .collect();
            bail!(
                "no leader after {within:?}; the end of each node's log:\n{}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
