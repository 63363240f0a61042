//! The fault schedule: what to break, and when.
//!
//! The schedule is planned up front from the seed ([`plan`]): which fault, which target
//! kind, which partition shape, and a number that picks the nodes. Only the "leader"
//! target depends on the run (who leads at that moment). So `--seed` reproduces the
//! schedule exactly.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub use checker::record::{FaultKind, Shape, Target};

/// Faults of one layer never overlap each other; layers overlap freely (the links'
/// layers in the proxy keep them from undoing each other).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Kills, pauses, partitions, latency: one at a time (the only layer of a fixed rota).
    Foreground,
    /// The search schedule's changing steady delay of every link.
    Weather,
    /// The search schedule's spells of message faults.
    Messages,
    /// Clock faults. Named beside other kinds: a rota of their own, in step with the
    /// foreground's, so a clock is wrong while a node is cut off or down (a lease is
    /// only broken by a wrong clock and an election together). In the search: spells
    /// of their own ([`plan_clocks`]).
    Clocks,
}

impl Layer {
    pub const ALL: [Layer; 4] = [
        Layer::Foreground,
        Layer::Weather,
        Layer::Messages,
        Layer::Clocks,
    ];
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Offset from the start of the test.
    pub start: Duration,
    pub end: Duration,
    pub kind: FaultKind,
    pub target: Target,
    pub shape: Shape,
    /// Picks the nodes (shuffles, random choices), so the choice is reproducible.
    pub pick: u64,
    pub layer: Layer,
    /// A kill of several nodes takes them down one by one and brings them back one by
    /// one, in orders and at gaps drawn from `pick` ([`stagger`]), instead of all at once.
    /// Which log dies last and which node returns first decide who can win the next
    /// election and what it must repair: a leader killed last keeps a tail nobody else
    /// has; a majority that returns without it elects among the survivors.
    pub staggered: bool,
}

impl Planned {
    /// Whether this fault may be staggered: a kill aimed at several nodes, or a wipe (a
    /// kill of several nodes of which some lose their disks).
    pub fn can_stagger(&self) -> bool {
        matches!(self.kind, FaultKind::Kill | FaultKind::Wipe)
            && matches!(
                self.target,
                Target::All | Target::Majority | Target::Minority
            )
    }

    /// The delay and jitter of a `LinkLatency` fault, drawn from its pick: 2, 5, 10 or
    /// 20 ms, half the time with up to twice as much again. Jitter lets a later request
    /// overtake an earlier one on another connection (a heartbeat passing an append),
    /// as on any real network; a steady delay only stretches every round trip alike.
    pub fn link_latency_ms(&self) -> (u64, u64) {
        let ms = [2, 5, 10, 20][(self.pick % 4) as usize];
        let jitter = if (self.pick >> 2) % 2 == 1 { 2 * ms } else { 0 };
        (ms, jitter)
    }
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1}-{:.1}s ",
            self.start.as_secs_f64(),
            self.end.as_secs_f64()
        )?;
        match self.layer {
            Layer::Foreground => {}
            Layer::Weather => f.write_str("(weather) ")?,
            Layer::Messages => f.write_str("(messages) ")?,
            Layer::Clocks => f.write_str("(clocks) ")?,
        }
        match self.kind {
            FaultKind::Partition => write!(f, "partition {}", self.shape.name()),
            FaultKind::Latency => f.write_str("latency"),
            FaultKind::LinkLatency => {
                let (ms, jitter) = self.link_latency_ms();
                f.write_str(&super::latency::link_latency_words(ms, jitter))
            }
            k if self.staggered => write!(f, "{} {} (staggered)", k.name(), self.target.name()),
            k => write!(f, "{} {}", k.name(), self.target.name()),
        }
    }
}

