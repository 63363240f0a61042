//! `chaos-runner check` as a user runs it: verdict line, results file, exit codes.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_chaos-runner");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const VALID: &str = r#"{"type":"header","schema":"chaos-history","version":1}
{"type":"invoke","process":0,"f":"write","key":"a","value":1,"time":1}
{"type":"invoke","process":1,"f":"read","key":"a","value":null,"time":2}
{"type":"ok","process":0,"f":"write","value":1,"time":3}
{"type":"ok","process":1,"f":"read","value":1,"time":4}
{"type":"nemesis","f":"kill","value":["n1"],"time":5}
"#;

/// A Jepsen log of a write of 3 and then a read of 4: not linearizable.
const STALE_JEPSEN_LOG: &str = "INFO  jepsen.util - 0\t:invoke\t:write\t3\n\
                                INFO  jepsen.util - 0\t:ok\t:write\t3\n\
                                INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
                                INFO  jepsen.util - 1\t:ok\t:read\t4\n";

#[test]
fn verdicts_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let valid = write(dir.path(), "valid.jsonl", VALID);
    let (code, out, _) = run(&["check", &valid]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("VALID: 2 ops, 1 keys"), "{out}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{valid}.check.json")).unwrap())
            .unwrap();
    assert_eq!(results["verdict"], "valid");

    let stale = VALID.replace(
        r#""f":"read","value":1,"time":4"#,
        r#""f":"read","value":2,"time":4"#,
    );
    let invalid = write(dir.path(), "invalid.jsonl", &stale);
    let out_path = dir.path().join("r.json");
    let (code, out, _) = run(&["check", &invalid, "--out", out_path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("INVALID"), "{out}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let failure = &results["failures"][0];
    assert_eq!(failure["op"]["f"], "read");
    assert_eq!(failure["op"]["line"], 3);
    assert!(failure["states"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("read returned 2"));

    // A budget too small to decide is "unknown", exit 2, never "valid".
    let mut hard = String::new();
    for p in 0..30 {
        hard += &format!(
            "{{\"type\":\"invoke\",\"process\":{p},\"f\":\"write\",\"value\":{p},\"time\":{p}}}\n"
        );
    }
    for i in 0..3000 {
        let p = 100 + i;
        let t = 100 + 2 * i;
        hard += &format!("{{\"type\":\"invoke\",\"process\":{p},\"f\":\"read\",\"time\":{t}}}\n");
        hard += &format!(
            "{{\"type\":\"ok\",\"process\":{p},\"f\":\"read\",\"value\":{},\"time\":{}}}\n",
            (i * 7) % 30,
            t + 1
        );
    }
    let hard = write(dir.path(), "hard.jsonl", &hard);
    let (code, out, _) = run(&[
        "check",
        &hard,
        "--model",
        "register",
        "--timeout",
        "0.5",
        "--out",
        "-",
    ]);
    assert!(code == 2 || code == 1, "exit {code}: {out}");
    if code == 2 {
        assert!(out.contains("UNKNOWN") && out.contains("budget"), "{out}");
    }

    // Nothing checked is never "valid": empty, header-only, fault-only, no ok operation.
    let header = "{\"type\":\"header\",\"schema\":\"chaos-history\",\"version\":1}\n";
    let fault = "{\"type\":\"nemesis\",\"f\":\"start-kill\",\"value\":null,\"time\":1}\n";
    let failed = "{\"type\":\"invoke\",\"process\":0,\"f\":\"write\",\"value\":1,\"time\":1}\n\
                  {\"type\":\"fail\",\"process\":0,\"f\":\"write\",\"value\":1,\"time\":2}\n";
    for (name, text) in [
        ("empty.jsonl", String::new()),
        ("header.jsonl", header.to_string()),
        ("fault.jsonl", format!("{header}{fault}")),
        ("failed.jsonl", format!("{header}{failed}")),
    ] {
        let path = write(dir.path(), name, &text);
        let (code, out, _) = run(&["check", &path, "--format", "jsonl"]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains("nothing was checked"), "{name}: {out}");
    }
}

#[test]
fn bad_input_is_an_error_with_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.jsonl",
        &VALID.replace("\"time\":3}", "\"time\":3"),
    );
    let (code, _, err) = run(&["check", &bad]);
    assert_eq!(code, 3);
    assert!(err.contains("line 4"), "{err}");
    // The file's line once, and the column: not serde's "line 1" of the one line.
    assert!(
        err.contains("(column ") && !err.contains("at line 1"),
        "{err}"
    );
    let (code, _, err) = run(&["check", "/no/such/file"]);
    assert_eq!(code, 3);
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, _) = run(&["check", "--no-such-flag"]);
    assert_eq!(code, 3, "usage errors must not look like a verdict");
    let kv = write(
        dir.path(),
        "f.jsonl",
        &VALID.replace("\"write\"", "\"frobnicate\""),
    );
    let (code, _, err) = run(&["check", &kv]);
    assert_eq!(code, 3);
    assert!(err.contains("frobnicate"), "{err}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes"), "{out}");
}

