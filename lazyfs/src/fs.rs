//! The FUSE side: every call a program makes on the mount, answered from the backing
//! folder plus what is held in memory ([`Pending`] data, the [`Journal`] of names).
//!
//! One lock guards the whole state: FUSE calls arrive on one thread, and the runner's
//! crash must see no call half done.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use serde::{Deserialize, Serialize};

use crate::journal::{Change, Journal};
use crate::overlay::Pending;

/// How long the kernel may keep a name or an attribute: every change goes through this
/// process, so the kernel's copy stays right; a crash remounts, which drops it.
const TTL: Duration = Duration::from_secs(1);

/// Unsynced data held beyond this is written back (largest file first), as a kernel
/// under memory pressure would: it then survives a crash.
const WRITEBACK_ABOVE: u64 = 512 << 20;

/// Faults of the disk the runner switches on and off (through the control file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskFaults {
    /// Writes, creates and folder changes fail with ENOSPC.
    pub full: bool,
    /// Every fsync and fdatasync takes this long first.
    pub fsync_delay_ms: u64,
}

/// When a change of names (a create, a removal, a rename) survives a power loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Names {
    /// Once its folder is fsynced: all POSIX promises, and what a careful server must
    /// assume (ext4 without `dirsync` may lose the others).
    #[default]
    Strict,
    /// Once anything is fsynced: ext4's journal (data=ordered) commits every earlier
    /// change of names with the fsync of any file, which software that never fsyncs a
    /// folder relies on, knowingly or not.
    Ext4,
}

/// What a crash threw away, for the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// Bytes written but never fsynced.
    pub lost_bytes: u64,
    /// Files that had such bytes.
    pub files_with_lost_data: u64,
    /// Creates, removes and renames whose folder was never fsynced, undone.
    pub names_undone: u64,
    /// The first error met while undoing, if any (the undo went on past it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts since the mount, for tests and the runner's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub bytes_written_through: u64,
    pub writebacks: u64,
    pub refused_full: u64,
}

struct Handle {
    ino: u64,
    file: Arc<File>,
}

struct State {
    root: PathBuf,
    /// ino -> where it is on the backing disk (a removed file: where it is kept).
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    pending: HashMap<u64, Pending>,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    journal: Journal,
    names: Names,
    faults: DiskFaults,
    counts: Counts,
    /// After a crash nothing more is answered: the runner unmounts next.
    crashed: bool,
}

/// The filesystem; clones share it (the FUSE session holds one, the control loop another).
#[derive(Clone)]
pub struct LazyFs(Arc<Mutex<State>>);

