//! From transactions to a dependency graph, as Elle infers it.
//!
//! **List-append.** Every read of a list is a prefix of the list's one order of appends,
//! so the longest read of a key gives its version order and every other read is checked
//! to be a prefix of it. From that order: write-write edges between consecutive
//! appenders, write-read edges from the appender of a read's last element to the
//! reader, read-write edges from a reader to the appender of the element after its
//! read. An append that committed but was never read must come after every element that
//! was: its appender follows the last observed appender (ww) and every reader of the
//! whole order (rw).
//!
//! **Rw-register.** Reads say which write they saw (values are unique), but not the
//! order of writes, so only what is certain is used: the initial state precedes every
//! write, and a transaction that read version `r` of a key and then wrote `w` puts `r`
//! before `w`. Each such fact gives a write-write edge from `r`'s writer and read-write
//! edges from `r`'s other readers. Edges to a later but not the next version are sound:
//! the true next version lies on a write-write path between them with no further
//! anti-dependency, so every cycle found has a counterpart of the same class.
//!
//! **Both.** Process edges join a process's consecutive transactions; real-time edges
//! join a transaction to those invoked after it completed, kept to a transitive
//! reduction (each new transaction is joined to the frontier of latest completions,
//! which is as small as the concurrency) so a million transactions do not make a
//! trillion edges. Nodes are the transactions that committed: `ok` ones, and `info`
//! ones some read proves took effect.
//!
//! What is not a cycle is found here too: reads of aborted or intermediate state (G1a,
//! G1b), reads of values never written, lists out of order or with duplicates,
//! transactions that contradict themselves (internal) and lost updates.

use rustc_hash::{FxHashMap, FxHashSet};

use super::graph::{Graph, Labels, PROCESS, REALTIME, RW, WR, WW};
use super::models::AnomalyKind;
use super::parse::{Key, Mop, Seen, Txn, TxnKind, Txns};
use crate::history::Outcome;

const NONE: u32 = u32::MAX;

/// A found anomaly that is not a cycle (cycles are found in the graph later).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: AnomalyKind,
    /// Indices into [`Txns::txns`], the ones the explanation names.
    pub txns: Vec<u32>,
    pub why: Vec<String>,
    /// For a cycle: the dependency from each transaction to the next (the last back to
    /// the first); empty otherwise.
    pub edges: Vec<super::graph::Dependency>,
}

impl Found {
    /// An anomaly that is not a cycle: the transactions it names and why, in words.
    fn new(kind: AnomalyKind, txns: Vec<u32>, why: String) -> Found {
        Found {
            kind,
            txns,
            why: vec![why],
            edges: Vec::new(),
        }
    }
}

/// Bytes the graph costs per edge and per node, counted generously: the edge list as it
/// grows (up to twice its length while a vector doubles), the compressed rows, and the
/// arrays of a strongly-connected-components pass.
const EDGE_BYTES: usize = 40;
const NODE_BYTES: usize = 40;

/// The edges as inference finds them, within the check's memory budget: past it they
/// stop being kept, and the cycle search does not run (its verdict would rest on part
/// of the graph).
struct Edges {
    list: Vec<(u32, u32, Labels)>,
    max: usize,
    over: bool,
}

impl Edges {
    fn new(memory: usize, nodes: usize) -> Edges {
        Edges {
            list: Vec::new(),
            max: memory.saturating_sub(nodes.saturating_mul(NODE_BYTES)) / EDGE_BYTES,
            over: false,
        }
    }

    fn push(&mut self, e: (u32, u32, Labels)) {
        if self.list.len() >= self.max {
            self.over = true;
            return;
        }
        self.list.push(e);
    }

    /// Why the graph was not built, if it did not fit.
    fn over_budget(&self, memory: usize) -> Option<String> {
        self.over.then(|| {
            format!(
                "the dependency graph needs more than the checker's memory budget ({} MiB; \
                 --check-memory or --memory-limit raises it)",
                memory >> 20
            )
        })
    }

    /// The graph, or an empty one when the edges did not fit.
    fn build(self, nodes: usize) -> Graph {
        match self.over {
            true => Graph::build(nodes, Vec::new()),
            false => Graph::build(nodes, self.list),
        }
    }
}

