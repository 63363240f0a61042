//! `chaos-lazyfs`: mounts a [`lazyfs::fs::LazyFs`] over a backing folder and waits for
//! the runner's signals:
//!
//! - SIGUSR1: a power loss. Unsynced data and unsynced name changes are dropped, what was
//!   lost is written to `--report` as JSON, and the filesystem is unmounted.
//! - SIGHUP: re-read `--control` (JSON [`lazyfs::fs::DiskFaults`]: a full disk, slow
//!   fsyncs).
//! - SIGTERM or SIGINT: a clean unmount; everything held is written back first.
//!
//! It prints `mounted` on stdout once the mount is in place. The mount is made with
//! `auto_unmount`, so it goes away even if this process is killed (unless a process still
//! holds it then), and the death of its parent counts as SIGTERM.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use fuser::{Config, MountOption, SessionACL};
use lazyfs::fs::{DiskFaults, LazyFs, Names};
use nix::sys::signal::{SigSet, Signal};

#[derive(Parser)]
#[command(
    name = "chaos-lazyfs",
    about = "A FUSE filesystem that keeps unsynced writes in memory until fsync, so a \
             power loss can be simulated (SIGUSR1). Made for chaos-runner's disk faults."
)]
struct Args {
    /// The real folder the data lives in.
    #[arg(long)]
    backing: PathBuf,
    /// Where to mount (an empty folder).
    #[arg(long)]
    mount: PathBuf,
    /// An empty folder on the same file system as --backing, for removed files kept
    /// until their removal is durable.
    #[arg(long)]
    trash: PathBuf,
    /// Where to write what a power loss threw away (JSON).
    #[arg(long)]
    report: Option<PathBuf>,
    /// When a create, removal or rename survives a power loss: strict (once its folder
    /// is fsynced, as POSIX promises) or ext4 (once anything is fsynced, as ext4's
    /// journal does in practice).
    #[arg(long, value_enum, default_value = "strict")]
    names: Names,
    /// JSON disk faults, read at start and on SIGHUP: {"full": bool, "fsync_delay_ms": N}.
    #[arg(long)]
    control: Option<PathBuf>,
}

fn read_faults(path: &Option<PathBuf>) -> Result<DiskFaults> {
    let Some(p) = path else {
        return Ok(DiskFaults::default());
    };
    match std::fs::read_to_string(p) {
        Ok(t) if t.trim().is_empty() => Ok(DiskFaults::default()),
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{} is not disk faults JSON", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DiskFaults::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Ends the session; if the mount is still there (fusermount3 could not take it down,
/// e.g. a process was inside it), detaches it, so no dead mount is left behind.
fn unmount(session: fuser::BackgroundSession, mount: &std::path::Path) {
    drop(session);
    let still = lazyfs::is_mounted(mount);
    if still {
        let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // If whoever started us dies (a runner SIGKILLed), go as after SIGTERM: write back and
    // unmount, detaching if a dying node still holds a file. A layer killed outright
    // leaves its mount for fusermount3's auto_unmount, which gives up while the mount is
    // busy, and a dead mount (ENOTCONN) stays behind until `chaos-runner clean`.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("setting the death signal")?;
    for (flag, dir) in [
        ("--backing", &args.backing),
        ("--mount", &args.mount),
        ("--trash", &args.trash),
    ] {
        if !dir.is_dir() {
            bail!("{flag} {} is not a folder", dir.display());
        }
    }
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(&args.backing)?.dev() != std::fs::metadata(&args.trash)?.dev() {
        bail!("--trash must be on the same file system as --backing (removals are renames)");
    }
    if std::fs::read_dir(&args.trash)?.next().is_some() {
        bail!("--trash {} is not empty", args.trash.display());
    }
    let root = args.backing.canonicalize()?;
    let mount = args.mount.canonicalize()?;
    let fs = LazyFs::new(root, args.trash.canonicalize()?, args.names);
    fs.set_faults(read_faults(&args.control)?);

    // The signals are taken here, by sigwait; every thread the session starts inherits
    // the mask, so none of them is interrupted.
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGUSR1,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
    ] {
        signals.add(s);
    }
    signals.thread_block().context("blocking signals")?;

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("chaos-lazyfs".into()),
        MountOption::AutoUnmount,
    ];
    config.acl = SessionACL::All;
    let session = fuser::spawn_mount(fs.clone(), &mount, &config).with_context(|| {
        format!(
            "cannot mount on {} (needs /dev/fuse and fusermount3: apt-get install fuse3)",
            args.mount.display()
        )
    })?;
    println!("mounted");

    loop {
        match signals.wait().context("waiting for a signal")? {
            Signal::SIGHUP => match read_faults(&args.control) {
                Ok(f) => fs.set_faults(f),
                Err(e) => eprintln!("chaos-lazyfs: {e:#}"),
            },
            Signal::SIGUSR1 => {
                let record = fs.crash();
                // What the mount saw, for its log (the runner keeps it beside the node's).
                eprintln!(
                    "chaos-lazyfs: crashed after {}",
                    serde_json::to_string(&fs.counts())?
                );
                if let Some(p) = &args.report {
                    std::fs::write(p, serde_json::to_vec(&record)?)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                }
                unmount(session, &mount);
                return Ok(());
            }
            _ => {
                let settled = fs.settle();
                eprintln!(
                    "chaos-lazyfs: unmounted after {}",
                    serde_json::to_string(&fs.counts())?
                );
                unmount(session, &mount);
                return settled.context("writing back on unmount");
            }
        }
    }
}
