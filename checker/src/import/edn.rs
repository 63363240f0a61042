//! Jepsen/Knossos histories in EDN: maps such as
//! `{:process 0, :type :invoke, :f :cas, :value [1 2]}`, one per line or inside a vector,
//! possibly spanning lines, with `;` comments, optional `:time` and `:key`, and
//! `:process :nemesis` entries (kept as nemesis events).

use serde_json::{Map, Value};

use crate::history::{key_text, Event, EventType, History, HistoryError, Pairing};

/// A parsed EDN form, reduced to what histories use.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    /// JSON equivalent: keywords and symbols become strings, sets and lists arrays.
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::from(*i),
            Edn::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.clone()),
            Edn::Vector(v) => Value::Array(v.iter().map(Edn::to_json).collect()),
            Edn::Map(m) => {
                let mut o = Map::new();
                for (k, v) in m {
                    let key = match k {
                        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => s.clone(),
                        other => other.to_json().to_string(),
                    };
                    o.insert(key, v.to_json());
                }
                Value::Object(o)
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// How deeply forms may nest. Jepsen's operations nest a few levels (a transaction is a
/// vector of vectors); the parser recurses once per level, so a hostile file nested
/// tens of thousands deep would otherwise overflow the stack and abort the process.
pub const MAX_DEPTH: usize = 256;

/// A streaming EDN reader over a whole text, tracking line numbers for errors.
pub struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    /// Forms open around the one being read.
    depth: usize,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser {
            s: text.as_bytes(),
            pos: 0,
            line: 1,
            depth: 0,
        }
    }

    pub fn line(&self) -> usize {
        self.line
    }

    fn err(&self, msg: impl Into<String>) -> HistoryError {
        HistoryError::Line {
            line: self.line,
            message: msg.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// The next form, or `None` at the end.
    pub fn next_form(&mut self) -> Result<Option<Edn>, HistoryError> {
        self.skip_ws();
        if self.pos >= self.s.len() {
            return Ok(None);
        }
        self.form().map(Some)
    }

    fn form(&mut self) -> Result<Edn, HistoryError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(format!(
                "forms nested more than {MAX_DEPTH} deep: not an operation history"
            )));
        }
        self.depth += 1;
        let form = self.form_here();
        self.depth -= 1;
        form
    }

    fn form_here(&mut self) -> Result<Edn, HistoryError> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.err("unexpected end of input"));
        };
        match c {
            b'{' => {
                self.pos += 1;
                let items = self.seq(b'}')?;
                if items.len() % 2 != 0 {
                    return Err(self.err("a map needs an even number of forms"));
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Edn::Map(pairs))
            }
            b'[' => {
                self.pos += 1;
                Ok(Edn::Vector(self.seq(b']')?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Edn::Vector(self.seq(b')')?))
            }
            b'#' => {
                self.pos += 1;
                match self.s.get(self.pos) {
                    Some(b'{') => {
                        self.pos += 1;
                        Ok(Edn::Vector(self.seq(b'}')?))
                    }
                    Some(b'_') => {
                        self.pos += 1;
                        self.form()?;
                        self.form()
                    }
                    _ => {
                        // A tagged literal such as #jepsen.history.Op{...}: keep the value.
                        self.atom()?;
                        self.form()
                    }
                }
            }
            b'"' => self.string(),
            b'}' | b']' | b')' => Err(self.err(format!("unexpected '{}'", c as char))),
            _ => self.atom(),
        }
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Edn>, HistoryError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                None => return Err(self.err(format!("missing '{}'", close as char))),
                Some(&c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.form()?),
            }
        }
    }

    fn string(&mut self) -> Result<Edn, HistoryError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out)
            .map(Edn::Str)
            .map_err(|_| self.err("string is not UTF-8"))
    }

    fn atom(&mut self) -> Result<Edn, HistoryError> {
        let start = self.pos;
        while self.pos < self.s.len()
            && !matches!(
                self.s[self.pos],
                b' ' | b'\t'
                    | b'\r'
                    | b'\n'
                    | b','
                    | b'{'
                    | b'}'
                    | b'['
                    | b']'
                    | b'('
                    | b')'
                    | b'"'
                    | b';'
            )
        {
            self.pos += 1;
        }
        let tok =
            std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| self.err("bad token"))?;
        if tok.is_empty() {
            return Err(self.err("unexpected character"));
        }
        Ok(match tok {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ if tok.starts_with(':') => Edn::Keyword(tok[1..].to_string()),
            _ => {
                let num = tok.trim_end_matches(['N', 'M']);
                if let Ok(i) = num.parse::<i64>() {
                    Edn::Int(i)
                } else if let Ok(f) = num.parse::<f64>() {
                    Edn::Float(f)
                } else {
                    Edn::Symbol(tok.to_string())
                }
            }
        })
    }
}

/// Turns one history map into an event.
pub fn event_from_map(m: &Edn, line: usize) -> Result<Event, HistoryError> {
    let err = |msg: &str| HistoryError::Line {
        line,
        message: msg.to_string(),
    };
    if !matches!(m, Edn::Map(_)) {
        return Err(err(
            "expected a map like {:process 0, :type :invoke, :f :read, :value nil}",
        ));
    }
    let kind = match m.get("type") {
        Some(Edn::Keyword(t)) => match t.as_str() {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            other => return Err(err(&format!("unknown :type :{other}"))),
        },
        _ => return Err(err("missing :type")),
    };
    let process = match m.get("process") {
        Some(Edn::Int(p)) => Some(*p),
        Some(Edn::Keyword(k)) if k == "nemesis" => None,
        _ => return Err(err("missing or bad :process")),
    };
    let f = match m.get("f") {
        Some(Edn::Keyword(s)) | Some(Edn::Symbol(s)) | Some(Edn::Str(s)) => Some(s.clone()),
        None | Some(Edn::Nil) => None,
        Some(other) => Some(other.to_json().to_string()),
    };
    let time = match m.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => Some(*t as u64),
        None => None,
        _ => return Err(err("bad :time")),
    };
    Ok(Event {
        kind,
        route: Default::default(),
        process,
        f,
        key: m.get("key").and_then(|k| key_text(&k.to_json())),
        value: m.get("value").map_or(Value::Null, Edn::to_json),
        time,
        line,
    })
}

/// Reads an EDN history: maps at top level, or inside one vector or list.
pub fn read_edn(text: &str) -> Result<History, HistoryError> {
    let mut p = Parser::new(text);
    let mut pairing = Pairing::new();
    loop {
        p.skip_ws();
        let line = p.line();
        let Some(form) = p.next_form()? else { break };
        match form {
            Edn::Vector(items) => {
                for item in &items {
                    pairing.push(event_from_map(item, line)?)?;
                }
            }
            m => pairing.push(event_from_map(&m, line)?)?,
        }
    }
    Ok(pairing.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn reads_knossos_style_histories() {
        let text = "; a comment\n[{:process 0, :type :invoke, :f :write, :value 3}\n\
                    {:process 0 :type :ok :f :write :value 3}\n\
                    {:process :nemesis, :type :info, :f :start, :value nil}\n\
                    {:process 1, :type :invoke, :f :cas,\n :value [3 4], :time 99}]\n";
        // Mixed timed and untimed events are rejected...
        assert!(read_edn(text).is_err());
        let text = text.replace(", :time 99", "");
        let h = read_edn(&text).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.nemesis.len(), 1);
        assert_eq!(h.ops[1].input, serde_json::json!([3, 4]));
        assert_eq!(h.ops[1].outcome, Outcome::Info);
        let err = read_edn("{:process 0 :type :invoke :f :read\n :value [1 2}").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
