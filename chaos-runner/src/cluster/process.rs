//! Node processes and their clean-up: every child is started with
//! `PR_SET_PDEATHSIG = SIGKILL` and its own process group. The death signal fires when
//! the *thread* that forked the child exits, so all children are forked by one spawner
//! thread that lives as long as the runner. Every child's process group is also in a
//! global registry, which the Ctrl-C handler, the panic hook and normal shutdown all
//! kill.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;

use super::spec::NodeSpec;
use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Process groups of every child alive, for emergency cleanup.
pub(super) static CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

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

/// Finds `name` on PATH (or takes it as a path).
pub(super) fn which(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
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

/// Starts `cmd` as a child that dies with the runner (its own process group, the death
/// signal, registered for the emergency path): for helpers such as ssh clients.
pub fn spawn_child(cmd: Command) -> std::io::Result<Child> {
    Spawner::global().spawn(cmd, None)
}

/// Unregisters a child that has been reaped.
pub(super) fn forget_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(pid as i32));
}

/// Runs blocking work (an ssh round trip) without stalling the async runtime's worker.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

pub(super) type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The one long-lived thread that forks every child (see the module docs).
pub(super) struct Spawner {
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

/// Starts a node here: a child of the runner, in its namespace in netns mode.
pub(super) fn start_local(bin: &Path, args: &[String], spec: &NodeSpec) -> Result<Child> {
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
