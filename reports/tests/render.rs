//! Reports of a generated valid run and a hand-made invalid one: the files exist, the page
//! is self-contained, and the counterexample names the operation that cannot be placed.

use std::path::Path;

use checker::check::{check, CheckOptions};
use checker::generate::{generate, write_jsonl, GenConfig};
use checker::model::Register;
use checker::record::{Counts, RunResults, TestRecord};
use checker::{History, HistoryBuilder};
use serde_json::json;

fn make_run(dir: &Path, name: &str, started: &str, h: &History) {
    std::fs::create_dir_all(dir).unwrap();
    write_jsonl(h, std::fs::File::create(dir.join("history.jsonl")).unwrap()).unwrap();
    let report = check(&Register::new(true), h, &CheckOptions::default()).unwrap();
    let test = TestRecord {
        name: name.into(),
        seed: 1,
        nodes: 3,
        workload: "register".into(),
        keys: 1,
        concurrency: 4,
        nemesis: vec!["kill".into()],
        started: started.into(),
        ..TestRecord::default()
    };
    let results = RunResults {
        verdict: report.verdict,
        reason: None,
        seed: 1,
        command: "chaos-runner test --seed 1".into(),
        counts: Counts {
            ok: 1,
            fail: 0,
            info: 0,
        },
        fail_reasons: [("cas mismatches".to_string(), 3)].into(),
        duration_s: 0.0,
        throughput_ok_per_s: 0.0,
        latency_ms: Default::default(),
        faults: Vec::new(),
        final_reads: Default::default(),
        warnings: Vec::new(),
        after_time_limit_s: Vec::new(),
        checker_summary: report.summary(),
        fail_fast: None,
        checker: report,
    };
    write_json(&dir.join("test.json"), &test);
    write_json(&dir.join("results.json"), &results);
}

fn write_json(path: &Path, record: &impl serde::Serialize) {
    std::fs::write(path, serde_json::to_string(record).unwrap()).unwrap();
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
    // A store holds `latest`; the report links back to its index.
    std::os::unix::fs::symlink("register/run-a", store.path().join("latest")).unwrap();
    let written = reports::build(&valid_dir).unwrap();
    let html = std::fs::read_to_string(&written.report).unwrap();
    assert!(html.contains("VALID"));
    assert!(!html.contains("Why it is not linearizable"));
    assert!(
        html.contains("fail (3 cas mismatches)"),
        "fails are told apart"
    );
    // The run's files are linked, and the way back to every run.
    for f in ["history.jsonl", "results.json", "test.json"] {
        assert!(html.contains(&format!("<a href=\"{f}\">{f}</a>")), "{f}");
    }
    assert!(html.contains("<a href=\"../../index.html\">all runs</a>"));
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
        .ok(1, "write", json!("2"), 4_932_000);
    // Invoked 228 µs after the write returned: only microseconds tell the order.
    b.invoke(0, "read", None, json!(null), 5_160_000)
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
        html.contains("read returned &quot;1&quot;, but the register held &quot;2&quot; after write &quot;2&quot; completed at 0.004932 s"),
        "the reason is in words, to the microsecond"
    );
    assert!(
        html.contains(&format!(
            "completed at 0.004932 s, 228 µs before #{stale_id} (read &quot;1&quot;) was invoked at 0.005160 s"
        )),
        "the decisive real-time order is stated"
    );
    assert!(
        html.contains(&format!(
            "<button class=\"focus-op\" data-op=\"{stale_id}\" data-key=\"-\">"
        )),
        "the button names its operation and key in data attributes"
    );
    assert!(
        !html.contains("onclick=\"focusOp("),
        "no inline handler to break"
    );
    assert!(
        html.contains("focus({ preventScroll: true })"),
        "opens at the verdict"
    );

    std::fs::remove_file(store.path().join("latest")).unwrap();
    std::os::unix::fs::symlink("register/run-b", store.path().join("latest")).unwrap();
    let index = std::fs::read_to_string(reports::index::build(store.path()).unwrap()).unwrap();
    let a = index.find("run-a/report.html").expect("run a listed");
    let b = index.find("run-b/report.html").expect("run b listed");
    assert!(b < a, "newest first");
    assert!(index.contains("class=\"invalid\">invalid") && index.contains("class=\"valid\">valid"));
    // Seed and the first anomaly are listed for each run.
    assert!(index.contains("<td>1</td>"), "the seed");
    assert!(
        index.contains("class=\"anomaly\">key"),
        "the invalid run's first anomaly: {index}"
    );
}

