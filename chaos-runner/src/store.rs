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
