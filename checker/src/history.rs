//! Histories: the events a test recorded, and the operations they pair into.
//!
//! The on-disk format is JSON Lines, documented in `docs/history-format.md`. Events are
//! paired per logical process (each process has at most one operation in flight, as in
//! Jepsen): an `invoke` opens an operation, the next `ok`, `fail` or `info` of the same
//! process closes it. An invocation never closed counts as `info`.

use std::collections::HashMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema version this crate reads and writes.
pub const SCHEMA_VERSION: u64 = 1;
/// The `schema` name in a history header line.
pub const SCHEMA_NAME: &str = "chaos-history";

/// The functions the bundled models know, under every name histories give them. One
/// enum for the whole workspace: the generator draws them, the recorder names them, the
/// models compile them, the runner counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// `read`, `get` or `r`.
    Read,
    /// `write`, `put` or `w`.
    Write,
    /// `cas`: `[expected, new]`.
    Cas,
    /// `delete` or `del`.
    Delete,
    /// `append`: the string appended.
    Append,
    /// `add`: one element added to a set (the set workload).
    Add,
    /// `read-all`: a whole set read at once; the output is its elements.
    ReadAll,
    /// `txn`: a transaction, its value a list of micro-operations (the `txn` module).
    Txn,
}

impl Func {
    /// Reads a function name, with the aliases Jepsen, Knossos and MIT 6.5840 use.
    pub fn parse(name: &str) -> Option<Func> {
        Some(match name {
            "read" | "get" | "r" => Func::Read,
            "write" | "put" | "w" => Func::Write,
            "cas" => Func::Cas,
            "delete" | "del" => Func::Delete,
            "append" => Func::Append,
            "add" => Func::Add,
            "read-all" => Func::ReadAll,
            "txn" => Func::Txn,
            _ => return None,
        })
    }

    /// The name written into a history: register histories say read/write, key-value
    /// histories get/put (as the kv model's users expect).
    pub fn name(self, kv: bool) -> &'static str {
        match (self, kv) {
            (Func::Read, false) => "read",
            (Func::Read, true) => "get",
            (Func::Write, false) => "write",
            (Func::Write, true) => "put",
            (Func::Cas, _) => "cas",
            (Func::Delete, _) => "delete",
            (Func::Append, _) => "append",
            (Func::Add, _) => "add",
            (Func::ReadAll, _) => "read-all",
            (Func::Txn, _) => "txn",
        }
    }

    /// Whether the operation can change state (everything but a read; a transaction
    /// may, see `OpSpec::writes` in workloads for one that only reads).
    pub fn is_write(self) -> bool {
        !matches!(self, Func::Read | Func::ReadAll)
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect and its output is known.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may have taken effect at any time after its invocation, or never.
    Info,
}

/// Which node served an operation, for people reading a counterexample ("which node
/// served this stale read?"); the checker ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The node that answered; when none did, the last node the request was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// The nodes tried before it, in order (redirects to the leader, refused
    /// connections): the first is where the request was sent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<u64>,
}

/// One operation: an invocation paired with its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Position in [`History::ops`]; reports refer to operations by it.
    pub id: usize,
    pub process: i64,
    pub f: String,
    /// The key, for keyed models (numbers are kept as their decimal text).
    pub key: Option<String>,
    /// The invocation's value (the arguments).
    pub input: Value,
    /// The completion's value, when the operation completed `ok` or `fail`.
    pub output: Option<Value>,
    /// Invocation time, monotonic nanoseconds (or event position when times are absent).
    pub call: u64,
    /// Completion time; `None` for `info` operations, which may take effect at any later time.
    pub ret: Option<u64>,
    pub outcome: Outcome,
    /// 1-based line of the invocation in the source file (0 when built in memory).
    pub line: usize,
    /// Which node served it, when the history says.
    pub route: Route,
    /// For an `info` operation, when its client stopped waiting (the `info` line's
    /// time): it may still take effect later, but its client went on. A report draws
    /// it; the checker ignores it.
    pub abandoned: Option<u64>,
}

impl Operation {
    /// The function, if it is one the bundled models know.
    pub fn func(&self) -> Option<Func> {
        Func::parse(&self.f)
    }
}