/// What faults a run may see and how they are spread: everything the schedule of any
/// seed is drawn from.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub faults: Vec<FaultKind>,
    pub targets: Vec<Target>,
    pub shapes: Vec<Shape>,
    /// Length of each fault and of each healthy gap: the fixed rota. `None`: the search
    /// (and zero when no fault is planned).
    pub interval: Option<Duration>,
    pub time_limit: Duration,
    /// Stagger every kill of several nodes.
    pub staggered_kills: bool,
    /// `--schedule FILE`: exactly these faults, whatever the seed.
    pub explicit: Option<Vec<Planned>>,
}

impl FaultPlan {
    /// The faults of the run with this seed: a fixed rota at `interval`, or the search.
    pub fn schedule(&self, seed: u64) -> Vec<Planned> {
        if let Some(faults) = &self.explicit {
            return faults.clone();
        }
        let (kinds, targets, shapes) = (&self.faults, &self.targets, &self.shapes);
        let (clocks, others): (Vec<FaultKind>, Vec<FaultKind>) =
            kinds.iter().partition(|k| k.is_clock());
        let mut schedule = match self.interval {
            Some(interval) if !clocks.is_empty() && !others.is_empty() => {
                let mut s = plan(seed, &others, targets, shapes, interval, self.time_limit);
                let salt = 0x434C_4F43_4B53; // "CLOCKS": a stream of its own
                let mut c = plan(
                    seed ^ salt,
                    &clocks,
                    targets,
                    shapes,
                    interval,
                    self.time_limit,
                );
                for p in &mut c {
                    p.layer = Layer::Clocks;
                }
                s.extend(c);
                s.sort_by_key(|p| p.start);
                s
            }
            Some(interval) => plan(seed, kinds, targets, shapes, interval, self.time_limit),
            None => plan_search(seed, kinds, targets, shapes, self.time_limit),
        };
        if self.staggered_kills {
            for p in schedule.iter_mut().filter(|p| p.can_stagger()) {
                p.staggered = true;
            }
        }
        schedule
    }
}

/// Alternates healthy and faulty periods of `interval` each, starting healthy, until
/// `time_limit`. Kinds come round in a shuffled order (every kind once per round), so a
/// short run still sees each; targets, shapes and node picks are drawn from the RNG.
pub fn plan(
    seed: u64,
    kinds: &[FaultKind],
    targets: &[Target],
    shapes: &[Shape],
    interval: Duration,
    time_limit: Duration,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4E45_4D45_5349_5321);
    let mut out = Vec::new();
    if kinds.is_empty() || interval.is_zero() {
        return out;
    }
    let mut t = interval;
    let mut round: Vec<FaultKind> = Vec::new();
    while t + Duration::from_millis(100) < time_limit {
        let end = (t + interval).min(time_limit);
        if round.is_empty() {
            round = kinds.to_vec();
            round.shuffle(&mut rng);
        }
        out.push(Planned {
            start: t,
            end,
            kind: round.pop().expect("refilled above"),
            target: *targets.choose(&mut rng).unwrap_or(&Target::Random),
            shape: *shapes.choose(&mut rng).unwrap_or(&Shape::Halves),
            pick: rng.gen(),
            layer: Layer::Foreground,
            staggered: false,
        });
        t = end + interval;
    }
    out
}

/// Seconds drawn log-uniformly in `lo..hi`: short faults as often as long ones.
pub(super) fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> Duration {
    Duration::from_secs_f64((rng.gen_range(lo.ln()..hi.ln())).exp())
}

/// Whether the search may also hit every node at once (kills and pauses): with the
/// default targets, or when `every` is named. Targets named without it are honoured.
fn every(targets: &[Target]) -> bool {
    targets.contains(&Target::All) || Target::ALL.iter().all(|t| targets.contains(t))
}

/// Patterns the search repeats in quick succession, because one of each rarely exposes
/// anything: the bugs live in what a second and third election inherit from the first.
#[derive(Clone, Copy)]
enum Burst {
    KillLeader,
    PauseLeader,
    IsolateLeader,
    KillEvery,
}

