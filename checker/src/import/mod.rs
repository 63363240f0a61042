//! Readers for histories in formats people already have.

pub mod edn;
pub mod jepsen_log;

use crate::history::{read_jsonl, History, HistoryError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    /// One JSON array of the objects JSON Lines would hold one per line.
    JsonArray,
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

    /// Guesses the format from the content: Jepsen log lines by their logger's name, EDN
    /// by a first form that is a vector or a map with keyword keys (`{:type ...}`), and
    /// everything else starting with `{` is JSON Lines, so a damaged first line gets a
    /// JSON error naming it rather than an EDN one.
    pub fn sniff(text: &str) -> Format {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
            .is_some_and(|r| !r.trim_start().starts_with(':'));
        // A JSON array of event objects (`[{"type": ...}, ...]`, as some tools write a
        // whole history): read as the lines it holds.
        let after_bracket = text.trim_start().strip_prefix('[').map(str::trim_start);
        if after_bracket.is_some_and(|r| r.starts_with("{\"") || r.starts_with(']')) {
            return Format::JsonArray;
        }
        if json_object {
            Format::Jsonl
        } else {
            Format::Edn
        }
    }
}

/// Reads a history in `format`, or the sniffed one.
pub fn read(text: &str, format: Option<Format>) -> Result<History, HistoryError> {
    // A byte-order mark (some Windows editors add one) is not part of the history.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format.unwrap_or_else(|| Format::sniff(text)) {
        Format::Jsonl => read_jsonl(text.as_bytes()),
        Format::JsonArray => read_json_array(text),
        Format::Edn => edn::read_edn(text),
        Format::JepsenLog => jepsen_log::read_jepsen_log(text),
    }
}

/// A JSON array of history events: each element read as the line it would be in JSON
/// Lines (so errors name its position, counted from 1, as a line).
fn read_json_array(text: &str) -> Result<History, HistoryError> {
    let items: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| HistoryError::Line {
            line: e.line(),
            message: format!("not a JSON array of history events: {e}"),
        })?;
    let mut pairing = crate::history::Pairing::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(ev) = crate::history::parse_jsonl_line(&item.to_string(), i + 1)? {
            pairing.push(ev)?;
        }
    }
    Ok(pairing.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time\":1}\n";

    #[test]
    fn a_json_array_of_events_reads_as_its_lines() {
        let text = format!("[{}]", LINE.trim());
        assert_eq!(Format::sniff(&text), Format::JsonArray);
        assert_eq!(read(&text, None).unwrap().ops.len(), 1);
        assert_eq!(read("[]", None).unwrap().ops.len(), 0);
        let e = read("[{\"type\": 1}]", None).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        // An EDN vector of maps is still EDN.
        assert_eq!(Format::sniff("[{:type :invoke}]\n"), Format::Edn);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_history() {
        let with_bom = format!("\u{feff}{LINE}");
        assert_eq!(Format::sniff(&with_bom), Format::Jsonl);
        assert_eq!(read(&with_bom, None).unwrap().ops.len(), 1);
        assert_eq!(read(&with_bom, Some(Format::Jsonl)).unwrap().ops.len(), 1);
    }

    #[test]
    fn a_damaged_first_line_is_a_json_error_not_an_edn_one() {
        for bad in ["{oops\n", "{type: invoke}\n", "{ 'type': 1 }\n"] {
            let text = format!("{bad}{LINE}");
            assert_eq!(Format::sniff(&text), Format::Jsonl, "{bad}");
            let e = read(&text, None).unwrap_err().to_string();
            assert!(e.contains("line 1"), "{e}");
            assert!(!e.to_lowercase().contains("edn"), "{e}");
        }
        assert_eq!(Format::sniff("{:type :invoke, :f :read}\n"), Format::Edn);
        assert_eq!(Format::sniff("[{:type :invoke}]\n"), Format::Edn);
    }
}
