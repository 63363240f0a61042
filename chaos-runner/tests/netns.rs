//! `chaos-runner test --net netns`: nodes in network namespaces joined by the runner's
//! packet switch. Needs root (CI runs as root; elsewhere these tests say they are skipped,
//! unless CHAOS_REQUIRE_NETNS is set, which turns that into a failure). Every test uses
//! its own address range and finds its run's names from the console, so tests running
//! side by side never touch each other's namespaces.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{assert_refused, can_run, chaos_test, etcd_available, raft_node, wait_for, BIN};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    can_run(root, "CHAOS_REQUIRE_NETNS", "root (for --net netns)")
}

fn test_command(store: &Path, range: &str, args: &[&str]) -> Command {
    let args: Vec<&str> = ["--net", "netns", "--net-range", range]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    chaos_test(store, &raft_node(), &args)
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The run's name (`cr1a2b3c`) from the console line naming its namespaces.
fn run_name(console: &str) -> String {
    let line = console
        .lines()
        .find(|l| l.starts_with("network: namespaces chaos-"))
        .unwrap_or_else(|| panic!("no network line in {console}"));
    let first = line["network: namespaces chaos-".len()..]
        .split("-n")
        .next()
        .unwrap();
    first.to_string()
}

/// Whether anything of run `run` or range `range` is left: namespaces, TUN devices,
/// routes, node processes.
fn leftovers(run: &str, range: &str, store: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let netns = sh("ip", &["netns", "list"]);
    left.extend(
        netns
            .lines()
            .filter(|l| l.contains(run))
            .map(|l| format!("namespace {l}")),
    );
    let links = sh("ip", &["-o", "link"]);
    left.extend(
        links
            .lines()
            .filter(|l| l.contains(run))
            .map(|l| format!("link {l}")),
    );
    let prefix = range.rsplit_once('.').unwrap().0;
    let routes = sh("ip", &["-4", "route"]);
    left.extend(
        routes
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| format!("route {l}")),
    );
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&*store.to_string_lossy()) && !cmd.contains("chaos-runner") {
            left.push(format!("process {cmd}"));
        }
    }
    left
}

fn print(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    text
}

/// Runs `chaos-runner test` on namespaces in `range`, asserts it is valid, and returns
/// its run name (what its namespaces carry) and folder.
fn valid_run(store: &Path, range: &str, args: &[&str]) -> (String, std::path::PathBuf) {
    let out = test_command(store, range, args).output().unwrap();
    let console = print(&out);
    assert_eq!(out.status.code(), Some(0), "valid expected");
    let dir = std::fs::canonicalize(store.join("latest")).unwrap();
    (run_name(&console), dir)
}

#[test]
fn every_fault_kind_runs_valid_on_namespaces_and_nothing_is_left() {
    if !root() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let range = "198.19.240.0/24";
    let kinds = "kill,pause,partition,latency,duplicate,reorder,loss,bandwidth";
    let (run, dir) = valid_run(
        store.path(),
        range,
        &[
            "--time-limit",
            "14",
            "--nemesis",
            kinds,
            "--nemesis-interval",
            "0.8",
            "--seed",
            "3",
        ],
    );
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["net"], "netns");
    assert_eq!(test["net_range"], range);
    // Each node listened on its own address in the range, not on loopback.
    let log = std::fs::read_to_string(dir.join("nodes/n2.log")).unwrap();
    assert!(log.contains("198.19.240.2:"), "{log}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let events: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "nemesis")
        .collect();
    for kind in kinds.split(',') {
        let stop = format!("stop-{kind}");
        let e = events
            .iter()
            .find(|e| e["f"] == stop.as_str())
            .unwrap_or_else(|| panic!("no {stop} in the history"));
        if ["duplicate", "reorder", "loss", "bandwidth"].contains(&kind) {
            let packets = e["value"]["packets"].as_array().unwrap();
            assert!(!packets.is_empty(), "{kind}: {e}");
            let seen: u64 = packets.iter().map(|p| p["seen"].as_u64().unwrap()).sum();
            assert!(seen > 0, "{kind} saw no packet: {e}");
        }
    }
    wait_for("nothing left", Duration::from_secs(10), || {
        leftovers(&run, range, store.path()).is_empty()
    });
}

