//! `report.html`: one self-contained file (inline CSS, JS and SVG, no network).

use std::collections::BTreeMap;
use std::fmt::Write;

use checker::check::{KeyFailure, OpSummary};
use checker::history::Outcome;
use serde::Serialize;
use serde_json::Value;

use crate::data::Run;
use crate::layout::lanes;

pub use crate::escape::esc;

fn short(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::String(s) => format!("{s:?}"),
        // A whole set read: its size, and where it ends (the history has every element;
        // a report that embedded them all would outgrow the history itself).
        Value::Array(a) if a.len() > 8 => format!(
            "[{} elements: {} .. {}]",
            a.len(),
            a[..3].iter().map(short).collect::<Vec<_>>().join(", "),
            a[a.len() - 3..]
                .iter()
                .map(short)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        v => v.to_string(),
    }
}

/// A time on the history clock, to the microsecond: the order of two events a few
/// microseconds apart is often the whole proof.
fn secs(ns: u64) -> String {
    format!("{:.6} s", ns as f64 / 1e9)
}

/// How far apart two history times are, in words ("228 µs", "4.1 ms", "2.37 s").
fn gap(ns: u64) -> String {
    match ns {
        n if n < 10_000 => format!("{:.1} µs", n as f64 / 1e3),
        n if n < 1_000_000 => format!("{} µs", n / 1_000),
        n if n < 1_000_000_000 => format!("{:.1} ms", n as f64 / 1e6),
        n => format!("{:.2} s", n as f64 / 1e9),
    }
}

/// Gives each fault the first lane free at its start (lanes end where their last fault
/// ends): overlapping faults get lanes of their own.
fn pack_lanes<'a>(
    faults: impl Iterator<Item = &'a crate::data::Fault>,
    lane_ends: &mut Vec<f64>,
) -> Vec<(&'a crate::data::Fault, usize)> {
    faults
        .map(|f| {
            let lane = match lane_ends.iter().position(|&e| e <= f.start) {
                Some(l) => l,
                None => {
                    lane_ends.push(0.0);
                    lane_ends.len() - 1
                }
            };
            // A point event (a crash) still takes a sliver of its lane.
            lane_ends[lane] = f.end.max(f.start + 1e-3);
            (f, lane)
        })
        .collect()
}

/// The timeline's data as the page reads it (`id="data"`): columns of numbers, written
/// straight to JSON. Typed columns take 8 bytes a cell where a `Value` took 32 and a
/// second copy on its way to text; an hour's run has a quarter of a million operations.
#[derive(Debug, Serialize)]
struct Timeline {
    ops: Rows,
    vals: Vec<String>,
    keys: Vec<String>,
    fns: Vec<String>,
    procs: Vec<String>,
    end: u64,
    faults: Vec<FaultBar>,
    flanes: usize,
    failing: Vec<usize>,
    prefix: Vec<usize>,
}

/// One array per field of the operations, in the history's order.
#[derive(Debug, Serialize)]
struct Rows {
    lane: Vec<usize>,
    /// Index into `keys`, -1 for none.
    key: Vec<i64>,
    /// Index into `fns`.
    #[serde(rename = "fn")]
    func: Vec<usize>,
    /// 0 ok, 1 fail, 2 info.
    outcome: Vec<u8>,
    /// µs since the previous operation's call.
    call: Vec<i64>,
    /// µs from call to return, -1 for none.
    len: Vec<i64>,
    /// Indices into `vals`.
    input: Vec<usize>,
    output: Vec<usize>,
    process: ProcessChanges,
    /// The node that served it, -1 for unknown.
    node: Vec<i64>,
    gave_up: GaveUp,
}

/// Where a lane's process changes (position, process).
#[derive(Debug, Serialize)]
struct ProcessChanges {
    at: Vec<usize>,
    to: Vec<i64>,
}

