//! `test --schedule FILE` and `shrink RUN` end to end, on real raft-node clusters.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

use common::{assert_refused, chaos_test, output_shown, raft_node, BIN};

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).unwrap()
}

/// Two faults by hand: a kill and, later, a pause, each of a random node.
const TWO_FAULTS: &str = r#"{
  "version": 1,
  "faults": [
    {"start_s": 0.5, "end_s": 1.5, "kind": "kill", "target": "random", "shape": "halves",
     "pick": 11, "layer": "foreground"},
    {"start_s": 2.0, "end_s": 2.6, "kind": "pause", "target": "random", "shape": "halves",
     "pick": 12, "layer": "foreground"}
  ]
}"#;

/// A run from a schedule file carries out exactly its faults, says so in test.json, and
/// writes them back as its own schedule.json.
#[test]
fn a_schedule_file_runs_exactly_its_faults() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("two.json");
    std::fs::write(&file, TWO_FAULTS).unwrap();
    let out = output_shown(chaos_test(
        &store,
        &raft_node(),
        &[
            "--schedule".as_ref(),
            file.as_os_str(),
            "--time-limit".as_ref(),
            "4".as_ref(),
        ],
    ));
    assert_eq!(out.status.code(), Some(0));
    let run = latest(&store);
    let results = json(&run.join("results.json"));
    let kinds: Vec<&str> = results["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["kill", "pause"]);
    let test = json(&run.join("test.json"));
    assert_eq!(test["schedule_mode"], "file");
    assert_eq!(test["nemesis"], serde_json::json!(["kill", "pause"]));
    let written = json(&run.join("schedule.json"));
    let picks: Vec<u64> = written["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pick"].as_u64().unwrap())
        .collect();
    assert_eq!(picks, [11, 12]);
    // The dry run shows the file's faults, whatever the seed.
    let dry = Command::new(BIN)
        .args(["test", "--dry-run", "--seed", "5", "--schedule"])
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(said.contains("seed 5: 2 faults"), "{said}");
    assert!(said.contains("0.5-1.5s kill random"), "{said}");
}

#[test]
fn bad_schedules_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("two.json");
    std::fs::write(&file, TWO_FAULTS).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, TWO_FAULTS.replace("\"end_s\": 1.5", "\"end_s\": 0.2")).unwrap();
    let loss = dir.path().join("loss.json");
    std::fs::write(&loss, TWO_FAULTS.replace("\"pause\"", "\"loss\"")).unwrap();
    let (file, bad, loss) = (
        file.to_str().unwrap(),
        bad.to_str().unwrap(),
        loss.to_str().unwrap(),
    );
    assert_refused(
        &store,
        [
            (
                vec!["--schedule", file, "--nemesis", "kill"],
                "cannot be used with",
            ),
            (vec!["--schedule", "/nonexistent/s.json"], "cannot read"),
            (vec!["--schedule", bad], "fault 1: it ends"),
            // Packet loss needs the namespaces' switch, not proxies.
            (vec!["--schedule", loss], "--schedule"),
        ],
    );
    assert!(!store.join("latest").exists());
}

/// A run of a seeded bug that fails without any fault: shrink takes every fault out,
/// confirms, and writes a schedule and a command that replay it.
#[test]
fn shrink_takes_out_the_faults_a_failure_does_not_need() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // stale-read serves reads from any node's own state: a follower a heartbeat behind
    // answers stale at once, faults or none. A run usually fails within a second.
    let mut failed = None;
    for seed in ["41", "42", "43"] {
        let out = output_shown(chaos_test(
            &store,
            &raft_node(),
            &[
                "--node-arg=--unsafe-bug=stale-read",
                "--nemesis",
                "kill,pause",
                "--time-limit",
                "6",
                "--concurrency",
                "5",
                "--seed",
                seed,
            ],
        ));
        if out.status.code() == Some(1) {
            failed = Some(latest(&store));
            break;
        }
    }
    let run = failed.expect("no stale-read run of three failed");
    let planned = json(&run.join("schedule.json"))["faults"]
        .as_array()
        .unwrap()
        .len();
    assert!(planned > 0);
    let out = output_shown({
        let mut c = Command::new(BIN);
        c.args([
            "shrink",
            "--tries",
            "2",
            "--confirm",
            "1",
            "--budget",
            "240",
        ])
        .arg(&run);
        c
    });
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("shrunk {planned} faults to ")),
        "{said}"
    );
    let shrunk = run.join("shrink");
    let outcome = json(&shrunk.join("shrink.json"));
    let kept = outcome["faults"].as_array().unwrap().len();
    assert!(kept < planned, "{outcome}");
    let schedule = json(&shrunk.join("schedule.json"));
    assert_eq!(schedule["faults"].as_array().unwrap().len(), kept);
    assert!(outcome["steps"].as_array().unwrap().len() >= 2, "{outcome}");
    assert_eq!(outcome["confirmed"][1], 1);
    // The printed command replays it: it names the seed and the shrunk schedule.
    let command = outcome["command"].as_str().unwrap();
    assert!(command.contains("--schedule"), "{command}");
    assert!(command.contains("--unsafe-bug=stale-read"), "{command}");
    assert!(said.contains(command), "{said}");
    // Replays that passed left nothing; failing ones are kept as evidence.
    let trials = std::fs::read_dir(shrunk.join("trials/replay"))
        .unwrap()
        .count();
    let failing: usize = outcome["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["replays"].as_array().unwrap())
        .filter(|r| r["code"] == 1)
        .count();
    let confirmed: u64 = outcome["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(trials as u64, failing as u64 + confirmed);

    // A budget shorter than any replay: the first replay is stopped when it runs out
    // (not left to finish, which would record its verdict), and nothing else starts.
    let out = output_shown({
        let mut c = Command::new(BIN);
        c.args(["shrink", "--budget", "0.2"]).arg(&run);
        c
    });
    let outcome = json(&shrunk.join("shrink.json"));
    assert_eq!(out.status.code(), Some(0), "{outcome}");
    assert_eq!(outcome["budget_ran_out"], true, "{outcome}");
    assert_eq!(outcome["replays"], 1, "{outcome}");
    let steps = outcome["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{outcome}");
    assert_eq!(steps[0]["replays"][0]["cut"], true, "{outcome}");
    assert!(outcome["confirmed"].is_null(), "{outcome}");
    assert_eq!(outcome["faults"].as_array().unwrap().len(), planned);
}

#[test]
fn shrink_refuses_what_it_cannot_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = output_shown(chaos_test(
        &store,
        &raft_node(),
        &["--nemesis", "none", "--time-limit", "1"],
    ));
    assert_eq!(out.status.code(), Some(0));
    for (target, says) in [
        (latest(&store), "was valid, not invalid"),
        (dir.path().join("nowhere"), "no run folder"),
    ] {
        let out = Command::new(BIN)
            .arg("shrink")
            .arg(&target)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
