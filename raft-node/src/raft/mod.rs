//! The Raft consensus core, free of I/O, clocks and threads.
//!
//! [`Raft`] is a plain state machine: feed it messages with [`Raft::step`], logical clock
//! ticks with [`Raft::tick`], commands with [`Raft::propose`] and reads with
//! [`Raft::read_index`], then collect a [`Ready`] that says what to persist, send and apply.
//! Because nothing in here touches the outside world, the same code runs inside the real
//! node and inside a deterministic simulated network in the tests, where every schedule is
//! reproducible from a seed (the design of etcd-raft and raft-rs).
//!
//! The contract with the driver, which makes the node safe: persist `Ready::hard_state`,
//! `Ready::snapshot` and `Ready::entries` durably *before* sending `Ready::messages` or
//! applying `Ready::committed`.

//!
//! Where things are: this file holds the node's state, the clock, client work, the
//! leader's replication and the dispatch of messages; `election` campaigns and votes,
//! `install` sends and installs snapshots, `quorum` does the majority arithmetic,
//! `untrusted` checks peers' input (the term bounds), `config` and `ready` are the types
//! at the edges.

mod config;
mod election;
mod install;
mod join;
mod log;
mod membership;
mod message;
mod progress;
mod quorum;
mod read_only;
mod ready;
mod recovered;
mod untrusted;

use std::collections::BTreeMap;

pub use config::{Config, CoreBugs, ReadMode};
use join::Joining;
pub use log::RaftLog;
pub use membership::{ChangeError, Membership, MembershipChange};
use membership::{MemberHistory, Transfer};
pub use message::{
    Append, AppendResponse, Body, Entry, Heartbeat, HeartbeatResponse, Index, JoinInfo,
    LogPosition, Message, NodeId, Payload, SnapshotChunk, SnapshotResponse, Term, Vote,
    VoteResponse,
};
use progress::{Progress, ProgressState};
use quorum::Tally;
use read_only::ReadOnly;
pub use ready::{HardState, NewError, NotLeader, ReadState, Ready, Role, Snapshot, Status};
pub use recovered::{Recovered, RecoveryError};
use untrusted::well_formed;
pub use untrusted::{TERM_JUMP, TERM_LIMIT};

struct IncomingSnapshot {
    index: Index,
    term: Term,
    buf: Vec<u8>,
}

/// SplitMix64: tiny, seedable, good enough for election jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One Raft node's consensus state. See the module docs for how to drive it.
pub struct Raft {
    cfg: Config,
    term: Term,
    vote: Option<NodeId>,
    /// See [`HardState::floor`].
    floor: LogPosition,
    /// While the node has no state and waits for every member's answer (`join.rs`).
    joining: Option<Joining>,
    /// How the join ended in this run (founded or rejoined), for the node's log.
    founded: Option<bool>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    commit: Index,
    /// Committed entries up to here were handed out in a `Ready`.
    applied: Index,
    election_elapsed: u32,
    randomized_timeout: u32,
    heartbeat_elapsed: u32,
    votes: Tally,
    progress: BTreeMap<NodeId, Progress>,
    rng: Rng,
    /// The newest local snapshot, kept to send to lagging followers.
    snapshot: Option<Snapshot>,
    incoming: Option<IncomingSnapshot>,
    // Outputs collected until the next `ready()`.
    msgs: Vec<Message>,
    hard_state_dirty: bool,
    snapshot_to_install: Option<Snapshot>,
    read_states: Vec<ReadState>,
    failed_reads: Vec<u64>,
    // Leader bookkeeping.
    reads: ReadOnly,
    broadcast_pending: bool,
    heartbeat_pending: bool,
    /// How much messages may still raise the term (see [`TERM_JUMP`]); not persisted, so
    /// a restarted node starts with the full allowance.
    term_credit: Term,
    /// Messages dropped because their term was past [`TERM_LIMIT`] or further ahead than
    /// the credit allows: zero in an honest cluster, so anything else is worth a look.
    refused_term_jumps: u64,
    /// The configurations in the log; the latest is in effect.
    members: MemberHistory,
    /// The leader is handing over leadership: it takes no proposals meanwhile.
    transfer: Option<Transfer>,
    /// This leader told a follower to campaign (a transfer): it may be deposed without a
    /// majority refusing it first, so its lease may not be trusted again.
    lease_void: bool,
    /// Ticks since this node started: the clock of the lease.
    ticks: u64,
    /// Lease mode: the tick at which the newest read round a majority confirmed in this
    /// leadership opened (the lease holds for [`Config::lease_ticks`] from it).
    lease_from: Option<u64>,
}

