//! The fault vocabulary, typed, shared by the runner that injects faults, the recorder
//! that writes them into a history and the reports that draw them: one enum per notion,
//! serialized as the kebab-case words histories have always carried (`"start-kill"`,
//! `"target": "every"`, `"shape": "majorities-ring"`), so no crate parses another's
//! strings and a misspelt kind cannot compile.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A kind of fault. `--nemesis` names all but [`FaultKind::LinkLatency`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL, restarted from the same data directory when the fault ends.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Cut links following a grudge.
    Partition,
    /// Delay every link.
    Latency,
    /// Deliver peer requests twice, the copy up to 0.5 s later on its own connection.
    Duplicate,
    /// Hold peer requests back and deliver them after later ones.
    Reorder,
    /// Deliver copies of peer requests seen up to 10 s earlier.
    Replay,
    /// Swallow peer requests; their answers never come, and their senders time out.
    Drop,
    /// Lose a fifth of the packets (netns mode).
    Loss,
    /// Limit links to 256 KiB/s, queueing packets behind the limit (netns mode).
    Bandwidth,
    /// A power loss: SIGKILL, and what the node had written but not fsynced is lost
    /// (its disk's unsynced data and name changes), then a restart when the fault ends.
    LoseUnsynced,
    /// Writes, creates and folder changes fail with ENOSPC for a spell.
    DiskFull,
    /// Every fsync takes 50 to 500 ms for a spell.
    SlowFsync,
    /// While a node is down, one of its durable files is damaged (bits flipped, cut
    /// short, a block zeroed or misdirected, or deleted); then it restarts.
    Corrupt,
    /// A node's clocks (wall and monotonic) jump forwards or backwards at once, and snap
    /// back to real time when the fault ends.
    ClockJump,
    /// A node's clocks run fast or slow (0.25x to 4x) for a spell, its sleeps and timers
    /// with them.
    ClockRate,
    /// A node's clocks jump back and forth every few milliseconds for a spell.
    ClockStrobe,
    /// A lost disk: SIGKILL, every file in the node's data directory deleted, and a restart
    /// on the empty directory when the fault ends. Never more than a minority at once.
    /// Opt-in by name (`--nemesis all,wipe`): a server that cannot tell a new member from
    /// one that lost its disk (most need a membership change first) cannot undergo it.
    Wipe,
    /// Membership changes through the server's API: a voter (or two at once, a race a
    /// correct server refuses) removed from the cluster while it keeps running, or
    /// leadership handed to another voter; when the fault ends, each removed node comes
    /// back as a new server (an empty data directory), added as a learner and promoted
    /// once it has caught up. Opt-in by name (`--nemesis all,membership`).
    Membership,
    /// The search schedule's weather: a steady 2 to 20 ms on every link for a while
    /// (never asked for by name: `--link-latency` fixes it for a whole run).
    LinkLatency,
}

