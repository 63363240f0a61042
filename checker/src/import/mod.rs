//! Readers for histories in formats people already have.

pub mod edn;
pub mod jepsen_log;

use crate::history::{read_jsonl, History, HistoryError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Edn,
    JepsenLog,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" | "json" => Some(Format::Jsonl),
            "edn" => Some(Format::Edn),
            "jepsen-log" | "log" => Some(Format::JepsenLog),
            _ => None,
        }
    }

    /// Guesses the format from the content.
    pub fn sniff(text: &str) -> Format {
        if text.contains("jepsen.util - ") {
            return Format::JepsenLog;
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(';'))
            .unwrap_or("");
        let json_object = first
            .strip_prefix('{')
            .is_some_and(|r| r.trim_start().starts_with('"'));
        if json_object {
            Format::Jsonl
        } else {
            Format::Edn
        }
    }
}

/// Reads a history in `format`, or the sniffed one.
pub fn read(text: &str, format: Option<Format>) -> Result<History, HistoryError> {
    match format.unwrap_or_else(|| Format::sniff(text)) {
        Format::Jsonl => read_jsonl(text.as_bytes()),
        Format::Edn => edn::read_edn(text),
        Format::JepsenLog => jepsen_log::read_jepsen_log(text),
    }
}
