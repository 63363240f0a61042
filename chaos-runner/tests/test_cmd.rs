//! `chaos-runner test` end to end: real raft-node clusters, real faults, verdicts, and no
//! process left behind. Every wait polls a condition against a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{chaos_test, output_shown, raft_node, wait_for, BIN};

/// The server under test.
#[derive(Clone, Copy)]
enum Server {
    RaftNode,
    /// `tests/fixtures/seed-node`: raft-node behind a shim that speaks the seed-style API
    /// (no compare-and-set, `"state": "Leader"`, `leader_hint`).
    Seed,
}

fn command_for(server: Server, store: &Path, args: &[&str]) -> Command {
    match server {
        Server::RaftNode => chaos_test(store, &raft_node(), args),
        Server::Seed => {
            let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-node");
            let bin = format!("--node-arg=--raft-node-bin={}", raft_node().display());
            let args: Vec<&str> = std::iter::once(bin.as_str())
                .chain(args.iter().copied())
                .collect();
            chaos_test(store, &shim, &args)
        }
    }
}

fn run(store: &Path, args: &[&str]) -> Output {
    run_for(Server::RaftNode, store, args)
}

fn run_for(server: Server, store: &Path, args: &[&str]) -> Output {
    output_shown(command_for(server, store, args))
}

fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).unwrap()
}

fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Node processes (raft-node, the seed shim, etcd) whose command line mentions `needle`
/// (the run's store folder).
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("chaos-runner") {
            out.push((pid, cmd));
        }
    }
    out
}

