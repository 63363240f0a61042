//! Where runs are kept: `store/<test-name>/<timestamp>/` with `test.json`,
//! `history.jsonl`, `results.json` and `nodes/`, plus `store/latest` pointing at the
//! newest run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A run's directory.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `root/<name>/<UTC timestamp>` (with a suffix if that exists) and its `nodes/`,
    /// and points `root/latest` at it.
    pub fn create(root: &Path, name: &str) -> Result<RunDir> {
        Self::create_in(root, name, true)
    }

    /// As [`RunDir::create`]; `point_latest: false` leaves `root/latest` alone (bench runs
    /// share the store but `latest` stays the newest test).
    pub fn create_in(root: &Path, name: &str, point_latest: bool) -> Result<RunDir> {
        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        let base = root.join(name);
        std::fs::create_dir_all(&base)
            .with_context(|| format!("cannot create {}", base.display()))?;
        let mut path = base.join(&stamp);
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = base.join(format!("{stamp}-{n}"));
        }
        std::fs::create_dir_all(path.join("nodes"))
            .with_context(|| format!("cannot create {}", path.display()))?;
        if !point_latest {
            return Ok(RunDir { path });
        }
        // store/latest -> <name>/<stamp>, replaced atomically.
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        let tmp = root.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(&rel, &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, root.join("latest"));
        }
        Ok(RunDir { path })
    }

    pub fn history(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }

    pub fn results(&self) -> PathBuf {
        self.path.join("results.json")
    }

    /// The faults the run planned, as `test --schedule` reads them.
    pub fn schedule_json(&self) -> PathBuf {
        self.path.join("schedule.json")
    }

    pub fn test_json(&self) -> PathBuf {
        self.path.join("test.json")
    }

    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.path.join("nodes").join(format!("n{id}"))
    }

    pub fn node_log(&self, id: u64) -> PathBuf {
        self.path.join("nodes").join(format!("n{id}.log"))
    }

    /// Writes one of the run's records, pretty-printed.
    pub fn write_json(&self, path: &Path, value: &impl serde::Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_get_their_own_dirs_and_latest_follows() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "register").unwrap();
        let b = RunDir::create(root.path(), "register").unwrap();
        assert_ne!(a.path, b.path);
        assert!(a.path.join("nodes").is_dir());
        let latest = std::fs::canonicalize(root.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b.path).unwrap());
    }
}

/// `clean`'s pruning flags.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// The store to prune (with --keep or --older-than).
    #[arg(long, default_value = "store", value_name = "DIR")]
    pub store: PathBuf,
    /// Keep the N newest runs of the store (all tests together), remove the rest.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Remove runs started longer ago than this (e.g. 30m, 12h, 7d).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
}

/// What pruning did.
#[derive(Debug)]
pub struct Pruned {
    pub removed: Vec<PathBuf>,
    pub kept: usize,
    /// The rebuilt index, when runs are left.
    pub index: Option<PathBuf>,
}

/// A run that may still be going: no results yet and a history written in the last ten
/// minutes. Pruning leaves it alone whatever its age.
fn may_be_live(run: &Path) -> bool {
    if run.join("results.json").exists() {
        return false;
    }
    let recent = |p: PathBuf| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < std::time::Duration::from_secs(600))
    };
    recent(run.join("history.jsonl")) || recent(run.join("test.json"))
}

/// Prunes `args.store` as `--keep` and `--older-than` say (`None`: neither given).
pub fn prune(args: &PruneArgs) -> Result<Option<Pruned>> {
    if args.keep.is_none() && args.older_than.is_none() {
        return Ok(None);
    }
    let root = &args.store;
    let names = std::fs::read_dir(root)
        .with_context(|| format!("cannot read the store {}", root.display()))?;
    let latest = std::fs::canonicalize(root.join("latest")).ok();
    // (started, folder) of every run: a folder two levels down with a test.json.
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    for name in names.flatten() {
        if name.file_name() == "latest" || !name.path().is_dir() {
            continue;
        }
        for run in std::fs::read_dir(name.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = run.path();
            let test = dir.join("test.json");
            if !test.is_file() {
                continue;
            }
            // A record that cannot be read still marks a run; it counts as oldest.
            let started = reports::data::read_record::<checker::record::TestRecord>(&test)
                .ok()
                .flatten()
                .map(|t| t.started)
                .unwrap_or_default();
            runs.push((started, dir));
        }
    }
    // Newest first; a run without a start time counts as oldest.
    runs.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let cutoff = args
        .older_than
        .map(|d| std::time::SystemTime::now() - d)
        .map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let mut removed = Vec::new();
    let mut kept = 0;
    for (i, (started, dir)) in runs.iter().enumerate() {
        let too_many = args.keep.is_some_and(|k| i >= k);
        let too_old = cutoff.as_ref().is_some_and(|c| started < c);
        let protected = Some(dir) == latest.as_ref() || may_be_live(dir);
        if (too_many || too_old) && !protected {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent); // Only if it is now empty.
            }
            removed.push(dir.clone());
        } else {
            kept += 1;
        }
    }
    let index = match kept {
        0 => None,
        _ => Some(reports::index::build(root)?),
    };
    Ok(Some(Pruned {
        removed,
        kept,
        index,
    }))
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    fn run(root: &Path, name: &str, stamp: &str, started: &str) -> PathBuf {
        let dir = root.join(name).join(stamp);
        std::fs::create_dir_all(&dir).unwrap();
        let test = checker::record::TestRecord {
            name: name.to_string(),
            started: started.to_string(),
            ..Default::default()
        };
        std::fs::write(dir.join("test.json"), serde_json::to_string(&test).unwrap()).unwrap();
        std::fs::write(dir.join("results.json"), "{}").unwrap();
        dir
    }

    /// --keep leaves the newest runs and `latest`; --older-than removes by start time;
    /// what is not a run is never touched; the index is rebuilt.
    #[test]
    fn pruning_keeps_the_newest_runs_and_what_is_not_a_run() {
        let store = tempfile::tempdir().unwrap();
        let root = store.path();
        let old = run(root, "register", "a", "2026-01-01T00:00:00Z");
        let mid = run(root, "register", "b", "2026-06-01T00:00:00Z");
        let new = run(root, "set", "c", "2026-12-01T00:00:00Z");
        let pinned = run(root, "kv", "d", "2025-01-01T00:00:00Z");
        std::os::unix::fs::symlink("kv/d", root.join("latest")).unwrap();
        std::fs::create_dir_all(root.join("notes/x")).unwrap();
        let args = |keep, older: Option<&str>| PruneArgs {
            store: root.to_path_buf(),
            keep,
            older_than: older.map(|o| humantime::parse_duration(o).unwrap()),
        };
        assert!(prune(&args(None, None)).unwrap().is_none());
        let p = prune(&args(Some(2), None)).unwrap().unwrap();
        assert_eq!(p.removed, vec![old.clone()]);
        assert!(
            new.exists() && mid.exists() && pinned.exists(),
            "latest is kept"
        );
        assert!(root.join("notes/x").exists(), "not a run: untouched");
        assert!(p.index.unwrap().is_file());
        // Everything started more than a year before now... but latest.
        let p = prune(&args(None, Some("3650d"))).unwrap().unwrap();
        assert!(p.removed.is_empty());
        let p = prune(&args(None, Some("1s"))).unwrap().unwrap();
        assert_eq!(p.removed.len(), 2);
        assert!(pinned.exists() && !root.join("set").exists());
    }
}
