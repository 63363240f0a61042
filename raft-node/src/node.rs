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

use crate::kv::{Answer, ApplyResult, Command, KvStore, Query};
use crate::raft::{
    ChangeError, Entry, Index, Membership, MembershipChange, Message, NodeId, NotLeader, Payload,
    Raft, ReadState, Ready, Role, Snapshot, Status, Term,
};
use crate::storage::{Storage, StorageError};
use crate::transport::{HttpOutbox, Inbound, InboundSink};

/// Where the driver sends peer messages. It must never block: Raft retransmits, so a
/// message that cannot be queued may be dropped. [`HttpOutbox`] in production; tests use
/// a recording fake.
pub trait Outbox: Send + 'static {
    fn send(&mut self, msgs: Vec<Message>);
    /// A configuration names a member at `addr` (given when it was added): reach it
    /// there unless the address book already knows it.
    fn learn(&mut self, _id: NodeId, _addr: &str) {}
}

impl Outbox for HttpOutbox {
    fn send(&mut self, msgs: Vec<Message>) {
        HttpOutbox::send(self, msgs)
    }

    fn learn(&mut self, id: NodeId, addr: &str) {
        HttpOutbox::learn(self, id, addr)
    }
}

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
    Done(ApplyResult),
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
    /// A whole list (`Query::List`).
    List(Vec<String>),
    /// A read-only transaction's reads (`Query::Txn`), one per micro-operation.
    Txn(Vec<Option<Answer>>),
    NotLeader(Option<LeaderHint>),
    /// Leadership could not be confirmed in time. Reads change nothing, so this is a
    /// definite failure.
    Timeout,
}

/// The answer to a membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeResult {
    /// Committed: the configuration now in effect.
    Done(Membership),
    /// Refused before entering the log (not the leader, a change in progress, ...).
    Refused(ChangeError, Option<LeaderHint>),
    /// Its entry was replaced by a new leader's: it will never take effect.
    Dropped,
    /// It may or may not take effect.
    Unknown(&'static str),
}

/// Status for the `/client/status` endpoint.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub raft: Status,
    pub leader: Option<LeaderHint>,
    pub keys: usize,
    /// On the leader: how far each member's log matches its own.
    pub matches: Option<BTreeMap<NodeId, Index>>,
}

