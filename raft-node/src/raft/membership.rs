//! Membership changes (dissertation §4.1, §4.2.3), learners and leader transfer (§3.10).
//!
//! **One server at a time.** A change adds a learner, promotes a caught-up learner to a
//! voter, or removes a member: the voter sets before and after differ by at most one
//! server, so any majority of the old set and any majority of the new one share a
//! server, and no two leaders can be elected in one term by disjoint majorities. Joint
//! consensus (§4.3) would allow arbitrary changes in one step, at the cost of a second
//! entry per change and two majorities on every commit and election; the harness and
//! operators change one server at a time anyway, so the simpler rule wins.
//!
//! The rules that make it safe, each enforced by the leader before a change enters the
//! log:
//! - a configuration takes effect on every node as soon as it is *appended* (not when it
//!   commits), and reverts if the entry is truncated;
//! - no change while an earlier one is not committed, so at most one is in flight;
//! - no change before the leader committed an entry of its own term (§4.2.3, the bug
//!   Ongaro found in the original algorithm: a new leader's uncommitted predecessor
//!   change and its own could otherwise form disjoint majorities);
//! - a learner is promoted only once it holds every committed entry, so adding a voter
//!   never stalls commits while it catches up (§4.2.1);
//! - a leader that removes itself keeps leading, without counting itself, until the
//!   change commits, then steps down (§4.2.2).
//!
//! Nodes accept messages from servers outside their configuration (a node that missed
//! the change that added a new leader must still follow it), but votes and
//! acknowledgements count only when they come from a voter of the counting node's
//! configuration.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::progress::Progress;
use super::{Body, Entry, Index, NodeId, Payload, Raft, Role};

/// A cluster configuration: who votes, who only follows, and where to reach servers the
/// operator added at run time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The servers whose votes and acknowledgements count.
    pub voters: BTreeSet<NodeId>,
    /// Servers that receive the log but do not vote (yet): a new server catches up as a
    /// learner so that it does not hold back commits while it is far behind.
    pub learners: BTreeSet<NodeId>,
    /// Addresses of members given with the change that added them, for nodes whose own
    /// address book (`--peers`) does not list them. The core never reads them.
    pub addresses: BTreeMap<NodeId, String>,
}

impl Membership {
    /// Every node a voter of `voters`.
    pub fn of_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Voters and learners.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// The configuration after `change`, or why it cannot follow this one.
    pub fn apply(&self, change: &MembershipChange) -> Result<Membership, ChangeError> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner { id, address } => {
                if *id == 0 {
                    return Err(ChangeError::InvalidId);
                }
                if self.contains(*id) {
                    return Err(ChangeError::AlreadyMember(*id));
                }
                next.learners.insert(*id);
                if let Some(a) = address {
                    next.addresses.insert(*id, a.clone());
                }
            }
            MembershipChange::Promote { id } => {
                if self.is_voter(*id) {
                    return Err(ChangeError::AlreadyVoter(*id));
                }
                if !next.learners.remove(id) {
                    return Err(ChangeError::NotMember(*id));
                }
                next.voters.insert(*id);
            }
            MembershipChange::Remove { id } => {
                if !self.contains(*id) {
                    return Err(ChangeError::NotMember(*id));
                }
                if self.voters.len() == 1 && self.is_voter(*id) {
                    return Err(ChangeError::LastVoter(*id));
                }
                next.voters.remove(id);
                next.learners.remove(id);
                next.addresses.remove(id);
            }
        }
        Ok(next)
    }
}

/// One single-server change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// A new server that receives the log but does not vote.
    AddLearner { id: NodeId, address: Option<String> },
    /// A learner that holds every committed entry becomes a voter.
    Promote { id: NodeId },
    /// A voter or learner leaves the cluster.
    Remove { id: NodeId },
}

/// Why a membership change or a leader transfer was refused. A refused change never
/// entered the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error(
        "the change at index {0} has not committed yet: one change at a time, retry once it has"
    )]
    InProgress(Index),
    #[error(
        "this leader has not committed an entry of its own term yet (dissertation §4.2.3): \
         retry in a moment"
    )]
    NoCommitInTerm,
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    #[error("node {0} is already a voter")]
    AlreadyVoter(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("node {0} is the last voter: a cluster needs one")]
    LastVoter(NodeId),
    #[error(
        "learner {id} holds entries up to {matched} but {commit} are committed: it is \
         promoted once it caught up"
    )]
    NotCaughtUp {
        id: NodeId,
        matched: Index,
        commit: Index,
    },
    #[error("node id 0 is reserved")]
    InvalidId,
    #[error("node {0} is not a voter, so it cannot lead")]
    NotVoter(NodeId),
    #[error("a leader transfer is in progress")]
    Transferring,
}

