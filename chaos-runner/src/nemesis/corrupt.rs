//! `corrupt`: while a node is down, one of its durable files (the server's own list,
//! `Server::durable_files`) is damaged the way disks and file systems damage files: bits
//! flipped, the file cut short, a block zeroed, a block written over another (a
//! misdirected write), or the file gone. The node then restarts on what is left.
//!
//! A correct server may refuse to start (saying why); it must never serve wrong data.
//! By default at most a minority of the nodes is ever corrupted over a whole run
//! (Jepsen's "helix"), so a correct cluster always keeps a majority of sound copies;
//! `--corrupt-any` lifts that.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use checker::record::{Corruption, FaultDetails};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Env, Fault, FaultKind, Planned, Target};
use crate::cluster::FileRole;
use crate::fabric::Fabric;

/// Which durable file a corruption aims at (`--corrupt-files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    NewestLog,
    OlderLog,
    Snapshot,
    Metadata,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::NewestLog,
        FileKind::OlderLog,
        FileKind::Snapshot,
        FileKind::Metadata,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileKind::NewestLog => "newest-log",
            FileKind::OlderLog => "older-log",
            FileKind::Snapshot => "snapshot",
            FileKind::Metadata => "metadata",
        }
    }

    pub fn parse(s: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// How a file is damaged (`--corrupt-changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One bit: the classic bit rot. Every checksum catches it; a format's structure
    /// often does not, so it is what shows a reader that skips its checksums.
    FlipBit,
    /// One to eight bits within 16 bytes: a burst.
    FlipBits,
    Truncate,
    ZeroBlock,
    CopyBlock,
    Delete,
}

