//! Cycles in the dependency graph, found worst first and named.
//!
//! Whether a model is broken is decided exactly, and cheaply, by strongly connected
//! components over the edges that model orders by: write-write alone (G0), with
//! write-read (G1c), all data edges (serializability), with process edges (strong
//! session serializability) and with real-time edges (strict serializability). The one
//! question components cannot answer is whether a cycle with exactly one
//! anti-dependency exists (G-single, which snapshot isolation forbids): that is a path
//! search per anti-dependency, the only part that runs under a step budget. A search cut
//! short leaves snapshot isolation undecided rather than valid.
//!
//! Within each component one cycle is named (breadth-first, so short), its edges
//! explained in words.

use std::time::Instant;

use super::graph::{
    Components, Dependency, Graph, Labels, ALL, DATA, PROCESS, REALTIME, RW, WR, WW,
};
use super::infer::{key_name, list, name, Found, Inferred};
use super::models::AnomalyKind;
use super::parse::{Key, Mop, Seen, Txn, TxnKind, Txns};

/// What the cycle search found, and whether it finished.
pub struct CycleResult {
    pub found: Vec<Found>,
    /// Cycles found past the number explained, by kind.
    pub unnamed: Vec<AnomalyKind>,
    /// False when the step budget or the deadline cut the G-single search short.
    pub g_single_complete: bool,
}

impl CycleResult {
    /// No cycle: none searched for (`complete` false) or none there.
    pub fn none(complete: bool) -> CycleResult {
        CycleResult {
            found: Vec::new(),
            unnamed: Vec::new(),
            g_single_complete: complete,
        }
    }
}

/// Names a cycle by its edges: how many anti-dependencies, and whether it needs process
/// or real-time order.
fn classify(deps: &[Dependency]) -> AnomalyKind {
    use AnomalyKind::*;
    let rw = deps.iter().filter(|d| **d == Dependency::Rw).count();
    let base = if rw == 0 {
        if deps.iter().all(|d| *d == Dependency::Ww) {
            0
        } else {
            1
        }
    } else if rw == 1 {
        2
    } else {
        3
    };
    let realtime = deps.contains(&Dependency::Realtime);
    let process = deps.contains(&Dependency::Process);
    let table = if realtime {
        [G0Realtime, G1cRealtime, GSingleRealtime, G2ItemRealtime]
    } else if process {
        [G0Process, G1cProcess, GSingleProcess, G2ItemProcess]
    } else {
        [G0, G1c, GSingle, G2Item]
    };
    table[base]
}

struct Search<'a> {
    txns: &'a Txns,
    inf: &'a Inferred,
    steps: u64,
    deadline: Option<Instant>,
    found: Vec<Found>,
    /// Cycles past [`MAX_NAMED`]: counted by kind, not explained.
    unnamed: Vec<AnomalyKind>,
}

/// At most this many cycles are explained; a history broken everywhere would otherwise
/// spend its memory on words.
const MAX_NAMED: usize = 1000;

