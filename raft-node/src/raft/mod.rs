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

mod log;
mod message;
mod progress;
mod read_only;
mod recovered;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use log::RaftLog;
pub use message::{
    Append, AppendResponse, Body, Entry, Heartbeat, HeartbeatResponse, Index, Message, NodeId,
    Payload, SnapshotChunk, SnapshotResponse, Term, Vote, VoteResponse,
};
use progress::{Progress, ProgressState};
use read_only::ReadOnly;
pub use recovered::{Recovered, RecoveryError};

/// The highest term a node will hold. A message with a higher term is dropped, and a node
/// at this term no longer campaigns, so a term never wraps. Legitimate terms never come
/// near it: one election takes at least one election timeout, and with the jump bound
/// below a forged message cannot carry a node there either. Recovered state beyond it is
/// refused at start (only a forgery accepted by an older version, or corruption that
/// kept its checksum, could have written it).
pub const TERM_LIMIT: Term = 1 << 62;

/// How far messages may raise a node's term: a node holds this much *term credit* when
/// it starts, spends what each adopted higher term moves it, and earns one back per tick,
/// up to this cap. A legitimate gap is the number of elections a node missed, and terms
/// cannot advance faster than about one per election timeout (at least a few ticks), so
/// an honest cluster never runs short; a forged term far ahead is dropped instead of
/// adopted, and a forger can move a node at most this much per start of the node, plus
/// one per tick. `TERM_LIMIT / TERM_JUMP` = 2^30 starts would be needed to reach the limit.
pub const TERM_JUMP: Term = 1 << 32;

/// Tunables of the core, all in ticks (the driver decides how long a tick is).
#[derive(Debug, Clone)]
pub struct Config {
    pub id: NodeId,
    /// The other voting members.
    pub peers: Vec<NodeId>,
    /// Election timeouts are drawn from `election_ticks_min..election_ticks_max`.
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    pub heartbeat_ticks: u32,
    /// Bounds on one AppendEntries.
    pub max_append_entries: usize,
    pub max_append_bytes: usize,
    /// AppendEntries a leader streams to a follower before waiting for answers.
    pub max_inflight: usize,
    pub snapshot_chunk_bytes: usize,
    /// Pre-vote (§9.6): a node campaigns only if a majority would vote for it, so a node
    /// rejoining after a partition does not depose a healthy leader.
    pub pre_vote: bool,
    /// Check-quorum (§6.2): a leader that has not heard from a majority for an election
    /// timeout steps down; followers that hear from a leader ignore vote requests.
    pub check_quorum: bool,
    /// Seeds the election-timeout randomisation, so simulations are reproducible.
    pub seed: u64,
    /// Says whether a received snapshot's bytes are a state the state machine can load.
    /// A snapshot that fails it (or its checksum) is discarded before anything is
    /// persisted, so a bad or forged snapshot can never replace the node's state.
    pub snapshot_check: fn(&[u8]) -> bool,
    /// Deliberate protocol violations, for proving that tests catch them. Never set in
    /// production; `raft-node --unsafe-bug` is the only way in.
    pub bugs: CoreBugs,
}

/// Seeded bugs that live in the consensus core (see `docs/seeded-bugs.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreBugs {
    /// Serve ReadIndex before the new leader committed an entry of its term.
    pub no_noop_read: bool,
    /// Commit entries of earlier terms by counting replicas (the paper's figure 8).
    pub commit_old_term: bool,
    /// A follower takes the leader's commit index even beyond what this RPC proved.
    pub commit_overreach: bool,
}

impl Config {
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Self {
        Config {
            id,
            peers,
            election_ticks_min: 30,
            election_ticks_max: 60,
            heartbeat_ticks: 5,
            max_append_entries: 1024,
            max_append_bytes: 4 << 20,
            max_inflight: 64,
            snapshot_chunk_bytes: 1 << 20,
            pre_vote: true,
            check_quorum: true,
            seed: id,
            snapshot_check: |_| true,
            bugs: CoreBugs::default(),
        }
    }

    /// Rejects settings under which the protocol cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("node id 0 is reserved".into());
        }
        if self.peers.contains(&self.id) {
            return Err(format!("node {} lists itself as a peer", self.id));
        }
        let unique: BTreeSet<_> = self.peers.iter().collect();
        if unique.len() != self.peers.len() || self.peers.contains(&0) {
            return Err("peer ids must be unique and non-zero".into());
        }
        if self.heartbeat_ticks == 0 || self.election_ticks_min <= self.heartbeat_ticks {
            return Err("the election timeout must be longer than the heartbeat interval".into());
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return Err("the election timeout range is empty".into());
        }
        if self.max_append_entries == 0 || self.max_inflight == 0 || self.snapshot_chunk_bytes == 0
        {
            return Err("message size limits must be positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// What must be durable before the node answers anyone (figure 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
}

/// A state-machine snapshot covering the log up to `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    pub data: Arc<Vec<u8>>,
}