/// The graph and what was found on the way.
pub struct Inferred {
    /// Set when the graph did not fit the memory budget: no cycle can be looked for.
    pub over_budget: Option<String>,
    /// Transaction index of each node.
    pub nodes: Vec<u32>,
    pub graph: Graph,
    pub found: Vec<Found>,
    /// List-append: each key's order of appends as observed (the longest read).
    pub orders: Vec<Box<[i64]>>,
}

/// Where a value was written: its transaction, and whether that transaction wrote the
/// key again later (a read of it then saw intermediate state).
#[derive(Clone, Copy)]
struct Written {
    txn: u32,
    overwritten: bool,
}

fn writers(txns: &Txns) -> Result<FxHashMap<(Key, i64), Written>, super::parse::TxnError> {
    let mut map: FxHashMap<(Key, i64), Written> = FxHashMap::default();
    for (i, t) in txns.txns.iter().enumerate() {
        let mut later: Vec<Key> = Vec::new();
        for m in t.mops.iter().rev() {
            let (key, value) = match m {
                Mop::Append { key, value } | Mop::Write { key, value } => (*key, *value),
                Mop::Read { .. } => continue,
            };
            let overwritten = later.contains(&key);
            if !overwritten {
                later.push(key);
            }
            if map
                .insert(
                    (key, value),
                    Written {
                        txn: i as u32,
                        overwritten,
                    },
                )
                .is_some()
            {
                return Err(super::parse::TxnError::Duplicate {
                    line: t.line,
                    key: txns.keys[key as usize].clone(),
                    value,
                    what: if txns.kind == TxnKind::ListAppend {
                        "appended"
                    } else {
                        "written"
                    },
                });
            }
        }
    }
    Ok(map)
}

/// A key as explanations name it: "key 3" (keys are often bare numbers).
pub fn key_name(txns: &Txns, k: Key) -> String {
    format!("key {}", txns.keys[k as usize])
}

/// A transaction's name in explanations: its operation id.
pub fn name(t: &Txn) -> String {
    format!("T{}", t.op)
}

pub(super) fn list(xs: &[i64]) -> String {
    let items: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(" "))
}

/// Reads that come before any write of the same key in their transaction: what the
/// database showed it (later reads are checked by `internal`).
fn external_reads(t: &Txn) -> impl Iterator<Item = (Key, &Seen)> {
    let mut written: Vec<Key> = Vec::new();
    let mut read: Vec<Key> = Vec::new();
    t.mops.iter().filter_map(move |m| match m {
        Mop::Append { key, .. } | Mop::Write { key, .. } => {
            written.push(*key);
            None
        }
        Mop::Read { key, seen } => {
            if written.contains(key) || read.contains(key) || *seen == Seen::Unknown {
                return None;
            }
            read.push(*key);
            Some((*key, seen))
        }
    })
}

/// A transaction whose later reads disagree with what it read and wrote before.
fn internal(txns: &Txns, i: usize) -> Option<Found> {
    let t = &txns.txns[i];
    if t.outcome != Outcome::Ok {
        return None;
    }
    // Per key: the state known so far (None: not read yet) and the own writes since.
    type KeyState = (Key, Option<Vec<i64>>, Vec<i64>);
    let mut state: Vec<KeyState> = Vec::new();
    for m in &t.mops {
        let at = |state: &mut Vec<KeyState>, key: Key| match state.iter().position(|s| s.0 == key) {
            Some(p) => p,
            None => {
                state.push((key, None, Vec::new()));
                state.len() - 1
            }
        };
        match m {
            Mop::Append { key, value } | Mop::Write { key, value } => {
                let p = at(&mut state, *key);
                let s = &mut state[p];
                match (&mut s.1, txns.kind) {
                    (Some(known), TxnKind::ListAppend) => known.push(*value),
                    (None, TxnKind::ListAppend) => s.2.push(*value),
                    (_, TxnKind::RwRegister) => s.1 = Some(vec![*value]),
                }
            }
            Mop::Read { key, seen } => {
                let p = at(&mut state, *key);
                let s = &mut state[p];
                let got: Vec<i64> = match seen {
                    Seen::Unknown => continue,
                    Seen::List(xs) => xs.to_vec(),
                    Seen::Register(v) => v.iter().copied().collect(),
                };
                let ok = match &s.1 {
                    Some(known) => *known == got,
                    None => got.ends_with(&s.2),
                };
                if !ok {
                    let key_name = key_name(txns, *key);
                    let expected = match &s.1 {
                        Some(k) => format!("{} (from its own earlier operations)", list(k)),
                        None => format!("a list ending in {}, its own appends", list(&s.2)),
                    };
                    return Some(Found::new(
                        AnomalyKind::Internal,
                        vec![i as u32],
                        format!(
                            "{} read {key_name} = {}, but it must have seen {expected}",
                            name(t),
                            list(&got)
                        ),
                    ));
                }
                s.1 = Some(got);
                s.2.clear();
            }
        }
    }
    None
}