impl Burst {
    /// The bursts that `kinds` and `targets` allow. Kills of every node at once come
    /// twice as often: what no node remembers is where durability bugs show, and each
    /// restart is also a fresh election.
    fn available(kinds: &[FaultKind], targets: &[Target]) -> Vec<Burst> {
        [
            Burst::KillLeader,
            Burst::PauseLeader,
            Burst::IsolateLeader,
            Burst::KillEvery,
            Burst::KillEvery,
        ]
        .into_iter()
        .filter(|b| {
            let (kind, target) = b.planned();
            kinds.contains(&kind)
                && (target == Target::All && every(targets) || targets.contains(&target))
        })
        .collect()
    }

    fn planned(self) -> (FaultKind, Target) {
        match self {
            Burst::KillLeader => (FaultKind::Kill, Target::Leader),
            Burst::PauseLeader => (FaultKind::Pause, Target::Leader),
            Burst::IsolateLeader => (FaultKind::Partition, Target::Leader),
            Burst::KillEvery => (FaultKind::Kill, Target::All),
        }
    }
}

/// The default schedule: a search, not a rota. Three layers run at once, each drawn from
/// the seed:
/// - the foreground: kills, pauses, partitions and latency, one at a time, each with its
///   own target (the leader most often: it is where the races are), shape, duration and
///   gap; a third of the time or so, a burst of 3 to 6 short faults in a row at whoever leads
///   then (or at every node at once), so elections follow elections; most kills of several
///   nodes are staggered ([`Planned::staggered`]);
/// - the weather: the links' steady delay changes every few seconds (0 to 20 ms, half
///   the time with jitter), which widens or narrows every window a race needs;
/// - message faults: spells of duplicated, reordered, replayed or dropped peer requests on
///   the links of some nodes, with calm between, overlapping whatever the foreground does.
///
/// `kinds` are what the target can have (etcd: kill and pause, no other layer); `every`
/// joins the targets of kills and pauses.
pub fn plan_search(
    seed: u64,
    kinds: &[FaultKind],
    targets: &[Target],
    shapes: &[Shape],
    time_limit: Duration,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5345_4152_4348_2121);
    let mut out = plan_foreground(&mut rng, kinds, targets, shapes, time_limit);
    plan_disk(seed, kinds, &mut out);
    // The weather is link latency: only where the latency fault is possible.
    if kinds.contains(&FaultKind::Latency) {
        out.extend(plan_weather(&mut rng, time_limit));
    }
    let messages: Vec<FaultKind> = kinds.iter().copied().filter(|k| k.is_message()).collect();
    if !messages.is_empty() {
        out.extend(plan_messages(&mut rng, &messages, time_limit));
    }
    let clocks: Vec<FaultKind> = kinds.iter().copied().filter(|k| k.is_clock()).collect();
    if !clocks.is_empty() {
        out.extend(plan_clocks(seed, &clocks, time_limit));
    }
    out
}

