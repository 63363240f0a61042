//! Partitions: links cut following a grudge, half the time refusing connections (fast
//! failure), half the time swallowing them (timeouts fire).

use anyhow::Result;
use checker::record::{CutMode, FaultDetails};

use super::picks::{grudge, Grudge};
use super::{Env, Fault, FaultKind, Planned, Shape};
use crate::fabric::Fabric;
use crate::links::LinkMode;

/// The sides of a partition, in the words the report uses too.
fn sides(nodes: &[u64], grudge: &Grudge) -> String {
    checker::record::partition_sides(nodes, |a| {
        grudge
            .get(&a)
            .map(|d| d.iter().copied().collect())
            .unwrap_or_default()
    })
}

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

    /// Names the sides: `partition isolate [3] | [1, 2] (cut)`; a shape whose sides
    /// overlap (a ring, a bridge) lists whom each node cannot hear.
    fn describe(&self) -> String {
        format!(
            "partition {} {} ({})",
            self.shape.name(),
            sides(&self.nodes, &self.grudge),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sides_name_the_nodes() {
        let nodes = [1, 2, 3, 4, 5];
        let mut g = Grudge::new();
        for (a, deaf) in [
            (3, vec![1, 2, 4, 5]),
            (1, vec![3]),
            (2, vec![3]),
            (4, vec![3]),
            (5, vec![3]),
        ] {
            g.insert(a, deaf.into_iter().collect());
        }
        assert_eq!(sides(&nodes, &g), "[3] | [1, 2, 4, 5]");
        // A bridge: 3 hears both sides, which do not hear each other.
        let mut g = Grudge::new();
        for (a, deaf) in [
            (1, vec![4, 5]),
            (2, vec![4, 5]),
            (4, vec![1, 2]),
            (5, vec![1, 2]),
        ] {
            g.insert(a, deaf.into_iter().collect());
        }
        assert_eq!(
            sides(&nodes, &g),
            "1 hears not 4, 5; 2 hears not 4, 5; 4 hears not 1, 2; 5 hears not 1, 2"
        );
    }
}
