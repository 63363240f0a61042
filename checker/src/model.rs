//! Models: the sequential specifications histories are checked against.
//!
//! A model turns each recorded operation into its own compact op type once
//! ([`Model::compile`]), then the search calls [`Model::step`] millions of times, so `step`
//! must be cheap and never allocate for the common cases. Writing a new model is a few
//! dozen lines: a state, an op enum, `compile`, `step` and the descriptions reports use.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use serde_json::Value;

use crate::history::{Func, Operation, Outcome};

/// A sequential specification.
pub trait Model: Sync {
    type State: Clone + Eq + Hash + Debug + Send + Sync;
    type Op: Clone + Eq + Hash + Debug + Send + Sync;

    fn name(&self) -> &'static str;
    fn init(&self) -> Self::State;
    /// Converts a recorded operation. `Ok(None)` drops it: it constrains nothing (a read
    /// whose result is unknown). `fail` operations never reach this.
    fn compile(&self, op: &Operation) -> Result<Option<Self::Op>, String>;
    /// The state after `op`, or `None` if `op` cannot happen in `state` (for an operation of
    /// unknown outcome: if it cannot take effect in `state`).
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    fn describe_state(&self, state: &Self::State) -> String;
    fn describe_op(&self, op: &Self::Op) -> String;
    /// Why `op` cannot happen in `state`, in words.
    fn explain(&self, state: &Self::State, op: &Self::Op) -> String;
    /// Whether `op` sets the state without reading it (a blind write). The search uses it
    /// to skip dominated orders: an optional operation immediately overwritten is wasted.
    fn blind(&self, _op: &Self::Op) -> bool {
        false
    }
    /// A 128-bit key of the state: the search remembers configurations by it instead of
    /// keeping the states themselves (an append register's state is a string that keeps
    /// growing). Equal states must have equal keys; unequal ones collide with
    /// probability about 2^-128 (a collision can only make the search skip a
    /// configuration, which is why a "valid" is re-verified and the docs say what an
    /// "invalid" risks). The default hashes the state twice with SipHash-1-3.
    fn state_key(&self, state: &Self::State) -> u128 {
        sip128(state)
    }
    /// Bytes the state holds beyond its own size (on the heap), for the memory budget.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
    /// Whether, in a sub-history of only these operations, states only ever grow (an
    /// append-only text: every state extends the ones before it). The search then knows
    /// that every operation still to be placed happens in an extension of the current
    /// state, and drops an order as soon as one of them could no longer happen
    /// ([`Model::still_possible`]), instead of finding out many levels deeper.
    fn grows_only(&self, _ops: &[&Self::Op]) -> bool {
        false
    }
    /// With [`Model::grows_only`]: whether `later` can still take effect in some state
    /// that extends `state`.
    fn still_possible(&self, _state: &Self::State, _later: &Self::Op) -> bool {
        true
    }
    /// Whether [`Model::still_possible`] can ever be false for `op` (a read can be, an
    /// append cannot): the search watches only these.
    fn can_become_impossible(&self, _op: &Self::Op) -> bool {
        false
    }
}

/// Two SipHash-1-3 hashes of `value`, each under its own tag, as one 128-bit key.
pub fn sip128<T: Hash + ?Sized>(value: &T) -> u128 {
    use std::hash::{DefaultHasher, Hasher};
    let half = |tag: u8| {
        let mut h = DefaultHasher::new();
        h.write_u8(tag);
        value.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// A register value: JSON scalars kept cheap to clone and compare.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Val {
    Nil,
    Int(i64),
    Text(Arc<str>),
}

impl Val {
    pub fn from_json(v: &Value) -> Val {
        match v {
            Value::Null => Val::Nil,
            Value::Number(n) if n.is_i64() => Val::Int(n.as_i64().expect("checked")),
            Value::String(s) => Val::Text(Arc::from(s.as_str())),
            other => Val::Text(Arc::from(other.to_string().as_str())),
        }
    }
}

impl Val {
    /// The state key of a value: exact (no hashing) for nil and integers, the common
    /// register states; a hash with the top bit set for text, so the two never meet.
    pub fn key(&self) -> u128 {
        match self {
            Val::Nil => 0,
            Val::Int(i) => (1 << 64) | u128::from(*i as u64),
            Val::Text(t) => sip128(&**t) | (1 << 127),
        }
    }

    /// Bytes of the value on the heap (a text's characters and its reference counts).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Val::Text(t) => t.len() + 16,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Nil => write!(f, "nil"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Text(s) => write!(f, "{s:?}"),
        }
    }
}

