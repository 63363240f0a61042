//! The durable state a node restarts from, and the one check that it makes sense.
//!
//! Storage checks it when it reads a data directory and the core checks it again when it
//! is handed one (a test or a tool may build it by hand); both call [`Recovered::validate`].

use super::{Entry, HardState, Index, Snapshot, Term, TERM_LIMIT};

/// Durable state a node restarts from.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The log after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// Why recovered state cannot be trusted. Any of these means lost or damaged files: the
/// node must refuse to start rather than let its term, vote or log go backwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error(
        "the log starts at index {first} but the snapshot ends at {snapshot}: entries are missing"
    )]
    Gap { first: Index, snapshot: Index },
    #[error("the log is not contiguous: index {found} follows {previous}")]
    NotContiguous { previous: Index, found: Index },
    #[error("entry {index} goes back to term {term} after term {previous}")]
    TermGoesBack {
        index: Index,
        term: Term,
        previous: Term,
    },
    #[error("the log holds term {log} but the persisted current term is {persisted}")]
    TermAheadOfHardState { log: Term, persisted: Term },
    #[error(
        "the persisted term {term} is past the highest term a node holds ({TERM_LIMIT}): only \
         a forged or corrupt message accepted by an older raft-node could have put it there, \
         and no election can follow it; this member's data cannot be used, start a new cluster"
    )]
    TermPastLimit { term: Term },
}

impl Recovered {
    /// Checks that the log continues the snapshot without gaps, that terms never go back
    /// (starting from the snapshot's), and that the persisted term covers the log's.
    pub fn validate(&self) -> Result<(), RecoveryError> {
        if self.hard_state.term > TERM_LIMIT {
            return Err(RecoveryError::TermPastLimit {
                term: self.hard_state.term,
            });
        }
        let (si, st) = self.snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));
        let (mut prev_index, mut prev_term) = (si, st);
        for (n, e) in self.entries.iter().enumerate() {
            if e.index != prev_index + 1 {
                return Err(if n == 0 {
                    RecoveryError::Gap {
                        first: e.index,
                        snapshot: si,
                    }
                } else {
                    RecoveryError::NotContiguous {
                        previous: prev_index,
                        found: e.index,
                    }
                });
            }
            if e.term < prev_term {
                return Err(RecoveryError::TermGoesBack {
                    index: e.index,
                    term: e.term,
                    previous: prev_term,
                });
            }
            (prev_index, prev_term) = (e.index, e.term);
        }
        if prev_term > self.hard_state.term {
            return Err(RecoveryError::TermAheadOfHardState {
                log: prev_term,
                persisted: self.hard_state.term,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::raft::Payload;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Noop,
        }
    }

    fn state(term: Term, snapshot: Option<(Index, Term)>, entries: &[(Index, Term)]) -> Recovered {
        Recovered {
            hard_state: HardState {
                term,
                vote: None,
                ..Default::default()
            },
            snapshot: snapshot.map(|(index, term)| Snapshot {
                index,
                term,
                data: Arc::new(Vec::new()),
                members: None,
            }),
            entries: entries.iter().map(|&(i, t)| entry(i, t)).collect(),
        }
    }

    #[test]
    fn every_way_recovered_state_can_be_wrong_is_named() {
        assert_eq!(state(0, None, &[]).validate(), Ok(()));
        assert_eq!(state(3, Some((5, 2)), &[(6, 2), (7, 3)]).validate(), Ok(()));
        assert_eq!(
            state(3, Some((5, 2)), &[(7, 2)]).validate(),
            Err(RecoveryError::Gap {
                first: 7,
                snapshot: 5
            })
        );
        assert_eq!(
            state(3, None, &[(1, 1), (3, 1)]).validate(),
            Err(RecoveryError::NotContiguous {
                previous: 1,
                found: 3
            })
        );
        // The first entry after a snapshot may not go below the snapshot's term either.
        assert_eq!(
            state(3, Some((5, 2)), &[(6, 1)]).validate(),
            Err(RecoveryError::TermGoesBack {
                index: 6,
                term: 1,
                previous: 2
            })
        );
        assert_eq!(
            state(1, None, &[(1, 1), (2, 2)]).validate(),
            Err(RecoveryError::TermAheadOfHardState {
                log: 2,
                persisted: 1
            })
        );
        // A snapshot's own term counts against the hard state.
        assert!(state(1, Some((5, 2)), &[]).validate().is_err());
    }
}
