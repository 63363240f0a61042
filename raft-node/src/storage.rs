//! Durable state of one node: a segmented write-ahead log and a snapshot file.
//!
//! Layout of a data directory:
//! - `LOCK`: held with an OS file lock while a node runs, so two nodes never share a dir.
//! - `wal-<seq>.log`: append-only segments of checksummed records. Each segment starts with
//!   the hard state, so old segments can be deleted whole once a snapshot covers them.
//! - `snapshot.bin`: the newest state-machine snapshot, replaced atomically
//!   (temp file, fsync, rename, fsync of the directory).
//! - `wal.synced`: how far the newest segment is known to be on disk (its number and a
//!   length), overwritten in place after each fdatasync without a sync of its own, so it
//!   costs one small write and can only lag the truth, never lead it. Recovery uses it to
//!   tell a torn tail (past that length) from damage (before it).
//! - `state.bin`: term, vote (with the floor and joining flag of `raft/join.rs`) and the
//!   number of the newest segment, checksummed and
//!   replaced atomically the same way whenever one of them changes (at elections and at
//!   each new segment, so it costs nothing per write). Term and vote are also in the log,
//!   but a log that lost its newest segment would take them back in time; this file never
//!   goes backwards, and it says which segment must exist.
//!
//! A record is `len: u32 LE | crc32: u32 LE | kind: u8 | payload`, the CRC covering kind and
//! payload. Replaying applies the records in order: a hard-state record replaces the hard
//! state, an entry at index `i` replaces the log from `i` on, and a snapshot mark says "a
//! snapshot up to (index, term) was installed here" (keep the log after it only if it
//! agrees). Every [`Storage::persist`] is one `write` and one `fdatasync` (group commit).
//!
//! A crash mid-write leaves a torn tail in the last segment: a record cut short (its
//! header or body runs past the end of the file, or into the zeros a file system leaves
//! where a write never landed), with nothing valid after it. That tail was never
//! acknowledged, so it is cut off. Anything else that fails to decode is damage: a bad
//! record followed by valid ones, or a complete record whose checksum fails (bit rot in
//! an acknowledged entry looks exactly like that). Opening then fails rather than silently
//! dropping acknowledged data.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::raft::{Entry, HardState, Index, LogPosition, Recovered, RecoveryError, Snapshot, Term};

const KIND_HARD_STATE: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_SNAPSHOT_MARK: u8 = 3;
const HEADER: usize = 9;
const MAX_RECORD: usize = 512 << 20;
/// The first snapshot format: no configuration (it predates membership changes).
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"RKVSNAP1";
/// The current format: the configuration in effect at the snapshot's index, then the data.
const SNAPSHOT_MAGIC: &[u8; 8] = b"RKVSNAP2";
/// A configuration larger than this in a snapshot header is damage, not a cluster.
const MAX_SNAPSHOT_MEMBERS: usize = 1 << 20;
const SNAPSHOT_FILE: &str = "snapshot.bin";
/// `state.bin` as first written: magic, term, vote, newest segment, CRC.
const STATE_MAGIC_V1: &[u8; 8] = b"RKVSTAT1";
const STATE_LEN_V1: usize = 36;
/// Since nodes join without a flag: magic, newest segment, the hard state, CRC.
const STATE_MAGIC: &[u8; 8] = b"RKVSTAT2";
const STATE_LEN: usize = 8 + 8 + HARD_STATE_LEN + 4;
const STATE_FILE: &str = "state.bin";
/// A hard state's bytes: term, vote, floor term, floor index, flags (bit 0: joining).
/// Records and files written before the floor existed hold only term and vote (16 bytes).
const HARD_STATE_LEN: usize = 33;
const HARD_STATE_LEN_V1: usize = 16;
const SYNCED_FILE: &str = "wal.synced";
const SYNCED_MAGIC: &[u8; 8] = b"RKVSYNC1";
const SYNCED_LEN: usize = 28;

/// `wal.synced`: segment `seq` was on disk up to `len` bytes.
fn encode_synced(seq: u64, len: u64) -> [u8; SYNCED_LEN] {
    let mut b = [0u8; SYNCED_LEN];
    b[..8].copy_from_slice(SYNCED_MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&b[..24]);
    b[24..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The watermark, if the file holds a whole valid one (a damaged or missing one only
/// means recovery knows less; it never makes recovery refuse).
fn decode_synced(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != SYNCED_LEN || &b[..8] != SYNCED_MAGIC {
        return None;
    }
    if crc32fast::hash(&b[..24]).to_le_bytes() != b[24..] {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    Some((u64_at(8), u64_at(16)))
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "corrupt write-ahead log {path} at byte {offset}: {reason}; {why}, so this is \
         damage, not a torn write. Refusing to start rather than lose data"
    )]
    CorruptLog {
        path: PathBuf,
        offset: u64,
        reason: String,
        /// What tells it from a write a crash cut short.
        why: &'static str,
    },
    #[error("corrupt snapshot {path}: {reason}")]
    CorruptSnapshot { path: PathBuf, reason: String },
    #[error(
        "corrupt term/vote file {path}: {reason}. Refusing to start: a node that forgot \
         its vote could vote twice in one term"
    )]
    CorruptState { path: PathBuf, reason: String },
    #[error("data directory {0} is in use by another process (its LOCK file is held)")]
    Locked(PathBuf),
    #[error("inconsistent data directory {path}: {reason}")]
    Inconsistent { path: PathBuf, reason: String },
    /// The files read fine but describe a state Raft can never be in (lost files).
    #[error("inconsistent data directory {path}: {source}")]
    BadState {
        path: PathBuf,
        #[source]
        source: RecoveryError,
    },
}

type Result<T> = std::result::Result<T, StorageError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

struct Segment {
    seq: u64,
    path: PathBuf,
    /// Highest entry index written to this segment (0 if none).
    max_index: Index,
}

/// What recovery found besides the state itself, for the node's start-up log.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: usize,
    /// Bytes of torn tail cut from the last segment.
    pub truncated_bytes: u64,
}