/// A fault injected by the nemesis; the checker ignores these, reports draw them.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    pub time: u64,
    pub f: String,
    /// `f` typed, when it is one of ours (start-/stop- a fault kind, crash, heal); other
    /// tools' events keep only `f`.
    pub fault: Option<crate::fault::FaultEdge>,
    pub value: Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Operation>,
    pub nemesis: Vec<NemesisEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading the history: {0}")]
    Io(#[from] std::io::Error),
}

/// What serde_json says is wrong with one line, placed by column only: its own "at line
/// 1 column C" would name a line of the one-line text, not of the file.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(w, _)| w);
    match e.column() {
        0 => what.to_string(),
        c => format!("{what} (column {c})"),
    }
}

fn line_err(line: usize, message: impl Into<String>) -> HistoryError {
    HistoryError::Line {
        line,
        message: message.into(),
    }
}

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// A single history event, whatever format it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    /// Which node served it (completions of our histories; none from other tools).
    pub route: Route,
    /// `None` for the nemesis.
    pub process: Option<i64>,
    pub f: Option<String>,
    pub key: Option<String>,
    pub value: Value,
    pub time: Option<u64>,
    pub line: usize,
}

/// Turns a JSON key (string or number) into the key text.
pub fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Pairs events into operations. `nemesis` collects fault events with their times.
pub struct Pairing {
    pending: HashMap<i64, usize>,
    /// Processes whose last operation ended `info`: still in flight forever, so the id
    /// may not invoke again (the line of that operation).
    retired: HashMap<i64, usize>,
    ops: Vec<Operation>,
    nemesis: Vec<NemesisEvent>,
    index: u64,
    timed: Option<bool>,
}

impl Default for Pairing {
    fn default() -> Self {
        Self::new()
    }
}

impl Pairing {
    pub fn new() -> Self {
        Pairing {
            pending: HashMap::new(),
            retired: HashMap::new(),
            ops: Vec::new(),
            nemesis: Vec::new(),
            index: 0,
            timed: None,
        }
    }

    /// Adds the next event, in file order.
    pub fn push(&mut self, ev: Event) -> Result<(), HistoryError> {
        self.push_closing(ev).map(|_| ())
    }

    /// Adds the next event; when it completes an operation, returns that operation, so a
    /// reader that keeps its own compact form (the transaction reader) can take the
    /// values out and not hold a million JSON trees.
    pub fn push_closing(&mut self, ev: Event) -> Result<Option<&mut Operation>, HistoryError> {
        self.index += 1;
        // Either every event has a time or none has; then file order is the clock.
        let timed = *self.timed.get_or_insert(ev.time.is_some());
        if timed != ev.time.is_some() {
            return Err(line_err(
                ev.line,
                "some events have a time and others do not",
            ));
        }
        let time = ev.time.unwrap_or(self.index);
        let Some(process) = ev.process else {
            let f = ev.f.unwrap_or_default();
            self.nemesis.push(NemesisEvent {
                time,
                fault: crate::fault::FaultEdge::parse(&f),
                f,
                value: ev.value,
            });
            return Ok(None);
        };
        match ev.kind {
            EventType::Invoke => {
                if let Some(&open) = self.pending.get(&process) {
                    return Err(line_err(
                        ev.line,
                        format!(
                            "process {process} invokes again while its operation from line {} is still open",
                            self.ops[open].line
                        ),
                    ));
                }
                if let Some(&line) = self.retired.get(&process) {
                    return Err(line_err(
                        ev.line,
                        format!(
                            "process {process} invokes again after its operation from line {line} \
                             ended info (it may still take effect at any time): continue with a \
                             fresh process id"
                        ),
                    ));
                }
                let f =
                    ev.f.ok_or_else(|| line_err(ev.line, "invoke without \"f\""))?;
                let id = self.ops.len();
                self.ops.push(Operation {
                    id,
                    process,
                    f,
                    key: ev.key,
                    input: ev.value,
                    output: None,
                    call: time,
                    ret: None,
                    outcome: Outcome::Info,
                    line: ev.line,
                    route: Route::default(),
                    abandoned: None,
                });
                self.pending.insert(process, id);
            }
            kind => {
                let Some(id) = self.pending.remove(&process) else {
                    return Err(line_err(
                        ev.line,
                        format!("process {process} completes an operation it never invoked"),
                    ));
                };
                let op = &mut self.ops[id];
                if let Some(f) = &ev.f {
                    if *f != op.f {
                        return Err(line_err(
                            ev.line,
                            format!(
                                "completion f {f:?} does not match the invocation's {:?}",
                                op.f
                            ),
                        ));
                    }
                }
                if time < op.call {
                    return Err(line_err(
                        ev.line,
                        "completion time is before its invocation",
                    ));
                }
                if op.key.is_none() {
                    op.key = ev.key;
                }
                op.route = ev.route;
                match kind {
                    EventType::Ok => {
                        op.outcome = Outcome::Ok;
                        op.ret = Some(time);
                        op.output = Some(ev.value);
                    }
                    EventType::Fail => {
                        op.outcome = Outcome::Fail;
                        op.ret = Some(time);
                        op.output = Some(ev.value);
                    }
                    EventType::Info | EventType::Invoke => {
                        // Unknown outcome: the arguments stay those of the invocation.
                        op.outcome = Outcome::Info;
                        op.abandoned = ev.time.map(|_| time);
                        self.retired.insert(process, op.line);
                    }
                }
                return Ok(Some(&mut self.ops[id]));
            }
        }
        Ok(None)
    }

