//! `chaos-runner bench` end to end: real clusters driven for a couple of seconds, figures
//! that add up, a history that checks, and clear errors for bad input.
//!
//! The etcd case runs when `etcd` is on PATH (Debian: apt-get install etcd-server). CI
//! installs it and sets CHAOS_REQUIRE_ETCD=1, which turns a missing etcd into a failure.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;

use common::{raft_node, BIN};

fn bench(store: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("bench")
        .arg("--store")
        .arg(store)
        .arg("--raft-node")
        .arg(raft_node())
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks the figures of one bench run and returns them.
fn figures(json: &Path) -> Value {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let ok = v["ok"].as_u64().unwrap();
    assert!(ok > 0, "{v}");
    let secs = v["duration_s"].as_f64().unwrap();
    let rate = v["ok_per_s"].as_f64().unwrap();
    assert!((rate - ok as f64 / secs).abs() < 1e-6, "{v}");
    let l = &v["latency_ms"];
    let p50 = l["p50"].as_f64().unwrap();
    let p99 = l["p99"].as_f64().unwrap();
    let max = l["max"].as_f64().unwrap();
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{v}");
    assert_eq!(v["checker"]["verdict"], "valid", "{v}");
    // A fault-free cluster answers everything (unless a starved machine cost it an
    // election); a failed cas is a mismatch, not an error.
    if v["leader_changed"] == false {
        assert_eq!(v["errors"], 0, "{v}");
        assert_eq!(v["cas_mismatches"], v["fail"], "{v}");
    }
    // Every measured operation is in the history, with the warm-up's before them.
    let history = std::fs::read_to_string(v["history"].as_str().unwrap()).unwrap();
    let oks = history
        .lines()
        .filter(|l| l.contains(r#""type":"ok""#))
        .count() as u64;
    assert!(oks >= ok, "{oks} ok lines, {ok} ok ops measured");
    v
}

/// A short mixed run (writes, reads, cas on 20 keys, 64-byte values) with `--check`;
/// returns its checked figures and its history.
fn mixed_run(target: &str) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = bench(
        dir.path(),
        &[
            "--target",
            target,
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--concurrency",
            "8",
            "--mix",
            "write=50,read=30,cas=20",
            "--value-size",
            "64",
            "--keys",
            "20",
            "--check",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = figures(&json);
    assert_eq!(v["target"], target);
    assert_eq!(v["mix"]["cas"], 20);
    let history_path = Path::new(v["history"].as_str().unwrap()).to_path_buf();
    let history = std::fs::read_to_string(&history_path).unwrap();
    // The run went under the store's bench/<target>/, and `latest` (the newest test) was
    // left alone.
    assert!(
        history_path.starts_with(dir.path().join("bench").join(target)),
        "{}",
        history_path.display()
    );
    assert!(!dir.path().join("latest").exists());
    // Values are padded to the requested size.
    let write = history
        .lines()
        .find(|l| l.contains(r#""f":"write""#))
        .unwrap();
    let w: Value = serde_json::from_str(write).unwrap();
    assert_eq!(w["value"].as_str().unwrap().len(), 64);
    (v, history)
}

#[test]
fn raft_node_bench_records_measures_and_checks() {
    let (_, history) = mixed_run("raft-node");
    assert!(history.contains(r#""f":"cas""#));
}

#[test]
fn raft_node_bench_through_the_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = bench(
        dir.path(),
        &[
            "--duration",
            "1",
            "--warmup",
            "0",
            "--mix",
            "write=100",
            "--net",
            "proxy",
            "--check",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(figures(&json)["proxies"], true);
}

#[test]
fn etcd_bench_speaks_the_v3_gateway() {
    if !common::etcd_available() {
        return;
    }
    let (_, history) = mixed_run("etcd");
    // Some cas operations found the expected value, some did not: both answers parse.
    let cas_ok = history
        .lines()
        .any(|l| l.contains(r#""f":"cas""#) && l.contains(r#""type":"ok""#));
    let cas_fail = history
        .lines()
        .any(|l| l.contains(r#""f":"cas""#) && l.contains(r#""type":"fail""#));
    assert!(cas_ok && cas_fail);
}

#[test]
fn bad_bench_input_is_an_error_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--mix", "delete=1"], "write, read and cas"),
        (&["--mix", "write=x"], "not a whole number"),
        (
            &["--target", "etcd", "--etcd", "/nonexistent/etcd"],
            "apt-get install etcd-server",
        ),
        (&["--concurrency", "513"], "513"),
        (&["--compare-builtin"], "--client-cmd"),
        (
            &["--workload", "list-append", "--mix", "cas=1,write=1"],
            "not cas",
        ),
    ];
    for (args, says) in cases {
        let out = bench(dir.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `--compare-builtin`: operations alternate between the adapter (here `chaos-runner
/// adapter`, the protocol over the built-in client) and the built-in client, in one
/// checked history; each path is counted per kind of operation, and the difference at p50
/// is each kind's adapter p50 less its built-in p50.
#[test]
fn an_adapter_is_compared_with_the_built_in_client_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let adapter = format!("{BIN} adapter");
    let out = bench(
        dir.path(),
        &[
            "--duration",
            "1.5",
            "--warmup",
            "0.5",
            "--concurrency",
            "2",
            "--client-cmd",
            &adapter,
            "--compare-builtin",
            "--check",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = figures(&json);
    let c = &v["compare_builtin"];
    let (mut built_in, mut adapter_ok) = (0, 0);
    for f in ["read", "write"] {
        let b = &c["built_in"][f];
        let a = &c["adapter"][f];
        built_in += b["ok"].as_u64().unwrap();
        adapter_ok += a["ok"].as_u64().unwrap();
        let added = c["adapter_adds_p50_ms"][f].as_f64().unwrap();
        let diff = a["p50_ms"].as_f64().unwrap() - b["p50_ms"].as_f64().unwrap();
        assert!((added - diff).abs() < 1e-9, "{c}");
    }
    // Every other operation went each way: the measured window holds about as many of
    // each (it may cut one client's pair in two).
    let ok = v["ok"].as_u64().unwrap();
    assert!(built_in + adapter_ok <= ok + 4, "{c} {ok}");
    assert!(built_in.abs_diff(adapter_ok) <= 4, "{c}");
    assert!(built_in > 50, "{c}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the adapter adds at p50: read"), "{text}");
    // One adapter served the whole run: it never broke.
    let history = Path::new(v["history"].as_str().unwrap());
    let adapters = history.parent().unwrap().join("adapters");
    assert!(adapters.join("client-0.stderr").exists());
    assert!(
        !adapters.join("client-2.stderr").exists(),
        "adapters were replaced"
    );
}

/// Transactions at full speed: raft-node's POST /txn, checked for strict
/// serializability, every operation a transaction.
#[test]
fn raft_node_transactions_are_measured_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = bench(
        dir.path(),
        &[
            "--workload",
            "list-append",
            "--duration",
            "1.5",
            "--warmup",
            "0.5",
            "--concurrency",
            "4",
            "--keys",
            "8",
            "--check",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = figures(&json);
    assert_eq!(v["workload"], "list-append");
    let checker = v["checker"]["summary"].as_str().unwrap();
    assert!(checker.contains("strict-serializable"), "{checker}");
    let history = std::fs::read_to_string(v["history"].as_str().unwrap()).unwrap();
    let invokes = history.lines().filter(|l| l.contains(r#""type":"invoke""#));
    assert!(invokes.clone().count() > 50);
    assert!(
        invokes.clone().all(|l| l.contains(r#""f":"txn""#)),
        "only transactions"
    );
    assert!(history.contains(r#"["append","#), "appends were made");
}
