//! The records of a run, shared by every crate that writes or reads them: `test.json`
//! ([`TestRecord`]), `results.json` ([`RunResults`]) and the details of a fault in the
//! history and the results ([`FaultDetails`]). The history's own lines are
//! [`crate::history::HistoryLine`].
//!
//! `chaos-runner` writes these types and `reports` reads them, so renaming a field is a
//! compile error on both sides instead of a silently empty report. They live here, in the
//! crate every other crate already depends on, as Porcupine's `Operation` is shared by its
//! checker and its visualizer.
//!
//! Reading stays tolerant of files written by earlier versions: every field has a default,
//! and fields whose shape changed read as their default when the old shape is found.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::check::{CheckReport, Verdict};

/// Reads `T`, or its default when the value has another shape (an older file's).
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(v).unwrap_or_default())
}

/// The one quantile definition of the workspace (nearest rank): the smallest value with at
/// least a fraction `q` of the sample at or below it. `sorted` must be ascending; `None`
/// when it is empty. The summary, results.json, the bench and the plots all use it, so
/// they show the same p50 for the same operations.
pub fn quantile_of_sorted<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// Weights of each function in a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MixRecord {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
    pub delete: u32,
}

/// One node's clock under a clock fault: how far ahead of real time it was set
/// (negative: behind; a strobe's swing) and how fast it ran (100: real speed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClockChange {
    pub node: u64,
    pub offset_ms: i64,
    pub rate_percent: u32,
}

/// `test.json`: everything needed to understand and reproduce a run, written before it
/// starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestRecord {
    pub name: String,
    pub seed: u64,
    /// The command line that replays this run.
    pub command: String,
    /// The same as words, after `chaos-runner` (`test`, its flags, `--seed N`): what
    /// `shrink` runs again, with no shell in between. Empty in older records.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub nodes: u64,
    /// The server binary.
    pub server: PathBuf,
    pub node_args: Vec<String>,
    /// `register` or `kv`.
    pub workload: String,
    pub preset: Option<String>,
    pub keys: usize,
    pub concurrency: usize,
    pub rate: Option<f64>,
    /// The client API the server spoke (`raft-node`, `seed`); `auto` until detected.
    pub api: String,
    pub mix: MixRecord,
    pub time_limit_s: f64,
    pub ops: Option<u64>,
    pub op_timeout_s: f64,
    /// Fault kinds in play.
    pub nemesis: Vec<String>,
    pub nemesis_interval_s: f64,
    /// `search` (kinds, durations and gaps drawn from the seed), `fixed` (a rota of
    /// `nemesis_interval_s`) or `file` (`--schedule`); empty in records older than the
    /// search.
    pub schedule_mode: String,
    /// How node-to-node traffic travelled: `proxy` (per-link TCP proxies) or `netns`
    /// (namespaces and the packet switch); empty in records from before the choice.
    pub net: String,
    /// netns mode: the test network's range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_range: Option<String>,
    pub link_latency_ms: u64,
    pub nemesis_targets: Vec<String>,
    pub partitions: Vec<String>,
    /// The planned faults, one line each ("3.0s kill leader").
    pub schedule: Vec<String>,
    /// With disk faults: when a change of names survives a power loss (`--disk-names`:
    /// `strict` or `ext4`); absent without them and in older records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_names: Option<String>,
    pub min_ok: u64,
    /// Whether a set's or queue's stale reads made the run invalid (`--linearizable`).
    pub linearizable: bool,
    /// RFC 3339, seconds: sorts the run index.
    pub started: String,
}

/// Operations by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }
}

/// Latency quantiles of the ok operations, in milliseconds (two decimals); `None` when no
/// operation succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

pub use crate::fault::{CutMode, FaultEdge, FaultKind, Shape, Target};

/// What a fault did, as the nemesis records it in the history (the `value` of its start
/// and stop events) and in the results. Fields a kind does not use are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultDetails {
    /// The nodes it touched (killed, paused, cut off, slowed, healed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u64>,
    /// Kill and pause: whom they aimed at (random, leader, minority, majority, every).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Partition: its shape (isolate, halves, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Partition: `cut` (connections refused) or `black-hole` (swallowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<CutMode>,
    /// Partition: node → the nodes it does not hear (keys are node ids as text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grudge: Option<BTreeMap<String, Vec<u64>>>,
    /// Latency: the added one-way delay and its jitter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// Crash: how the process ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Message faults: the directed links it acted on, as [from, to].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<[u64; 2]>,
    /// Message faults (on the stop event): every request it dropped, held, released,
    /// duplicated or replayed, in order of links then time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageRecord>,
    /// Message faults: how many more requests it acted on than `messages` lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_not_listed: Option<u64>,
    /// Packet faults (`--net netns`, on the stop event): per directed link, how many
    /// packets the fault saw and acted on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packets: Vec<PacketRecord>,
    /// `slow-fsync`: how long each fsync was made to take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync_delay_ms: Option<u64>,
    /// What a clock fault did to each of its nodes' clocks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clocks: Vec<ClockChange>,
    /// `corrupt`: per node, the file damaged and how.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub corruption: Vec<Corruption>,
    /// A power loss (`lose-unsynced`): per node, what its disk threw away.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disk: Vec<DiskLoss>,
    /// A staggered kill: the order in which the nodes went down, each with its offset
    /// from the fault's start. The order decides whose log tail survives.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kill_order: Vec<NodeAt>,
    /// A staggered kill: the order in which the nodes came back, each with its offset
    /// from the moment the fault began to end. The first to return choose the next
    /// leader among themselves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_order: Vec<NodeAt>,
    /// `wipe`: per node, what its lost data directory held, or why it was spared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wiped: Vec<Wiped>,
    /// `membership`: each change asked of the cluster and what came of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberChange>,
}

