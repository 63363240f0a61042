//! Any server, any language: `--target command` starts nodes from a command template and
//! `--client-cmd` speaks to them through adapter programs (docs/client-protocol.md).
//! Shown on raft-node itself (the same verdicts as the built-in path), on misbehaving
//! adapters (never a wrong verdict) and on ZooKeeper (Debian's zookeeper and kazoo).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{can_run, chaos_test, output_shown, raft_node, BIN};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Python 3 with only its standard library: what the raft-node adapter needs.
fn python() -> &'static str {
    "/usr/bin/python3"
}

fn raft_node_adapter() -> String {
    format!(
        "{} {}",
        python(),
        repo().join("examples/adapters/raft-node.py").display()
    )
}

/// `test --target command` with raft-node's command line as the template.
fn through_a_template(store: &Path, client_cmd: &str, node_flags: &str, args: &[&str]) -> Output {
    let node_cmd = format!(
        "exec {} --id {{id}} --transport-port {{peer_port}} --api-port {{api_port}} \
         --listen-addr {{listen}} --data-dir {{data_dir}} --peers {{peers}} {node_flags}",
        raft_node().display()
    );
    let leads = "curl -sf http://{listen}:{api_port}/client/status | grep -q '\"role\":\"leader\"'";
    let mut c = Command::new(BIN);
    c.arg("test")
        .arg("--store")
        .arg(store)
        .args(["--target", "command", "--node-cmd", &node_cmd])
        .args(["--node-leads", leads, "--client-cmd", client_cmd])
        .args(["--concurrency", "4", "--rate", "300"])
        .args(args);
    output_shown(c)
}

fn results(store: &Path) -> serde_json::Value {
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

/// The command path reaches the built-in path's verdicts under the same seeds: valid for
/// the healthy node, invalid (a stale read) for the node with the seeded `stale-read`.
#[test]
fn raft_node_through_a_template_and_an_adapter_gets_the_built_in_verdicts() {
    let cases = [
        ("", &["--time-limit", "8", "--seed", "9"][..], 0),
        (
            "--unsafe-bug=stale-read",
            &["--fail-fast", "--time-limit", "30", "--seed", "3"][..],
            1,
        ),
    ];
    for (bug, args, expected) in cases {
        let built_in = tempfile::tempdir().unwrap();
        let mut flags: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !bug.is_empty() {
            flags.push(format!("--node-arg={bug}"));
        }
        let out = output_shown(chaos_test(built_in.path(), &raft_node(), &flags));
        assert_eq!(out.status.code(), Some(expected), "built in, {bug:?}");
        let store = tempfile::tempdir().unwrap();
        let out = through_a_template(store.path(), &raft_node_adapter(), bug, args);
        assert_eq!(out.status.code(), Some(expected), "command path, {bug:?}");
        let r = results(store.path());
        match expected {
            // A healthy run did real work; a stale read was named (a fail-fast run may
            // stop within a second: the adapter reads at each client's own node).
            0 => assert!(r["counts"]["ok"].as_u64().unwrap() > 50, "{r}"),
            _ => assert!(
                r["checker_summary"]
                    .as_str()
                    .unwrap()
                    .contains("read returned"),
                "{r}"
            ),
        }
        let console = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(console.contains("api: adapter"), "{console}");
    }
}

/// Adapters that write garbage, hang, crash or answer another operation's id on one
/// operation in five, after the real adapter performed it: the runner records those
/// operations as unknown, starts new adapters and stays valid on a healthy cluster. An
/// adapter that never gets ready stops the run before it starts, saying why.
#[test]
fn misbehaving_adapters_never_make_a_wrong_verdict() {
    let flaky = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flaky-adapter");
    for mode in ["garbage", "hang", "crash", "wrong-id"] {
        let store = tempfile::tempdir().unwrap();
        let cmd = format!(
            "{} {} {mode} {}",
            python(),
            flaky.display(),
            raft_node_adapter()
        );
        let args = [
            "--time-limit",
            "6",
            "--nemesis",
            "none",
            "--op-timeout",
            "1",
        ];
        let out = through_a_template(store.path(), &cmd, "", &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode}: a healthy cluster is valid"
        );
        let r = results(store.path());
        let info = r["counts"]["info"].as_u64().unwrap();
        let fail = r["counts"]["fail"].as_u64().unwrap();
        assert!(info + fail > 0, "{mode}: no operation was lost: {r}");
        let run = std::fs::canonicalize(store.path().join("latest")).unwrap();
        let adapters = std::fs::read_dir(run.join("adapters")).unwrap().count();
        assert!(
            adapters > 4,
            "{mode}: {adapters} adapters: broken ones were replaced"
        );
    }
    let store = tempfile::tempdir().unwrap();
    let out = through_a_template(
        store.path(),
        "echo 'the adapter failed' >&2; exit 1",
        "",
        &["--time-limit", "5"],
    );
    assert_eq!(out.status.code(), Some(3), "a set-up error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not get ready") && err.contains("the adapter failed"),
        "{err}"
    );
}