fn kind_of(m: &Metadata) -> FileType {
    FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr_of(ino: u64, m: &Metadata, size: Option<u64>) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: size.unwrap_or(m.size()),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind_of(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl State {
    fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.paths.get(&ino).cloned().ok_or(Errno::ENOENT)
    }

    fn ino_for(&mut self, path: &Path) -> u64 {
        if let Some(&i) = self.inos.get(path) {
            return i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(i, path.to_path_buf());
        self.inos.insert(path.to_path_buf(), i);
        i
    }

    /// `path` now lives at `to` (a rename or a removal into the trash): so do the names
    /// under it, if it is a folder.
    fn relocate(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(PathBuf, u64)> = self
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moved {
            self.inos.remove(&p);
            let rest = p.strip_prefix(from).expect("under it");
            // `to.join("")` would add a trailing slash, which a file's path must not have.
            let new = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            self.paths.insert(i, new.clone());
            self.inos.insert(new, i);
        }
    }

    /// An open file of `ino`, if a handle has one (it outlives a removal of the name).
    fn open_file(&self, ino: u64) -> Option<&Arc<File>> {
        self.handles
            .values()
            .find(|h| h.ino == ino)
            .map(|h| &h.file)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let path = self.path(ino)?;
        let m = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => match self.open_file(ino) {
                Some(f) => f.metadata().map_err(errno)?,
                None => return Err(errno(e)),
            },
        };
        Ok(attr_of(ino, &m, self.pending.get(&ino).map(Pending::size)))
    }

    fn entry(&mut self, path: &Path) -> Result<FileAttr, Errno> {
        fs::symlink_metadata(path).map_err(errno)?;
        let ino = self.ino_for(path);
        self.attr(ino)
    }

    fn pending_for(&mut self, ino: u64) -> Result<&mut Pending, Errno> {
        if !self.pending.contains_key(&ino) {
            let size = match self.open_file(ino) {
                Some(f) => f.metadata().map_err(errno)?.size(),
                None => fs::metadata(self.path(ino)?).map_err(errno)?.size(),
            };
            self.pending.insert(ino, Pending::over(size));
        }
        Ok(self.pending.get_mut(&ino).expect("just made"))
    }

    /// A file of `ino` to write through: an open handle's, or the file opened anew.
    fn file_for(&self, ino: u64) -> Result<Arc<File>, Errno> {
        if let Some(f) = self.open_file(ino) {
            return Ok(f.clone());
        }
        let f = OpenOptions::new()
            .write(true)
            .open(self.path(ino)?)
            .map_err(errno)?;
        Ok(Arc::new(f))
    }

    /// Writes `ino`'s pending data to the backing file (not yet synced).
    fn write_through(&mut self, ino: u64, file: &File) -> Result<(), Errno> {
        let Some(p) = self.pending.remove(&ino) else {
            return Ok(());
        };
        let r = (|| {
            if file.metadata()?.size() > p.disk_end() {
                file.set_len(p.disk_end())?;
            }
            for (at, bytes) in p.extents() {
                file.write_all_at(bytes, at)?;
            }
            file.set_len(p.size())
        })();
        match r {
            Ok(()) => {
                self.counts.bytes_written_through += p.bytes();
                Ok(())
            }
            Err(e) => {
                // Keep it pending: the writer may fsync again.
                self.pending.insert(ino, p);
                Err(errno(e))
            }
        }
    }

    fn pending_bytes(&self) -> u64 {
        self.pending.values().map(Pending::bytes).sum()
    }

    /// Writes back the largest files until the held data is under the limit.
    fn relieve_pressure(&mut self) {
        while self.pending_bytes() > WRITEBACK_ABOVE {
            let Some((&ino, _)) = self.pending.iter().max_by_key(|(_, p)| p.bytes()) else {
                return;
            };
            if self.write_back(ino).is_err() {
                // Cannot write it back: keep it (a crash then loses it).
                return;
            }
            self.counts.writebacks += 1;
        }
    }

    /// Writes `ino`'s pending data to its backing file, not synced, and returns that
    /// file (`None`: the file was removed for good and closed, so nobody can read its
    /// bytes and they are dropped).
    fn write_back(&mut self, ino: u64) -> Result<Option<Arc<File>>, Errno> {
        let file = match self.file_for(ino) {
            Ok(f) => f,
            Err(e) if e == Errno::ENOENT => {
                self.pending.remove(&ino);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.write_through(ino, &file)?;
        Ok(Some(file))
    }

    fn refuse_if_full(&mut self) -> Result<(), Errno> {
        if self.faults.full {
            self.counts.refused_full += 1;
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// Moves what is at `path` aside and journals its removal.
    fn remove(&mut self, path: &Path) -> Result<(), Errno> {
        let kept = self.journal.keep(path).map_err(errno)?;
        self.relocate(path, &kept);
        self.journal.record(Change::Removed {
            path: path.to_path_buf(),
            kept,
        });
        Ok(())
    }
}

impl LazyFs {
    /// The filesystem over `root`, keeping removed files in `trash` (which must be on the
    /// same file system, and empty).
    pub fn new(root: PathBuf, trash: PathBuf, names: Names) -> LazyFs {
        let mut paths = HashMap::new();
        let mut inos = HashMap::new();
        paths.insert(INodeNo::ROOT.0, root.clone());
        inos.insert(root.clone(), INodeNo::ROOT.0);
        LazyFs(Arc::new(Mutex::new(State {
            root,
            paths,
            inos,
            next_ino: 2,
            pending: HashMap::new(),
            handles: HashMap::new(),
            next_fh: 1,
            journal: Journal::new(trash),
            names,
            faults: DiskFaults::default(),
            counts: Counts::default(),
            crashed: false,
        })))
    }

    /// The state, whatever a panicked call left (every change is whole under the lock).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state for a FUSE call: none after a crash.
    fn state(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let s = self.lock();
        if s.crashed {
            return Err(Errno::EIO);
        }
        Ok(s)
    }

    pub fn set_faults(&self, faults: DiskFaults) {
        self.lock().faults = faults;
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// A power loss: drops every unsynced byte and undoes every name change whose folder
    /// was not fsynced. Nothing is answered after it.
    pub fn crash(&self) -> CrashRecord {
        let mut s = self.lock();
        s.crashed = true;
        let pending = std::mem::take(&mut s.pending);
        let (undone, error) = s.journal.crash();
        s.handles.clear();
        CrashRecord {
            lost_bytes: pending.values().map(Pending::bytes).sum(),
            files_with_lost_data: pending.values().filter(|p| p.bytes() > 0).count() as u64,
            names_undone: undone as u64,
            error: error.map(|e| e.to_string()),
        }
    }

    /// A clean unmount: everything held is written back and synced, as the kernel would
    /// in time, and every name change becomes durable.
    pub fn settle(&self) -> io::Result<()> {
        let mut s = self.lock();
        if s.crashed {
            return Ok(());
        }
        let inos: Vec<u64> = s.pending.keys().copied().collect();
        let mut first_error = None;
        for ino in inos {
            let r = s.write_back(ino).and_then(|file| match file {
                Some(f) => f.sync_all().map_err(errno),
                None => Ok(()),
            });
            if let Err(e) = r {
                first_error.get_or_insert(io::Error::from_raw_os_error(e.code()));
            }
        }
        s.journal.settle();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn reply_entry(
        &self,
        path: impl FnOnce(&mut State) -> Result<PathBuf, Errno>,
        reply: ReplyEntry,
    ) {
        let r = self.state().and_then(|mut s| {
            let p = path(&mut s)?;
            s.entry(&p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

fn done(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.reply_entry(|s| s.child(parent.0, name), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().and_then(|s| s.attr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.state().and_then(|mut s| {
            if let Some(mode) = mode {
                let path = s.path(ino.0)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if let Some(size) = size {
                s.pending_for(ino.0)?.set_size(size);
            }
            s.attr(ino.0)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.reply_entry(
            |s| {
                s.refuse_if_full()?;
                let path = s.child(parent.0, name)?;
                fs::create_dir(&path).map_err(errno)?;
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask));
                s.journal.record(Change::Made { path: path.clone() });
                Ok(path)
            },
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.state().and_then(|mut s| {
            let path = s.child(parent.0, name)?;
            if fs::symlink_metadata(&path).map_err(errno)?.is_dir() {
                return Err(Errno::EISDIR);
            }
            s.remove(&path)
        });
        done(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.state().and_then(|mut s| {
            let path = s.child(parent.0, name)?;
            if !fs::symlink_metadata(&path).map_err(errno)?.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if fs::read_dir(&path).map_err(errno)?.next().is_some() {
                return Err(Errno::ENOTEMPTY);
            }
            s.remove(&path)
        });
        done(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.state().and_then(|mut s| {
            if flags.contains(RenameFlags::RENAME_EXCHANGE)
                || flags.contains(RenameFlags::RENAME_WHITEOUT)
            {
                return Err(Errno::EINVAL);
            }
            let from = s.child(parent.0, name)?;
            let to = s.child(newparent.0, newname)?;
            let from_meta = fs::symlink_metadata(&from).map_err(errno)?;
            let kept = match fs::symlink_metadata(&to) {
                Ok(_) if flags.contains(RenameFlags::RENAME_NOREPLACE) => {
                    return Err(Errno::EEXIST)
                }
                Ok(m) if m.is_dir() && !from_meta.is_dir() => return Err(Errno::EISDIR),
                Ok(m) if !m.is_dir() && from_meta.is_dir() => return Err(Errno::ENOTDIR),
                Ok(m) if m.is_dir() && fs::read_dir(&to).map_err(errno)?.next().is_some() => {
                    return Err(Errno::ENOTEMPTY)
                }
                Ok(_) => {
                    let kept = s.journal.keep(&to).map_err(errno)?;
                    s.relocate(&to, &kept);
                    Some(kept)
                }
                Err(_) => None,
            };
            if let Err(e) = fs::rename(&from, &to) {
                if let Some(k) = &kept {
                    // Put the replaced file back: the rename did not happen.
                    let _ = fs::rename(k, &to);
                    s.relocate(k, &to);
                }
                return Err(errno(e));
            }
            s.relocate(&from, &to);
            s.journal.record(Change::Renamed { from, to, kept });
            Ok(())
        });
        done(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = self.state().and_then(|mut s| {
            let path = s.path(ino.0)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .or_else(|_| File::open(&path))
                .map_err(errno)?;
            if flags.0 & libc::O_TRUNC != 0 {
                s.refuse_if_full()?;
                s.pending_for(ino.0)?.set_size(0);
            }
            let fh = s.next_fh;
            s.next_fh += 1;
            s.handles.insert(
                fh,
                Handle {
                    ino: ino.0,
                    file: Arc::new(file),
                },
            );
            Ok(fh)
        });
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.state().and_then(|mut s| {
            s.refuse_if_full()?;
            let path = s.child(parent.0, name)?;
            let existed = fs::symlink_metadata(&path).is_ok();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .mode(mode & !umask)
                .open(&path)
                .map_err(errno)?;
            if !existed {
                s.journal.record(Change::Made { path: path.clone() });
            }
            let ino = s.ino_for(&path);
            if existed && flags & libc::O_TRUNC != 0 {
                s.pending_for(ino)?.set_size(0);
            }
            let fh = s.next_fh;
            s.next_fh += 1;
            s.handles.insert(
                fh,
                Handle {
                    ino,
                    file: Arc::new(file),
                },
            );
            Ok((s.attr(ino)?, fh))
        });
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.state().and_then(|s| {
            let file = s.handles.get(&fh.0).ok_or(Errno::EBADF)?.file.clone();
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match file.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(errno(e)),
                }
            }
            match s.pending.get(&ino.0) {
                // Past the disk's end the bytes are zeros until the writer's size.
                Some(p) => p.read_into(offset, &mut buf),
                None => buf.truncate(got),
            }
            Ok(buf)
        });
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.state().and_then(|mut s| {
            s.refuse_if_full()?;
            s.pending_for(ino.0)?.write(offset, data);
            s.relieve_pressure();
            Ok(data.len() as u32)
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut s) = self.state() {
            s.handles.remove(&fh.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let delay = match self.state() {
            Ok(s) => Duration::from_millis(s.faults.fsync_delay_ms),
            Err(e) => return reply.error(e),
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let r = self.state().and_then(|mut s| {
            let file = match s.handles.get(&fh.0) {
                Some(h) => h.file.clone(),
                None => s.file_for(ino.0)?,
            };
            s.write_through(ino.0, &file)?;
            s.counts.fsyncs += 1;
            if s.names == Names::Ext4 {
                // The journal commit that carries this file's size carries every name.
                s.journal.settle();
            }
            drop(s);
            if datasync {
                file.sync_data().map_err(errno)
            } else {
                file.sync_all().map_err(errno)
            }
        });
        done(reply, r);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.state().and_then(|mut s| {
            let dir = s.path(ino.0)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, OsStr::new(".").to_os_string()),
                (ino.0, FileType::Directory, OsStr::new("..").to_os_string()),
            ];
            let mut listed: Vec<_> = fs::read_dir(&dir)
                .map_err(errno)?
                .filter_map(Result::ok)
                .collect();
            listed.sort_by_key(|e| e.file_name());
            for e in listed {
                let kind = e
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                let child = s.ino_for(&e.path());
                entries.push((child, kind, e.file_name()));
            }
            Ok(entries)
        });
        match r {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.state().and_then(|mut s| {
            let dir = s.path(ino.0)?;
            File::open(&dir).and_then(|d| d.sync_all()).map_err(errno)?;
            match s.names {
                Names::Strict => {
                    s.journal.synced(&dir);
                }
                Names::Ext4 => s.journal.settle(),
            }
            s.counts.dir_fsyncs += 1;
            Ok(())
        });
        done(reply, r);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = match self.state() {
            Ok(s) => s.root.clone(),
            Err(e) => return reply.error(e),
        };
        match nix::sys::statvfs::statvfs(&root) {
            Ok(v) => reply.statfs(
                v.blocks(),
                v.blocks_free(),
                v.blocks_available(),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain preallocation only (etcd's WAL asks for it); the others are refused as
        // unsupported, which callers fall back from.
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let r = self.state().and_then(|mut s| {
            s.refuse_if_full()?;
            let p = s.pending_for(ino.0)?;
            let end = offset.saturating_add(length);
            if end > p.size() {
                p.set_size(end);
            }
            Ok(())
        });
        done(reply, r);
    }
}
