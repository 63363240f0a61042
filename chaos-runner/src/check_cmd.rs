//! `chaos-runner check`: the checker on a history file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::check::{check, CheckOptions, CheckReport};
use checker::import::{self, Format};
use checker::model::{KeyValue, Model, NilRead, Register, Val};
use checker::History;
use clap::{Args, ValueEnum};

use crate::exit;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// read / write
    Register,
    /// read / write / cas with value [expected, new]
    CasRegister,
    /// get / put / delete / cas / append on keys
    Kv,
    /// add / read-all: the set checker, element by element (lost, unexpected,
    /// duplicated, stale under linearizable reads)
    Set,
    /// add / read-all read as a log: the set checker, and every read a prefix of the
    /// longest (reordered)
    Queue,
    /// transactions (f "txn") of ["append", k, v] and ["r", k, list]: the cycle checker,
    /// judged by --consistency-model
    ListAppend,
    /// transactions (f "txn") of ["w", k, v] and ["r", k, v]: the cycle checker, judged
    /// by --consistency-model
    RwRegister,
}

impl ModelName {
    fn is_txn(self) -> bool {
        matches!(self, ModelName::ListAppend | ModelName::RwRegister)
    }
}

/// The consistency models a transaction history is judged against, weakest first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConsistencyArg {
    /// forbids G0 (dirty writes) and reads no model allows (garbage, duplicates,
    /// lists out of order, a transaction contradicting itself)
    ReadUncommitted,
    /// also G1a (aborted reads), G1b (intermediate reads), G1c (circular information flow)
    ReadCommitted,
    /// also G-single (read skew) and lost updates
    SnapshotIsolation,
    /// also G2-item (write skew): no dependency cycle at all
    Serializable,
    /// also cycles through a process's own order
    StrongSessionSerializable,
    /// also cycles through real-time order
    StrictSerializable,
}