/// The operations whose client stopped waiting, and after how many µs.
#[derive(Debug, Serialize)]
struct GaveUp {
    at: Vec<usize>,
    after: Vec<i64>,
}

/// A fault's bar: µs since the start, its label and its lane.
#[derive(Debug, Serialize)]
struct FaultBar {
    start: u64,
    end: u64,
    label: String,
    lane: usize,
}

/// The timeline's data, compact: times in microseconds.
fn timeline_data(run: &Run) -> Timeline {
    let ops = run.ops();
    let lane_of = lanes(ops);
    let mut keys: Vec<String> = ops.iter().filter_map(|o| o.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let key_index: BTreeMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut fns: Vec<String> = ops.iter().map(|o| o.f.clone()).collect();
    fns.sort();
    fns.dedup();
    // Each lane's label: its first process, with a `+` when later processes of the same
    // client (after an `info`) continue on it.
    let lane_count = lane_of.values().max().map_or(0, |&l| l + 1);
    let mut procs: Vec<String> = vec![String::new(); lane_count];
    let mut firsts: Vec<(u64, i64)> = Vec::new();
    for o in ops {
        firsts.push((o.call, o.process));
    }
    firsts.sort();
    for (_, p) in firsts {
        let label = &mut procs[lane_of[&p]];
        if label.is_empty() {
            *label = format!("p{p}");
        } else if !label.ends_with('+') && *label != format!("p{p}") {
            label.push('+');
        }
    }
    // Named columns, one array per field: as compact as rows of positional arrays,
    // and the page reads each field by its name.
    let outcome = |o: &checker::Operation| match o.outcome {
        Outcome::Ok => 0,
        Outcome::Fail => 1,
        Outcome::Info => 2,
    };
    // Times in µs, each call as the step from the previous one and each end as the
    // operation's length, values as indices into one table of distinct texts, and the
    // rare give-up times apart: a long run's report stays a fraction of its history.
    // An operation's id is its position.
    let mut vals: Vec<String> = Vec::new();
    let mut val_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut intern = |text: String| -> usize {
        *val_index.entry(text.clone()).or_insert_with(|| {
            vals.push(text);
            vals.len() - 1
        })
    };
    let mut input = Vec::with_capacity(ops.len());
    let mut output = Vec::with_capacity(ops.len());
    for o in ops {
        input.push(intern(short(&o.input)));
        output.push(intern(o.output.as_ref().map(short).unwrap_or_default()));
    }
    let us = |t: u64| (t / 1000) as i64;
    let mut prev = 0i64;
    let call: Vec<i64> = ops
        .iter()
        .map(|o| {
            let step = us(o.call) - prev;
            prev = us(o.call);
            step
        })
        .collect();
    let (gave_up_at, gave_up_after): (Vec<usize>, Vec<i64>) = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some((i, us(o.abandoned?) - us(o.call))))
        .unzip();
    // A lane's process changes only when a retired process hands it on: listed as
    // (position, process) where it does, not repeated for every operation.
    let mut current: BTreeMap<usize, i64> = BTreeMap::new();
    let (change_at, change_to): (Vec<usize>, Vec<i64>) = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let lane = lane_of[&o.process];
            (current.insert(lane, o.process) != Some(o.process)).then_some((i, o.process))
        })
        .unzip();
    let rows = Rows {
        lane: ops.iter().map(|o| lane_of[&o.process]).collect(),
        key: ops
            .iter()
            .map(|o| o.key.as_deref().map_or(-1, |k| key_index[k] as i64))
            .collect(),
        func: ops
            .iter()
            .map(|o| fns.iter().position(|f| *f == o.f).unwrap_or(0))
            .collect(),
        outcome: ops.iter().map(outcome).collect(),
        call,
        len: ops
            .iter()
            .map(|o| o.ret.map_or(-1, |r| us(r) - us(o.call)))
            .collect(),
        input,
        output,
        process: ProcessChanges {
            at: change_at,
            to: change_to,
        },
        node: ops
            .iter()
            .map(|o| o.route.node.map_or(-1, |n| n as i64))
            .collect(),
        gave_up: GaveUp {
            at: gave_up_at,
            after: gave_up_after,
        },
    };
    // Overlapping faults (the layers of a schedule run at once) get lanes of their own
    // above the clients' lanes, so no label is drawn over another or over an operation.
    // Faults of the disk come first, then those of the clock, then membership changes,
    // each in lanes of their own, so a power loss, a clock jump or a removed member is
    // never lost among the link weather.
    let group = |f: &crate::data::Fault| match f.kind {
        crate::data::Happened::Fault(k) if k.is_disk() => 0,
        crate::data::Happened::Fault(k) if k.is_clock() => 1,
        crate::data::Happened::Fault(checker::fault::FaultKind::Membership) => 2,
        _ => 3,
    };
    let mut faults: Vec<FaultBar> = Vec::new();
    let mut lane_count = 0;
    for g in 0..4 {
        let mut lanes = Vec::new();
        let packed = pack_lanes(run.faults.iter().filter(|f| group(f) == g), &mut lanes);
        faults.extend(packed.into_iter().map(|(f, lane)| FaultBar {
            start: (f.start * 1e6) as u64,
            end: (f.end * 1e6) as u64,
            label: f.label.clone(),
            lane: lane + lane_count,
        }));
        lane_count += lanes.len();
    }
    let mut failing: Vec<usize> = failures(run).iter().map(|f| f.op.id).collect();
    // A transaction history: the worst anomaly's transactions.
    if let Some(a) = txn_report(run).and_then(|t| t.anomalies.first()) {
        failing.extend(a.ops.iter().copied());
    }
    // The first anomaly's listed prefix, in the order the model accepted it: numbered on
    // the timeline, so the order that almost works can be read off the bars.
    let prefix: Vec<usize> = failures(run)
        .first()
        .map(|f| f.prefix.iter().map(|p| p.id).collect())
        .unwrap_or_default();
    Timeline {
        ops: rows,
        vals,
        keys,
        fns,
        procs,
        end: (run.end * 1e6) as u64,
        faults,
        flanes: lane_count,
        failing,
        prefix,
    }
}

