//! Partitions: links cut following a grudge, half the time refusing connections (fast
//! failure), half the time swallowing them (timeouts fire).

use anyhow::Result;
use checker::record::{CutMode, FaultDetails};

use super::picks::{grudge, Grudge};
use super::{Env, Fault, FaultKind, Planned, Shape};
use crate::fabric::Fabric;
use crate::links::LinkMode;

pub struct PartitionFault {
    shape: Shape,
    mode: LinkMode,
    grudge: Grudge,
    nodes: Vec<u64>,
}

impl PartitionFault {
    fn cut_mode(&self) -> CutMode {
        if self.mode == LinkMode::Cut {
            CutMode::Cut
        } else {
            CutMode::BlackHole
        }
    }
}

impl Fault for PartitionFault {
    /// Any links the runner stands in: proxies, the switch, the hosts' firewalls.
    fn carried_by(_: FaultKind, fabric: &Fabric) -> bool {
        !matches!(fabric, Fabric::Direct)
    }

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
        format!(
            "partition {} ({})",
            self.shape.name(),
            self.cut_mode().name()
        )
    }

    fn details(&self) -> FaultDetails {
        let grudge = self
            .grudge
            .iter()
            .map(|(a, deaf)| (a.to_string(), deaf.iter().copied().collect()))
            .collect();
        FaultDetails {
            nodes: self.nodes.clone(),
            shape: Some(self.shape),
            mode: Some(self.cut_mode()),
            grudge: Some(grudge),
            ..FaultDetails::default()
        }
    }
}
