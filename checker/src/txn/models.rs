//! The anomalies the transaction checker names, and the consistency models that forbid
//! them (Adya's, with Jepsen's session and real-time variants).
//!
//! A model is judged by the anomalies it proscribes: a history satisfies it when none of
//! them was found. That is why the lattice here is read off the anomaly sets rather than
//! stated: a model that forbids a superset of another's anomalies implies it.
//! Snapshot isolation is judged by its cycle anomalies (G0, G1, G-single, lost update);
//! its start-order conditions need timestamps no history of ours carries.

use serde::{Deserialize, Serialize};

/// One kind of anomaly, named as Elle and Adya name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AnomalyKind {
    /// A cycle of write-write dependencies: dirty writes.
    #[serde(rename = "G0")]
    G0,
    /// A read of a value written by a transaction that failed (aborted read).
    #[serde(rename = "G1a")]
    G1a,
    /// A read of a value its writer overwrote within the same transaction (intermediate
    /// read).
    #[serde(rename = "G1b")]
    G1b,
    /// A cycle of write-write and write-read dependencies, at least one write-read
    /// (circular information flow).
    #[serde(rename = "G1c")]
    G1c,
    /// A cycle with exactly one read-write anti-dependency (read skew).
    #[serde(rename = "G-single")]
    GSingle,
    /// A cycle with two or more anti-dependencies (write skew).
    #[serde(rename = "G2-item")]
    G2Item,
    #[serde(rename = "G0-process")]
    G0Process,
    #[serde(rename = "G1c-process")]
    G1cProcess,
    #[serde(rename = "G-single-process")]
    GSingleProcess,
    #[serde(rename = "G2-item-process")]
    G2ItemProcess,
    #[serde(rename = "G0-realtime")]
    G0Realtime,
    #[serde(rename = "G1c-realtime")]
    G1cRealtime,
    #[serde(rename = "G-single-realtime")]
    GSingleRealtime,
    #[serde(rename = "G2-item-realtime")]
    G2ItemRealtime,
    /// Two transactions read the same version of a key and both wrote it.
    #[serde(rename = "lost-update")]
    LostUpdate,
    /// A transaction whose reads disagree with its own earlier reads and writes.
    #[serde(rename = "internal")]
    Internal,
    /// A list whose order contradicts itself: two reads where neither is a prefix of
    /// the other, or one transaction's appends read out of the order it made them.
    #[serde(rename = "incompatible-order")]
    IncompatibleOrder,
    /// A read holding one element twice.
    #[serde(rename = "duplicate-elements")]
    DuplicateElements,
    /// A read of a value no transaction wrote.
    #[serde(rename = "garbage-read")]
    GarbageRead,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 19] = [
        AnomalyKind::G0,
        AnomalyKind::G1a,
        AnomalyKind::G1b,
        AnomalyKind::G1c,
        AnomalyKind::GSingle,
        AnomalyKind::G2Item,
        AnomalyKind::G0Process,
        AnomalyKind::G1cProcess,
        AnomalyKind::GSingleProcess,
        AnomalyKind::G2ItemProcess,
        AnomalyKind::G0Realtime,
        AnomalyKind::G1cRealtime,
        AnomalyKind::GSingleRealtime,
        AnomalyKind::G2ItemRealtime,
        AnomalyKind::LostUpdate,
        AnomalyKind::Internal,
        AnomalyKind::IncompatibleOrder,
        AnomalyKind::DuplicateElements,
        AnomalyKind::GarbageRead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::G0 => "G0",
            AnomalyKind::G1a => "G1a",
            AnomalyKind::G1b => "G1b",
            AnomalyKind::G1c => "G1c",
            AnomalyKind::GSingle => "G-single",
            AnomalyKind::G2Item => "G2-item",
            AnomalyKind::G0Process => "G0-process",
            AnomalyKind::G1cProcess => "G1c-process",
            AnomalyKind::GSingleProcess => "G-single-process",
            AnomalyKind::G2ItemProcess => "G2-item-process",
            AnomalyKind::G0Realtime => "G0-realtime",
            AnomalyKind::G1cRealtime => "G1c-realtime",
            AnomalyKind::GSingleRealtime => "G-single-realtime",
            AnomalyKind::G2ItemRealtime => "G2-item-realtime",
            AnomalyKind::LostUpdate => "lost-update",
            AnomalyKind::Internal => "internal",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
            AnomalyKind::DuplicateElements => "duplicate-elements",
            AnomalyKind::GarbageRead => "garbage-read",
        }
    }

    /// The weakest models that forbid it: every model that implies one of them forbids
    /// it too.
    pub fn forbidden_from(self) -> &'static [ConsistencyModel] {
        use AnomalyKind::*;
        use ConsistencyModel as M;
        match self {
            G0 | Internal | IncompatibleOrder | DuplicateElements | GarbageRead => {
                &[M::ReadUncommitted]
            }
            G1a | G1b | G1c => &[M::ReadCommitted],
            GSingle | LostUpdate => &[M::SnapshotIsolation],
            G2Item => &[M::Serializable],
            G0Process | G1cProcess | GSingleProcess | G2ItemProcess => {
                &[M::StrongSessionSerializable]
            }
            G0Realtime | G1cRealtime | GSingleRealtime | G2ItemRealtime => &[M::StrictSerializable],
        }
    }

    /// Rank for "worst first": anomalies that break weaker models come first.
    pub fn severity(self) -> usize {
        ConsistencyModel::ALL
            .iter()
            .position(|m| self.forbidden_from().contains(m))
            .unwrap_or(usize::MAX)
    }
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The consistency models `--consistency-model` takes, weakest first. Repeatable read
/// is left out: for histories of single items (no predicates) Adya's PL-2.99 forbids
/// exactly what serializability does, so naming it would only suggest a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyModel {
    ReadUncommitted,
    ReadCommitted,
    SnapshotIsolation,
    Serializable,
    StrongSessionSerializable,
    StrictSerializable,
}