/// Records written before the run records were typed (by the runner of that day, kept as
/// fixtures) still render: a valid run with a kill, and an invalid one with its
/// counterexample.
#[test]
fn records_from_before_the_typed_contract_still_render() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let store = tempfile::tempdir().unwrap();
    for (name, dest) in [("v1-valid", "register/a"), ("v1-invalid", "register/b")] {
        let dir = store.path().join(dest);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["history.jsonl", "test.json", "results.json"] {
            std::fs::copy(fixtures.join(name).join(f), dir.join(f)).unwrap();
        }
    }
    let valid = store.path().join("register/a");
    let run = reports::data::Run::load(&valid).unwrap();
    let results = run.results.as_ref().expect("results.json read");
    assert_eq!(results.seed, 7);
    assert_eq!(results.counts.ok, 71);
    assert_eq!(results.latency_ms.p50, Some(2.4));
    assert_eq!(results.faults[0].value.nodes, vec![1]);
    assert_eq!(results.after_time_limit_s.len(), 5);
    assert_eq!(run.test.as_ref().unwrap().schedule.len(), 2);
    assert_eq!(run.faults[0].label, "kill n1", "the fault's nodes are read");
    let html = std::fs::read_to_string(reports::build(&valid).unwrap().report).unwrap();
    assert!(html.contains("<div class=\"verdict valid\">VALID</div>"));
    assert!(html.contains("<dd>7</dd>"), "the seed is shown");
    assert!(html.contains("p50 2.4 ms, p95 7.55 ms, p99 10.55 ms, max 11.09 ms"));
    assert!(html.contains("chaos-runner test --time-limit 4"));

    let invalid = store.path().join("register/b");
    let html = std::fs::read_to_string(reports::build(&invalid).unwrap().report).unwrap();
    assert!(html.contains("INVALID"));
    assert!(html.contains("key r0: operation #10 (read nil by process 2"));
    assert!(html.contains("read returned nil, but the register held &quot;3&quot;"));

    let index = std::fs::read_to_string(reports::index::build(store.path()).unwrap()).unwrap();
    assert!(index.contains("a/report.html") && index.contains("b/report.html"));
    assert!(index.contains("71/11/0"));
}

/// A run killed before its results (no results.json) is "unfinished" in its report and
/// in the index alike.
#[test]
fn a_killed_run_has_one_word_everywhere() {
    let store = tempfile::tempdir().unwrap();
    let run = store.path().join("t/a");
    let h = generate(&GenConfig {
        ops: 20,
        ..GenConfig::default()
    });
    make_run(&run, "t", "2026-11-26T10:00:00Z", &h);
    std::fs::remove_file(run.join("results.json")).unwrap();
    let page = std::fs::read_to_string(reports::build(&run).unwrap().report).unwrap();
    assert!(page.contains("UNFINISHED") && !page.contains("UNCHECKED"));
    let index = std::fs::read_to_string(reports::index::build(store.path()).unwrap()).unwrap();
    assert!(index.contains("unfinished"));
}

/// A results.json that is not one is named in a clear error, not rendered as "unfinished".
#[test]
fn a_damaged_record_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let h = generate(&GenConfig {
        ops: 20,
        ..GenConfig::default()
    });
    make_run(dir.path(), "r", "2026-11-26T10:00:00Z", &h);
    std::fs::write(dir.path().join("results.json"), "{\"verdict\": \"maybe\"}").unwrap();
    let err = reports::build(dir.path()).expect_err("refused").to_string();
    assert!(
        err.contains("results.json") && err.contains("maybe"),
        "{err}"
    );
}