/// One membership change the `membership` fault asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberChange {
    /// `remove`, `add-learner`, `promote` or `transfer-leader`.
    pub change: String,
    pub node: u64,
    /// `ok`, `refused: <why>` (it never took effect) or `unknown: <why>`.
    pub outcome: String,
    /// When it was answered, in milliseconds from the fault's start (or its end, for
    /// the changes that bring nodes back).
    pub at_ms: u64,
}

impl MemberChange {
    pub fn ok(&self) -> bool {
        self.outcome == "ok"
    }
}

/// One node's lost disk (`wipe`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Wiped {
    pub node: u64,
    /// Files and bytes deleted from its data directory.
    pub files: u64,
    pub bytes: u64,
    /// Why nothing was deleted, if so (another wiped node had not rejoined yet).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spared: String,
}

/// One damaged file (`corrupt`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Corruption {
    pub node: u64,
    /// The file's name in the node's durable folder.
    pub file: String,
    /// `flip-bits`, `truncate`, `zero-block`, `copy-block` (a misdirected write),
    /// `rewrite-block` (one copied onto itself) or `delete`.
    pub change: String,
    /// Where the change begins (a truncate: the new length).
    pub offset: u64,
    /// How many bytes it covers (a truncate or a delete: how many were lost).
    pub len: u64,
    /// A misdirected write: the block whose bytes were written at `offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Up to 16 bytes at `offset` before and after, in hex.
    pub before: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub after: String,
}

/// What a power loss threw away on one node's disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskLoss {
    pub node: u64,
    /// Bytes the node wrote but never fsynced.
    pub lost_bytes: u64,
    /// Files that had such bytes.
    pub files_with_lost_data: u64,
    /// Creates, removes and renames whose folder was never fsynced, undone.
    pub names_undone: u64,
}

/// One node's step in a staggered kill or restart, `at_ms` after the step sequence began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAt {
    pub node: u64,
    pub at_ms: u64,
}

/// What a packet fault did on one directed link, counted (packets are too many to list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PacketRecord {
    pub from: u64,
    pub to: u64,
    /// Packets that crossed the link while the fault was in force.
    pub seen: u64,
    /// Packets it lost, duplicated, reordered or queued behind the bandwidth limit.
    pub acted: u64,
    /// Their bytes.
    pub bytes_acted: u64,
    /// Packets dropped because the bandwidth queue was over a second long.
    #[serde(skip_serializing_if = "is_zero")]
    pub overflowed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One request a message fault acted on: enough to find it in a node's log and to see
/// how stale a late copy was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageRecord {
    /// `dropped`, `held`, `released` (a held request, delivered late), `duplicated` (a
    /// second delivery) or `replayed` (a copy of an earlier request).
    pub action: String,
    pub from: u64,
    pub to: u64,
    pub method: String,
    pub path: String,
    /// Size of the whole request, head and body.
    pub bytes: u64,
    /// When the original request crossed the link (history clock, ns).
    pub seen: u64,
    /// When this happened to it (history clock, ns).
    pub at: u64,
}

/// The sides of a partition of `nodes`, where `deaf(a)` is who node `a` does not hear:
/// the groups that hear each other and nobody else, smallest first (`[3] | [1, 2]`); or,
/// when the cut links do not split the nodes into such groups (a ring, a bridge), whom
/// each node cannot hear (`1 hears not 4, 5; ...`). One wording for the console, the log
/// and the report.
pub fn partition_sides(nodes: &[u64], deaf: impl Fn(u64) -> Vec<u64>) -> String {
    let hears = |a: u64| -> Vec<u64> {
        let d = deaf(a);
        nodes.iter().copied().filter(|b| !d.contains(b)).collect()
    };
    let clean = nodes
        .iter()
        .all(|&a| hears(a).iter().all(|&b| hears(b) == hears(a)));
    if clean {
        let mut groups: Vec<Vec<u64>> = Vec::new();
        for &a in nodes {
            let g = hears(a);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        groups.sort_by_key(|g| (g.len(), g.first().copied()));
        let parts: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
        return parts.join(" | ");
    }
    let parts: Vec<String> = nodes
        .iter()
        .filter_map(|&a| {
            let d = deaf(a);
            (!d.is_empty()).then(|| {
                let d: Vec<String> = d.iter().map(u64::to_string).collect();
                format!("{a} hears not {}", d.join(", "))
            })
        })
        .collect();
    parts.join("; ")
}

impl FaultDetails {
    /// A partition's sides ([`partition_sides`]), from its grudge and nodes.
    pub fn sides(&self) -> Option<String> {
        let g = self.grudge.as_ref()?;
        let deaf = |a: u64| g.get(&a.to_string()).cloned().unwrap_or_default();
        Some(partition_sides(&self.nodes, deaf))
    }
    /// Reads the details of any nemesis event; events from other tools, whose values have
    /// other shapes, give empty details.
    pub fn from_value(v: &serde_json::Value) -> FaultDetails {
        FaultDetails::deserialize(v).unwrap_or_default()
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("fault details serialize")
    }
}

/// One fault that happened, in `results.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultEntry {
    /// Its kind, typed (what counts and groups read; records from before it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::fault::FaultKind>,
    /// In words: "kill leader [2]", "partition halves (cut)".
    pub fault: String,
    /// Seconds on the history's clock.
    pub start_s: f64,
    pub end_s: f64,
    #[serde(deserialize_with = "lenient")]
    pub value: FaultDetails,
}

