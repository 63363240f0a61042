//! The driver that runs the Raft core for real: a single task that owns the core, the
//! storage and the state machine, turns timer ticks, peer messages and client requests into
//! core calls, and carries out each `Ready` in the safe order (persist, send, apply).
//!
//! Everything that arrives while a `Ready` is being persisted is handled together in the
//! next round, so one fsync covers every entry that arrived meanwhile (group commit).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::kv::{Command, KvStore, Outcome};
use crate::raft::{Index, Message, NodeId, NotLeader, Payload, Raft, Role, Snapshot, Status, Term};
use crate::storage::{Storage, StorageError};
use crate::transport::Outbox;

/// Where clients should go instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub id: NodeId,
    /// The leader's client API address, when this node has learned it.
    pub api: Option<String>,
}

/// The answer to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// Committed and applied.
    Done(Outcome),
    /// Refused before entering the log: it will never take effect.
    NotLeader(Option<LeaderHint>),
    /// Its log entry was replaced by a new leader's: it will never take effect.
    Dropped,
    /// It may or may not take effect (leadership lost or time ran out with the entry in
    /// flight). Only a later read can tell.
    Unknown(&'static str),
}

/// The answer to a linearizable read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Value(Option<String>),
    NotLeader(Option<LeaderHint>),
    /// Leadership could not be confirmed in time. Reads change nothing, so this is a
    /// definite failure.
    Timeout,
}

/// Status for the `/client/status` endpoint.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub raft: Status,
    pub leader: Option<LeaderHint>,
    pub keys: usize,
}

pub enum Event {
    /// Messages from a peer, with the sender's client API address if it said.
    Messages {
        msgs: Vec<Message>,
        from_api: Option<(NodeId, String)>,
    },
    Write {
        cmd: Command,
        reply: oneshot::Sender<WriteResult>,
    },
    Read {
        key: String,
        reply: oneshot::Sender<ReadResult>,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
}

/// Timing and sizing knobs of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub tick: Duration,
    /// How long a client waits for its write to commit before hearing "unknown".
    pub request_timeout: Duration,
    /// After losing leadership, how long pending writes wait for a definite outcome.
    pub lost_leader_grace: Duration,
    /// Take a snapshot after this many entries were applied since the last one.
    pub snapshot_threshold: u64,
    pub api_addr: String,
    pub bugs: NodeBugs,
}

/// Seeded bugs that live in the driver (see `docs/seeded-bugs.md`). All off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeBugs {
    /// Serve reads from local state on any node, without ReadIndex.
    pub stale_read: bool,
    /// A leader serves reads from local state without confirming it still leads.
    pub lease_read: bool,
    /// Acknowledge a write once it is in the local log, before a majority has it.
    pub ack_before_commit: bool,
    /// Never persist voted-for.
    pub forget_vote: bool,
}

/// A cheap, cloneable handle to send work to the node.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Event>,
}

impl NodeHandle {
    pub fn events(&self) -> mpsc::Sender<Event> {
        self.tx.clone()
    }

    pub async fn write(&self, cmd: Command) -> WriteResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Event::Write { cmd, reply }).await.is_err() {
            return WriteResult::NotLeader(None);
        }
        rx.await.unwrap_or(WriteResult::Unknown("node shut down"))
    }

    pub async fn read(&self, key: String) -> ReadResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Event::Read { key, reply }).await.is_err() {
            return ReadResult::NotLeader(None);
        }
        rx.await.unwrap_or(ReadResult::Timeout)
    }

    pub async fn status(&self) -> Option<NodeStatus> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Status { reply }).await.ok()?;
        rx.await.ok()
    }
}

struct PendingWrite {
    term: Term,
    /// A put or delete (no result to compute), for the `ack-before-commit` bug.
    blind: bool,
    deadline: Instant,
    reply: oneshot::Sender<WriteResult>,
}

struct PendingRead {
    key: String,
    deadline: Instant,
    reply: oneshot::Sender<ReadResult>,
}

/// The node's single-threaded heart.
pub struct Driver {
    cfg: DriverConfig,
    raft: Raft,
    storage: Storage,
    kv: KvStore,
    applied: Index,
    snapshot_index: Index,
    outbox: Outbox,
    peer_api: HashMap<NodeId, String>,
    writes: BTreeMap<Index, PendingWrite>,
    next_read_id: u64,
    reads: HashMap<u64, PendingRead>,
    /// Reads confirmed by ReadIndex, waiting for the applied index to reach theirs.
    reads_ready: BTreeMap<(Index, u64), PendingRead>,
    was_leader: bool,
    /// Role, term and leader last logged, to log changes once.
    seen: (Role, Term, Option<NodeId>),
}