#[test]
fn etcd_is_partitioned_on_namespaces_and_its_stale_reads_are_caught() {
    if !root() || !etcd_available() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let range = "198.19.243.0/24";
    let partitions = [
        "--target",
        "etcd",
        "--nemesis",
        "partition",
        "--partitions",
        "isolate",
        "--nemesis-interval",
        "1.5",
        "--time-limit",
        "12",
        "--concurrency",
        "5",
    ];
    let out = test_command(store.path(), range, &partitions)
        .output()
        .unwrap();
    let console = print(&out);
    assert_eq!(out.status.code(), Some(0), "linearizable reads: valid");
    assert!(console.contains("partition isolate"), "{console}");
    let run = run_name(&console);
    let mut stale = partitions.to_vec();
    stale.push("--etcd-serializable-reads");
    let out = test_command(store.path(), range, &stale).output().unwrap();
    let console = print(&out);
    assert_eq!(out.status.code(), Some(1), "serializable reads: invalid");
    wait_for("nothing left", Duration::from_secs(10), || {
        leftovers(&run, range, store.path()).is_empty()
            && leftovers(&run_name(&console), range, store.path()).is_empty()
    });
}

/// The lock under which runs set up and clear what dead runs left; waits for it.
fn hold_setup_lock() -> std::fs::File {
    std::fs::create_dir_all("/run/chaos-runner").unwrap();
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/chaos-runner/setup.lock")
        .unwrap();
    // SAFETY: flock on an open descriptor.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    lock
}

/// A namespace named like a run's, held alive by a lock this test holds: a live run as
/// far as `clean` can tell. Removed on drop.
struct FakeLiveRun {
    run: String,
    ns: String,
    _lock: std::fs::File,
}

impl FakeLiveRun {
    fn new(run: &str) -> FakeLiveRun {
        std::fs::create_dir_all("/run/chaos-runner").unwrap();
        let lock = std::fs::File::create(format!("/run/chaos-runner/{run}.lock")).unwrap();
        // SAFETY: flock on an open descriptor.
        assert_eq!(
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        let ns = format!("chaos-{run}-n1");
        assert!(Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success());
        FakeLiveRun {
            run: run.to_string(),
            ns,
            _lock: lock,
        }
    }
}

impl Drop for FakeLiveRun {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_file(format!("/run/chaos-runner/{}.lock", self.run));
    }
}

#[test]
fn a_killed_run_leaves_only_namespaces_and_clean_removes_just_those() {
    if !root() {
        return;
    }
    let live = FakeLiveRun::new("cr11fe42");
    let store = tempfile::tempdir().unwrap();
    let range = "198.19.241.0/24";
    let mut child = test_command(store.path(), range, &["--time-limit", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("network: ") || line.starts_with("leader: ") {
                let _ = tx.send(line);
            }
        }
    });
    let network = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let run = run_name(&network);
    rx.recv_timeout(Duration::from_secs(60)).expect("a leader");
    assert!(sh("ip", &["netns", "list"]).contains(&format!("chaos-{run}-n3")));
    // Runs of the other tests clear dead runs' namespaces as they start, under the
    // set-up lock: held from here to `clean`, so the namespaces this test leaves are
    // still there for `clean` to find.
    let _setup = hold_setup_lock();
    child.kill().unwrap(); // SIGKILL: no clean-up code runs.
    child.wait().unwrap();
    // Nodes die by their death signal; TUNs and the route vanish with the runner's
    // descriptors. Only the namespaces' names stay.
    wait_for(
        "nodes, links and routes gone",
        Duration::from_secs(10),
        || {
            leftovers(&run, range, store.path())
                .iter()
                .all(|l| l.starts_with("namespace "))
        },
    );
    assert_eq!(leftovers(&run, range, store.path()).len(), 3);
    // The disk layers (the default schedule has disk faults as root) unmount themselves.
    common::assert_nothing_mounted(store.path());
    let out = Command::new(BIN).arg("clean").output().unwrap();
    let said = print(&out);
    assert_eq!(out.status.code(), Some(0));
    for n in 1..=3 {
        assert!(
            said.contains(&format!("removed namespace chaos-{run}-n{n}")),
            "{said}"
        );
    }
    assert!(
        !said.contains(&live.ns),
        "a live run's namespace was removed"
    );
    assert!(sh("ip", &["netns", "list"]).contains(&live.ns));
    assert!(leftovers(&run, range, store.path()).is_empty());
}

