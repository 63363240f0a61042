//! The Wing–Gong linearizability search with Lowe's improvements, for one independent
//! sub-history.
//!
//! Calls and returns form a doubly linked list in time order. The search walks it from the
//! front: a call whose operation the model accepts in the current state is *lifted*
//! (its call and return leave the list, the old state goes on a stack); reaching a return
//! means the operation it closes cannot be linearized before it, so the last choice is
//! undone. A cache of configurations — the set of linearized operations (as a 128-bit
//! Zobrist hash) with the model state — ensures no configuration is explored twice.
//!
//! Operations of unknown outcome (`info`) have no return: they may take effect any time
//! after their call, or never. So the search is done as soon as every `ok` operation is
//! linearized (the rest are placed last, or left out), and identical pending operations
//! are interchangeable: among `info` operations with equal model ops, only the one called
//! earliest that is still unused may be linearized. And an `info` operation directly
//! followed by a blind write is wasted, so such orders are skipped (the same order without
//! it is explored). These cuts keep the classic explosion of Jepsen register histories
//! with many timed-out writes in check.
//!
//! A hash collision could only make the search skip a configuration, i.e. report
//! "not linearizable" wrongly (probability ~2^-100); a "linearizable" answer always comes
//! with the order found, which the caller re-verifies independently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::Model;

/// An operation prepared for the search.
#[derive(Debug, Clone)]
pub struct SearchOp<O> {
    /// Id of the history operation it came from.
    pub id: usize,
    pub op: O,
    pub call: u64,
    /// `None`: outcome unknown.
    pub ret: Option<u64>,
}

/// Limits on one search.
pub struct Budget<'a> {
    pub deadline: Option<Instant>,
    /// Most configurations remembered (each costs ~40-60 bytes plus the state).
    pub max_configs: usize,
    /// Set by others to stop every search early.
    pub cancel: &'a AtomicBool,
}

#[derive(Debug)]
pub enum SearchResult<S> {
    /// Indices (into the search ops) in linearization order. `info` operations that were
    /// left out are not listed.
    Linearizable {
        order: Vec<usize>,
        configs: usize,
    },
    NotLinearizable {
        /// The longest sequence of operations that could be linearized.
        best_prefix: Vec<usize>,
        /// The `ok` operation that could not be linearized after it.
        blocked: usize,
        /// The model state after `best_prefix`.
        state: S,
        configs: usize,
    },
    Unknown {
        reason: String,
        configs: usize,
    },
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    op: u32,
    is_call: bool,
    time: u64,
}

fn zobrist(i: usize) -> u128 {
    let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (u128::from(next()) << 64) | u128::from(next())
}

/// Where the scan of candidates stands at the current level.
#[derive(Clone, Copy)]
enum Cursor {
    /// At a slot of the list of `ok` calls and returns.
    Main(u32),
    /// Past the first return (at `frontier`, closing `blocked`): trying `info` operations,
    /// at slot `at` of their own list.
    Info {
        at: u32,
        frontier: u64,
        blocked: u32,
    },
}