/// A key may hold any character: in the "show on the timeline" button it is escaped into
/// a data attribute, never pasted into script.
#[test]
fn a_key_with_quotes_cannot_break_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let key = Some("k\"1'<b>");
    let mut b = HistoryBuilder::new();
    b.invoke(0, "write", key, json!("1"), 1_000_000)
        .ok(0, "write", json!("1"), 2_000_000);
    b.invoke(1, "write", key, json!("2"), 3_000_000)
        .ok(1, "write", json!("2"), 4_000_000);
    b.invoke(0, "read", key, json!(null), 5_000_000)
        .ok(0, "read", json!("1"), 6_000_000);
    make_run(dir.path(), "quoted", "2026-11-26T10:00:00Z", &b.build());
    let html = std::fs::read_to_string(reports::build(dir.path()).unwrap().report).unwrap();
    assert!(html.contains("INVALID"));
    assert!(
        html.contains("data-key=\"k&quot;1&#39;&lt;b&gt;\"")
            || html.contains("data-key=\"k&quot;1'&lt;b&gt;\""),
        "escaped into the attribute"
    );
    assert!(!html.contains("k\"1'<b>"), "never raw in the page");
}

/// Whether headless Chromium is here (Debian's chromium). CI installs it and sets
/// CHAOS_REQUIRE_CHROMIUM, which turns a missing browser into a failure.
fn chromium() -> Option<&'static str> {
    let found = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CHAOS_REQUIRE_CHROMIUM").is_none(),
            "CHAOS_REQUIRE_CHROMIUM is set but chromium is missing"
        );
        eprintln!("SKIPPED: no chromium (apt-get install chromium)");
    }
    found.then_some("chromium")
}

/// Loads `report.html#selftest` in headless Chromium and returns what the page wrote
/// about itself (errors, scroll position, zoom before and after "show on the timeline").
fn selftest(browser: &str, dir: &Path) -> serde_json::Value {
    let profile = tempfile::tempdir().unwrap();
    let url = format!(
        "file://{}#selftest",
        std::fs::canonicalize(dir.join("report.html"))
            .unwrap()
            .display()
    );
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let attr = dom
        .split("data-selftest=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("the page did not finish its script: {dom:.2000}"));
    let json = attr
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
}

/// Issue 13: both kinds of report in a real browser: no script error, the page opens at
/// the top (the verdict), an invalid one opens zoomed to its anomaly, and "show on the
/// timeline" zooms to the operation and selects its key.
#[test]
fn reports_work_in_a_real_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let valid = store.path().join("register/valid");
    let h = generate(&GenConfig {
        ops: 2000,
        ..GenConfig::default()
    });
    make_run(&valid, "register", "2026-11-28T10:00:00Z", &h);
    reports::build(&valid).unwrap();
    let v = selftest(browser, &valid);
    assert_eq!(v["errors"], json!([]), "{v}");
    assert_eq!(v["scrollY"], 0, "{v}");
    assert!(
        v.get("clicked").is_none(),
        "a valid report has nothing to show"
    );

    // 300 writes over 3 s, then a read of a value never written.
    let mut b = HistoryBuilder::new();
    for i in 0..300u64 {
        b.invoke(0, "write", None, json!(i.to_string()), i * 10_000_000)
            .ok(0, "write", json!(i.to_string()), i * 10_000_000 + 1_000_000);
    }
    b.invoke(1, "read", None, json!(null), 3_000_000_000).ok(
        1,
        "read",
        json!("never"),
        3_001_000_000,
    );
    let invalid = store.path().join("register/invalid");
    make_run(&invalid, "register", "2026-11-28T10:01:00Z", &b.build());
    reports::build(&invalid).unwrap();
    let r = selftest(browser, &invalid);
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(r["scrollY"], 0, "opens at the verdict: {r}");
    let end = r["end"].as_f64().unwrap();
    let opened = r["opened"].as_array().unwrap();
    let span =
        |a: &serde_json::Value, b: &serde_json::Value| b.as_f64().unwrap() - a.as_f64().unwrap();
    assert!(
        span(&opened[0], &opened[1]) < end / 2.0,
        "opens zoomed: {r}"
    );
    let c = &r["clicked"];
    let (t0, t1) = (c["t0"].as_f64().unwrap(), c["t1"].as_f64().unwrap());
    assert!(
        t0 <= c["call"].as_f64().unwrap() && c["ret"].as_f64().unwrap() <= t1,
        "{r}"
    );
    assert!(t1 - t0 < end / 2.0, "zoomed in: {r}");
    assert_eq!(c["keyFilter"], c["key"], "its key selected: {r}");
    // The page decoded the compact columns back to the history's times and values.
    assert_eq!(c["id"], 300, "{r}");
    assert_eq!(
        (c["call"].as_f64(), c["ret"].as_f64()),
        (Some(3_000_000.0), Some(3_001_000.0)),
        "{r}"
    );
    assert_eq!(c["output"], "\"never\"", "{r}");
    assert_eq!(c["process"], 1, "{r}");
}