/// A read confirmed by ReadIndex: answer it once the applied index reaches `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub id: u64,
    pub index: Index,
}

/// Work the driver must do, in this order: persist (`hard_state`, `snapshot`, `entries`),
/// then send `messages`, then apply `snapshot` and `committed` and answer reads.
#[derive(Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: persist it, then restore the state machine.
    pub snapshot: Option<Snapshot>,
    /// New log entries. The first one's index replaces whatever storage holds from there on.
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    /// Entries now committed, in log order, to apply to the state machine.
    pub committed: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Reads that will never be confirmed here (this node is not, or no longer, leader).
    pub failed_reads: Vec<u64>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.failed_reads.is_empty()
    }
}

/// Why a core could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("inconsistent durable state: {0}")]
    State(#[from] RecoveryError),
}

/// Why a proposal or a read was refused. Refused work never entered the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLeader {
    pub leader: Option<NodeId>,
}

/// A summary of a node, for status pages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit_index: Index,
    pub applied_index: Index,
    pub last_log_index: Index,
    pub last_log_term: Term,
    pub snapshot_index: Index,
    pub log_length: usize,
    /// Messages dropped for claiming a term too far ahead ([`TERM_LIMIT`], [`TERM_JUMP`]).
    pub refused_term_jumps: u64,
}

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
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    commit: Index,
    /// Committed entries up to here were handed out in a `Ready`.
    applied: Index,
    election_elapsed: u32,
    randomized_timeout: u32,
    heartbeat_elapsed: u32,
    votes: BTreeMap<NodeId, bool>,
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
        let log = RaftLog::new(si, st, recovered.entries);
        let mut rng = Rng(cfg.seed ^ 0x5EED_0000_0000_0000 ^ cfg.id.rotate_left(17));
        let randomized_timeout = Self::draw_timeout(&cfg, &mut rng);
        Ok(Raft {
            term: recovered.hard_state.term,
            vote: recovered.hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            commit: si,
            applied: si,
            election_elapsed: 0,
            randomized_timeout,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
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
            cfg,
        })
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

    fn quorum(&self) -> usize {
        let size = self.cfg.peers.len() + 1;
        size / 2 + 1
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
        self.election_elapsed += 1;
        self.term_credit = (self.term_credit + 1).min(TERM_JUMP);
        if self.role == Role::Leader {
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
                let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
                if active < self.quorum() {
                    self.become_follower(self.term, None);
                }
            }
        } else if self.election_elapsed >= self.randomized_timeout {
            self.campaign();
        }
    }

    fn heartbeat_tick(&mut self) {
        let stall = 2 * self.cfg.heartbeat_ticks;
        let peers: Vec<NodeId> = self.cfg.peers.clone();
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

    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks_min
    }

    // ----- role changes -----

    fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_timeout = Self::draw_timeout(&self.cfg, &mut self.rng);
    }

    fn abort_leader_work(&mut self) {
        self.reads.abort(&mut self.failed_reads);
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

    fn campaign(&mut self) {
        if self.term >= TERM_LIMIT {
            // No term may come after this one: never climb towards a wrap.
            self.reset_timers();
            return;
        }
        if self.cfg.pre_vote {
            self.start_election(Role::PreCandidate);
        } else {
            self.campaign_for_real();
        }
    }

    fn campaign_for_real(&mut self) {
        let Some(next) = self.term.checked_add(1) else {
            self.become_follower(self.term, None);
            return;
        };
        self.term = next;
        self.vote = Some(self.cfg.id);
        self.hard_state_dirty = true;
        self.start_election(Role::Candidate);
    }

    /// Votes for itself and asks the others (a pre-vote for `PreCandidate`).
    fn start_election(&mut self, role: Role) {
        self.role = role;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        self.reset_timers();
        let pre_vote = role == Role::PreCandidate;
        if self.quorum() == 1 {
            if pre_vote {
                self.campaign_for_real();
            } else {
                self.become_leader();
            }
            return;
        }
        self.request_votes(pre_vote);
    }

    fn request_votes(&mut self, pre_vote: bool) {
        // `campaign` never runs at the limit, so the pre-vote term stays within it.
        let term = if pre_vote { self.term + 1 } else { self.term };
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for p in self.cfg.peers.clone() {
            let vote = Vote {
                pre_vote,
                last_log_index,
                last_log_term,
            };
            self.send(p, term, Body::Vote(vote));
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.reset_timers();
        let next = self.log.last_index() + 1;
        self.progress = self
            .cfg
            .peers
            .iter()
            .map(|&p| {
                let mut pr = Progress::new(next);
                pr.recent_active = true;
                (p, pr)
            })
            .collect();
        // The no-op lets this leader commit its term's first entry, and with it every entry
        // of earlier terms (§3.6.2), and enables ReadIndex (§6.4).
        self.log.append(Entry {
            term: self.term,
            index: next,
            payload: Payload::Noop,
        });
        self.broadcast_pending = true;
        self.maybe_commit();
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
        let index = self.log.last_index() + 1;
        self.log.append(Entry {
            term: self.term,
            index,
            payload: Payload::Command(command),
        });
        self.broadcast_pending = true;
        self.maybe_commit();
        Ok((index, self.term))
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
        self.join_read_round(id);
        Ok(())
    }

    fn join_read_round(&mut self, id: u64) {
        if self.reads.join(id, self.commit) {
            self.heartbeat_pending = true;
        }
        self.reads.confirmed(self.quorum(), &mut self.read_states);
    }

    fn ack_reads(&mut self, from: NodeId, ctx: u64) {
        self.reads.ack(from, ctx);
        self.reads.confirmed(self.quorum(), &mut self.read_states);
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
        self.snapshot = Some(snapshot);
    }

    /// Collects everything the driver must do now. See [`Ready`] for the order.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            if self.broadcast_pending {
                self.broadcast_pending = false;
                for p in self.cfg.peers.clone() {
                    self.replicate_to(p);
                }
            }
            if self.heartbeat_pending {
                self.heartbeat_pending = false;
                for p in self.cfg.peers.clone() {
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

    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let pr = self.progress.get_mut(&to).expect("progress for peer");
        let snap = pr
            .snapshot
            .clone()
            .expect("snapshot state holds its snapshot");
        let len = snap.data.len() as u64;
        let checksum = pr.snapshot_checksum;
        let offset = pr.snapshot_offset.min(len);
        let end = (offset + self.cfg.snapshot_chunk_bytes as u64).min(len);
        pr.probe_sent = true;
        let body = Body::Snapshot(SnapshotChunk {
            last_index: snap.index,
            last_term: snap.term,
            offset,
            data: snap.data[offset as usize..end as usize].to_vec(),
            done: end == len,
            checksum,
        });
        self.send(to, self.term, body);
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<Index> = self.progress.values().map(|p| p.match_index).collect();
        matched.push(self.log.last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        // Only entries of the current term are committed by counting replicas (§3.6.2).
        let current_term =
            self.log.term(candidate) == Some(self.term) || self.cfg.bugs.commit_old_term;
        if candidate > self.commit && current_term {
            self.commit = candidate;
            for id in self.reads.take_waiting() {
                self.join_read_round(id);
            }
        }
    }

    // ----- message handling -----

    /// Handles one message from a peer. Unknown senders and stale messages are dropped.
    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || !self.cfg.peers.contains(&m.from) {
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
        if m.term > self.term {
            match &m.body {
                // A pre-vote never changes the receiver's term; a granted pre-vote answer
                // carries the term the candidate asked for.
                Body::Vote(v) if v.pre_vote => {}
                Body::VoteResponse(r) if r.pre_vote && r.granted => {}
                // §4.2.3: while a leader is heard from, vote requests are ignored outright.
                Body::Vote(_) if self.in_lease() => return,
                // Further ahead than any honest gap: a forgery, a bug or corruption.
                _ if !self.spend_term_credit(m.term) => return,
                Body::Append(_) | Body::Heartbeat(_) | Body::Snapshot(_) => {
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
        }
    }

    /// Whether a message may raise this node's term to `term`; if so, the jump is spent
    /// from the term credit (see [`TERM_JUMP`]).
    fn spend_term_credit(&mut self, term: Term) -> bool {
        let jump = term - self.term;
        if jump > self.term_credit {
            self.refused_term_jumps = self.refused_term_jumps.saturating_add(1);
            return false;
        }
        self.term_credit -= jump;
        true
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

    fn log_up_to_date(&self, last_log_index: Index, last_log_term: Term) -> bool {
        last_log_term > self.log.last_term()
            || (last_log_term == self.log.last_term() && last_log_index >= self.log.last_index())
    }

    fn handle_vote(&mut self, from: NodeId, term: Term, v: &Vote) {
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

    fn handle_vote_response(&mut self, from: NodeId, term: Term, r: &VoteResponse) {
        let counts = match (self.role, r.pre_vote) {
            (Role::PreCandidate, true) => !r.granted || Some(term) == self.term.checked_add(1),
            (Role::Candidate, false) => true,
            _ => false,
        };
        if !counts {
            return;
        }
        self.votes.insert(from, r.granted);
        let yes = self.votes.values().filter(|&&g| g).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            if r.pre_vote {
                self.campaign_for_real();
            } else {
                self.become_leader();
            }
        } else if no >= self.quorum() {
            self.become_follower(self.term, None);
        }
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
                            self.log.truncate_from(e.index);
                            self.log.append(e.clone());
                        }
                        None => self.log.append(e.clone()),
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

    fn handle_snapshot(&mut self, from: NodeId, c: &SnapshotChunk) {
        let (index, term) = (c.last_index, c.last_term);
        let reply = |s: &mut Self, next_offset, done| {
            let body = Body::SnapshotResponse(SnapshotResponse {
                last_index: index,
                next_offset,
                done,
            });
            s.send(from, s.term, body);
        };
        if index <= self.commit {
            self.incoming = None;
            reply(self, 0, true);
            return;
        }
        if c.offset == 0 {
            self.incoming = Some(IncomingSnapshot {
                index,
                term,
                buf: Vec::new(),
            });
        }
        let Some(inc) = self
            .incoming
            .as_mut()
            .filter(|i| i.index == index && i.term == term)
        else {
            reply(self, 0, false);
            return;
        };
        if inc.buf.len() as u64 != c.offset {
            let have = inc.buf.len() as u64;
            reply(self, have, false);
            return;
        }
        inc.buf.extend_from_slice(&c.data);
        if !c.done {
            let have = inc.buf.len() as u64;
            reply(self, have, false);
            return;
        }
        let inc = self.incoming.take().expect("checked above");
        if crc32fast::hash(&inc.buf) != c.checksum || !(self.cfg.snapshot_check)(&inc.buf) {
            // Damaged or not a state at all: keep ours, and let the leader start over.
            reply(self, 0, false);
            return;
        }
        let snap = Snapshot {
            index,
            term,
            data: Arc::new(inc.buf),
        };
        // Keep the log after the snapshot only if it agrees with the snapshot (§5.3).
        if self.log.term(index) == Some(term) {
            self.log.compact(index);
        } else {
            self.log.reset(index, term);
        }
        self.commit = index;
        self.applied = index;
        self.snapshot_to_install = Some(snap.clone());
        self.snapshot = Some(snap);
        reply(self, 0, true);
    }

    fn handle_snapshot_response(&mut self, from: NodeId, r: &SnapshotResponse) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if r.done {
            let grew = pr.ack(r.last_index.min(self.log.last_index()));
            if pr.state == ProgressState::Snapshot && pr.match_index >= pr.snapshot_index {
                pr.become_probe();
            }
            if grew {
                self.maybe_commit();
            }
            self.replicate_to(from);
        } else if pr.state == ProgressState::Snapshot && pr.snapshot_index == r.last_index {
            if r.next_offset > pr.snapshot_offset {
                pr.ticks_since_ack = 0;
                pr.snapshot_offset = r.next_offset;
                pr.snapshot_rewind = None;
                pr.probe_sent = false;
                self.replicate_to(from);
            } else {
                // A duplicate, or the follower lost its partial copy: never answer each such
                // response with a chunk (duplicates would multiply); the stall timer resends
                // from where the follower last said it is.
                pr.snapshot_rewind = Some(r.next_offset);
            }
        }
    }
}

/// Whether a message could have come from a correct peer: an AppendEntries carries
/// consecutive entries right after `prev_log_index`, with terms that never go back and
/// never exceed the sender's term.
fn well_formed(m: &Message) -> bool {
    let Body::Append(a) = &m.body else {
        return true;
    };
    let mut prev = (a.prev_log_index, a.prev_log_term);
    for e in &a.entries {
        if Some(e.index) != prev.0.checked_add(1) || e.term < prev.1 || e.term > m.term {
            return false;
        }
        prev = (e.index, e.term);
    }
    true
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