fn pair(v: &Value, what: &str) -> Result<(Val, Val), String> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok((Val::from_json(&a[0]), Val::from_json(&a[1]))),
        Value::Object(o) if o.contains_key("new") || o.contains_key("value") => {
            let exp = o
                .get("expected")
                .or_else(|| o.get("old"))
                .unwrap_or(&Value::Null);
            let new = o
                .get("new")
                .or_else(|| o.get("value"))
                .unwrap_or(&Value::Null);
            Ok((Val::from_json(exp), Val::from_json(new)))
        }
        other => Err(format!("{what} value must be [expected, new], got {other}")),
    }
}

/// The value a read returned: the completion's value (Jepsen puts it there).
fn read_value(op: &Operation) -> Option<&Value> {
    match op.outcome {
        Outcome::Ok => op.output.as_ref(),
        _ => None,
    }
}

/// The arguments of a write: the invocation's value, or the completion's if the
/// invocation left it out.
fn write_value(op: &Operation) -> &Value {
    match (&op.input, &op.output) {
        (Value::Null, Some(out)) if op.outcome == Outcome::Ok => out,
        (v, _) => v,
    }
}

/// How an `ok` read of nil is taken (Knossos treats it as "value unknown").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NilRead {
    /// nil means the register holds nil (is empty).
    Absent,
    /// nil means the read's value is unknown: always legal.
    Any,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum RegisterOp {
    Read(Val),
    Write(Val),
    Cas(Val, Val),
}

/// A read/write register, or with `cas: true` a compare-and-set register.
#[derive(Clone, Debug)]
pub struct Register {
    pub cas: bool,
    pub init: Val,
    pub nil_read: NilRead,
}

impl Register {
    pub fn new(cas: bool) -> Self {
        Register {
            cas,
            init: Val::Nil,
            nil_read: NilRead::Absent,
        }
    }
}

impl Model for Register {
    type State = Val;
    type Op = RegisterOp;

    fn name(&self) -> &'static str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }

    fn init(&self) -> Val {
        self.init.clone()
    }

    fn compile(&self, op: &Operation) -> Result<Option<RegisterOp>, String> {
        match op.func() {
            Some(Func::Read) => match read_value(op) {
                None => Ok(None),
                Some(Value::Null) if self.nil_read == NilRead::Any => Ok(None),
                Some(v) => Ok(Some(RegisterOp::Read(Val::from_json(v)))),
            },
            Some(Func::Write) => Ok(Some(RegisterOp::Write(Val::from_json(write_value(op))))),
            Some(Func::Cas) if self.cas => {
                let (e, n) = pair(write_value(op), "cas")?;
                Ok(Some(RegisterOp::Cas(e, n)))
            }
            _ => Err(format!(
                "the {} model has no function {:?} (it knows read, write{})",
                self.name(),
                op.f,
                if self.cas { ", cas" } else { "" }
            )),
        }
    }

    fn step(&self, s: &Val, op: &RegisterOp) -> Option<Val> {
        match op {
            RegisterOp::Read(v) => (v == s).then(|| s.clone()),
            RegisterOp::Write(v) => Some(v.clone()),
            RegisterOp::Cas(e, n) => (e == s).then(|| n.clone()),
        }
    }

    fn describe_state(&self, s: &Val) -> String {
        s.to_string()
    }

