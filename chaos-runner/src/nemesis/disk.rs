//! Faults of the disk, through the lazy layer under every node (`cluster::disk`):
//! `disk-full` and `slow-fsync` are spells of a full disk (ENOSPC) and of slow fsyncs;
//! `lose-unsynced` is a power loss. The nodes are SIGKILLed and their disks crash,
//! throwing away what they had written but not fsynced (data, and creates, removes and
//! renames whose folder was not fsynced); they restart when the fault ends. Unlike a
//! kill, which leaves the page cache intact, this catches a node that acknowledges
//! before its data is durable.

use anyhow::{Context, Result};
use checker::record::{DiskLoss, FaultDetails};
use lazyfs::fs::DiskFaults;

use super::{Env, Fault, FaultKind, Planned, Target};
use crate::fabric::Fabric;

pub struct PowerLoss {
    target: Target,
    nodes: Vec<u64>,
    lost: Vec<DiskLoss>,
}

impl Fault for PowerLoss {
    /// The layer runs on this machine: any links here, not hosts over ssh (the layer is
    /// not installed there).
    fn carried_by(_: FaultKind, fabric: &Fabric) -> bool {
        fabric.on_this_machine()
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let nodes = env.targets(p).await;
        let mut c = env.cluster.lock().await;
        // Every chosen node goes down first, as in one power cut, then each disk.
        for &n in &nodes {
            tokio::task::block_in_place(|| c.kill(n));
        }
        let mut lost = Vec::new();
        for &n in &nodes {
            let r = tokio::task::block_in_place(|| c.crash_disk(n))
                .with_context(|| format!("power loss on node {n}"))?;
            if let Some(e) = &r.error {
                crate::console::say!("warning: node {n}'s disk crash: {e}");
            }
            lost.push(DiskLoss {
                node: n,
                lost_bytes: r.lost_bytes,
                files_with_lost_data: r.files_with_lost_data,
                names_undone: r.names_undone,
            });
        }
        Ok(PowerLoss {
            target: p.target,
            nodes,
            lost,
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        env.restart(&self.nodes).await
    }

    fn describe(&self) -> String {
        let bytes: u64 = self.lost.iter().map(|l| l.lost_bytes).sum();
        let names: u64 = self.lost.iter().map(|l| l.names_undone).sum();
        format!(
            "lose-unsynced {} {:?} ({bytes} unsynced bytes and {names} name changes lost)",
            self.target.name(),
            self.nodes
        )
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            target: Some(self.target),
            disk: self.lost.clone(),
            ..FaultDetails::default()
        }
    }
}

/// A spell of a full disk or of slow fsyncs on some nodes.
pub struct DiskSpell {
    kind: FaultKind,
    target: Target,
    nodes: Vec<u64>,
    faults: DiskFaults,
}

impl Fault for DiskSpell {
    fn carried_by(kind: FaultKind, fabric: &Fabric) -> bool {
        PowerLoss::carried_by(kind, fabric)
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let nodes = env.targets(p).await;
        let faults = match p.kind {
            FaultKind::DiskFull => DiskFaults {
                full: true,
                ..DiskFaults::default()
            },
            // 50 to 500 ms, drawn from the plan's pick so a seed replays it.
            _ => DiskFaults {
                fsync_delay_ms: 50 + p.pick % 451,
                ..DiskFaults::default()
            },
        };
        let mut c = env.cluster.lock().await;
        for &n in &nodes {
            c.set_disk_faults(n, faults)?;
        }
        Ok(DiskSpell {
            kind: p.kind,
            target: p.target,
            nodes,
            faults,
        })
    }

    /// Ends the spell; a node that stopped because of it (a server may exit rather than
    /// go on without its disk) is started again, as after a kill.
    async fn stop(&self, env: &Env) -> Result<()> {
        let mut c = env.cluster.lock().await;
        for &n in &self.nodes {
            c.set_disk_faults(n, DiskFaults::default())?;
            if !c.is_running(n) || c.exited(n).is_some() {
                tokio::task::block_in_place(|| c.start(n))?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match self.kind {
            FaultKind::SlowFsync => format!(
                "slow-fsync {} {:?} ({} ms)",
                self.target.name(),
                self.nodes,
                self.faults.fsync_delay_ms
            ),
            k => format!("{} {} {:?}", k.name(), self.target.name(), self.nodes),
        }
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            target: Some(self.target),
            fsync_delay_ms: (self.faults.fsync_delay_ms > 0).then_some(self.faults.fsync_delay_ms),
            ..FaultDetails::default()
        }
    }
}
