//! The core's tunables and the seeded bugs it can be built with.

use std::collections::BTreeSet;

use super::{Membership, NodeId};

/// Tunables of the core, all in ticks (the driver decides how long a tick is).
#[derive(Debug, Clone)]
pub struct Config {
    pub id: NodeId,
    /// The other servers this node knows of at start (its address book). A node with no
    /// state asks each of them whether the cluster exists (`join.rs`).
    pub peers: Vec<NodeId>,
    /// The voters of a new cluster, until the log says otherwise; `None`: this node and
    /// every peer. A server started to be added later lists the existing voters here, so
    /// it never counts itself a voter before the cluster made it one.
    pub voters: Option<Vec<NodeId>>,
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
    /// How a leader makes sure a read is linearizable.
    pub read_mode: ReadMode,
    /// Says whether a received snapshot's bytes are a state the state machine can load.
    /// A snapshot that fails it (or its checksum) is discarded before anything is
    /// persisted, so a bad or forged snapshot can never replace the node's state.
    pub snapshot_check: fn(&[u8]) -> bool,
    /// Deliberate protocol violations, for proving that tests catch them. Never set in
    /// production; `raft-node --unsafe-bug` is the only way in.
    pub bugs: CoreBugs,
}

/// How a leader serves a linearizable read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex (§6.4): each read waits for a majority to confirm, after it arrived,
    /// that this node still leads. Correct whatever the clocks do.
    #[default]
    Index,
    /// A leader lease (§6.4.1, etcd-raft's `ReadOnlyLeaseBased`): for [`Config::lease_ticks`]
    /// after a majority confirmed it, the leader answers reads at once, relying on its
    /// followers to refuse votes for an election timeout after they heard from it. Correct
    /// only while no node's clock runs more than 10% faster than another's and no clock
    /// jumps; a node also refuses votes for an election timeout after it starts, so a
    /// restarted follower cannot help elect a rival inside the lease.
    Lease,
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
    /// A leader accepts a membership change while the previous one has not committed,
    /// and before it committed an entry of its own term.
    pub unsafe_membership: bool,
}

impl Config {
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Self {
        Config {
            id,
            peers,
            voters: None,
            election_ticks_min: 30,
            election_ticks_max: 60,
            heartbeat_ticks: 5,
            max_append_entries: 1024,
            max_append_bytes: 4 << 20,
            max_inflight: 64,
            snapshot_chunk_bytes: 1 << 20,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::Index,
            seed: id,
            snapshot_check: |_| true,
            bugs: CoreBugs::default(),
        }
    }

    /// The configuration of a new cluster (see [`Config::voters`]).
    pub fn initial_members(&self) -> Membership {
        match &self.voters {
            Some(v) => Membership::of_voters(v.iter().copied()),
            None => Membership::of_voters(self.peers.iter().copied().chain([self.id])),
        }
    }

    /// How many of its ticks a leader's lease lasts after the majority round that
    /// renewed it began: the shortest election timeout less a tenth (the drift bound
    /// [`ReadMode::Lease`] states), and never less than one tick.
    pub fn lease_ticks(&self) -> u32 {
        let margin = self.election_ticks_min.div_ceil(10);
        self.election_ticks_min.saturating_sub(margin).max(1)
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
        if let Some(v) = &self.voters {
            let unique: BTreeSet<_> = v.iter().collect();
            if v.is_empty() || unique.len() != v.len() {
                return Err("the voters must be a non-empty list of distinct ids".into());
            }
            if let Some(x) = v
                .iter()
                .find(|&&x| x != self.id && !self.peers.contains(&x))
            {
                return Err(format!("voter {x} is not among the peers"));
            }
        }
        if self.heartbeat_ticks == 0 || self.election_ticks_min <= self.heartbeat_ticks {
            return Err("the election timeout must be longer than the heartbeat interval".into());
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return Err("the election timeout range is empty".into());
        }
        if self.read_mode == ReadMode::Lease && !self.check_quorum {
            return Err(
                "lease reads need check-quorum: followers must refuse votes while a \
                        leader's lease may hold"
                    .into(),
            );
        }
        if self.max_append_entries == 0 || self.max_inflight == 0 || self.snapshot_chunk_bytes == 0
        {
            return Err("message size limits must be positive".into());
        }
        Ok(())
    }
}
