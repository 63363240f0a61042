//! Phase 4: the history, read back from its file and checked.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use checker::check::{check, CheckOptions, CheckReport};
use checker::model::{KeyValue, Register};
use checker::History;
use workloads::generator::WorkloadKind;

use super::config::{Config, Judged};
use super::summary::Tail;
use crate::store::RunDir;

/// Phase 4: reads the history back from the file, as anyone re-checking it would, and
/// checks it on a blocking thread (a spinner on terminals shows it is alive).
pub(super) async fn check_history(
    cfg: &Config,
    run: &RunDir,
    tail: &mut Tail,
) -> Result<(CheckReport, History)> {
    let history =
        checker::history::read_jsonl_file(&run.history()).context("reading back the history")?;
    crate::console::say!("checking {} operations...", history.ops.len());
    let opts = CheckOptions {
        timeout: Some(cfg.check_timeout),
        memory_limit: cfg.check_memory,
        all_keys: cfg.all_keys,
        ..CheckOptions::default()
    };
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!("checking {} operations", history.ops.len()));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let kind = cfg.judged();
    let checked =
        tokio::task::spawn_blocking(move || check_as(kind, &history, &opts).map(|r| (r, history)))
            .await
            .context("checker thread")??;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    tail.mark("checked");
    Ok(checked)
}

/// Checks `history` with the model of the workload that made it: a cas register per key,
/// or a map whose missing keys read as nil. The final check and the online one agree.
pub(crate) fn check_as(
    judged: Judged,
    history: &History,
    opts: &CheckOptions,
) -> Result<CheckReport, checker::check::CheckError> {
    let kind = judged.kind;
    match kind {
        WorkloadKind::Register => check(&Register::new(true), history, opts),
        WorkloadKind::Kv => check(
            &KeyValue {
                missing_is_empty: false,
            },
            history,
            opts,
        ),
        WorkloadKind::ListAppend | WorkloadKind::RwRegister => {
            let txn = checker::txn::TxnOptions {
                model: judged.consistency,
                time_limit: opts.timeout,
                memory_limit: opts.memory_limit,
                ..checker::txn::TxnOptions::default()
            };
            let report = checker::txn::check_txn(history, &txn).map_err(|e| {
                let line = match &e {
                    checker::txn::TxnError::Malformed { line, .. }
                    | checker::txn::TxnError::Duplicate { line, .. } => *line,
                    _ => 0,
                };
                checker::check::CheckError::BadOperation {
                    id: 0,
                    line,
                    message: e.to_string(),
                }
            })?;
            Ok(CheckReport::of_txn(&report, history.ops.len()))
        }
        WorkloadKind::Set | WorkloadKind::Queue => {
            let ordered = kind == WorkloadKind::Queue;
            checker::set::check_report(history, judged.linearizable, ordered).map_err(|e| {
                checker::check::CheckError::BadOperation {
                    id: e.id,
                    line: e.line,
                    message: e.message,
                }
            })
        }
    }
}
