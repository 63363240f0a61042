//! What the chaos-runner integration tests share.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_chaos-runner");

/// Whether `etcd` is on PATH (Debian: apt-get install etcd-server). CI installs it and sets
/// CHAOS_REQUIRE_ETCD=1, which turns a missing etcd into a failure instead of a skip.
#[allow(dead_code)] // Not every test file that includes this module runs etcd.
pub fn etcd_available() -> bool {
    let found = on_path("etcd");
    can_run(
        found,
        "CHAOS_REQUIRE_ETCD",
        "etcd on PATH (apt-get install etcd-server)",
    )
}

/// Whether `nats-server` is on PATH; with CHAOS_REQUIRE_NATS=1 (CI) a missing one fails.
#[allow(dead_code)] // Only test_cmd.rs runs NATS.
pub fn nats_available() -> bool {
    let found = on_path("nats-server");
    can_run(
        found,
        "CHAOS_REQUIRE_NATS",
        "nats-server on PATH (apt-get install nats-server)",
    )
}

/// Whether an executable `name` is in a folder of PATH.
#[allow(dead_code)]
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// The raft-node binary beside chaos-runner, built if this test runs alone.
pub fn raft_node() -> PathBuf {
    let path = Path::new(BIN).with_file_name("raft-node");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "raft-node"])
            .status()
            .unwrap();
        assert!(status.success(), "building raft-node failed");
    }
    assert!(path.is_file(), "no raft-node at {}", path.display());
    path
}

/// Runs `chaos-runner test --store STORE ARGS...` for each case and asserts it is refused
/// (exit 3) with a message containing the case's words.
#[allow(dead_code)] // Not every test file that includes this module checks refusals.
pub fn assert_refused<'a>(store: &Path, cases: impl IntoIterator<Item = (Vec<&'a str>, &'a str)>) {
    for (args, says) in cases {
        let out = Command::new(BIN)
            .arg("test")
            .arg("--store")
            .arg(store)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Polls `f` every 50 ms until it holds, failing the test after `within`.
#[allow(dead_code)]
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a test that needs `what` can run: `available`, or else a skip that says so,
/// unless the environment variable `require` is set (CI sets it), which makes the
/// missing `what` a failure.
#[allow(dead_code)]
pub fn can_run(available: bool, require: &str, what: &str) -> bool {
    if !available {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set but {what} is missing"
        );
        eprintln!("SKIPPED: needs {what}");
    }
    available
}

/// `chaos-runner test --store STORE --raft-node RAFT_NODE ARGS...`, with a gentle default
/// load (4 clients at 300 ops/s) unless ARGS set `--concurrency`.
#[allow(dead_code)]
pub fn chaos_test<A: AsRef<OsStr>>(store: &Path, raft_node: &Path, args: &[A]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("test")
        .arg("--store")
        .arg(store)
        .arg("--raft-node")
        .arg(raft_node);
    if !args.iter().any(|a| a.as_ref() == "--concurrency") {
        c.args(["--concurrency", "4", "--rate", "300"]);
    }
    c.args(args);
    c
}

/// Whether the disk faults' layer can run here (root, /dev/fuse, fusermount3), with
/// chaos-lazyfs built beside chaos-runner. CI sets CHAOS_REQUIRE_FUSE=1.
#[allow(dead_code)]
pub fn lazyfs_available() -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Path::new("/dev/fuse").exists()
        && Path::new("/usr/bin/fusermount3").exists();
    if !can_run(
        ok,
        "CHAOS_REQUIRE_FUSE",
        "root, /dev/fuse and fusermount3 (apt-get install fuse3)",
    ) {
        return false;
    }
    let path = Path::new(BIN).with_file_name("chaos-lazyfs");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "lazyfs"])
            .status()
            .unwrap();
        assert!(status.success(), "building chaos-lazyfs failed");
    }
    true
}

/// Runs `cmd` to its end and prints what it said (shown when the test fails).
#[allow(dead_code)]
pub fn output_shown(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Waits (10 s at most) until nothing is mounted under `store`: the disk layers of its
/// runs are gone, even those of a runner that was SIGKILLed.
#[allow(dead_code)] // Only the test files whose runs mount layers use it.
pub fn assert_nothing_mounted(store: &Path) {
    let store = store.canonicalize().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<String> = info
            .lines()
            .filter(|l| l.contains(store.to_string_lossy().as_ref()))
            .map(String::from)
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mounts left: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
