//! The lazy disk under a node: `chaos-lazyfs` (the `lazyfs` crate) mounted on the
//! folder where the server keeps what must survive a crash, so the runner can cut the
//! power: everything the node wrote but did not fsync is lost, as on a real machine.
//!
//! Layout, for a node whose durable folder is `nodes/n1`: the data lives in
//! `nodes/n1.disk`, the mount is `nodes/n1`, removed files wait in `nodes/.n1.trash`
//! until their removal is durable, and `nodes/n1.lazyfs.log` has the layer's own words.
//! When the run ends the layer writes everything back and `n1.disk` becomes `n1` again,
//! so a run's folder looks the same with or without the layer.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use lazyfs::fs::{CrashRecord, DiskFaults, Names};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::process::Scope;

/// How long mounting or unmounting may take before it is an error.
const WITHIN: Duration = Duration::from_secs(10);

/// `chaos-lazyfs` beside this executable.
pub fn lazyfs_binary() -> Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("chaos-lazyfs");
    if !bin.is_file() {
        bail!(
            "no chaos-lazyfs at {} (the disk faults' layer); build it: cargo build --release",
            bin.display()
        );
    }
    Ok(bin)
}

/// The mount points of this process's layers, for the emergency path: Ctrl-C and the
/// panic hook SIGKILL every child, and a layer killed while a dying node holds a file
/// in it leaves a dead mount that `auto_unmount` gave up on.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Detaches every layer this process mounted and has not unmounted (the emergency path,
/// after its processes were killed).
pub fn unmount_live() {
    let points = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for m in points {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Why this machine cannot mount the layer, if it cannot (for `--nemesis` to refuse a
/// disk fault with the reason, or `all` to leave them out).
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("this machine has no /dev/fuse".into());
    }
    if unsafe { libc::geteuid() } != 0 {
        return Some("the disk faults' layer mounts FUSE as root; run as root".into());
    }
    let found = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !found {
        return Some("fusermount3 is missing: apt-get install fuse3".into());
    }
    lazyfs_binary().err().map(|e| e.to_string())
}

/// Unmounts the lazy disks of runs that are gone: mounts named `chaos-lazyfs` whose
/// process died before `auto_unmount` could take them down (they answer ENOTCONN).
/// Live runs' mounts answer, and are left alone. Returns the mount points removed.
pub fn clean_dead_mounts() -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for m in lazyfs::mounts() {
        if !m.fstype.starts_with("fuse") || m.source != "chaos-lazyfs" {
            continue;
        }
        let dead =
            matches!(fs::metadata(&m.point), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
        if dead {
            nix::mount::umount2(&m.point, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("cannot unmount {}", m.point.display()))?;
            removed.push(m.point);
        }
    }
    Ok(removed)
}

/// One node's layer: mounted before the node starts, crashed or unmounted while the
/// node is down.
/// The lazy layer a run puts under every node: its binary, and when a change of names
/// survives a power loss (`--disk-names`).
#[derive(Debug, Clone)]
pub struct Layer {
    pub bin: PathBuf,
    pub names: Names,
}

impl Layer {
    /// `chaos-lazyfs` beside this executable, if this machine can mount it.
    pub fn find(names: Names) -> Result<Layer> {
        if let Some(why) = unavailable() {
            bail!("{why}");
        }
        Ok(Layer {
            bin: lazyfs_binary()?,
            names,
        })
    }
}

pub struct LazyDisk {
    bin: PathBuf,
    names: Names,
    mount: PathBuf,
    backing: PathBuf,
    trash: PathBuf,
    report: PathBuf,
    control: PathBuf,
    log: PathBuf,
    proc: Option<Child>,
}

impl LazyDisk {
    /// The layer for the durable folder `mount` (nothing is made yet).
    pub fn new(layer: &Layer, mount: PathBuf) -> LazyDisk {
        let name = mount
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let beside = |s: String| mount.with_file_name(s);
        LazyDisk {
            bin: layer.bin.clone(),
            names: layer.names,
            backing: beside(format!("{name}.disk")),
            trash: beside(format!(".{name}.trash")),
            report: beside(format!(".{name}.crash.json")),
            control: beside(format!(".{name}.faults.json")),
            log: beside(format!("{name}.lazyfs.log")),
            mount,
            proc: None,
        }
    }

    /// Mounts the layer (a no-op if it is mounted), and waits until it is in place.
    pub fn mount(&mut self, scope: &Scope) -> Result<()> {
        if self.proc.is_some() {
            return Ok(());
        }
        // The trash holds only what the last mount kept for an undo; a crash put back
        // what it could, so what is left there is not part of the disk.
        let _ = fs::remove_dir_all(&self.trash);
        for d in [&self.mount, &self.backing, &self.trash] {
            fs::create_dir_all(d).with_context(|| format!("cannot make {}", d.display()))?;
        }
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--backing")
            .arg(&self.backing)
            .arg("--mount")
            .arg(&self.mount)
            .arg("--trash")
            .arg(&self.trash)
            .arg("--report")
            .arg(&self.report)
            .arg("--control")
            .arg(&self.control)
            .arg("--names")
            .arg(
                self.names
                    .to_possible_value()
                    .expect("no skipped value")
                    .get_name(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = scope
            .spawn(cmd)
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(WITHIN) {
            Ok(line) if line.trim() == "mounted" => {
                self.proc = Some(child);
                LIVE.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(self.mount.clone());
                Ok(())
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the disk layer did not mount on {}: {}",
                    self.mount.display(),
                    super::process::tail(&self.log, 5).trim()
                )
            }
        }
    }

    /// Signals the layer and waits (bounded) for it to exit and its mount to go.
    fn end(&mut self, sig: Signal) -> Result<()> {
        let Some(mut child) = self.proc.take() else {
            return Ok(());
        };
        let _ = kill(Pid::from_raw(child.id() as i32), sig);
        let deadline = Instant::now() + WITHIN;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // auto_unmount removes the mount once the layer is gone; a lazy unmount
        // covers the case where it did not.
        while lazyfs::is_mounted(&self.mount) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if lazyfs::is_mounted(&self.mount) {
            let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        }
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|m| m != &self.mount);
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!(
                "the disk layer of {} exited with {s}: {}",
                self.mount.display(),
                super::process::tail(&self.log, 5).trim()
            ),
            None => bail!("the disk layer of {} did not exit", self.mount.display()),
        }
    }

    /// Cuts the power (the node must be down): unsynced data and name changes are lost.
    /// The layer is unmounted; [`LazyDisk::mount`] brings it back, with cold caches.
    pub fn crash(&mut self) -> Result<CrashRecord> {
        let _ = fs::remove_file(&self.report);
        self.end(Signal::SIGUSR1)?;
        let text = fs::read_to_string(&self.report)
            .with_context(|| format!("the disk layer wrote no {}", self.report.display()))?;
        serde_json::from_str(&text).context("the disk layer's crash record")
    }

    /// Switches disk faults on or off.
    pub fn set_faults(&self, faults: DiskFaults) -> Result<()> {
        fs::write(&self.control, serde_json::to_vec(&faults)?)?;
        if let Some(c) = &self.proc {
            kill(Pid::from_raw(c.id() as i32), Signal::SIGHUP)?;
        }
        Ok(())
    }

    /// A clean end: everything held is written back, the layer unmounted, and the data
    /// moved back to the durable folder's own name. Dropping a mounted disk (a run that
    /// ended in an error) does the same.
    pub fn finish(&mut self) -> Result<()> {
        self.end(Signal::SIGTERM)?;
        if fs::remove_dir(&self.mount).is_ok() {
            fs::rename(&self.backing, &self.mount)?;
        }
        let _ = fs::remove_dir_all(&self.trash);
        let _ = fs::remove_file(&self.control);
        Ok(())
    }
}

impl Drop for LazyDisk {
    fn drop(&mut self) {
        if self.proc.is_some() {
            let _ = self.finish();
        }
    }
}