impl ConsistencyModel {
    pub const ALL: [ConsistencyModel; 6] = [
        ConsistencyModel::ReadUncommitted,
        ConsistencyModel::ReadCommitted,
        ConsistencyModel::SnapshotIsolation,
        ConsistencyModel::Serializable,
        ConsistencyModel::StrongSessionSerializable,
        ConsistencyModel::StrictSerializable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConsistencyModel::ReadUncommitted => "read-uncommitted",
            ConsistencyModel::ReadCommitted => "read-committed",
            ConsistencyModel::SnapshotIsolation => "snapshot-isolation",
            ConsistencyModel::Serializable => "serializable",
            ConsistencyModel::StrongSessionSerializable => "strong-session-serializable",
            ConsistencyModel::StrictSerializable => "strict-serializable",
        }
    }

    pub fn parse(s: &str) -> Option<ConsistencyModel> {
        ConsistencyModel::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The models this one implies directly (the lattice's edges downward).
    fn implies_directly(self) -> &'static [ConsistencyModel] {
        use ConsistencyModel::*;
        match self {
            ReadUncommitted => &[],
            ReadCommitted => &[ReadUncommitted],
            SnapshotIsolation => &[ReadCommitted],
            Serializable => &[SnapshotIsolation],
            StrongSessionSerializable => &[Serializable],
            StrictSerializable => &[StrongSessionSerializable],
        }
    }

    /// Whether a history that satisfies `self` satisfies `other`.
    pub fn implies(self, other: ConsistencyModel) -> bool {
        self == other || self.implies_directly().iter().any(|m| m.implies(other))
    }

    /// Whether this model forbids anomalies of `kind`.
    pub fn forbids(self, kind: AnomalyKind) -> bool {
        kind.forbidden_from().iter().any(|m| self.implies(*m))
    }
}

impl std::fmt::Display for ConsistencyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a set of anomalies means for the lattice: the weakest models broken (a model is
/// broken when it forbids one of them) and the strongest still satisfied. Models the
/// search could not decide (`undecided`) are in neither.
pub fn judge(
    found: &[AnomalyKind],
    undecided: &[ConsistencyModel],
) -> (Vec<ConsistencyModel>, Vec<ConsistencyModel>) {
    let broken: Vec<ConsistencyModel> = ConsistencyModel::ALL
        .into_iter()
        .filter(|m| found.iter().any(|k| m.forbids(*k)))
        .collect();
    let satisfied: Vec<ConsistencyModel> = ConsistencyModel::ALL
        .into_iter()
        .filter(|m| !broken.contains(m) && !undecided.contains(m))
        .collect();
    let weakest_broken = broken
        .iter()
        .copied()
        .filter(|m| !broken.iter().any(|o| o != m && m.implies(*o)))
        .collect();
    let strongest_satisfied = satisfied
        .iter()
        .copied()
        .filter(|m| !satisfied.iter().any(|o| o != m && o.implies(*m)))
        .collect();
    (weakest_broken, strongest_satisfied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lattice_orders_models_as_their_anomalies_do() {
        use ConsistencyModel::*;
        assert!(StrictSerializable.implies(ReadUncommitted));
        assert!(Serializable.implies(SnapshotIsolation));
        assert!(!SnapshotIsolation.implies(Serializable));
        // A model forbidding more anomalies implies the other, and only then.
        for a in ConsistencyModel::ALL {
            for b in ConsistencyModel::ALL {
                let superset = AnomalyKind::ALL
                    .iter()
                    .all(|k| !b.forbids(*k) || a.forbids(*k));
                assert_eq!(a.implies(b), superset, "{a} => {b}");
            }
        }
    }

    #[test]
    fn write_skew_breaks_serializability_but_not_snapshot_isolation() {
        let (broken, kept) = judge(&[AnomalyKind::G2Item], &[]);
        assert_eq!(broken, vec![ConsistencyModel::Serializable]);
        assert_eq!(kept, vec![ConsistencyModel::SnapshotIsolation]);
        let (broken, kept) = judge(&[AnomalyKind::GSingleRealtime], &[]);
        assert_eq!(broken, vec![ConsistencyModel::StrictSerializable]);
        assert_eq!(kept, vec![ConsistencyModel::StrongSessionSerializable]);
        let (broken, kept) = judge(&[], &[]);
        assert!(broken.is_empty());
        assert_eq!(kept, vec![ConsistencyModel::StrictSerializable]);
    }
}
