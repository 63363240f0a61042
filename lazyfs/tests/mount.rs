//! The layer mounted for real (root, /dev/fuse and fusermount3): what a program sees
//! through it, what a power loss leaves on the backing disk, and that a remount serves
//! the disk as it is, not what a cache remembered. Skipped without root unless
//! CHAOS_REQUIRE_FUSE is set (CI sets it).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn can_mount() -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Path::new("/dev/fuse").exists()
        && Path::new("/usr/bin/fusermount3").exists();
    if !ok && std::env::var_os("CHAOS_REQUIRE_FUSE").is_some() {
        panic!("CHAOS_REQUIRE_FUSE is set but this is not root with /dev/fuse and fusermount3");
    }
    if !ok {
        eprintln!("skipped: needs root, /dev/fuse and fusermount3 (apt-get install fuse3)");
    }
    ok
}

/// One mounted layer; killed and unmounted on drop, whatever the test did.
struct Layer {
    child: Option<Child>,
    mount: PathBuf,
}

impl Layer {
    fn start(dir: &Path) -> Layer {
        Layer::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Layer {
        let mount = dir.join("mnt");
        for d in ["disk", "mnt", "trash"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_chaos-lazyfs"))
            .arg("--backing")
            .arg(dir.join("disk"))
            .arg("--mount")
            .arg(&mount)
            .arg("--trash")
            .arg(dir.join("trash"))
            .arg("--report")
            .arg(dir.join("report.json"))
            .arg("--control")
            .arg(dir.join("faults.json"))
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "mounted");
        Layer {
            child: Some(child),
            mount: mount.canonicalize().unwrap(),
        }
    }

    /// Sends `sig` and waits (bounded) for the layer to exit and the mount to go.
    fn end(&mut self, sig: i32) {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "the layer did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        while lazyfs::is_mounted(&self.mount) {
            assert!(Instant::now() < deadline, "the mount did not go");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if lazyfs::is_mounted(&self.mount) {
            let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn fsync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_power_loss_keeps_exactly_what_was_fsynced_and_a_remount_serves_the_disk() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::start(tmp.path());
    let m = layer.mount.clone();

    // Durable: written, fsynced, its folder fsynced.
    let mut a = File::create(m.join("a")).unwrap();
    a.write_all(b"durable").unwrap();
    a.sync_all().unwrap();
    fsync_dir(&m);
    // Then: more bytes in a, never synced; b never synced at all; c synced but its name
    // never made durable; a folder made and never synced.
    a.write_all(b" and more").unwrap();
    fs::write(m.join("b"), b"never synced").unwrap();
    let mut c = File::create(m.join("c")).unwrap();
    c.write_all(b"data synced, name not").unwrap();
    c.sync_all().unwrap();
    fs::create_dir(m.join("d")).unwrap();
    // An overwrite inside the synced bytes, and a read through the mount that sees it.
    a.write_all_at(b"D", 0).unwrap();
    assert_eq!(fs::read(m.join("a")).unwrap(), b"Durable and more");
    assert_eq!(names(&m), ["a", "b", "c", "d"]);
    // The backing disk has only what was synced (c's bytes, under a name not durable).
    assert_eq!(fs::read(tmp.path().join("disk/a")).unwrap(), b"durable");
    drop((a, c));

    layer.end(libc::SIGUSR1);
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["lost_bytes"], 9 + 1 + 12, "{report}");
    assert_eq!(report["files_with_lost_data"], 2, "{report}");
    assert_eq!(report["names_undone"], 3, "b, c and d: {report}");
    assert_eq!(names(&tmp.path().join("disk")), ["a"]);
    assert_eq!(fs::read(tmp.path().join("disk/a")).unwrap(), b"durable");
    assert!(names(&tmp.path().join("trash")).is_empty());

    // A new mount over the same disk serves it as it is.
    let mut again = Layer::start(tmp.path());
    assert_eq!(fs::read(again.mount.join("a")).unwrap(), b"durable");
    assert_eq!(names(&again.mount), ["a"]);
    // A clean unmount writes everything back, names included.
    let mut f = OpenOptions::new()
        .append(true)
        .open(again.mount.join("a"))
        .unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    fs::write(again.mount.join("e"), b"e").unwrap();
    // Unsynced bytes of a file removed for good have nowhere to go: the unmount drops
    // them rather than failing.
    fs::write(again.mount.join("gone"), b"never synced").unwrap();
    fs::remove_file(again.mount.join("gone")).unwrap();
    fsync_dir(&again.mount);
    again.end(libc::SIGTERM);
    assert_eq!(fs::read(tmp.path().join("disk/a")).unwrap(), b"durable!");
    assert_eq!(names(&tmp.path().join("disk")), ["a", "e"]);
}

#[test]
fn removes_and_replacing_renames_come_back_after_a_power_loss_unless_synced() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::start(tmp.path());
    let m = layer.mount.clone();
    for (name, body) in [("state", "v1"), ("old", "old"), ("gone", "gone")] {
        let mut f = File::create(m.join(name)).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        f.sync_all().unwrap();
    }
    fsync_dir(&m);
    // Removed and synced: gone for good.
    fs::remove_file(m.join("gone")).unwrap();
    fsync_dir(&m);
    // The atomic-replace pattern without the folder fsync, and a removal not synced.
    let mut t = File::create(m.join("state.tmp")).unwrap();
    t.write_all(b"v2").unwrap();
    t.sync_all().unwrap();
    fs::rename(m.join("state.tmp"), m.join("state")).unwrap();
    fs::remove_file(m.join("old")).unwrap();
    assert_eq!(fs::read(m.join("state")).unwrap(), b"v2");
    assert_eq!(names(&m), ["state"]);

    layer.end(libc::SIGUSR1);
    let disk = tmp.path().join("disk");
    assert_eq!(names(&disk), ["old", "state"]);
    assert_eq!(fs::read(disk.join("state")).unwrap(), b"v1");
    assert_eq!(fs::read(disk.join("old")).unwrap(), b"old");
}

#[test]
fn under_ext4_names_any_fsync_makes_every_earlier_name_durable() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::start_with(tmp.path(), &["--names", "ext4"]);
    let m = layer.mount.clone();
    // A folder tree and a file in it, no folder ever fsynced: the file's fsync commits
    // them all, as ext4's journal does.
    fs::create_dir_all(m.join("member/wal")).unwrap();
    let mut w = File::create(m.join("member/wal/0.wal")).unwrap();
    w.write_all(b"entry").unwrap();
    w.sync_all().unwrap();
    fs::write(m.join("after"), b"made after the last fsync").unwrap();
    layer.end(libc::SIGUSR1);
    let disk = tmp.path().join("disk");
    assert_eq!(names(&disk), ["member"]);
    assert_eq!(fs::read(disk.join("member/wal/0.wal")).unwrap(), b"entry");
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["names_undone"], 1, "only `after`: {report}");
}

#[test]
fn a_full_disk_refuses_writes_until_it_is_cleared() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::start(tmp.path());
    let m = layer.mount.clone();
    let mut f = File::create(m.join("f")).unwrap();
    fs::write(tmp.path().join("faults.json"), br#"{"full": true}"#).unwrap();
    unsafe { libc::kill(layer.child.as_ref().unwrap().id() as i32, libc::SIGHUP) };
    // The layer reads the control file when the signal arrives: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match f.write_all(b"x") {
            Err(e) => break e,
            Ok(()) => assert!(Instant::now() < deadline, "writes never refused"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert!(File::create(m.join("g")).is_err());
    fs::write(tmp.path().join("faults.json"), b"{}").unwrap();
    unsafe { libc::kill(layer.child.as_ref().unwrap().id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.write_all(b"y").is_err() {
        assert!(Instant::now() < deadline, "writes never allowed again");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(f);
    layer.end(libc::SIGTERM);
}