    /// The operations still open (invoked, never completed): `info` at the end.
    pub fn open_ops(&mut self) -> impl Iterator<Item = &mut Operation> {
        let mut open: Vec<usize> = self.pending.values().copied().collect();
        open.sort_unstable();
        self.ops
            .iter_mut()
            .enumerate()
            .filter(move |(i, _)| open.binary_search(i).is_ok())
            .map(|(_, o)| o)
    }

    pub fn finish(self) -> History {
        // Invocations never completed are `info` already. The vector grew by doubling:
        // what a long history leaves spare would outlive every use of it.
        let mut ops = self.ops;
        ops.shrink_to_fit();
        History {
            ops,
            nemesis: self.nemesis,
        }
    }
}

/// The `type` of a history line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineType {
    Header,
    Invoke,
    Ok,
    Fail,
    Info,
    Nemesis,
}

impl From<Outcome> for LineType {
    fn from(o: Outcome) -> LineType {
        match o {
            Outcome::Ok => LineType::Ok,
            Outcome::Fail => LineType::Fail,
            Outcome::Info => LineType::Info,
        }
    }
}

/// Who an event belongs to: a logical client process, or the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProcessField {
    Client(i64),
    /// Only `"nemesis"` is meaningful; anything else is refused when read.
    Named(String),
}

/// One line of `history.jsonl` (docs/history-format.md), exactly as the recorder writes it
/// and this crate reads it: the one definition of the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryLine {
    #[serde(rename = "type")]
    pub kind: LineType,
    /// Header only: [`SCHEMA_NAME`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Header only: [`SCHEMA_VERSION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<String>,
    /// A string, or a number read as its decimal text.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub key: Value,
    /// Arguments (invoke) or result (ok); absent and `null` both read as `null`. Always
    /// written on operations, never on the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// Why a `fail` or `info` operation ended so (for people; the checker ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The node that answered, when known (for people; the checker ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// The nodes tried before `node`, in order (for people, as `node`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<u64>,
}

impl HistoryLine {
    fn new(kind: LineType) -> HistoryLine {
        HistoryLine {
            kind,
            schema: None,
            version: None,
            process: None,
            f: None,
            key: Value::Null,
            value: None,
            time: None,
            error: None,
            node: None,
            via: Vec::new(),
        }
    }

    /// The first line of a history this crate writes.
    pub fn header() -> HistoryLine {
        HistoryLine {
            schema: Some(SCHEMA_NAME.into()),
            version: Some(SCHEMA_VERSION),
            ..HistoryLine::new(LineType::Header)
        }
    }

    /// An invocation (`Invoke`) or completion (`Ok`, `Fail`, `Info`) of a client
    /// operation.
    pub fn op(
        kind: LineType,
        process: i64,
        f: &str,
        key: Option<&str>,
        value: Value,
        time: u64,
    ) -> HistoryLine {
        HistoryLine {
            process: Some(ProcessField::Client(process)),
            f: Some(f.into()),
            key: key.map_or(Value::Null, |k| Value::String(k.into())),
            value: Some(value),
            time: Some(time),
            ..HistoryLine::new(kind)
        }
    }