impl Raft {
    /// Starts a node from its durable state (all defaults for a brand-new node).
    pub fn new(cfg: Config, recovered: Recovered) -> Result<Self, NewError> {
        cfg.validate().map_err(NewError::Config)?;
        recovered.validate()?;
        let (si, st) = recovered
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.index, s.term));
        let base = recovered
            .snapshot
            .as_ref()
            .and_then(|s| s.members.clone())
            .unwrap_or_else(|| cfg.initial_members());
        let members = MemberHistory::new(si, base, &recovered.entries);
        let log = RaftLog::new(si, st, recovered.entries);
        let mut rng = Rng(cfg.seed ^ 0x5EED_0000_0000_0000 ^ cfg.id.rotate_left(17));
        let randomized_timeout = Self::draw_timeout(&cfg, &mut rng);
        let hs = recovered.hard_state;
        let mut raft = Raft {
            term: hs.term,
            vote: hs.vote,
            floor: hs.floor,
            joining: hs.joining.then(Joining::default),
            founded: None,
            role: Role::Follower,
            leader: None,
            log,
            commit: si,
            applied: si,
            election_elapsed: 0,
            randomized_timeout,
            heartbeat_elapsed: 0,
            votes: Tally::default(),
            progress: BTreeMap::new(),
            rng,
            snapshot: recovered.snapshot,
            incoming: None,
            msgs: Vec::new(),
            hard_state_dirty: false,
            snapshot_to_install: None,
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            reads: ReadOnly::default(),
            broadcast_pending: false,
            heartbeat_pending: false,
            term_credit: TERM_JUMP,
            refused_term_jumps: 0,
            ticks: 0,
            lease_from: None,
            members,
            transfer: None,
            lease_void: false,
            cfg,
        };
        if raft.joining.is_some() {
            if raft.cfg.peers.is_empty() {
                // A cluster of one: there is nobody to ask.
                raft.finish_join();
            } else {
                raft.ask_members();
            }
        }
        Ok(raft)
    }

    fn draw_timeout(cfg: &Config, rng: &mut Rng) -> u32 {
        let span = u64::from(cfg.election_ticks_max - cfg.election_ticks_min);
        cfg.election_ticks_min + (rng.next() % span) as u32
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn commit_index(&self) -> Index {
        self.commit
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            floor: self.floor,
            joining: self.joining.is_some(),
        }
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit_index: self.commit,
            applied_index: self.applied,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            snapshot_index: self.log.snapshot_index(),
            log_length: self.log.len(),
            refused_term_jumps: self.refused_term_jumps,
            joining_waits_for: self.joining_waits_for(),
            catching_up_to: self.behind_floor().then_some(self.floor),
            members: self.members().clone(),
            members_committed: self.membership_committed(),
        }
    }

    /// The leader's view of each follower, for diagnostics.
    pub fn describe_progress(&self) -> String {
        self.progress
            .iter()
            .map(|(id, p)| {
                format!(
                    "{id}: {:?} match {} next {} sent {} inflight {} idle {} snap {}@{} rewind {:?}\n",
                    p.state,
                    p.match_index,
                    p.next_index,
                    p.probe_sent,
                    p.inflight.len(),
                    p.ticks_since_ack,
                    p.snapshot_index,
                    p.snapshot_offset,
                    p.snapshot_rewind
                )
            })
            .collect()
    }

    fn send(&mut self, to: NodeId, term: Term, body: Body) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term,
            body,
        });
    }

    // ----- clock -----

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.ticks = self.ticks.saturating_add(1);
        if self.joining.is_some() {
            self.join_tick();
            return;
        }
        self.election_elapsed += 1;
        self.term_credit = (self.term_credit + 1).min(TERM_JUMP);
        if self.role == Role::Leader {
            self.transfer_tick();
            self.heartbeat_elapsed += 1;
            for pr in self.progress.values_mut() {
                pr.ticks_since_ack = pr.ticks_since_ack.saturating_add(1);
            }
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.heartbeat_tick();
            }
            if self.cfg.check_quorum && self.election_elapsed >= self.cfg.election_ticks_min {
                self.election_elapsed = 0;
                let active: Vec<NodeId> = self
                    .progress
                    .iter()
                    .filter(|(_, p)| p.recent_active)
                    .map(|(&id, _)| id)
                    .collect();
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
                if !self.is_quorum(&active, true) {
                    self.become_follower(self.term, None);
                }
            }
        } else if self.election_elapsed >= self.randomized_timeout {
            self.campaign();
        }
    }

    fn heartbeat_tick(&mut self) {
        let stall = 2 * self.cfg.heartbeat_ticks;
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            let pr = self.progress.get_mut(&p).expect("progress for every peer");
            match pr.state {
                ProgressState::Probe => {
                    pr.probe_sent = false;
                    self.replicate_to(p);
                }
                ProgressState::Replicate => {
                    if !pr.inflight.is_empty() && pr.ticks_since_ack >= stall {
                        // Something was lost: resend from what the follower acknowledged.
                        pr.become_probe();
                        self.replicate_to(p);
                    } else {
                        self.send_heartbeat(p);
                    }
                }
                ProgressState::Snapshot => {
                    if pr.ticks_since_ack >= stall {
                        pr.probe_sent = false;
                        pr.ticks_since_ack = 0;
                        if let Some(at) = pr.snapshot_rewind.take() {
                            pr.snapshot_offset = at;
                        }
                    }
                    self.replicate_to(p);
                    self.send_heartbeat(p);
                }
            }
        }
    }

    // ----- role changes -----

    fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_timeout = Self::draw_timeout(&self.cfg, &mut self.rng);
    }

    fn abort_leader_work(&mut self) {
        self.reads.abort(&mut self.failed_reads);
        self.lease_from = None;
        self.transfer = None;
        self.progress.clear();
        self.broadcast_pending = false;
        self.heartbeat_pending = false;
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.hard_state_dirty = true;
        }
        if self.role == Role::Leader {
            self.abort_leader_work();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_timers();
    }

    // ----- client work -----

    /// Appends a command to the log if this node leads. `Ok((index, term))` identifies the
    /// entry: the command took effect iff the entry applied at `index` has term `term`.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(Index, Term), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        if self.transfer.is_some() {
            // Leadership is being handed over: the next leader takes it.
            return Err(NotLeader { leader: None });
        }
        Ok(self.append_proposal(Payload::Command(command)))
    }

    /// Appends a leader's new entry and sends it on: its `(index, term)`.
    fn append_proposal(&mut self, payload: Payload) -> (Index, Term) {
        let index = self.log.last_index() + 1;
        self.append_entry(Entry {
            term: self.term,
            index,
            payload,
        });
        self.broadcast_pending = true;
        self.maybe_commit();
        (index, self.term)
    }

    /// Starts a linearizable read (ReadIndex, §6.4). Its [`ReadState`] appears in a later
    /// `Ready` once a majority confirmed this node still leads; or its id appears in
    /// `failed_reads` if leadership is lost first.
    pub fn read_index(&mut self, id: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        if self.log.term(self.commit) != Some(self.term) && !self.cfg.bugs.no_noop_read {
            // Until the no-op commits, this leader's commit index may lag the cluster's.
            self.reads.wait_for_commit(id);
            return Ok(());
        }
        if self.lease_holds() {
            // A majority confirmed this leadership recently enough that no rival can have
            // been elected since: the commit index is the cluster's.
            self.read_states.push(ReadState {
                id,
                index: self.commit,
            });
            return Ok(());
        }
        self.join_read_round(id);
        Ok(())
    }

    /// Whether this leader may answer reads from its lease ([`ReadMode::Lease`]).
    fn lease_holds(&self) -> bool {
        self.cfg.read_mode == ReadMode::Lease
            && !self.lease_void
            && self
                .lease_from
                .is_some_and(|from| self.ticks - from < u64::from(self.cfg.lease_ticks()))
    }

    fn join_read_round(&mut self, id: u64) {
        if self.reads.join(id, self.commit, self.ticks) {
            self.heartbeat_pending = true;
        }
        self.confirm_reads();
    }

    fn ack_reads(&mut self, from: NodeId, ctx: u64) {
        self.reads.ack(from, ctx);
        self.confirm_reads();
    }

    /// Answers the rounds a majority confirmed; the newest renews the lease.
    fn confirm_reads(&mut self) {
        // Taken out for the count, which reads the configuration.
        let mut reads = std::mem::take(&mut self.reads);
        let mut read_states = std::mem::take(&mut self.read_states);
        let opened = reads.confirmed(|acks| self.is_quorum(acks, true), &mut read_states);
        self.reads = reads;
        self.read_states = read_states;
        if let Some(opened) = opened {
            self.lease_from = Some(self.lease_from.map_or(opened, |l| l.max(opened)));
        }
    }

    /// Discards the log up to `snapshot.index`, which the state machine has captured.
    /// The snapshot must already be durable.
    pub fn compact(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.index <= self.applied,
            "cannot compact entries not yet applied"
        );
        if snapshot.index <= self.log.snapshot_index() {
            return;
        }
        debug_assert_eq!(self.log.term(snapshot.index), Some(snapshot.term));
        self.log.compact(snapshot.index);
        self.members.compact(snapshot.index);
        self.snapshot = Some(snapshot);
    }

    /// Collects everything the driver must do now. See [`Ready`] for the order.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            if self.broadcast_pending {
                self.broadcast_pending = false;
                for p in self.progress.keys().copied().collect::<Vec<_>>() {
                    self.replicate_to(p);
                }
            }
            if self.heartbeat_pending {
                self.heartbeat_pending = false;
                for p in self.progress.keys().copied().collect::<Vec<_>>() {
                    self.send_heartbeat(p);
                }
            }
        }
        self.reads.close_round();
        let hard_state = std::mem::take(&mut self.hard_state_dirty).then(|| self.hard_state());
        let snapshot = self.snapshot_to_install.take();
        let entries = self.log.take_unstable();
        let committed = if self.commit > self.applied {
            self.log
                .slice(self.applied + 1, self.commit, usize::MAX, usize::MAX)
        } else {
            Vec::new()
        };
        debug_assert_eq!(committed.len() as u64, self.commit - self.applied);
        self.applied = self.commit;
        Ready {
            hard_state,
            snapshot,
            entries,
            messages: std::mem::take(&mut self.msgs),
            committed,
            read_states: std::mem::take(&mut self.read_states),
            failed_reads: std::mem::take(&mut self.failed_reads),
        }
    }

    // ----- replication (leader) -----

    fn send_heartbeat(&mut self, to: NodeId) {
        let matched = self.progress.get(&to).map_or(0, |p| p.match_index);
        let commit = self.commit.min(matched);
        let read_ctx = self.reads.ctx();
        self.send(
            to,
            self.term,
            Body::Heartbeat(Heartbeat { commit, read_ctx }),
        );
    }

    /// Sends `to` whatever its state and window allow.
    fn replicate_to(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get(&to) else {
            return;
        };
        match pr.state {
            ProgressState::Snapshot => {
                if !pr.probe_sent {
                    self.send_snapshot_chunk(to);
                }
            }
            ProgressState::Probe => {
                if !pr.probe_sent {
                    self.send_append(to);
                }
            }
            ProgressState::Replicate => loop {
                let pr = &self.progress[&to];
                if pr.state != ProgressState::Replicate
                    || pr.inflight.len() >= self.cfg.max_inflight
                    || pr.next_index > self.log.last_index()
                {
                    break;
                }
                self.send_append(to);
            },
        }
    }

    fn send_append(&mut self, to: NodeId) {
        let last = self.log.last_index();
        let pr = self.progress.get_mut(&to).expect("progress for peer");
        let prev = pr.next_index - 1;
        let Some(prev_term) = self.log.term(prev) else {
            // The entries this follower needs are compacted away.
            let snap = self
                .snapshot
                .clone()
                .expect("a compacted log has a snapshot");
            pr.become_snapshot(snap);
            self.send_snapshot_chunk(to);
            return;
        };
        let entries = self.log.slice(
            prev + 1,
            last,
            self.cfg.max_append_entries,
            self.cfg.max_append_bytes,
        );
        let last_sent = entries.last().map_or(prev, |e| e.index);
        match pr.state {
            ProgressState::Replicate => {
                if entries.is_empty() {
                    return;
                }
                pr.next_index = last_sent + 1;
                pr.inflight.push_back(last_sent);
            }
            _ => pr.probe_sent = true,
        }
        let body = Body::Append(Append {
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries,
            leader_commit: self.commit,
            read_ctx: self.reads.ctx(),
        });
        self.send(to, self.term, body);
    }

    fn maybe_commit(&mut self) {
        // Only voters count; a leader that is removing itself does not count itself.
        let last = self.log.last_index();
        let matched: Vec<Index> = self
            .members()
            .voters
            .iter()
            .map(|&v| match self.progress.get(&v) {
                _ if v == self.cfg.id => last,
                Some(p) => p.match_index,
                None => 0,
            })
            .collect();
        if matched.is_empty() {
            return;
        }
        let candidate = quorum::majority_index(matched);
        // Only entries of the current term are committed by counting replicas (§3.6.2).
        let current_term =
            self.log.term(candidate) == Some(self.term) || self.cfg.bugs.commit_old_term;
        if candidate > self.commit && current_term {
            self.commit = candidate;
            for id in self.reads.take_waiting() {
                self.join_read_round(id);
            }
            self.step_down_if_removed();
        }
    }

    // ----- message handling -----

    /// Handles one message from a peer. Stale messages are dropped. Senders outside the
    /// configuration are heard (a node that missed a change must still follow a leader
    /// the change added), but only voters' votes and acknowledgements count.
    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || m.from == 0 {
            return;
        }
        // A term past the limit would end elections for good; a malformed message is not
        // from a correct peer. Neither may change any state.
        if m.term > TERM_LIMIT {
            self.refused_term_jumps = self.refused_term_jumps.saturating_add(1);
            return;
        }
        if !well_formed(&m) {
            return;
        }
        // Joining is outside terms: the question changes nothing at the receiver, and the
        // answer's term is information for the joining node, not a term it steps into.
        match &m.body {
            Body::Join => return self.answer_join(m.from),
            Body::JoinResponse(info) => return self.handle_join_response(m.from, info),
            // A node that does not know yet whether it founds or rejoins takes part in
            // nothing: it could vote twice in a term, or acknowledge as if it held data.
            _ if self.joining.is_some() => return,
            _ => {}
        }
        if m.term > self.term {
            match &m.body {
                // A pre-vote never changes the receiver's term; a granted pre-vote answer
                // carries the term the candidate asked for.
                Body::Vote(v) if v.pre_vote => {}
                Body::VoteResponse(r) if r.pre_vote && r.granted => {}
                // §4.2.3: while a leader is heard from, vote requests are ignored outright.
                // A transfer's vote request comes on that leader's word.
                Body::Vote(v) if self.in_lease() && !v.transfer => return,
                // Further ahead than any honest gap: a forgery, a bug or corruption.
                _ if !self.spend_term_credit(m.term) => return,
                Body::Append(_) | Body::Heartbeat(_) | Body::Snapshot(_) | Body::TimeoutNow => {
                    self.become_follower(m.term, Some(m.from));
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            self.reject_stale(&m);
            return;
        }

        let (from, term) = (m.from, m.term);
        match &m.body {
            Body::Vote(v) => self.handle_vote(from, term, v),
            Body::VoteResponse(r) => self.handle_vote_response(from, term, r),
            Body::Append(a) => {
                if self.accept_leader(from) {
                    self.handle_append(from, a);
                }
            }
            Body::AppendResponse(r) => self.handle_append_response(from, r),
            Body::Heartbeat(h) => {
                if self.accept_leader(from) {
                    self.handle_heartbeat(from, h);
                }
            }
            Body::HeartbeatResponse(r) => self.handle_heartbeat_response(from, r),
            Body::Snapshot(c) => {
                if self.accept_leader(from) {
                    self.handle_snapshot(from, c);
                }
            }
            Body::SnapshotResponse(r) => self.handle_snapshot_response(from, r),
            Body::TimeoutNow => {
                if self.accept_leader(from) {
                    self.handle_timeout_now();
                }
            }
            // Answered above, before any term was looked at.
            Body::Join | Body::JoinResponse(_) => {}
        }
    }

    /// Answers a request from an older term with our term, so its sender steps down;
    /// stale responses are dropped.
    fn reject_stale(&mut self, m: &Message) {
        let body = match &m.body {
            Body::Vote(v) => Body::VoteResponse(VoteResponse {
                pre_vote: v.pre_vote,
                granted: false,
            }),
            Body::Append(a) => Body::AppendResponse(AppendResponse {
                prev_log_index: a.prev_log_index,
                success: false,
                match_index: 0,
                conflict_term: None,
                conflict_index: 0,
                read_ctx: 0,
            }),
            Body::Heartbeat(_) => Body::HeartbeatResponse(HeartbeatResponse {
                read_ctx: 0,
                last_index: self.log.last_index(),
            }),
            Body::Snapshot(c) => Body::SnapshotResponse(SnapshotResponse {
                last_index: c.last_index,
                next_offset: 0,
                done: false,
            }),
            _ => return,
        };
        self.send(m.from, self.term, body);
    }

    /// A message from the leader of our term: follow it. Returns false if it makes no
    /// sense: a second leader in our own term cannot exist in a correct cluster, so the
    /// claim is forged or corrupt input (peers are not authenticated), refused rather
    /// than trusted or crashed on. The simulation checks election safety itself.
    fn accept_leader(&mut self, from: NodeId) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        true
    }

    fn handle_append(&mut self, from: NodeId, a: &Append) {
        let respond = |s: &mut Self, success, match_index, conflict_term, conflict_index| {
            let body = Body::AppendResponse(AppendResponse {
                prev_log_index: a.prev_log_index,
                success,
                match_index,
                conflict_term,
                conflict_index,
                read_ctx: a.read_ctx,
            });
            s.send(from, s.term, body);
        };
        let prev = a.prev_log_index;
        if prev < self.commit {
            // Everything up to our commit index matches the leader already.
            respond(self, true, self.commit, None, 0);
            return;
        }
        match self.log.term(prev) {
            Some(t) if t == a.prev_log_term => {
                let last_covered = prev + a.entries.len() as u64;
                for e in &a.entries {
                    match self.log.term(e.index) {
                        Some(t) if t == e.term => continue,
                        Some(_) => {
                            // Truncate only at the first real conflict (never blindly after
                            // prev): a delayed duplicate must not delete entries.
                            assert!(
                                e.index > self.commit,
                                "leader conflicts with a committed entry"
                            );
                            self.truncate_log_from(e.index);
                            self.append_entry(e.clone());
                        }
                        None => self.append_entry(e.clone()),
                    }
                }
                // Commit no further than this RPC proved our log matches the leader's.
                let covered = if self.cfg.bugs.commit_overreach {
                    self.log.last_index()
                } else {
                    last_covered
                };
                let new_commit = a.leader_commit.min(covered);
                if new_commit > self.commit {
                    self.commit = new_commit;
                }
                respond(self, true, last_covered, None, 0);
            }
            Some(t) => {
                let first = self.log.first_index_of_term_run(prev, self.commit + 1);
                respond(self, false, 0, Some(t), first);
            }
            None => {
                let next = self.log.last_index() + 1;
                respond(self, false, 0, None, next);
            }
        }
    }

    fn handle_append_response(&mut self, from: NodeId, r: &AppendResponse) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        let prev = r.prev_log_index;
        if r.success {
            // A follower cannot hold more than this leader sent.
            let grew = pr.ack(r.match_index.min(self.log.last_index()));
            match pr.state {
                ProgressState::Probe => pr.become_replicate(),
                ProgressState::Snapshot if pr.match_index >= pr.snapshot_index => {
                    pr.become_replicate()
                }
                _ => {}
            }
            if grew {
                self.maybe_commit();
            }
            self.replicate_to(from);
            self.maybe_send_timeout_now(from);
        } else if prev > 0 && prev <= pr.match_index {
            // The follower no longer has an entry it acknowledged.
            pr.forget_match(r.conflict_index.min(prev));
            self.replicate_to(from);
        } else if prev >= pr.match_index
            && !(pr.state == ProgressState::Probe && prev.checked_add(1) != Some(pr.next_index))
        {
            // A fresh rejection: jump back a whole term (or to the follower's log end).
            let hint = match r.conflict_term.and_then(|t| self.log.last_index_of_term(t)) {
                Some(i) if i < prev => i + 1,
                _ => r.conflict_index,
            };
            let pr = self.progress.get_mut(&from).expect("checked above");
            let next = hint.clamp(pr.match_index + 1, prev.max(pr.match_index + 1));
            pr.become_probe();
            pr.next_index = next;
            self.replicate_to(from);
        }
        self.ack_reads(from, r.read_ctx);
    }

    fn handle_heartbeat(&mut self, from: NodeId, h: &Heartbeat) {
        if h.commit > self.commit {
            self.commit = h.commit.min(self.log.last_index());
        }
        let reply = HeartbeatResponse {
            read_ctx: h.read_ctx,
            last_index: self.log.last_index(),
        };
        self.send(from, self.term, Body::HeartbeatResponse(reply));
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, r: &HeartbeatResponse) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if pr.state == ProgressState::Probe {
            pr.probe_sent = false;
        }
        if r.last_index < pr.match_index {
            pr.forget_match(r.last_index + 1);
            self.replicate_to(from);
        } else if pr.match_index < last {
            self.replicate_to(from);
        }
        self.ack_reads(from, r.read_ctx);
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
