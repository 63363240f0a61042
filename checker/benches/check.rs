//! `cargo bench -p checker`: checker speed on generated histories. Prints the median of
//! several runs per case (the search only; parsing excluded except where named) and the
//! peak memory of the JSONL case, measured in a child process of its own.
//!
//! `cargo bench -p checker -- NAME` runs only the cases whose name contains NAME.

use std::time::{Duration, Instant};

use checker::check::{check, CheckOptions};
use checker::generate::{corrupt_reads, generate, write_jsonl, GenConfig};
use checker::history::{read_jsonl, History};
use checker::model::{KeyValue, Model, Register};
use checker::txn::generate::{history as txn_history, stale_read, TxnGenConfig};
use checker::txn::{check_txns, transactions, TxnOptions};
use checker::{HistoryBuilder, Verdict};
use serde_json::{json, Value};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn time_check<M: Model>(name: &str, model: &M, h: &History, runs: usize, opts: &CheckOptions) {
    let mut times = Vec::new();
    let mut verdict = Verdict::Unknown;
    let mut configs = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = check(model, h, opts).unwrap();
        times.push(t.elapsed());
        verdict = r.verdict;
        configs = r.configurations;
    }
    println!(
        "{name:<44} {:>10.1} ms  median of {runs}  ops {:>8}  verdict {:<7}  configs {configs}",
        median(times).as_secs_f64() * 1e3,
        h.ops.len(),
        verdict.as_str()
    );
}

fn register_case(ops: usize, seed: u64) -> History {
    generate(&GenConfig {
        seed,
        processes: 10,
        ops,
        keys: 1,
        values: 5,
        info_pct: 2,
        ..GenConfig::default()
    })
}

fn kv_case(ops: usize) -> History {
    generate(&GenConfig {
        seed: 7,
        processes: 50,
        ops,
        keys: 1000,
        values: 1_000_000,
        read_pct: 50,
        write_pct: 40,
        info_pct: 1,
        kv: true,
        append: false,
    })
}

/// Jepsen-shaped: ~80 operations on one register, ~15 of them timed-out writes and cas.
fn jepsen_shape(seed: u64) -> History {
    generate(&GenConfig {
        seed,
        processes: 5,
        ops: 80,
        keys: 1,
        values: 5,
        read_pct: 40,
        write_pct: 30,
        info_pct: 19,
        kv: false,
        append: false,
    })
}

/// Many concurrent writes of distinct values that never complete, then reads.
fn pathological(pending: i64, reads: i64) -> History {
    let mut b = HistoryBuilder::new();
    for p in 0..pending {
        b.invoke(p, "write", None, json!(p), p as u64);
    }
    let mut t = 1000;
    for i in 0..reads {
        let p = 10_000 + i;
        b.invoke(p, "read", None, Value::Null, t)
            .ok(p, "read", json!((i * 13) % pending), t + 1);
        t += 2;
    }
    b.build()
}

fn child_jsonl(path: &str) {
    let t = Instant::now();
    let file = std::fs::File::open(path).unwrap();
    let h = read_jsonl(std::io::BufReader::with_capacity(1 << 20, file)).unwrap();
    let parsed = t.elapsed();
    let r = check(
        &KeyValue {
            missing_is_empty: false,
        },
        &h,
        &CheckOptions::default(),
    )
    .unwrap();
    println!(
        "{} {} {} {}",
        parsed.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib(),
        r.verdict.as_str()
    );
}

/// Issue 14's append shape: 50 clients, 10 keys of text, ~2,000 operations, mostly
/// appends; `invalid` swaps two suffixes in three early gets (three keys refuted).
fn append_shape(invalid: bool) -> History {
    let mut h = generate(&GenConfig::append_shape(14));
    if invalid {
        corrupt_reads(&mut h, 3);
    }
    h
}

/// Checks a history with given options: the verdict and the configurations searched.
type Checker = Box<dyn Fn(&History, &CheckOptions) -> (Verdict, usize)>;

