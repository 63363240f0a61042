//! The in-memory view of the replicated log: a snapshot base plus the entries after it.

use super::message::{Entry, Index, Term};

/// The log as the core sees it. Entries before `snapshot_index` were compacted into a
/// snapshot; `unstable_from` marks the first entry not yet handed to storage.
#[derive(Debug, Clone)]
pub struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: Vec<Entry>,
    unstable_from: Index,
}

impl RaftLog {
    /// A log that starts after a snapshot (index 0 / term 0 for an empty one), with
    /// `entries` already durable.
    pub fn new(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>) -> Self {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                snapshot_index + 1 + i as u64,
                "recovered log is not contiguous"
            );
        }
        let last = snapshot_index + entries.len() as u64;
        RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
            unstable_from: last + 1,
        }
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }

    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// Number of entries held in memory (after the snapshot).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The term of the entry at `index`, if it is known (in the log or the snapshot base).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            Some(self.snapshot_term)
        } else {
            self.entry(index).map(|e| e.term)
        }
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    /// Entries in `from..=to`, at most `max_bytes` of them (but at least one).
    pub fn slice(&self, from: Index, to: Index, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = from;
        while i <= to && out.len() < max_count {
            let Some(e) = self.entry(i) else { break };
            bytes += e.size_hint();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
            i += 1;
        }
        out
    }

    pub fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "append must extend the log"
        );
        self.entries.push(entry);
    }

    /// Removes every entry at `index` and after.
    pub fn truncate_from(&mut self, index: Index) {
        assert!(
            index > self.snapshot_index,
            "cannot truncate into the snapshot"
        );
        self.entries
            .truncate((index - self.snapshot_index - 1) as usize);
        self.unstable_from = self.unstable_from.min(index);
    }

    /// The entries storage has not seen yet; storage must treat the first one's index as
    /// "replace everything from here on".
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let last = self.last_index();
        if self.unstable_from > last {
            self.unstable_from = last + 1;
            return Vec::new();
        }
        let from = self.unstable_from.max(self.snapshot_index + 1);
        let out = self.slice(from, last, usize::MAX, usize::MAX);
        self.unstable_from = last + 1;
        out
    }

    /// Drops the entries up to `index` (inclusive), which a snapshot now covers.
    pub fn compact(&mut self, index: Index) {
        if index <= self.snapshot_index {
            return;
        }
        let term = self.term(index).expect("compact beyond the log");
        let drop = (index - self.snapshot_index) as usize;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.unstable_from = self.unstable_from.max(index + 1);
    }

    /// Replaces the whole log by a snapshot base (the log disagreed with the snapshot).
    pub fn reset(&mut self, index: Index, term: Term) {
        self.entries.clear();
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.unstable_from = index + 1;
    }

    /// The first index of the run of entries with `term` that contains `index`, never below
    /// `floor`.
    pub fn first_index_of_term_run(&self, index: Index, floor: Index) -> Index {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > floor && i > self.snapshot_index + 1 && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i.max(floor)
    }

    /// The last index holding an entry of `term`, searching back from the end.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term == term)
            .map(|e| e.index)
    }
}
