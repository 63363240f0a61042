//! Changes to names (create, remove, rename) that are done on the backing disk at once
//! but are durable only once their parent folder is fsynced, as on ext4 without
//! `dirsync`. Until then each is journalled with what undoes it; a removed file or a
//! file a rename replaced is kept aside (in the trash folder) rather than deleted.
//!
//! A crash undoes the journal backwards (each undo sees the names as they were just
//! after its change), which leaves the names exactly as the last folder fsyncs left them. A directory renamed while it holds journalled changes moves
//! those changes' paths with it only for its own name: no server we test renames a
//! non-empty folder, and the undo of such a case is best effort (it says so).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One change of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A file or folder made at `path`.
    Made { path: PathBuf },
    /// `path` removed; what it was is kept at `kept` until that is durable.
    Removed { path: PathBuf, kept: PathBuf },
    /// `from` renamed to `to`; what `to` was before, kept at `kept`.
    Renamed {
        from: PathBuf,
        to: PathBuf,
        kept: Option<PathBuf>,
    },
}

impl Change {
    /// Paths at or under `from` now read as under `to`.
    fn relocate(&mut self, from: &Path, to: &Path) {
        let fix = |p: &mut PathBuf| {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        };
        match self {
            Change::Made { path } | Change::Removed { path, .. } => fix(path),
            Change::Renamed { from: a, to: b, .. } => {
                fix(a);
                fix(b);
            }
        }
    }
}

#[derive(Debug)]
struct Entry {
    change: Change,
    /// Folders whose fsync this change still waits for.
    waits_for: Vec<PathBuf>,
}