/// The process and real-time edges among `nodes`.
fn order_edges(txns: &Txns, nodes: &[u32], edges: &mut Edges) {
    // Process: consecutive nodes of each process, by invocation.
    let mut by_process: Vec<(i64, u64, u32)> = nodes
        .iter()
        .enumerate()
        .map(|(n, &t)| {
            (
                txns.txns[t as usize].process,
                txns.txns[t as usize].call,
                n as u32,
            )
        })
        .collect();
    by_process.sort_unstable();
    for w in by_process.windows(2) {
        if w[0].0 == w[1].0 {
            edges.push((w[0].2, w[1].2, PROCESS));
        }
    }
    // Real time: sweep invocations and completions; invocations first at equal times
    // (operations that touch are concurrent).
    let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(nodes.len() * 2);
    for (n, &t) in nodes.iter().enumerate() {
        let t = &txns.txns[t as usize];
        events.push((t.call, false, n as u32));
        if let Some(r) = t.ret {
            events.push((r, true, n as u32));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    // For each node, where its predecessors start in `preds`.
    let mut first_pred = vec![0u32; nodes.len() + 1];
    let mut preds: Vec<u32> = Vec::new();
    let mut pred_len = vec![0u32; nodes.len()];
    for (_, done, n) in events {
        if !done {
            first_pred[n as usize] = preds.len() as u32;
            pred_len[n as usize] = frontier.len() as u32;
            for &f in &frontier {
                edges.push((f, n, REALTIME));
                preds.push(f);
            }
        } else {
            let s = first_pred[n as usize] as usize;
            let dominated = &preds[s..s + pred_len[n as usize] as usize];
            frontier.retain(|f| !dominated.contains(f));
            frontier.push(n);
        }
    }
}

/// Builds the graph for `txns`.
pub fn infer(txns: &Txns, memory: usize) -> Result<Inferred, super::parse::TxnError> {
    let written = writers(txns)?;
    let mut found = Vec::new();
    for i in 0..txns.txns.len() {
        if let Some(f) = internal(txns, i) {
            found.push(f);
        }
    }
    match txns.kind {
        TxnKind::ListAppend => list_append(txns, &written, found, memory),
        TxnKind::RwRegister => rw_register(txns, &written, found, memory),
    }
}

/// The graph's nodes, the transactions known to have committed: every `ok` one, and
/// each `info` one with a write some read saw (`seen`). Returns the nodes' transaction
/// indices and `node_of[txn]` (NONE for transactions not in the graph).
fn committed(txns: &Txns, seen: impl Fn(Key, i64) -> bool) -> (Vec<u32>, Vec<u32>) {
    let mut node_of = vec![NONE; txns.txns.len()];
    let mut nodes = Vec::new();
    for (i, n) in node_of.iter_mut().enumerate() {
        let t = &txns.txns[i];
        let is_node = match t.outcome {
            Outcome::Ok => true,
            Outcome::Fail => false,
            Outcome::Info => t.mops.iter().any(|m| match m {
                Mop::Append { key, value } | Mop::Write { key, value } => seen(*key, *value),
                Mop::Read { .. } => false,
            }),
        };
        if is_node {
            *n = nodes.len() as u32;
            nodes.push(i as u32);
        }
    }
    (nodes, node_of)
}

/// The read anomalies of one observed value: never written, written by a failed
/// transaction, or overwritten by its writer before it committed.
fn read_of(
    txns: &Txns,
    written: &FxHashMap<(Key, i64), Written>,
    reader: usize,
    key: Key,
    value: i64,
    last: bool,
) -> Option<Found> {
    let r = &txns.txns[reader];
    let k = &key_name(txns, key);
    let Some(w) = written.get(&(key, value)) else {
        return Some(Found::new(
            AnomalyKind::GarbageRead,
            vec![reader as u32],
            format!(
                "{} read {value} from {k}, which no transaction wrote",
                name(r)
            ),
        ));
    };
    let wt = &txns.txns[w.txn as usize];
    if wt.outcome == Outcome::Fail {
        return Some(Found::new(
            AnomalyKind::G1a,
            vec![w.txn, reader as u32],
            format!(
                "{} read {value} from {k}, written by {}, which failed (aborted read)",
                name(r),
                name(wt)
            ),
        ));
    }
    if last && w.overwritten && w.txn as usize != reader {
        let why = match txns.kind {
            TxnKind::ListAppend => format!(
                "{} read {k} ending in {value}, which {} appended and then appended to again in the same transaction (an intermediate state)",
                name(r),
                name(wt)
            ),
            TxnKind::RwRegister => format!(
                "{} read {k} = {value}, which {} wrote and then overwrote in the same transaction (an intermediate state)",
                name(r),
                name(wt)
            ),
        };
        return Some(Found::new(
            AnomalyKind::G1b,
            vec![w.txn, reader as u32],
            why,
        ));
    }
    None
}

fn list_append(
    txns: &Txns,
    written: &FxHashMap<(Key, i64), Written>,
    mut found: Vec<Found>,
    memory: usize,
) -> Result<Inferred, super::parse::TxnError> {
    let nkeys = txns.keys.len();
    // The longest read of each key (by an ok transaction, any read).
    let mut longest: Vec<Option<(u32, &[i64])>> = vec![None; nkeys];
    for (i, t) in txns.txns.iter().enumerate() {
        for m in &t.mops {
            if let Mop::Read {
                key,
                seen: Seen::List(xs),
            } = m
            {
                let l = &mut longest[*key as usize];
                if l.is_none_or(|(_, cur)| xs.len() > cur.len()) {
                    *l = Some((i as u32, xs));
                }
            }
        }
    }
    let orders: Vec<Box<[i64]>> = longest
        .iter()
        .map(|l| l.map_or(Box::new([]) as Box<[i64]>, |(_, xs)| xs.into()))
        .collect();
    // Each key's duplicates and unknown or aborted elements, once, from its longest read.
    let mut pos: FxHashMap<(Key, i64), u32> = FxHashMap::default();
    for (k, l) in longest.iter().enumerate() {
        let Some((reader, xs)) = l else { continue };
        for (p, &v) in xs.iter().enumerate() {
            if pos.insert((k as Key, v), p as u32).is_some() {
                found.push(Found::new(
                    AnomalyKind::DuplicateElements,
                    vec![*reader],
                    format!(
                        "{} read {} = {}, which holds {v} twice",
                        name(&txns.txns[*reader as usize]),
                        key_name(txns, k as Key),
                        list(xs)
                    ),
                ));
                break;
            }
            if let Some(f) = read_of(txns, written, *reader as usize, k as Key, v, false) {
                if f.kind != AnomalyKind::G1b {
                    found.push(f);
                }
            }
        }
    }
    // One transaction's appends to a key must be read in the order it made them.
    for (i, t) in txns.txns.iter().enumerate() {
        let mut last: Vec<(Key, u32, i64)> = Vec::new();
        for m in &t.mops {
            let Mop::Append { key, value } = m else {
                continue;
            };
            let Some(&p) = pos.get(&(*key, *value)) else {
                continue;
            };
            match last.iter_mut().find(|l| l.0 == *key) {
                Some(l) if l.1 > p => {
                    found.push(Found::new(
                        AnomalyKind::IncompatibleOrder,
                        vec![i as u32],
                        format!(
                            "{} appended {} and then {value} to {}, but reads show {value} first",
                            name(t),
                            l.2,
                            key_name(txns, *key)
                        ),
                    ));
                    break;
                }
                Some(l) => *l = (*key, p, *value),
                None => last.push((*key, p, *value)),
            }
        }
    }
    let (nodes, node_of) = committed(txns, |k, v| pos.contains_key(&(k, v)));
    let node = |t: u32| node_of[t as usize];
    let writer_node = |k: Key, v: i64| written.get(&(k, v)).map_or(NONE, |w| node(w.txn));
    let mut edges = Edges::new(memory, nodes.len());
    // ww along each order; the last observed appender of each key.
    let mut last_writer = vec![NONE; nkeys];
    for (k, order) in orders.iter().enumerate() {
        let mut prev = NONE;
        for &v in order.iter() {
            let w = writer_node(k as Key, v);
            if w == NONE {
                continue;
            }
            if prev != NONE && prev != w {
                edges.push((prev, w, WW));
            }
            prev = w;
        }
        last_writer[k] = prev;
    }
    // Appends nobody read, per key: after every observed one.
    let mut unread: Vec<Vec<u32>> = vec![Vec::new(); nkeys];
    for (n, &t) in nodes.iter().enumerate() {
        for m in &txns.txns[t as usize].mops {
            if let Mop::Append { key, value } = m {
                if !pos.contains_key(&(*key, *value)) {
                    let u = &mut unread[*key as usize];
                    if u.last() != Some(&(n as u32)) {
                        u.push(n as u32);
                    }
                    let lw = last_writer[*key as usize];
                    if lw != NONE {
                        edges.push((lw, n as u32, WW));
                    }
                }
            }
        }
    }
    // Reads: prefixes, intermediate reads, wr and rw edges, lost updates.
    let mut incompatible = vec![false; nkeys];
    let mut read_then_append: FxHashMap<(Key, usize), Vec<u32>> = FxHashMap::default();
    for (i, t) in txns.txns.iter().enumerate() {
        for m in &t.mops {
            let Mop::Read {
                key: k,
                seen: Seen::List(xs),
            } = m
            else {
                continue;
            };
            let order = &orders[*k as usize];
            if !order.starts_with(xs) && !incompatible[*k as usize] {
                incompatible[*k as usize] = true;
                let (other, _) = longest[*k as usize].expect("a longer read exists");
                found.push(Found::new(
                    AnomalyKind::IncompatibleOrder,
                    vec![i as u32, other],
                    format!(
                        "{} read {} = {} and {} read {}: neither is a prefix of the other",
                        name(t),
                        key_name(txns, *k),
                        list(xs),
                        name(&txns.txns[other as usize]),
                        list(order)
                    ),
                ));
            }
        }
    }
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        let r = node(i as u32);
        for (k, seen) in external_reads(t) {
            let Seen::List(xs) = seen else { continue };
            let order = &orders[k as usize];
            if !order.starts_with(xs) {
                continue;
            }
            if let Some(&last) = xs.last() {
                if let Some(f) = read_of(txns, written, i, k, last, true) {
                    found.push(f);
                }
                let w = writer_node(k, last);
                if w != NONE {
                    edges.push((w, r, WR));
                }
            }
            if xs.len() < order.len() {
                let w = writer_node(k, order[xs.len()]);
                if w != NONE {
                    edges.push((r, w, RW));
                }
            } else {
                for &u in &unread[k as usize] {
                    edges.push((r, u, RW));
                }
            }
            if t.mops
                .iter()
                .any(|m| matches!(m, Mop::Append { key, .. } if *key == k))
            {
                read_then_append
                    .entry((k, xs.len()))
                    .or_default()
                    .push(i as u32);
            }
        }
    }
    lost_updates(txns, read_then_append, &mut found, |(_, len)| {
        if len == 0 {
            "nothing".to_string()
        } else {
            format!("the first {len} elements")
        }
    });
    order_edges(txns, &nodes, &mut edges);
    Ok(Inferred {
        over_budget: edges.over_budget(memory),
        graph: edges.build(nodes.len()),
        nodes,
        found,
        orders,
    })
}

fn lost_updates<K: Copy + Ord>(
    txns: &Txns,
    groups: FxHashMap<(Key, K), Vec<u32>>,
    found: &mut Vec<Found>,
    version: impl Fn((Key, K)) -> String,
) {
    let mut groups: Vec<_> = groups.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
    groups.sort_unstable_by_key(|(k, _)| *k);
    let mut reported: Vec<Key> = Vec::new();
    for (k, ts) in groups {
        if reported.contains(&k.0) {
            continue;
        }
        reported.push(k.0);
        let names: Vec<String> = ts.iter().map(|t| name(&txns.txns[*t as usize])).collect();
        found.push(Found::new(
            AnomalyKind::LostUpdate,
            ts.clone(),
            format!(
                "{} all read {} of {} and then wrote it: in any serial order only the first could have read that",
                names.join(", "),
                version(k),
                key_name(txns, k.0)
            ),
        ));
    }
}

fn rw_register(
    txns: &Txns,
    written: &FxHashMap<(Key, i64), Written>,
    mut found: Vec<Found>,
    memory: usize,
) -> Result<Inferred, super::parse::TxnError> {
    let nkeys = txns.keys.len();
    // Which writes someone read (an info transaction with one is a node).
    let mut read_values: FxHashSet<(Key, i64)> = FxHashSet::default();
    for t in txns.txns.iter().filter(|t| t.outcome == Outcome::Ok) {
        for (k, seen) in external_reads(t) {
            if let Seen::Register(Some(v)) = seen {
                read_values.insert((k, *v));
            }
        }
    }
    let (nodes, node_of) = committed(txns, |k, v| read_values.contains(&(k, v)));
    let node = |t: u32| node_of[t as usize];
    let writer_node = |k: Key, v: i64| written.get(&(k, v)).map_or(NONE, |w| node(w.txn));
    let mut edges = Edges::new(memory, nodes.len());
    // Readers of each version (None: the initial state), and the writers of each key.
    let mut readers: FxHashMap<(Key, Option<i64>), Vec<u32>> = FxHashMap::default();
    let mut key_writers: Vec<Vec<u32>> = vec![Vec::new(); nkeys];
    // Versions known to precede a transaction's write: (key, version read, writer node).
    let mut facts: Vec<(Key, Option<i64>, u32)> = Vec::new();
    let mut read_then_write: FxHashMap<(Key, Option<i64>), Vec<u32>> = FxHashMap::default();
    for (n, &t) in nodes.iter().enumerate() {
        let n = n as u32;
        let tx = &txns.txns[t as usize];
        for m in &tx.mops {
            if let Mop::Write { key, .. } = m {
                if key_writers[*key as usize].last() != Some(&n) {
                    key_writers[*key as usize].push(n);
                }
            }
        }
        for (k, seen) in external_reads(tx) {
            let Seen::Register(v) = seen else { continue };
            readers.entry((k, *v)).or_default().push(n);
            if let Some(v) = v {
                if let Some(f) = read_of(txns, written, t as usize, k, *v, true) {
                    found.push(f);
                }
                let w = writer_node(k, *v);
                if w != NONE {
                    edges.push((w, n, WR));
                }
            }
            if tx
                .mops
                .iter()
                .any(|m| matches!(m, Mop::Write { key, .. } if *key == k))
            {
                facts.push((k, *v, n));
                read_then_write.entry((k, *v)).or_default().push(t);
            }
        }
    }
    for (k, v, w) in facts {
        if let Some(v) = v {
            let prev = writer_node(k, v);
            if prev != NONE {
                edges.push((prev, w, WW));
            }
        }
        for &r in readers.get(&(k, v)).map_or(&[][..], |r| r) {
            edges.push((r, w, RW));
        }
    }
    // The initial state precedes every write of its key.
    for ((k, v), rs) in &readers {
        if v.is_some() {
            continue;
        }
        for &r in rs {
            for &w in &key_writers[*k as usize] {
                edges.push((r, w, RW));
            }
        }
    }
    lost_updates(txns, read_then_write, &mut found, |(_, v)| match v {
        Some(v) => format!("version {v}"),
        None => "the initial version".to_string(),
    });
    order_edges(txns, &nodes, &mut edges);
    Ok(Inferred {
        over_budget: edges.over_budget(memory),
        graph: edges.build(nodes.len()),
        nodes,
        found,
        orders: Vec::new(),
    })
}
