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
//! The cache keeps no states: a configuration is remembered as one 128-bit key, the
//! linearized set's Zobrist hash mixed with the model's 128-bit key of the state
//! ([`Model::state_key`]), so each costs the same few bytes whatever the state holds. A
//! collision could only make the search skip a configuration, i.e. report "not
//! linearizable" wrongly (probability about n^2 / 2^128 for n configurations: for a
//! billion, 10^-21); a "linearizable" answer always comes with the order found, which the
//! caller re-verifies independently.
//!
//! Memory is accounted, not estimated per configuration: the cache's table as it is
//! allocated (including the moment it grows, when old and new tables both exist, and the
//! smaller tables it outgrew, which the allocator may keep), the stack of states (an
//! append register's states are strings), and the search's arrays. Every search of a
//! check draws from one [`MemoryBudget`], so the limit holds for all threads together;
//! the check itself charges it first with the history in the searches' form.
//!
//! For a model whose states only grow ([`Model::grows_only`]: appends and reads of text),
//! each step also asks whether the nearest reads still to be placed can see an extension
//! of the new state; if one cannot, the order is dropped at once, and a search that ends
//! there explains that read.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// The memory this search may draw from, shared with the check's other searches.
    pub memory: &'a MemoryBudget,
    /// Set by others to stop every search early.
    pub cancel: &'a AtomicBool,
}

/// Bytes that every search of one check draws from (all threads together). A search
/// takes them in chunks as it grows and gives them all back when it ends.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    chunk: usize,
}