impl Change {
    pub const ALL: [Change; 6] = [
        Change::FlipBit,
        Change::FlipBits,
        Change::Truncate,
        Change::ZeroBlock,
        Change::CopyBlock,
        Change::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Change::FlipBit => "flip-bit",
            Change::FlipBits => "flip-bits",
            Change::Truncate => "truncate",
            Change::ZeroBlock => "zero-block",
            Change::CopyBlock => "copy-block",
            Change::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What `corrupt` may do in a run.
#[derive(Debug, Clone)]
pub struct CorruptPlan {
    /// How many nodes it may ever damage: a minority, unless `--corrupt-any`.
    pub limit: usize,
    pub files: Vec<FileKind>,
    pub changes: Vec<Change>,
}

pub struct CorruptFault {
    target: Target,
    nodes: Vec<u64>,
    done: Vec<Corruption>,
}

/// The block a zeroing or a misdirected write acts on: a file system's page.
const BLOCK: u64 = 4096;

/// Whether `name` matches `pattern` (`*` stands for any run of characters).
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

/// The files a corruption may pick in `dir`, by kind: for the server's log patterns the
/// newest file (last by name) and, apart, the older ones; snapshots; metadata. A pattern
/// may name a subfolder (`member/wal/*.wal`).
fn candidates(dir: &Path, patterns: &[(&str, FileRole)]) -> Vec<(FileKind, Vec<PathBuf>)> {
    let mut kinds: Vec<(FileKind, Vec<PathBuf>)> = Vec::new();
    let mut add =
        |kind: FileKind, files: Vec<PathBuf>| match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, v)) => v.extend(files),
            None => kinds.push((kind, files)),
        };
    for (p, role) in patterns {
        let (sub, name) = match p.rsplit_once('/') {
            Some((sub, name)) => (dir.join(sub), name),
            None => (dir.to_path_buf(), *p),
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(&sub)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| matches(name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        found.sort();
        if found.is_empty() {
            continue;
        }
        match role {
            FileRole::Log => {
                let newest = found.pop().expect("not empty");
                add(FileKind::NewestLog, vec![newest]);
                if !found.is_empty() {
                    add(FileKind::OlderLog, found);
                }
            }
            FileRole::Snapshot => add(FileKind::Snapshot, found),
            FileRole::Metadata => add(FileKind::Metadata, found),
        }
    }
    kinds.sort_by_key(|(k, _)| *k);
    kinds
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Damages `path` in one of `changes` drawn from `rng`; returns what was done.
fn damage(path: &Path, changes: &[Change], rng: &mut StdRng) -> Result<Corruption> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = data.len() as u64;
    let mut c = Corruption {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Corruption::default()
    };
    // An empty file can only go (or, if deleting is not allowed, stays as it is).
    let change = if len == 0 {
        Change::Delete
    } else {
        changes[rng.gen_range(0..changes.len())]
    };
    if len == 0 && !changes.contains(&Change::Delete) {
        c.change = "none (empty file)".into();
        return Ok(c);
    }
    let write_at = |offset: u64, bytes: &[u8]| -> Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all_at(bytes, offset)?;
        f.sync_all()?;
        Ok(())
    };
    let window = |at: u64, n: u64| data[at as usize..(at + n).min(len) as usize].to_vec();
    match change {
        Change::FlipBit | Change::FlipBits => {
            // Flip one bit, or one to eight bits within one 16-byte window.
            let at = rng.gen_range(0..len);
            let n = (len - at).min(16);
            let mut after = window(at, n);
            if change == Change::FlipBit {
                after[0] ^= 1 << rng.gen_range(0..8);
            } else {
                for _ in 0..rng.gen_range(1..=8) {
                    let i = rng.gen_range(0..after.len());
                    after[i] ^= 1 << rng.gen_range(0..8);
                }
            }
            if after == window(at, n) {
                // Two flips of one bit undid each other: one more.
                after[0] ^= 1;
            }
            c.change = change.name().into();
            c.offset = at;
            c.len = n;
            c.before = hex(&window(at, n));
            c.after = hex(&after);
            write_at(at, &after)?;
        }
        Change::Truncate => {
            let keep = rng.gen_range(0..len);
            c.change = "truncate".into();
            c.offset = keep;
            c.len = len - keep;
            c.before = hex(&window(keep, 16));
            let f = std::fs::OpenOptions::new().write(true).open(path)?;
            f.set_len(keep)?;
            f.sync_all()?;
        }
        Change::ZeroBlock => {
            let at = rng.gen_range(0..len.div_ceil(BLOCK)) * BLOCK;
            let n = (len - at).min(BLOCK);
            c.change = "zero-block".into();
            c.offset = at;
            c.len = n;
            c.before = hex(&window(at, 16));
            c.after = hex(&vec![0; n.min(16) as usize]);
            write_at(at, &vec![0; n as usize])?;
        }
        Change::CopyBlock => {
            // A misdirected write: one block's bytes land where another block lives.
            let blocks = len.div_ceil(BLOCK);
            let from = rng.gen_range(0..blocks) * BLOCK;
            let to = rng.gen_range(0..blocks) * BLOCK;
            let n = (len - from).min(len - to).min(BLOCK);
            let bytes = window(from, n);
            c.change = if from == to {
                "rewrite-block"
            } else {
                "copy-block"
            }
            .into();
            c.offset = to;
            c.len = n;
            c.from = Some(from);
            c.before = hex(&window(to, 16));
            c.after = hex(&bytes[..bytes.len().min(16)]);
            write_at(to, &bytes)?;
        }
        Change::Delete => {
            c.change = "delete".into();
            c.len = len;
            c.before = hex(&window(0, 16));
            std::fs::remove_file(path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
    }
    Ok(c)
}

impl Fault for CorruptFault {
    /// The files are on this machine: any links here, not hosts over ssh.
    fn carried_by(_: FaultKind, fabric: &Fabric) -> bool {
        fabric.on_this_machine()
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let nodes = env.targets(p).await;
        let damaged = env.corruptible(&nodes);
        let plan = &env.corrupt;
        let mut rng = StdRng::seed_from_u64(p.pick ^ 0xC0_4452_5550_5421);
        let mut c = env.cluster.lock().await;
        let mut done = Vec::new();
        for &n in &nodes {
            tokio::task::block_in_place(|| c.kill(n));
            if !damaged.contains(&n) {
                done.push(Corruption {
                    node: n,
                    change: "none (the run's limit spares this node: --corrupt-any lifts it)"
                        .into(),
                    ..Corruption::default()
                });
                continue;
            }
            let dir = c.durable_dir(n);
            let kinds: Vec<(FileKind, Vec<PathBuf>)> = candidates(&dir, c.server().durable_files())
                .into_iter()
                .filter(|(k, _)| plan.files.contains(k))
                .collect();
            let mut record = match kinds.len() {
                // Nothing of the kinds asked for is left (deleted by an earlier fault):
                // the node restarts as it is.
                0 => Corruption {
                    change: "none (no such file left)".into(),
                    ..Corruption::default()
                },
                k => {
                    let (_, files) = &kinds[rng.gen_range(0..k)];
                    let file = &files[rng.gen_range(0..files.len())];
                    damage(file, &plan.changes, &mut rng)?
                }
            };
            record.node = n;
            done.push(record);
        }
        Ok(CorruptFault {
            target: p.target,
            nodes,
            done,
        })
    }

    /// The nodes restart on what is left; one that refuses to is reported as a crash by
    /// the progress loop and stays down.
    async fn stop(&self, env: &Env) -> Result<()> {
        env.restart(&self.nodes).await
    }

    fn describe(&self) -> String {
        let what: Vec<String> = self
            .done
            .iter()
            .map(|c| format!("n{} {} {}", c.node, c.change, c.file))
            .collect();
        format!("corrupt {} ({})", self.target.name(), what.join(", "))
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            target: Some(self.target),
            corruption: self.done.clone(),
            ..FaultDetails::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_kinds_of_file() {
        assert!(matches("wal-*.log", "wal-00000003.log"));
        assert!(!matches("wal-*.log", "wal.log.tmp"));
        assert!(matches("state.bin", "state.bin") && !matches("state.bin", "state.bin.tmp"));
        let dir = tempfile::tempdir().unwrap();
        for f in ["wal-1.log", "wal-2.log", "wal-3.log", "state.bin", "LOCK"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let kinds = candidates(
            dir.path(),
            &[
                ("wal-*.log", FileRole::Log),
                ("snapshot.bin", FileRole::Snapshot),
                ("state.bin", FileRole::Metadata),
            ],
        );
        let names: Vec<(FileKind, Vec<String>)> = kinds
            .iter()
            .map(|(kind, k)| {
                (
                    *kind,
                    k.iter()
                        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (FileKind::NewestLog, vec!["wal-3.log".to_string()]),
                (
                    FileKind::OlderLog,
                    vec!["wal-1.log".into(), "wal-2.log".into()]
                ),
                (FileKind::Metadata, vec!["state.bin".into()]),
            ]
        );
    }

    #[test]
    fn every_change_does_what_its_record_says() {
        let dir = tempfile::tempdir().unwrap();
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let path = dir.path().join("f");
            std::fs::write(&path, &original).unwrap();
            let c = damage(&path, &Change::ALL, &mut StdRng::seed_from_u64(seed)).unwrap();
            seen.insert(c.change.clone());
            match c.change.as_str() {
                "delete" => assert!(!path.exists()),
                "truncate" => {
                    let now = std::fs::read(&path).unwrap();
                    assert_eq!(now.len() as u64, c.offset);
                    assert_eq!(now[..], original[..c.offset as usize]);
                }
                _ => {
                    let now = std::fs::read(&path).unwrap();
                    assert_eq!(now.len(), original.len(), "{c:?}");
                    let changed: Vec<usize> =
                        (0..now.len()).filter(|&i| now[i] != original[i]).collect();
                    // Whatever changed lies in the recorded window.
                    assert!(
                        changed
                            .iter()
                            .all(|&i| (i as u64) >= c.offset && (i as u64) < c.offset + c.len),
                        "{c:?}"
                    );
                    if c.change == "flip-bits" {
                        assert!(!changed.is_empty(), "{c:?}");
                    }
                }
            }
        }
        for change in [
            "flip-bits",
            "truncate",
            "zero-block",
            "copy-block",
            "delete",
        ] {
            assert!(seen.contains(change), "{change} never drawn: {seen:?}");
        }
    }
}
