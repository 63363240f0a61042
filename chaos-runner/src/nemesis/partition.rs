//! Partitions: links cut following a grudge, half the time refusing connections (fast
//! failure), half the time swallowing them (timeouts fire).

use anyhow::Result;
use checker::record::FaultDetails;

use super::schedule::{grudge, Grudge};
use super::{Env, Fault, Planned, Shape};
use crate::proxy::LinkMode;

pub struct PartitionFault {
    shape: Shape,
    mode: LinkMode,
    grudge: Grudge,
    nodes: Vec<u64>,
}

impl PartitionFault {
    fn mode_name(&self) -> &'static str {
        if self.mode == LinkMode::Cut {
            "cut"
        } else {
            "black-hole"
        }
    }
}

impl Fault for PartitionFault {
    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let nodes = env.ids();
        let g = grudge(p, &nodes, env.leader_for(p).await);
        let mode = if p.pick.is_multiple_of(2) {
            LinkMode::Cut
        } else {
            LinkMode::BlackHole
        };
        let net = env.net()?;
        for (a, deaf) in &g {
            for b in deaf {
                // a does not hear b: the link b -> a fails.
                net.cut(*b, *a, mode);
            }
        }
        Ok(PartitionFault {
            shape: p.shape,
            mode,
            grudge: g,
            nodes,
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        env.net()?.uncut_all();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("partition {} ({})", self.shape.name(), self.mode_name())
    }

    fn details(&self) -> FaultDetails {
        let grudge = self
            .grudge
            .iter()
            .map(|(a, deaf)| (a.to_string(), deaf.iter().copied().collect()))
            .collect();
        FaultDetails {
            nodes: self.nodes.clone(),
            shape: Some(self.shape.name().into()),
            mode: Some(self.mode_name().into()),
            grudge: Some(grudge),
            ..FaultDetails::default()
        }
    }
}
