//! Majority arithmetic, in one place: how many votes win an election, which index a
//! majority holds (the commit index, §3.6), and whether a leader still hears from a
//! majority (check-quorum, §6.2). Cluster membership is fixed, so a quorum is a count.

use std::collections::BTreeMap;

use super::{Index, NodeId};

/// How many of `voters` make a majority.
pub(super) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index that a majority of `matched` (every voter's match index, the
/// leader's own last index among them) has reached.
pub(super) fn majority_index(mut matched: Vec<Index>) -> Index {
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[majority(matched.len()) - 1]
}

/// Whether a leader that heard from `active_peers` of its peers recently (itself counted
/// besides) still hears from a majority of `voters`.
pub(super) fn hears_majority(active_peers: usize, voters: usize) -> bool {
    1 + active_peers >= majority(voters)
}

/// The votes of one election (or pre-vote), by voter.
#[derive(Debug, Default)]
pub(super) struct Tally(BTreeMap<NodeId, bool>);

/// Where an election stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Won,
    Lost,
    Pending,
}

impl Tally {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// Records `voter`'s answer (a repeated answer replaces the first) and says where the
    /// election of `voters` stands.
    pub(super) fn record(&mut self, voter: NodeId, granted: bool, voters: usize) -> Outcome {
        self.0.insert(voter, granted);
        let yes = self.0.values().filter(|&&g| g).count();
        let no = self.0.len() - yes;
        if yes >= majority(voters) {
            Outcome::Won
        } else if no >= majority(voters) {
            Outcome::Lost
        } else {
            Outcome::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majorities_of_small_clusters() {
        assert_eq!(
            (1..=7).map(majority).collect::<Vec<_>>(),
            [1, 2, 2, 3, 3, 4, 4]
        );
        // Five voters: the third highest match index is held by three of them.
        assert_eq!(majority_index(vec![9, 3, 7, 5, 8]), 7);
        assert_eq!(majority_index(vec![4]), 4);
        assert!(hears_majority(2, 5) && !hears_majority(1, 5));
        assert!(hears_majority(0, 1));
    }

    #[test]
    fn a_tally_counts_each_voter_once() {
        let mut t = Tally::default();
        assert_eq!(t.record(1, true, 3), Outcome::Pending);
        assert_eq!(t.record(2, false, 3), Outcome::Pending);
        assert_eq!(t.record(2, false, 3), Outcome::Pending, "a repeated no");
        assert_eq!(t.record(3, true, 3), Outcome::Won);
        t.clear();
        t.record(1, true, 3);
        t.record(2, false, 3);
        assert_eq!(t.record(3, false, 3), Outcome::Lost);
    }
}