/// The shapes measured in a child process each (peak RSS is per process): name, the
/// history, the model. `--memory-limit` is the default 1 GiB unless the name says.
fn shape(name: &str) -> Option<(History, Checker)> {
    let kv = |empty: bool| {
        Box::new(move |h: &History, o: &CheckOptions| {
            let r = check(
                &KeyValue {
                    missing_is_empty: empty,
                },
                h,
                o,
            )
            .unwrap();
            (r.verdict, r.configurations)
        }) as Checker
    };
    let cas = || {
        Box::new(|h: &History, o: &CheckOptions| {
            let r = check(&Register::new(true), h, o).unwrap();
            (r.verdict, r.configurations)
        }) as Checker
    };
    Some(match name {
        "append-valid" => (append_shape(false), kv(true)),
        "append-invalid" => (append_shape(true), kv(true)),
        "jepsen-register" => (jepsen_shape(3), cas()),
        "register-100k" => (register_case(100_000, 3), cas()),
        // Harder still: it fills any budget this machine has (to measure the bound).
        "register-hard" => (
            generate(&GenConfig {
                seed: 6,
                processes: 40,
                ops: 20_000,
                keys: 1,
                values: 1_000_000,
                read_pct: 20,
                write_pct: 80,
                info_pct: 50,
                ..GenConfig::default()
            }),
            cas(),
        ),
        // A register whose writes often time out: the search's hard case, which runs
        // into the budget (what its peak memory is measured for).
        "register-info" => (
            generate(&GenConfig {
                seed: 5,
                processes: 30,
                ops: 5_000,
                keys: 2,
                values: 1000,
                read_pct: 30,
                write_pct: 60,
                info_pct: 40,
                ..GenConfig::default()
            }),
            cas(),
        ),
        "kv-1m" => (kv_case(1_000_000), kv(false)),
        _ => return None,
    })
}

/// In a child: checks one shape (fast, or `--all-keys` when `all` is set) with a budget
/// of `mib` MiB, and prints "ms configs peak_rss_mib history_mib verdict".
fn child_shape(name: &str, all: bool, mib: u64) {
    let (h, run) = shape(name).expect("a known shape");
    let history_mib = peak_rss_mib();
    let opts = CheckOptions {
        all_keys: all,
        memory_limit: CheckOptions::bytes_for_mib(mib),
        timeout: Some(Duration::from_secs(120)),
        ..CheckOptions::default()
    };
    let t = Instant::now();
    let (verdict, configs) = run(&h, &opts);
    println!(
        "{} {configs} {} {history_mib} {}",
        t.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib(),
        verdict.as_str()
    );
}

/// The set workload's shape at scale: 1,000,000 adds by 10 clients into sets of 1,000
/// (as `workloads` bounds them), a read of the set every 100 adds and a final read of
/// each, one element lost.
fn set_case() -> History {
    let mut b = HistoryBuilder::new();
    let mut t = 0u64;
    let mut final_reads = Vec::new();
    for set in 0..1000u64 {
        let key = format!("s{set}");
        let mut members: Vec<Value> = Vec::new();
        for i in 0..1000u64 {
            let e = json!((set * 1000 + i).to_string());
            let p = (i % 10) as i64;
            b.invoke(p, "add", Some(&key), e.clone(), t);
            b.ok(p, "add", e.clone(), t + 5);
            t += 3;
            members.push(e);
            if i % 100 == 99 {
                b.invoke(10, "read-all", Some(&key), Value::Null, t);
                b.ok(10, "read-all", Value::Array(members.clone()), t + 2);
                t += 3;
            }
        }
        if set == 500 {
            members.remove(10);
        }
        final_reads.push((key, members));
    }
    for (key, members) in final_reads {
        b.invoke(11, "read-all", Some(&key), Value::Null, t);
        b.ok(11, "read-all", Value::Array(members), t + 2);
        t += 3;
    }
    b.build()
}

fn time_set() {
    let h = set_case();
    let mut times = Vec::new();
    let mut lost = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let r = checker::set::check_set(&h, true).unwrap();
        times.push(t.elapsed());
        lost = r.sets.iter().map(|s| s.lost.len()).sum::<usize>();
    }
    println!(
        "set 1M adds, 1000 sets, 11k reads: median {:.3} s, {lost} lost",
        median(times).as_secs_f64()
    );
}

/// In a child: reads a transaction history from JSONL and checks it for strict
/// serializability; prints "read_ms total_ms peak_rss_mib verdict counts".
fn child_txn(path: &str) {
    let t = Instant::now();
    let file = std::fs::File::open(path).unwrap();
    let txns =
        checker::txn::parse::read_jsonl(std::io::BufReader::with_capacity(1 << 20, file)).unwrap();
    let parsed = t.elapsed();
    let r = check_txns(&txns, &TxnOptions::default(), t).unwrap();
    let counts: Vec<String> = r.counts.iter().map(|(k, n)| format!("{k}x{n}")).collect();
    println!(
        "{} {} {} {} {}",
        parsed.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib(),
        r.verdict.as_str(),
        if counts.is_empty() {
            "-".to_string()
        } else {
            counts.join(",")
        }
    );
}

