//! What faults act on: the cluster, its links, how to ask who leads, and the state some
//! faults keep over a run (which nodes `corrupt` has damaged).

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::{CorruptPlan, Planned, Target};
use crate::cluster::{find_leader_of, Cluster, Server};
use crate::links::Network;

/// What faults act on.
pub struct Env {
    pub cluster: Arc<tokio::sync::Mutex<Cluster>>,
    /// The per-link proxies; `None` for servers that cannot use them (etcd).
    pub net: Option<Arc<Network>>,
    /// Every node's id and client API address.
    pub apis: Vec<(u64, String)>,
    /// Every node's id and where to ask it who leads.
    pub probes: Vec<(u64, String)>,
    /// How to reach them (plain, or TLS).
    pub access: crate::tls::ApiAccess,
    /// How to ask who leads.
    pub server: Arc<dyn Server>,
    /// The history's clock starts here (times in fault records count from it).
    pub epoch: std::time::Instant,
    /// The nodes `corrupt` has damaged so far (at most `corrupt.limit`: Jepsen's helix),
    /// and what it may do.
    pub corrupted: Mutex<std::collections::BTreeSet<u64>>,
    pub corrupt: CorruptPlan,
    /// Nodes `wipe` emptied that have not yet been seen rejoined and caught up.
    pub wiped: Mutex<std::collections::BTreeSet<u64>>,
    /// netns mode's namespaces and switch, or ssh mode's hosts: they live as long as
    /// the cluster (and are dropped after it).
    pub _hosting: crate::cluster::Hosting,
}

impl Env {
    /// The proxies, for faults of the network.
    pub(super) fn net(&self) -> Result<&Network> {
        self.net
            .as_deref()
            .context("this fault needs links the runner controls, which this server does not use")
    }

    /// Which of `wanted` a corruption may damage: nodes already damaged, and new ones
    /// while the run's limit allows. The others are spared (the fault takes them down
    /// and up, as a kill): were a damaged node to stand in for them, it would be damaged
    /// again and again until it refused to start, and never get to serve what its
    /// first damage did.
    pub(super) fn corruptible(&self, wanted: &[u64]) -> Vec<u64> {
        let mut set = self.corrupted.lock().expect("corrupted nodes");
        let mut out = Vec::new();
        for &n in wanted {
            if set.contains(&n) || set.len() < self.corrupt.limit {
                set.insert(n);
                out.push(n);
            }
        }
        out
    }

    /// The nodes whose data is gone for now: wiped ones that have not rejoined and caught
    /// up yet, as far as the server can tell ([`Server::rejoined`]; one that cannot tell
    /// counts as rejoined once it runs), and damaged ones (`corrupt`) that do not run (a
    /// correct server refuses to start on damage, and stays down).
    pub(super) async fn still_lost(&self) -> Vec<u64> {
        let set = |s: &Mutex<std::collections::BTreeSet<u64>>| -> Vec<u64> {
            s.lock().expect("node set").iter().copied().collect()
        };
        let (wiped, damaged) = (set(&self.wiped), set(&self.corrupted));
        let mut lost: Vec<u64> = {
            let c = self.cluster.lock().await;
            damaged.into_iter().filter(|&n| !c.is_running(n)).collect()
        };
        for n in wiped {
            let probe = self
                .probes
                .iter()
                .find(|(i, _)| *i == n)
                .map(|(_, a)| a.as_str());
            let back = match probe {
                Some(addr) => self.server.rejoined(&self.access, addr).await,
                None => Some(true),
            };
            let running = self.cluster.lock().await.is_running(n);
            if back == Some(true) || (back.is_none() && running) {
                self.wiped.lock().expect("wiped nodes").remove(&n);
            } else if !lost.contains(&n) {
                lost.push(n);
            }
        }
        lost
    }

    /// The nodes a kill-like fault of plan `p` hits (asking who leads if it aims there).
    pub(super) async fn targets(&self, p: &Planned) -> Vec<u64> {
        let leader = self.leader_for(p).await;
        super::picks::choose_nodes(p, &self.ids(), leader)
    }

    /// Starts `nodes` again (a no-op for those running): the end of every fault that
    /// took nodes down.
    pub(super) async fn restart(&self, nodes: &[u64]) -> Result<()> {
        let mut c = self.cluster.lock().await;
        for &n in nodes {
            tokio::task::block_in_place(|| c.start(n))?;
        }
        Ok(())
    }

    pub(super) fn ids(&self) -> Vec<u64> {
        self.apis.iter().map(|(i, _)| *i).collect()
    }

    /// Who leads now, when the plan aims at the leader (asking costs a round trip).
    pub(super) async fn leader_for(&self, p: &Planned) -> Option<u64> {
        if p.target == Target::Leader {
            find_leader_of(&*self.server, &self.access, &self.probes).await
        } else {
            None
        }
    }
}
