//! The brute-force judge the property tests hold the checker to: a history is
//! serializable if some serial order of its committed transactions (every `ok` one, and
//! any subset of the `info` ones) replays every read exactly; strict serializable if
//! such an order also keeps real-time order. Exponential: for a handful of transactions.

use super::parse::{Key, Mop, Seen, Txn, TxnKind, Txns};
use crate::history::Outcome;

/// Whether some serial order explains `txns` (`realtime`: one that keeps real-time
/// order too). `None` when there are more than `limit` candidate transactions.
pub fn serializable(txns: &Txns, realtime: bool, limit: usize) -> Option<bool> {
    let must: Vec<&Txn> = txns
        .txns
        .iter()
        .filter(|t| t.outcome == Outcome::Ok)
        .collect();
    // Info transactions that write; one that only reads changes nothing, so is left out.
    let may: Vec<&Txn> = txns
        .txns
        .iter()
        .filter(|t| {
            t.outcome == Outcome::Info && t.mops.iter().any(|m| !matches!(m, Mop::Read { .. }))
        })
        .collect();
    if must.len() + may.len() > limit {
        return None;
    }
    for subset in 0u32..(1 << may.len()) {
        let mut chosen = must.clone();
        chosen.extend(
            may.iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, t)| *t),
        );
        let mut placed = vec![false; chosen.len()];
        let mut state: Vec<Vec<i64>> = vec![Vec::new(); txns.keys.len()];
        if place(txns.kind, &chosen, &mut placed, &mut state, realtime) {
            return Some(true);
        }
    }
    Some(false)
}

fn place(
    kind: TxnKind,
    txns: &[&Txn],
    placed: &mut [bool],
    state: &mut Vec<Vec<i64>>,
    realtime: bool,
) -> bool {
    if placed.iter().all(|p| *p) {
        return true;
    }
    for i in 0..txns.len() {
        if placed[i] {
            continue;
        }
        // Real time: every unplaced transaction that completed before this one began
        // must come first, and so must one its process ran before it.
        if realtime
            && (0..txns.len()).any(|j| {
                !placed[j]
                    && j != i
                    && (txns[j].ret.is_some_and(|r| r < txns[i].call)
                        || (txns[j].process == txns[i].process && txns[j].call < txns[i].call))
            })
        {
            continue;
        }
        let saved: Vec<(Key, Vec<i64>)> = txns[i]
            .mops
            .iter()
            .map(|m| (m.key(), state[m.key() as usize].clone()))
            .collect();
        if run(kind, txns[i], state) {
            placed[i] = true;
            if place(kind, txns, placed, state, realtime) {
                return true;
            }
            placed[i] = false;
        }
        for (k, v) in saved.into_iter().rev() {
            state[k as usize] = v;
        }
    }
    false
}

/// Runs one transaction on `state`; false if a read disagrees.
fn run(kind: TxnKind, t: &Txn, state: &mut [Vec<i64>]) -> bool {
    for m in &t.mops {
        match m {
            Mop::Append { key, value } => state[*key as usize].push(*value),
            Mop::Write { key, value } => state[*key as usize] = vec![*value],
            Mop::Read { key, seen } => {
                let now = &state[*key as usize];
                let ok = match (seen, kind) {
                    (Seen::Unknown, _) => true,
                    (Seen::List(xs), _) => **xs == **now,
                    (Seen::Register(v), _) => v.as_ref() == now.last(),
                };
                if !ok {
                    return false;
                }
            }
        }
    }
    true
}