#[test]
fn reads_jepsen_formats_by_sniffing() {
    let dir = tempfile::tempdir().unwrap();
    let edn = write(
        dir.path(),
        "h.edn",
        "[{:process 0, :type :invoke, :f :write, :value 1}\n\
         {:process 0, :type :ok, :f :write, :value 1}\n\
         {:process 1, :type :invoke, :f :cas, :value [1 2]}\n\
         {:process 1, :type :info, :f :cas, :value [1 2]}\n\
         {:process 2, :type :invoke, :f :read, :value nil}\n\
         {:process 2, :type :ok, :f :read, :value 2}]\n",
    );
    let (code, out, err) = run(&["check", &edn]);
    assert_eq!(code, 0, "{out}{err}");
    let log = write(dir.path(), "jepsen.log", STALE_JEPSEN_LOG);
    let (code, out, _) = run(&["check", &log]);
    assert_eq!(code, 1, "{out}");
    // Knossos reading: nil reads are "unknown".
    let nil = write(
        dir.path(),
        "nil.edn",
        "{:process 0 :type :invoke :f :write :value 1}\n{:process 0 :type :ok :f :write :value 1}\n\
         {:process 1 :type :invoke :f :read :value nil}\n{:process 1 :type :ok :f :read :value nil}\n",
    );
    assert_eq!(run(&["check", &nil]).0, 1);
    assert_eq!(run(&["check", &nil, "--nil-read", "any"]).0, 0);
}

