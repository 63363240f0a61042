//! Process faults: SIGKILL (restarted from the same data directory when the fault ends)
//! and SIGSTOP (SIGCONT when it ends).

use anyhow::Result;
use checker::record::FaultDetails;

use super::schedule::choose_nodes;
use super::{Env, Fault, FaultKind, Planned, Target};

/// Nodes killed or paused.
pub struct ProcessFault {
    kind: FaultKind,
    target: Target,
    nodes: Vec<u64>,
}

impl Fault for ProcessFault {
    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let leader = env.leader_for(p).await;
        let nodes = choose_nodes(p, &env.ids(), leader);
        let mut c = env.cluster.lock().await;
        for &n in &nodes {
            if p.kind == FaultKind::Kill {
                tokio::task::block_in_place(|| c.kill(n));
            } else {
                c.pause(n);
            }
        }
        Ok(ProcessFault {
            kind: p.kind,
            target: p.target,
            nodes,
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        let mut c = env.cluster.lock().await;
        for &n in &self.nodes {
            if self.kind == FaultKind::Kill {
                c.start(n)?;
            } else {
                c.resume(n);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {:?}",
            self.kind.name(),
            self.target.name(),
            self.nodes
        )
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            target: Some(self.target.name().into()),
            ..FaultDetails::default()
        }
    }
}
