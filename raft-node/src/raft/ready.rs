//! What the core hands its driver and callers: its role, the durable state, snapshots,
//! the work of a [`Ready`], refusals and a status summary.

use std::sync::Arc;

use super::{Entry, Index, LogPosition, Membership, Message, NodeId, RecoveryError, Term};

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

/// What must be durable before the node answers anyone (figure 3.1), plus what a node
/// that started with an empty disk learned from the others (see `join.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    /// The most up-to-date log any member reported when this node joined with an empty
    /// disk: it votes for no candidate behind it and does not campaign until its own log
    /// reaches it. The entries its lost disk had acknowledged are at or below it, so a
    /// vote the floor allows cannot elect a leader that lacks them. Zero for a node that
    /// never lost its disk.
    pub floor: LogPosition,
    /// Set while a node with no state has not yet heard from every member: it takes no
    /// part in Raft until it knows whether it founds a cluster or rejoins one. Durable so
    /// that a crash while joining is not mistaken for a founded node on restart.
    pub joining: bool,
}

/// A state-machine snapshot covering the log up to `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    pub data: Arc<Vec<u8>>,
    /// The configuration in effect at `index` (see [`crate::raft::Raft::members_at`]);
    /// `None` in a snapshot written before membership changes existed, meaning the
    /// starting configuration.
    pub members: Option<Membership>,
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
    /// While joining: the members that have not answered yet.
    pub joining_waits_for: Option<Vec<NodeId>>,
    /// A rejoined node's floor while its log is still behind it (it neither votes for
    /// logs behind it nor campaigns).
    pub catching_up_to: Option<LogPosition>,
    /// The configuration in effect, and whether its change has committed.
    pub members: Membership,
    pub members_committed: bool,
}