    fn blind(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Write(_))
    }

    fn state_key(&self, s: &Val) -> u128 {
        s.key()
    }

    fn state_heap_bytes(&self, s: &Val) -> usize {
        s.heap_bytes()
    }

    fn describe_op(&self, op: &RegisterOp) -> String {
        match op {
            RegisterOp::Read(v) => format!("read {v}"),
            RegisterOp::Write(v) => format!("write {v}"),
            RegisterOp::Cas(e, n) => format!("cas {e}->{n}"),
        }
    }

    fn explain(&self, s: &Val, op: &RegisterOp) -> String {
        match op {
            RegisterOp::Read(v) => format!("read returned {v}, but the register held {s}"),
            RegisterOp::Write(_) => "a write is always possible".into(),
            RegisterOp::Cas(e, n) => {
                format!("cas {e}->{n} succeeded, but the register held {s}, not {e}")
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum KvOp {
    Get(Val),
    Put(Val),
    Delete,
    Cas(Val, Val),
    Append(Arc<str>),
}

/// One key of a key-value map (histories are split by key before checking): get, put,
/// delete, compare-and-set and append.
#[derive(Clone, Debug)]
pub struct KeyValue {
    /// A missing key reads as `""` and appending to it starts from `""` (the shape of the
    /// MIT 6.5840 lab histories); otherwise it reads as nil.
    pub missing_is_empty: bool,
}

impl KeyValue {
    fn absent(&self) -> Val {
        if self.missing_is_empty {
            Val::Text(Arc::from(""))
        } else {
            Val::Nil
        }
    }

    fn norm(&self, v: Val) -> Val {
        if v == Val::Nil {
            self.absent()
        } else {
            v
        }
    }
}

fn text_of(v: &Val) -> String {
    match v {
        Val::Nil => String::new(),
        Val::Int(i) => i.to_string(),
        Val::Text(s) => s.to_string(),
    }
}

impl Model for KeyValue {
    type State = Val;
    type Op = KvOp;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> Val {
        self.absent()
    }

    fn compile(&self, op: &Operation) -> Result<Option<KvOp>, String> {
        let v = || Val::from_json(write_value(op));
        match op.func() {
            Some(Func::Read) => match read_value(op) {
                None => Ok(None),
                Some(out) => Ok(Some(KvOp::Get(self.norm(Val::from_json(out))))),
            },
            Some(Func::Write) => Ok(Some(KvOp::Put(self.norm(v())))),
            Some(Func::Delete) => Ok(Some(KvOp::Delete)),
            Some(Func::Cas) => {
                let (e, n) = pair(write_value(op), "cas")?;
                Ok(Some(KvOp::Cas(self.norm(e), self.norm(n))))
            }
            Some(Func::Append) => Ok(Some(KvOp::Append(Arc::from(text_of(&v()).as_str())))),
            Some(Func::Add | Func::ReadAll | Func::Txn) | None => Err(format!(
                "the kv model has no function {:?} (it knows get, put, delete, cas, append)",
                op.f
            )),
        }
    }

    fn step(&self, s: &Val, op: &KvOp) -> Option<Val> {
        match op {
            KvOp::Get(v) => (v == s).then(|| s.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Delete => Some(self.absent()),
            KvOp::Cas(e, n) => (e == s).then(|| n.clone()),
            KvOp::Append(suffix) => {
                let mut t = text_of(s);
                t.push_str(suffix);
                Some(Val::Text(Arc::from(t.as_str())))
            }
        }
    }

    fn describe_state(&self, s: &Val) -> String {
        s.to_string()
    }

    fn blind(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Put(_) | KvOp::Delete)
    }

    fn state_key(&self, s: &Val) -> u128 {
        s.key()
    }

    fn state_heap_bytes(&self, s: &Val) -> usize {
        s.heap_bytes()
    }

    fn grows_only(&self, ops: &[&KvOp]) -> bool {
        ops.iter()
            .all(|op| matches!(op, KvOp::Get(Val::Text(_)) | KvOp::Append(_)))
            && (self.missing_is_empty || ops.iter().all(|op| matches!(op, KvOp::Append(_))))
    }

    fn can_become_impossible(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_))
    }

    fn still_possible(&self, s: &Val, later: &KvOp) -> bool {
        match (later, s) {
            (KvOp::Get(Val::Text(v)), Val::Text(t)) => v.starts_with(&**t),
            _ => true,
        }
    }

    fn describe_op(&self, op: &KvOp) -> String {
        match op {
            KvOp::Get(v) => format!("get {v}"),
            KvOp::Put(v) => format!("put {v}"),
            KvOp::Delete => "delete".into(),
            KvOp::Cas(e, n) => format!("cas {e}->{n}"),
            KvOp::Append(s) => format!("append {s:?}"),
        }
    }

    fn explain(&self, s: &Val, op: &KvOp) -> String {
        match op {
            KvOp::Get(v) => format!("get returned {v}, but the key held {s}"),
            KvOp::Cas(e, n) => format!("cas {e}->{n} succeeded, but the key held {s}, not {e}"),
            _ => "always possible".into(),
        }
    }
}