    /// A fault's start or end; `value` is usually a [`crate::record::FaultDetails`].
    pub fn nemesis(f: &str, value: Value, time: u64) -> HistoryLine {
        HistoryLine {
            process: Some(ProcessField::Named("nemesis".into())),
            f: Some(f.into()),
            value: Some(value),
            time: Some(time),
            ..HistoryLine::new(LineType::Nemesis)
        }
    }

    /// The line as JSON, newline included.
    pub fn to_json_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("history lines always serialize");
        line.push(b'\n');
        line
    }
}

/// Parses one JSONL line into an event; `Ok(None)` for the header and blank lines.
pub fn parse_jsonl_line(text: &str, line: usize) -> Result<Option<Event>, HistoryError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let raw: HistoryLine = serde_json::from_str(text)
        .map_err(|e| line_err(line, format!("not a history event: {}", json_error(&e))))?;
    let kind = match raw.kind {
        LineType::Header => {
            if raw.schema.as_deref() != Some(SCHEMA_NAME) {
                return Err(line_err(
                    line,
                    format!("header schema must be \"{SCHEMA_NAME}\""),
                ));
            }
            match raw.version {
                Some(SCHEMA_VERSION) => return Ok(None),
                v => {
                    return Err(line_err(
                        line,
                        format!("unsupported history version {v:?}; this checker reads version {SCHEMA_VERSION}"),
                    ))
                }
            }
        }
        LineType::Invoke => EventType::Invoke,
        LineType::Ok => EventType::Ok,
        LineType::Fail => EventType::Fail,
        LineType::Info | LineType::Nemesis => EventType::Info,
    };
    let process = match (raw.kind, &raw.process) {
        (LineType::Nemesis, _) => None,
        (_, Some(ProcessField::Named(s))) if s == "nemesis" => None,
        (_, Some(ProcessField::Client(n))) => Some(*n),
        _ => return Err(line_err(line, "process must be an integer or \"nemesis\"")),
    };
    Ok(Some(Event {
        kind,
        route: Route {
            node: raw.node,
            via: raw.via,
        },
        process,
        f: raw.f,
        key: key_text(&raw.key),
        value: raw.value.unwrap_or(Value::Null),
        time: raw.time,
        line,
    }))
}

/// Reads a JSONL history file line by line: never its whole text at once, which for a
/// long run is tens of MB on top of what it parses into.
pub fn read_jsonl_file(path: &std::path::Path) -> Result<History, HistoryError> {
    let file = std::fs::File::open(path)?;
    read_jsonl(std::io::BufReader::with_capacity(1 << 20, file))
}

/// Reads a JSONL history, streaming.
pub fn read_jsonl(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut pairing = Pairing::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if let Some(ev) = parse_jsonl_line(&line, i + 1)? {
            pairing.push(ev)?;
        }
    }
    Ok(pairing.finish())
}

/// Builds a history in memory, for tests and generators.
#[derive(Default)]
pub struct HistoryBuilder {
    pairing: Pairing,
}

