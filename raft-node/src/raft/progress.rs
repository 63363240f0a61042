//! What a leader knows about each follower's log.

use std::collections::VecDeque;

use super::message::Index;
use super::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Unsure where the follower's log matches: one AppendEntries at a time.
    Probe,
    /// The follower accepts entries: stream them without waiting for each answer.
    Replicate,
    /// The entries the follower needs are compacted: a snapshot is on its way.
    Snapshot,
}

#[derive(Debug, Clone)]
pub struct Progress {
    pub state: ProgressState,
    /// Highest index known to match the leader's log.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// In `Probe`: an AppendEntries is outstanding, wait for its answer or a heartbeat tick.
    pub probe_sent: bool,
    /// In `Replicate`: the last index of each AppendEntries not yet acknowledged.
    pub inflight: VecDeque<Index>,
    /// Ticks since this follower last acknowledged anything; drives retransmission.
    pub ticks_since_ack: u32,
    /// Heard from this follower since the last check-quorum round.
    pub recent_active: bool,
    /// In `Snapshot`: the snapshot being sent. It is kept until the transfer ends, so that
    /// compactions meanwhile cannot restart a long transfer forever.
    pub snapshot: Option<Snapshot>,
    /// In `Snapshot`: which snapshot and the byte offset to send next.
    pub snapshot_index: Index,
    /// In `Snapshot`: the CRC-32 of the snapshot being sent, computed once.
    pub snapshot_checksum: u32,
    pub snapshot_offset: u64,
    /// In `Snapshot`: an offset the follower asked for that is behind `snapshot_offset`.
    pub snapshot_rewind: Option<u64>,
}

impl Progress {
    pub fn new(next_index: Index) -> Self {
        Progress {
            state: ProgressState::Probe,
            match_index: 0,
            next_index,
            probe_sent: false,
            inflight: VecDeque::new(),
            ticks_since_ack: 0,
            recent_active: false,
            snapshot: None,
            snapshot_index: 0,
            snapshot_checksum: 0,
            snapshot_offset: 0,
            snapshot_rewind: None,
        }
    }

    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.snapshot = None;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.snapshot = None;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_snapshot(&mut self, snapshot: Snapshot) {
        self.state = ProgressState::Snapshot;
        self.snapshot_index = snapshot.index;
        self.snapshot_checksum = crc32fast::hash(&snapshot.data);
        self.snapshot = Some(snapshot);
        self.snapshot_offset = 0;
        self.snapshot_rewind = None;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// The follower no longer has what it acknowledged (its disk was wiped or rolled
    /// back): nothing it holds is known to match any more, so probe again from `next`
    /// (where it says its log ends), or send the snapshot if that is compacted. A late
    /// answer that only looks like a loss costs one probe: a lower `match_index` can delay
    /// a commit, never make one.
    pub fn forget_match(&mut self, next: Index) {
        self.match_index = 0;
        self.become_probe();
        self.next_index = next.max(1);
    }

    /// Records an acknowledgement up to `index`; returns whether `match_index` grew.
    pub fn ack(&mut self, index: Index) -> bool {
        self.ticks_since_ack = 0;
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
        if index > self.match_index {
            self.match_index = index;
            self.next_index = self.next_index.max(index + 1);
            true
        } else {
            false
        }
    }
}
