//! Process faults: SIGKILL (restarted from the same data directory when the fault ends)
//! and SIGSTOP (SIGCONT when it ends). A staggered kill takes its nodes down one by one
//! and brings them back one by one ([`super::schedule::stagger`]).

use std::time::Duration;

use anyhow::Result;
use checker::record::{FaultDetails, NodeAt};
use tokio::time::Instant;

use super::picks::stagger;
use super::{Env, Fault, FaultKind, Planned, Target};
use crate::fabric::Fabric;

/// Nodes killed or paused (and the kill under a wipe: `wipe.rs`).
pub struct ProcessFault {
    kind: FaultKind,
    target: Target,
    nodes: Vec<u64>,
    /// Staggered kills: when each node goes down (from the start) and comes back (from
    /// the end). Empty when every chosen node goes and returns at once.
    kills: Vec<(u64, Duration)>,
    restarts: Vec<(u64, Duration)>,
}

impl ProcessFault {
    /// The nodes it took down or paused.
    pub fn nodes(&self) -> &[u64] {
        &self.nodes
    }
}

impl Fault for ProcessFault {
    /// Signals to processes: any links.
    fn carried_by(_: FaultKind, _: &Fabric) -> bool {
        true
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let nodes = env.targets(p).await;
        let kill = matches!(p.kind, FaultKind::Kill | FaultKind::Wipe);
        let (kills, restarts) = if kill && p.staggered && nodes.len() > 1 {
            let s = stagger(p, &nodes);
            (s.kills, s.restarts)
        } else {
            (Vec::new(), Vec::new())
        };
        if kills.is_empty() {
            let mut c = env.cluster.lock().await;
            for &n in &nodes {
                if kill {
                    tokio::task::block_in_place(|| c.kill(n));
                } else {
                    c.pause(n);
                }
            }
        } else {
            // The cluster's lock is taken per step, so nothing else waits out the gaps.
            let t0 = Instant::now();
            for &(n, at) in &kills {
                tokio::time::sleep_until(t0 + at).await;
                let mut c = env.cluster.lock().await;
                tokio::task::block_in_place(|| c.kill(n));
            }
        }
        Ok(ProcessFault {
            kind: p.kind,
            target: p.target,
            nodes,
            kills,
            restarts,
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        if !self.restarts.is_empty() {
            let t0 = Instant::now();
            for &(n, at) in &self.restarts {
                tokio::time::sleep_until(t0 + at).await;
                env.cluster.lock().await.start(n)?;
            }
            return Ok(());
        }
        let mut c = env.cluster.lock().await;
        for &n in &self.nodes {
            if self.kind != FaultKind::Pause {
                c.start(n)?;
            } else {
                c.resume(n);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{} {}{} {:?}",
            self.kind.name(),
            self.target.name(),
            if self.kills.is_empty() {
                ""
            } else {
                " (staggered)"
            },
            self.nodes
        )
    }

    fn details(&self) -> FaultDetails {
        let steps = |s: &[(u64, Duration)]| {
            s.iter()
                .map(|&(node, at)| NodeAt {
                    node,
                    at_ms: at.as_millis() as u64,
                })
                .collect()
        };
        FaultDetails {
            nodes: self.nodes.clone(),
            target: Some(self.target),
            kill_order: steps(&self.kills),
            restart_order: steps(&self.restarts),
            ..FaultDetails::default()
        }
    }
}
