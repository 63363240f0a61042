//! The running cluster: each node's process, and killing, pausing, resuming and
//! restarting it.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::clock::{ClockScope, NodeClock};
use super::disk::{Layer, LazyDisk};
use super::process::{blocking, start_local, tail, Scope};
use super::servers::Server;
use super::spec::NodeSpec;
use crate::ssh::RemoteNode;
use crate::tls::ApiAccess;
use lazyfs::fs::{CrashRecord, DiskFaults};
use std::sync::Arc;

/// A node's process: a child of the runner, or a node on a host over ssh.
enum Proc {
    Local(Child),
    Remote(RemoteNode),
}

struct Node {
    spec: NodeSpec,
    proc: Option<Proc>,
    paused: bool,
    /// The lazy disk under its durable folder, when the run has disk faults.
    disk: Option<LazyDisk>,
    /// Its clock, when the run has clock faults.
    clock: Option<NodeClock>,
    /// Whether it has been started in this run: `--node-setup` runs before the first start
    /// only. (raft-node needs no flag to found a cluster: a node with no state asks the
    /// members whether it founds or rejoins.)
    started: bool,
}

/// The running cluster.
pub struct Cluster {
    server: Arc<dyn Server>,
    bin: PathBuf,
    extra_args: Vec<String>,
    nodes: Vec<Node>,
    /// How the runner asks the nodes who leads (plain, or TLS).
    access: ApiAccess,
    /// The run's processes: whatever the cluster has not reaped dies with the run.
    scope: Scope,
}

impl Cluster {
    pub fn new(
        server: Arc<dyn Server>,
        bin: PathBuf,
        extra_args: Vec<String>,
        specs: Vec<NodeSpec>,
        access: ApiAccess,
        scope: Scope,
    ) -> Cluster {
        let nodes = specs
            .into_iter()
            .map(|spec| Node {
                spec,
                proc: None,
                paused: false,
                disk: None,
                clock: None,
                started: false,
            })
            .collect();
        Cluster {
            server,
            bin,
            extra_args,
            nodes,
            access,
            scope,
        }
    }

    /// Puts a lazy disk (`chaos-lazyfs` at `bin`) under every local node's durable
    /// folder; each is mounted when its node first starts.
    pub fn with_lazy_disks(&mut self, layer: &Layer) {
        for n in &mut self.nodes {
            if n.spec.remote.is_none() {
                let dir = self.server.durable_dir(&n.spec);
                n.disk = Some(LazyDisk::new(layer, dir));
            }
        }
    }

    /// Puts every local node under a clock of its own, controlled through a file in
    /// `dir` (libfaketime): from their next start, clock faults can move them.
    pub fn with_clocks(&mut self, dir: &std::path::Path, scope: ClockScope) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for n in &mut self.nodes {
            if n.spec.remote.is_none() {
                let file = dir.join(format!("n{}.faketime", n.spec.id));
                n.clock = Some(NodeClock::new(file, scope)?);
            }
        }
        Ok(())
    }

    /// Node `id`'s clock, to move it (`None` when the run has no clock faults).
    pub fn clock(&mut self, id: u64) -> Option<&mut NodeClock> {
        self.node_mut(id).clock.as_mut()
    }

    /// Cuts the power under node `id`, which must be down: what it had not fsynced is
    /// lost. The disk comes back (cold) when the node starts again.
    pub fn crash_disk(&mut self, id: u64) -> Result<CrashRecord> {
        if self.is_running(id) {
            anyhow::bail!("node {id} is running: kill it before its disk crashes");
        }
        match self.node_mut(id).disk.as_mut() {
            Some(d) => d.crash(),
            None => anyhow::bail!("node {id} has no lazy disk"),
        }
    }

    /// Switches disk faults (full, slow fsync) on node `id`'s lazy disk.
    pub fn set_disk_faults(&mut self, id: u64, faults: DiskFaults) -> Result<()> {
        match self.node(id).disk.as_ref() {
            Some(d) => d.set_faults(faults),
            None => anyhow::bail!("node {id} has no lazy disk"),
        }
    }

    /// Where node `id` keeps what must survive a crash (on this machine).
    pub fn durable_dir(&self, id: u64) -> PathBuf {
        self.server.durable_dir(&self.node(id).spec)
    }

    /// What the runner knows of the server: its command lines, who leads, its files.
    pub fn server(&self) -> &dyn Server {
        &*self.server
    }

    /// The same, to keep beyond the cluster's borrow.
    pub fn server_ref(&self) -> Arc<dyn Server> {
        self.server.clone()
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
        let server = self.server.clone();
        let scope = self.scope.clone();
        let node = self.node_mut(id);
        if node.proc.is_some() {
            return Ok(());
        }
        if let Some(d) = node.disk.as_mut() {
            d.mount(&scope)
                .with_context(|| format!("cannot start node {id}"))?;
        }
        let spec = &node.spec;
        let found = !node.started;
        if found && spec.remote.is_none() {
            if let Some(setup) = server.setup(spec) {
                run_setup(id, &setup, spec)?;
            }
        }
        let mut args = server.args(spec, found);
        args.extend(extra);
        let proc = match &spec.remote {
            Some(r) => {
                // Python servers buffer stdout into a file: unflushed lines die with a kill.
                let mut argv = vec!["env".into(), "PYTHONUNBUFFERED=1".into()];
                argv.push(r.bin.clone());
                argv.extend(args);
                let started = blocking(|| r.start_node(&argv, |c| scope.spawn(c)));
                Proc::Remote(started.with_context(|| format!("cannot start node {id}"))?)
            }
            None => {
                let mut env = server.env();
                if let Some(c) = node.clock.as_mut() {
                    c.starting();
                    env.extend(c.env().into_iter().map(|(k, v)| (k.to_string(), v)));
                }
                let spec = &node.spec;
                Proc::Local(start_local(&bin, &args, spec, &scope, &env)?)
            }
        };
        node.proc = Some(proc);
        node.paused = false;
        node.started = true;
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
        let scope = self.scope.clone();
        let node = self.node_mut(id);
        match node.proc.take() {
            Some(Proc::Local(mut c)) => {
                let _ = c.wait();
                scope.forget(c.id());
            }
            Some(Proc::Remote(n)) => {
                blocking(|| n.wait(Duration::from_secs(5)));
                scope.forget(n.session_pid());
            }
            None => {}
        }
        node.paused = false;
    }

    /// After its data directory was emptied (`wipe`): the next start is like its first,
    /// so `--node-setup` runs again and writes what the server needs to start.
    pub fn forget_started(&mut self, id: u64) {
        self.node_mut(id).started = false;
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
        for n in &mut self.nodes {
            if let Some(d) = n.disk.as_mut() {
                if let Err(e) = d.finish() {
                    crate::console::say!("warning: node {}'s disk layer: {e:#}", n.spec.id);
                }
            }
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

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }
}

/// Runs a node's setup command (`--node-setup`) before its first start, its output
/// appended to the node's log; a failure stops the run with the log's end.
fn run_setup(id: u64, command: &str, spec: &super::spec::NodeSpec) -> Result<()> {
    std::fs::create_dir_all(&spec.data_dir)
        .with_context(|| format!("cannot create {}", spec.data_dir.display()))?;
    let log = super::process::open_log(spec)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot run node {id}'s setup"))?;
    if !status.success() {
        anyhow::bail!(
            "node {id}'s setup ({command}) failed ({status}); the end of {}:\n{}",
            spec.log.display(),
            tail(&spec.log, 10)
        );
    }
    Ok(())
}
