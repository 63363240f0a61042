//! ReadIndex (§6.4): a leader answers a read only after a majority confirmed, after the
//! read arrived, that it still leads; the read then waits for the commit index it saw.
//!
//! Reads that arrive close together share one round of heartbeats (one confirmation for
//! many reads), and a new leader holds reads back until its no-op commits, because until
//! then its commit index may lag the cluster's.

use std::collections::{BTreeSet, VecDeque};

use super::{Index, NodeId, ReadState};

/// Reads that share one leadership confirmation.
struct ReadRound {
    /// The heartbeat context that confirms this round (followers echo it back).
    seq: u64,
    /// The commit index when the newest read joined: every read in the round waits for it.
    index: Index,
    /// The leader's tick when the round opened, before its heartbeat left: a majority
    /// that confirms it heard the leader no earlier than this (the lease runs from here).
    opened_at: u64,
    ids: Vec<u64>,
    acks: BTreeSet<NodeId>,
}

/// The leader's pending reads.
#[derive(Default)]
pub(super) struct ReadOnly {
    /// Reads that arrived before this leader's no-op committed.
    waiting_commit: Vec<u64>,
    rounds: VecDeque<ReadRound>,
    /// The newest round's context; heartbeats and appends carry it.
    seq: u64,
    /// Whether the newest round still takes reads (until the next `Ready` sends it out).
    round_open: bool,
}

impl ReadOnly {
    /// The context that followers echo, confirming every round up to it.
    pub(super) fn ctx(&self) -> u64 {
        self.seq
    }

    /// Parks a read until this leader's first entry commits.
    pub(super) fn wait_for_commit(&mut self, id: u64) {
        self.waiting_commit.push(id);
    }

    /// The reads parked by [`ReadOnly::wait_for_commit`], now free to join a round.
    pub(super) fn take_waiting(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.waiting_commit)
    }

    /// Adds a read to the open round, or opens a new one. Returns true when a new round
    /// began, which needs a heartbeat to confirm it.
    pub(super) fn join(&mut self, id: u64, commit: Index, now: u64) -> bool {
        match self.rounds.back_mut() {
            Some(round) if self.round_open => {
                round.ids.push(id);
                round.index = commit;
                false
            }
            _ => {
                self.seq += 1;
                self.rounds.push_back(ReadRound {
                    seq: self.seq,
                    index: commit,
                    opened_at: now,
                    ids: vec![id],
                    acks: BTreeSet::new(),
                });
                self.round_open = true;
                true
            }
        }
    }

    /// Records that `from` answered a message sent with context `ctx`: it confirms every
    /// round up to that one.
    pub(super) fn ack(&mut self, from: NodeId, ctx: u64) {
        if ctx == 0 {
            return;
        }
        for round in self.rounds.iter_mut().take_while(|r| r.seq <= ctx) {
            round.acks.insert(from);
        }
    }

    /// Rounds that a quorum (counting the leader) confirmed, as reads to answer, oldest
    /// first; the tick the newest of them opened at, if any was.
    pub(super) fn confirmed(
        &mut self,
        is_quorum: impl Fn(&BTreeSet<NodeId>) -> bool,
        out: &mut Vec<ReadState>,
    ) -> Option<u64> {
        let mut newest = None;
        while self.rounds.front().is_some_and(|r| is_quorum(&r.acks)) {
            let round = self.rounds.pop_front().expect("front exists");
            if self.rounds.is_empty() {
                self.round_open = false;
            }
            out.extend(round.ids.iter().map(|&id| ReadState {
                id,
                index: round.index,
            }));
            newest = Some(round.opened_at);
        }
        newest
    }

    /// The open round is on its way: later reads start a new one.
    pub(super) fn close_round(&mut self) {
        self.round_open = false;
    }

    /// Leadership is lost: every pending read fails.
    pub(super) fn abort(&mut self, failed: &mut Vec<u64>) {
        failed.append(&mut self.waiting_commit);
        for round in self.rounds.drain(..) {
            failed.extend(round.ids);
        }
        self.round_open = false;
    }
}