impl FaultKind {
    /// The kinds of processes and links. With [`FaultKind::DISK`], every kind `--nemesis`
    /// can name.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Latency,
        FaultKind::Duplicate,
        FaultKind::Reorder,
        FaultKind::Replay,
        FaultKind::Drop,
        FaultKind::Loss,
        FaultKind::Bandwidth,
    ];

    /// The disk faults. `--nemesis all` (the default) includes them wherever they can
    /// act: the three that need a FUSE layer under every node only as root with fuse3,
    /// and none on hosts over ssh; the search puts them in place of some kills and
    /// pauses.
    pub const DISK: [FaultKind; 4] = [
        FaultKind::LoseUnsynced,
        FaultKind::DiskFull,
        FaultKind::SlowFsync,
        FaultKind::Corrupt,
    ];

    /// Kinds `all` leaves out: asked for by name only (`all,wipe`).
    pub const OPT_IN: [FaultKind; 2] = [FaultKind::Wipe, FaultKind::Membership];

    /// The clock faults, through libfaketime under every node: only for servers whose
    /// clock calls go through libc, and only on this machine. `all` includes them where
    /// they can act; the search gives them spells of their own.
    pub const CLOCK: [FaultKind; 3] = [
        FaultKind::ClockJump,
        FaultKind::ClockRate,
        FaultKind::ClockStrobe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Latency => "latency",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Reorder => "reorder",
            FaultKind::Replay => "replay",
            FaultKind::Drop => "drop",
            FaultKind::Loss => "loss",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::LoseUnsynced => "lose-unsynced",
            FaultKind::DiskFull => "disk-full",
            FaultKind::SlowFsync => "slow-fsync",
            FaultKind::Corrupt => "corrupt",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::ClockRate => "clock-rate",
            FaultKind::ClockStrobe => "clock-strobe",
            FaultKind::Wipe => "wipe",
            FaultKind::Membership => "membership",
            FaultKind::LinkLatency => "link-latency",
        }
    }

    /// A kind `--nemesis` can name, by its name.
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .chain(FaultKind::DISK)
            .chain(FaultKind::CLOCK)
            .chain(FaultKind::OPT_IN)
            .find(|k| k.name() == s)
    }

    /// Whether it moves the nodes' clocks.
    pub fn is_clock(self) -> bool {
        FaultKind::CLOCK.contains(&self)
    }

    /// Whether it acts on the nodes' disks (the report draws these in lanes of their own).
    pub fn is_disk(self) -> bool {
        self.needs_layer() || matches!(self, FaultKind::Corrupt | FaultKind::Wipe)
    }

    /// Whether it needs the lazy layer (a FUSE filesystem) under every node's data.
    pub fn needs_layer(self) -> bool {
        matches!(
            self,
            FaultKind::LoseUnsynced | FaultKind::DiskFull | FaultKind::SlowFsync
        )
    }

    /// Any kind, by its name (a history's `start-link-latency` too).
    fn parse_any(s: &str) -> Option<FaultKind> {
        FaultKind::parse(s).or((s == "link-latency").then_some(FaultKind::LinkLatency))
    }

    /// Whether it acts on messages (whole requests under the proxies, packets under the
    /// switch): the search's spells.
    pub fn is_message(self) -> bool {
        use FaultKind::*;
        matches!(self, Duplicate | Reorder | Replay | Drop | Loss | Bandwidth)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which nodes a kill or pause hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Random,
    Leader,
    Minority,
    Majority,
    /// Every node at once (Jepsen's `:all`): what no majority remembers is lost.
    #[serde(rename = "every")]
    All,
}

impl Target {
    /// The targets `all` selects on the command line; every-node is opt-in by name.
    pub const ALL: [Target; 4] = [
        Target::Random,
        Target::Leader,
        Target::Minority,
        Target::Majority,
    ];
    const NAMED: [Target; 5] = [
        Target::Random,
        Target::Leader,
        Target::Minority,
        Target::Majority,
        Target::All,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Random => "random",
            Target::Leader => "leader",
            Target::Minority => "minority",
            Target::Majority => "majority",
            Target::All => "every",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::NAMED.into_iter().find(|k| k.name() == s)
    }
}

/// Partition shapes, as in Jepsen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One node (a random one, or the leader) hears nobody and nobody hears it.
    Isolate,
    /// Two halves.
    Halves,
    /// Every node hears a majority, but each a different one.
    MajoritiesRing,
    /// Two halves that both hear one node in the middle.
    Bridge,
    /// Every directed link cut with probability 1/2.
    Random,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Isolate,
        Shape::Halves,
        Shape::MajoritiesRing,
        Shape::Bridge,
        Shape::Random,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Isolate => "isolate",
            Shape::Halves => "halves",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
            Shape::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// How a partition cuts a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutMode {
    /// Connections refused and reset.
    Cut,
    /// Everything swallowed: the senders' timeouts fire.
    BlackHole,
}

impl CutMode {
    pub fn name(self) -> &'static str {
        match self {
            CutMode::Cut => "cut",
            CutMode::BlackHole => "black-hole",
        }
    }
}