/// The configurations the log holds: the one in effect at the snapshot (or at the start)
/// and each change after it, so that a truncated change reverts and a snapshot can say
/// which configuration it was taken under.
#[derive(Debug, Clone)]
pub(super) struct MemberHistory {
    /// The configuration in effect up to and including `base_index`.
    base: Membership,
    base_index: Index,
    /// Changes in the log after `base_index`, in index order.
    changes: Vec<(Index, Membership)>,
}

impl MemberHistory {
    pub(super) fn new(base_index: Index, base: Membership, entries: &[Entry]) -> Self {
        let mut h = MemberHistory {
            base,
            base_index,
            changes: Vec::new(),
        };
        for e in entries {
            h.on_append(e);
        }
        h
    }

    /// The configuration in effect: the latest in the log, committed or not.
    pub(super) fn current(&self) -> &Membership {
        self.changes.last().map_or(&self.base, |(_, m)| m)
    }

    /// The index of the latest change (0 if the log holds none after the snapshot).
    pub(super) fn latest_change(&self) -> Index {
        self.changes.last().map_or(0, |(i, _)| *i)
    }

    /// The configuration in effect at `index`.
    pub(super) fn at(&self, index: Index) -> &Membership {
        self.changes
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.base, |(_, m)| m)
    }

    /// Notes an entry appended to the log; true if it changed the configuration.
    pub(super) fn on_append(&mut self, e: &Entry) -> bool {
        if let Payload::Members(m) = &e.payload {
            self.changes.push((e.index, m.clone()));
            return true;
        }
        false
    }

    /// The log lost its entries from `index` on; true if a change was among them.
    pub(super) fn truncate_from(&mut self, index: Index) -> bool {
        let before = self.changes.len();
        self.changes.retain(|(i, _)| *i < index);
        self.changes.len() != before
    }

    /// The log was compacted up to `index`.
    pub(super) fn compact(&mut self, index: Index) {
        if index <= self.base_index {
            return;
        }
        self.base = self.at(index).clone();
        self.base_index = index;
        self.changes.retain(|(i, _)| *i > index);
    }

    /// A snapshot replaced the log: `members` is in effect at its index. Changes after it
    /// survive only if the log after the snapshot did (`keep_after`).
    pub(super) fn install(&mut self, index: Index, members: Membership, keep_after: bool) {
        if !keep_after {
            self.changes.clear();
        }
        self.changes.retain(|(i, _)| *i > index);
        self.base = members;
        self.base_index = index;
    }
}

/// A leader transfer in progress (§3.10).
#[derive(Debug, Clone, Copy)]
pub(super) struct Transfer {
    pub(super) to: NodeId,
    /// Ticks since it began: it is abandoned after an election timeout.
    pub(super) elapsed: u32,
}

impl Raft {
    /// The configuration in effect (the latest in the log, committed or not).
    pub fn members(&self) -> &Membership {
        self.members.current()
    }

    /// The configuration in effect at `index`: a snapshot up to `index` must carry it.
    pub fn members_at(&self, index: Index) -> Membership {
        self.members.at(index).clone()
    }

    /// Whether the latest change in the log has committed.
    pub fn membership_committed(&self) -> bool {
        self.members.latest_change() <= self.commit
    }

    /// How far the leader knows each follower's log matches its own (voters and
    /// learners), or `None` on a follower.
    pub fn follower_matches(&self) -> Option<BTreeMap<NodeId, Index>> {
        (self.role == Role::Leader).then(|| {
            self.progress
                .iter()
                .map(|(&id, p)| (id, p.match_index))
                .collect()
        })
    }

    pub(super) fn is_voter(&self) -> bool {
        self.members().is_voter(self.cfg.id)
    }

    /// Whether this node may stand for election: a voter of its latest configuration, or
    /// of the one before while the latest has not committed. The second case is a leader
    /// that removed itself and lost leadership before the change committed: its log may
    /// be the only one holding the change, so the others cannot win without its vote,
    /// and it must be able to win, finish committing the change and step down. (Counting
    /// the votes of the latest configuration's voters is safe whether or not the
    /// candidate is among them: any two configurations one change apart share a voter in
    /// every pair of majorities.)
    pub(super) fn may_campaign(&self) -> bool {
        let latest = self.members.latest_change();
        self.is_voter()
            || (latest > self.commit
                && self
                    .members
                    .at(latest.saturating_sub(1))
                    .is_voter(self.cfg.id))
    }