/// Issue 32's speed target: 1,000,000 list-append transactions (10 keys active at a
/// time, lengths 1-4), valid and with one stale read, each read from a JSONL file and
/// checked in a child process of its own (peak RSS is per process); and the check alone,
/// in memory.
fn time_txn() {
    let cfg = TxnGenConfig {
        seed: 32,
        txns: 1_000_000,
        ..TxnGenConfig::default()
    };
    let valid = txn_history(&cfg);
    let mut invalid = valid.clone();
    assert!(stale_read(&mut invalid, 500_000));
    for (name, h) in [("valid", &valid), ("one stale read", &invalid)] {
        let txns = transactions(h).unwrap();
        let mut times = Vec::new();
        let mut verdict = Verdict::Unknown;
        for _ in 0..3 {
            let t = Instant::now();
            let r = check_txns(&txns, &TxnOptions::default(), t).unwrap();
            times.push(t.elapsed());
            verdict = r.verdict;
        }
        println!(
            "{:<44} {:>10.1} ms  median of 3  txns {}  verdict {}",
            format!("txn list-append 1M {name} (check only)"),
            median(times).as_secs_f64() * 1e3,
            txns.txns.len(),
            verdict.as_str()
        );
        let dir = tempfile_dir();
        let path = dir.join("history.jsonl");
        let f = std::fs::File::create(&path).unwrap();
        write_jsonl(h, std::io::BufWriter::new(f)).unwrap();
        let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        let mut rows: Vec<(f64, f64, f64, String)> = Vec::new();
        for _ in 0..3 {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .env("CHECKER_BENCH_TXN", &path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let w: Vec<&str> = text.split_whitespace().collect();
            rows.push((
                w[0].parse().unwrap(),
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
                format!("{} {}", w[3], w[4]),
            ));
        }
        rows.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (read, total, rss, what) = &rows[1];
        println!(
            "{:<44} {:>10.1} ms  median of 3  file {mb:.0} MB, read {read:.0} ms, peak RSS {rss:.0} MiB, {what}",
            format!("txn list-append 1M {name} (from JSONL)"),
            total
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Issue 32, item 4: the fixed cost of small histories. Public-style shapes of 20 to 200
/// operations (a register of one key with unknown outcomes, as Jepsen's etcd tests
/// record; maps of 2 to 8 keys, as key-value tests do), each checked on its own, as a
/// CI gate checking several small files would (each the best of 5). Prints the median
/// and the slowest per size band.
fn time_small() {
    let opts = CheckOptions::default();
    // (shape, band, each history's best time and configurations)
    type Row<'a> = (&'a str, usize, Vec<(Duration, usize)>);
    let mut rows: Vec<Row> = Vec::new();
    for (shape, keys) in [("register, 1 key", 1usize), ("kv, 2-8 keys", 8)] {
        for band in [50usize, 100, 200] {
            let mut each = Vec::new();
            for seed in 0..200u64 {
                let ops = band / 2 + (seed as usize * 7919) % (band / 2 + 1);
                let h = generate(&GenConfig {
                    seed: 50_000 + seed,
                    processes: 10,
                    ops,
                    keys: if keys == 1 { 1 } else { 2 + seed as usize % 7 },
                    values: 5,
                    read_pct: 40,
                    write_pct: 40,
                    info_pct: 5,
                    kv: keys > 1,
                    append: false,
                });
                // Warm once, then the best of 5: the first call of a shape pays page
                // faults that a gate checking many files pays once, and the shared cores
                // add noise that is not the checker's.
                let _ = run_small(&h, keys > 1, &opts);
                let best = (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        std::hint::black_box(run_small(&h, keys > 1, &opts));
                        t.elapsed()
                    })
                    .min()
                    .expect("five runs");
                each.push((best, configs_of(&h, keys > 1, &opts)));
            }
            rows.push((shape, band, each));
        }
    }
    for (shape, band, mut each) in rows {
        each.sort_unstable();
        let at = |q: f64| each[((each.len() - 1) as f64 * q) as usize].0.as_secs_f64() * 1e3;
        let per_config: f64 = each
            .iter()
            .map(|(t, c)| t.as_secs_f64() * 1e6 / (*c).max(1) as f64)
            .sum::<f64>()
            / each.len() as f64;
        println!(
            "{:<44} {:>10.3} ms median, p99 {:.3} ms, max {:.3} ms ({} configurations)  200 histories of {}-{band} ops, {per_config:.2} us per configuration",
            format!("small {shape}, up to {band} ops (each)"),
            at(0.5),
            at(0.99),
            at(1.0),
            each.last().map_or(0, |e| e.1),
            band / 2
        );
    }
}

fn configs_of(h: &History, kv: bool, opts: &CheckOptions) -> usize {
    if kv {
        let model = KeyValue {
            missing_is_empty: false,
        };
        check(&model, h, opts).unwrap().configurations
    } else {
        check(&Register::new(true), h, opts).unwrap().configurations
    }
}

fn run_small(h: &History, kv: bool, opts: &CheckOptions) -> Verdict {
    if kv {
        check(
            &KeyValue {
                missing_is_empty: false,
            },
            h,
            opts,
        )
        .unwrap()
        .verdict
    } else {
        check(&Register::new(true), h, opts).unwrap().verdict
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("checker-bench-txn-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn main() {
    if let Ok(path) = std::env::var("CHECKER_BENCH_JSONL") {
        child_jsonl(&path);
        return;
    }
    if let Ok(path) = std::env::var("CHECKER_BENCH_TXN") {
        child_txn(&path);
        return;
    }
    if let Ok(spec) = std::env::var("CHECKER_BENCH_SHAPE") {
        let mut it = spec.split(' ');
        let (name, mode, mib) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        child_shape(name, mode == "all-keys", mib.parse().unwrap());
        return;
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let opts = CheckOptions::default();
    let cas = Register::new(true);
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    if want("set 1M adds") {
        time_set();
    }
    if want("txn") {
        time_txn();
    }
    for (name, ops, runs) in [
        ("register 10 procs 1k ops", 1_000, 7),
        ("register 10 procs 10k ops", 10_000, 5),
        ("register 10 procs 100k ops", 100_000, 5),
    ] {
        if want(name) {
            time_check(name, &cas, &register_case(ops, 3), runs, &opts);
        }
    }
    if want("jepsen-shape") {
        let histories: Vec<History> = (0..200).map(jepsen_shape).collect();
        let infos: usize = histories
            .iter()
            .map(|h| h.ops.iter().filter(|o| o.ret.is_none()).count())
            .sum();
        let mut times = Vec::new();
        let mut invalid = 0;
        for _ in 0..5 {
            let t = Instant::now();
            invalid = 0;
            for h in &histories {
                if check(&cas, h, &opts).unwrap().verdict != Verdict::Valid {
                    invalid += 1;
                }
            }
            times.push(t.elapsed());
        }
        println!(
            "{:<44} {:>10.1} ms  median of 5  200 histories of 80 ops, {:.1} info each, {invalid} not valid",
            "jepsen-shape x200 (total)",
            median(times).as_secs_f64() * 1e3,
            infos as f64 / 200.0
        );
    }
    if want("small-single-key") {
        // Issue 14's target shape: 100 operations on one register, about 15 of them `info`;
        // each history timed on its own (no batch amortises a fixed cost).
        let histories: Vec<History> = (0..500)
            .map(|seed| {
                generate(&GenConfig {
                    seed: 10_000 + seed,
                    processes: 10,
                    ops: 100,
                    keys: 1,
                    values: 5,
                    read_pct: 40,
                    write_pct: 30,
                    info_pct: 15,
                    kv: false,
                    append: false,
                })
            })
            .collect();
        let infos: usize = histories
            .iter()
            .map(|h| h.ops.iter().filter(|o| o.ret.is_none()).count())
            .sum();
        let mut each = Vec::with_capacity(histories.len() * 3);
        for _ in 0..3 {
            for h in &histories {
                let t = Instant::now();
                let r = check(&cas, h, &opts).unwrap();
                each.push(t.elapsed());
                std::hint::black_box(r);
            }
        }
        each.sort_unstable();
        let at = |q: f64| each[((each.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        println!(
            "{:<44} {:>10.1} us median, p90 {:.1} us  500 histories of 100 ops, {:.1} info each",
            "small single-key (each)",
            at(0.5),
            at(0.9),
            infos as f64 / 500.0
        );
    }
    if want("small-histories") {
        time_small();
    }
    if want("pathological") {
        let h = pathological(60, 3000);
        let budget = CheckOptions {
            timeout: Some(Duration::from_secs(10)),
            ..CheckOptions::default()
        };
        time_check(
            "pathological 60 pending writes, 3k reads",
            &Register::new(false),
            &h,
            3,
            &budget,
        );
    }
    if want("open-writes") {
        // Issue 24: a long partition's shape, at its extreme: every write of one key
        // timed out, then one read of a value nobody wrote (invalid) or of one of them.
        for (pending, read, runs) in [
            (10_000i64, -5i64, 5),
            (100_000, -5, 5),
            (1_000_000, -5, 3),
            (1_000_000, 777_777, 3),
        ] {
            let mut b = HistoryBuilder::new();
            for p in 0..pending {
                b.invoke(p, "write", Some("k"), json!(p), p as u64);
            }
            let t = pending as u64 + 10;
            b.invoke(pending, "read", Some("k"), Value::Null, t).ok(
                pending,
                "read",
                json!(read),
                t + 1,
            );
            let name = format!("open-writes {pending} info, read {read}");
            time_check(&name, &Register::new(false), &b.build(), runs, &opts);
        }
    }
    if want("kv") {
        let h = kv_case(1_000_000);
        time_check(
            "kv 1000 keys 50 procs 1M ops",
            &KeyValue {
                missing_is_empty: false,
            },
            &h,
            3,
            &opts,
        );
    }
    // Every shape, fast and --all-keys, each in a child process of its own: time of the
    // check alone, configurations, peak RSS against the budget plus the history.
    // register-hard fills whatever budget it gets: 1 GiB would take minutes per run.
    for (name, budgets) in [
        ("append-valid", [1024u64, 64]),
        ("append-invalid", [1024, 64]),
        ("jepsen-register", [1024, 64]),
        ("register-100k", [1024, 64]),
        ("register-info", [1024, 64]),
        ("register-hard", [256, 64]),
        ("kv-1m", [1024, 64]),
    ] {
        if !want(&format!("shape {name}")) {
            continue;
        }
        for mode in ["fast", "all-keys"] {
            for mib in budgets {
                let mut rows = Vec::new();
                for _ in 0..3 {
                    let out = std::process::Command::new(std::env::current_exe().unwrap())
                        .env("CHECKER_BENCH_SHAPE", format!("{name} {mode} {mib}"))
                        .output()
                        .unwrap();
                    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    let f: Vec<String> = line.split(' ').map(String::from).collect();
                    let ms: f64 = f.first().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                    rows.push((ms, f));
                }
                rows.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (ms, f) = &rows[1];
                let get = |i: usize| f.get(i).map_or("?", String::as_str);
                let rss: f64 = get(2).parse().unwrap_or(f64::NAN);
                let hist: f64 = get(3).parse().unwrap_or(f64::NAN);
                println!(
                    "shape {name:<16} {mode:<8} budget {mib:>4} MiB {ms:>10.3} ms  configs {:>10}  peak RSS {rss:>7.1} MiB (history {hist:.1} MiB, bound {:.0})  {}",
                    get(1),
                    1.25 * mib as f64 + hist,
                    get(4)
                );
            }
        }
    }
    if want("jsonl") {
        let h = kv_case(1_000_000);
        let dir = std::env::temp_dir().join(format!("checker-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        let f = std::fs::File::create(&path).unwrap();
        write_jsonl(&h, std::io::BufWriter::new(f)).unwrap();
        drop(h);
        let size = std::fs::metadata(&path).unwrap().len();
        let mut totals = Vec::new();
        let mut line = String::new();
        for _ in 0..3 {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .env("CHECKER_BENCH_JSONL", &path)
                .output()
                .unwrap();
            line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let total: f64 = line
                .split(' ')
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            totals.push(Duration::from_secs_f64(total / 1e3));
        }
        let parts: Vec<&str> = line.split(' ').collect();
        println!(
            "{:<44} {:>10.1} ms  median of 3  ({} MB file; last run: parse {} ms, peak RSS {} MiB, {})",
            "read + check 1M-op JSONL (kv)",
            median(totals).as_secs_f64() * 1e3,
            size / 1_000_000,
            parts.first().map_or("?", |s| s.split('.').next().unwrap_or(s)),
            parts.get(2).map_or("?", |s| s.split('.').next().unwrap_or(s)),
            parts.get(3).unwrap_or(&"?"),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