impl ConsistencyArg {
    pub fn model(self) -> checker::txn::ConsistencyModel {
        use checker::txn::ConsistencyModel as M;
        match self {
            ConsistencyArg::ReadUncommitted => M::ReadUncommitted,
            ConsistencyArg::ReadCommitted => M::ReadCommitted,
            ConsistencyArg::SnapshotIsolation => M::SnapshotIsolation,
            ConsistencyArg::Serializable => M::Serializable,
            ConsistencyArg::StrongSessionSerializable => M::StrongSessionSerializable,
            ConsistencyArg::StrictSerializable => M::StrictSerializable,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    /// JSON Lines as documented in docs/history-format.md (what `chaos-runner test` writes)
    Jsonl,
    /// Jepsen/Knossos EDN maps
    Edn,
    /// Jepsen's "INFO jepsen.util - 3 :invoke :cas [1 2]" log lines
    JepsenLog,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum NilReadArg {
    /// an ok read of nil means the register is empty
    Absent,
    /// an ok read of nil means "value unknown" and is always legal (Knossos)
    Any,
}

/// Check a history for linearizability, or a history of transactions for isolation
/// anomalies.
///
/// Operations on different keys are checked independently and in parallel. Operations
/// that failed are dropped; operations of unknown outcome (info) may take effect at any
/// time after their invocation, or never.
///
/// Transactions (--model list-append or rw-register) are checked as Elle checks them:
/// the dependency graph's cycles and the anomalies that are not cycles, each explained,
/// judged against --consistency-model:
///
///   chaos-runner check --model list-append history.jsonl
///   chaos-runner check --model rw-register --consistency-model snapshot-isolation h.edn
///
/// Prints a one-line verdict and writes the results (with a counterexample for every key
/// that is not linearizable) as JSON.
///
/// Exit codes: 0 valid, 1 invalid, 2 unknown (the checker's budget ran out, or no
/// operation completed ok), 3 error.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file.
    pub file: PathBuf,
    /// Its format; guessed from the content when omitted.
    #[arg(long, value_enum)]
    pub format: Option<FormatName>,
    /// The sequential specification to check against.
    #[arg(long, value_enum, default_value = "cas-register")]
    pub model: ModelName,
    /// For transactions: the model the verdict is about. The summary also names the
    /// weakest models the anomalies break and the strongest the history keeps.
    #[arg(long, value_enum, default_value = "strict-serializable")]
    pub consistency_model: ConsistencyArg,
    /// Initial register value, as JSON (e.g. 0 or "\"a\"").
    #[arg(long, default_value = "null")]
    pub init: String,
    /// How an ok read of nil is taken by the register models.
    #[arg(long, value_enum, default_value = "absent")]
    pub nil_read: NilReadArg,
    /// kv model: a missing key reads as "" and appends start from "" (MIT 6.5840 style).
    #[arg(long)]
    pub missing_is_empty: bool,
    /// Give up after this many seconds: undecided keys make the verdict "unknown" (exit
    /// 2), so a gate never waits for ever on a history too hard to decide. 0: no limit.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub timeout: f64,
    /// Memory budget of the searches, in MiB: every key's search, on every thread, draws
    /// from it (the explanation of a failure has 128 MiB of its own). Past it, a key's
    /// search stops and the key is unknown. Reading the file is not counted: the text and
    /// the parsed operations take about twice the file's size on top of this. For
    /// transactions it bounds the dependency graph; past it no cycle is looked for.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub memory_limit: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Decide every key. By default the first key proven non-linearizable decides the
    /// verdict: the other keys' searches stop and they are reported as not decided.
    #[arg(long)]
    pub all_keys: bool,
    /// Where to write the results JSON ("-" for standard output). Default: beside the
    /// history, named <file>.check.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the report `test` writes for its runs (report.html with the timeline
    /// and counterexample, plots, the history as JSON Lines, results.json) into DIR, a new
    /// or empty folder: for a history made elsewhere (Jepsen EDN or logs, ours).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

fn load(args: &CheckArgs) -> Result<History> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let format = args.format.map(|f| match f {
        FormatName::Jsonl => Format::Jsonl,
        FormatName::Edn => Format::Edn,
        FormatName::JepsenLog => Format::JepsenLog,
    });
    import::read(&text, format).with_context(|| format!("{}", args.file.display()))
}

/// Checks the transactions of `history`, in the shape every run record carries.
pub fn check_transactions(
    history: &History,
    model: checker::txn::ConsistencyModel,
    timeout: Option<Duration>,
    memory_limit: usize,
) -> Result<CheckReport> {
    let opts = checker::txn::TxnOptions {
        model,
        time_limit: timeout,
        memory_limit,
        ..checker::txn::TxnOptions::default()
    };
    let report = checker::txn::check_txn(history, &opts)?;
    Ok(CheckReport::of_txn(&report, history.ops.len()))
}

/// A transaction history read as JSON Lines without holding every line's JSON (a
/// million transactions in a few hundred MiB), checked.
fn check_txn_file(
    args: &CheckArgs,
    opts: &checker::txn::TxnOptions,
) -> Result<Option<CheckReport>> {
    let mut file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    use std::io::{Read, Seek};
    // The first 64 KiB tell the format; then the whole file is read from its start.
    let mut head = Vec::new();
    (&mut file).take(64 * 1024).read_to_end(&mut head)?;
    let head = String::from_utf8_lossy(&head);
    let jsonl = match args.format {
        Some(FormatName::Jsonl) => true,
        Some(_) => false,
        None => Format::sniff(&head) == Format::Jsonl,
    };
    if !jsonl || head.starts_with('\u{feff}') {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    file.rewind()?;
    let txns = checker::txn::parse::read_jsonl(std::io::BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("{}", args.file.display()))?;
    let report = checker::txn::check_txns(&txns, opts, started)?;
    Ok(Some(CheckReport::of_txn(&report, txns.txns.len())))
}

fn txn_kind_matches(args: &CheckArgs, report: &CheckReport) -> Result<()> {
    let Some(t) = &report.txn else { return Ok(()) };
    let want = match args.model {
        ModelName::ListAppend => "list-append",
        _ => "rw-register",
    };
    if t.workload != want {
        bail!(
            "{}: the transactions are {} (they {}), not {want}: pass --model {}",
            args.file.display(),
            t.workload,
            if t.workload == "list-append" {
                "append"
            } else {
                "write registers"
            },
            t.workload
        );
    }
    Ok(())
}

fn run_model<M: Model>(model: &M, history: &History, opts: &CheckOptions) -> Result<CheckReport> {
    Ok(check(model, history, opts)?)
}

/// A history in which no operation completed ok is linearizable, but says nothing: a CI
/// gate must not pass on it. Its verdict is unknown, with the reason.
fn nothing_checked_is_unknown(mut report: CheckReport, history: &History) -> CheckReport {
    let any_ok = history
        .ops
        .iter()
        .any(|o| o.outcome == checker::Outcome::Ok);
    if report.verdict == checker::Verdict::Valid && !any_ok {
        report.verdict = checker::Verdict::Unknown;
        report.unknown.push(checker::check::KeyUnknown {
            key: None,
            ops: history.ops.len(),
            reason: format!(
                "no operation completed ok ({} in the history): nothing was checked",
                history.ops.len()
            ),
        });
    }
    report
}

/// A report folder must be new or empty: nothing in it is overwritten.
fn refuse_busy(dir: &Path) -> Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "--report {}: the folder is not empty; give a new or empty one",
            dir.display()
        );
    }
    Ok(())
}