impl Driver {
    pub fn new(
        cfg: DriverConfig,
        raft: Raft,
        storage: Storage,
        kv: KvStore,
        snapshot_index: Index,
        outbox: Outbox,
    ) -> Self {
        Driver {
            cfg,
            raft,
            storage,
            kv,
            applied: snapshot_index,
            snapshot_index,
            outbox,
            peer_api: HashMap::new(),
            writes: BTreeMap::new(),
            next_read_id: 1,
            reads: HashMap::new(),
            reads_ready: BTreeMap::new(),
            was_leader: false,
            seen: (Role::Follower, 0, None),
        }
    }

    /// Creates the event channel: the handle for the API and transport, and the receiver
    /// that [`Driver::run`] consumes.
    pub fn channel() -> (NodeHandle, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(16 * 1024);
        (NodeHandle { tx }, rx)
    }

    /// Runs until every handle is dropped, or storage fails (a node that cannot persist
    /// must stop rather than answer).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>) -> Result<(), StorageError> {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => return Ok(()),
                },
                _ = ticker.tick() => {
                    self.raft.tick();
                    self.expire(Instant::now());
                }
            }
            for _ in 0..4096 {
                match rx.try_recv() {
                    Ok(ev) => self.handle(ev),
                    Err(_) => break,
                }
            }
            self.process_ready()?;
        }
    }

    fn leader_hint(&self) -> Option<LeaderHint> {
        let id = self.raft.leader()?;
        let api = if id == self.raft.id() {
            Some(self.cfg.api_addr.clone())
        } else {
            self.peer_api.get(&id).cloned()
        };
        Some(LeaderHint { id, api })
    }

    fn not_leader(&self, e: NotLeader) -> Option<LeaderHint> {
        e.leader.and_then(|_| self.leader_hint())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Messages { msgs, from_api } => {
                if let Some((id, api)) = from_api {
                    self.peer_api.insert(id, api);
                }
                for m in msgs {
                    self.raft.step(m);
                }
            }
            Event::Write { cmd, reply } => match self.raft.propose(cmd.encode()) {
                Ok((index, term)) => {
                    let deadline = Instant::now() + self.cfg.request_timeout;
                    let pending = PendingWrite {
                        term,
                        blind: !matches!(cmd, Command::Cas { .. }),
                        deadline,
                        reply,
                    };
                    if let Some(old) = self.writes.insert(index, pending) {
                        // Our older entry at this index left our log, but another node may
                        // still hold it and commit it: its fate is unknown, not failure.
                        let _ = old.reply.send(WriteResult::Unknown("leadership changed"));
                    }
                }
                Err(e) => {
                    let _ = reply.send(WriteResult::NotLeader(self.not_leader(e)));
                }
            },
            Event::Read { key, reply }
                if self.cfg.bugs.stale_read
                    || (self.cfg.bugs.lease_read && self.raft.role() == Role::Leader) =>
            {
                let _ = reply.send(ReadResult::Value(self.kv.get(&key).cloned()));
            }
            Event::Read { key, reply } => {
                let id = self.next_read_id;
                self.next_read_id += 1;
                match self.raft.read_index(id) {
                    Ok(()) => {
                        let deadline = Instant::now() + self.cfg.request_timeout;
                        self.reads.insert(
                            id,
                            PendingRead {
                                key,
                                deadline,
                                reply,
                            },
                        );
                    }
                    Err(e) => {
                        let _ = reply.send(ReadResult::NotLeader(self.not_leader(e)));
                    }
                }
            }
            Event::Status { reply } => {
                let mut raft = self.raft.status();
                raft.applied_index = self.applied;
                let _ = reply.send(NodeStatus {
                    raft,
                    leader: self.leader_hint(),
                    keys: self.kv.len(),
                });
            }
        }
    }

    /// Answers requests whose time ran out.
    fn expire(&mut self, now: Instant) {
        let is_leader = self.raft.role() == Role::Leader;
        if self.was_leader && !is_leader {
            // Entries in flight may still commit under the next leader, or be replaced:
            // wait a little for a definite answer, then say "unknown".
            let grace = now + self.cfg.lost_leader_grace;
            for w in self.writes.values_mut() {
                w.deadline = w.deadline.min(grace);
            }
        }
        self.was_leader = is_leader;
        let expired: Vec<Index> = self
            .writes
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(&i, _)| i)
            .collect();
        for i in expired {
            let w = self.writes.remove(&i).expect("listed above");
            let why = if is_leader {
                "timed out waiting for commit"
            } else {
                "leadership lost"
            };
            let _ = w.reply.send(WriteResult::Unknown(why));
        }
        let expired: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(&i, _)| i)
            .collect();
        for id in expired {
            let r = self.reads.remove(&id).expect("listed above");
            let _ = r.reply.send(ReadResult::Timeout);
        }
    }

    fn log_role_change(&mut self) {
        let now = (self.raft.role(), self.raft.term(), self.raft.leader());
        if now != self.seen {
            self.seen = now;
            tracing::info!(
                role = now.0.as_str(),
                term = now.1,
                leader = ?now.2,
                commit = self.raft.commit_index(),
                last_log = self.raft.log().last_index(),
                "raft state changed"
            );
        }
    }

    fn process_ready(&mut self) -> Result<(), StorageError> {
        self.log_role_change();
        let mut ready = self.raft.ready();
        if ready.is_empty() {
            return Ok(());
        }
        if self.cfg.bugs.forget_vote {
            if let Some(hs) = ready.hard_state.as_mut() {
                hs.vote = None;
            }
        }
        if ready.hard_state.is_some() || ready.snapshot.is_some() || !ready.entries.is_empty() {
            let storage = &mut self.storage;
            tokio::task::block_in_place(|| {
                storage.persist(ready.hard_state, ready.snapshot.as_ref(), &ready.entries)
            })?;
        }
        self.outbox.send(ready.messages);
        if self.cfg.bugs.ack_before_commit {
            for e in &ready.entries {
                if self
                    .writes
                    .get(&e.index)
                    .is_some_and(|w| w.term == e.term && w.blind)
                {
                    let w = self.writes.remove(&e.index).expect("checked");
                    let _ = w
                        .reply
                        .send(WriteResult::Done(Outcome::Applied { previous: None }));
                }
            }
        }

        if let Some(snap) = ready.snapshot {
            match KvStore::restore(&snap.data) {
                Ok(kv) => self.kv = kv,
                Err(e) => {
                    // The leader sent a snapshot we cannot read: that is a bug, not input.
                    panic!("snapshot at index {} does not decode: {e}", snap.index);
                }
            }
            self.applied = snap.index;
            self.snapshot_index = snap.index;
            // Writes covered by the snapshot: whether ours is in it cannot be told.
            let covered: Vec<Index> = self.writes.range(..=snap.index).map(|(&i, _)| i).collect();
            for i in covered {
                let w = self.writes.remove(&i).expect("listed above");
                let _ = w.reply.send(WriteResult::Unknown("replaced by a snapshot"));
            }
        }
        for entry in ready.committed {
            debug_assert_eq!(entry.index, self.applied + 1);
            self.applied = entry.index;
            let outcome = match entry.payload {
                Payload::Noop => None,
                Payload::Command(bytes) => match Command::decode(&bytes) {
                    Ok(cmd) => Some(self.kv.apply(cmd)),
                    Err(e) => {
                        tracing::error!(index = entry.index, "undecodable command skipped: {e}");
                        None
                    }
                },
            };
            if let Some(w) = self.writes.remove(&entry.index) {
                let result = match outcome {
                    Some(o) if w.term == entry.term => WriteResult::Done(o),
                    _ => WriteResult::Dropped,
                };
                let _ = w.reply.send(result);
            }
        }
        for rs in ready.read_states {
            if let Some(r) = self.reads.remove(&rs.id) {
                self.reads_ready.insert((rs.index, rs.id), r);
            }
        }
        while let Some(entry) = self.reads_ready.first_entry() {
            if entry.key().0 > self.applied {
                break;
            }
            let r = entry.remove();
            let _ = r
                .reply
                .send(ReadResult::Value(self.kv.get(&r.key).cloned()));
        }
        if !ready.failed_reads.is_empty() {
            let hint = self.leader_hint();
            for id in ready.failed_reads {
                if let Some(r) = self.reads.remove(&id) {
                    let _ = r.reply.send(ReadResult::NotLeader(hint.clone()));
                }
            }
        }
        if self.applied - self.snapshot_index >= self.cfg.snapshot_threshold {
            self.take_snapshot()?;
        }
        Ok(())
    }

    fn take_snapshot(&mut self) -> Result<(), StorageError> {
        let index = self.applied;
        let term = self
            .raft
            .log()
            .term(index)
            .expect("applied entries are in the log");
        let snap = Snapshot {
            index,
            term,
            data: std::sync::Arc::new(self.kv.snapshot()),
        };
        let storage = &mut self.storage;
        tokio::task::block_in_place(|| storage.save_snapshot(&snap))?;
        tracing::debug!(index, term, bytes = snap.data.len(), "snapshot taken");
        self.raft.compact(snap);
        self.snapshot_index = index;
        Ok(())
    }
}