impl HistoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn event(
        &mut self,
        kind: EventType,
        process: i64,
        f: &str,
        key: Option<&str>,
        value: Value,
        time: u64,
    ) {
        let ev = Event {
            kind,
            route: Route::default(),
            process: Some(process),
            f: Some(f.to_string()),
            key: key.map(String::from),
            value,
            time: Some(time),
            line: 0,
        };
        self.pairing
            .push(ev)
            .expect("builder histories are well formed");
    }

    pub fn invoke(
        &mut self,
        process: i64,
        f: &str,
        key: Option<&str>,
        value: Value,
        time: u64,
    ) -> &mut Self {
        self.event(EventType::Invoke, process, f, key, value, time);
        self
    }

    pub fn ok(&mut self, process: i64, f: &str, value: Value, time: u64) -> &mut Self {
        self.event(EventType::Ok, process, f, None, value, time);
        self
    }

    pub fn fail(&mut self, process: i64, f: &str, value: Value, time: u64) -> &mut Self {
        self.event(EventType::Fail, process, f, None, value, time);
        self
    }

    pub fn info(&mut self, process: i64, f: &str, value: Value, time: u64) -> &mut Self {
        self.event(EventType::Info, process, f, None, value, time);
        self
    }

    pub fn build(self) -> History {
        self.pairing.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_read_back_as_the_same_events() {
        let header = HistoryLine::header().to_json_line();
        assert_eq!(
            header,
            b"{\"type\":\"header\",\"schema\":\"chaos-history\",\"version\":1}\n"
        );
        assert_eq!(
            parse_jsonl_line(std::str::from_utf8(&header).unwrap(), 1).unwrap(),
            None
        );
        let read = HistoryLine::op(LineType::Invoke, 3, "read", Some("k"), Value::Null, 9);
        let text = String::from_utf8(read.to_json_line()).unwrap();
        assert!(text.contains("\"value\":null"), "{text}");
        let ev = parse_jsonl_line(&text, 2).unwrap().unwrap();
        assert_eq!(
            (
                ev.kind,
                ev.process,
                ev.f.as_deref(),
                ev.key.as_deref(),
                ev.time
            ),
            (EventType::Invoke, Some(3), Some("read"), Some("k"), Some(9))
        );
        let fault = HistoryLine::nemesis("start-kill", serde_json::json!({"nodes": [2]}), 10);
        let text = String::from_utf8(fault.to_json_line()).unwrap();
        let ev = parse_jsonl_line(&text, 3).unwrap().unwrap();
        assert_eq!(
            (ev.process, ev.value),
            (None, serde_json::json!({"nodes": [2]}))
        );
        let bad = parse_jsonl_line(r#"{"type":"ok","process":"p1","time":1}"#, 4);
        assert!(bad.unwrap_err().to_string().contains("process must be"));
    }

    #[test]
    fn pairs_events_and_reports_bad_lines() {
        let text = r#"{"type":"header","schema":"chaos-history","version":1}
{"type":"invoke","process":0,"f":"write","key":"a","value":1,"time":10}
{"type":"invoke","process":1,"f":"read","key":"a","value":null,"time":11}
{"type":"nemesis","f":"start-partition","value":["n1"],"time":12}
{"type":"ok","process":0,"f":"write","value":1,"time":20}
{"type":"ok","process":1,"f":"read","value":1,"time":21}
{"type":"invoke","process":2,"f":"write","key":7,"value":2,"time":22}
"#;
        let h = read_jsonl(text.as_bytes()).unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.nemesis.len(), 1);
        assert_eq!(h.ops[1].output, Some(serde_json::json!(1)));
        assert_eq!(
            (h.ops[2].outcome, h.ops[2].key.as_deref()),
            (Outcome::Info, Some("7"))
        );

        let bad = "{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"time\":1}\n{oops\n";
        let err = read_jsonl(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 2:"), "{err}");
        let twice = "{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"time\":1}\n\
                     {\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"time\":2}\n";
        let err = read_jsonl(twice.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("still open"),
            "{err}"
        );
        let v2 = "{\"type\":\"header\",\"schema\":\"chaos-history\",\"version\":2}\n";
        assert!(read_jsonl(v2.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
    }

    #[test]
    fn a_process_id_is_not_reused_after_info() {
        let text = "{\"type\":\"invoke\",\"process\":0,\"f\":\"write\",\"key\":\"a\",\"value\":1,\"time\":1}\n\
                    {\"type\":\"info\",\"process\":0,\"f\":\"write\",\"value\":1,\"time\":2}\n\
                    {\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time\":3}\n";
        let e = read_jsonl(text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("ended info") && e.contains("line 1"), "{e}");
        // A fresh id is fine, and so is reuse after ok or fail.
        let fine = text.replace(
            "\"process\":0,\"f\":\"read\"",
            "\"process\":1,\"f\":\"read\"",
        );
        assert_eq!(read_jsonl(fine.as_bytes()).unwrap().ops.len(), 2);
        let after_ok = text.replace("\"type\":\"info\"", "\"type\":\"ok\"");
        assert_eq!(read_jsonl(after_ok.as_bytes()).unwrap().ops.len(), 2);
    }
}