/// The changes of names not yet durable, oldest first.
#[derive(Debug)]
pub struct Journal {
    entries: Vec<Entry>,
    /// Where removed and replaced files wait (on the same file system as the backing
    /// folder, so keeping one is a rename).
    trash: PathBuf,
    kept: u64,
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Journal {
    pub fn new(trash: PathBuf) -> Journal {
        Journal {
            entries: Vec::new(),
            trash,
            kept: 0,
        }
    }

    /// How many changes are not yet durable.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves `path` aside into the trash (for a removal or a replacing rename).
    pub fn keep(&mut self, path: &Path) -> io::Result<PathBuf> {
        self.kept += 1;
        let kept = self.trash.join(format!("kept-{}", self.kept));
        fs::rename(path, &kept)?;
        Ok(kept)
    }

    /// Journals a change just made on the backing disk.
    pub fn record(&mut self, change: Change) {
        let waits_for = match &change {
            Change::Made { path } | Change::Removed { path, .. } => vec![parent(path)],
            Change::Renamed { from, to, .. } => {
                let (a, b) = (parent(from), parent(to));
                if a == b {
                    vec![a]
                } else {
                    vec![a, b]
                }
            }
        };
        self.entries.push(Entry { change, waits_for });
    }

    /// `dir` was fsynced: the changes in it are durable. Files kept only for their undo
    /// are deleted. Returns how many changes became durable.
    pub fn synced(&mut self, dir: &Path) -> usize {
        for e in &mut self.entries {
            e.waits_for.retain(|d| d != dir);
        }
        let mut done = 0;
        let mut i = 0;
        while i < self.entries.len() {
            if !self.entries[i].waits_for.is_empty() {
                i += 1;
                continue;
            }
            let e = self.entries.remove(i);
            // A rename that is now durable stays done whatever a crash undoes: older
            // changes under its old name are undone under its new one.
            if let Change::Renamed { from, to, .. } = &e.change {
                for older in &mut self.entries[..i] {
                    older.change.relocate(from, to);
                }
            }
            Self::forget(&e.change);
            done += 1;
        }
        done
    }

    fn forget(change: &Change) {
        let kept = match change {
            Change::Removed { kept, .. } => Some(kept),
            Change::Renamed { kept, .. } => kept.as_ref(),
            Change::Made { .. } => None,
        };
        if let Some(k) = kept {
            let _ = remove_any(k);
        }
    }

    /// Everything becomes durable (a clean unmount: the kernel would write it all back).
    pub fn settle(&mut self) {
        for e in std::mem::take(&mut self.entries) {
            Self::forget(&e.change);
        }
    }

    /// A power loss: undoes every change not yet durable, newest first. Returns how many
    /// were undone, and the first error met (the undo goes on past it).
    pub fn crash(&mut self) -> (usize, Option<io::Error>) {
        let mut first_error = None;
        let mut undone = 0;
        for e in std::mem::take(&mut self.entries).into_iter().rev() {
            let r = match &e.change {
                Change::Made { path } => remove_any(path),
                Change::Removed { path, kept } => fs::rename(kept, path),
                Change::Renamed { from, to, kept } => fs::rename(to, from)
                    .and_then(|()| kept.as_ref().map_or(Ok(()), |k| fs::rename(k, to))),
            };
            match r {
                Ok(()) => undone += 1,
                Err(err) => {
                    first_error.get_or_insert(io::Error::new(
                        err.kind(),
                        format!("undoing {:?}: {err}", e.change),
                    ));
                }
            }
        }
        // Whatever is still kept could not be put back (the error says what): the trash
        // must be empty for the next mount.
        if let Ok(left) = fs::read_dir(&self.trash) {
            for f in left.flatten() {
                let _ = remove_any(&f.path());
            }
        }
        (undone, first_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_crash_puts_back_every_name_not_synced_and_keeps_what_was() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, trash) = (tmp.path().join("root"), tmp.path().join("trash"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&trash).unwrap();
        fs::write(root.join("old"), "old").unwrap();
        fs::write(root.join("state"), "v1").unwrap();
        let mut j = Journal::new(trash.clone());

        // A new file, synced by its folder: it stays.
        fs::write(root.join("seg-1"), "a").unwrap();
        j.record(Change::Made {
            path: root.join("seg-1"),
        });
        assert_eq!(j.synced(&root), 1);

        // The atomic replace pattern without the folder fsync: tmp made, renamed over.
        fs::write(root.join("state.tmp"), "v2").unwrap();
        j.record(Change::Made {
            path: root.join("state.tmp"),
        });
        let kept = j.keep(&root.join("state")).unwrap();
        fs::rename(root.join("state.tmp"), root.join("state")).unwrap();
        j.record(Change::Renamed {
            from: root.join("state.tmp"),
            to: root.join("state"),
            kept: Some(kept),
        });
        // A removal, not synced.
        let kept = j.keep(&root.join("old")).unwrap();
        j.record(Change::Removed {
            path: root.join("old"),
            kept,
        });
        assert_eq!(names(&root), ["seg-1", "state"]);
        assert_eq!(j.len(), 3);

        let (undone, err) = j.crash();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(undone, 3);
        assert_eq!(names(&root), ["old", "seg-1", "state"]);
        assert_eq!(fs::read_to_string(root.join("state")).unwrap(), "v1");
        assert_eq!(fs::read_to_string(root.join("old")).unwrap(), "old");
        assert!(names(&trash).is_empty());
    }

    #[test]
    fn a_durable_folder_rename_carries_older_changes_to_its_new_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, trash) = (tmp.path().join("root"), tmp.path().join("trash"));
        fs::create_dir_all(root.join("wal.tmp")).unwrap();
        fs::create_dir_all(&trash).unwrap();
        fs::write(root.join("wal.tmp/.touch"), "").unwrap();
        let mut j = Journal::new(trash.clone());
        // A file removed inside a folder (never synced there), then the folder renamed
        // and that rename synced (as etcd makes its WAL folder).
        let kept = j.keep(&root.join("wal.tmp/.touch")).unwrap();
        j.record(Change::Removed {
            path: root.join("wal.tmp/.touch"),
            kept,
        });
        fs::rename(root.join("wal.tmp"), root.join("wal")).unwrap();
        j.record(Change::Renamed {
            from: root.join("wal.tmp"),
            to: root.join("wal"),
            kept: None,
        });
        assert_eq!(j.synced(&root), 1);
        let (undone, err) = j.crash();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(undone, 1);
        assert_eq!(names(&root), ["wal"]);
        assert_eq!(
            names(&root.join("wal")),
            [".touch"],
            "the removal was not durable"
        );
        assert!(names(&trash).is_empty());
    }

    #[test]
    fn a_synced_folder_deletes_what_was_kept_for_undo() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, trash) = (tmp.path().join("root"), tmp.path().join("trash"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&trash).unwrap();
        fs::write(root.join("x"), "x").unwrap();
        let mut j = Journal::new(trash.clone());
        let kept = j.keep(&root.join("x")).unwrap();
        j.record(Change::Removed {
            path: root.join("x"),
            kept,
        });
        assert_eq!(names(&trash).len(), 1);
        j.synced(&root);
        assert!(names(&trash).is_empty() && names(&root).is_empty());
        assert_eq!(j.crash().0, 0, "nothing left to undo");
    }
}