/// The first refuted key decides by default; `--all-keys` decides every key.
#[test]
fn the_first_refuted_key_decides_unless_all_keys() {
    let dir = tempfile::tempdir().unwrap();
    // Key "z" is the largest (searched first with one thread) and reads a value never
    // written; keys "a" and "b" are fine.
    let mut text =
        String::from("{\"type\":\"header\",\"schema\":\"chaos-history\",\"version\":1}\n");
    let mut t = 0;
    let mut op = |text: &mut String, p: u32, f: &str, key: &str, v: &str, out: &str| {
        t += 1;
        text.push_str(&format!(
            "{{\"type\":\"invoke\",\"process\":{p},\"f\":\"{f}\",\"key\":\"{key}\",\"value\":{v},\"time\":{t}}}\n"
        ));
        t += 1;
        text.push_str(&format!(
            "{{\"type\":\"ok\",\"process\":{p},\"f\":\"{f}\",\"value\":{out},\"time\":{t}}}\n"
        ));
    };
    for _ in 0..3 {
        op(&mut text, 0, "write", "z", "1", "1");
    }
    op(&mut text, 0, "read", "z", "null", "7");
    op(&mut text, 1, "write", "a", "1", "1");
    op(&mut text, 2, "write", "b", "1", "1");
    let file = write(dir.path(), "three.jsonl", &text);
    let (code, out, _) = run(&["check", &file, "--threads", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 more keys not decided"), "{out}");
    let (code, out, _) = run(&["check", &file, "--threads", "1", "--all-keys"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(2 valid, 1 invalid, 0 unknown)"), "{out}");
    assert!(!out.contains("not decided"), "{out}");
}

/// `check --report DIR`: the report `test` writes, for a history made elsewhere (here a
/// Jepsen log); a folder that is not empty is refused before anything is done.
#[test]
fn a_report_for_a_history_made_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let log = write(dir.path(), "jepsen.log", STALE_JEPSEN_LOG);
    let report = dir.path().join("report");
    let (code, out, err) = run(&["check", &log, "--report", report.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("report:  "), "{out}");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("INVALID") && html.contains("Why it is not linearizable"));
    assert!(html.contains("jepsen.log"), "named after its history");
    for f in [
        "history.jsonl",
        "results.json",
        "test.json",
        "latency-raw.svg",
    ] {
        assert!(report.join(f).is_file(), "{f}");
    }
    let (code, _, err) = run(&["check", &log, "--report", report.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.contains("not empty"), "{err}");
    // Only what is known: no seed, nodes or clients of a run that never was, no link to
    // a store's index that is not there.
    for absent in [
        "<dt>seed</dt>",
        "<dt>nodes</dt>",
        "0 clients",
        "all runs",
        "p50 - ms",
    ] {
        assert!(!html.contains(absent), "{absent}");
    }
}

/// A history of our own keeps its faults and nodes in the report's copy, and a history in
/// a run's folder takes that run's record (seed, nodes, workload).
#[test]
fn a_report_of_our_own_history_keeps_its_faults_and_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let h = write(&run_dir, "history.jsonl", VALID);
    let record = checker::record::TestRecord {
        name: "register".into(),
        seed: 77,
        nodes: 3,
        workload: "register".into(),
        keys: 5,
        concurrency: 4,
        ..Default::default()
    };
    std::fs::write(
        run_dir.join("test.json"),
        serde_json::to_string(&record).unwrap(),
    )
    .unwrap();
    let report = dir.path().join("report");
    let (code, out, err) = run(&["check", &h, "--report", report.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let copy = std::fs::read_to_string(report.join("history.jsonl")).unwrap();
    assert!(
        copy.contains("\"nemesis\""),
        "the faults were dropped: {copy}"
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("<dt>seed</dt><dd>77</dd>"));
    assert!(html.contains("<dt>faults that ran</dt>"));
}

/// Issue 14: the append shape (50 clients, 10 keys of text, 2,000 operations) is decided
/// both ways, every key with `--all-keys`; and a budget smaller than the history itself is
/// an unknown that says so, not a crash or a verdict.
#[test]
fn append_histories_are_decided_and_the_budget_is_the_whole_checks() {
    use checker::generate::{corrupt_reads, generate, write_jsonl, GenConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for invalid in [false, true] {
        let mut h = generate(&GenConfig::append_shape(14));
        if invalid {
            assert_eq!(corrupt_reads(&mut h, 3).len(), 3);
        }
        let path = dir.path().join(format!("append-{invalid}.jsonl"));
        write_jsonl(&h, std::fs::File::create(&path).unwrap()).unwrap();
        paths.push(path.display().to_string());
    }
    let kv = ["--model", "kv", "--missing-is-empty"];
    let (code, out, _) = run(&[&["check", &paths[0]][..], &kv, &["--all-keys"]].concat());
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&[&["check", &paths[1]][..], &kv].concat());
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = run(&[&["check", &paths[1]][..], &kv, &["--all-keys"]].concat());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(7 valid, 3 invalid, 0 unknown)"), "{out}");
    // A 2,000-operation history fits in 1 MiB; a 200,000-operation one does not.
    let big = dir.path().join("big.jsonl");
    let h = generate(&GenConfig {
        ops: 200_000,
        keys: 10,
        kv: true,
        ..GenConfig::default()
    });
    write_jsonl(&h, std::fs::File::create(&big).unwrap()).unwrap();
    let big = big.display().to_string();
    let (code, out, err) = run(&["check", &big, "--model", "kv", "--memory-limit", "1"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("memory budget exhausted"), "{out}");
}

/// Issue 24, item 3: values nested 20,000 deep, in each format `check` reads, are an
/// error naming the line (exit 3), not a stack overflow (SIGABRT, exit 134).
#[test]
fn deeply_nested_values_are_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let deep = |open: &str, close: &str| format!("{}{}", open.repeat(n), close.repeat(n));
    let edn = write(
        dir.path(),
        "n.edn",
        &format!(
            "{{:type :invoke, :f :write, :value {}, :process 0, :time 1}}\n",
            deep("[", "]")
        ),
    );
    let log = write(
        dir.path(),
        "n.log",
        &format!(
            "INFO  jepsen.util - 0\t:invoke\t:write\t{}\n",
            deep("(", ")")
        ),
    );
    let jsonl = write(
        dir.path(),
        "n.jsonl",
        &format!(
            "{{\"type\":\"invoke\",\"process\":0,\"f\":\"write\",\"value\":{},\"time\":1}}\n",
            deep("[", "]")
        ),
    );
    for (file, format) in [(&edn, "edn"), (&log, "jepsen-log"), (&jsonl, "jsonl")] {
        let (code, _, err) = run(&["check", file, "--format", format]);
        assert_eq!(code, 3, "{format}: {err}");
        assert!(err.contains("line 1"), "{format}: {err}");
    }
    let (code, _, err) = run(&["check", &edn]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nested more than 256"), "{err}");
    // Nesting an operation could have is read.
    let fine = write(
        dir.path(),
        "fine.edn",
        &format!(
            "{{:type :invoke, :f :write, :value {}, :process 0, :time 1}}\n\
             {{:type :info, :f :write, :process 0, :time 2}}\n",
            "[".repeat(100) + &"]".repeat(100)
        ),
    );
    let (code, out, err) = run(&["check", &fine, "--model", "register"]);
    assert_eq!(code, 2, "{out}{err}");
}

/// Issue 24, item 3: many writes of one key that never complete (a long partition's
/// shape) and one read of a value nobody wrote: decided, not searched for minutes.
/// (The times, 10k to 1M operations, are in BENCHMARKS.md; the search's growth is
/// asserted in checker's search tests.)
#[test]
fn many_open_writes_of_one_key_are_decided() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000;
    let mut text = String::new();
    for i in 0..n {
        text += &format!(
            "{{\"type\":\"invoke\",\"process\":{i},\"f\":\"write\",\"key\":\"k\",\"value\":{i},\"time\":{}}}\n",
            i + 1
        );
    }
    text += &format!(
        "{{\"type\":\"invoke\",\"process\":{n},\"f\":\"read\",\"key\":\"k\",\"value\":null,\"time\":{}}}\n\
         {{\"type\":\"ok\",\"process\":{n},\"f\":\"read\",\"key\":\"k\",\"value\":-5,\"time\":{}}}\n",
        n + 10,
        n + 20
    );
    let file = write(dir.path(), "open.jsonl", &text);
    let (code, out, err) = run(&["check", &file, "--model", "register"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("read returned -5"), "{out}");
    // And with a read of a value one of them wrote: valid.
    let file = write(dir.path(), "ok.jsonl", &text.replace("-5", "4321"));
    let (code, out, err) = run(&["check", &file, "--model", "register"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// A set history checked as a set and as a queue: an acknowledged element missing from the
/// last read is lost; a read out of order is fine for a set and reordered for a queue.
#[test]
fn set_and_queue_histories_are_checked_element_by_element() {
    let dir = tempfile::tempdir().unwrap();
    let line = |p: u32, t: &str, f: &str, v: &str, time: u32| {
        format!(r#"{{"type":"{t}","process":{p},"f":"{f}","key":"s","value":{v},"time":{time}}}"#)
    };
    let history = |last: &str| {
        [
            line(0, "invoke", "add", r#""1""#, 1),
            line(0, "ok", "add", r#""1""#, 2),
            line(1, "invoke", "add", r#""2""#, 3),
            line(1, "ok", "add", r#""2""#, 4),
            line(2, "invoke", "read-all", "null", 5),
            line(2, "ok", "read-all", r#"["2","1"]"#, 6),
            line(3, "invoke", "read-all", "null", 7),
            line(3, "ok", "read-all", last, 8),
        ]
        .join("\n")
            + "\n"
    };
    let ok = write(dir.path(), "set.jsonl", &history(r#"["2","1"]"#));
    let lost = write(dir.path(), "lost.jsonl", &history(r#"["2"]"#));
    let reordered = write(dir.path(), "queue.jsonl", &history(r#"["1","2"]"#));
    let (code, out, _) = run(&["check", &ok, "--model", "set", "--out", "-"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&["check", &lost, "--model", "set", "--out", "-"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(r#"element \"1\" is lost"#), "{out}");
    let (code, _, _) = run(&["check", &reordered, "--model", "set", "--out", "-"]);
    assert_eq!(code, 0, "as a set, order does not matter");
    let (code, out, _) = run(&["check", &reordered, "--model", "queue", "--out", "-"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("reordered"), "{out}");
}

/// A results file that cannot be written (here a folder stands where it would go, as a
/// read-only folder would for a user) does not hide the verdict: it is printed, the
/// exit code is the verdict's, and the warning says how to write elsewhere.
#[test]
fn an_unwritable_results_file_keeps_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let valid = write(dir.path(), "valid.jsonl", VALID);
    std::fs::create_dir(format!("{valid}.check.json")).unwrap();
    let (code, out, err) = run(&["check", &valid]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("VALID"), "{out}");
    assert!(
        err.contains("cannot write") && err.contains("--out"),
        "{err}"
    );
}

/// Transactions in our JSON Lines, with a hand-written read skew: T3 saw T1's append to
/// y but not its append to x.
const READ_SKEW: &str = r#"{"type":"header","schema":"chaos-history","version":1}
{"type":"invoke","process":0,"f":"txn","value":[["append","x",1],["append","y",1]],"time":10}
{"type":"invoke","process":1,"f":"txn","value":[["r","x",null],["r","y",null]],"time":11}
{"type":"ok","process":0,"f":"txn","value":[["append","x",1],["append","y",1]],"time":20}
{"type":"ok","process":1,"f":"txn","value":[["r","x",[]],["r","y",[1]]],"time":21}
"#;

#[test]
fn transaction_histories_are_judged_against_a_consistency_model() {
    let dir = tempfile::tempdir().unwrap();
    let skew = write(dir.path(), "skew.jsonl", READ_SKEW);
    let (code, out, err) = run(&["check", "--model", "list-append", &skew]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("INVALID: 2 transactions"), "{out}");
    assert!(out.contains("G-single"), "{out}");
    assert!(out.contains("breaks snapshot-isolation"), "{out}");
    assert!(out.contains("satisfies read-committed"), "{out}");
    assert!(out.contains("through T1 (skew.jsonl line 3)"), "{out}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{skew}.check.json")).unwrap())
            .unwrap();
    let a = &results["txn"]["anomalies"][0];
    assert_eq!(a["kind"], "G-single");
    assert!(
        a["explanation"][0].as_str().unwrap().contains("without 1"),
        "{a}"
    );
    // Read committed allows read skew.
    let (code, out, _) = run(&[
        "check",
        "--model",
        "list-append",
        "--consistency-model",
        "read-committed",
        &skew,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("VALID"), "{out}");
    // The same history in Elle's EDN form.
    let edn = write(
        dir.path(),
        "skew.edn",
        "{:type :invoke, :process 0, :f :txn, :value [[:append :x 1] [:append :y 1]], :index 0}\n\
         {:type :invoke, :process 1, :f :txn, :value [[:r :x nil] [:r :y nil]], :index 1}\n\
         {:type :ok, :process 0, :f :txn, :value [[:append :x 1] [:append :y 1]], :index 2}\n\
         {:type :ok, :process 1, :f :txn, :value [[:r :x []] [:r :y [1]]], :index 3}\n",
    );
    let (code, out, err) = run(&["check", "--model", "list-append", &edn]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("G-single"), "{out}");
    // Wrong or missing model: a named error, exit 3.
    let (code, _, err) = run(&["check", "--model", "rw-register", &skew]);
    assert_eq!(code, 3);
    assert!(err.contains("pass --model list-append"), "{err}");
    let (code, _, err) = run(&["check", &skew]);
    assert_eq!(code, 3);
    assert!(err.contains("--model list-append or"), "{err}");
    let bad = write(
        dir.path(),
        "bad.jsonl",
        &READ_SKEW.replace(r#"["r","y",[1]]"#, r#"["r","y","one"]"#),
    );
    let (code, _, err) = run(&["check", "--model", "list-append", &bad]);
    assert_eq!(code, 3);
    assert!(err.contains("transaction invoked on line 3"), "{err}");
}