fn plan_foreground(
    rng: &mut StdRng,
    kinds: &[FaultKind],
    targets: &[Target],
    shapes: &[Shape],
    time_limit: Duration,
) -> Vec<Planned> {
    let fg: Vec<FaultKind> = kinds
        .iter()
        .copied()
        // `wipe` is the one disk fault of the foreground: it is asked for by name, and
        // stands on its own rather than in place of a kill.
        .filter(|k| !k.is_message() && !k.is_clock() && (!k.is_disk() || *k == FaultKind::Wipe))
        .collect();
    let bursts = Burst::available(&fg, targets);
    let leader_first = targets.contains(&Target::Leader);
    let mut out = Vec::new();
    let limit = time_limit.saturating_sub(Duration::from_millis(300));
    let mut t = log_uniform(rng, 0.5, 2.0);
    // Three kills of several nodes in four are staggered: the order of deaths and returns
    // is part of what the search explores, and a staggered kill is where a new leader
    // most often has to repair its followers' logs before its first commit.
    let planned = |rng: &mut StdRng, t: Duration, kind, target, shape, dur: Duration| {
        let mut p = Planned {
            start: t,
            end: (t + dur).min(time_limit),
            kind,
            target,
            shape,
            pick: rng.gen(),
            layer: Layer::Foreground,
            staggered: false,
        };
        p.staggered = p.can_stagger() && rng.gen_bool(0.75);
        p
    };
    while !fg.is_empty() && t < limit {
        if !bursts.is_empty() && rng.gen_bool(0.35) {
            let (kind, target) = bursts.choose(rng).expect("not empty").planned();
            for _ in 0..rng.gen_range(3..=6) {
                let dur = log_uniform(rng, 0.2, 1.0);
                let p = planned(rng, t, kind, target, Shape::Isolate, dur);
                // After a kill of every node, leave time for an election and for clients
                // to find the new leader: the next kill should land on what it inherited.
                t = p.end
                    + if target == Target::All {
                        log_uniform(rng, 0.6, 2.0)
                    } else {
                        log_uniform(rng, 0.2, 0.8)
                    };
                out.push(p);
                if t >= limit {
                    break;
                }
            }
            continue;
        }
        let kind = *fg.choose(rng).expect("not empty");
        let mut pool = targets.to_vec();
        if matches!(kind, FaultKind::Kill | FaultKind::Pause | FaultKind::Wipe) && every(targets) {
            pool.push(Target::All);
        }
        let target = if leader_first && rng.gen_bool(0.4) {
            Target::Leader
        } else {
            *pool.choose(rng).unwrap_or(&Target::Random)
        };
        let shape = if shapes.contains(&Shape::Isolate) && rng.gen_bool(0.4) {
            Shape::Isolate
        } else {
            *shapes.choose(rng).unwrap_or(&Shape::Halves)
        };
        let dur = log_uniform(rng, 0.3, 5.0);
        let p = planned(rng, t, kind, target, shape, dur);
        t = p.end + log_uniform(rng, 0.2, 3.0);
        out.push(p);
    }
    out
}

/// The disk faults of the search: they take the place of some of the foreground's faults
/// that already stop or stall nodes, so the foreground stays one fault at a time. About a
/// third of the kills become power losses (`lose-unsynced`, same targets and timing, all
/// at once) and one in six kills of one node or a minority a corruption of a durable
/// file; a third of the pauses become spells of a full disk or of slow fsyncs. Drawn from
/// a stream of their own, so where no disk fault is possible (no FUSE layer) every seed
/// keeps the schedule it had before they existed.
fn plan_disk(seed: u64, kinds: &[FaultKind], foreground: &mut [Planned]) {
    let has = |k: FaultKind| kinds.contains(&k);
    let spells: Vec<FaultKind> = [FaultKind::DiskFull, FaultKind::SlowFsync]
        .into_iter()
        .filter(|&k| has(k))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4449_534B_2046_4155);
    for p in foreground.iter_mut() {
        let roll: f64 = rng.gen();
        let pick = rng.gen::<u64>();
        let new = match p.kind {
            FaultKind::Kill if roll < 1.0 / 3.0 && has(FaultKind::LoseUnsynced) => {
                Some(FaultKind::LoseUnsynced)
            }
            FaultKind::Kill
                if roll >= 5.0 / 6.0 && p.target != Target::All && has(FaultKind::Corrupt) =>
            {
                Some(FaultKind::Corrupt)
            }
            FaultKind::Pause if roll < 1.0 / 3.0 && !spells.is_empty() => {
                Some(spells[(pick % spells.len() as u64) as usize])
            }
            _ => None,
        };
        if let Some(kind) = new {
            p.kind = kind;
            p.pick = pick;
            p.staggered = false;
        }
    }
}

/// The weather: back-to-back spells of 2 to 10 s, each a steady delay on every link.
fn plan_weather(rng: &mut StdRng, time_limit: Duration) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    while t + Duration::from_millis(500) < time_limit {
        let end = (t + Duration::from_secs_f64(rng.gen_range(2.0..10.0))).min(time_limit);
        let pick: u64 = rng.gen();
        // A fifth of the spells are calm: no delay at all.
        if !rng.gen_bool(0.2) {
            out.push(Planned {
                start: t,
                end,
                kind: FaultKind::LinkLatency,
                target: Target::All,
                shape: Shape::Halves,
                pick,
                layer: Layer::Weather,
                staggered: false,
            });
        }
        t = end + Duration::from_millis(1);
    }
    out
}

