//! A brute-force linearizability checker: it tries every order that respects real time.
//! Exponential, so only for small histories; it shares nothing with [`crate::search`] but
//! the model, which makes it a trustworthy oracle for the tests.

use std::collections::BTreeMap;

use crate::history::{History, Outcome};
use crate::model::Model;

struct Op<O> {
    op: O,
    call: u64,
    /// `None`: unknown outcome, may be left out.
    ret: Option<u64>,
}

fn dfs<M: Model>(model: &M, ops: &[Op<M::Op>], placed: &mut Vec<bool>, state: &M::State) -> bool {
    if ops
        .iter()
        .zip(placed.iter())
        .all(|(o, &p)| p || o.ret.is_none())
    {
        return true;
    }
    // The earliest return among operations not yet placed: nothing invoked after it may
    // come next.
    let horizon = ops
        .iter()
        .zip(placed.iter())
        .filter(|(o, &p)| !p && o.ret.is_some())
        .map(|(o, _)| o.ret.expect("filtered"))
        .min()
        .unwrap_or(u64::MAX);
    for i in 0..ops.len() {
        if placed[i] || ops[i].call > horizon {
            continue;
        }
        if let Some(next) = model.step(state, &ops[i].op) {
            placed[i] = true;
            if dfs(model, ops, placed, &next) {
                return true;
            }
            placed[i] = false;
        }
    }
    false
}

/// `Some(true)` if linearizable, `Some(false)` if not, `None` if an operation does not
/// compile or a key has more than `max_ops` operations.
pub fn brute_force<M: Model>(model: &M, history: &History, max_ops: usize) -> Option<bool> {
    let mut parts: BTreeMap<Option<String>, Vec<Op<M::Op>>> = BTreeMap::new();
    for op in &history.ops {
        if op.outcome == Outcome::Fail {
            continue;
        }
        if let Some(c) = model.compile(op).ok()? {
            parts.entry(op.key.clone()).or_default().push(Op {
                op: c,
                call: op.call,
                ret: op.ret,
            });
        }
    }
    for ops in parts.values() {
        if ops.len() > max_ops {
            return None;
        }
        let mut placed = vec![false; ops.len()];
        if !dfs(model, ops, &mut placed, &model.init()) {
            return Some(false);
        }
    }
    Some(true)
}