impl Search<'_> {
    fn out_of_budget(&self) -> bool {
        self.steps == 0 || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Records the cycle `a → b → path… → a` (the path ends with `a`), with `first`
    /// the labels the edge a → b is to be read by.
    fn record(&mut self, a: u32, b: u32, first: Labels, path: &[u32]) -> AnomalyKind {
        let g = &self.inf.graph;
        let mut nodes = vec![a, b];
        nodes.extend_from_slice(path);
        // Each edge read by its weakest reason (the first by one of `first`'s).
        let deps: Vec<Dependency> = nodes
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let l = g.labels(w[0], w[1]);
                Dependency::of(if i == 0 { l & first } else { l })
                    .expect("every edge of a path has a label")
            })
            .collect();
        let kind = classify(&deps);
        if self.found.len() >= MAX_NAMED {
            self.unnamed.push(kind);
            return kind;
        }
        let tx: Vec<u32> = nodes[..nodes.len() - 1]
            .iter()
            .map(|n| self.inf.nodes[*n as usize])
            .collect();
        let mut why: Vec<String> = nodes
            .windows(2)
            .zip(&deps)
            .map(|(w, d)| {
                let (x, y) = (
                    &self.txns.txns[self.inf.nodes[w[0] as usize] as usize],
                    &self.txns.txns[self.inf.nodes[w[1] as usize] as usize],
                );
                format!(
                    "{} (so {} → {}, {})",
                    explain(self.txns, self.inf, x, y, *d),
                    name(x),
                    name(y),
                    d.name()
                )
            })
            .collect();
        if let Some(last) = why.last_mut() {
            last.push_str(&format!(": {kind}"));
        }
        self.found.push(Found {
            kind,
            txns: tx,
            why,
            edges: deps,
        });
        kind
    }

    /// One cycle per component of `comps` that holds an edge labelled `need` and none of
    /// `exclude`, searched over `mask`; components marked in `done` are skipped.
    fn per_component(
        &mut self,
        comps: &Components,
        mask: Labels,
        need: Labels,
        exclude: Labels,
        mut done: Vec<bool>,
    ) {
        let g: &Graph = &self.inf.graph;
        for a in 0..g.nodes() as u32 {
            let c = comps.comp[a as usize] as usize;
            if comps.sizes[c] < 2 || done[c] {
                continue;
            }
            let edge = g
                .out(a, need)
                .find(|(b, l)| l & exclude == 0 && comps.together(a, *b));
            let Some((b, _)) = edge else { continue };
            done[c] = true;
            let mut steps = u64::MAX;
            // a and b share a component of `mask`, so the path exists.
            if let Some(path) = g.path(b, a, mask, comps, &mut steps) {
                self.record(a, b, need, &path);
            }
        }
    }

    /// Looks for a G-single in every data component; returns whether the search
    /// finished, and which components have one named.
    fn g_single(&mut self, data: &Components, wwr: &Components) -> (bool, Vec<bool>) {
        let g: &Graph = &self.inf.graph;
        let mut done = vec![false; data.sizes.len()];
        // Components that already hold a G0 or G1c cycle need no G-single to be broken
        // for snapshot isolation, but a G-single is still worth naming: keep looking.
        for a in 0..g.nodes() as u32 {
            let c = data.comp[a as usize] as usize;
            if data.sizes[c] < 2 || done[c] {
                continue;
            }
            let rws: Vec<u32> = g
                .out(a, RW)
                .filter(|(b, l)| l & (WW | WR) == 0 && data.together(a, *b))
                .map(|(b, _)| b)
                .collect();
            for b in rws {
                if self.out_of_budget() {
                    return (false, done);
                }
                // Within one ww/wr component the path exists; otherwise search the data
                // component with ww/wr edges only.
                let within = if wwr.together(a, b) { wwr } else { data };
                let mut steps = self.steps;
                let path = g.path(b, a, WW | WR, within, &mut steps);
                self.steps = steps;
                if let Some(path) = path {
                    self.record(a, b, RW, &path);
                    done[c] = true;
                    break;
                }
            }
        }
        (!self.out_of_budget(), done)
    }
}

/// The components of `comps` that hold a cycle of `inner` (a weaker order): the cycle
/// found there already names what is wrong.
fn holding_cycles_of(comps: &Components, inner: &Components) -> Vec<bool> {
    let mut marked = vec![false; comps.sizes.len()];
    for (a, c) in inner.comp.iter().enumerate() {
        if inner.sizes[*c as usize] > 1 {
            marked[comps.comp[a] as usize] = true;
        }
    }
    marked
}

/// Finds and names cycles, worst first.
pub fn find(txns: &Txns, inf: &Inferred, steps: u64, deadline: Option<Instant>) -> CycleResult {
    let g = &inf.graph;
    let mut s = Search {
        txns,
        inf,
        steps,
        deadline,
        found: Vec::new(),
        unnamed: Vec::new(),
    };
    let all = g.components(ALL);
    if !all.any_cycle() {
        return CycleResult::none(true);
    }
    let ww = g.components(WW);
    s.per_component(&ww, WW, WW, 0, vec![false; ww.sizes.len()]);
    let wwr = g.components(WW | WR);
    s.per_component(&wwr, WW | WR, WR, WW, vec![false; wwr.sizes.len()]);
    let data = g.components(DATA);
    let (complete, named) = s.g_single(&data, &wwr);
    // Components with a data cycle but no G-single named: a cycle through an
    // anti-dependency (G2-item, or G-single if the budget ran out first).
    s.per_component(&data, DATA, RW, WW | WR, named);
    // Cycles that need process order, then real-time order, where no weaker cycle is.
    let dp = g.components(DATA | PROCESS);
    s.per_component(
        &dp,
        DATA | PROCESS,
        PROCESS,
        DATA,
        holding_cycles_of(&dp, &data),
    );
    let done = holding_cycles_of(&all, &dp);
    s.per_component(&all, ALL, REALTIME, DATA | PROCESS, done);
    CycleResult {
        found: s.found,
        unnamed: s.unnamed,
        g_single_complete: complete,
    }
}

