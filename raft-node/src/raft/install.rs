//! Snapshots between nodes: a leader sends its snapshot in chunks to a follower that is
//! too far behind for its log, and the follower checks and installs it (§5).

use std::sync::Arc;

use super::progress::ProgressState;
use super::{
    Body, IncomingSnapshot, NodeId, Raft, Role, Snapshot, SnapshotChunk, SnapshotResponse,
};

impl Raft {
    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) {
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
            members: snap.members.clone(),
        });
        self.send(to, self.term, body);
    }

    pub(super) fn handle_snapshot(&mut self, from: NodeId, c: &SnapshotChunk) {
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
        let members = c
            .members
            .clone()
            .unwrap_or_else(|| self.cfg.initial_members());
        let snap = Snapshot {
            index,
            term,
            data: Arc::new(inc.buf),
            members: Some(members.clone()),
        };
        // Keep the log after the snapshot only if it agrees with the snapshot (§5.3).
        let keep = self.log.term(index) == Some(term);
        if keep {
            self.log.compact(index);
        } else {
            self.log.reset(index, term);
        }
        self.members.install(index, members, keep);
        self.commit = index;
        self.applied = index;
        self.snapshot_to_install = Some(snap.clone());
        self.snapshot = Some(snap);
        reply(self, 0, true);
    }

    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, r: &SnapshotResponse) {
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
