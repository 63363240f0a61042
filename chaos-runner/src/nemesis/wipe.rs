//! `wipe`: a lost disk. The fault kills the nodes its target names (as `kill` would:
//! one, the leader, a minority, a majority, every node), deletes every file in the data
//! directory of a minority of them, and restarts them all when it ends, the wiped ones
//! on empty directories under their old ids and addresses, as an operator who swapped a
//! dead disk would restart them. A kill of every node with one disk lost is the
//! datacenter power cut after which one machine comes back without its data.
//!
//! A correct server must tell this from a new member and rejoin without breaking
//! anything (raft-node asks every member first: raft-node/src/raft/join.rs). What a
//! majority of lost disks forgets no system can recover, so a wipe never takes more than
//! a minority; and a node whose disk was lost counts as lost until it has rejoined and
//! caught up (the server says so where it can: [`Server::rejoined`]), as does a node that
//! `corrupt` damaged and that does not run, so a second loss waits for the first to heal
//! rather than lose a majority in two steps.

use std::path::Path;

use anyhow::{Context, Result};
use checker::record::{FaultDetails, Wiped};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::process::ProcessFault;
use super::{Env, Fault, FaultKind, Planned};
use crate::fabric::Fabric;

pub struct WipeFault {
    /// The kill under it: all at once, or staggered (the last to die may hold writes
    /// the first did not see, and the first back may elect a leader before the rest).
    kill: ProcessFault,
    done: Vec<Wiped>,
}

/// Deletes everything under `dir` (not `dir` itself), then syncs it; how many files and
/// bytes went.
pub(super) fn empty_dir(dir: &Path) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for e in entries {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = e.path();
        let meta = e.metadata()?;
        if meta.is_dir() {
            let (f, b) = empty_dir(&path)?;
            files += f;
            bytes += b;
            std::fs::remove_dir(&path)
        } else {
            files += 1;
            bytes += meta.len();
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("cannot delete {}", path.display()))?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok((files, bytes))
}

/// For each node of `order`, in turn: whether it may lose its disk (an empty list) or
/// must be spared because of the nodes listed, those whose lost disks have not caught up
/// (`lost`, then the ones this wipe takes): lost disks stay at most `limit`.
fn which_lose_their_disks(order: &[u64], mut lost: Vec<u64>, limit: usize) -> Vec<(u64, Vec<u64>)> {
    let mut out = Vec::new();
    for &n in order {
        lost.retain(|&x| x != n);
        if lost.len() < limit {
            lost.push(n);
            out.push((n, Vec::new()));
        } else {
            out.push((n, lost.clone()));
        }
    }
    out
}

impl Fault for WipeFault {
    /// The files are on this machine: any links here, not hosts over ssh.
    fn carried_by(_: FaultKind, fabric: &Fabric) -> bool {
        fabric.on_this_machine()
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let lost = env.still_lost().await;
        let kill = ProcessFault::start(p, env).await?;
        let nodes = kill.nodes().to_vec();
        // Which of them lose their disks: a minority of the cluster at most (one in a
        // cluster of three), drawn from the plan's pick.
        let minority = (env.ids().len() - 1) / 2;
        let mut order = nodes.clone();
        order.shuffle(&mut StdRng::seed_from_u64(p.pick ^ 0x5749_5045));
        order.truncate(minority.max(1));
        let mut c = env.cluster.lock().await;
        let mut done = Vec::new();
        for (n, spared_for) in which_lose_their_disks(&order, lost, minority.max(1)) {
            if !spared_for.is_empty() {
                let names: Vec<String> = spared_for.iter().map(|x| format!("n{x}")).collect();
                done.push(Wiped {
                    node: n,
                    spared: format!(
                        "killed only: the data of {} is gone for now (a lost disk not caught \
                         up yet, or damage it does not start on), and a majority of lost \
                         data is more than any system can recover",
                        names.join(", ")
                    ),
                    ..Wiped::default()
                });
                continue;
            }
            let dir = c.durable_dir(n);
            let (files, bytes) = tokio::task::block_in_place(|| empty_dir(&dir))?;
            c.forget_started(n);
            env.wiped.lock().expect("wiped nodes").insert(n);
            done.push(Wiped {
                node: n,
                files,
                bytes,
                ..Wiped::default()
            });
        }
        Ok(WipeFault { kill, done })
    }

    /// The nodes restart, the wiped ones on empty directories (set-up commands run again
    /// first), in the kill's order when it was staggered.
    async fn stop(&self, env: &Env) -> Result<()> {
        self.kill.stop(env).await
    }

    fn describe(&self) -> String {
        let what: Vec<String> = self
            .done
            .iter()
            .map(|w| match w.spared.is_empty() {
                true => format!("n{} lost {} files, {} bytes", w.node, w.files, w.bytes),
                false => format!("n{} spared", w.node),
            })
            .collect();
        // The kill's words ("wipe every (staggered) [1, 2, 3]"), then what was lost.
        format!("{} ({})", self.kill.describe(), what.join(", "))
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            wiped: self.done.clone(),
            ..self.kill.details()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_disks_stay_a_minority() {
        // Five nodes: two may be lost at once.
        assert_eq!(
            which_lose_their_disks(&[1, 2], vec![], 2),
            [(1, vec![]), (2, vec![])]
        );
        // One has not caught up: only one more.
        assert_eq!(
            which_lose_their_disks(&[1, 2], vec![5], 2),
            [(1, vec![]), (2, vec![5, 1])]
        );
        // The node not caught up may lose its disk again: it counts once.
        assert_eq!(which_lose_their_disks(&[3], vec![3], 1), [(3, vec![])]);
        assert_eq!(which_lose_their_disks(&[3], vec![2], 1), [(3, vec![2])]);
    }

    #[test]
    fn emptying_a_directory_deletes_everything_under_it_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"12345").unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::write(dir.path().join("sub/b"), b"123").unwrap();
        std::fs::write(dir.path().join("sub/deeper/c"), b"1").unwrap();
        assert_eq!(empty_dir(dir.path()).unwrap(), (3, 9));
        assert!(dir.path().is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(empty_dir(&dir.path().join("gone")).unwrap(), (0, 0));
    }
}
