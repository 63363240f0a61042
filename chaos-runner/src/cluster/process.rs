//! Node processes and their clean-up: every child is started with
//! `PR_SET_PDEATHSIG = SIGKILL` and its own process group. The death signal fires when
//! the *thread* that forked the child exits, so all children are forked by one spawner
//! thread that lives as long as the runner.
//!
//! Clean-up is scoped to a run: every child's process group belongs to the [`Scope`] of
//! the run that started it, and the scope kills what is left of them when the run ends,
//! by any path (a result, an error, an unwinding panic). The Ctrl-C handler and the panic
//! hook, which may not wait for the run to unwind, kill every live scope's children.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};

use super::spec::NodeSpec;
use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The process groups one run started and has not yet reaped.
#[derive(Default)]
struct Groups(Mutex<BTreeSet<i32>>);

impl Groups {
    fn kill(&self) {
        let groups = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for pg in groups {
            let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
        }
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every run's groups that are still alive, for the emergency paths only.
static LIVE: Mutex<Vec<Weak<Groups>>> = Mutex::new(Vec::new());

/// The processes of one run. Clones share it; when the last clone is dropped, every
/// child started through it that has not been reaped is SIGKILLed with its group.
#[derive(Clone)]
pub struct Scope(Arc<Groups>);

impl Scope {
    pub fn new() -> Scope {
        let groups = Arc::new(Groups::default());
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&groups));
        Scope(groups)
    }

    /// Starts `cmd` as a child that dies with the run and with the runner (its own
    /// process group, the death signal): for helpers such as ssh clients.
    pub fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        Spawner::global().spawn(cmd, None, self)
    }

    /// Unregisters a child that has been reaped (its group id may be reused).
    pub(super) fn forget(&self, pid: u32) {
        self.0
             .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(pid as i32));
    }

    fn register(&self, pid: u32) {
        self.0
             .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid as i32);
    }
}

/// SIGKILLs every child of every live run: the first step of the emergency path
/// ([`super::emergency`]). Safe to call from anywhere.
pub(super) fn kill_live_groups() {
    let live: Vec<Arc<Groups>> = LIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for groups in live {
        groups.kill();
    }
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

/// Reserves `n` free loopback ports. The listeners hold them until the caller drops them
/// (just before the nodes start), so nothing this process binds meanwhile (the proxies)
/// can take one.
///
/// The ports come from below the kernel's ephemeral range when there is room there: a
/// node that is killed and started again binds its port anew, and a port inside the
/// range could meanwhile have become the local port of any outgoing connection on the
/// machine (the runner's own clients included), so the node could not start. Ports below
/// the range are only ever taken by an explicit bind. The search starts at a point of
/// its own per process, so runners side by side rarely meet.
pub fn free_ports(n: usize) -> Result<(Vec<u16>, Vec<std::net::TcpListener>)> {
    let mut listeners = Vec::with_capacity(n);
    if let Some((low, high)) = below_ephemeral_here() {
        let span = u32::from(high - low);
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        for k in 0..span {
            if listeners.len() == n {
                break;
            }
            let port = low + ((seed.wrapping_add(k)) % span) as u16;
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                listeners.push(l);
            }
        }
    }
    while listeners.len() < n {
        listeners
            .push(std::net::TcpListener::bind("127.0.0.1:0").context("cannot find free ports")?);
    }
    let ports = listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect();
    Ok((ports, listeners))
}

/// [`below_ephemeral`] on this machine's range.
fn below_ephemeral_here() -> Option<(u16, u16)> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| below_ephemeral(&t))
}

/// The ports below the ephemeral range that `free_ports` looks in, `[low, high)`, from
/// the text of ip_local_port_range ("32768\t60999"); `None` when the range leaves too
/// little room below it.
fn below_ephemeral(range: &str) -> Option<(u16, u16)> {
    /// Below this are the well-known and registered ports that services tend to use.
    const FLOOR: u16 = 10_000;
    let high: u16 = range.split_whitespace().next()?.parse().ok()?;
    (high >= FLOOR + 1_000).then_some((FLOOR, high))
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
    fn spawn(
        &self,
        mut cmd: Command,
        netns: Option<&Path>,
        scope: &Scope,
    ) -> std::io::Result<Child> {
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
        scope.register(child.id());
        Ok(child)
    }
}

/// Starts a node here: a child of the runner, in its namespace in netns mode.
pub(super) fn start_local(
    bin: &Path,
    args: &[String],
    spec: &NodeSpec,
    scope: &Scope,
    env: &[(String, String)],
) -> Result<Child> {
    let log = open_log(spec)?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        // Python servers buffer stdout into a file: unflushed lines die with a kill.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    Spawner::global()
        .spawn(cmd, spec.netns.as_deref(), scope)
        .with_context(|| format!("cannot start node {} ({})", spec.id, bin.display()))
}

/// Node `spec`'s log, opened to append: what its process (and its setup) write to.
pub(super) fn open_log(spec: &NodeSpec) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("cannot open {}", spec.log.display()))
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn ports_come_from_below_the_ephemeral_range_and_are_held() {
        assert_eq!(below_ephemeral("32768\t60999\n"), Some((10_000, 32_768)));
        assert_eq!(below_ephemeral("1024 65535"), None, "no room below");
        assert_eq!(below_ephemeral("garbage"), None);
        let (ports, held) = free_ports(9).unwrap();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 9);
        if let Some((low, high)) = below_ephemeral_here() {
            assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?}");
        }
        for p in &ports {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", *p)).is_err(),
                "{p} is held"
            );
        }
        drop(held);
    }

    fn sleeper(scope: &Scope) -> Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        scope.spawn(cmd).expect("start sleep")
    }

    /// Waits (bounded) for `child` to end; returns the signal that ended it.
    fn ended_by(child: &mut Child) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.signal();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    #[test]
    fn a_run_scope_kills_its_own_children_when_it_ends_and_no_others() {
        let first = Scope::new();
        let second = Scope::new();
        let mut mine = sleeper(&first);
        let mut also_mine = sleeper(&first);
        let mut theirs = sleeper(&second);
        let keep = first.clone();
        drop(first);
        let held = |s: &Scope, c: &Child| s.0 .0.lock().unwrap().contains(&(c.id() as i32));
        assert!(
            held(&keep, &mine) && held(&keep, &also_mine),
            "a clone still holds the scope, so nothing was killed"
        );
        drop(keep);
        assert_eq!(ended_by(&mut mine), Some(libc::SIGKILL));
        assert_eq!(ended_by(&mut also_mine), Some(libc::SIGKILL));
        // The other run's child, forgotten as a reaped one is, outlives its scope: it
        // ends by the SIGTERM sent here, not by a SIGKILL from either scope.
        second.forget(theirs.id());
        drop(second);
        let pid = Pid::from_raw(theirs.id() as i32);
        nix::sys::signal::kill(pid, Signal::SIGTERM).expect("still there to signal");
        assert_eq!(ended_by(&mut theirs), Some(libc::SIGTERM));
    }
}