/// Message faults: spells of 1 to 8 s on the links of some nodes, with 0 to 4 s of calm
/// after each.
fn plan_messages(rng: &mut StdRng, kinds: &[FaultKind], time_limit: Duration) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut t = log_uniform(rng, 0.2, 3.0);
    while t + Duration::from_millis(500) < time_limit {
        let end = (t + log_uniform(rng, 1.0, 8.0)).min(time_limit);
        out.push(Planned {
            start: t,
            end,
            kind: *kinds.choose(rng).expect("not empty"),
            target: *[
                Target::Random,
                Target::Leader,
                Target::Minority,
                Target::All,
            ]
            .choose(rng)
            .expect("not empty"),
            shape: Shape::Halves,
            pick: rng.gen(),
            layer: Layer::Messages,
            staggered: false,
        });
        t = end + Duration::from_secs_f64(rng.gen_range(0.0..4.0));
    }
    out
}

/// Clock faults: spells of 0.5 to 6 s on the clocks of some nodes, with 1 to 6 s of real
/// time between, overlapping whatever the other layers do (a clock that is wrong matters
/// when an election or a partition meets it). Drawn from a stream of their own, so where
/// no clock fault is possible (a Go server, no libfaketime) every seed keeps the schedule
/// it had before they existed.
fn plan_clocks(seed: u64, kinds: &[FaultKind], time_limit: Duration) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x434C_4F43_4B20_5350); // "CLOCK SP"
    let mut out = Vec::new();
    let mut t = log_uniform(&mut rng, 0.5, 4.0);
    while t + Duration::from_millis(500) < time_limit {
        let end = (t + log_uniform(&mut rng, 0.5, 6.0)).min(time_limit);
        out.push(Planned {
            start: t,
            end,
            kind: *kinds.choose(&mut rng).expect("not empty"),
            target: *[
                Target::Leader,
                Target::Random,
                Target::Minority,
                Target::Majority,
                Target::All,
            ]
            .choose(&mut rng)
            .expect("not empty"),
            shape: Shape::Halves,
            pick: rng.gen(),
            layer: Layer::Clocks,
            staggered: false,
        });
        t = end + log_uniform(&mut rng, 1.0, 6.0);
    }
    out
}

/// Tests' schedules: the default search for 30 s with every target and shape.
#[cfg(test)]
pub(crate) fn search(seed: u64, kinds: &[FaultKind]) -> Vec<Planned> {
    plan_search(
        seed,
        kinds,
        &Target::ALL,
        &Shape::ALL,
        Duration::from_secs(30),
    )
}