#[test]
fn ctrl_c_removes_the_namespaces() {
    if !root() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let range = "198.19.242.0/24";
    let mut child = test_command(store.path(), range, &["--time-limit", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let network = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("network: "))
        .expect("a network line");
    let run = run_name(&network);
    lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("leader: "))
        .expect("a leader");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    wait_for("nothing left after Ctrl-C", Duration::from_secs(10), || {
        leftovers(&run, range, store.path()).is_empty()
    });
}

#[test]
fn flags_that_netns_cannot_honour_are_refused_before_anything_starts() {
    let store = tempfile::tempdir().unwrap();
    assert_refused(
        store.path(),
        [
            (
                vec!["--net", "netns", "--nemesis", "replay"],
                "only the proxies of --net proxy see",
            ),
            (vec!["--nemesis", "loss"], "only --net netns's switch sees"),
            (
                vec!["--net-range", "198.19.0.0/24"],
                "goes with --net netns",
            ),
            (
                vec!["--net", "netns", "--net-range", "198.19.0.0/31"],
                "the prefix must be 16 to 29",
            ),
            (
                vec!["--net", "netns", "--net-range", "nowhere/24"],
                "is not an IPv4 address",
            ),
        ]
        .into_iter()
        .chain(
            // Checked after the privilege, so only as root.
            // SAFETY: geteuid has no preconditions.
            (unsafe { libc::geteuid() } == 0).then(|| {
                (
                    vec!["--net", "netns", "--net-range", "127.0.0.0/24"],
                    "which this machine already uses",
                )
            }),
        ),
    );
    assert!(
        std::fs::read_dir(store.path()).unwrap().next().is_none(),
        "a refused run wrote nothing"
    );
}

#[test]
fn without_root_netns_is_refused_with_what_it_needs() {
    if !root() {
        return;
    }
    // An unprivileged user must be able to run the binaries: copy them where it can.
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("chaos-runner");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::copy(raft_node(), dir.path().join("raft-node")).unwrap();
    let store = dir.path().join("store");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["test", "--net", "netns", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("needs root (CAP_NET_ADMIN)"), "{err}");
    assert!(!store.exists(), "nothing written before the refusal");
}

/// Issue 12: TLS on namespaces. Peers dial each other's own addresses, which the run's
/// certificates name, and the switch's packet faults work under TLS as under plain TCP.
#[test]
fn tls_on_namespaces_is_valid_under_packet_faults() {
    if !root() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let range = "198.19.246.0/24";
    let (run, dir) = valid_run(
        store.path(),
        range,
        &[
            "--tls",
            "--time-limit",
            "8",
            "--nemesis",
            "partition,duplicate,reorder,loss",
            "--nemesis-interval",
            "0.8",
            "--seed",
            "4",
        ],
    );
    let log = std::fs::read_to_string(dir.join("nodes/n2.log")).unwrap();
    assert!(log.contains("198.19.246.2:"), "{log}");
    assert!(log.contains("peer_tls=true client_tls=true"), "{log}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    for kind in ["duplicate", "reorder", "loss"] {
        let stop = format!("\"stop-{kind}\"");
        assert!(history.contains(&stop), "no {stop} in the history");
    }
    wait_for("nothing left", Duration::from_secs(10), || {
        leftovers(&run, range, store.path()).is_empty()
    });
}