/// The transaction checker's report, if the run has one.
fn txn_report(run: &Run) -> Option<&checker::txn::TxnReport> {
    run.results.as_ref().and_then(|r| r.checker.txn.as_ref())
}

/// The checker's failures, if the run has results.
fn failures(run: &Run) -> &[KeyFailure] {
    run.results
        .as_ref()
        .map_or(&[], |r| r.checker.failures.as_slice())
}

fn ms_or_dash(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// What the nemesis did, kind by kind with counts, most first ("kill 5, partition 3"):
/// what happened, not what was allowed.
fn faults_ran(run: &Run) -> String {
    let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &run.faults {
        if let crate::data::Happened::Fault(k) = f.kind {
            *ran.entry(k.name()).or_insert(0) += 1;
        }
    }
    counted(ran).unwrap_or_else(|| "none".to_string())
}

/// The nodes that exited on their own (not by a fault), with how often: a finding, not a
/// fault the run made, so listed apart from them. `None` when none did.
fn nodes_exited(run: &Run) -> Option<String> {
    let mut exits: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &run.faults {
        if f.kind == crate::data::Happened::Crash {
            let node = f.label.strip_prefix("crash ").unwrap_or(&f.label);
            *exits.entry(node).or_insert(0) += 1;
        }
    }
    counted(exits).map(|c| format!("{c} (each in runner.log, with the node's log)"))
}

/// `a 5, b 2`: the largest count first; `None` when there is nothing to count.
fn counted(counts: BTreeMap<&str, usize>) -> Option<String> {
    if counts.is_empty() {
        return None;
    }
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    Some(
        v.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The facts listed under the verdict.
fn facts(run: &Run) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if let Some(t) = &run.test {
        facts.push(("started", t.started.clone()));
        // A record of a run names its nodes; one that `check --report` made for a
        // history from elsewhere knows none of this, and says nothing of it.
        if t.nodes > 0 {
            facts.push(("seed", t.seed.to_string()));
            facts.push(("nodes", t.nodes.to_string()));
        }
        let mut workload = t.workload.clone();
        if t.keys > 0 {
            workload += &format!(" ({} keys, {} clients)", t.keys, t.concurrency);
        }
        facts.push(("workload", workload));
        if !t.nemesis.is_empty() {
            facts.push(("fault kinds enabled", t.nemesis.join(", ")));
        }
    }
    facts.push(("faults that ran", faults_ran(run)));
    if let Some(exits) = nodes_exited(run) {
        facts.push(("nodes that exited on their own", exits));
    }
    let why = run.results.as_ref().map_or(String::new(), |r| {
        let p = checker::record::fail_reasons_phrase(&r.fail_reasons);
        if p.is_empty() {
            p
        } else {
            format!(" ({p})")
        }
    });
    facts.push((
        "operations",
        format!(
            "{} ok, {} fail{why}, {} info",
            run.count(Outcome::Ok),
            run.count(Outcome::Fail),
            run.count(Outcome::Info)
        ),
    ));
    if let Some(r) = &run.results {
        facts.push((
            "throughput",
            format!("{:.0} ok ops/s", r.throughput_ok_per_s),
        ));
        let l = &r.latency_ms;
        if [l.p50, l.p95, l.p99, l.max].iter().any(Option::is_some) {
            facts.push((
                "latency",
                format!(
                    "p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
                    ms_or_dash(l.p50),
                    ms_or_dash(l.p95),
                    ms_or_dash(l.p99),
                    ms_or_dash(l.max)
                ),
            ));
        }
        facts.push(("checker", r.checker_summary.clone()));
    }
    facts
}

fn header(run: &Run, out: &mut String) {
    let verdict = run.verdict();
    let class = match verdict {
        "valid" => "valid",
        "invalid" => "invalid",
        _ => "unknown",
    };
    let _ = write!(
        out,
        "<header><div class=\"verdict {class}\">{}</div><div class=\"meta\"><h1>{}</h1>",
        esc(&verdict.to_uppercase()),
        esc(run.name())
    );
    if let Some(reason) = run.results.as_ref().and_then(|r| r.reason.as_deref()) {
        let _ = write!(out, "<p class=\"reason\">{}</p>", esc(reason));
    }
    out.push_str("<dl>");
    for (k, v) in facts(run) {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    out.push_str("</dl>");
    let command = run
        .results
        .as_ref()
        .map(|r| r.command.as_str())
        .or(run.test.as_ref().map(|t| t.command.as_str()))
        .filter(|c| !c.is_empty());
    if let Some(cmd) = command {
        let _ = write!(out, "<p>reproduce: <code>{}</code></p>", esc(cmd));
    }
    // The run's own files, and the way back to every run (store/<name>/<run>/: the index
    // is two folders up).
    out.push_str("<p class=\"files\">files:");
    for f in &run.files {
        let _ = write!(out, " <a href=\"{0}\">{0}</a>", esc(f));
    }
    if run.in_store {
        out.push_str(" · <a href=\"../../index.html\">all runs</a>");
    }
    out.push_str("</p>");
    out.push_str("</div></header>");
}

/// Which node served an operation: `n2`, `n2 (via n1)`, or `-` when not known.
fn route_text(r: &checker::history::Route) -> String {
    let Some(n) = r.node else {
        return "-".to_string();
    };
    match r.via.is_empty() {
        true => format!("n{n}"),
        false => {
            let via: Vec<String> = r.via.iter().map(|v| format!("n{v}")).collect();
            format!("n{n} (via {})", via.join(", "))
        }
    }
}

/// One operation as a row of the counterexample table; `state` is already escaped.
fn op_row(out: &mut String, op: &OpSummary, class: &str, state: &str) {
    let outcome = match op.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    };
    let _ = write!(
        out,
        "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
        op.id,
        op.process,
        route_text(&op.route),
        esc(&op.description),
        secs(op.call),
        op.ret.map(secs).unwrap_or_else(|| "-".into()),
    );
}

/// A stale read in plain words, for a reader who has never met a linearizability
/// checker: "read #12 returned "1" after write #9 of "0" had completed, and no write of
/// "1" began after it". `None` when the anomaly is not of that shape (the table and the
/// states then say what is wrong).
fn plainly(f: &KeyFailure, ops: &[checker::Operation]) -> Option<String> {
    let bad = ops.get(f.op.id)?;
    if bad.f != "read" && bad.f != "get" || bad.outcome != Outcome::Ok {
        return None;
    }
    let read = bad.output.as_ref()?;
    // What an operation of the key wrote, if it could have: a write's value, a cas's new.
    let wrote = |o: &checker::Operation| -> Option<Value> {
        match o.f.as_str() {
            "write" | "put" => Some(o.input.clone()),
            "cas" if o.outcome != Outcome::Fail => o.input.get(1).cloned(),
            _ => None,
        }
    };
    let same_key = |o: &&checker::Operation| o.key == bad.key;
    // The last write that certainly took effect before the read began.
    let last = ops
        .iter()
        .filter(same_key)
        .filter(|o| o.outcome == Outcome::Ok && o.ret.is_some_and(|r| r < bad.call))
        .filter(|o| wrote(o).is_some())
        .max_by_key(|o| o.ret)?;
    let last_value = wrote(last)?;
    if last_value == *read {
        return None;
    }
    let rewritten = ops
        .iter()
        .filter(same_key)
        .filter(|o| o.id != last.id && o.ret.is_none_or(|r| r > last.ret.unwrap_or(0)))
        .any(|o| wrote(o).as_ref() == Some(read));
    if rewritten {
        return None;
    }
    Some(format!(
        "read #{} returned {read} after {} #{} of {last_value} had completed, and no write of \
         {read} began after it.",
        bad.id, last.f, last.id
    ))
}

/// One key's counterexample: the longest linearizable prefix, the operation that cannot
/// follow it, and every state that rejects it.
fn counterexample(f: &KeyFailure, ops: &[checker::Operation], out: &mut String) {
    let op = &f.op;
    let key = f.key.as_deref().unwrap_or("-");
    let plain = plainly(f, ops);
    let _ = write!(
        out,
        "<div class=\"cx\"><h3>key {}: operation #{} ({} by process {}{}, {} to {}) cannot be placed</h3>",
        esc(key),
        op.id,
        esc(&op.description),
        op.process,
        op.route
            .node
            .map_or(String::new(), |n| format!(", served by node {n}")),
        secs(op.call),
        op.ret.map(secs).unwrap_or_else(|| "never".into()),
    );
    let _ = write!(
        out,
        "<p>The longest order of this key's operations that the model accepts has {} operations; \
         its last {} are listed in that order, then the operation that cannot follow them.</p>",
        f.prefix_len,
        f.prefix.len()
    );
    if let Some(p) = plain {
        let _ = write!(
            out,
            "<p class=\"plain\"><b>In plain words:</b> {}</p>",
            esc(&p)
        );
    }
    out.push_str(
        "<table><tr><th>#</th><th>process</th><th>node</th><th>operation</th><th>outcome</th><th>invoked</th>\
         <th>completed</th><th>state after</th></tr>",
    );
    // For each state, the operation that last put the register in it, and when it
    // returned (None: never, it is pending).
    let mut last_change: BTreeMap<&str, (&OpSummary, Option<u64>)> = BTreeMap::new();
    let mut prev_state = "";
    for p in &f.prefix {
        let state = p.state_after.as_deref().unwrap_or("");
        if state != prev_state {
            last_change.insert(state, (p, p.ret));
            prev_state = state;
        }
        op_row(out, p, "", &esc(state));
    }
    op_row(out, op, " class=\"bad\"", "—");
    out.push_str("</table>");
    decisive_order(f, out);
    out.push_str("<p>Every state the model could be in when it had to take effect, and why each rejects it:</p><ul>");
    for s in &f.states {
        let context = last_change
            .get(s.state.as_str())
            .map(|(p, t)| {
                let at = t.map(secs).unwrap_or_else(|| "an unknown time".into());
                format!(" after {} completed at {at}", p.description)
            })
            .unwrap_or_default();
        let _ = write!(out, "<li>{}{}</li>", esc(&s.reason), esc(&context));
    }
    out.push_str("</ul>");
    if !f.states_complete {
        out.push_str(
            "<p class=\"note\">(The explanation ran out of budget; more states may exist.)</p>",
        );
    }
    // Data attributes, read by a listener: a key can hold any character, and inside an
    // inline handler a quote in it would end the attribute.
    let _ = write!(
        out,
        "<button class=\"focus-op\" data-op=\"{}\" data-key=\"{}\">show on the timeline</button></div>",
        op.id,
        esc(key)
    );
}

/// The real-time fact the anomaly rests on, in words: of the listed operations, the last
/// to return before the failing one was invoked. Real time puts the failing one after it,
/// so after its state (or what the operations after it make of that), none of which
/// explains the failing one.
fn decisive_order(f: &KeyFailure, out: &mut String) {
    let op = &f.op;
    let Some((p, done)) = f
        .prefix
        .iter()
        .filter_map(|p| p.ret.filter(|&r| r < op.call).map(|r| (p, r)))
        .max_by_key(|&(_, r)| r)
    else {
        return;
    };
    let state = p.state_after.as_deref().unwrap_or("?");
    let _ = write!(
        out,
        "<p class=\"decisive\">The decisive order: #{} ({}) completed at {}, {} before #{} ({}) \
         was invoked at {}, so #{} takes effect after it: in the state {} it left, or one the \
         operations still open then make of it, none of which explains #{}.</p>",
        p.id,
        esc(&p.description),
        secs(done),
        gap(op.call - done),
        op.id,
        esc(&op.description),
        secs(op.call),
        op.id,
        esc(state),
        op.id
    );
}

/// For a set history: the lost, unexpected, duplicated and stale elements, each with when
/// it was known to be in and the last fault that began before the read that missed it
/// (what it vanished after), up to 20 of each.
fn set_findings(run: &Run, out: &mut String) {
    let Some(report) = run.set_report() else {
        return;
    };
    let _ = write!(
        out,
        "<section id=\"set\"><h2>What became of the elements</h2><p>{}</p>",
        esc(&report.counts())
    );
    let ops = run.ops();
    for s in &report.sets {
        for (what, fates) in [
            ("lost", &s.lost),
            ("unexpected", &s.unexpected),
            ("duplicated", &s.duplicated),
            ("reordered", &s.reordered),
            ("stale", &s.stale),
        ] {
            if fates.is_empty() {
                continue;
            }
            let _ = write!(
                out,
                "<h3>set {}: {} {what}</h3><table><tr><th>element</th><th>known in at</th>\
                 <th>shown by</th><th>after the fault</th></tr>",
                esc(&s.key),
                fates.len()
            );
            for f in fates.iter().take(20) {
                let read = &ops[f.read];
                let at = read.call as f64 / 1e9;
                let since = f.known_at.map_or(0.0, |k| k as f64 / 1e9);
                let fault = run
                    .faults
                    .iter()
                    .rfind(|x| x.start >= since && x.start <= at)
                    .map_or("-".to_string(), |x| {
                        format!("{} at {:.3} s", x.label, x.start)
                    });
                let _ = write!(
                    out,
                    "<tr><td><code>{}</code></td><td>{}</td><td>read #{} at {:.3} s</td><td>{}</td></tr>",
                    esc(&format!("{:?}", f.element)),
                    f.known_at.map_or("-".into(), secs),
                    read.id,
                    at,
                    esc(&fault)
                );
            }
            out.push_str("</table>");
        }
    }
    out.push_str("</section>");
}

fn counterexamples(run: &Run, out: &mut String) {
    let failures = failures(run);
    if failures.is_empty() {
        return;
    }
    out.push_str("<section id=\"counterexample\"><h2>Why it is not linearizable</h2>");
    for f in failures {
        counterexample(f, run.ops(), out);
    }
    out.push_str("</section>");
}

const CSS: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
.decisive{background:#fff6e0;border-left:4px solid #e69614;padding:6px 10px}
header{display:flex;gap:24px;padding:16px 24px;background:#fff;border-bottom:1px solid #ddd}
.verdict{font-size:44px;font-weight:800;padding:8px 18px;border-radius:8px;align-self:flex-start}
.valid{background:#d9f2e1;color:#1d6b3a}.invalid{background:#fbdcdc;color:#9b1c1c}.unknown{background:#fdeccd;color:#8a5300}
h1{margin:0 0 6px;font-size:22px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0}
dt{color:#666}dd{margin:0}code{background:#f0f0f0;padding:2px 5px;border-radius:4px}
section{padding:8px 24px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px}
#controls{display:flex;gap:12px;align-items:center;margin-bottom:6px}
#tlbox{max-height:65vh;overflow:auto;border:1px solid #ccc;background:#fff;position:relative}
#tl{display:block;width:100%;cursor:grab}
#ov{display:block;width:100%;cursor:pointer;background:#fff;border:1px solid #ccc;border-bottom:0}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:6px 8px;border-radius:4px;font:12px monospace;display:none;white-space:pre;z-index:9}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px -2px 10px;border-radius:2px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
tr.bad td{background:#fbdcdc;font-weight:700}.cx{background:#fff;border:1px solid #e3b5b5;border-radius:6px;padding:8px 14px;margin:10px 0}
.plots svg{max-width:100%;height:auto;background:#fff;border:1px solid #ddd;margin:4px 0}
svg.cycle{float:right;margin:0 0 8px 12px;background:#fff}.cx::after{content:"";display:block;clear:both}.note,.reason{color:#8a5300}
"#;

/// The timeline's script: typed columns, the overview strip, the windowed draw.
const JS: &str = include_str!("timeline.js");

/// Renders the page. `svgs` are the plots, embedded inline.
pub fn render(run: &Run, svgs: &[(&'static str, String)]) -> String {
    let mut out = String::with_capacity(1 << 20);
    let title = run.name();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — {}</title><style>{CSS}</style></head><body>",
        esc(&run.verdict().to_uppercase()),
        esc(title)
    );
    header(run, &mut out);
    counterexamples(run, &mut out);
    if let Some(t) = txn_report(run) {
        crate::txn::findings(t, &mut out);
    }
    set_findings(run, &mut out);
    out.push_str(
        "<section id=\"timeline\"><h2>Timeline</h2><div id=\"controls\"><label>key <select id=\"key\">\
         <option value=\"-1\">all keys</option></select></label><button id=\"fit\">whole run</button>\
         <label>colour by <select id=\"colour\"><option value=\"outcome\">outcome</option>\
         <option value=\"node\">node that answered</option></select></label>\
         <span class=\"legend\" id=\"outcomes\"><span style=\"background:#2e8b57\"></span>ok<span style=\"background:#c83232\"></span>fail\
         <span style=\"background:linear-gradient(90deg,#e69614,transparent)\"></span>never completed (unknown)</span>\
         <span class=\"legend\" id=\"nodes\" style=\"display:none\"></span>\
         <span class=\"legend\"><span style=\"background:rgba(90,90,168,.85)\"></span>fault (its own lane)<span style=\"background:#c00\"></span>anomaly</span></div>\
         <canvas id=\"ov\" title=\"the whole run: click or drag to move the window below\"></canvas>\
         <div class=\"note\">above: the whole run (operations per moment by outcome, faults beneath, anomalies marked; the box is the window below: click or drag to move it) · \
         below: wheel zooms, drag pans, double-click shows the whole run · one lane per client (a + when later processes of the client continue on it)</div>\
         <div id=\"tlbox\"><canvas id=\"tl\"></canvas></div><div id=\"tip\"></div></section>",
    );
    out.push_str("<section class=\"plots\"><h2>Latency and throughput</h2>");
    for (name, svg) in svgs {
        let _ = write!(
            out,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            esc(name)
        );
    }
    out.push_str("</section>");
    let data = serde_json::to_string(&timeline_data(run))
        .expect("json")
        .replace("</", "<\\/");
    let _ = write!(out, "<script type=\"application/json\" id=\"data\">{data}</script><script>{JS}</script></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Fault, Happened};
    use checker::record::FaultKind;

    fn fault(kind: FaultKind, start: f64, end: f64) -> Fault {
        Fault {
            kind: Happened::Fault(kind),
            start,
            end,
            label: kind.name().into(),
        }
    }

    /// A node that exits on its own is a finding, listed apart from the faults the run
    /// made, by node.
    #[test]
    fn nodes_that_exit_on_their_own_are_not_counted_as_faults() {
        let crash = |node: &str| Fault {
            kind: Happened::Crash,
            start: 1.0,
            end: 1.0,
            label: format!("crash {node}"),
        };
        let run = Run {
            test: None,
            results: None,
            history: Default::default(),
            faults: vec![
                fault(FaultKind::Kill, 0.0, 1.0),
                crash("n2"),
                crash("n3"),
                crash("n2"),
            ],
            end: 10.0,
            files: Vec::new(),
            in_store: false,
            set: Default::default(),
        };
        let facts = facts(&run);
        let fact = |name: &str| {
            facts
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(fact("faults that ran").as_deref(), Some("kill 1"));
        let exits = fact("nodes that exited on their own").unwrap();
        assert!(exits.starts_with("n2 2, n3 1"), "{exits}");
        let calm = Run {
            faults: vec![fault(FaultKind::Kill, 0.0, 1.0)],
            ..run
        };
        assert!(!facts_named(&calm, "nodes that exited on their own"));
    }

    fn facts_named(run: &Run, name: &str) -> bool {
        facts(run).iter().any(|(n, _)| *n == name)
    }

    #[test]
    fn faults_of_the_disk_get_the_top_lanes_of_their_own() {
        let run = Run {
            test: None,
            results: None,
            history: Default::default(),
            faults: vec![
                fault(FaultKind::LinkLatency, 0.0, 10.0),
                fault(FaultKind::Partition, 1.0, 3.0),
                fault(FaultKind::LoseUnsynced, 2.0, 4.0),
                fault(FaultKind::SlowFsync, 3.0, 5.0),
                fault(FaultKind::Kill, 5.0, 6.0),
            ],
            end: 10.0,
            files: Vec::new(),
            in_store: false,
            set: Default::default(),
        };
        let d = timeline_data(&run);
        let lanes: Vec<(String, usize)> =
            d.faults.iter().map(|f| (f.label.clone(), f.lane)).collect();
        let lane = |k: &str| lanes.iter().find(|(l, _)| l == k).unwrap().1;
        // Two overlapping disk faults: lanes 0 and 1; the rest below them.
        assert_eq!((lane("lose-unsynced"), lane("slow-fsync")), (0, 1));
        assert_eq!(lane("link-latency"), 2);
        assert_eq!(lane("partition"), 3);
        assert_eq!(lane("kill"), 3, "the partition's lane is free again at 5 s");
        assert_eq!(d.flanes, 4);
    }
}