/// Final reads after healing: keys read, and keys no read succeeded for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinalReads {
    pub ok: usize,
    pub failed: usize,
}

/// When a phase after the time limit finished, in seconds after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseTime {
    pub phase: String,
    pub s: f64,
}

/// What `--fail-fast` found while the run went: the first anomaly of the online checker,
/// which stopped the load early.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailFast {
    pub key: String,
    /// The anomaly in words ("read returned 3, but the register held 4").
    pub what: String,
    /// When the operation that cannot be placed returned, seconds on the history's clock.
    pub returned_s: f64,
    /// When the online checker found it, on the same clock.
    pub detected_s: f64,
}

/// `results.json`: the verdict and what led to it, written when a run ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    pub verdict: Verdict,
    /// Why the verdict is `unknown`, when it is.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub counts: Counts,
    /// The `fail` count by reason ("cas mismatches": an answer, not an error;
    /// "unreachable", "not applied", ...), so a healthy run's many cas mismatches do not
    /// look like errors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fail_reasons: BTreeMap<String, u64>,
    /// Seconds of load (clients running).
    #[serde(default)]
    pub duration_s: f64,
    #[serde(default)]
    pub throughput_ok_per_s: f64,
    #[serde(default)]
    pub latency_ms: LatencyMs,
    #[serde(default)]
    pub faults: Vec<FaultEntry>,
    #[serde(default)]
    pub final_reads: FinalReads,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The phases after the time limit, in order (older files kept a map: read as empty).
    #[serde(default, deserialize_with = "lenient")]
    pub after_time_limit_s: Vec<PhaseTime>,
    #[serde(default)]
    pub checker_summary: String,
    /// With `--fail-fast`: the anomaly the online checker found, which ended the load
    /// early; `None` when it found none (or was not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<FailFast>,
    pub checker: CheckReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile_of_sorted(&v, 0.5), Some(50));
        assert_eq!(quantile_of_sorted(&v, 0.99), Some(99));
        assert_eq!(quantile_of_sorted(&v, 1.0), Some(100));
        assert_eq!(quantile_of_sorted(&v, 0.0), Some(1));
        assert_eq!(quantile_of_sorted(&[7.5], 0.5), Some(7.5));
        assert_eq!(quantile_of_sorted::<u64>(&[], 0.5), None);
        // Two values: the median is the lower one (half the sample is at or below it).
        assert_eq!(quantile_of_sorted(&[1, 2], 0.5), Some(1));
    }

    #[test]
    fn fault_details_write_only_what_a_kind_uses_and_read_anything() {
        let kill = FaultDetails {
            nodes: vec![2],
            target: Some(Target::Leader),
            ..FaultDetails::default()
        };
        assert_eq!(
            kill.to_value().to_string(),
            r#"{"nodes":[2],"target":"leader"}"#
        );
        assert_eq!(FaultDetails::from_value(&kill.to_value()), kill);
        // Another tool's nemesis value (node names, not ids) reads as no details.
        let other = serde_json::json!({"nodes": ["n1"], "grudge": {"n1": ["n2"]}});
        assert_eq!(FaultDetails::from_value(&other), FaultDetails::default());
    }
}

/// `fail` counts by reason as one phrase, the largest first: "10,042 cas mismatches, 3
/// unreachable" ("" when there are none).
pub fn fail_reasons_phrase(reasons: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = reasons.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod fail_reason_tests {
    use super::*;

    #[test]
    fn fail_reasons_read_largest_first() {
        let mut m = BTreeMap::new();
        assert_eq!(fail_reasons_phrase(&m), "");
        m.insert("unreachable".to_string(), 3);
        m.insert("cas mismatches".to_string(), 10_042);
        m.insert("not applied".to_string(), 3);
        assert_eq!(
            fail_reasons_phrase(&m),
            "10042 cas mismatches, 3 not applied, 3 unreachable"
        );
    }
}