fn writes(t: &Txn) -> impl Iterator<Item = (Key, i64)> + '_ {
    t.mops.iter().filter_map(|m| match m {
        Mop::Append { key, value } | Mop::Write { key, value } => Some((*key, *value)),
        Mop::Read { .. } => None,
    })
}

fn reads(t: &Txn) -> impl Iterator<Item = (Key, &Seen)> + '_ {
    t.mops.iter().filter_map(|m| match m {
        Mop::Read { key, seen } if *seen != Seen::Unknown => Some((*key, seen)),
        _ => None,
    })
}

/// Why `a` precedes `b` by dependency `d`, in words.
fn explain(txns: &Txns, inf: &Inferred, a: &Txn, b: &Txn, d: Dependency) -> String {
    let key = key_name;
    let (na, nb) = (name(a), name(b));
    let la = txns.kind == TxnKind::ListAppend;
    let verb = if la { "appended" } else { "wrote" };
    let pos = |k: Key, v: i64| {
        inf.orders
            .get(k as usize)
            .and_then(|o| o.iter().position(|x| *x == v))
    };
    match d {
        Dependency::Ww => {
            for (k, va) in writes(a) {
                for (_, vb) in writes(b).filter(|(kb, _)| *kb == k) {
                    if la {
                        match (pos(k, va), pos(k, vb)) {
                            (Some(pa), Some(pb)) if pa < pb => {
                                return format!("{na} appended {va} to {}; {nb} appended {vb} after it", key(txns, k))
                            }
                            (Some(_), None) => {
                                return format!("{na} appended {va} to {}; {nb} appended {vb}, which no read saw, so after every element read", key(txns, k))
                            }
                            _ => {}
                        }
                    } else if reads(b).any(|(kr, s)| kr == k && *s == Seen::Register(Some(va))) {
                        return format!(
                            "{na} wrote {} = {va}; {nb} read it and wrote {vb} over it",
                            key(txns, k)
                        );
                    }
                }
            }
            format!("{na} {verb} before {nb} on a shared key")
        }
        Dependency::Wr => {
            for (k, seen) in reads(b) {
                let last = match seen {
                    Seen::List(xs) => xs.last().copied(),
                    Seen::Register(v) => *v,
                    Seen::Unknown => None,
                };
                if let Some(v) = last {
                    if writes(a).any(|w| w == (k, v)) {
                        return match seen {
                            Seen::List(xs) => format!(
                                "{nb} read {} = {}, ending in {v}, which {na} appended",
                                key(txns, k),
                                list(xs)
                            ),
                            _ => format!("{nb} read {} = {v}, which {na} wrote", key(txns, k)),
                        };
                    }
                }
            }
            format!("{nb} read what {na} wrote")
        }
        Dependency::Rw => {
            for (k, seen) in reads(a) {
                for (kb, vb) in writes(b) {
                    if kb != k {
                        continue;
                    }
                    match seen {
                        Seen::List(xs) if la && !xs.contains(&vb) => {
                            return format!(
                                "{na} read {} = {} without {vb}, which {nb} appended",
                                key(txns, k),
                                list(xs)
                            );
                        }
                        Seen::Register(v) if !la => {
                            let was = v
                                .map_or("nothing yet (the initial state)".to_string(), |v| {
                                    v.to_string()
                                });
                            return format!(
                                "{na} read {} = {was}; {nb} wrote {vb} over that version",
                                key(txns, k)
                            );
                        }
                        _ => {}
                    }
                }
            }
            format!("{na} read a version {nb} overwrote")
        }
        Dependency::Process => format!("{na} and then {nb} ran on process {}", a.process),
        Dependency::Realtime => format!(
            "{na} completed (at {:.6} s) before {nb} was invoked (at {:.6} s)",
            a.ret.unwrap_or(0) as f64 / 1e9,
            b.call as f64 / 1e9
        ),
    }
}