fn assert_no_nodes_left(store: &Path) {
    let needle = store.to_string_lossy().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node processes outlived the runner: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills, pauses and partitions aimed at the leader, every 2 s for 15 s: valid, with every
/// fault recorded; returns the run folder.
fn valid_under_kill_pause_and_partition(server: Server, store: &Path) -> PathBuf {
    let out = run_for(
        server,
        store,
        &[
            "--time-limit",
            "15",
            "--nemesis",
            "kill,pause,partition",
            "--nemesis-interval",
            "2",
            "--nemesis-targets",
            "leader",
            "--op-timeout",
            "1",
            "--seed",
            "7",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: VALID"), "{stdout}");
    assert!(
        stdout.contains("replay:  chaos-runner test") && stdout.contains("--seed 7"),
        "{stdout}"
    );
    let run_dir = latest(store);
    let results = json(&run_dir.join("results.json"));
    assert_eq!(results["verdict"], "valid");
    assert!(results["counts"]["ok"].as_u64().unwrap() >= 50);
    // The phases after the time limit, in order, each no earlier than the one before.
    let phases = results["after_time_limit_s"].as_array().unwrap();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "clients done",
            "recovered",
            "final reads",
            "nodes stopped",
            "checked"
        ]
    );
    let at: Vec<f64> = phases.iter().map(|p| p["s"].as_f64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    let h = history(&run_dir);
    let faults: Vec<&str> = h
        .iter()
        .filter(|e| e["type"] == "nemesis")
        .filter_map(|e| e["f"].as_str())
        .collect();
    for f in [
        "start-kill",
        "stop-kill",
        "start-pause",
        "stop-pause",
        "start-partition",
        "stop-partition",
    ] {
        assert!(faults.contains(&f), "no {f} in {faults:?}");
    }
    assert!(h
        .iter()
        .any(|e| e["type"] == "nemesis" && e["value"]["nodes"].is_array()));
    let test = json(&run_dir.join("test.json"));
    assert_eq!(test["seed"], 7);
    assert!(run_dir.join("nodes/n1.log").is_file());
    // The runner's own log: the console's lines, stamped, and every fault.
    let log = std::fs::read_to_string(run_dir.join("runner.log")).unwrap();
    for said in [
        "leader: node",
        "fault started (Foreground",
        "fault stopped",
        "verdict: VALID",
    ] {
        assert!(log.contains(said), "no {said:?} in runner.log:\n{log}");
    }
    assert_no_nodes_left(store);
    run_dir
}

#[test]
fn three_nodes_under_kill_pause_and_partition_are_valid() {
    let store = tempfile::tempdir().unwrap();
    let run_dir = valid_under_kill_pause_and_partition(Server::RaftNode, store.path());
    let h = history(&run_dir);
    let kinds: Vec<&str> = h.iter().filter_map(|e| e["type"].as_str()).collect();
    for k in ["invoke", "ok", "fail", "info", "nemesis"] {
        assert!(kinds.contains(&k), "no {k} event in the history");
    }
    assert_eq!(json(&run_dir.join("test.json"))["api"], "raft-node");
}

#[test]
fn a_seed_style_server_under_kill_pause_and_partition_is_valid() {
    let store = tempfile::tempdir().unwrap();
    let run_dir = valid_under_kill_pause_and_partition(Server::Seed, store.path());
    let test = json(&run_dir.join("test.json"));
    assert_eq!(test["api"], "seed", "the dialect is detected");
    assert_eq!(test["mix"]["cas"], 0, "no cas against a server without it");
    let h = history(&run_dir);
    assert!(h.iter().all(|e| e["f"] != "cas"));
    let writes = h
        .iter()
        .filter(|e| e["type"] == "ok" && e["f"] == "write")
        .count();
    assert!(writes > 10, "{writes} ok writes");
}

#[test]
fn cas_against_a_seed_style_server_is_a_clear_error() {
    let store = tempfile::tempdir().unwrap();
    let out = run_for(
        Server::Seed,
        store.path(),
        &["--time-limit", "5", "--mix", "read=50,cas=50"],
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no compare-and-set"), "{stderr}");
    assert_no_nodes_left(store.path());
}

#[test]
fn five_nodes_under_majorities_ring_partitions_are_valid() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--nodes",
            "5",
            "--time-limit",
            "9",
            "--nemesis",
            "partition",
            "--partitions",
            "majorities-ring",
            "--nemesis-interval",
            "2",
            "--workload",
            "kv",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let h = history(&latest(store.path()));
    let rings = h
        .iter()
        .filter(|e| e["f"] == "start-partition" && e["value"]["shape"] == "majorities-ring")
        .count();
    assert!(rings >= 2, "{rings} majorities-ring partitions");
    assert_no_nodes_left(store.path());
}

fn start_long_run(store: &Path) -> Child {
    start_long_run_of(Server::RaftNode, store)
}

fn start_long_run_of(server: Server, store: &Path) -> Child {
    command_for(
        server,
        store,
        &["--time-limit", "120", "--nemesis-interval", "1"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

fn wait_until_running(store: &Path) {
    wait_for("the test to be under way", Duration::from_secs(60), || {
        std::fs::canonicalize(store.join("latest"))
            .ok()
            .and_then(|d| std::fs::read_to_string(d.join("history.jsonl")).ok())
            .is_some_and(|h| h.lines().count() > 100)
    });
    assert!(
        !processes_mentioning(&store.to_string_lossy()).is_empty(),
        "nodes are running"
    );
}

#[test]
fn ctrl_c_stops_every_node() {
    let store = tempfile::tempdir().unwrap();
    let mut child = start_long_run(store.path());
    wait_until_running(store.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut status = None;
    wait_for(
        "the runner to exit after SIGINT",
        Duration::from_secs(20),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    assert_eq!(status.unwrap().code(), Some(3));
    assert_no_nodes_left(store.path());
    common::assert_nothing_mounted(store.path());
}

#[test]
fn nodes_die_with_a_killed_runner() {
    for server in [Server::RaftNode, Server::Seed] {
        let store = tempfile::tempdir().unwrap();
        let mut child = start_long_run_of(server, store.path());
        wait_until_running(store.path());
        child.kill().unwrap(); // SIGKILL: no cleanup code runs; the death signal must do it.
        child.wait().unwrap();
        assert_no_nodes_left(store.path());
        // The disk layers (as root the rota has disk faults) unmount themselves too.
        common::assert_nothing_mounted(store.path());
    }
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let store = tempfile::tempdir().unwrap();
    let schedule = |seed: &str| {
        let out = run(
            store.path(),
            &[
                "--time-limit",
                "4",
                "--nemesis-interval",
                "0.4",
                "--seed",
                seed,
                "--min-ok",
                "1",
            ],
        );
        assert_ne!(out.status.code(), Some(3), "harness error");
        assert_ne!(out.status.code(), Some(1), "invalid");
        json(&latest(store.path()).join("test.json"))["schedule"].clone()
    };
    let a = schedule("1234");
    assert!(a.as_array().unwrap().len() >= 4, "{a}");
    assert_eq!(a, schedule("1234"));
    assert_ne!(a, schedule("1235"));
    assert_no_nodes_left(store.path());
}

#[test]
fn bad_flags_and_missing_binaries_are_errors() {
    let out = Command::new(BIN)
        .args(["test", "--nodes", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = Command::new(BIN)
        .args(["test", "--raft-node", "/no/such/binary"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server binary"));
    let out = Command::new(BIN)
        .args([
            "test",
            "--raft-node",
            raft_node().to_str().unwrap(),
            "--nemesis",
            "meteor",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("meteor"));
}

/// Clock faults move the nodes' clocks through libfaketime: raft-node (whose correctness
/// needs no clock) and the seed-style server (a Python shim) stay valid, each fault's
/// clocks are recorded, and a Go server is refused with the reason.
#[test]
fn clock_faults_reach_libc_servers_and_go_servers_refuse_them() {
    if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1").is_file() {
        assert_ne!(
            std::env::var("CHAOS_REQUIRE_FAKETIME").as_deref(),
            Ok("1"),
            "CI requires libfaketime (apt-get install libfaketime)"
        );
        return;
    }
    let store = tempfile::tempdir().unwrap();
    for server in [Server::RaftNode, Server::Seed] {
        let out = run_for(
            server,
            store.path(),
            &[
                "--nemesis",
                "clock-jump,clock-rate,clock-strobe",
                "--nemesis-interval",
                "1",
                "--time-limit",
                "8",
                "--seed",
                "11",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "clock faults broke a valid run");
        let run_dir = latest(store.path());
        let h = history(&run_dir);
        for kind in ["clock-jump", "clock-rate", "clock-strobe"] {
            let start = h
                .iter()
                .find(|e| e["f"] == format!("start-{kind}"))
                .unwrap_or_else(|| panic!("no {kind} in the history"));
            let clocks = start["value"]["clocks"].as_array().unwrap();
            assert!(!clocks.is_empty(), "{start}");
        }
        // The report draws them, with what each did to the clocks.
        let report = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
        assert!(report.contains("clock-rate n"), "no clock-rate lane label");
        // Every clock is back at real time: the control files say so.
        for f in std::fs::read_dir(run_dir.join("clocks")).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(text.starts_with("+0.000000 x1.000000"), "{text}");
        }
        assert_no_nodes_left(store.path());
    }
    if common::etcd_available() {
        let out = run_for(
            Server::RaftNode,
            store.path(),
            &[
                "--target",
                "etcd",
                "--nemesis",
                "clock-jump",
                "--time-limit",
                "5",
            ],
        );
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("vDSO"), "{err}");
    }
}

/// The number before `what` in a set's counts line ("12 lost, 0 unexpected, ...").
fn count_of(counts: &str, what: &str) -> u64 {
    let before = counts
        .split(", ")
        .flat_map(|part| part.split(": "))
        .find_map(|part| part.strip_suffix(&format!(" {what}")));
    before
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {what} count in {counts:?}"))
}

/// NATS JetStream started by the runner: its set is valid under kills and pauses (the
/// page cache outlives a process), and a power loss of every node is caught losing the
/// acknowledged adds (Debian's 2.9.10 does not fsync before it acknowledges).
#[test]
fn nats_sets_survive_kills_and_lose_acknowledged_adds_to_a_power_loss() {
    if !common::nats_available() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let nats = |extra: &[&str]| {
        let mut args = vec!["--target", "nats", "--workload", "set", "--seed", "5"];
        args.extend_from_slice(extra);
        run_for(Server::RaftNode, store.path(), &args)
    };
    let out = nats(&[
        "--nemesis",
        "kill,pause",
        "--nemesis-interval",
        "2",
        "--time-limit",
        "10",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "NATS under kills should be valid"
    );
    let run_dir = latest(store.path());
    assert_eq!(json(&run_dir.join("test.json"))["api"], "nats");
    let h = history(&run_dir);
    assert!(h.iter().any(|e| e["f"] == "start-kill"));
    assert!(h.iter().any(|e| e["f"] == "add" && e["type"] == "ok"));
    let reads = h
        .iter()
        .filter(|e| e["f"] == "read-all" && e["type"] == "ok");
    assert!(reads
        .clone()
        .any(|e| e["value"].as_array().is_some_and(|v| !v.is_empty())));
    let results = json(&run_dir.join("results.json"));
    let counts = results["checker"]["counts"].as_str().unwrap().to_string();
    assert_eq!(count_of(&counts, "lost"), 0, "{counts}");
    assert_no_nodes_left(store.path());

    if !common::lazyfs_available() {
        return;
    }
    let out = nats(&[
        "--nemesis",
        "lose-unsynced",
        "--nemesis-targets",
        "every",
        "--time-limit",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(1), "the power loss must lose adds");
    let results = json(&latest(store.path()).join("results.json"));
    let counts = results["checker"]["counts"].as_str().unwrap().to_string();
    assert!(count_of(&counts, "lost") > 0, "{counts}");
    assert_no_nodes_left(store.path());
}

/// etcd started by the runner: valid under kills and pauses; its documented stale
/// serializable reads are caught (a positive control on a system we did not write).
#[test]
fn etcd_is_valid_under_kill_and_pause_and_its_serializable_reads_are_caught() {
    if !common::etcd_available() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let etcd = |extra: &[&str]| {
        let mut args = vec![
            "--target",
            "etcd",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "3",
        ];
        args.extend_from_slice(extra);
        run_for(Server::RaftNode, store.path(), &args)
    };
    let out = etcd(&["--time-limit", "10"]);
    assert_eq!(out.status.code(), Some(0), "etcd should be valid");
    let run_dir = latest(store.path());
    let test = json(&run_dir.join("test.json"));
    assert_eq!(test["api"], "etcd");
    // In proxy mode etcd's links cannot be cut: kills, pauses and the disk faults (those
    // of the lazy layer only where it can be mounted).
    let expected: Vec<&str> = if common::lazyfs_available() {
        vec![
            "kill",
            "pause",
            "lose-unsynced",
            "disk-full",
            "slow-fsync",
            "corrupt",
        ]
    } else {
        vec!["kill", "pause", "corrupt"]
    };
    assert_eq!(test["nemesis"], serde_json::json!(expected));
    let h = history(&run_dir);
    assert!(h.iter().any(|e| e["f"] == "start-kill"));
    assert!(h.iter().any(|e| e["f"] == "cas" && e["type"] == "ok"));
    assert_no_nodes_left(store.path());

    // Full speed: 10 / 10 caught in 5 s runs (at 300 ops/s, 3 / 10 in 10 s).
    let out = etcd(&[
        "--etcd-serializable-reads",
        "--concurrency",
        "8",
        "--time-limit",
        "5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stale serializable reads must be caught"
    );
    assert_no_nodes_left(store.path());

    // A queue: one key per element, read back in order of creation.
    let out = etcd(&[
        "--workload",
        "queue",
        "--nemesis",
        "kill",
        "--time-limit",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0), "etcd's queue should be valid");
    let h = history(&latest(store.path()));
    assert!(h.iter().any(|e| e["f"] == "read-all"
        && e["type"] == "ok"
        && e["value"].as_array().is_some_and(|v| v.len() > 1)));
    assert_no_nodes_left(store.path());

    // Transactions: a read of every key, then a write guarded on their revisions.
    let out = etcd(&["--workload", "list-append", "--time-limit", "5"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "etcd's transactions should be valid"
    );
    let results = json(&latest(store.path()).join("results.json"));
    assert_eq!(results["checker"]["txn"]["workload"], "list-append");
    assert!(results["checker"]["txn"]["committed"].as_u64().unwrap() > 20);
    // Serializable reads in read-only transactions: a consistent but stale state, which
    // breaks strong session serializability but not serializability (5 of 5 by hand).
    let out = etcd(&[
        "--workload",
        "list-append",
        "--etcd-serializable-reads",
        "--concurrency",
        "8",
        "--time-limit",
        "5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stale transactions must be caught"
    );
    let results = json(&latest(store.path()).join("results.json"));
    assert!(results["checker"]["txn"]["strongest_satisfied"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "serializable" || m == "strong-session-serializable"));
    assert_no_nodes_left(store.path());

    let out = etcd(&["--time-limit", "5", "--nemesis", "partition"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("per-link proxies"));
}

/// Every message fault on a real cluster: the node stays correct (valid), and the stop
/// events list what was dropped, held, released, duplicated and replayed, each with the
/// request's path and the time the original crossed the link.
#[test]
fn message_faults_on_a_real_cluster_are_recorded_and_valid() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--time-limit",
            "10",
            "--nemesis",
            "duplicate,reorder,replay,drop",
            "--nemesis-interval",
            "1",
            "--nemesis-targets",
            "leader",
            "--seed",
            "11",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let h = history(&latest(store.path()));
    let mut actions = std::collections::BTreeSet::new();
    for e in h.iter().filter(|e| e["type"] == "nemesis") {
        let f = e["f"].as_str().unwrap();
        let messages = e["value"]["messages"].as_array();
        if f.starts_with("start-") {
            assert!(messages.is_none(), "nothing happened at the start: {e}");
            assert!(!e["value"]["links"].as_array().unwrap().is_empty());
            continue;
        }
        for m in messages.into_iter().flatten() {
            assert_eq!(m["path"], "/raft", "{m}");
            assert_eq!(m["method"], "POST");
            assert!(m["bytes"].as_u64().unwrap() > 0);
            assert!(m["seen"].as_u64().unwrap() <= m["at"].as_u64().unwrap());
            actions.insert(m["action"].as_str().unwrap().to_string());
        }
    }
    for a in ["dropped", "held", "released", "duplicated", "replayed"] {
        assert!(actions.contains(a), "no request {a}: {actions:?}");
    }
}

/// The default schedule is a search: its layers run, overlapping, and the record says so.
#[test]
fn the_default_schedule_is_a_search_in_layers() {
    let store = tempfile::tempdir().unwrap();
    let out = run(store.path(), &["--time-limit", "8", "--seed", "21"]);
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let test = json(&latest(store.path()).join("test.json"));
    assert_eq!(test["schedule_mode"], "search");
    let plan: Vec<String> = test["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for layer in ["(weather)", "(messages)"] {
        assert!(
            plan.iter().any(|s| s.contains(layer)),
            "no {layer} in {plan:?}"
        );
    }
    assert!(
        plan.iter()
            .any(|s| !s.contains("(weather)") && !s.contains("(messages)")),
        "a foreground fault: {plan:?}"
    );
    let results = json(&latest(store.path()).join("results.json"));
    let starts: Vec<f64> = results["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["start_s"].as_f64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "in order: {starts:?}"
    );
    assert_no_nodes_left(store.path());
}

/// A staggered kill of every node takes them down one by one and brings them back in the
/// order its record gives; the run stays valid.
#[test]
fn staggered_kills_restart_nodes_in_the_recorded_order() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--time-limit",
            "8",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "every",
            "--staggered-kills",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "5",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let run_dir = latest(store.path());
    let h = history(&run_dir);
    let steps = |f: &str, field: &str| -> Vec<Vec<(u64, u64)>> {
        h.iter()
            .filter(|e| e["type"] == "nemesis" && e["f"] == f)
            .map(|e| {
                e["value"][field]
                    .as_array()
                    .unwrap_or_else(|| panic!("{f} has no {field}: {e}"))
                    .iter()
                    .map(|s| (s["node"].as_u64().unwrap(), s["at_ms"].as_u64().unwrap()))
                    .collect()
            })
            .collect()
    };
    let kills = steps("start-kill", "kill_order");
    let restarts = steps("stop-kill", "restart_order");
    assert!(kills.len() >= 2, "{kills:?}");
    assert_eq!(kills.len(), restarts.len());
    for order in kills.iter().chain(&restarts) {
        let mut nodes: Vec<u64> = order.iter().map(|s| s.0).collect();
        assert!(order.windows(2).all(|w| w[0].1 < w[1].1), "{order:?}");
        nodes.sort_unstable();
        assert_eq!(nodes, [1, 2, 3], "every node once: {order:?}");
    }
    // Each node logs its recovery at every start: the k-th restart of all three nodes
    // happened in the recorded order (restarts are at least 50 ms apart).
    let started_at = |n: u64| -> Vec<String> {
        std::fs::read_to_string(run_dir.join(format!("nodes/n{n}.log")))
            .unwrap()
            .lines()
            .filter(|l| l.contains("recovered durable state"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let starts: Vec<Vec<String>> = (1..=3).map(started_at).collect();
    for (k, order) in restarts.iter().enumerate() {
        let mut seen: Vec<(String, u64)> = (1..=3u64)
            .map(|n| (starts[n as usize - 1][k + 1].clone(), n))
            .collect();
        seen.sort();
        let seen: Vec<u64> = seen.into_iter().map(|(_, n)| n).collect();
        let planned: Vec<u64> = order.iter().map(|s| s.0).collect();
        assert_eq!(seen, planned, "restart {k}: logs {starts:?}");
    }
    assert_no_nodes_left(store.path());
}

/// Issue 30: `wipe` deletes a node's whole data directory (a lost disk) and restarts it
/// on nothing; raft-node rejoins by itself and the run stays valid. Each wipe is recorded
/// with what was lost, and the wiped node's log says it rejoined.
#[test]
fn wiped_nodes_rejoin_and_the_run_stays_valid() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--time-limit",
            "8",
            "--nemesis",
            "wipe",
            "--nemesis-targets",
            "every",
            "--staggered-kills",
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let run_dir = latest(store.path());
    let starts: Vec<Value> = history(&run_dir)
        .into_iter()
        .filter(|e| e["type"] == "nemesis" && e["f"] == "start-wipe")
        .collect();
    // A wipe of every node is a staggered kill underneath: its order is recorded.
    assert!(
        starts.iter().any(|e| e["value"]["kill_order"]
            .as_array()
            .is_some_and(|o| o.len() == 3)),
        "{starts:?}"
    );
    // Per wipe, the nodes that lost their disks.
    let wipes: Vec<Vec<u64>> = starts
        .into_iter()
        .map(|e| {
            e["value"]["wiped"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter(|w| w["files"].as_u64() > Some(0))
                .map(|w| w["node"].as_u64().unwrap())
                .collect()
        })
        .collect();
    let lost: usize = wipes.iter().map(Vec::len).sum();
    assert!(lost >= 2, "at least two disks were lost: {wipes:?}");
    // Each rejoined, said so, and caught up, but perhaps the last wipe's: the run may
    // stop while those nodes still wait for the others.
    let rejoined: usize = (1..=3)
        .map(|n| {
            std::fs::read_to_string(run_dir.join(format!("nodes/n{n}.log")))
                .unwrap()
                .matches("rejoined with an empty disk")
                .count()
        })
        .sum();
    let last = wipes
        .iter()
        .rev()
        .find(|w| !w.is_empty())
        .map_or(0, Vec::len);
    assert!(
        rejoined >= lost - last,
        "{rejoined} rejoins logged for {lost} lost disks: {wipes:?}"
    );
    let page = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        page.contains("lost the disk of n"),
        "the report names the lost disks"
    );
    assert_no_nodes_left(store.path());
}

/// Issue 30: the `membership` fault removes voters (sometimes two at once, the second
/// refused), moves leadership, and brings removed nodes back as new servers; every
/// change is in the history and on the report, and the run stays valid. etcd is refused
/// the fault with the reason.
#[test]
fn membership_changes_are_recorded_and_the_run_stays_valid() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--time-limit",
            "10",
            "--nemesis",
            "membership",
            "--nemesis-interval",
            "1",
            "--seed",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let run_dir = latest(store.path());
    let changes: Vec<Value> = history(&run_dir)
        .into_iter()
        .filter(|e| e["type"] == "nemesis" && e["f"] == "stop-membership")
        .flat_map(|e| {
            e["value"]["members"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let done = |what: &str| {
        changes
            .iter()
            .filter(|c| c["change"] == what && c["outcome"] == "ok")
            .count()
    };
    assert!(done("remove") >= 1, "{changes:?}");
    // Every removal that took effect was undone: the node came back and was promoted.
    assert_eq!(done("promote"), done("remove"), "{changes:?}");
    assert_eq!(done("add-learner"), done("remove"), "{changes:?}");
    // A raced second removal, if any, was refused while the first was in flight.
    assert!(
        changes.iter().all(|c| c["change"] != "remove"
            || c["outcome"] == "ok"
            || c["outcome"]
                .as_str()
                .unwrap()
                .contains("one change at a time")),
        "{changes:?}"
    );
    let page = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        page.contains("membership: remove n"),
        "no membership lane label"
    );
    assert_no_nodes_left(store.path());
    if common::etcd_available() {
        let out = run(
            store.path(),
            &[
                "--target",
                "etcd",
                "--nemesis",
                "membership",
                "--time-limit",
                "5",
            ],
        );
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/cluster/members"), "{err}");
    }
}

/// Issue 12: `--tls` runs the cluster with mutual TLS on both ports, with certificates the
/// run makes; the proxies' byte faults (partition, latency) and kills work through it,
/// and the faults that need plain HTTP are refused with the reason.
#[test]
fn tls_runs_are_valid_under_byte_faults() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--tls",
            "--time-limit",
            "10",
            "--nemesis",
            "partition,latency,kill",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "5",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "verdict should be valid");
    let run_dir = latest(store.path());
    for f in [
        "ca.pem",
        "client.pem",
        "client-key.pem",
        "n1.pem",
        "n3-key.pem",
    ] {
        assert!(run_dir.join("tls").join(f).is_file(), "no tls/{f}");
    }
    // Each node said both its ports speak TLS.
    for id in 1..=3 {
        let log = std::fs::read_to_string(run_dir.join(format!("nodes/n{id}.log"))).unwrap();
        assert!(
            log.contains("peer_tls=true client_tls=true"),
            "node {id} did not serve TLS:\n{log}"
        );
    }
    let results = json(&run_dir.join("results.json"));
    assert!(results["counts"]["ok"].as_u64().unwrap() >= 50);
    let h = history(&run_dir);
    for f in ["start-partition", "start-latency", "start-kill"] {
        assert!(
            h.iter().any(|e| e["type"] == "nemesis" && e["f"] == f),
            "no {f}"
        );
    }
    assert_no_nodes_left(store.path());
    common::assert_refused(
        store.path(),
        [
            (vec!["--tls", "--nemesis", "duplicate"], "encrypted bytes"),
            (vec!["--tls", "--target", "etcd"], "raft-node only"),
        ],
    );
}

/// Issue 14: `--fail-fast` checks the history while the run goes and stops the load at
/// the first anomaly (a node serving stale reads); the run still heals, reads, checks
/// and reports, and says in results.json what stopped it. A healthy run is never stopped.
#[test]
fn fail_fast_stops_the_load_at_the_first_anomaly_and_only_then() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--fail-fast",
            "--node-arg=--unsafe-bug=stale-read",
            "--time-limit",
            "30",
            "--seed",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "invalid expected");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fail-fast: the online checker found"),
        "{stdout}"
    );
    let run_dir = latest(store.path());
    let results = json(&run_dir.join("results.json"));
    let ff = &results["fail_fast"];
    assert!(
        ff["what"]
            .as_str()
            .unwrap()
            .contains("but the register held"),
        "{ff}"
    );
    let (returned, detected) = (
        ff["returned_s"].as_f64().unwrap(),
        ff["detected_s"].as_f64().unwrap(),
    );
    assert!(returned <= detected, "{ff}");
    // The load ended when the anomaly was found, not at the time limit.
    assert!(results["duration_s"].as_f64().unwrap() < 30.0, "{results}");
    assert!(run_dir.join("report.html").is_file());
    assert_eq!(results["checker"]["verdict"], "invalid");
    // Which node served the stale read: in every completion, the counterexample, the
    // console line and the report.
    let completions: Vec<Value> = history(&run_dir)
        .into_iter()
        .filter(|e| e["type"] == "ok" || e["type"] == "fail")
        .collect();
    assert!(
        completions.iter().all(|e| e["node"].is_u64()),
        "a completion without its node"
    );
    let node = &results["checker"]["failures"][0]["op"]["route"]["node"];
    assert!(node.is_u64(), "{results}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("served by node {node}")),
        "{stdout}"
    );
    let page = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(page.contains(&format!("served by node {node}")));
    assert_no_nodes_left(store.path());

    let healthy = tempfile::tempdir().unwrap();
    let out = run(
        healthy.path(),
        &["--fail-fast", "--time-limit", "8", "--seed", "9"],
    );
    assert_eq!(out.status.code(), Some(0), "valid expected");
    let results = json(&latest(healthy.path()).join("results.json"));
    assert!(results.get("fail_fast").is_none(), "{results}");
    assert!(results["duration_s"].as_f64().unwrap() >= 8.0, "{results}");
}

/// The set workload end to end: adds and whole-set reads against raft-node's list
/// endpoints under kills of every node, judged by the set checker, whose counts reach
/// results.json; every set used is read once more at the end.
#[test]
fn the_set_and_queue_workloads_are_checked_element_by_element() {
    let store = tempfile::tempdir().unwrap();
    let out = run_for(
        Server::RaftNode,
        store.path(),
        &[
            "--workload",
            "set",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "every",
            "--nemesis-interval",
            "1",
            "--time-limit",
            "6",
            "--seed",
            "11",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "the healthy node is valid");
    let run = latest(store.path());
    let results = json(&run.join("results.json"));
    assert_eq!(results["checker"]["model"], "set", "{results}");
    let summary = results["checker_summary"].as_str().unwrap();
    assert!(
        summary.contains("acknowledged adds: 0 lost, 0 unexpected, 0 duplicated, 0 stale"),
        "{summary}"
    );
    let h = history(&run);
    let adds = h
        .iter()
        .filter(|e| e["f"] == "add" && e["type"] == "ok")
        .count();
    assert!(adds > 50, "{adds} adds acknowledged");
    let reads: Vec<&Value> = h
        .iter()
        .filter(|e| e["f"] == "read-all" && e["type"] == "ok")
        .collect();
    assert!(reads.iter().all(|e| e["value"].is_array()));
    // The final reads: one per set, after the last add, holding every acknowledged one.
    let last = reads.last().expect("final reads");
    assert!(!last["value"].as_array().unwrap().is_empty());
    assert_no_nodes_left(store.path());

    // The same operations as a queue: a raft-node list is a log, read in order.
    let out = run_for(
        Server::RaftNode,
        store.path(),
        &[
            "--workload",
            "queue",
            "--nemesis",
            "kill",
            "--time-limit",
            "4",
            "--seed",
            "12",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "the healthy node is valid");
    let results = json(&latest(store.path()).join("results.json"));
    assert_eq!(results["checker"]["model"], "queue", "{results}");
    assert!(results["checker_summary"]
        .as_str()
        .unwrap()
        .contains("0 duplicated, 0 reordered, 0 stale"));
    assert_no_nodes_left(store.path());
}

/// Where the disk faults' layer cannot be mounted (here: no chaos-lazyfs beside the
/// runner), `all` runs without its faults and says so, with the reason, before the run.
#[test]
fn a_run_without_the_disk_layer_says_what_it_leaves_out() {
    let bin_dir = tempfile::tempdir().unwrap();
    let runner = bin_dir.path().join("chaos-runner");
    std::fs::copy(BIN, &runner).unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(&runner)
        .arg("test")
        .arg("--store")
        .arg(store.path())
        .arg("--raft-node")
        .arg(raft_node())
        .args(["--time-limit", "2", "--seed", "5"])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "note: no power losses, full disks or slow fsyncs in this run: no chaos-lazyfs"
        ),
        "{said}"
    );
    assert_eq!(out.status.code(), Some(0), "{said}");
    let test = json(&latest(store.path()).join("test.json"));
    let kinds = test["nemesis"].as_array().unwrap();
    assert!(kinds.contains(&serde_json::json!("corrupt")), "{test}");
    assert!(
        !kinds.contains(&serde_json::json!("lose-unsynced")),
        "{test}"
    );
    assert_no_nodes_left(store.path());
}

/// A reader that goes away (`chaos-runner test | head -1`) is not the run's business:
/// with stdout and stderr both closed from the start, the run still goes to its end,
/// removes its nodes and exits with its verdict, not a panic.
#[test]
fn closed_output_pipes_never_panic_or_change_the_exit_code() {
    let store = tempfile::tempdir().unwrap();
    let mut c = chaos_test(
        store.path(),
        &raft_node(),
        &["--time-limit", "3", "--nemesis", "none"],
    );
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    let results = json(&latest(store.path()).join("results.json"));
    assert_eq!(results["verdict"], "valid");
    assert_no_nodes_left(store.path());
}

/// `--dry-run` prints the plan and a seed's schedule, the same for the same seed, and
/// starts nothing: no run folder, no node.
#[test]
fn a_dry_run_prints_the_schedule_and_starts_nothing() {
    let store = tempfile::tempdir().unwrap();
    let args = ["--dry-run", "--seed", "7", "--time-limit", "20"];
    let a = run(store.path(), &args);
    let b = run(store.path(), &args);
    assert_eq!(a.status.code(), Some(0));
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(
        text.contains("cluster: 3 nodes") && text.contains("seed 7: "),
        "{text}"
    );
    assert_eq!(a.stdout, b.stdout, "the same seed, the same plan");
    assert!(!store.path().join("latest").exists());
    assert_eq!(
        std::fs::read_dir(store.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Issue 32: list-append transactions against raft-node are strict serializable under
/// kill, pause and partition, their history in Elle's form; with the seeded bug that
/// applies a transaction's micro-operations one at a time, the checker names anomalies
/// no isolation level allows between them.
#[test]
fn list_append_transactions_are_valid_and_a_split_transaction_is_caught() {
    let store = tempfile::tempdir().unwrap();
    let out = run(
        store.path(),
        &[
            "--workload",
            "list-append",
            "--time-limit",
            "6",
            "--nemesis",
            "kill,pause,partition",
            "--nemesis-interval",
            "1.5",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = latest(store.path());
    let results = json(&dir.join("results.json"));
    let txn = &results["checker"]["txn"];
    assert_eq!(txn["workload"], "list-append");
    assert_eq!(txn["model"], "strict-serializable");
    assert!(txn["committed"].as_u64().unwrap() > 50, "{txn}");
    assert_eq!(
        txn["strongest_satisfied"],
        serde_json::json!(["strict-serializable"])
    );
    let lines = history(&dir);
    let txns: Vec<&Value> = lines.iter().filter(|l| l["f"] == "txn").collect();
    assert!(
        txns.iter().all(|l| l.get("key").is_none()),
        "a txn has no key of its own"
    );
    let ok = txns.iter().find(|l| l["type"] == "ok").unwrap();
    assert!(
        ok["value"][0][0].is_string() && ok["value"][0][1].is_u64(),
        "{ok}"
    );
    // The final reads: read-only transactions after the load.
    assert!(txns.iter().rev().take(2).any(|l| l["value"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m[0] == "r")));

    let split = tempfile::tempdir().unwrap();
    let out = run(
        split.path(),
        &[
            "--workload",
            "list-append",
            "--time-limit",
            "5",
            "--nemesis",
            "none",
            "--concurrency",
            "8",
            "--node-arg=--unsafe-bug=txn-split",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = json(&latest(split.path()).join("results.json"));
    let counts = results["checker"]["txn"]["counts"].as_object().unwrap();
    assert!(
        counts.contains_key("internal")
            || counts.contains_key("G-single")
            || counts.contains_key("G0"),
        "{counts:?}"
    );
    let report = std::fs::read_to_string(latest(split.path()).join("report.html")).unwrap();
    assert!(
        report.contains("<section id=\"txn\">"),
        "the report explains the anomalies"
    );
}