/// What a nemesis event in a history says happened: the `f` of the event, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultEdge {
    /// A fault of this kind began (`start-KIND`).
    Start(FaultKind),
    /// The fault of this kind that began last ended (`stop-KIND`).
    Stop(FaultKind),
    /// A node's process ended by itself (`crash`): nobody asked for it.
    Crash,
    /// Every fault was undone before the final reads (`heal`).
    Heal,
}

impl FaultEdge {
    /// The edge an event's `f` names; `None` for other tools' events.
    pub fn parse(f: &str) -> Option<FaultEdge> {
        match f {
            "crash" => Some(FaultEdge::Crash),
            "heal" => Some(FaultEdge::Heal),
            _ => {
                if let Some(k) = f.strip_prefix("start-") {
                    FaultKind::parse_any(k).map(FaultEdge::Start)
                } else {
                    FaultKind::parse_any(f.strip_prefix("stop-")?).map(FaultEdge::Stop)
                }
            }
        }
    }
}

impl fmt::Display for FaultEdge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultEdge::Start(k) => write!(f, "start-{k}"),
            FaultEdge::Stop(k) => write!(f, "stop-{k}"),
            FaultEdge::Crash => f.write_str("crash"),
            FaultEdge::Heal => f.write_str("heal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_ones_histories_carry() {
        let all_kinds = FaultKind::ALL
            .into_iter()
            .chain(FaultKind::DISK)
            .chain(FaultKind::CLOCK)
            .chain([FaultKind::LinkLatency])
            .collect::<Vec<_>>();
        for k in &all_kinds {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
            for edge in [FaultEdge::Start(*k), FaultEdge::Stop(*k)] {
                assert_eq!(FaultEdge::parse(&edge.to_string()), Some(edge));
            }
        }
        assert_eq!(
            FaultEdge::Start(FaultKind::LinkLatency).to_string(),
            "start-link-latency"
        );
        for t in Target::NAMED {
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
            assert_eq!(Target::parse(t.name()), Some(t));
        }
        for s in Shape::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
        assert_eq!(
            serde_json::to_value(CutMode::BlackHole).unwrap(),
            "black-hole"
        );
        for (f, e) in [("crash", FaultEdge::Crash), ("heal", FaultEdge::Heal)] {
            assert_eq!(FaultEdge::parse(f), Some(e));
            assert_eq!(e.to_string(), f);
        }
        // Other tools' nemesis events are not ours.
        for f in [
            "start",
            "start-",
            "stop-frobnicate",
            "partition-start",
            ":kill",
        ] {
            assert_eq!(FaultEdge::parse(f), None, "{f}");
        }
        // `--nemesis` cannot name the weather.
        assert_eq!(FaultKind::parse("link-latency"), None);
    }

    /// Nemesis values as runners before the typed vocabulary wrote them read back and
    /// write again byte for byte: history.jsonl did not change.
    #[test]
    fn fault_details_written_before_read_and_write_the_same() {
        use crate::record::FaultDetails;
        let lines = [
            r#"{"nodes":[1],"target":"random"}"#,
            r#"{"nodes":[1,2,3],"target":"every","kill_order":[{"node":2,"at_ms":0},{"node":1,"at_ms":31}]}"#,
            r#"{"nodes":[1,2,3],"shape":"majorities-ring","mode":"black-hole","grudge":{"1":[3],"2":[1],"3":[2]}}"#,
            r#"{"nodes":[1,2,3],"shape":"halves","mode":"cut","grudge":{"1":[2,3]}}"#,
            r#"{"nodes":[1,2,3],"delay_ms":10,"jitter_ms":20}"#,
            r#"{"nodes":[2],"status":"signal: 9 (SIGKILL)"}"#,
        ];
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let d = FaultDetails::from_value(&v);
            assert_ne!(d, FaultDetails::default(), "{line}");
            // Values keep their keys sorted, as the history's lines do.
            assert_eq!(d.to_value(), v, "{line}");
        }
    }
}
