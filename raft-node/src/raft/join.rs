//! Founding a cluster, and rejoining one after losing the disk, with no flag to say which.
//!
//! A node with no state cannot tell a new cluster from one it was a member of before its
//! disk was lost. Started as a plain voter at term 0 it could vote a second time in a term
//! it already voted in, and the entries its lost disk had acknowledged (counted towards
//! commits) are gone: with its vote, a candidate lacking them could win. So a node with no
//! state first asks every member ([`Body::Join`]) and takes part in nothing until all of
//! them answered:
//!
//! - **Founding.** Every member has no state either: nothing was ever acknowledged, and
//!   the node starts at term 0 as a founding member. A majority is not enough: a majority
//!   of empty nodes could outvote a member that still holds acknowledged data.
//! - **Rejoining.** Some member has state. The node adopts the highest term any member
//!   reported, with its vote in that term spent (on itself, so it grants no other), and
//!   records the most up-to-date log any member reported as its *floor*: it votes for no
//!   candidate behind the floor, and does not campaign until its own log reaches it.
//!
//! Why this is safe. A vote the lost disk granted in term `T` went to a candidate that
//! holds a term of at least `T`, and so does each voter of a leader elected with it: one
//! of them answered, so the adopted term is at least `T` and no second vote is granted in
//! it. An entry committed with the lost disk's acknowledgement is held by another member
//! of that majority (a minority lost its disk) whose log, or floor, is at or above the
//! entry's position: the floor is at least as up-to-date as a log holding every committed
//! entry, which is the condition under which Raft's voters keep committed entries
//! (§3.6.3). The node's acknowledgements count towards commits again at once: it
//! acknowledges only what it now holds durably.
//!
//! The issue that asked for this (30) proposed catching up to the first leader heard
//! instead. A stale leader of a lower term can be the first one heard, and its commit
//! index can miss an entry committed since: asking every member is what closes that.
//!
//! Which members it asks. Until some member answers with state, every server in its
//! address book (founding needs them all). Once one has, every voter of any
//! configuration an answer reports (`membership.rs`): a server removed from the cluster,
//! perhaps gone for good, is not waited for, but one that a lagging member still lists
//! is. The answers then include the voters of the latest configuration, whose majorities
//! hold every committed entry and every vote of the current term.
//!
//! What this does not cover: several members that lost their disks at once, one of them
//! a leader elected after another one's answer. No rule local to the nodes can recover a
//! vote that only two lost disks knew of; keep disk losses to one member at a time, or
//! replace the member: remove it (`DELETE /cluster/members/ID`) and add it back as a new
//! server with an empty disk, a learner until it has caught up. That is the usual rule
//! that a node that lost its disk is a new member (§3.8, and the project's Raft pitfalls
//! list, item 8), and what the harness's `membership` fault does; the rule above keeps
//! the old id safe for the common case, one lost disk, and the simulation checks it with
//! a minority of lost disks at any moment.

use std::collections::{BTreeMap, BTreeSet};

use super::{Body, JoinInfo, LogPosition, NodeId, Raft, TERM_LIMIT};

/// The most voters an answer may list: far more than any real cluster, few enough that a
/// forged answer cannot make a joining node wait for millions of servers.
const MAX_VOTERS: usize = 1024;

/// Whether a member that answered holds state. A member that founded a moment ago and
/// has not campaigned yet holds nothing either: only a term or a log counts as state.
fn has_state(i: &JoinInfo) -> bool {
    i.term > 0 || i.last != LogPosition::default()
}

/// The answers a joining node has collected so far.
#[derive(Debug, Default)]
pub(super) struct Joining {
    answers: BTreeMap<NodeId, JoinInfo>,
    /// Ticks since the last round of questions.
    since_ask: u32,
}

impl Raft {
    /// Where this node's log ends, or its floor if that is further: what it compares a
    /// candidate's log with and what it reports to a joining node.
    pub(super) fn log_position(&self) -> LogPosition {
        self.own_log_position().max(self.floor)
    }

    /// Where this node's own log ends.
    fn own_log_position(&self) -> LogPosition {
        LogPosition {
            term: self.log.last_term(),
            index: self.log.last_index(),
        }
    }

    /// A rejoined node whose log has not reached its floor yet: it must not campaign
    /// (its own vote would go to a log behind the floor).
    pub(super) fn behind_floor(&self) -> bool {
        self.own_log_position() < self.floor
    }