/// Searches for a linearization of `ops`. If `watch` names an operation, every state in
/// which the model rejected it is added to `rejected` (at most `max_rejected`).
///
/// At each level the candidates are, in order: the `ok` calls before the first return,
/// then the `info` calls invoked before that return. Trying the required operations first
/// finds linearizations of valid histories without touching the optional ones, which
/// otherwise pile up at the front and are retried at every level.
pub fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    budget: &Budget,
    watch: Option<usize>,
    rejected: &mut Vec<M::State>,
    max_rejected: usize,
) -> SearchResult<M::State> {
    let n = ops.len();
    // Time-ordered list of the `ok` operations' calls and returns; at equal times calls
    // come first, so operations that touch are concurrent (the permissive reading).
    let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        if let Some(r) = o.ret {
            events.push((o.call, true, i as u32));
            events.push((r, false, i as u32));
        }
    }
    events.sort_unstable_by_key(|&(t, is_call, i)| (t, !is_call, i));
    let m = events.len();
    // Slot 0 is the head sentinel; entries are 1..=m.
    let mut nodes = vec![
        Node {
            op: NIL,
            is_call: false,
            time: 0
        };
        m + 1
    ];
    let mut next = vec![NIL; m + 1];
    let mut prev = vec![NIL; m + 1];
    let mut call_pos = vec![NIL; n];
    let mut ret_pos = vec![NIL; n];
    for (k, &(time, is_call, op)) in events.iter().enumerate() {
        let slot = k + 1;
        nodes[slot] = Node { op, is_call, time };
        prev[slot] = k as u32;
        next[k] = slot as u32;
        if is_call {
            call_pos[op as usize] = slot as u32;
        } else {
            ret_pos[op as usize] = slot as u32;
        }
    }
    // The `info` operations, by call time, in a list of their own (slot 0: head).
    let mut infos: Vec<usize> = (0..n).filter(|&i| ops[i].ret.is_none()).collect();
    infos.sort_by_key(|&i| (ops[i].call, i));
    let k = infos.len();
    let mut info_op = vec![NIL; k + 1];
    let mut info_next = vec![NIL; k + 1];
    let mut info_prev = vec![NIL; k + 1];
    let mut info_pos = vec![NIL; n];
    for (j, &i) in infos.iter().enumerate() {
        let slot = j + 1;
        info_op[slot] = i as u32;
        info_prev[slot] = j as u32;
        info_next[j] = slot as u32;
        info_pos[i] = slot as u32;
    }

    // Interchangeable pending operations: each `info` op points at the previous `info` op
    // (by call time) with an equal model op; it may only be used after that one.
    let mut prev_same = vec![NIL; n];
    {
        let mut last: FxHashMap<&M::Op, u32> = FxHashMap::default();
        for &i in &infos {
            if let Some(p) = last.insert(&ops[i].op, i as u32) {
                prev_same[i] = p;
            }
        }
    }
    let keys: Vec<u128> = (0..n).map(zobrist).collect();
    let blind: Vec<bool> = ops.iter().map(|o| model.blind(&o.op)).collect();

    let mut linearized = vec![0u64; n.div_ceil(64)];
    let is_set = |bits: &[u64], i: u32| bits[(i / 64) as usize] & (1 << (i % 64)) != 0;
    let mut remaining_ok = m / 2;
    let mut cache: FxHashSet<(u128, M::State)> = FxHashSet::default();
    // Each frame: the operation lifted, the state before it, and where its level's scan
    // was (to resume after undoing it).
    let mut stack: Vec<(u32, M::State, Cursor)> = Vec::new();
    let mut state = model.init();
    let mut hash: u128 = 0;
    let mut cursor = Cursor::Main(next[0]);
    // The longest prefix seen, and how many leading frames of `stack` it shares.
    let mut best: Vec<usize> = Vec::new();
    let mut common = 0usize;
    let mut best_blocked = None;
    let mut best_state = state.clone();
    let mut watched: FxHashSet<M::State> = FxHashSet::default();
    let mut steps: u64 = 0;

    macro_rules! unlink {
        ($next:ident, $prev:ident, $i:expr) => {{
            let i = $i as usize;
            $next[$prev[i] as usize] = $next[i];
            if $next[i] != NIL {
                $prev[$next[i] as usize] = $prev[i];
            }
        }};
    }
    macro_rules! relink {
        ($next:ident, $prev:ident, $i:expr) => {{
            let i = $i as usize;
            $next[$prev[i] as usize] = i as u32;
            if $next[i] != NIL {
                $prev[$next[i] as usize] = i as u32;
            }
        }};
    }

    loop {
        if remaining_ok == 0 {
            let order = stack.iter().map(|&(op, _, _)| op as usize).collect();
            return SearchResult::Linearizable {
                order,
                configs: cache.len(),
            };
        }
        steps += 1;
        if steps & 0xFFF == 0 {
            if budget.cancel.load(Ordering::Relaxed) {
                return SearchResult::Unknown {
                    reason: "cancelled".into(),
                    configs: cache.len(),
                };
            }
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                return SearchResult::Unknown {
                    reason: "time budget exhausted".into(),
                    configs: cache.len(),
                };
            }
        }
        if cache.len() > budget.max_configs {
            return SearchResult::Unknown {
                reason: format!("memory budget exhausted ({} configurations)", cache.len()),
                configs: cache.len(),
            };
        }
        // Pick the next candidate, or find that this level is exhausted.
        let (candidate, here) = match cursor {
            Cursor::Main(e) => {
                let node = nodes[e as usize];
                if node.is_call {
                    cursor = Cursor::Main(next[e as usize]);
                    (Some(node.op), Cursor::Main(e))
                } else {
                    // The first return: only `info` operations are left to try here.
                    cursor = Cursor::Info {
                        at: info_next[0],
                        frontier: node.time,
                        blocked: node.op,
                    };
                    continue;
                }
            }
            Cursor::Info {
                at,
                frontier,
                blocked,
            } => {
                if at == NIL || ops[info_op[at as usize] as usize].call > frontier {
                    (
                        None,
                        Cursor::Info {
                            at,
                            frontier,
                            blocked,
                        },
                    )
                } else {
                    cursor = Cursor::Info {
                        at: info_next[at as usize],
                        frontier,
                        blocked,
                    };
                    (
                        Some(info_op[at as usize]),
                        Cursor::Info {
                            at,
                            frontier,
                            blocked,
                        },
                    )
                }
            }
        };
        if let Some(op) = candidate {
            let o = op as usize;
            if prev_same[o] != NIL && !is_set(&linearized, prev_same[o]) {
                continue;
            }
            // An optional operation directly followed by a blind write was wasted: the same
            // order without it is at least as good, and is explored at the level below.
            if blind[o]
                && stack
                    .last()
                    .is_some_and(|&(top, _, _)| ops[top as usize].ret.is_none())
            {
                continue;
            }
            match model.step(&state, &ops[o].op) {
                Some(new_state) => {
                    let new_hash = hash ^ keys[o];
                    if cache.insert((new_hash, new_state.clone())) {
                        stack.push((op, std::mem::replace(&mut state, new_state), here));
                        hash = new_hash;
                        linearized[o / 64] |= 1 << (o % 64);
                        if ops[o].ret.is_some() {
                            remaining_ok -= 1;
                            unlink!(next, prev, call_pos[o]);
                            unlink!(next, prev, ret_pos[o]);
                        } else {
                            unlink!(info_next, info_prev, info_pos[o]);
                        }
                        cursor = Cursor::Main(next[0]);
                    }
                }
                None => {
                    if watch == Some(o)
                        && watched.len() < max_rejected
                        && watched.insert(state.clone())
                    {
                        rejected.push(state.clone());
                    }
                }
            }
            continue;
        }
        // Nothing can be linearized before the first return: backtrack.
        if let Cursor::Info { blocked, .. } = here {
            if best_blocked.is_none() || stack.len() > best.len() {
                // Copy only what changed since the last record: amortized O(1) per push.
                best.truncate(common);
                best.extend(stack[common..].iter().map(|&(op, _, _)| op as usize));
                common = stack.len();
                best_blocked = Some(blocked as usize);
                best_state = state.clone();
            }
        }
        let Some((op, prev_state, at)) = stack.pop() else {
            return SearchResult::NotLinearizable {
                best_prefix: best,
                blocked: best_blocked.unwrap_or(0),
                state: best_state,
                configs: cache.len(),
            };
        };
        common = common.min(stack.len());
        let o = op as usize;
        if ops[o].ret.is_some() {
            relink!(next, prev, ret_pos[o]);
            relink!(next, prev, call_pos[o]);
            remaining_ok += 1;
        } else {
            relink!(info_next, info_prev, info_pos[o]);
        }
        linearized[o / 64] &= !(1 << (o % 64));
        hash ^= keys[o];
        state = prev_state;
        // Resume the undone level's scan just after the operation undone.
        cursor = match at {
            Cursor::Main(e) => Cursor::Main(next[e as usize]),
            Cursor::Info {
                at,
                frontier,
                blocked,
            } => Cursor::Info {
                at: info_next[at as usize],
                frontier,
                blocked,
            },
        };
    }
}
