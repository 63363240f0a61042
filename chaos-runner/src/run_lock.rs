//! Runs on this machine: each has a name (`cr1a2b3c`) and a lock file that is held for
//! as long as its process lives, so whatever a run left behind (namespaces, ssh control
//! sockets, tables and folders on hosts) can be told apart from a live run's, and
//! cleared once its lock is free, however the run ended.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::Rng;

/// Whether the runner runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Where runs keep their locks (and ssh control sockets): /run/chaos-runner for root,
/// a folder of the user's own under the temporary folder otherwise (`--hosts` needs no
/// root here).
pub fn state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/run/chaos-runner")
    } else {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        std::env::temp_dir().join(format!("chaos-runner-{uid}"))
    }
}

/// Takes an exclusive lock on `path`, held while the returned file is open: waiting for
/// it (`wait`), or `None` at once if another process holds it.
pub fn flock(path: &Path, wait: bool) -> Result<Option<File>> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let how = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on an open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), how) } == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        return Ok(None);
    }
    Err(e).with_context(|| format!("cannot lock {}", path.display()))
}

/// A run's name (`cr1a2b3c`) and the lock that says it is alive: held while this value
/// lives, free once the process is gone however it ended.
pub struct RunLock {
    run: String,
    _file: File,
}

impl RunLock {
    /// Picks a name no live run has and takes its lock.
    pub fn new() -> Result<RunLock> {
        let dir = state_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        loop {
            let run = format!("cr{:06x}", rand::thread_rng().gen_range(0..1u32 << 24));
            if let Some(f) = flock(&Self::path(&run), false)? {
                return Ok(RunLock { run, _file: f });
            }
        }
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    fn path(run: &str) -> PathBuf {
        state_dir().join(format!("{run}.lock"))
    }

    /// Whether run `run` is not alive on this machine (its lock is free or gone).
    ///
    /// Another process asking the same question holds the lock for a moment too, so a
    /// lock found taken is asked again a few times before the run counts as alive: a
    /// live run holds it for good, a probe for microseconds.
    pub fn is_dead(run: &str) -> Result<bool> {
        let path = Self::path(run);
        for attempt in 0..4 {
            if !path.exists() {
                return Ok(true);
            }
            if flock(&path, false)?.is_some() {
                return Ok(true);
            }
            if attempt < 3 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        Ok(false)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Self::path(&self.run));
    }
}

/// Whether `s` is a run name this tool makes (`cr` and six hex digits).
pub fn is_run_name(s: &str) -> bool {
    s.len() == 8 && s.starts_with("cr") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes the locks and ssh control sockets of dead runs (a run stopped by Ctrl-C or
/// SIGKILL cannot remove its own).
pub fn clean_dead_files() -> Result<()> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for e in std::fs::read_dir(&dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(run) = name.get(..8).filter(|r| is_run_name(r)) else {
            continue;
        };
        let rest = &name[8..];
        if (rest == ".lock" || rest.starts_with("-ssh-")) && RunLock::is_dead(run)? {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}
