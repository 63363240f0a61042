//! Elections (§3.4, with pre-vote §9.6 and the lease of §4.2.3): campaigning, asking for
//! votes, answering them and counting them, and becoming leader.

use super::progress::Progress;
use super::quorum::Outcome;
use super::ReadMode;
use super::{
    Body, Entry, Index, LogPosition, NodeId, Payload, Raft, Role, Term, Vote, VoteResponse,
    TERM_LIMIT,
};

impl Raft {
    pub(super) fn in_lease(&self) -> bool {
        let heard_leader = self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks_min;
        // Under leader leases a node that just started may have acknowledged a leader
        // before it went down, and forgotten: it waits out an election timeout first.
        let just_started = self.cfg.read_mode == ReadMode::Lease
            && self.ticks < u64::from(self.cfg.election_ticks_min);
        heard_leader || just_started
    }

    pub(super) fn campaign(&mut self) {
        if self.term >= TERM_LIMIT {
            // No term may come after this one: never climb towards a wrap.
            self.reset_timers();
            return;
        }
        if self.behind_floor() || !self.may_campaign() {
            // A rejoined node votes for no log behind its floor, its own included; a
            // learner or a removed server does not campaign.
            self.reset_timers();
            return;
        }
        if self.cfg.pre_vote {
            self.start_election(Role::PreCandidate, false);
        } else {
            self.campaign_for_real();
        }
    }

    pub(super) fn campaign_for_real(&mut self) {
        self.campaign_for_real_as(false);
    }

    /// Campaigns in the next term; `transfer` when the leader asked for it (§3.10).
    pub(super) fn campaign_for_real_as(&mut self, transfer: bool) {
        let Some(next) = self.term.checked_add(1) else {
            self.become_follower(self.term, None);
            return;
        };
        self.term = next;
        self.vote = Some(self.cfg.id);
        self.hard_state_dirty = true;
        self.start_election(Role::Candidate, transfer);
    }

    /// Votes for itself and asks the other voters (a pre-vote for `PreCandidate`).
    pub(super) fn start_election(&mut self, role: Role, transfer: bool) {
        self.role = role;
        self.leader = None;
        self.votes.clear();
        let voters = self.members().voters.clone();
        let alone = self.votes.record(self.cfg.id, true, &voters) == Outcome::Won;
        self.reset_timers();
        let pre_vote = role == Role::PreCandidate;
        if alone {
            if pre_vote {
                self.campaign_for_real();
            } else {
                self.become_leader();
            }
            return;
        }
        self.request_votes(pre_vote, transfer);
    }

    pub(super) fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        // `campaign` never runs at the limit, so the pre-vote term stays within it.
        let term = if pre_vote { self.term + 1 } else { self.term };
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<NodeId> = self.members().voters.iter().copied().collect();
        let me = self.cfg.id;
        for p in voters.into_iter().filter(|&p| p != me) {
            let vote = Vote {
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            };
            self.send(p, term, Body::Vote(vote));
        }
    }

    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.reset_timers();
        self.lease_void = false;
        let next = self.log.last_index() + 1;
        let me = self.cfg.id;
        self.progress = self
            .members()
            .members()
            .filter(|&p| p != me)
            .map(|p| {
                let mut pr = Progress::new(next);
                pr.recent_active = true;
                (p, pr)
            })
            .collect();
        // The no-op lets this leader commit its term's first entry, and with it every entry
        // of earlier terms (§3.6.2), and enables ReadIndex (§6.4).
        self.append_entry(Entry {
            term: self.term,
            index: next,
            payload: Payload::Noop,
        });
        self.broadcast_pending = true;
        self.maybe_commit();
    }

    /// Whether a candidate's log is at least as up-to-date as this node's (§3.6.1), or
    /// as its floor after a rejoin.
    pub(super) fn log_up_to_date(&self, last_log_index: Index, last_log_term: Term) -> bool {
        let theirs = LogPosition {
            term: last_log_term,
            index: last_log_index,
        };
        theirs >= self.log_position()
    }

    pub(super) fn handle_vote(&mut self, from: NodeId, term: Term, v: &Vote) {
        let up_to_date = self.log_up_to_date(v.last_log_index, v.last_log_term);
        let pre_vote = v.pre_vote;
        if pre_vote {
            let granted = term > self.term && up_to_date && !self.in_lease();
            let reply_term = if granted { term } else { self.term };
            let reply = VoteResponse { pre_vote, granted };
            self.send(from, reply_term, Body::VoteResponse(reply));
            return;
        }
        let can_vote = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        let granted = can_vote && up_to_date;
        if granted {
            if self.vote != Some(from) {
                self.vote = Some(from);
                self.hard_state_dirty = true;
            }
            self.election_elapsed = 0;
        }
        let reply = VoteResponse { pre_vote, granted };
        self.send(from, self.term, Body::VoteResponse(reply));
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, term: Term, r: &VoteResponse) {
        let counts = match (self.role, r.pre_vote) {
            (Role::PreCandidate, true) => !r.granted || Some(term) == self.term.checked_add(1),
            (Role::Candidate, false) => true,
            _ => false,
        };
        if !counts {
            return;
        }
        let voters = self.members().voters.clone();
        match self.votes.record(from, r.granted, &voters) {
            Outcome::Won if r.pre_vote => self.campaign_for_real(),
            Outcome::Won => self.become_leader(),
            Outcome::Lost => self.become_follower(self.term, None),
            Outcome::Pending => {}
        }
    }
}
