//! Jepsen's plain-text operation log: lines like
//! `INFO  jepsen.util - 3<TAB>:invoke<TAB>:cas<TAB>[1 2]`, tab- or space-separated, with
//! anything else in the file (timestamps, other loggers) ignored. An `:info` completion
//! such as `:timed-out` leaves the outcome unknown with the invocation's arguments.

use super::edn::{Edn, Parser};
use crate::history::{Event, EventType, History, HistoryError, Pairing};

const MARKER: &str = "jepsen.util - ";

fn parse_line(rest: &str, line: usize) -> Result<Event, HistoryError> {
    let err = |msg: String| HistoryError::Line { line, message: msg };
    let mut p = Parser::new(rest);
    let mut next = |what: &str| {
        p.next_form()
            .map_err(|e| err(format!("{what}: {e}")))?
            .ok_or_else(|| err(format!("missing {what}")))
    };
    let process = match next("process")? {
        Edn::Int(i) => Some(i),
        Edn::Keyword(k) if k == "nemesis" => None,
        other => return Err(err(format!("bad process {other:?}"))),
    };
    let kind = match next("type")? {
        Edn::Keyword(k) => match k.as_str() {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            other => return Err(err(format!("unknown type :{other}"))),
        },
        other => return Err(err(format!("bad type {other:?}"))),
    };
    let f = match next("f")? {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => s,
        other => other.to_json().to_string(),
    };
    let value = p
        .next_form()
        .map_err(|e| err(format!("value: {e}")))?
        .map_or(serde_json::Value::Null, |v| v.to_json());
    Ok(Event {
        kind,
        route: Default::default(),
        process,
        f: Some(f),
        key: None,
        value,
        time: None,
        line,
    })
}

pub fn read_jepsen_log(text: &str) -> Result<History, HistoryError> {
    let mut pairing = Pairing::new();
    for (i, l) in text.lines().enumerate() {
        let Some(at) = l.find(MARKER) else { continue };
        let ev = parse_line(&l[at + MARKER.len()..], i + 1)?;
        pairing.push(ev)?;
    }
    Ok(pairing.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn reads_tab_and_space_separated_lines() {
        let text = "2017-01-01 INFO  jepsen.core - starting\n\
            INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]\n\
            INFO  jepsen.util - 0  :invoke :read  nil\n\
            INFO  jepsen.util - 0  :ok     :read  1\n\
            INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
            INFO  jepsen.util - 3\t:info\t:cas\t:timed-out\n";
        let h = read_jepsen_log(text).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[0].outcome, Outcome::Info);
        assert_eq!(h.ops[0].input, serde_json::json!([1, 2]));
        assert_eq!(h.ops[1].output, Some(serde_json::json!(1)));
        assert!(read_jepsen_log("INFO  jepsen.util - x :invoke :read nil\n").is_err());
    }
}