    /// Asks every member that has not answered yet what it holds.
    pub(super) fn ask_members(&mut self) {
        for p in self.joining_waits_for().unwrap_or_default() {
            self.send(p, self.term, Body::Join);
        }
    }

    /// The joining node's clock: asks again every heartbeat interval, as messages may be
    /// lost and members may be down.
    pub(super) fn join_tick(&mut self) {
        let Some(joining) = &mut self.joining else {
            return;
        };
        joining.since_ask += 1;
        if joining.since_ask >= self.cfg.heartbeat_ticks {
            joining.since_ask = 0;
            self.ask_members();
        }
    }

    /// Any node answers a joining one, whatever the terms: the answer changes nothing here.
    pub(super) fn answer_join(&mut self, from: NodeId) {
        let info = match self.joining {
            Some(_) => JoinInfo {
                joining: true,
                term: 0,
                last: LogPosition::default(),
                voters: Vec::new(),
            },
            None => JoinInfo {
                joining: false,
                term: self.term,
                last: self.log_position(),
                voters: self.members().voters.iter().copied().collect(),
            },
        };
        self.send(from, self.term, Body::JoinResponse(info));
    }

    pub(super) fn handle_join_response(&mut self, from: NodeId, info: &JoinInfo) {
        // An answer no correct member could give is dropped: a node with no state holds
        // nothing, and a log never runs ahead of its holder's term. Nor may an answer move
        // the term further than any message may (the term credit, `untrusted.rs`): a
        // forged one would otherwise carry a wiped node to the top of the term space.
        let plausible = if info.joining {
            info.term == 0 && info.last == LogPosition::default() && info.voters.is_empty()
        } else if info.voters.len() > MAX_VOTERS || info.voters.contains(&0) {
            false
        } else {
            info.term <= TERM_LIMIT
                && info.term.saturating_sub(self.term) <= self.term_credit
                && info.last.term <= info.term
        };
        let Some(joining) = &mut self.joining else {
            return;
        };
        if !plausible {
            self.refused_term_jumps = self.refused_term_jumps.saturating_add(1);
            return;
        }
        joining.answers.insert(from, info.clone());
        if self.joining_waits_for().is_some_and(|w| w.is_empty()) {
            self.finish_join();
        }
    }

    /// Every member answered: found the cluster, or rejoin it (see the module docs).
    pub(super) fn finish_join(&mut self) {
        let Some(joining) = self.joining.take() else {
            return;
        };
        // A member that founded a moment ago and has not campaigned yet holds nothing
        // either: only a term or a log counts as state.
        let held: Vec<&JoinInfo> = joining.answers.values().filter(|i| has_state(i)).collect();
        let term = held.iter().map(|i| i.term).max().unwrap_or(0);
        // Each answer was checked against the credit, and the credit only grows meanwhile.
        self.term_credit = self
            .term_credit
            .saturating_sub(term.saturating_sub(self.term));
        self.term = term;
        // In the adopted term this node may have voted before its disk was lost: its vote
        // there counts as spent. Nobody campaigns in term 0.
        self.vote = (term > 0).then_some(self.cfg.id);
        self.floor = held.iter().map(|i| i.last).max().unwrap_or_default();
        self.founded = Some(held.is_empty());
        self.hard_state_dirty = true;
        self.reset_timers();
    }

    /// The members a joining node still waits for, or `None` once it has joined.
    ///
    /// Until some member answers with state, that is every server in its address book:
    /// founding needs them all. Once one has, it is every voter of any configuration an
    /// answer reported: a server removed from the cluster (and perhaps gone for good)
    /// is no longer waited for, but one still listed by a member that has not heard of
    /// its removal is.
    pub fn joining_waits_for(&self) -> Option<Vec<NodeId>> {
        let joining = self.joining.as_ref()?;
        let held: Vec<&JoinInfo> = joining.answers.values().filter(|i| has_state(i)).collect();
        let wanted: BTreeSet<NodeId> = if held.is_empty() {
            self.cfg.peers.iter().copied().collect()
        } else {
            held.iter().flat_map(|i| i.voters.iter().copied()).collect()
        };
        Some(
            wanted
                .into_iter()
                .filter(|p| *p != self.cfg.id && !joining.answers.contains_key(p))
                .collect(),
        )
    }

    /// How the node joined in this run, for its log: `Some(true)` when it founded the
    /// cluster, `Some(false)` when it rejoined one, `None` if it started with state or is
    /// still joining.
    pub fn founded(&self) -> Option<bool> {
        self.founded
    }
}
