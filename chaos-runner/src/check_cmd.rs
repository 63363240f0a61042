//! `chaos-runner check`: the checker on a history file.

use std::path::PathBuf;
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

/// Check a history for linearizability.
///
/// Operations on different keys are checked independently and in parallel. Operations
/// that failed are dropped; operations of unknown outcome (info) may take effect at any
/// time after their invocation, or never.
///
/// Prints a one-line verdict and writes the results (with a counterexample for every key
/// that is not linearizable) as JSON.
///
/// Exit codes: 0 valid, 1 invalid, 2 unknown (budget exhausted), 3 error.
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
    /// Initial register value, as JSON (e.g. 0 or "\"a\"").
    #[arg(long, default_value = "null")]
    pub init: String,
    /// How an ok read of nil is taken by the register models.
    #[arg(long, value_enum, default_value = "absent")]
    pub nil_read: NilReadArg,
    /// kv model: a missing key reads as "" and appends start from "" (MIT 6.5840 style).
    #[arg(long)]
    pub missing_is_empty: bool,
    /// Give up after this many seconds: undecided keys make the verdict "unknown".
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Memory budget of each key's search, in MiB.
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

pub fn run(args: CheckArgs) -> Result<u8> {
    let history = load(&args)?;
    let init: serde_json::Value = serde_json::from_str(&args.init)
        .with_context(|| format!("--init {:?} is not JSON", args.init))?;
    if let Some(t) = args.timeout {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--timeout must be a positive number of seconds");
        }
    }
    let mut opts = CheckOptions {
        timeout: args.timeout.map(Duration::from_secs_f64),
        max_configs: CheckOptions::max_configs_for_mib(args.memory_limit),
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
    let report = match args.model {
        ModelName::Register | ModelName::CasRegister => {
            let model = Register {
                cas: args.model == ModelName::CasRegister,
                init: Val::from_json(&init),
                nil_read,
            };
            run_model(&model, &history, &opts)?
        }
        ModelName::Kv => run_model(
            &KeyValue {
                missing_is_empty: args.missing_is_empty,
            },
            &history,
            &opts,
        )?,
    };
    let report = nothing_checked_is_unknown(report, &history);
    let json = serde_json::to_string_pretty(&report)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = args.file.file_name().unwrap_or_default().to_os_string();
        name.push(".check.json");
        args.file.with_file_name(name)
    });
    if out.as_os_str() == "-" {
        println!("{json}");
    } else {
        std::fs::write(&out, json + "\n")
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let source = args.file.file_name().map(|n| n.to_string_lossy());
    println!("{}", report.summary_of(source.as_deref()));
    if out.as_os_str() != "-" {
        println!("results: {}", out.display());
    }
    Ok(exit::of(report.verdict))
}
