//! Exit codes, stable for CI gates: every subcommand ends with one of these four, and
//! a verdict maps to its code in one place.

use checker::Verdict;

pub const VALID: u8 = 0;
pub const INVALID: u8 = 1;
pub const UNKNOWN: u8 = 2;
pub const ERROR: u8 = 3;

/// The exit code that says `verdict` (the one mapping `test`, `check` and `bench`
/// share).
pub fn of(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Valid => VALID,
        Verdict::Invalid => INVALID,
        Verdict::Unknown => UNKNOWN,
    }
}
