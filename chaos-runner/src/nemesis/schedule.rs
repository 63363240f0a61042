//! The fault schedule: what to break, and when.
//!
//! The schedule is planned up front from the seed ([`plan`]): which fault, which target
//! kind, which partition shape, and a number that picks the nodes. Only the "leader"
//! target depends on the run (who leads at that moment). So `--seed` reproduces the
//! schedule exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL, restarted from the same data directory when the fault ends.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Cut links following a grudge.
    Partition,
    /// Delay every link.
    Latency,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Latency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Latency => "latency",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Which nodes a kill or pause hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Random,
    Leader,
    Minority,
    Majority,
    /// Every node at once (Jepsen's `:all`): what no majority remembers is lost.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Partition => write!(
                f,
                "{:.1}s partition {}",
                self.start.as_secs_f64(),
                self.shape.name()
            ),
            FaultKind::Latency => write!(f, "{:.1}s latency", self.start.as_secs_f64()),
            k => write!(
                f,
                "{:.1}s {} {}",
                self.start.as_secs_f64(),
                k.name(),
                self.target.name()
            ),
        }
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
        });
        t = end + interval;
    }
    out
}

/// The nodes a kill or pause hits. `leader` is who leads now, if known.
pub fn choose_nodes(p: &Planned, nodes: &[u64], leader: Option<u64>) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(p.pick);
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(&mut rng);
    let n = nodes.len();
    let count = match p.target {
        Target::Random => 1,
        Target::Leader => {
            return vec![leader.unwrap_or(shuffled[0])];
        }
        Target::Minority => (n - 1) / 2,
        Target::Majority => n / 2 + 1,
        Target::All => n,
    };
    let mut chosen: Vec<u64> = shuffled.into_iter().take(count.max(1)).collect();
    chosen.sort_unstable();
    chosen
}

/// Who cannot hear whom: `grudge[a]` is the set of nodes whose messages `a` does not get.
pub type Grudge = BTreeMap<u64, BTreeSet<u64>>;

fn cut_both(g: &mut Grudge, a: &[u64], b: &[u64]) {
    for &x in a {
        for &y in b {
            g.entry(x).or_default().insert(y);
            g.entry(y).or_default().insert(x);
        }
    }
}

/// The grudge for a partition. `leader` makes `isolate` hit the leader when the target is
/// `leader`.
pub fn grudge(p: &Planned, nodes: &[u64], leader: Option<u64>) -> Grudge {
    let mut rng = StdRng::seed_from_u64(p.pick);
    let mut ring = nodes.to_vec();
    ring.shuffle(&mut rng);
    let n = ring.len();
    let mut g = Grudge::new();
    match p.shape {
        Shape::Isolate => {
            let x = if p.target == Target::Leader {
                leader.unwrap_or(ring[0])
            } else {
                ring[0]
            };
            let rest: Vec<u64> = nodes.iter().copied().filter(|&y| y != x).collect();
            cut_both(&mut g, &[x], &rest);
        }
        Shape::Halves => {
            let (a, b) = ring.split_at(n / 2);
            cut_both(&mut g, a, b);
        }
        Shape::Bridge => {
            let (a, b) = ring[1..].split_at((n - 1) / 2);
            cut_both(&mut g, a, b);
        }
        Shape::MajoritiesRing => {
            // Position p hears positions p-lo ..= p+hi (a majority with itself).
            let m = n / 2 + 1;
            let lo = (m - 1) / 2;
            let hi = m - 1 - lo;
            for (pos, &a) in ring.iter().enumerate() {
                let hears: BTreeSet<u64> = (0..=lo + hi)
                    .map(|k| ring[(pos + n - lo + k) % n])
                    .collect();
                let deaf: BTreeSet<u64> = nodes
                    .iter()
                    .copied()
                    .filter(|x| !hears.contains(x))
                    .collect();
                if !deaf.is_empty() {
                    g.insert(a, deaf);
                }
            }
        }
        Shape::Random => {
            for &a in nodes {
                for &b in nodes {
                    if a != b && rng.gen_bool(0.5) {
                        g.entry(a).or_default().insert(b);
                    }
                }
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(shape: Shape, pick: u64) -> Planned {
        Planned {
            start: Duration::ZERO,
            end: Duration::ZERO,
            kind: FaultKind::Partition,
            target: Target::Random,
            shape,
            pick,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let args = |seed| {
            plan(
                seed,
                &FaultKind::ALL,
                &Target::ALL,
                &Shape::ALL,
                Duration::from_secs(3),
                Duration::from_secs(60),
            )
        };
        assert_eq!(args(42), args(42));
        assert_ne!(args(42), args(43));
        let p = args(42);
        assert_eq!(p.len(), 10);
        assert!(
            p.windows(2).all(|w| w[0].end < w[1].start),
            "faults never overlap"
        );
        let first_round: BTreeSet<FaultKind> = p[..4].iter().map(|f| f.kind).collect();
        assert_eq!(first_round.len(), 4, "every kind comes once per round");
        let nodes = [1, 2, 3, 4, 5];
        for f in &p {
            assert_eq!(choose_nodes(f, &nodes, None), choose_nodes(f, &nodes, None));
            assert_eq!(grudge(f, &nodes, None), grudge(f, &nodes, None));
        }
    }

    #[test]
    fn majorities_ring_gives_each_node_a_different_majority() {
        for n in [3usize, 5, 7] {
            let nodes: Vec<u64> = (1..=n as u64).collect();
            let g = grudge(&planned(Shape::MajoritiesRing, 7), &nodes, None);
            let mut views = BTreeSet::new();
            for &a in &nodes {
                let heard: BTreeSet<u64> = nodes
                    .iter()
                    .copied()
                    .filter(|b| !g.get(&a).is_some_and(|d| d.contains(b)))
                    .collect();
                assert!(heard.contains(&a));
                assert_eq!(
                    heard.len(),
                    n / 2 + 1,
                    "node {a} of {n} hears a bare majority"
                );
                views.insert(heard);
            }
            assert_eq!(views.len(), n, "every node sees a different majority");
        }
    }

    #[test]
    fn shapes_cut_what_they_should() {
        let nodes = [1, 2, 3, 4, 5];
        let g = grudge(&planned(Shape::Isolate, 1), &nodes, None);
        let isolated: Vec<u64> = nodes.iter().copied().filter(|a| g[a].len() == 4).collect();
        assert_eq!(isolated.len(), 1);
        let g = grudge(&planned(Shape::Halves, 1), &nodes, None);
        let sizes: BTreeSet<usize> = nodes.iter().map(|a| g[a].len()).collect();
        assert_eq!(sizes, BTreeSet::from([2, 3]));
        let g = grudge(&planned(Shape::Bridge, 1), &nodes, None);
        assert_eq!(
            nodes.iter().filter(|a| !g.contains_key(a)).count(),
            1,
            "the bridge hears all"
        );
        let p = Planned {
            target: Target::Majority,
            ..planned(Shape::Halves, 3)
        };
        assert_eq!(choose_nodes(&p, &nodes, None).len(), 3);
        let p = Planned {
            target: Target::Leader,
            ..p
        };
        assert_eq!(choose_nodes(&p, &nodes, Some(4)), vec![4]);
    }
}