fn zookeeper_available() -> bool {
    let here = Path::new("/usr/share/java/zookeeper.jar").is_file()
        && Command::new("java").arg("-version").output().is_ok()
        && Command::new(python())
            .args(["-c", "import kazoo"])
            .status()
            .is_ok_and(|s| s.success());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    can_run(
        here && root,
        "CHAOS_REQUIRE_ZOOKEEPER",
        "root, Debian's zookeeper and python3-kazoo",
    )
}

/// `chaos-runner test` against three ZooKeeper servers started from the example's
/// templates in network namespaces (addresses from `net_range`), through kazoo with
/// sync() before every read, under kills and partitions every 3 s.
fn zookeeper_test(store: &Path, net_range: &str, extra: &[&str]) -> Command {
    let z = repo().join("examples/zookeeper");
    let z = z.display();
    let mut c = Command::new(BIN);
    c.arg("test").arg("--store").arg(store).args([
        "--target",
        "command",
        "--net",
        "netns",
        "--net-range",
        net_range,
        "--node-setup",
        &format!(
            "{z}/setup.sh {{id}} {{data_dir}} {{listen}} {{api_port}} {{members}} {{members_aux}}"
        ),
        "--node-cmd",
        &format!("{z}/start.sh {{data_dir}}"),
        "--node-leads",
        &format!("{z}/leads.py {{listen}} {{api_port}}"),
        "--client-cmd",
        &format!("{z}/adapter.py --reads sync"),
        "--nemesis",
        "kill,partition",
        "--nemesis-interval",
        "3",
    ]);
    c.args(extra);
    c
}

/// ZooKeeper, a server no one here wrote, in another language, started from templates
/// in network namespaces and spoken to through kazoo: valid under kills and partitions
/// with sync() before every read.
#[test]
fn zookeeper_with_synced_reads_is_valid_under_kills_and_partitions() {
    if !zookeeper_available() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let c = zookeeper_test(
        store.path(),
        "198.19.1.0/24",
        &["--time-limit", "20", "--seed", "5"],
    );
    let out = output_shown(c);
    assert_eq!(out.status.code(), Some(0), "valid expected");
    let r = results(store.path());
    assert!(r["counts"]["ok"].as_u64().unwrap() > 200, "{r}");
    let console = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        console.contains("partition") && console.contains("kill"),
        "{console}"
    );
}

/// A queue on ZooKeeper (sequential znodes, read back in sequence order): every
/// acknowledged add is read, in one order, under kills and partitions.
#[test]
fn a_zookeeper_queue_keeps_every_acknowledged_add_in_order() {
    if !zookeeper_available() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let c = zookeeper_test(
        store.path(),
        "198.19.2.0/24",
        &["--workload", "queue", "--time-limit", "15", "--seed", "6"],
    );
    let out = output_shown(c);
    assert_eq!(out.status.code(), Some(0), "valid expected");
    let r = results(store.path());
    let checker = &r["checker"];
    assert_eq!(checker["model"], "queue", "{checker}");
    // "N acknowledged adds: 0 lost, 0 unexpected, 0 duplicated, 0 reordered, ..."
    let counts = checker["counts"].as_str().unwrap();
    let acked: u64 = counts.split(' ').next().unwrap().parse().unwrap();
    assert!(acked > 100, "{counts}");
    assert!(
        counts.contains("0 lost, 0 unexpected, 0 duplicated, 0 reordered"),
        "{counts}"
    );
}

/// Transactions on ZooKeeper (reads, then one multi() that checks every version read):
/// strict serializable under kills and partitions, with transactions committed.
#[test]
fn zookeeper_transactions_through_multi_are_strict_serializable() {
    if !zookeeper_available() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let c = zookeeper_test(
        store.path(),
        "198.19.3.0/24",
        &[
            "--workload",
            "list-append",
            "--time-limit",
            "15",
            "--seed",
            "7",
        ],
    );
    let out = output_shown(c);
    assert_eq!(out.status.code(), Some(0), "valid expected");
    let r = results(store.path());
    let txn = &r["checker"]["txn"];
    assert_eq!(txn["model"], "strict-serializable", "{txn}");
    assert!(txn["committed"].as_u64().unwrap() > 100, "{txn}");
}