/// Tests' schedules: a fixed rota of every kind, target and shape, 3 s each, for 60 s.
#[cfg(test)]
pub(crate) fn rota(seed: u64) -> Vec<Planned> {
    plan(
        seed,
        &FaultKind::ALL,
        &Target::ALL,
        &Shape::ALL,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Clock faults named beside other kinds run in a rota of their own, in step with
    /// the foreground's; named alone they are the foreground.
    #[test]
    fn clock_faults_beside_others_get_a_layer_of_their_own() {
        let plan = |faults: Vec<FaultKind>| FaultPlan {
            faults,
            targets: vec![Target::Leader],
            shapes: vec![Shape::Isolate],
            interval: Some(Duration::from_secs(3)),
            time_limit: Duration::from_secs(30),
            staggered_kills: false,
            explicit: None,
        };
        let s = plan(vec![FaultKind::ClockJump, FaultKind::Partition]).schedule(3);
        let fg: Vec<&Planned> = s.iter().filter(|p| p.layer == Layer::Foreground).collect();
        let clocks: Vec<&Planned> = s.iter().filter(|p| p.layer == Layer::Clocks).collect();
        assert!(fg.iter().all(|p| p.kind == FaultKind::Partition) && !fg.is_empty());
        assert!(clocks.iter().all(|p| p.kind == FaultKind::ClockJump));
        assert_eq!(fg.len(), clocks.len());
        for (a, b) in fg.iter().zip(&clocks) {
            assert_eq!((a.start, a.end), (b.start, b.end), "in step");
        }
        let alone = plan(vec![FaultKind::ClockRate]).schedule(3);
        assert!(alone.iter().all(|p| p.layer == Layer::Foreground) && !alone.is_empty());
    }

    #[test]
    fn the_search_replays_by_seed_and_keeps_each_layer_in_sequence() {
        assert_eq!(search(7, &FaultKind::ALL), search(7, &FaultKind::ALL));
        assert_ne!(search(7, &FaultKind::ALL), search(8, &FaultKind::ALL));
        for seed in 0..50 {
            let p = search(seed, &FaultKind::ALL);
            for layer in [Layer::Foreground, Layer::Weather, Layer::Messages] {
                let l: Vec<&Planned> = p.iter().filter(|f| f.layer == layer).collect();
                assert!(!l.is_empty(), "seed {seed}: {layer:?} has faults");
                assert!(l
                    .iter()
                    .all(|f| f.start < f.end && f.end <= Duration::from_secs(30)));
                assert!(
                    l.windows(2).all(|w| w[0].end < w[1].start),
                    "no overlap in a layer"
                );
            }
            for f in &p {
                let layer = match f.kind {
                    FaultKind::LinkLatency => Layer::Weather,
                    k if k.is_message() => Layer::Messages,
                    _ => Layer::Foreground,
                };
                assert_eq!(f.layer, layer, "{f}");
            }
        }
    }

    #[test]
    fn successive_seeds_cover_every_kind_target_and_pattern() {
        let mut kinds = BTreeSet::new();
        let mut targets = BTreeSet::new();
        let mut bursts = 0;
        let mut short = 0;
        let mut long = 0;
        for seed in 0..10 {
            let p = search(seed, &FaultKind::ALL);
            kinds.extend(p.iter().map(|f| f.kind));
            targets.extend(p.iter().map(|f| f.target));
            for f in &p {
                let d = f.end - f.start;
                short += usize::from(d < Duration::from_secs(1));
                long += usize::from(d > Duration::from_secs(3));
            }
            // Three leader faults of one kind in a row, each under a second.
            bursts += p
                .windows(3)
                .filter(|w| {
                    w.iter().all(|f| {
                        f.target == Target::Leader
                            && f.kind == w[0].kind
                            && f.end - f.start < Duration::from_secs(1)
                    })
                })
                .count();
        }
        assert_eq!(
            kinds.len(),
            FaultKind::ALL.len() + 1,
            "every kind and link latency: {kinds:?}"
        );
        assert_eq!(targets.len(), 5, "every node at once included: {targets:?}");
        let all: Vec<Planned> = (0..10).flat_map(|s| search(s, &FaultKind::ALL)).collect();
        let staggered: Vec<&Planned> = all.iter().filter(|f| f.staggered).collect();
        assert!(
            staggered.iter().all(|f| f.kind == FaultKind::Kill
                && matches!(f.target, Target::All | Target::Majority | Target::Minority)),
            "only kills of several nodes are staggered"
        );
        let every = |s: bool| {
            all.iter()
                .filter(|f| f.kind == FaultKind::Kill && f.target == Target::All)
                .filter(|f| f.staggered == s)
                .count()
        };
        assert!(
            every(true) > 3 && every(false) > 3,
            "kills of every node come both ways: {} staggered, {} at once",
            every(true),
            every(false)
        );
        assert!(
            bursts > 0 && short > 10 && long > 5,
            "{bursts} {short} {long}"
        );
        // Named targets are honoured: leader only means no fault of every node at once.
        for seed in 0..20 {
            let p = plan_search(
                seed,
                &FaultKind::ALL,
                &[Target::Leader],
                &Shape::ALL,
                Duration::from_secs(30),
            );
            assert!(
                p.iter()
                    .filter(|f| f.layer == Layer::Foreground)
                    .all(|f| f.target == Target::Leader),
                "seed {seed}"
            );
        }
        // What the target cannot have is never planned: etcd gets kills and pauses only.
        let p = search(3, &[FaultKind::Kill, FaultKind::Pause]);
        assert!(p
            .iter()
            .all(|f| matches!(f.kind, FaultKind::Kill | FaultKind::Pause)));
    }

    /// The search's clock faults are a layer of their own that leaves every other layer
    /// of a seed as it was, never overlaps itself, and draws every clock kind and target.
    #[test]
    fn the_search_adds_clock_spells_and_leaves_the_rest_alone() {
        let with: Vec<FaultKind> = FaultKind::ALL.into_iter().chain(FaultKind::CLOCK).collect();
        let (mut kinds, mut targets) = (BTreeSet::new(), BTreeSet::new());
        let mut covered = Duration::ZERO;
        for seed in 0..40 {
            let plain = search(seed, &FaultKind::ALL);
            let all = search(seed, &with);
            let (clocks, rest): (Vec<Planned>, Vec<Planned>) =
                all.into_iter().partition(|p| p.layer == Layer::Clocks);
            assert_eq!(rest, plain, "seed {seed}: the other layers changed");
            assert!(!clocks.is_empty(), "seed {seed}");
            assert!(clocks
                .iter()
                .all(|p| p.kind.is_clock() && p.start < p.end && p.end <= Duration::from_secs(30)));
            assert!(clocks.windows(2).all(|w| w[0].end < w[1].start));
            kinds.extend(clocks.iter().map(|p| p.kind));
            targets.extend(clocks.iter().map(|p| p.target));
            covered += clocks.iter().map(|p| p.end - p.start).sum::<Duration>();
        }
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert_eq!(targets.len(), 5, "{targets:?}");
        // Clocks are wrong for a good part of each run, but not all of it.
        let share = covered.as_secs_f64() / (40.0 * 30.0);
        assert!((0.2..0.8).contains(&share), "{share}");
    }

    #[test]
    fn disk_faults_take_the_place_of_kills_and_pauses_and_leave_the_rest_alone() {
        let every: Vec<FaultKind> = FaultKind::ALL.into_iter().chain(FaultKind::DISK).collect();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let plain = search(seed, &FaultKind::ALL);
            let disk = search(seed, &every);
            assert_eq!(plain.len(), disk.len(), "seed {seed}");
            for (a, b) in plain.iter().zip(&disk) {
                // Same timing, target and layer: only the kind (and its pick) may change.
                assert_eq!(
                    (a.start, a.end, a.target, a.layer),
                    (b.start, b.end, b.target, b.layer)
                );
                if a.kind != b.kind {
                    seen.insert(b.kind);
                    match b.kind {
                        FaultKind::LoseUnsynced => assert_eq!(a.kind, FaultKind::Kill),
                        FaultKind::Corrupt => {
                            assert_eq!(a.kind, FaultKind::Kill);
                            assert_ne!(b.target, Target::All, "a corruption of every node");
                        }
                        FaultKind::DiskFull | FaultKind::SlowFsync => {
                            assert_eq!(a.kind, FaultKind::Pause)
                        }
                        k => panic!("seed {seed}: {} became {k}", a.kind),
                    }
                    assert!(!b.staggered);
                }
            }
        }
        assert_eq!(
            seen.len(),
            4,
            "every disk kind is drawn in 40 seeds: {seen:?}"
        );
        // A disk kind that is not possible is never drawn.
        let no_layer: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .chain([FaultKind::Corrupt])
            .collect();
        assert!((0..40)
            .flat_map(|s| search(s, &no_layer))
            .all(|p| !p.kind.needs_layer()));
    }
}