pub enum Event {
    /// Messages from a peer, with the sender's client API address if it said.
    Peer(Inbound),
    Write {
        cmd: Command,
        reply: oneshot::Sender<WriteResult>,
    },
    Read {
        key: Query,
        reply: oneshot::Sender<ReadResult>,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
    Change {
        change: MembershipChange,
        reply: oneshot::Sender<ChangeResult>,
    },
    Transfer {
        to: NodeId,
        reply: oneshot::Sender<Result<(), (ChangeError, Option<LeaderHint>)>>,
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
    /// Tick the core for every tick interval that passed, as measured by this process's
    /// monotonic clock, before each tick and each read: a lease (`--read-mode lease`) is
    /// then measured in that clock's time even across a pause (SIGSTOP, a stall), after
    /// which a leader must not answer from a lease its followers no longer honour.
    pub catch_up_ticks: bool,
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
    /// Serve read-only transactions from local state on any node, without ReadIndex.
    pub txn_local_read: bool,
}

/// A cheap, cloneable handle to send work to the node.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Event>,
}

impl InboundSink for NodeHandle {
    async fn deliver(&self, inbound: Inbound) -> bool {
        self.tx.send(Event::Peer(inbound)).await.is_ok()
    }
}

impl NodeHandle {
    pub async fn write(&self, cmd: Command) -> WriteResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Event::Write { cmd, reply }).await.is_err() {
            return WriteResult::NotLeader(None);
        }
        rx.await.unwrap_or(WriteResult::Unknown("node shut down"))
    }

    pub async fn read(&self, key: Query) -> ReadResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Event::Read { key, reply }).await.is_err() {
            return ReadResult::NotLeader(None);
        }
        rx.await.unwrap_or(ReadResult::Timeout)
    }

    pub async fn change(&self, change: MembershipChange) -> ChangeResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Event::Change { change, reply }).await.is_err() {
            return ChangeResult::Unknown("node shut down");
        }
        rx.await.unwrap_or(ChangeResult::Unknown("node shut down"))
    }

    /// Asks the leader to hand over to `to`; `Ok` once the transfer began.
    pub async fn transfer(&self, to: NodeId) -> Result<(), (ChangeError, Option<LeaderHint>)> {
        let (reply, rx) = oneshot::channel();
        let gone = || (ChangeError::NotLeader { leader: None }, None);
        if self.tx.send(Event::Transfer { to, reply }).await.is_err() {
            return Err(gone());
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    pub async fn status(&self) -> Option<NodeStatus> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Status { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// Creates the event channel: the handle for the API and transport, and the receiver
/// that [`Driver::run`] consumes.
pub fn channel() -> (NodeHandle, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(16 * 1024);
    (NodeHandle { tx }, rx)
}

struct PendingWrite {
    term: Term,
    /// A put or delete (no result to compute), for the `ack-before-commit` bug.
    blind: bool,
    deadline: Instant,
    reply: oneshot::Sender<WriteResult>,
}

fn answer(kv: &KvStore, q: &Query) -> ReadResult {
    match kv.query(q) {
        Answer::Value(v) => ReadResult::Value(v),
        Answer::List(l) => ReadResult::List(l),
        Answer::Txn(t) => ReadResult::Txn(t),
    }
}

/// Removes and returns the entries of `map` whose deadline has passed.
fn take_due<K: Ord + Copy, V>(
    map: &mut BTreeMap<K, V>,
    now: Instant,
    deadline: impl Fn(&V) -> Instant,
) -> Vec<V> {
    let due: Vec<K> = map
        .iter()
        .filter(|(_, v)| deadline(v) <= now)
        .map(|(&k, _)| k)
        .collect();
    due.into_iter().filter_map(|k| map.remove(&k)).collect()
}

struct PendingChange {
    term: Term,
    deadline: Instant,
    reply: oneshot::Sender<ChangeResult>,
}

struct PendingRead {
    key: Query,
    deadline: Instant,
    reply: oneshot::Sender<ReadResult>,
}

/// The node's single-threaded heart.
pub struct Driver<O: Outbox = HttpOutbox> {
    cfg: DriverConfig,
    raft: Raft,
    storage: Storage,
    kv: KvStore,
    applied: Index,
    snapshot_index: Index,
    outbox: O,
    peer_api: HashMap<NodeId, String>,
    writes: BTreeMap<Index, PendingWrite>,
    changes: BTreeMap<Index, PendingChange>,
    /// Addresses of run-time members already handed to the outbox.
    learned: BTreeMap<NodeId, String>,
    next_read_id: u64,
    reads: HashMap<u64, PendingRead>,
    /// Reads confirmed by ReadIndex, waiting for the applied index to reach theirs.
    reads_ready: BTreeMap<(Index, u64), PendingRead>,
    was_leader: bool,
    /// Role, term and leader last logged, to log changes once.
    seen: (Role, Term, Option<NodeId>),
    /// While joining, the members last logged as not answering; `None` once the join's
    /// outcome was logged.
    join_seen: Option<Vec<NodeId>>,
    /// When the next tick is due ([`DriverConfig::catch_up_ticks`]).
    next_tick: Instant,
}

impl<O: Outbox> Driver<O> {
    pub fn new(
        cfg: DriverConfig,
        raft: Raft,
        storage: Storage,
        kv: KvStore,
        snapshot_index: Index,
        outbox: O,
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
            changes: BTreeMap::new(),
            learned: BTreeMap::new(),
            next_read_id: 1,
            reads: HashMap::new(),
            reads_ready: BTreeMap::new(),
            was_leader: false,
            seen: (Role::Follower, 0, None),
            join_seen: Some(Vec::new()),
            next_tick: Instant::now(),
        }
    }

    /// Ticks the core once, or (catching up) once for every tick interval that has
    /// passed since the last.
    fn tick(&mut self) {
        if !self.cfg.catch_up_ticks {
            self.raft.tick();
            return;
        }
        let now = Instant::now();
        // A bound on one catch-up (an hour of ticks): the clock is then taken as it is.
        for _ in 0..360_000 {
            if self.next_tick > now {
                return;
            }
            self.raft.tick();
            self.next_tick += self.cfg.tick;
        }
        self.next_tick = now + self.cfg.tick;
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
                    self.tick();
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
            Event::Peer(Inbound { msgs, from_api }) => {
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
                        blind: !matches!(cmd, Command::Cas { .. } | Command::Txn { .. }),
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
                    || (self.cfg.bugs.lease_read && self.raft.role() == Role::Leader)
                    || (self.cfg.bugs.txn_local_read && matches!(key, Query::Txn(_))) =>
            {
                let _ = reply.send(answer(&self.kv, &key));
            }
            Event::Read { key, reply } => {
                if self.cfg.catch_up_ticks {
                    // The lease's clock must be current before it answers.
                    self.tick();
                }
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
                    matches: self.raft.follower_matches(),
                });
            }
            Event::Change { change, reply } => match self.raft.change_membership(change) {
                Ok((index, term)) => {
                    let deadline = Instant::now() + self.cfg.request_timeout;
                    let pending = PendingChange {
                        term,
                        deadline,
                        reply,
                    };
                    if let Some(old) = self.changes.insert(index, pending) {
                        let _ = old.reply.send(ChangeResult::Unknown("leadership changed"));
                    }
                }
                Err(e) => {
                    let _ = reply.send(ChangeResult::Refused(e, self.leader_hint()));
                }
            },
            Event::Transfer { to, reply } => {
                let res = self
                    .raft
                    .transfer_leadership(to)
                    .map_err(|e| (e, self.leader_hint()));
                let _ = reply.send(res);
            }
        }
    }

    /// Hands the outbox the address of every member a configuration added with one.
    fn learn_addresses(&mut self) {
        let me = self.raft.id();
        let fresh: Vec<(NodeId, String)> = self
            .raft
            .members()
            .addresses
            .iter()
            .filter(|(&id, a)| id != me && self.learned.get(&id) != Some(*a))
            .map(|(&id, a)| (id, a.clone()))
            .collect();
        for (id, addr) in fresh {
            self.outbox.learn(id, &addr);
            self.learned.insert(id, addr);
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
            for c in self.changes.values_mut() {
                c.deadline = c.deadline.min(grace);
            }
        }
        self.was_leader = is_leader;
        let why = if is_leader {
            "timed out waiting for commit"
        } else {
            "leadership lost"
        };
        for w in take_due(&mut self.writes, now, |w| w.deadline) {
            let _ = w.reply.send(WriteResult::Unknown(why));
        }
        for c in take_due(&mut self.changes, now, |c| c.deadline) {
            let _ = c.reply.send(ChangeResult::Unknown(why));
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
        if self.join_seen.is_some() {
            self.log_join();
        }
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

    /// Says once how the node joined, and while joining, which members it waits for.
    fn log_join(&mut self) {
        match self.raft.joining_waits_for() {
            Some(waiting) if self.join_seen.as_ref() != Some(&waiting) => {
                tracing::info!(
                    ?waiting,
                    "joining: this node has no state; it takes part once every member has \
                     said what it holds"
                );
                self.join_seen = Some(waiting);
            }
            Some(_) => {}
            None => {
                let status = self.raft.status();
                match self.raft.founded() {
                    Some(true) => tracing::info!("founded a new cluster: every member was new"),
                    Some(false) => tracing::warn!(
                        term = status.term,
                        floor = ?status.catching_up_to,
                        "rejoined with an empty disk: adopted the members' highest term with \
                         its vote spent, and votes for no log behind the floor until it holds it"
                    ),
                    None => {}
                }
                self.join_seen = None;
            }
        }
    }

    /// Carries out one `Ready` in the order that makes the node safe, as etcd-raft's
    /// Ready loop does: persist, send, apply the snapshot, apply entries, answer reads.
    fn process_ready(&mut self) -> Result<(), StorageError> {
        self.log_role_change();
        let mut ready = self.raft.ready();
        if ready.is_empty() {
            return Ok(());
        }
        self.persist(&mut ready)?;
        self.learn_addresses();
        self.outbox.send(std::mem::take(&mut ready.messages));
        if self.cfg.bugs.ack_before_commit {
            self.ack_unreplicated(&ready.entries);
        }
        if let Some(snap) = ready.snapshot.take() {
            self.apply_snapshot(snap);
        }
        self.apply_entries(std::mem::take(&mut ready.committed));
        self.answer_reads(ready.read_states, ready.failed_reads);
        if self.applied - self.snapshot_index >= self.cfg.snapshot_threshold {
            self.take_snapshot()?;
        }
        Ok(())
    }

    /// Makes the hard state, a received snapshot and new entries durable (one fsync).
    fn persist(&mut self, ready: &mut Ready) -> Result<(), StorageError> {
        if self.cfg.bugs.forget_vote {
            if let Some(hs) = ready.hard_state.as_mut() {
                hs.vote = None;
            }
        }
        if ready.hard_state.is_none() && ready.snapshot.is_none() && ready.entries.is_empty() {
            return Ok(());
        }
        let storage = &mut self.storage;
        tokio::task::block_in_place(|| {
            storage.persist(ready.hard_state, ready.snapshot.as_ref(), &ready.entries)
        })
    }

    /// The `ack-before-commit` seeded bug: acknowledge blind writes as soon as they are in
    /// the local log.
    fn ack_unreplicated(&mut self, entries: &[Entry]) {
        for e in entries {
            if self
                .writes
                .get(&e.index)
                .is_some_and(|w| w.term == e.term && w.blind)
            {
                let w = self.writes.remove(&e.index).expect("checked");
                let _ = w
                    .reply
                    .send(WriteResult::Done(ApplyResult::Applied { previous: None }));
            }
        }
    }

    /// Replaces the state machine with a snapshot from the leader.
    fn apply_snapshot(&mut self, snap: Snapshot) {
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
        let covered: Vec<Index> = self.changes.range(..=snap.index).map(|(&i, _)| i).collect();
        for i in covered {
            let c = self.changes.remove(&i).expect("listed above");
            let _ = c
                .reply
                .send(ChangeResult::Unknown("replaced by a snapshot"));
        }
    }

    /// Applies committed entries and answers their writers: `Done` when the entry at the
    /// write's index has the write's term, `Dropped` when another leader's entry took it.
    fn apply_entries(&mut self, committed: Vec<Entry>) {
        for entry in committed {
            debug_assert_eq!(entry.index, self.applied + 1);
            self.applied = entry.index;
            if let Some(c) = self.changes.remove(&entry.index) {
                let result = match &entry.payload {
                    Payload::Members(m) if c.term == entry.term => ChangeResult::Done(m.clone()),
                    _ => ChangeResult::Dropped,
                };
                let _ = c.reply.send(result);
            }
            let applied = match entry.payload {
                Payload::Noop | Payload::Members(_) => None,
                Payload::Command(bytes) => match Command::decode(&bytes) {
                    Ok(cmd) => Some(self.kv.apply(cmd)),
                    Err(e) => {
                        tracing::error!(index = entry.index, "undecodable command skipped: {e}");
                        None
                    }
                },
            };
            if let Some(w) = self.writes.remove(&entry.index) {
                let result = match applied {
                    Some(a) if w.term == entry.term => WriteResult::Done(a),
                    _ => WriteResult::Dropped,
                };
                let _ = w.reply.send(result);
            }
        }
    }

    /// Answers reads whose leadership was confirmed, once the state machine has reached
    /// their index; fails reads that can no longer be confirmed here.
    fn answer_reads(&mut self, confirmed: Vec<ReadState>, failed: Vec<u64>) {
        for rs in confirmed {
            if let Some(r) = self.reads.remove(&rs.id) {
                self.reads_ready.insert((rs.index, rs.id), r);
            }
        }
        while let Some(entry) = self.reads_ready.first_entry() {
            if entry.key().0 > self.applied {
                break;
            }
            let r = entry.remove();
            let _ = r.reply.send(answer(&self.kv, &r.key));
        }
        if !failed.is_empty() {
            let hint = self.leader_hint();
            for id in failed {
                if let Some(r) = self.reads.remove(&id) {
                    let _ = r.reply.send(ReadResult::NotLeader(hint.clone()));
                }
            }
        }
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
            members: Some(self.raft.members_at(index)),
        };
        let storage = &mut self.storage;
        tokio::task::block_in_place(|| storage.save_snapshot(&snap))?;
        tracing::debug!(index, term, bytes = snap.data.len(), "snapshot taken");
        self.raft.compact(snap);
        self.snapshot_index = index;
        Ok(())
    }
}

/// The driver's answers, checked in-process: a real core and real storage in a temporary
/// directory, peers played by hand, and a fake outbox that records what would be sent.
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::raft::{Append, Body, Config, Heartbeat, Payload, Recovered, Vote, VoteResponse};

    #[derive(Clone, Default)]
    struct FakeOutbox(Arc<Mutex<Vec<Message>>>);

    impl Outbox for FakeOutbox {
        fn send(&mut self, msgs: Vec<Message>) {
            self.0.lock().unwrap().extend(msgs);
        }
    }

    impl FakeOutbox {
        fn take(&self) -> Vec<Message> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);
    const GRACE: Duration = Duration::from_secs(1);

    /// Node 1 of a cluster of `n`, on fresh storage.
    fn driver(dir: &std::path::Path, n: u64) -> (Driver<FakeOutbox>, FakeOutbox) {
        let (storage, recovered, _) = Storage::open(dir).unwrap();
        assert_eq!(recovered.entries.len(), 0);
        let raft = Raft::new(Config::new(1, (2..=n).collect()), Recovered::default()).unwrap();
        let cfg = DriverConfig {
            tick: Duration::from_millis(10),
            request_timeout: TIMEOUT,
            lost_leader_grace: GRACE,
            snapshot_threshold: 1_000_000,
            api_addr: "127.0.0.1:1".into(),
            catch_up_ticks: false,
            bugs: NodeBugs::default(),
        };
        let outbox = FakeOutbox::default();
        let d = Driver::new(cfg, raft, storage, KvStore::default(), 0, outbox.clone());
        (d, outbox)
    }

    fn peer(d: &mut Driver<FakeOutbox>, from: NodeId, term: Term, body: Body) {
        let m = Message {
            from,
            to: 1,
            term,
            body,
        };
        d.handle(Event::Peer(Inbound {
            msgs: vec![m],
            from_api: None,
        }));
        d.process_ready().unwrap();
    }

    /// Ticks until node 1 asks for (pre-)votes, then grants them from node 2: node 1 leads.
    fn elect(d: &mut Driver<FakeOutbox>, outbox: &FakeOutbox) -> Term {
        for _ in 0..1000 {
            d.raft.tick();
            d.process_ready().unwrap();
            if d.raft.role() != Role::Follower {
                break;
            }
        }
        if d.raft.role() != Role::Leader {
            let pre = outbox.take();
            assert!(pre
                .iter()
                .any(|m| matches!(&m.body, Body::Vote(Vote { pre_vote: true, .. }))));
            let granted = VoteResponse {
                pre_vote: true,
                granted: true,
            };
            peer(d, 2, d.raft.term() + 1, Body::VoteResponse(granted));
            let granted = VoteResponse {
                pre_vote: false,
                granted: true,
            };
            peer(d, 2, d.raft.term(), Body::VoteResponse(granted));
        }
        assert_eq!(d.raft.role(), Role::Leader);
        // The driver notices leadership on its tick, as it does when running.
        d.expire(Instant::now());
        outbox.take();
        d.raft.term()
    }

    fn write(d: &mut Driver<FakeOutbox>, cmd: Command) -> oneshot::Receiver<WriteResult> {
        let (reply, rx) = oneshot::channel();
        d.handle(Event::Write { cmd, reply });
        d.process_ready().unwrap();
        rx
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_committed_write_is_done_and_a_failed_cas_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, outbox) = driver(dir.path(), 1);
        elect(&mut d, &outbox);
        let mut rx = write(&mut d, put("a", "1"));
        assert_eq!(
            rx.try_recv().unwrap(),
            WriteResult::Done(ApplyResult::Applied { previous: None })
        );
        let cas = Command::Cas {
            key: "a".into(),
            expected: Some("2".into()),
            value: "3".into(),
        };
        let mut rx = write(&mut d, cas);
        assert_eq!(
            rx.try_recv().unwrap(),
            WriteResult::Done(ApplyResult::CasMismatch {
                current: Some("1".into())
            })
        );
        let (reply, mut rx) = oneshot::channel();
        d.handle(Event::Read {
            key: "a".into(),
            reply,
        });
        d.process_ready().unwrap();
        assert_eq!(rx.try_recv().unwrap(), ReadResult::Value(Some("1".into())));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_is_sent_to_every_follower_and_done_once_a_majority_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, outbox) = driver(dir.path(), 3);
        let term = elect(&mut d, &outbox);
        let ack = |prev_log_index, match_index| {
            Body::AppendResponse(crate::raft::AppendResponse {
                prev_log_index,
                success: true,
                match_index,
                conflict_term: None,
                conflict_index: 0,
                read_ctx: 0,
            })
        };
        // Both followers take the no-op, so the leader streams to them.
        peer(&mut d, 2, term, ack(0, 1));
        peer(&mut d, 3, term, ack(0, 1));
        outbox.take();
        let mut rx = write(&mut d, put("a", "1"));
        assert!(rx.try_recv().is_err(), "no answer before a majority has it");
        // The entry left for both followers.
        let sent: Vec<NodeId> = outbox
            .take()
            .iter()
            .filter(
                |m| matches!(&m.body, Body::Append(a) if a.entries.iter().any(|e| e.index == 2)),
            )
            .map(|m| m.to)
            .collect();
        assert_eq!(sent, vec![2, 3]);
        peer(&mut d, 2, term, ack(1, 2));
        assert_eq!(
            rx.try_recv().unwrap(),
            WriteResult::Done(ApplyResult::Applied { previous: None })
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_whose_entry_another_leader_replaced_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, outbox) = driver(dir.path(), 3);
        let term = elect(&mut d, &outbox);
        let mut rx = write(&mut d, put("a", "1"));
        // Node 2 leads a later term: its log has our no-op at 1 but its own entry at 2.
        let noop = |index, term| Entry {
            index,
            term,
            payload: Payload::Noop,
        };
        let append = Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![noop(1, term), noop(2, term + 1)],
            leader_commit: 2,
            read_ctx: 0,
        };
        peer(&mut d, 2, term + 1, Body::Append(append));
        assert_eq!(rx.try_recv().unwrap(), WriteResult::Dropped);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_in_flight_when_leadership_is_lost_is_unknown_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, outbox) = driver(dir.path(), 3);
        let term = elect(&mut d, &outbox);
        let mut rx = write(&mut d, put("a", "1"));
        let hb = Heartbeat {
            commit: 0,
            read_ctx: 0,
        };
        peer(&mut d, 2, term + 1, Body::Heartbeat(hb));
        let now = Instant::now();
        d.expire(now);
        assert!(rx.try_recv().is_err(), "the entry may still commit: wait");
        d.expire(now + GRACE);
        assert_eq!(
            rx.try_recv().unwrap(),
            WriteResult::Unknown("leadership lost")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_not_committed_in_time_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, outbox) = driver(dir.path(), 3);
        elect(&mut d, &outbox);
        let mut rx = write(&mut d, put("a", "1"));
        d.expire(Instant::now());
        assert!(rx.try_recv().is_err());
        d.expire(Instant::now() + TIMEOUT);
        assert_eq!(
            rx.try_recv().unwrap(),
            WriteResult::Unknown("timed out waiting for commit")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_follower_refuses_writes_and_reads_without_taking_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, _outbox) = driver(dir.path(), 3);
        let hb = Heartbeat {
            commit: 0,
            read_ctx: 0,
        };
        peer(&mut d, 3, 1, Body::Heartbeat(hb));
        let mut rx = write(&mut d, put("a", "1"));
        let hint = LeaderHint { id: 3, api: None };
        assert_eq!(
            rx.try_recv().unwrap(),
            WriteResult::NotLeader(Some(hint.clone()))
        );
        assert_eq!(d.raft.log().last_index(), 0, "nothing entered the log");
        let (reply, mut rx) = oneshot::channel();
        d.handle(Event::Read {
            key: "a".into(),
            reply,
        });
        assert_eq!(rx.try_recv().unwrap(), ReadResult::NotLeader(Some(hint)));
    }
}
