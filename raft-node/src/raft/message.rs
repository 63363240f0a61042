//! Wire types of the Raft protocol: log entries and the messages peers exchange.
//!
//! They are plain data with serde derives so that the transport and the write-ahead log can
//! encode them however they like; the core never encodes anything itself.

use serde::{Deserialize, Serialize};

use super::Membership;

/// A node's identity in the cluster. `0` is never a valid id (it means "nobody").
pub type NodeId = u64;
/// A Raft term.
pub type Term = u64;
/// A position in the replicated log, starting at 1.
pub type Index = u64;

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so that it commits an entry of its own term (§3.6.2,
    /// and ReadIndex §6.4 needs it).
    Noop,
    /// An opaque state-machine command.
    Command(Vec<u8>),
    /// A new cluster configuration, in effect from the moment it is appended
    /// (`membership.rs`).
    Members(Membership),
}

/// One replicated log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub payload: Payload,
}

impl Entry {
    /// Approximate size, used to bound messages.
    pub fn size_hint(&self) -> usize {
        24 + match &self.payload {
            Payload::Noop => 0,
            Payload::Command(c) => c.len(),
            Payload::Members(m) => {
                8 * (m.voters.len() + m.learners.len())
                    + m.addresses.values().map(|a| a.len() + 8).sum::<usize>()
            }
        }
    }
}

/// Where a log ends: its last entry's term and index. Ordered as Raft compares logs
/// (§3.6.1): the later term wins, then the longer log.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    pub term: Term,
    pub index: Index,
}

/// A message between two nodes. `term` is the sender's current term, except for pre-vote
/// requests and granted pre-vote responses, which carry the term the candidate would use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: Body,
}

/// The protocol's RPCs. Responses travel as their own messages, so the transport can be
/// one-way and a partition can cut one direction only. Each variant wraps a struct so that
/// a handler takes the whole message (`&Append`), not a list of its fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Vote(Vote),
    VoteResponse(VoteResponse),
    Append(Append),
    AppendResponse(AppendResponse),
    Heartbeat(Heartbeat),
    HeartbeatResponse(HeartbeatResponse),
    Snapshot(SnapshotChunk),
    SnapshotResponse(SnapshotResponse),
    /// A node with no state asks what a member holds (see `join.rs`). Answered by every
    /// node, whatever its term; it changes nothing at the receiver.
    Join,
    JoinResponse(JoinInfo),
    /// The leader hands over leadership (§3.10): campaign now, without a pre-vote.
    TimeoutNow,
}

/// What a member holds, as far as a joining node needs to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinInfo {
    /// The member has no state either (it is joining itself).
    pub joining: bool,
    /// Its current term: at least every term it voted in, and every term a candidate it
    /// voted for used.
    pub term: Term,
    /// Where its log ends, or its own floor if that is further.
    pub last: LogPosition,
    /// The voters of its configuration: the joining node also waits for each of them.
    pub voters: Vec<NodeId>,
}

/// RequestVote, or its pre-vote twin (§9.6) that changes no state at the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub pre_vote: bool,
    pub last_log_index: Index,
    pub last_log_term: Term,
    /// Sent on the leader's word (a leader transfer, §3.10): voters that still hear that
    /// leader grant it anyway.
    pub transfer: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    pub pre_vote: bool,
    pub granted: bool,
}

/// AppendEntries carrying entries after `prev_log_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    pub prev_log_index: Index,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: Index,
    /// The leader's latest ReadIndex round when this was sent (0: none).
    pub read_ctx: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The `prev_log_index` of the request this answers.
    pub prev_log_index: Index,
    pub success: bool,
    /// On success, the index up to which the follower's log now matches the leader's.
    pub match_index: Index,
    /// On rejection: the term of the follower's entry at `prev_log_index`, if any.
    pub conflict_term: Option<Term>,
    /// On rejection: where the leader should try next (first index of `conflict_term`,
    /// or the follower's last index + 1), so back-off skips a whole term per round trip.
    pub conflict_index: Index,
    pub read_ctx: u64,
}

/// An empty AppendEntries: keeps followers from campaigning, confirms leadership for
/// ReadIndex and tells followers how far they may commit (`commit` never exceeds what the
/// leader knows the follower holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub commit: Index,
    pub read_ctx: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub read_ctx: u64,
    /// Where the follower's log ends: a leader that believed it held more learns that the
    /// follower lost its log (a wiped disk) and repairs it.
    pub last_index: Index,
}

/// One chunk of a snapshot, for a follower whose next entry was compacted away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub last_index: Index,
    pub last_term: Term,
    pub offset: u64,
    pub data: Vec<u8>,
    pub done: bool,
    /// CRC-32 of the whole snapshot: the follower installs it only if what it assembled
    /// matches.
    pub checksum: u32,
    /// The configuration in effect at `last_index` (`None`: the starting one).
    pub members: Option<Membership>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    pub last_index: Index,
    /// The byte offset the follower expects next; meaningless when `done`.
    pub next_offset: u64,
    /// The snapshot is installed (or was not needed): the follower matches up to
    /// `last_index`.
    pub done: bool,
}