    /// Proposes one membership change. `Ok((index, term))` identifies its entry, as for
    /// [`Raft::propose`].
    pub fn change_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<(Index, super::Term), ChangeError> {
        if self.role != Role::Leader || self.transfer.is_some() {
            return Err(if self.transfer.is_some() {
                ChangeError::Transferring
            } else {
                ChangeError::NotLeader {
                    leader: self.leader,
                }
            });
        }
        if !self.cfg.bugs.unsafe_membership {
            if self.log.term(self.commit) != Some(self.term) {
                return Err(ChangeError::NoCommitInTerm);
            }
            if !self.membership_committed() {
                return Err(ChangeError::InProgress(self.members.latest_change()));
            }
        }
        if let MembershipChange::Promote { id } = change {
            let matched = self.progress.get(&id).map_or(0, |p| p.match_index);
            if self.members().learners.contains(&id) && matched < self.commit {
                return Err(ChangeError::NotCaughtUp {
                    id,
                    matched,
                    commit: self.commit,
                });
            }
        }
        let next = self.members().apply(&change)?;
        Ok(self.append_proposal(Payload::Members(next)))
    }

    /// Asks the leader to hand leadership to voter `to` (§3.10): it stops taking
    /// proposals, brings `to` up to date and tells it to campaign at once. Abandoned
    /// after an election timeout if `to` has not taken over.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ChangeError> {
        if self.role != Role::Leader {
            return Err(ChangeError::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.cfg.id {
            return Ok(());
        }
        if !self.members().is_voter(to) {
            return Err(ChangeError::NotVoter(to));
        }
        if self.transfer.is_some() {
            return Err(ChangeError::Transferring);
        }
        self.transfer = Some(Transfer { to, elapsed: 0 });
        self.maybe_send_timeout_now(to);
        Ok(())
    }

    /// The transfer's target, once it holds the whole log, is told to campaign. From then
    /// on this leader may be deposed without a majority hearing of it first, so its lease
    /// is void for the rest of its leadership.
    pub(super) fn maybe_send_timeout_now(&mut self, from: NodeId) {
        let Some(t) = self.transfer else { return };
        if t.to != from {
            return;
        }
        let last = self.log.last_index();
        match self.progress.get(&from) {
            Some(pr) if pr.match_index >= last => {
                self.lease_void = true;
                self.lease_from = None;
                self.send(from, self.term, Body::TimeoutNow);
            }
            Some(_) => self.replicate_to(from),
            None => {}
        }
    }

    /// The leader's transfer clock: a transfer that has not completed within an election
    /// timeout is abandoned and proposals are taken again.
    pub(super) fn transfer_tick(&mut self) {
        if let Some(t) = &mut self.transfer {
            t.elapsed += 1;
            if t.elapsed >= self.cfg.election_ticks_min {
                self.transfer = None;
            }
        }
    }

    /// The leader of our term told us to campaign now (a transfer): no pre-vote, and the
    /// vote requests say so, so voters that still hear the leader grant them.
    pub(super) fn handle_timeout_now(&mut self) {
        if self.is_voter() && !self.behind_floor() && self.term < super::TERM_LIMIT {
            self.campaign_for_real_as(true);
        }
    }

    /// Appends an entry to the log, applying a configuration it carries at once (a
    /// configuration takes effect when appended, not when committed).
    pub(super) fn append_entry(&mut self, e: Entry) {
        let changed = self.members.on_append(&e);
        self.log.append(e);
        if changed {
            self.on_members_changed();
        }
    }

    /// Cuts the log from `index`, reverting any configuration change among the entries.
    pub(super) fn truncate_log_from(&mut self, index: Index) {
        self.log.truncate_from(index);
        if self.members.truncate_from(index) {
            self.on_members_changed();
        }
    }

    /// The configuration in effect changed: a leader tracks the new members, forgets the
    /// removed ones, and recounts its commit index and its read rounds.
    pub(super) fn on_members_changed(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let members: BTreeSet<NodeId> = self
            .members()
            .members()
            .filter(|&m| m != self.cfg.id)
            .collect();
        self.progress.retain(|id, _| members.contains(id));
        let next = self.log.last_index() + 1;
        for id in members {
            self.progress.entry(id).or_insert_with(|| {
                let mut pr = Progress::new(next);
                pr.recent_active = true;
                pr
            });
        }
        if self
            .transfer
            .is_some_and(|t| !self.members().is_voter(t.to))
        {
            self.transfer = None;
        }
        self.broadcast_pending = true;
        self.maybe_commit();
        self.confirm_reads();
    }

    /// A leader that removed itself leads until the change commits, then steps down.
    pub(super) fn step_down_if_removed(&mut self) {
        if self.role == Role::Leader && !self.is_voter() && self.membership_committed() {
            self.become_follower(self.term, None);
        }
    }

    /// How many of `ids` are voters, counting this node if `with_self` and it votes, and
    /// whether that is a majority of the voters.
    pub(super) fn is_quorum<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a NodeId>,
        with_self: bool,
    ) -> bool {
        let m = self.members();
        let mut count = ids
            .into_iter()
            .filter(|&&id| id != self.cfg.id && m.is_voter(id))
            .count();
        if with_self && m.is_voter(self.cfg.id) {
            count += 1;
        }
        count >= super::quorum::majority(m.voters.len())
    }
}
