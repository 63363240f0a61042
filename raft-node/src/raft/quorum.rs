//! Majority arithmetic, in one place: how many votes win an election, which index a
//! majority holds (the commit index, §3.6), and whether a leader still hears from a
//! majority (check-quorum, §6.2). Only voters of the counting node's configuration
//! count (`membership.rs`).

use std::collections::{BTreeMap, BTreeSet};

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
    /// election among `voters` stands. Answers from anyone else are not counted.
    pub(super) fn record(
        &mut self,
        voter: NodeId,
        granted: bool,
        voters: &BTreeSet<NodeId>,
    ) -> Outcome {
        if voters.contains(&voter) {
            self.0.insert(voter, granted);
        }
        let counted = self.0.iter().filter(|(v, _)| voters.contains(v));
        let yes = counted.clone().filter(|(_, &g)| g).count();
        let no = counted.count() - yes;
        let need = majority(voters.len());
        if yes >= need {
            Outcome::Won
        } else if no >= need {
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
    }

    #[test]
    fn a_tally_counts_each_voter_once_and_nobody_else() {
        let v: BTreeSet<NodeId> = [1, 2, 3].into();
        let mut t = Tally::default();
        assert_eq!(t.record(1, true, &v), Outcome::Pending);
        assert_eq!(t.record(2, false, &v), Outcome::Pending);
        assert_eq!(t.record(2, false, &v), Outcome::Pending, "a repeated no");
        assert_eq!(t.record(4, true, &v), Outcome::Pending, "not a voter");
        assert_eq!(t.record(3, true, &v), Outcome::Won);
        t.clear();
        t.record(1, true, &v);
        t.record(2, false, &v);
        assert_eq!(t.record(3, false, &v), Outcome::Lost);
    }
}
