//! Reports of a generated valid run and a hand-made invalid one: the files exist, the page
//! is self-contained, and the counterexample names the operation that cannot be placed.

use std::path::Path;

use checker::check::{check, CheckOptions};
use checker::generate::{generate, write_jsonl, GenConfig};
use checker::model::Register;
use checker::{History, HistoryBuilder};
use serde_json::json;

fn make_run(dir: &Path, name: &str, started: &str, h: &History) {
    std::fs::create_dir_all(dir).unwrap();
    write_jsonl(h, std::fs::File::create(dir.join("history.jsonl")).unwrap()).unwrap();
    let report = check(&Register::new(true), h, &CheckOptions::default()).unwrap();
    let test = json!({"name": name, "seed": 1, "nodes": 3, "workload": "register", "keys": 1,
        "concurrency": 4, "nemesis": ["kill"], "started": started});
    let results = json!({"verdict": report.verdict.as_str(), "counts": {"ok": 1, "fail": 0, "info": 0},
        "checker_summary": report.summary(), "checker": report, "command": "chaos-runner test --seed 1"});
    std::fs::write(dir.join("test.json"), test.to_string()).unwrap();
    std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
}

#[test]
fn valid_and_invalid_reports() {
    let store = tempfile::tempdir().unwrap();
    let valid_dir = store.path().join("register/run-a");
    let h = generate(&GenConfig {
        ops: 2000,
        ..GenConfig::default()
    });
    make_run(&valid_dir, "register", "2026-11-26T10:00:00Z", &h);
    let written = reports::build(&valid_dir).unwrap();
    let html = std::fs::read_to_string(&written.report).unwrap();
    assert!(html.contains("VALID"));
    assert!(!html.contains("Why it is not linearizable"));
    // Nothing is fetched: no external scripts, styles, images or fonts (SVG's xmlns is a name).
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(
            !html.contains(fetch),
            "the page must not reach the network ({fetch})"
        );
    }
    for svg in ["latency-raw.svg", "latency-quantiles.svg", "rate.svg"] {
        let text = std::fs::read_to_string(valid_dir.join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
    }

    // A stale read: write 1, write 2, then a read of 1.
    let mut b = HistoryBuilder::new();
    b.invoke(0, "write", None, json!("1"), 1_000_000)
        .ok(0, "write", json!("1"), 2_000_000);
    b.invoke(1, "write", None, json!("2"), 3_000_000)
        .ok(1, "write", json!("2"), 4_000_000);
    b.invoke(0, "read", None, json!(null), 5_000_000)
        .ok(0, "read", json!("1"), 6_000_000);
    b.invoke(2, "read", None, json!(null), 7_000_000)
        .ok(2, "read", json!("2"), 8_000_000);
    let h = b.build();
    let stale_id = h
        .ops
        .iter()
        .find(|o| o.f == "read" && o.output == Some(json!("1")))
        .unwrap()
        .id;
    let invalid_dir = store.path().join("register/run-b");
    make_run(&invalid_dir, "register-b", "2026-11-26T10:05:00Z", &h);
    let html = std::fs::read_to_string(reports::build(&invalid_dir).unwrap().report).unwrap();
    assert!(html.contains("INVALID"));
    assert!(html.contains("Why it is not linearizable"));
    assert!(
        html.contains(&format!("operation #{stale_id} (read &quot;1&quot;")),
        "the culprit is named"
    );
    assert!(html.contains(&format!("<tr class=\"bad\"><td>{stale_id}</td>")));
    assert!(
        html.contains("read returned &quot;1&quot;, but the register held &quot;2&quot; after write &quot;2&quot; completed at 0.004 s"),
        "the reason is in words"
    );
    assert!(html.contains(&format!("focusOp({stale_id}")));

    std::os::unix::fs::symlink("register/run-b", store.path().join("latest")).unwrap();
    let index = std::fs::read_to_string(reports::index::build(store.path()).unwrap()).unwrap();
    let a = index.find("run-a/report.html").expect("run a listed");
    let b = index.find("run-b/report.html").expect("run b listed");
    assert!(b < a, "newest first");
    assert!(index.contains("class=\"invalid\">invalid") && index.contains("class=\"valid\">valid"));
}