/// Writes `history` as a run folder in `dir` and builds its report. The history is read
/// back from the folder and checked again, so the report's operation numbers are those
/// of the folder's own history.jsonl.
fn write_report(
    dir: &Path,
    args: &CheckArgs,
    history: &History,
    check_again: &dyn Fn(&History) -> Result<CheckReport>,
) -> Result<PathBuf> {
    use checker::record::{Counts, RunResults, TestRecord};
    refuse_busy(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let hpath = dir.join("history.jsonl");
    let file = std::fs::File::create(&hpath)
        .with_context(|| format!("cannot create {}", hpath.display()))?;
    checker::generate::write_jsonl(history, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", hpath.display()))?;
    // Gone before the report reads it once more: a history of an hour is hundreds of MB
    // in memory.
    let own = checker::history::read_jsonl_file(&hpath)
        .with_context(|| format!("reading the written history {}", hpath.display()))?;
    let report = nothing_checked_is_unknown(check_again(&own)?, &own);
    let count = |o| own.ops.iter().filter(|op| op.outcome == o).count() as u64;
    let end_s = own
        .ops
        .iter()
        .map(|o| o.ret.unwrap_or(o.call))
        .max()
        .unwrap_or(0) as f64
        / 1e9;
    let name = args
        .file
        .file_name()
        .map_or("history".into(), |n| n.to_string_lossy().into_owned());
    let command = std::iter::once("chaos-runner".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    // A history in a run's folder: that run's record says what it was. Otherwise only
    // what the check knows.
    let sibling = args.file.with_file_name("test.json");
    let test = match reports::data::read_record::<TestRecord>(&sibling) {
        Ok(Some(run)) => TestRecord {
            command: command.clone(),
            ..run
        },
        _ => TestRecord {
            name: name.clone(),
            command: command.clone(),
            workload: format!("{:?}", args.model).to_lowercase(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ..TestRecord::default()
        },
    };
    let results = RunResults {
        fail_fast: None,
        verdict: report.verdict,
        reason: report.unknown.first().map(|u| u.reason.clone()),
        seed: test.seed,
        command,
        counts: Counts {
            ok: count(checker::Outcome::Ok),
            fail: count(checker::Outcome::Fail),
            info: count(checker::Outcome::Info),
        },
        fail_reasons: Default::default(),
        duration_s: end_s,
        throughput_ok_per_s: count(checker::Outcome::Ok) as f64 / end_s.max(1e-9),
        latency_ms: Default::default(),
        faults: Vec::new(),
        final_reads: Default::default(),
        warnings: Vec::new(),
        after_time_limit_s: Vec::new(),
        checker_summary: report.summary_of(Some("history.jsonl")),
        checker: report,
    };
    drop(own);
    for (file, json) in [
        ("test.json", serde_json::to_string_pretty(&test)?),
        ("results.json", serde_json::to_string_pretty(&results)?),
    ] {
        std::fs::write(dir.join(file), json + "\n")
            .with_context(|| format!("cannot write {}", dir.join(file).display()))?;
    }
    Ok(reports::build(dir)?.report)
}

pub fn run(args: CheckArgs) -> Result<u8> {
    if let Some(dir) = &args.report {
        refuse_busy(dir)?;
    }
    let t = args.timeout;
    if !(t >= 0.0 && t.is_finite()) {
        bail!("--timeout must be a number of seconds, 0 or more (0: no limit)");
    }
    let timeout = (t > 0.0).then(|| Duration::from_secs_f64(t));
    if args.model.is_txn() && args.report.is_none() {
        let opts = checker::txn::TxnOptions {
            model: args.consistency_model.model(),
            time_limit: timeout,
            memory_limit: CheckOptions::bytes_for_mib(args.memory_limit),
            ..checker::txn::TxnOptions::default()
        };
        if let Some(report) = check_txn_file(&args, &opts)? {
            txn_kind_matches(&args, &report)?;
            return finish(&args, report, None);
        }
    }
    let history = load(&args)?;
    if !args.model.is_txn() && !history.ops.is_empty() && history.ops.iter().all(|o| o.f == "txn") {
        bail!(
            "{}: the operations are transactions (f \"txn\"): pass --model list-append or \
             --model rw-register",
            args.file.display()
        );
    }
    let init: serde_json::Value = serde_json::from_str(&args.init)
        .with_context(|| format!("--init {:?} is not JSON", args.init))?;
    let mut opts = CheckOptions {
        timeout,
        memory_limit: CheckOptions::bytes_for_mib(args.memory_limit),
        all_keys: args.all_keys,
        ..CheckOptions::default()
    };
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    let nil_read = match args.nil_read {
        NilReadArg::Absent => NilRead::Absent,
        NilReadArg::Any => NilRead::Any,
    };
    let check_with = |h: &History| -> Result<CheckReport> {
        match args.model {
            ModelName::Register | ModelName::CasRegister => {
                let model = Register {
                    cas: args.model == ModelName::CasRegister,
                    init: Val::from_json(&init),
                    nil_read,
                };
                run_model(&model, h, &opts)
            }
            ModelName::Kv => run_model(
                &KeyValue {
                    missing_is_empty: args.missing_is_empty,
                },
                h,
                &opts,
            ),
            ModelName::Set | ModelName::Queue => {
                checker::set::check_report(h, true, args.model == ModelName::Queue)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
            ModelName::ListAppend | ModelName::RwRegister => {
                let r = check_transactions(
                    h,
                    args.consistency_model.model(),
                    timeout,
                    CheckOptions::bytes_for_mib(args.memory_limit),
                )?;
                txn_kind_matches(&args, &r)?;
                Ok(r)
            }
        }
    };
    let report = nothing_checked_is_unknown(check_with(&history)?, &history);
    finish(&args, report, Some((&history, &check_with)))
}

type Recheck<'a> = (&'a History, &'a dyn Fn(&History) -> Result<CheckReport>);

/// Prints the verdict, writes the results (and the report folder, given the history).
fn finish(args: &CheckArgs, report: CheckReport, history: Option<Recheck>) -> Result<u8> {
    let json = serde_json::to_string_pretty(&report)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = args.file.file_name().unwrap_or_default().to_os_string();
        name.push(".check.json");
        args.file.with_file_name(name)
    });
    let source = args.file.file_name().map(|n| n.to_string_lossy());
    if out.as_os_str() == "-" {
        crate::console::tell!("{json}");
        crate::console::tell!("{}", report.summary_of(source.as_deref()));
    } else {
        // The verdict first: a folder that cannot be written to must not hide it.
        crate::console::tell!("{}", report.summary_of(source.as_deref()));
        match std::fs::write(&out, json + "\n") {
            Ok(()) => crate::console::tell!("results: {}", out.display()),
            Err(e) => crate::console::say!(
                "warning: cannot write {} ({e}): the verdict above stands; --out FILE \
                 writes the results elsewhere, --out - to stdout",
                out.display()
            ),
        }
    }
    if let (Some(dir), Some((history, check_with))) = (&args.report, history) {
        let page = write_report(dir, args, history, check_with)?;
        crate::console::tell!("report:  {}", page.display());
    }
    Ok(exit::of(report.verdict))
}