/// Issue 31: a report of an hour-long run's size (here 200,000 operations and an anomaly
/// at the very end) loads in a real browser, opens zoomed on the anomaly with it drawn,
/// and draws the whole run's overview strip. The time it took is printed, not judged
/// (BENCHMARKS.md has the figures for a 514,000-operation report).
#[test]
fn a_large_report_loads_and_draws_its_anomaly() {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("register/large");
    const OPS: u64 = 200_000;
    let mut b = HistoryBuilder::new();
    // Five clients, each on its own register, one operation every 2 ms each: long, and
    // linearizable until the last read.
    let mut last: [Option<String>; 5] = Default::default();
    for i in 0..OPS {
        let (c, t) = ((i % 5) as usize, i / 5 * 2_000_000);
        let (p, key) = (c as i64, Some(format!("k{c}")));
        if i % 3 == 2 {
            b.invoke(p, "read", key.as_deref(), json!(null), t).ok(
                p,
                "read",
                json!(last[c]),
                t + 900_000,
            );
        } else {
            let v = (i / 5).to_string();
            b.invoke(p, "write", key.as_deref(), json!(v), t)
                .ok(p, "write", json!(v), t + 900_000);
            last[c] = Some(v);
        }
    }
    let end = OPS / 5 * 2_000_000;
    b.invoke(5, "read", Some("k0"), json!(null), end).ok(
        5,
        "read",
        json!("never"),
        end + 1_000_000,
    );
    let h = b.build();
    make_run(&run, "register", "2026-12-04T10:00:00Z", &h);
    reports::build(&run).unwrap();
    let started = std::time::Instant::now();
    let r = selftest(browser, &run);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(r["ops"], OPS + 1, "{r}");
    assert!(
        r["anomalyDrawn"].as_u64().unwrap() >= 1,
        "the anomaly is drawn: {r}"
    );
    assert!(r["overviewCols"].as_u64().unwrap() > 100, "{r}");
    let opened = r["opened"].as_array().unwrap();
    let span = opened[1].as_f64().unwrap() - opened[0].as_f64().unwrap();
    assert!(
        span < r["end"].as_f64().unwrap() / 100.0,
        "opens on the anomaly: {r}"
    );
    eprintln!(
        "report of {} operations ({} MB): the page's script {:.0} ms, its load event at {:.0} ms, \
         headless chromium --dump-dom {wall:.2} s",
        OPS + 1,
        std::fs::metadata(run.join("report.html")).unwrap().len() / 1_000_000,
        r["scriptEnd"].as_f64().unwrap() - r["scriptStart"].as_f64().unwrap(),
        r["load"].as_f64().unwrap_or(-1.0),
    );
}

/// A stale read gets one line in plain words above the table, for a reader who has
/// never met a linearizability checker.
#[test]
fn a_stale_read_is_said_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let key = Some("k");
    let mut b = HistoryBuilder::new();
    b.invoke(0, "write", key, json!("1"), 1_000_000)
        .ok(0, "write", json!("1"), 2_000_000);
    b.invoke(1, "write", key, json!("2"), 3_000_000)
        .ok(1, "write", json!("2"), 4_000_000);
    b.invoke(0, "read", key, json!(null), 5_000_000)
        .ok(0, "read", json!("1"), 6_000_000);
    make_run(dir.path(), "stale", "2026-11-26T10:00:00Z", &b.build());
    let page = std::fs::read_to_string(reports::build(dir.path()).unwrap().report).unwrap();
    assert!(
        page.contains(
            "read #2 returned &quot;1&quot; after write #1 of &quot;2&quot; had completed, \
             and no write of &quot;1&quot; began after it."
        ),
        "{}",
        &page[page.find("plain").unwrap_or(0)..][..400.min(page.len())]
    );
    // The header tells what was allowed from what happened: kill was, nothing ran.
    assert!(page.contains("<dt>fault kinds enabled</dt><dd>kill</dd>"));
    assert!(page.contains("<dt>faults that ran</dt><dd>none</dd>"));
    // Not in a store: no link to an index that is not there.
    assert!(!page.contains("all runs"));
}