/// Seeded durability bugs (`raft-node --unsafe-bug`): each breaks one promise this
/// module keeps, so the disk faults can be shown to catch it. All off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageBugs {
    /// Acknowledge log writes after write(2), before fdatasync.
    pub no_fsync: bool,
    /// Create, rename and remove files without fsyncing the directory.
    pub no_dir_fsync: bool,
    /// Do not verify record checksums when recovering the log.
    pub trust_disk: bool,
}

/// The durable state of one node. All methods return only after an fsync.
pub struct Storage {
    dir: PathBuf,
    bugs: StorageBugs,
    _lock: File,
    segments: Vec<Segment>,
    current: File,
    /// Bytes in the current segment, all of them synced once `persist` returns.
    current_len: u64,
    /// `wal.synced`, rewritten in place after each sync of the log.
    synced: File,
    buf: Vec<u8>,
    hard_state: HardState,
}

/// What `state.bin` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DurableState {
    hard_state: HardState,
    /// The newest log segment: it, and every one from the oldest to it, must exist.
    newest_segment: u64,
}

impl DurableState {
    fn encode(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        b[..8].copy_from_slice(STATE_MAGIC);
        b[8..16].copy_from_slice(&self.newest_segment.to_le_bytes());
        b[16..16 + HARD_STATE_LEN].copy_from_slice(&hard_state_bytes(self.hard_state));
        let body = STATE_LEN - 4;
        let crc = crc32fast::hash(&b[..body]);
        b[body..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> std::result::Result<DurableState, &'static str> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let (len, v1) = match b.get(..8) {
            Some(m) if m == STATE_MAGIC => (STATE_LEN, false),
            Some(m) if m == STATE_MAGIC_V1 => (STATE_LEN_V1, true),
            _ => return Err("bad header"),
        };
        if b.len() != len {
            return Err("bad length");
        }
        if crc32fast::hash(&b[..len - 4]).to_le_bytes() != b[len - 4..] {
            return Err("checksum mismatch");
        }
        Ok(if v1 {
            DurableState {
                hard_state: hard_state_from(&b[8..24]).expect("16 bytes"),
                newest_segment: u64_at(24),
            }
        } else {
            DurableState {
                hard_state: hard_state_from(&b[16..16 + HARD_STATE_LEN]).ok_or("bad hard state")?,
                newest_segment: u64_at(8),
            }
        })
    }
}

fn hard_state_bytes(hs: HardState) -> [u8; HARD_STATE_LEN] {
    let mut p = [0u8; HARD_STATE_LEN];
    p[..8].copy_from_slice(&hs.term.to_le_bytes());
    p[8..16].copy_from_slice(&hs.vote.unwrap_or(0).to_le_bytes());
    p[16..24].copy_from_slice(&hs.floor.term.to_le_bytes());
    p[24..32].copy_from_slice(&hs.floor.index.to_le_bytes());
    p[32] = u8::from(hs.joining);
    p
}

/// Reads [`hard_state_bytes`], or the 16 bytes (term and vote) written before the floor
/// existed; `None` for any other length or unknown flags.
fn hard_state_from(p: &[u8]) -> Option<HardState> {
    let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().expect("8 bytes"));
    let (floor, joining) = match p.len() {
        HARD_STATE_LEN_V1 => (LogPosition::default(), false),
        HARD_STATE_LEN if p[32] <= 1 => (
            LogPosition {
                term: u64_at(16),
                index: u64_at(24),
            },
            p[32] == 1,
        ),
        _ => return None,
    };
    let vote = u64_at(8);
    Some(HardState {
        term: u64_at(0),
        vote: (vote != 0).then_some(vote),
        floor,
        joining,
    })
}

/// The newer of two hard states: the higher term, and within one term a vote over none
/// (a node votes at most once per term, so two votes in one term cannot both be real),
/// the higher floor, and joined over joining (a node joins once and never goes back).
fn newer(a: HardState, b: HardState) -> HardState {
    match a.term.cmp(&b.term) {
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Equal => HardState {
            term: a.term,
            vote: a.vote.or(b.vote),
            floor: a.floor.max(b.floor),
            joining: a.joining && b.joining,
        },
    }
}

fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016x}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `sync_dir`, unless the seeded `no-dir-fsync` bug skips it.
fn sync_dir_as(dir: &Path, bugs: StorageBugs) -> Result<()> {
    if bugs.no_dir_fsync {
        return Ok(());
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Creates `dir` and any missing parents, and fsyncs the parent of each one created: a
/// new directory's entry is durable only once its parent is synced, and without it a
/// power cut could lose the whole data directory after the node answered.
fn create_dir_durably(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn encode_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    buf.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
}

fn encode_hard_state(buf: &mut Vec<u8>, hs: HardState) {
    encode_record(buf, KIND_HARD_STATE, &hard_state_bytes(hs));
}

fn encode_mark(buf: &mut Vec<u8>, index: Index, term: Term) {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&index.to_le_bytes());
    p[8..].copy_from_slice(&term.to_le_bytes());
    encode_record(buf, KIND_SNAPSHOT_MARK, &p);
}

enum Record {
    HardState(HardState),
    Entry(Entry),
    Mark(Index, Term),
}

/// Decodes the record at the start of `data`; `Err` says why it is not a valid record.
fn decode_record(data: &[u8], verify: bool) -> std::result::Result<(Record, usize), String> {
    if data.len() < HEADER {
        return Err(format!(
            "{} bytes left, less than a record header",
            data.len()
        ));
    }
    let len = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD {
        return Err(format!("implausible record length {len}"));
    }
    if data.len() < 8 + len {
        return Err(format!(
            "record of {len} bytes runs past the end of the file"
        ));
    }
    let body = &data[8..8 + len];
    if verify && crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    let payload = &body[1..];
    let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
    let rec = match body[0] {
        KIND_HARD_STATE => match hard_state_from(payload) {
            Some(hs) => Record::HardState(hs),
            None => return Err("a hard-state record of the wrong size or flags".into()),
        },
        KIND_SNAPSHOT_MARK if payload.len() == 16 => Record::Mark(u64_at(0), u64_at(8)),
        KIND_ENTRY => Record::Entry(
            postcard::from_bytes(payload).map_err(|e| format!("undecodable entry: {e}"))?,
        ),
        k => return Err(format!("unknown record kind {k} or bad payload size")),
    };
    Ok((rec, 8 + len))
}

/// Whether the bad record at the start of `rest` is one a crash cut short: its header or
/// body runs past the end of the file, or the file ends in zeros that begin inside it
/// (the file system extended the file but the write never landed). A complete record
/// with nothing after it that fails its checksum is not: that is bit rot.
fn cut_short(rest: &[u8]) -> bool {
    if rest.len() < HEADER {
        return true;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let end = len.saturating_add(8);
    if end > rest.len() {
        return true;
    }
    let zeros_from = rest.len() - rest.iter().rev().take_while(|&&b| b == 0).count();
    zeros_from < end && end < rest.len()
}

/// Whether any valid record starts somewhere in `data` (used to tell a torn tail from
/// damage in the middle).
fn any_valid_record(data: &[u8]) -> bool {
    (0..data.len()).any(|i| decode_record(&data[i..], true).is_ok())
}

impl Storage {
    /// Opens (creating if needed) a data directory and recovers the node's durable state.
    pub fn open(dir: &Path) -> Result<(Storage, Recovered, RecoveryReport)> {
        Self::open_with(dir, StorageBugs::default())
    }

    /// [`Storage::open`], with seeded bugs switched on.
    pub fn open_with(
        dir: &Path,
        bugs: StorageBugs,
    ) -> Result<(Storage, Recovered, RecoveryReport)> {
        create_dir_durably(dir)?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StorageError::Locked(dir.into())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        // Leftovers of an interrupted snapshot or state write are garbage by construction.
        let _ = fs::remove_file(dir.join(format!("{SNAPSHOT_FILE}.tmp")));
        let _ = fs::remove_file(dir.join(format!("{STATE_FILE}.tmp")));

        let snapshot = Self::load_snapshot(dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err("list", dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_segment_name(&e.file_name().to_string_lossy()))
            .collect();
        seqs.sort_unstable();

        let mut report = RecoveryReport {
            segments: seqs.len(),
            ..Default::default()
        };
        let watermark = fs::read(dir.join(SYNCED_FILE))
            .ok()
            .and_then(|b| decode_synced(&b));
        let mut hard_state = HardState::default();
        let mut log: std::collections::BTreeMap<Index, Entry> = Default::default();
        let mut max_mark = 0;
        let mut segments = Vec::new();
        for (n, &seq) in seqs.iter().enumerate() {
            let path = dir.join(segment_name(seq));
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io_err("read", &path))?;
            let is_last = n + 1 == seqs.len();
            // Bytes of this segment known to have been synced: damage below them cannot
            // be a torn write.
            let floor = match watermark {
                Some((w, len)) if w == seq => len as usize,
                _ => 0,
            };
            let mut off = 0;
            let mut max_index = 0;
            while off < data.len() {
                match decode_record(&data[off..], !bugs.trust_disk) {
                    Ok((rec, used)) => {
                        report.records += 1;
                        match rec {
                            Record::HardState(hs) => hard_state = hs,
                            Record::Entry(e) => {
                                max_index = max_index.max(e.index);
                                let _ = log.split_off(&e.index);
                                log.insert(e.index, e);
                            }
                            Record::Mark(index, term) => {
                                max_mark = max_mark.max(index);
                                if log.get(&index).is_some_and(|e| e.term == term) {
                                    log = log.split_off(&(index + 1));
                                } else {
                                    log.clear();
                                }
                            }
                        }
                        off += used;
                    }
                    Err(reason) => {
                        let why = if !is_last {
                            Some("newer segments follow it")
                        } else if off < floor {
                            Some("wal.synced says the segment was on disk past it")
                        } else if any_valid_record(&data[off + 1..]) {
                            Some("valid records follow it")
                        } else if !cut_short(&data[off..]) {
                            Some("the record is complete (a torn write runs past the end)")
                        } else {
                            None
                        };
                        if let Some(why) = why {
                            return Err(StorageError::CorruptLog {
                                path,
                                offset: off as u64,
                                reason,
                                why,
                            });
                        }
                        report.truncated_bytes = (data.len() - off) as u64;
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err("open", &path))?;
                        f.set_len(off as u64)
                            .map_err(io_err("truncate torn tail of", &path))?;
                        f.sync_all().map_err(io_err("fsync", &path))?;
                        break;
                    }
                }
            }
            if data.len() < floor {
                return Err(StorageError::CorruptLog {
                    path,
                    offset: data.len() as u64,
                    reason: format!(
                        "the file ends at byte {} but {floor} bytes were synced",
                        data.len()
                    ),
                    why: "wal.synced says the segment was on disk past its end: it was cut short",
                });
            }
            segments.push(Segment {
                seq,
                path,
                max_index,
            });
        }

        let inconsistent = |reason: String| StorageError::Inconsistent {
            path: dir.into(),
            reason,
        };
        let durable = Self::load_state_file(dir)?;
        Self::check_segments(&seqs, durable, &segments).map_err(inconsistent)?;
        if let Some(d) = durable {
            hard_state = newer(hard_state, d.hard_state);
        }
        if seqs.is_empty() && durable.is_none() && snapshot.is_none() {
            // Nothing at all: a new node, or one whose disk was lost. Which of the two it
            // is, it learns from the other members before it takes part (raft/join.rs).
            hard_state.joining = true;
        }
        let (si, st) = snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));
        if max_mark > si {
            return Err(inconsistent(format!(
                "the log records a snapshot up to index {max_mark} but {SNAPSHOT_FILE} only reaches {si}"
            )));
        }
        if si > 0 {
            if log.get(&si).is_some_and(|e| e.term != st) {
                log.clear();
            } else {
                log = log.split_off(&(si + 1));
            }
        }
        let recovered = Recovered {
            hard_state,
            snapshot,
            entries: log.into_values().collect(),
        };
        recovered
            .validate()
            .map_err(|source| StorageError::BadState {
                path: dir.into(),
                source,
            })?;

        let (segments, current) = match segments.last() {
            Some(last) => {
                let current = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(io_err("open", &last.path))?;
                (segments, current)
            }
            None => {
                let (seg, current) = Self::create_segment(dir, 1, hard_state, None, bugs)?;
                (vec![seg], current)
            }
        };
        let newest_segment = segments.last().map_or(1, |s| s.seq);
        if durable
            != Some(DurableState {
                hard_state,
                newest_segment,
            })
        {
            Self::write_state_file(dir, hard_state, newest_segment, bugs)?;
        }
        // What a crashed process wrote may not be on disk yet: sync it before the
        // watermark says it is.
        current.sync_data().map_err(io_err(
            "fdatasync",
            &segments.last().expect("a segment").path,
        ))?;
        let current_len = current
            .metadata()
            .map_err(io_err("stat", &segments.last().expect("a segment").path))?
            .len();
        let synced_path = dir.join(SYNCED_FILE);
        let made = !synced_path.exists();
        let synced = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&synced_path)
            .map_err(io_err("open", &synced_path))?;
        if made {
            synced.sync_all().map_err(io_err("fsync", &synced_path))?;
            sync_dir_as(dir, bugs)?;
        }
        let mut storage = Storage {
            dir: dir.into(),
            bugs,
            _lock: lock,
            segments,
            current,
            current_len,
            synced,
            buf: Vec::new(),
            hard_state,
        };
        storage.mark_synced();
        storage.buf.reserve(64 << 10);
        Ok((storage, recovered, report))
    }

    /// Whether `dir` holds a node's durable term and vote (its state file): false for a
    /// new node, or one whose data was lost.
    pub fn holds_state(dir: &Path) -> bool {
        dir.join(STATE_FILE).is_file()
    }

    /// Whether `dir` holds any of a node's files besides the term/vote file: log segments
    /// or a snapshot. Without the term/vote file beside them, the data is damaged, not new.
    pub fn holds_log(dir: &Path) -> bool {
        dir.join(SNAPSHOT_FILE).is_file()
            || fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| parse_segment_name(&e.file_name().to_string_lossy()).is_some())
            })
    }

    /// Segments must run without a gap up to the newest one `state.bin` names. The one
    /// case without that file is a node that crashed during its very first start: one
    /// segment holding nothing but the initial term 0.
    fn check_segments(
        seqs: &[u64],
        durable: Option<DurableState>,
        segments: &[Segment],
    ) -> std::result::Result<(), String> {
        if let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) {
            if last - first + 1 != seqs.len() as u64 {
                return Err(format!(
                    "log segments {first}..={last} have gaps ({} files): a segment was lost",
                    seqs.len()
                ));
            }
        }
        match durable {
            Some(d) if seqs.last().is_none_or(|&last| last < d.newest_segment) => Err(format!(
                "{STATE_FILE} says the log reaches segment {} but the newest present is {}: \
                 the newest segment was lost",
                d.newest_segment,
                seqs.last().map_or("none".to_string(), |s| s.to_string())
            )),
            None if !seqs.is_empty() && (seqs != [1] || segments[0].max_index > 0) => Err(format!(
                "{STATE_FILE} (term and vote) is missing but the log has entries: \
                 starting without it could take the term back or forget a vote"
            )),
            _ => Ok(()),
        }
    }

    fn load_state_file(dir: &Path) -> Result<Option<DurableState>> {
        let path = dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(b) => {
                DurableState::decode(&b)
                    .map(Some)
                    .map_err(|reason| StorageError::CorruptState {
                        path,
                        reason: reason.to_string(),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Replaces `state.bin` atomically: temp file, fsync, rename, fsync directory.
    fn write_state_file(
        dir: &Path,
        hard_state: HardState,
        newest_segment: u64,
        bugs: StorageBugs,
    ) -> Result<()> {
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = DurableState {
            hard_state,
            newest_segment,
        }
        .encode();
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, dir.join(STATE_FILE)).map_err(io_err("rename", &tmp))?;
        sync_dir_as(dir, bugs)
    }

    /// A new segment starting with the hard state and, after a local snapshot, a mark of
    /// it: with the old segments deleted, the mark is what says a snapshot must exist.
    fn create_segment(
        dir: &Path,
        seq: u64,
        hs: HardState,
        mark: Option<(Index, Term)>,
        bugs: StorageBugs,
    ) -> Result<(Segment, File)> {
        let path = dir.join(segment_name(seq));
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let mut buf = Vec::new();
        encode_hard_state(&mut buf, hs);
        if let Some((index, term)) = mark {
            encode_mark(&mut buf, index, term);
        }
        f.write_all(&buf).map_err(io_err("write", &path))?;
        f.sync_all().map_err(io_err("fsync", &path))?;
        sync_dir_as(dir, bugs)?;
        Ok((
            Segment {
                seq,
                path,
                max_index: 0,
            },
            f,
        ))
    }

    fn load_snapshot(dir: &Path) -> Result<Option<Snapshot>> {
        let path = dir.join(SNAPSHOT_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let corrupt = |reason: &str| StorageError::CorruptSnapshot {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let v2 = data.len() >= 40 && &data[..8] == SNAPSHOT_MAGIC;
        if !v2 && (data.len() < 36 || &data[..8] != SNAPSHOT_MAGIC_V1) {
            return Err(corrupt("bad header"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().expect("4 bytes"));
        let (index, term, len) = (u64_at(8), u64_at(16), u64_at(24) as usize);
        // v1: header, CRC, data. v2: header, length of the configuration, CRC,
        // configuration, data. The CRC covers everything but the magic and itself.
        let (members_len, crc_at) = if v2 {
            (u32_at(32) as usize, 36)
        } else {
            (0, 32)
        };
        let body_from = crc_at + 4;
        if members_len > MAX_SNAPSHOT_MEMBERS
            || Some(data.len()) != (body_from + members_len).checked_add(len)
        {
            return Err(corrupt("length does not match its header"));
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&data[8..crc_at]);
        h.update(&data[body_from..]);
        if h.finalize() != u32_at(crc_at) {
            return Err(corrupt("checksum mismatch"));
        }
        let members = if v2 {
            postcard::from_bytes(&data[body_from..body_from + members_len])
                .map_err(|e| corrupt(&format!("undecodable configuration: {e}")))?
        } else {
            None
        };
        Ok(Some(Snapshot {
            index,
            term,
            data: Arc::new(data[body_from + members_len..].to_vec()),
            members,
        }))
    }

    /// Writes the snapshot file atomically: temp file, fsync, rename, fsync directory.
    fn write_snapshot_file(&self, snap: &Snapshot) -> Result<()> {
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let dst = self.dir.join(SNAPSHOT_FILE);
        let members = postcard::to_stdvec(&snap.members).map_err(|e| {
            io_err("encode the configuration for", &tmp)(io::Error::other(e.to_string()))
        })?;
        let mut header = Vec::with_capacity(40 + members.len());
        header.extend_from_slice(SNAPSHOT_MAGIC);
        header.extend_from_slice(&snap.index.to_le_bytes());
        header.extend_from_slice(&snap.term.to_le_bytes());
        header.extend_from_slice(&(snap.data.len() as u64).to_le_bytes());
        header.extend_from_slice(&(members.len() as u32).to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&header[8..36]);
        h.update(&members);
        h.update(&snap.data);
        header.extend_from_slice(&h.finalize().to_le_bytes());
        header.extend_from_slice(&members);
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&header)
            .and_then(|_| f.write_all(&snap.data))
            .and_then(|_| f.sync_all())
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &dst).map_err(io_err("rename", &tmp))?;
        sync_dir_as(&self.dir, self.bugs)
    }

    /// Makes a `Ready`'s durable part durable: an installed snapshot, the hard state and new
    /// entries, in one write and one fdatasync of the log.
    pub fn persist(
        &mut self,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<()> {
        if let Some(snap) = snapshot {
            self.write_snapshot_file(snap)?;
        }
        self.buf.clear();
        if let Some(snap) = snapshot {
            encode_mark(&mut self.buf, snap.index, snap.term);
        }
        if let Some(hs) = hard_state {
            if hs != self.hard_state {
                // Before the log: the term and vote never go back, whatever the log loses.
                let newest = self.segments.last().map_or(1, |s| s.seq);
                Self::write_state_file(&self.dir, hs, newest, self.bugs)?;
            }
            encode_hard_state(&mut self.buf, hs);
            self.hard_state = hs;
        }
        let mut payload = Vec::new();
        for e in entries {
            payload.clear();
            postcard::to_io(e, &mut payload).expect("entries always encode");
            encode_record(&mut self.buf, KIND_ENTRY, &payload);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let seg = self.segments.last_mut().expect("a current segment");
        if let Some(last) = entries.last() {
            seg.max_index = seg.max_index.max(last.index);
        }
        self.current
            .write_all(&self.buf)
            .map_err(io_err("write", &seg.path))?;
        if !self.bugs.no_fsync {
            self.current
                .sync_data()
                .map_err(io_err("fdatasync", &seg.path))?;
        }
        self.current_len += self.buf.len() as u64;
        self.mark_synced();
        Ok(())
    }

    /// Records in `wal.synced` how far the current segment is on disk. Not synced: it may
    /// lag after a power cut, which only weakens what recovery can tell, and a failed
    /// write is harmless for the same reason.
    fn mark_synced(&self) {
        use std::os::unix::fs::FileExt;
        let seq = self.segments.last().map_or(1, |s| s.seq);
        let _ = self
            .synced
            .write_all_at(&encode_synced(seq, self.current_len), 0);
    }

    /// Records a snapshot the state machine took locally and frees the log it covers:
    /// starts a new segment and deletes the segments whose entries it covers.
    pub fn save_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        self.write_snapshot_file(snap)?;
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let (seg, file) = Self::create_segment(
            &self.dir,
            seq,
            self.hard_state,
            Some((snap.index, snap.term)),
            self.bugs,
        )?;
        Self::write_state_file(&self.dir, self.hard_state, seq, self.bugs)?;
        self.current_len = file.metadata().map_err(io_err("stat", &seg.path))?.len();
        self.current = file;
        self.segments.push(seg);
        self.mark_synced();
        let keep_from = self
            .segments
            .iter()
            .position(|s| s.max_index > snap.index)
            .unwrap_or(self.segments.len() - 1);
        for old in self.segments.drain(..keep_from) {
            fs::remove_file(&old.path).map_err(io_err("remove", &old.path))?;
        }
        sync_dir_as(&self.dir, self.bugs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Payload;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Command(format!("cmd{index}").into_bytes()),
        }
    }

    fn joining() -> HardState {
        HardState {
            joining: true,
            ..Default::default()
        }
    }

    fn hs(term: Term, vote: Option<u64>) -> Option<HardState> {
        Some(HardState {
            term,
            vote,
            ..Default::default()
        })
    }

    /// Sets `wal.synced` back to `len` bytes of segment `seq`: what it says after a power
    /// cut that came before the later syncs reached it. A torn write can only be past it.
    fn lag_watermark(dir: &Path, seq: u64, len: u64) {
        fs::write(dir.join(SYNCED_FILE), encode_synced(seq, len)).unwrap();
    }

    fn last_segment(dir: &Path) -> PathBuf {
        let mut segs: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".log"))
            .collect();
        segs.sort();
        segs.pop().unwrap()
    }

    #[test]
    fn restart_recovers_term_vote_log_and_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, rec, _) = Storage::open(dir.path()).unwrap();
            // Nothing on disk: the node must learn from the members whether it founds.
            assert_eq!(rec.hard_state, joining());
            assert!(rec.entries.is_empty() && rec.snapshot.is_none());
            s.persist(
                hs(3, Some(2)),
                None,
                &[entry(1, 1), entry(2, 3), entry(3, 3)],
            )
            .unwrap();
            // A conflicting append replaces the tail from index 3.
            s.persist(hs(4, None), None, &[entry(3, 4), entry(4, 4)])
                .unwrap();
        }
        let (mut s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(
            rec.hard_state,
            HardState {
                term: 4,
                vote: None,
                ..Default::default()
            }
        );
        let got: Vec<_> = rec.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(1, 1), (2, 3), (3, 4), (4, 4)]);
        let snap = Snapshot {
            index: 3,
            term: 4,
            data: Arc::new(b"state".to_vec()),
            members: None,
        };
        s.save_snapshot(&snap).unwrap();
        s.persist(hs(5, Some(1)), None, &[entry(5, 5)]).unwrap();
        drop(s);
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.as_ref().unwrap().data.as_slice(), b"state");
        assert_eq!(
            rec.hard_state,
            HardState {
                term: 5,
                vote: Some(1),
                ..Default::default()
            }
        );
        let got: Vec<_> = rec.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(4, 4), (5, 5)]);
    }

    #[test]
    fn installed_snapshot_discards_a_disagreeing_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            s.persist(hs(2, None), None, &[entry(1, 1), entry(2, 2), entry(3, 2)])
                .unwrap();
            let snap = Snapshot {
                index: 2,
                term: 3,
                data: Arc::new(vec![7]),
                members: None,
            };
            s.persist(hs(3, None), Some(&snap), &[]).unwrap();
        }
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.unwrap().index, 2);
        assert!(
            rec.entries.is_empty(),
            "entries of a log that disagreed with the snapshot"
        );
    }

    #[test]
    fn snapshots_and_the_log_keep_the_configuration_and_old_snapshots_still_read() {
        use crate::raft::Membership;
        let dir = tempfile::tempdir().unwrap();
        let mut members = Membership::of_voters([1, 2]);
        members.learners.insert(4);
        members.addresses.insert(4, "10.0.0.4:7000".into());
        let config = Entry {
            index: 3,
            term: 2,
            payload: Payload::Members(members.clone()),
        };
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            s.persist(
                hs(2, None),
                None,
                &[entry(1, 1), entry(2, 2), config.clone()],
            )
            .unwrap();
            s.save_snapshot(&Snapshot {
                index: 2,
                term: 2,
                data: Arc::new(vec![9, 9]),
                members: Some(Membership::of_voters([1, 2, 3])),
            })
            .unwrap();
        }
        let (s, rec, _) = Storage::open(dir.path()).unwrap();
        drop(s);
        let snap = rec.snapshot.unwrap();
        assert_eq!(snap.members, Some(Membership::of_voters([1, 2, 3])));
        assert_eq!(*snap.data, vec![9, 9]);
        assert_eq!(rec.entries, vec![config]);
        // A snapshot file of the first format (no configuration) reads as the starting one.
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut v1 = Vec::new();
        v1.extend_from_slice(SNAPSHOT_MAGIC_V1);
        for x in [2u64, 2, 2] {
            v1.extend_from_slice(&x.to_le_bytes());
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&v1[8..32]);
        h.update(&[9, 9]);
        v1.extend_from_slice(&h.finalize().to_le_bytes());
        v1.extend_from_slice(&[9, 9]);
        fs::write(&path, &v1).unwrap();
        let (s, rec, _) = Storage::open(dir.path()).unwrap();
        drop(s);
        let snap = rec.snapshot.unwrap();
        assert_eq!((snap.members, snap.data.to_vec()), (None, vec![9, 9]));
        // A configuration length beyond the file is damage, named as such.
        let mut bad = fs::read(&path).unwrap();
        bad[..8].copy_from_slice(SNAPSHOT_MAGIC);
        fs::write(&path, &bad).unwrap();
        assert!(matches!(
            Storage::open(dir.path()),
            Err(StorageError::CorruptSnapshot { .. })
        ));
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let seg;
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            s.persist(hs(1, Some(1)), None, &[entry(1, 1), entry(2, 1)])
                .unwrap();
            seg = last_segment(dir.path());
            let synced = fs::metadata(&seg).unwrap().len();
            s.persist(None, None, &[entry(3, 1)]).unwrap();
            // The power went before the last write was synced.
            lag_watermark(dir.path(), 1, synced);
        }
        // Tear the last record: drop its final 5 bytes.
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        // And a zero-filled extension, as a crash after a size update can leave.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        drop(f);
        let (mut s, rec, report) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 2);
        assert!(report.truncated_bytes > 100);
        // The log stays writable after the cut, and the next start sees a clean file.
        s.persist(None, None, &[entry(3, 1)]).unwrap();
        drop(s);
        let (_s, rec, report) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 3);
        assert_eq!(report.truncated_bytes, 0);
    }

    #[test]
    fn corrupt_middle_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            for i in 1..=5 {
                s.persist(hs(1, None), None, &[entry(i, 1)]).unwrap();
            }
        }
        let seg = last_segment(dir.path());
        let mut data = fs::read(&seg).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0xFF;
        fs::write(&seg, &data).unwrap();
        match Storage::open(dir.path()) {
            Err(StorageError::CorruptLog { offset, .. }) => assert!(offset > 0),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("corruption in the middle went unnoticed"),
        }
        // Nothing was cut: the file is as we left it.
        assert_eq!(fs::read(&seg).unwrap(), data);
    }

    #[test]
    fn bit_rot_in_the_last_record_is_an_error_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            s.persist(hs(1, Some(1)), None, &[entry(1, 1), entry(2, 1)])
                .unwrap();
        }
        let seg = last_segment(dir.path());
        let good = fs::read(&seg).unwrap();
        for back in [1, 3, 6] {
            let mut data = good.clone();
            let at = data.len() - back;
            data[at] ^= 0x10;
            fs::write(&seg, &data).unwrap();
            for watermark in [true, false] {
                if !watermark {
                    // Even without wal.synced (a node from before it), a complete record
                    // that fails its checksum is damage.
                    fs::remove_file(dir.path().join(SYNCED_FILE)).unwrap();
                }
                match Storage::open(dir.path()) {
                    Err(e @ StorageError::CorruptLog { .. }) => {
                        let why = if watermark {
                            "wal.synced"
                        } else {
                            "the record is complete"
                        };
                        assert!(e.to_string().contains(why), "{e}")
                    }
                    Err(e) => panic!("wrong error: {e}"),
                    Ok(_) => panic!("a flipped bit in an acknowledged entry was cut off"),
                }
                assert_eq!(fs::read(&seg).unwrap(), data, "nothing was cut");
                lag_watermark(dir.path(), 1, good.len() as u64);
            }
        }
        // The same file with its last byte missing is a torn write if the write was never
        // synced, and is cut.
        lag_watermark(dir.path(), 1, 0);
        fs::write(&seg, &good[..good.len() - 1]).unwrap();
        let (_s, rec, report) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 1);
        assert!(report.truncated_bytes > 0);
    }

    /// A data directory with two segments: term 5 / vote 3 and entries 1..=3 in the first,
    /// a snapshot at 2, then term 6 / vote 1 and entry 4 in the second.
    fn two_segments(dir: &Path) -> (PathBuf, PathBuf) {
        let (mut s, _, _) = Storage::open(dir).unwrap();
        s.persist(
            hs(5, Some(3)),
            None,
            &[entry(1, 5), entry(2, 5), entry(3, 5)],
        )
        .unwrap();
        let first = last_segment(dir);
        s.save_snapshot(&Snapshot {
            index: 2,
            term: 5,
            data: Arc::new(b"kv".to_vec()),
            members: None,
        })
        .unwrap();
        s.persist(hs(6, Some(1)), None, &[entry(4, 6)]).unwrap();
        (first, last_segment(dir))
    }

    fn refused(dir: &Path, what: &str) -> String {
        match Storage::open(dir) {
            Err(e) => e.to_string(),
            Ok((_, rec, _)) => panic!("{what}: started with {:?}", rec.hard_state),
        }
    }

    #[test]
    fn term_and_vote_never_go_back_and_lost_segments_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, newest) = two_segments(dir.path());
        assert_ne!(first, newest);
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.hard_state, hs(6, Some(1)).unwrap());
        drop(_s);

        // The newest segment emptied: its entries are gone, but not the term and vote.
        // (With wal.synced gone too, as nothing else would be: with it, an emptied
        // segment is refused as cut short.)
        let saved = fs::read(&newest).unwrap();
        fs::write(&newest, b"").unwrap();
        assert!(refused(dir.path(), "synced segment emptied").contains("cut short"));
        fs::remove_file(dir.path().join(SYNCED_FILE)).unwrap();
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(
            rec.hard_state,
            hs(6, Some(1)).unwrap(),
            "term/vote went back"
        );
        drop(_s);
        fs::write(&newest, &saved).unwrap();

        // The newest segment deleted: refused, naming what is missing.
        fs::rename(&newest, dir.path().join("aside")).unwrap();
        let e = refused(dir.path(), "newest segment deleted");
        assert!(e.contains("the newest segment was lost"), "{e}");
        fs::rename(dir.path().join("aside"), &newest).unwrap();

        // The term/vote file deleted, or damaged: refused.
        let state = dir.path().join(STATE_FILE);
        let good = fs::read(&state).unwrap();
        fs::remove_file(&state).unwrap();
        let e = refused(dir.path(), "state file deleted");
        assert!(e.contains("is missing"), "{e}");
        let mut bad = good.clone();
        bad[9] ^= 1;
        fs::write(&state, &bad).unwrap();
        let e = refused(dir.path(), "state file damaged");
        assert!(e.contains("corrupt term/vote file"), "{e}");
        fs::write(&state, &good).unwrap();
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.hard_state, hs(6, Some(1)).unwrap());
    }

    #[test]
    fn a_gap_between_segments_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            for i in 1..=3u64 {
                s.persist(hs(1, None), None, &[entry(i, 1)]).unwrap();
                // A snapshot that covers nothing: a new segment, none deleted.
                s.save_snapshot(&Snapshot {
                    index: 0,
                    term: 0,
                    data: Arc::new(b"kv".to_vec()),
                    members: None,
                })
                .unwrap();
            }
        }
        let mut segs: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".log"))
            .collect();
        segs.sort();
        assert!(segs.len() >= 3, "{segs:?}");
        fs::remove_file(&segs[1]).unwrap();
        let e = refused(dir.path(), "a middle segment deleted");
        assert!(e.contains("have gaps"), "{e}");
    }

    #[test]
    fn a_new_data_directory_is_created_with_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b").join("node");
        assert!(!Storage::holds_log(&deep));
        let (mut s, _, _) = Storage::open(&deep).unwrap();
        s.persist(hs(1, None), None, &[entry(1, 1)]).unwrap();
        assert!(Storage::holds_state(&deep) && Storage::holds_log(&deep));
        drop(s);
        fs::remove_file(deep.join(STATE_FILE)).unwrap();
        assert!(!Storage::holds_state(&deep) && Storage::holds_log(&deep));
    }

    #[test]
    fn the_join_and_the_floor_survive_restarts_and_older_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let rejoined = HardState {
            term: 7,
            vote: Some(3),
            floor: LogPosition { term: 6, index: 40 },
            joining: false,
        };
        {
            let (mut s, rec, _) = Storage::open(dir.path()).unwrap();
            assert_eq!(rec.hard_state, joining());
            s.persist(Some(rejoined), None, &[]).unwrap();
        }
        let (s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.hard_state, rejoined);
        drop(s);
        // state.bin holds it in its new form.
        let newest = DurableState::decode(&fs::read(dir.path().join(STATE_FILE)).unwrap());
        assert_eq!(newest.unwrap().hard_state, rejoined);

        // Files written before the floor existed: joined, no floor.
        let mut v1 = [0u8; STATE_LEN_V1];
        v1[..8].copy_from_slice(STATE_MAGIC_V1);
        v1[8..16].copy_from_slice(&5u64.to_le_bytes());
        v1[16..24].copy_from_slice(&2u64.to_le_bytes());
        v1[24..32].copy_from_slice(&1u64.to_le_bytes());
        let crc = crc32fast::hash(&v1[..32]);
        v1[32..].copy_from_slice(&crc.to_le_bytes());
        let old = DurableState::decode(&v1).unwrap();
        assert_eq!(old.hard_state, hs(5, Some(2)).unwrap());
        assert_eq!(old.newest_segment, 1);
        let mut rec16 = Vec::new();
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&9u64.to_le_bytes());
        encode_record(&mut rec16, KIND_HARD_STATE, &p);
        match decode_record(&rec16, true).unwrap().0 {
            Record::HardState(h) => assert_eq!(h, hs(9, None).unwrap()),
            _ => panic!("not a hard state"),
        }
        // A flag byte no version wrote is damage, not a state.
        let mut bad = Vec::new();
        let mut p = hard_state_bytes(rejoined);
        p[32] = 2;
        encode_record(&mut bad, KIND_HARD_STATE, &p);
        assert!(decode_record(&bad, true).is_err());
        // Joined over joining, within one term; the higher floor.
        let merged = newer(joining(), HardState::default());
        assert!(!merged.joining);
    }

    #[test]
    fn a_crash_during_the_first_start_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path()).unwrap());
        // As if the node died after creating its first segment, before state.bin.
        fs::remove_file(dir.path().join(STATE_FILE)).unwrap();
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        // Still joining: the crash is not taken for a founded node.
        assert_eq!(rec.hard_state, joining());
        assert!(dir.path().join(STATE_FILE).is_file());
    }

    #[test]
    fn corrupt_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            s.persist(hs(1, None), None, &[entry(1, 1)]).unwrap();
            let snap = Snapshot {
                index: 1,
                term: 1,
                data: Arc::new(vec![1, 2, 3, 4]),
                members: None,
            };
            s.save_snapshot(&snap).unwrap();
        }
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut data = fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 1;
        fs::write(&path, data).unwrap();
        assert!(matches!(
            Storage::open(dir.path()),
            Err(StorageError::CorruptSnapshot { .. })
        ));
    }

    #[test]
    fn a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, _, _) = Storage::open(dir.path()).unwrap();
        assert!(matches!(
            Storage::open(dir.path()),
            Err(StorageError::Locked(_))
        ));
    }

    #[test]
    fn old_segments_are_deleted_after_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Storage::open(dir.path()).unwrap();
        for round in 0..5u64 {
            let base = round * 10;
            let es: Vec<_> = (base + 1..=base + 10).map(|i| entry(i, 1)).collect();
            s.persist(hs(1, None), None, &es).unwrap();
            let snap = Snapshot {
                index: base + 10,
                term: 1,
                data: Arc::new(vec![]),
                members: None,
            };
            s.save_snapshot(&snap).unwrap();
        }
        let logs = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count();
        assert_eq!(logs, 1);
        drop(s);
        let (_s, rec, _) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.unwrap().index, 50);
        assert!(rec.entries.is_empty());
    }

    #[test]
    fn a_deleted_snapshot_is_noticed_after_a_local_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            let es: Vec<_> = (1..=10).map(|i| entry(i, 1)).collect();
            s.persist(hs(1, Some(1)), None, &es).unwrap();
            s.save_snapshot(&Snapshot {
                index: 10,
                term: 1,
                data: Arc::new(b"all ten".to_vec()),
                members: None,
            })
            .unwrap();
        }
        // The only segment left holds no entry: without the snapshot, nothing would say
        // that ten entries were ever there.
        fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
        match Storage::open(dir.path()) {
            Err(StorageError::Inconsistent { reason, .. }) => {
                assert!(reason.contains("snapshot up to index 10"), "{reason}")
            }
            Err(e) => panic!("wrong refusal: {e}"),
            Ok((_, rec, _)) => panic!("started empty: {} entries", rec.entries.len()),
        }
    }

    #[test]
    fn damage_below_what_was_synced_is_never_taken_for_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _, _) = Storage::open(dir.path()).unwrap();
            for i in 1..=20 {
                s.persist(hs(1, None), None, &[entry(i, 1)]).unwrap();
            }
        }
        let seg = last_segment(dir.path());
        let data = fs::read(&seg).unwrap();
        // Cut in half: the records after the cut were synced, so this is damage.
        fs::write(&seg, &data[..data.len() / 2]).unwrap();
        match Storage::open(dir.path()) {
            Err(StorageError::CorruptLog { why, .. }) => {
                assert!(why.contains("wal.synced"), "{why}")
            }
            Err(e) => panic!("wrong refusal: {e}"),
            Ok(_) => panic!("a synced log cut in half was trimmed as a torn write"),
        }
        // A flipped bit in the last record's length field.
        fs::write(&seg, &data).unwrap();
        let last_record = {
            let mut off = 0;
            let mut last = 0;
            while off < data.len() {
                last = off;
                off += decode_record(&data[off..], true).unwrap().1;
            }
            last
        };
        let mut flipped = data.clone();
        flipped[last_record + 2] ^= 0x10;
        fs::write(&seg, &flipped).unwrap();
        assert!(matches!(
            Storage::open(dir.path()),
            Err(StorageError::CorruptLog { .. })
        ));
        // A real torn write (bytes past what was synced) is still cut, and the node starts.
        let mut torn = data.clone();
        torn.extend_from_slice(&[7, 0, 0, 0, 1, 2]);
        fs::write(&seg, &torn).unwrap();
        let (_s, rec, report) = Storage::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 20);
        assert_eq!(report.truncated_bytes, 6);
    }
}
