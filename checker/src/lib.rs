//! `checker`: decides whether a recorded history of concurrent operations is
//! linearizable, and explains why not.
//!
//! - [`history`]: operations and the JSON Lines history format.
//! - [`import`]: readers for Jepsen/Knossos EDN histories and Jepsen log lines.
//! - [`model`]: sequential specifications (register, cas-register, key-value).
//! - [`search`]: the Wing–Gong–Lowe search for one sub-history.
//! - [`check`]: splitting by key, parallel search within a budget, verdicts and reports.
//! - [`set`]: the set checker (lost, unexpected, stale elements), for set histories.
//! - [`reference`]: a brute-force checker, the oracle the tests compare against.
//! - [`txn`]: the transaction checker (list-append, rw-register; Elle's method).
//! - [`verdict`]: valid, invalid or unknown, whichever checker says it.
//! - [`fault`]: the fault vocabulary (kinds, targets, shapes, a nemesis event's edge).
//! - [`record`]: the run records every crate shares (test.json, results.json, fault
//!   details) and the one quantile definition.

pub mod check;
pub mod fault;
pub mod generate;
pub mod history;
pub mod import;
pub mod model;
pub mod record;
pub mod reference;
pub mod search;
pub mod set;
pub mod txn;
pub mod verdict;

pub use check::{check, CheckOptions, CheckReport, Verdict};
pub use history::{Func, History, HistoryBuilder, Operation, Outcome};
