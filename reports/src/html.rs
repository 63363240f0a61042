//! `report.html`: one self-contained file (inline CSS, JS and SVG, no network).

use std::collections::BTreeMap;
use std::fmt::Write;

use checker::check::{KeyFailure, OpSummary};
use checker::history::Outcome;
use serde_json::{json, Value};

use crate::data::Run;
use crate::layout::lanes;

/// Escapes text for HTML bodies and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

/// The timeline's data, compact: times in microseconds.
fn timeline_data(run: &Run) -> Value {
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
    let column =
        |f: &dyn Fn(&checker::Operation) -> Value| -> Vec<Value> { ops.iter().map(f).collect() };
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
    let process_changes = json!({"at": change_at, "to": change_to});
    let rows = json!({
        "lane": column(&|o| json!(lane_of[&o.process])),
        "key": column(&|o| json!(o.key.as_deref().map_or(-1, |k| key_index[k] as i64))),
        "fn": column(&|o| json!(fns.iter().position(|f| *f == o.f).unwrap_or(0))),
        "outcome": column(&|o| json!(outcome(o))),
        "call": call,
        "len": column(&|o| json!(o.ret.map_or(-1, |r| us(r) - us(o.call)))),
        "input": input,
        "output": output,
        "process": process_changes,
        "node": column(&|o| json!(o.route.node.map_or(-1, |n| n as i64))),
        "gave_up": {"at": gave_up_at, "after": gave_up_after},
    });
    // Overlapping faults (the layers of a schedule run at once) get lanes of their own
    // above the clients' lanes, so no label is drawn over another or over an operation.
    // Faults of the disk come first, then those of the clock, each in lanes of their own,
    // so a power loss or a clock jump is never lost among the link weather.
    let group = |f: &crate::data::Fault| match f.kind {
        crate::data::Happened::Fault(k) if k.is_disk() => 0,
        crate::data::Happened::Fault(k) if k.is_clock() => 1,
        _ => 2,
    };
    let mut faults: Vec<Value> = Vec::new();
    let mut lane_count = 0;
    for g in 0..3 {
        let mut lanes = Vec::new();
        let packed = pack_lanes(run.faults.iter().filter(|f| group(f) == g), &mut lanes);
        faults.extend(packed.into_iter().map(|(f, lane)| {
            json!({
                "start": (f.start * 1e6) as u64,
                "end": (f.end * 1e6) as u64,
                "label": f.label,
                "lane": lane + lane_count,
            })
        }));
        lane_count += lanes.len();
    }
    let failing: Vec<usize> = failures(run).iter().map(|f| f.op.id).collect();
    // The first anomaly's listed prefix, in the order the model accepted it: numbered on
    // the timeline, so the order that almost works can be read off the bars.
    let prefix: Vec<usize> = failures(run)
        .first()
        .map(|f| f.prefix.iter().map(|p| p.id).collect())
        .unwrap_or_default();
    json!({
        "ops": rows,
        "vals": vals,
        "keys": keys,
        "fns": fns,
        "procs": procs,
        "end": (run.end * 1e6) as u64,
        "faults": faults,
        "flanes": lane_count,
        "failing": failing,
        "prefix": prefix,
    })
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
        let name = match f.kind {
            crate::data::Happened::Fault(k) => k.name(),
            crate::data::Happened::Crash => "crash",
        };
        *ran.entry(name).or_insert(0) += 1;
    }
    if ran.is_empty() {
        return "none".to_string();
    }
    let mut v: Vec<(&str, usize)> = ran.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
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
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:6px 8px;border-radius:4px;font:12px monospace;display:none;white-space:pre;z-index:9}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px -2px 10px;border-radius:2px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
tr.bad td{background:#fbdcdc;font-weight:700}.cx{background:#fff;border:1px solid #e3b5b5;border-radius:6px;padding:8px 14px;margin:10px 0}
.plots svg{max-width:100%;height:auto;background:#fff;border:1px solid #ddd;margin:4px 0}.note,.reason{color:#8a5300}
"#;

const JS: &str = r#"
const ERRS = [];
window.addEventListener('error', e => ERRS.push(String(e.message)));
const D = JSON.parse(document.getElementById('data').textContent);
// Each operation as an object with named fields, from the named columns of the data.
// Calls are steps from the previous call and ends lengths from the call (µs), values
// indices into D.vals, give-ups listed apart; an operation's id is its position.
let clock = 0, change = 0;
const laneProcess = [];
const OPS = D.ops.lane.map((lane, i) => {
  clock += D.ops.call[i];
  if (D.ops.process.at[change] === i) laneProcess[lane] = D.ops.process.to[change++];
  const len = D.ops.len[i];
  return {
    lane, key: D.ops.key[i], fn: D.ops.fn[i], outcome: D.ops.outcome[i],
    call: clock, ret: len < 0 ? -1 : clock + len,
    input: D.vals[D.ops.input[i]], output: D.vals[D.ops.output[i]], id: i,
    process: laneProcess[lane], node: D.ops.node[i], gaveUp: -1,
  };
});
D.ops.gave_up.at.forEach((i, j) => { OPS[i].gaveUp = OPS[i].call + D.ops.gave_up.after[j]; });
const ORDER = new Map(D.prefix.map((id, i) => [id, i + 1]));
const cv = document.getElementById('tl'), ctx = cv.getContext('2d'), tip = document.getElementById('tip');
const LH = 14, FH = 13, LEFT = 56;
// The axis, then one lane per overlapping fault, then one lane per client process.
const TOP = 22, PT = TOP + D.flanes * FH + (D.flanes ? 4 : 0);
const COLORS = ['#2e8b57', '#c83232', '#e69614'];
const failing = new Set(D.failing);
let t0 = 0, t1 = Math.max(D.end, 1), keyFilter = -1;
// Each fault knows where the next one of its lane starts: the room its label may use.
{
  const last = new Map();
  for (const f of [...D.faults].sort((x, y) => x.start - y.start)) {
    if (last.has(f.lane)) last.get(f.lane).next = f.start;
    last.set(f.lane, f);
  }
}
const byLane = D.procs.map(() => []);
OPS.forEach((o, i) => byLane[o.lane].push(i));
// Where a bar ends: its completion; for an unknown outcome, where its client gave up on
// it and a fade beyond (the lane may go on with the client's next process).
const endOf = o => o.ret >= 0 ? o.ret : o.gaveUp >= 0 ? o.gaveUp : D.end;
// The operations that may show between t0 and t1, without looking at all of them: the
// calls are in order (as a history's are), so those that begin after t0 less the longest
// bar, up to t1, and those that never end. Any other order: all of them.
const SORTED = OPS.every((o, i) => i === 0 || OPS[i - 1].call <= o.call);
const OPEN = OPS.filter(o => o.ret < 0 && o.gaveUp < 0);
const LONGEST = OPS.reduce((m, o) => (o.ret >= 0 || o.gaveUp >= 0) ? Math.max(m, endOf(o) - o.call) : m, 0);
function* visible() {
  if (!SORTED) { yield* OPS; return; }
  let lo = 0, hi = OPS.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (OPS[mid].call < t0 - LONGEST) lo = mid + 1; else hi = mid; }
  for (let i = lo; i < OPS.length && OPS[i].call <= t1; i++) {
    const o = OPS[i];
    if (o.ret >= 0 || o.gaveUp >= 0) yield o;
  }
  yield* OPEN;
}
function size() {
  const dpr = window.devicePixelRatio || 1, w = cv.clientWidth, h = PT + D.procs.length * LH + 4;
  cv.width = w * dpr; cv.height = h * dpr; cv.style.height = h + 'px'; ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
}
const X = t => LEFT + (t - t0) / (t1 - t0) * (cv.clientWidth - LEFT - 8);
const T = x => t0 + (x - LEFT) / (cv.clientWidth - LEFT - 8) * (t1 - t0);
function draw() {
  const w = cv.clientWidth, h = PT + D.procs.length * LH + 4;
  ctx.clearRect(0, 0, w, h); ctx.font = '10px sans-serif';
  if (D.flanes) { ctx.fillStyle = '#888'; ctx.fillText('faults', 4, TOP + 10); }
  for (const f of D.faults) {
    if (f.end < t0 || f.start > t1) continue;
    const a = Math.max(LEFT, X(f.start)), b = Math.max(a + 2, Math.min(w, X(f.end))), y = TOP + f.lane * FH;
    ctx.fillStyle = 'rgba(120,120,200,0.10)'; ctx.fillRect(a, PT, b - a, h - PT);
    ctx.fillStyle = 'rgba(90,90,168,0.85)'; ctx.fillRect(a, y, b - a, FH - 2);
    // The label inside its bar when it fits; else after the bar, in the lane's free
    // room up to the next fault of the lane (or the edge), so it is read whole.
    const tw = ctx.measureText(f.label).width, room = Math.min(w, f.next === undefined ? w : X(f.next)) - b - 4;
    if (tw + 4 <= b - a) {
      ctx.fillStyle = '#fff'; ctx.fillText(f.label, a + 2, y + 9);
    } else if (tw + 4 <= room) {
      ctx.fillStyle = '#3a3a80'; ctx.fillText(f.label, b + 3, y + 9);
    } else if (b - a > 14) {
      // No room either way: as much as the bar holds; the hover and runner.log have it all.
      ctx.save(); ctx.beginPath(); ctx.rect(a, y, b - a, FH - 2); ctx.clip();
      ctx.fillStyle = '#fff'; ctx.fillText(f.label, a + 2, y + 9); ctx.restore();
    }
  }
  ctx.fillStyle = '#666'; ctx.strokeStyle = '#ddd';
  const span = (t1 - t0) / 1e6, step = Math.pow(10, Math.floor(Math.log10(span / 8)));
  const nice = [1, 2, 5, 10].map(m => m * step).find(s => span / s <= 10) || step * 10;
  for (let s = Math.ceil(t0 / 1e6 / nice) * nice; s * 1e6 <= t1; s += nice) {
    const x = X(s * 1e6); ctx.beginPath(); ctx.moveTo(x, TOP - 4); ctx.lineTo(x, h); ctx.stroke();
    // A label that would run off the right edge goes on the tick's left.
    const label = (+s.toFixed(6)) + ' s', tw = ctx.measureText(label).width;
    ctx.fillStyle = '#666'; ctx.fillText(label, x + 2 + tw > w ? x - tw - 2 : x + 2, 10);
  }
  for (let l = 0; l < D.procs.length; l++) { ctx.fillStyle = '#888'; ctx.fillText(D.procs[l], 4, PT + l * LH + 10); }
  // Zoomed out, many operations share a pixel column of a lane: one bar stands for
  // those of one outcome there (the counterexample's are always drawn).
  const lastPx = [], lastOut = [];
  for (const o of visible()) {
    if (keyFilter >= 0 && o.key !== keyFilter) continue;
    const e = endOf(o); if (e < t0 || o.call > t1) continue;
    const a = Math.max(LEFT, X(o.call)), b = Math.max(a + 1.5, Math.min(w, X(e))), y = PT + o.lane * LH + 1;
    if (b - a < 2 && !failing.has(o.id) && !ORDER.has(o.id)) {
      const px = Math.floor(a);
      if (lastPx[o.lane] === px && lastOut[o.lane] === o.outcome) continue;
      lastPx[o.lane] = px; lastOut[o.lane] = o.outcome;
    }
    if (o.ret < 0 && o.gaveUp >= 0) {
      // Its client gave up on it, its outcome open: solid to then, a short fade after.
      ctx.fillStyle = 'rgba(230,150,20,0.75)'; ctx.fillRect(a, y, b - a, LH - 3);
      const g = ctx.createLinearGradient(b, 0, b + 16, 0);
      g.addColorStop(0, 'rgba(230,150,20,0.5)'); g.addColorStop(1, 'rgba(230,150,20,0)');
      ctx.fillStyle = g; ctx.fillRect(b, y, 16, LH - 3);
    } else if (o.ret < 0) {
      // Never completed: its outcome is open, so it fades out rather than hide what
      // happened after it.
      const g = ctx.createLinearGradient(a, 0, b, 0);
      g.addColorStop(0, 'rgba(230,150,20,0.75)'); g.addColorStop(Math.min(1, 60 / Math.max(b - a, 1)), 'rgba(230,150,20,0.25)'); g.addColorStop(1, 'rgba(230,150,20,0)');
      ctx.fillStyle = g; ctx.fillRect(a, y, b - a, LH - 3);
    } else {
      ctx.fillStyle = COLORS[o.outcome]; ctx.globalAlpha = o.outcome === 2 ? 0.45 : 0.85; ctx.fillRect(a, y, b - a, LH - 3);
      ctx.globalAlpha = 1;
    }
    if (failing.has(o.id)) { ctx.strokeStyle = '#000'; ctx.lineWidth = 2; ctx.strokeRect(a - 1, y - 1, b - a + 2, LH - 1); ctx.lineWidth = 1; ctx.strokeStyle = '#ddd'; }
    // An operation of the counterexample carries its number (#id, as in the table) in
    // a badge at its start: its text begins after the badge.
    const badge = ORDER.has(o.id) ? String(o.id).length * 6 + 10 : 0;
    if (b - a > 44 + badge) {
      const read = o.input === '' || o.input === 'nil' || o.input === 'null';
      const text = D.fns[o.fn] + (read ? '' : ' ' + o.input) + (o.output && o.output !== o.input ? ' → ' + o.output : '');
      ctx.fillStyle = o.ret < 0 ? '#7a4a00' : '#fff'; ctx.fillText(text.slice(0, Math.floor((b - a - badge) / 6)), a + 2 + badge, y + 9);
    }
  }
  // The operations of the counterexample's table, with the numbers the table gives them
  // (their ids); the table lists them in the order the model accepted.
  if (ORDER.size) {
    ctx.font = 'bold 10px sans-serif';
    for (const o of OPS) {
      if (!ORDER.has(o.id) || o.call > t1 || endOf(o) < t0) continue;
      if (keyFilter >= 0 && o.key !== keyFilter) continue;
      const x = Math.max(LEFT, X(o.call)), y = PT + o.lane * LH, label = '#' + o.id;
      ctx.fillStyle = '#fff'; ctx.fillRect(x - 1, y, ctx.measureText(label).width + 4, 11);
      ctx.fillStyle = '#123'; ctx.fillText(label, x + 1, y + 9);
    }
    ctx.font = '10px sans-serif';
  }
  // The anomaly stays visible at any zoom: a red line through its lane and a marker above.
  for (const o of OPS) {
    if (!failing.has(o.id) || o.call > t1 || endOf(o) < t0) continue;
    const x = Math.max(LEFT, X(o.call)), y = PT + o.lane * LH;
    ctx.strokeStyle = '#c00'; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(x, PT - 2); ctx.lineTo(x, y + LH); ctx.stroke();
    ctx.fillStyle = '#c00'; ctx.beginPath(); ctx.moveTo(x - 5, PT - 9); ctx.lineTo(x + 5, PT - 9); ctx.lineTo(x, PT - 2); ctx.fill();
    ctx.lineWidth = 1; ctx.strokeStyle = '#ddd';
  }
}
function find(x, y) {
  const l = Math.floor((y - PT) / LH); if (l < 0 || l >= byLane.length) return null;
  const t = T(x), list = byLane[l]; let lo = 0, hi = list.length - 1, best = -1;
  while (lo <= hi) { const m = (lo + hi) >> 1; if (OPS[list[m]].call <= t) { best = m; lo = m + 1; } else hi = m - 1; }
  for (let k = best; k >= 0 && k > best - 3; k--) {
    const o = OPS[list[k]]; if (keyFilter >= 0 && o.key !== keyFilter) continue;
    const px = (t1 - t0) / cv.clientWidth * 2;
    if (o.call - px <= t && t <= endOf(o) + px) return o;
  }
  return null;
}
const OUT = ['ok', 'fail', 'info'];
cv.addEventListener('mousemove', ev => {
  const r = cv.getBoundingClientRect();
  if (drag) { const dt = (ev.clientX - drag.x) / (cv.clientWidth - LEFT - 8) * (drag.t1 - drag.t0); t0 = drag.t0 - dt; t1 = drag.t1 - dt; draw(); return; }
  const o = find(ev.clientX - r.left, ev.clientY - r.top);
  if (!o) {
    // A fault's lane: its whole label and its times.
    const x = ev.clientX - r.left, y = ev.clientY - r.top, lane = Math.floor((y - TOP) / FH);
    const f = y >= TOP && lane < D.flanes && D.faults.find(f => f.lane === lane && X(f.start) <= x && x <= Math.max(X(f.end), X(f.start) + 2));
    if (!f) { tip.style.display = 'none'; return; }
    tip.textContent = `${f.label}\n${(f.start / 1e6).toFixed(3)} s to ${(f.end / 1e6).toFixed(3)} s`;
    tip.style.display = 'block'; tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px';
    return;
  }
  tip.textContent = `#${o.id}  process ${o.process}${o.node >= 0 ? '  node ' + o.node : ''}  ${OUT[o.outcome]}\n${D.fns[o.fn]} ${o.key >= 0 ? 'key ' + D.keys[o.key] : ''}\nvalue ${o.input}${o.output ? '  result ' + o.output : ''}\ninvoked ${(o.call / 1e6).toFixed(6)} s\n` + (o.ret < 0 ? (o.gaveUp >= 0 ? `its client gave up at ${(o.gaveUp / 1e6).toFixed(6)} s (outcome unknown)` : 'never completed (outcome unknown)') : `completed ${(o.ret / 1e6).toFixed(6)} s (${((o.ret - o.call) / 1e3).toFixed(3)} ms)`);
  tip.style.display = 'block'; tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px';
});
cv.addEventListener('mouseleave', () => tip.style.display = 'none');
let drag = null;
cv.addEventListener('mousedown', ev => { drag = { x: ev.clientX, t0, t1 }; cv.style.cursor = 'grabbing'; });
window.addEventListener('mouseup', () => { drag = null; cv.style.cursor = 'grab'; });
cv.addEventListener('wheel', ev => {
  ev.preventDefault(); const r = cv.getBoundingClientRect(), t = T(ev.clientX - r.left), k = ev.deltaY > 0 ? 1.25 : 0.8;
  t0 = t - (t - t0) * k; t1 = t + (t1 - t) * k; if (t1 - t0 < 10) { t1 = t0 + 10; } draw();
}, { passive: false });
function fit() { t0 = 0; t1 = Math.max(D.end, 1); draw(); }
cv.addEventListener('dblclick', fit);
document.getElementById('fit').onclick = fit;
const sel = document.getElementById('key');
D.keys.forEach((k, i) => { const o = document.createElement('option'); o.value = i; o.textContent = k; sel.appendChild(o); });
sel.onchange = () => { keyFilter = +sel.value; draw(); };
// Zooms to operation `id` (and its key), so that it and the numbered order before it fit.
function zoomTo(id, key) {
  const o = OPS.find(o => o.id === id); if (!o) return null;
  const ki = D.keys.indexOf(key); if (ki >= 0) { keyFilter = ki; sel.value = ki; }
  let from = o.call;
  for (const p of OPS) if (ORDER.has(p.id) && (ki < 0 || p.key === ki)) from = Math.min(from, p.call);
  const e = endOf(o), pad = Math.max((e - from) * 0.15, 2000);
  t0 = from - pad; t1 = e + pad; draw();
  const box = document.getElementById('tlbox'); box.scrollTop = Math.max(0, PT + o.lane * LH - 60);
  return o;
}
function focusOp(id, key) {
  if (zoomTo(id, key)) document.getElementById('timeline').scrollIntoView({ behavior: 'smooth' });
}
document.querySelectorAll('button.focus-op').forEach(b =>
  b.addEventListener('click', () => focusOp(+b.dataset.op, b.dataset.key)));
window.addEventListener('resize', () => { size(); draw(); });
size(); draw();
// An invalid run opens zoomed to its first anomaly, ready for the keyboard, but the page
// stays at the verdict.
const first = document.querySelector('#counterexample button.focus-op');
if (first) { zoomTo(+first.dataset.op, first.dataset.key); first.focus({ preventScroll: true }); }
// #selftest: what a browser test checks, written into the page (no test code outside).
if (location.hash === '#selftest') {
  const r = { errors: ERRS, scrollY: window.scrollY, end: D.end, opened: [t0, t1] };
  if (first) {
    t0 = 0; t1 = D.end; first.click();
    const o = OPS.find(o => o.id === +first.dataset.op);
    r.clicked = { t0, t1, call: o.call, ret: endOf(o), keyFilter, key: D.keys.indexOf(first.dataset.key), id: o.id, output: o.output, process: o.process };
  }
  r.errors = ERRS;
  document.body.setAttribute('data-selftest', JSON.stringify(r));
}
"#;

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
    set_findings(run, &mut out);
    out.push_str(
        "<section id=\"timeline\"><h2>Timeline</h2><div id=\"controls\"><label>key <select id=\"key\">\
         <option value=\"-1\">all keys</option></select></label><button id=\"fit\">whole run</button>\
         <span class=\"legend\"><span style=\"background:#2e8b57\"></span>ok<span style=\"background:#c83232\"></span>fail\
         <span style=\"background:linear-gradient(90deg,#e69614,transparent)\"></span>never completed (unknown)<span style=\"background:rgba(90,90,168,.85)\"></span>fault (its own lane)<span style=\"background:#c00\"></span>anomaly</span>\
         <span class=\"note\">wheel: zoom · drag: pan · double-click: whole run · one lane per client process</span></div>\
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
        let lanes: Vec<(String, u64)> = d["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["label"].as_str().unwrap().to_string(),
                    f["lane"].as_u64().unwrap(),
                )
            })
            .collect();
        let lane = |k: &str| lanes.iter().find(|(l, _)| l == k).unwrap().1;
        // Two overlapping disk faults: lanes 0 and 1; the rest below them.
        assert_eq!((lane("lose-unsynced"), lane("slow-fsync")), (0, 1));
        assert_eq!(lane("link-latency"), 2);
        assert_eq!(lane("partition"), 3);
        assert_eq!(lane("kill"), 3, "the partition's lane is free again at 5 s");
        assert_eq!(d["flanes"], 4);
    }
}