impl MemoryBudget {
    pub fn new(limit_bytes: usize) -> MemoryBudget {
        MemoryBudget {
            limit: limit_bytes,
            used: AtomicUsize::new(0),
            // Small enough that a few searches in parallel can share a small budget,
            // large enough that the shared counter is rarely touched.
            chunk: (limit_bytes / 32).clamp(4 << 10, 1 << 20),
        }
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently taken by running searches.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` until the returned guard is dropped; `None` if they do not fit.
    pub fn hold(&self, bytes: usize) -> Option<Held<'_>> {
        self.take(bytes).then_some(Held { pool: self, bytes })
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes held of a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct Held<'a> {
    pool: &'a MemoryBudget,
    bytes: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.pool.give_back(self.bytes);
    }
}

/// What one search holds of a [`MemoryBudget`].
struct Share<'a> {
    pool: &'a MemoryBudget,
    held: usize,
}

impl Share<'_> {
    /// Whether `bytes` in all fit in what this search holds or can still take.
    fn cover(&mut self, bytes: usize) -> bool {
        if bytes <= self.held {
            return true;
        }
        let want = (bytes - self.held).div_ceil(self.pool.chunk) * self.pool.chunk;
        // Near the limit a whole chunk may not fit where the bytes still do.
        let want = if self.pool.take(want) {
            want
        } else if self.pool.take(bytes - self.held) {
            bytes - self.held
        } else {
            return false;
        };
        self.held += want;
        true
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.pool.give_back(self.held);
    }
}

/// Bytes of a hash set of 128-bit keys that can hold `capacity` of them, as hashbrown
/// allocates it: a power of two of buckets, at most 7/8 full, each with its key and one
/// control byte.
fn table_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity.saturating_mul(8) / 7).next_power_of_two()
    };
    buckets.saturating_mul(std::mem::size_of::<u128>() + 1) + 16
}

/// Mixes a state key into a configuration key: multiplying by an odd constant is a
/// bijection, so states of one linearized set never share a key, and it spreads the
/// exact keys of small integers over all 128 bits before they meet the Zobrist hash.
fn config_key(set: u128, state: u128) -> u128 {
    set ^ state.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
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

/// The largest freed block the allocator may keep for reuse (see `retired`).
const KEPT_BY_ALLOCATOR: usize = 32 << 20;

fn linearized_words(n: usize) -> usize {
    n.div_ceil(64)
}

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
    /// at slot `at` of their own list (`reads_only`: of the list of those that are not
    /// blind writes, right after an `info` operation).
    Info {
        at: u32,
        frontier: u64,
        blocked: u32,
        reads_only: bool,
    },
}

/// How many of the `ok` operations that return first (after the one just placed), among
/// those that can become impossible, are checked against a grown state.
const WITNESSES: usize = 16;

/// With a model whose states only grow: the first of the `ok` operations with the nearest
/// returns (still in the list, other than `placed`) that can no longer happen after
/// `state`, if one cannot. Each of them must be placed after everything placed so far,
/// so one that cannot makes the order a dead end. Checking the nearest few catches a
/// wrong order of concurrent operations at once: the next read that sees them is among
/// them.
fn nearest_impossible<M: Model>(
    model: &M,
    state: &M::State,
    placed: usize,
    nodes: &[Node],
    next: &[u32],
    ops: &[SearchOp<M::Op>],
    telling: &[bool],
) -> Option<u32> {
    let mut at = next[0];
    let mut seen = 0;
    while at != NIL && seen < WITNESSES {
        let node = nodes[at as usize];
        if !node.is_call && node.op as usize != placed && telling[node.op as usize] {
            seen += 1;
            if !model.still_possible(state, &ops[node.op as usize].op) {
                return Some(node.op);
            }
        }
        at = next[at as usize];
    }
    None
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
    let mut steps = 0;
    search_counting(
        model,
        ops,
        budget,
        watch,
        rejected,
        max_rejected,
        &mut steps,
    )
}

/// [`search`], counting in `steps` the candidates it examined: the work it did, which
/// tests hold to how it grows (time would depend on the machine).
fn search_counting<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    budget: &Budget,
    watch: Option<usize>,
    rejected: &mut Vec<M::State>,
    max_rejected: usize,
    steps: &mut u64,
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
    let blind: Vec<bool> = ops.iter().map(|o| model.blind(&o.op)).collect();
    // The `info` operations, by call time, in a list of their own (slot 0: head), and
    // those of them that are not blind writes threaded through the same slots in a second
    // list (`read_next`, `read_prev`). Right after an `info` operation a blind one is never
    // tried (it would be wasted), so the scan then walks only the second list: walking
    // every blind write at every level made many timed-out writes of one key, the shape
    // of a long partition, cost time quadratic in their number.
    let mut infos: Vec<usize> = (0..n).filter(|&i| ops[i].ret.is_none()).collect();
    infos.sort_by_key(|&i| (ops[i].call, i));
    let k = infos.len();
    let mut info_op = vec![NIL; k + 1];
    let mut info_next = vec![NIL; k + 1];
    let mut info_prev = vec![NIL; k + 1];
    let mut read_next = vec![NIL; k + 1];
    let mut read_prev = vec![NIL; k + 1];
    let mut info_pos = vec![NIL; n];
    let mut read_tail = 0u32;
    for (j, &i) in infos.iter().enumerate() {
        let slot = j + 1;
        info_op[slot] = i as u32;
        info_prev[slot] = j as u32;
        info_next[j] = slot as u32;
        info_pos[i] = slot as u32;
        if !blind[i] {
            read_prev[slot] = read_tail;
            read_next[read_tail as usize] = slot as u32;
            read_tail = slot as u32;
        }
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
    let grows_only = model.grows_only(&ops.iter().map(|o| &o.op).collect::<Vec<_>>());
    let telling: Vec<bool> = ops
        .iter()
        .map(|o| grows_only && model.can_become_impossible(&o.op))
        .collect();

    let mut linearized = vec![0u64; linearized_words(n)];
    let is_set = |bits: &[u64], i: u32| bits[(i / 64) as usize] & (1 << (i % 64)) != 0;
    let mut remaining_ok = m / 2;
    let mut cache: FxHashSet<u128> = FxHashSet::default();
    // What the search holds besides the cache: its arrays (fixed), and the states alive
    // on the stack, in `state` and in `best_state` (their heap bytes).
    let mut share = Share {
        pool: budget.memory,
        held: 0,
    };
    let fixed = (m + 1) * (std::mem::size_of::<Node>() + 8)
        + n * (5 * 4 + 16 + 1)
        + (k + 1) * 20
        + linearized_words(n) * 8;
    let frame = std::mem::size_of::<(u32, M::State, Cursor)>();
    // The tables the cache outgrew. They are freed, but the allocator may keep them (a
    // freed block smaller than the next table cannot hold it), so they still count: the
    // budget bounds what the process holds, not only what the search uses. Blocks over
    // 32 MiB are exempt: glibc's malloc always maps those on their own and unmaps them
    // when freed (its mmap threshold never rises above 32 MiB on 64-bit machines).
    let mut retired = 0usize;
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
    let mut live_heap = model.state_heap_bytes(&state);
    // The last order dropped because a later read could no longer happen: the depth it
    // was tried at, that read, and the state that ruled it out.
    let mut pruned: Option<(usize, u32, M::State)> = None;
    let mut best_heap = live_heap;
    let mut watched: FxHashSet<M::State> = FxHashSet::default();

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
        *steps += 1;
        if *steps & 0xFFF == 0 {
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
        // Pick the next candidate, or find that this level is exhausted.
        let (candidate, here) = match cursor {
            Cursor::Main(e) => {
                let node = nodes[e as usize];
                if node.is_call {
                    cursor = Cursor::Main(next[e as usize]);
                    (Some(node.op), Cursor::Main(e))
                } else {
                    // The first return: only `info` operations are left to try here. Right
                    // after an `info` operation, not blind writes: that operation would be
                    // wasted, and the same order without it is explored a level below.
                    let reads_only = stack
                        .last()
                        .is_some_and(|&(top, _, _)| ops[top as usize].ret.is_none());
                    cursor = Cursor::Info {
                        at: if reads_only {
                            read_next[0]
                        } else {
                            info_next[0]
                        },
                        frontier: node.time,
                        blocked: node.op,
                        reads_only,
                    };
                    continue;
                }
            }
            here @ Cursor::Info {
                at,
                frontier,
                blocked,
                reads_only,
            } => {
                if at == NIL || ops[info_op[at as usize] as usize].call > frontier {
                    (None, here)
                } else {
                    let next = if reads_only { &read_next } else { &info_next };
                    cursor = Cursor::Info {
                        at: next[at as usize],
                        frontier,
                        blocked,
                        reads_only,
                    };
                    (Some(info_op[at as usize]), here)
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
            // (The `info` scan skips blind writes then already; this is for `ok` ones.)
            if blind[o]
                && stack
                    .last()
                    .is_some_and(|&(top, _, _)| ops[top as usize].ret.is_none())
            {
                continue;
            }
            let stepped = model.step(&state, &ops[o].op);
            let dead = match &stepped {
                Some(new_state) if grows_only => {
                    nearest_impossible(model, new_state, o, &nodes, &next, ops, &telling)
                }
                _ => None,
            };
            match stepped {
                Some(new_state) if dead.is_some() => {
                    // An operation that must come later can no longer happen: this order
                    // is dead, however it continues. If this level ends blocked, that
                    // operation is what to explain, in this state.
                    if pruned
                        .as_ref()
                        .is_none_or(|(depth, _, _)| *depth != stack.len())
                    {
                        pruned = dead.map(|w| (stack.len(), w, new_state));
                    }
                }
                Some(new_state) => {
                    let new_hash = hash ^ keys[o];
                    let key = config_key(new_hash, model.state_key(&new_state));
                    let grows = cache.len() == cache.capacity() && !cache.contains(&key);
                    let table = table_bytes(cache.capacity());
                    let new_heap = model.state_heap_bytes(&new_state);
                    let mut need = fixed
                        + retired
                        + table
                        + (stack.len() + 1).max(stack.capacity()) * frame
                        + live_heap
                        + new_heap
                        + best_heap;
                    if grows {
                        // While the table grows, the old one and the new one both exist.
                        need += table_bytes(cache.capacity() + 1);
                    }
                    if !share.cover(need) {
                        return SearchResult::Unknown {
                            reason: format!(
                                "memory budget exhausted ({} configurations; the check's \
                                 budget is {} MiB)",
                                cache.len(),
                                budget.memory.limit() >> 20
                            ),
                            configs: cache.len(),
                        };
                    }
                    if grows && table <= KEPT_BY_ALLOCATOR {
                        retired += table;
                    }
                    if cache.insert(key) {
                        live_heap += new_heap;
                        stack.push((op, std::mem::replace(&mut state, new_state), here));
                        hash = new_hash;
                        linearized[o / 64] |= 1 << (o % 64);
                        if ops[o].ret.is_some() {
                            remaining_ok -= 1;
                            unlink!(next, prev, call_pos[o]);
                            unlink!(next, prev, ret_pos[o]);
                        } else {
                            unlink!(info_next, info_prev, info_pos[o]);
                            if !blind[o] {
                                unlink!(read_next, read_prev, info_pos[o]);
                            }
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
                // Blocked on an operation that is always possible, because every way on
                // made a later read impossible: that read is the anomaly, in the state
                // that ruled it out.
                if let Some((depth, witness, dead_state)) = &pruned {
                    if *depth == stack.len() && !telling[blocked as usize] {
                        best_blocked = Some(*witness as usize);
                        best_state = dead_state.clone();
                    }
                }
                best_heap = model.state_heap_bytes(&best_state);
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
            if !blind[o] {
                relink!(read_next, read_prev, info_pos[o]);
            }
        }
        linearized[o / 64] &= !(1 << (o % 64));
        hash ^= keys[o];
        live_heap -= model.state_heap_bytes(&state);
        state = prev_state;
        // Resume the undone level's scan just after the operation undone.
        cursor = match at {
            Cursor::Main(e) => Cursor::Main(next[e as usize]),
            Cursor::Info {
                at,
                frontier,
                blocked,
                reads_only,
            } => Cursor::Info {
                at: if reads_only {
                    read_next[at as usize]
                } else {
                    info_next[at as usize]
                },
                frontier,
                blocked,
                reads_only,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GenConfig};
    use crate::model::Register;

    fn hard_ops(seed: u64) -> Vec<SearchOp<crate::model::RegisterOp>> {
        let model = Register::new(true);
        let h = generate(&GenConfig {
            seed,
            processes: 40,
            ops: 4_000,
            values: 1_000_000,
            read_pct: 20,
            write_pct: 80,
            info_pct: 50,
            ..GenConfig::default()
        });
        h.ops
            .iter()
            .filter(|o| o.outcome != crate::Outcome::Fail)
            .filter_map(|o| {
                let op = model.compile(o).unwrap()?;
                Some(SearchOp {
                    id: o.id,
                    op,
                    call: o.call,
                    ret: o.ret,
                })
            })
            .collect()
    }

    /// Two searches drawing from one budget stop when together they reach it, never
    /// take more than it, and give everything back when they end.
    #[test]
    fn searches_share_one_budget_and_give_it_back() {
        let memory = MemoryBudget::new(2 << 20);
        let cancel = AtomicBool::new(false);
        let model = Register::new(true);
        let (a, b) = (hard_ops(1), hard_ops(2));
        let peak = AtomicUsize::new(0);
        let done = AtomicBool::new(false);
        let run = |ops: &Vec<SearchOp<crate::model::RegisterOp>>| {
            let budget = Budget {
                deadline: None,
                memory: &memory,
                cancel: &cancel,
            };
            match search(&model, ops, &budget, None, &mut Vec::new(), 0) {
                SearchResult::Unknown { reason, .. } => reason,
                _ => "decided".to_string(),
            }
        };
        let outcomes: Vec<String> = std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(memory.used(), Ordering::Relaxed);
                    std::thread::yield_now();
                }
            });
            let ha = s.spawn(|| run(&a));
            let hb = s.spawn(|| run(&b));
            let r = vec![ha.join().unwrap(), hb.join().unwrap()];
            done.store(true, Ordering::Relaxed);
            r
        });
        assert!(
            outcomes
                .iter()
                .any(|r| r.contains("memory budget exhausted")),
            "{outcomes:?}"
        );
        assert!(peak.load(Ordering::Relaxed) <= memory.limit());
        assert_eq!(memory.used(), 0, "a search kept its share");
    }

    /// `k` writes of one register that never complete, then a read of `read`.
    fn open_writes(k: u64, read: i64) -> Vec<SearchOp<crate::model::RegisterOp>> {
        use crate::model::{RegisterOp, Val};
        let mut ops: Vec<_> = (0..k)
            .map(|i| SearchOp {
                id: i as usize,
                op: RegisterOp::Write(Val::Int(i as i64)),
                call: i + 1,
                ret: None,
            })
            .collect();
        ops.push(SearchOp {
            id: k as usize,
            op: RegisterOp::Read(Val::Int(read)),
            call: k + 10,
            ret: Some(k + 20),
        });
        ops
    }

    /// Issue 24: many timed-out writes of one key (a long partition) and one read. The
    /// search's work must grow linearly with their number; it used to grow with its
    /// square (10k of them took 1.8 s, 1M more than 300 s).
    #[test]
    fn many_open_writes_cost_linear_work() {
        let model = Register::new(false);
        let memory = MemoryBudget::new(1 << 30);
        let cancel = AtomicBool::new(false);
        let budget = Budget {
            deadline: None,
            memory: &memory,
            cancel: &cancel,
        };
        for (read, valid) in [(-5, false), (567, true)] {
            let mut work = Vec::new();
            for k in [1_000u64, 10_000] {
                let mut steps = 0;
                let ops = open_writes(k, read);
                let r =
                    search_counting(&model, &ops, &budget, None, &mut Vec::new(), 0, &mut steps);
                match r {
                    SearchResult::Linearizable { .. } => assert!(valid),
                    SearchResult::NotLinearizable { blocked, .. } => {
                        assert!(!valid);
                        assert_eq!(blocked, k as usize);
                    }
                    SearchResult::Unknown { reason, .. } => panic!("{reason}"),
                }
                work.push(steps);
            }
            // Ten times the writes: about ten times the work (a hundred before).
            assert!(work[1] <= 12 * work[0], "read {read}: steps {work:?}");
            assert!(work[1] <= 5 * 10_000, "read {read}: steps {work:?}");
        }
    }

    #[test]
    fn table_bytes_follow_hashbrown_growth() {
        let mut set: FxHashSet<u128> = FxHashSet::default();
        for i in 0..100_000u128 {
            set.insert(i);
            // The estimate is of the table the set holds now: never less than its keys.
            assert!(table_bytes(set.capacity()) >= set.capacity() * 16);
        }
        // A power of two of buckets at most 7/8 full: 131,072 buckets for 100,000 keys.
        assert_eq!(table_bytes(set.capacity()), 131_072 * 17 + 16);
    }
}
