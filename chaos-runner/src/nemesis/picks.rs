//! What a planned fault hits, drawn from its pick when it starts: the nodes of a kill or
//! pause, the order and gaps of a staggered kill, the grudge of a partition. Only the
//! leader target depends on the run (who leads then), so `--seed` still reproduces
//! every draw.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::schedule::{log_uniform, Planned, Shape, Target};

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

/// When each node of a staggered kill goes down and comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stagger {
    /// Kill order, each with its offset from the fault's start: a few to 80 ms apart, so
    /// the last to die may take writes the others never see.
    pub kills: Vec<(u64, Duration)>,
    /// Restart order, each with its offset from the fault's end: 50 to 800 ms apart, about
    /// an election timeout, so the first to return may elect before the last is back.
    pub restarts: Vec<(u64, Duration)>,
}

/// The stagger of a kill of `nodes` (the chosen ones), drawn from the plan's pick.
pub fn stagger(p: &Planned, nodes: &[u64]) -> Stagger {
    let mut rng = StdRng::seed_from_u64(p.pick ^ 0x5354_4147_4745_5221);
    let mut steps = |lo: f64, hi: f64| {
        let mut order = nodes.to_vec();
        order.shuffle(&mut rng);
        let mut at = Duration::ZERO;
        let mut out = Vec::with_capacity(order.len());
        for (i, n) in order.into_iter().enumerate() {
            if i > 0 {
                at += log_uniform(&mut rng, lo, hi);
            }
            out.push((n, at));
        }
        out
    };
    let kills = steps(0.002, 0.08);
    let restarts = steps(0.05, 0.8);
    Stagger { kills, restarts }
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
    use crate::nemesis::schedule::{rota, search, FaultKind, Layer};

    fn planned(shape: Shape, pick: u64) -> Planned {
        Planned {
            start: Duration::ZERO,
            end: Duration::ZERO,
            kind: FaultKind::Partition,
            target: Target::Random,
            shape,
            pick,
            layer: Layer::Foreground,
            staggered: false,
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

    #[test]
    fn a_stagger_takes_every_node_once_each_way_within_its_bounds() {
        let nodes = [1, 2, 3, 4, 5];
        let mut first_back = BTreeSet::new();
        for pick in 0..200 {
            let p = Planned {
                kind: FaultKind::Kill,
                target: Target::All,
                staggered: true,
                ..planned(Shape::Halves, pick)
            };
            let s = stagger(&p, &nodes);
            assert_eq!(s, stagger(&p, &nodes), "replays from the pick");
            for (steps, lo, hi) in [(&s.kills, 2, 80), (&s.restarts, 50, 800)] {
                let mut order: Vec<u64> = steps.iter().map(|&(n, _)| n).collect();
                order.sort_unstable();
                assert_eq!(order, nodes, "each node exactly once");
                assert_eq!(steps[0].1, Duration::ZERO, "the first goes at once");
                for w in steps.windows(2) {
                    let gap = w[1].1 - w[0].1;
                    assert!(
                        gap >= Duration::from_millis(lo) && gap <= Duration::from_millis(hi),
                        "{gap:?} outside {lo}..{hi} ms"
                    );
                }
            }
            first_back.insert(s.restarts[0].0);
        }
        assert_eq!(first_back.len(), 5, "any node may come back first");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let args = rota;
        assert_eq!(args(42), args(42));
        assert_ne!(args(42), args(43));
        let p = args(42);
        assert_eq!(p.len(), 10);
        assert!(
            p.windows(2).all(|w| w[0].end < w[1].start),
            "faults never overlap"
        );
        let first_round: BTreeSet<FaultKind> = p[..8].iter().map(|f| f.kind).collect();
        assert_eq!(first_round.len(), 8, "every kind comes once per round");
        let nodes = [1, 2, 3, 4, 5];
        for f in &p {
            assert_eq!(choose_nodes(f, &nodes, None), choose_nodes(f, &nodes, None));
            assert_eq!(grudge(f, &nodes, None), grudge(f, &nodes, None));
        }
    }

    /// A schedule as text, with what each fault would hit in a 3-node cluster led by
    /// node 1: the plan and every draw made from it.
    fn pinned_text(plan: &[Planned]) -> String {
        let nodes = [1, 2, 3];
        let mut out = String::new();
        for p in plan {
            let hit = choose_nodes(p, &nodes, Some(1));
            out += &format!("{p} | nodes {hit:?}");
            if p.kind == FaultKind::Partition {
                out += &format!(" | grudge {:?}", grudge(p, &nodes, Some(1)));
            }
            if p.staggered {
                // In µs: the last bits of a float's logarithm are the platform's.
                let s = stagger(p, &hit);
                let steps = |v: &[(u64, Duration)]| -> Vec<String> {
                    v.iter()
                        .map(|(n, at)| format!("{n}@{}us", at.as_micros()))
                        .collect()
                };
                out += &format!(
                    " | stagger down {:?} up {:?}",
                    steps(&s.kills),
                    steps(&s.restarts)
                );
            }
            out.push('\n');
        }
        out
    }

    /// Refactors must not change a schedule: the default search and a fixed rota for a
    /// few seeds, byte for byte as pinned in tests/fixtures/schedules. After a deliberate
    /// change of the schedule, `PIN_SCHEDULES=write cargo test -p chaos-runner pinned`
    /// writes them anew (and the diff shows what changed).
    #[test]
    fn pinned_schedules_do_not_change() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedules");
        let write = std::env::var("PIN_SCHEDULES").is_ok_and(|v| v == "write");
        for seed in [1u64, 7, 42, 12345] {
            let cases = [
                (format!("search-{seed}.txt"), search(seed, &FaultKind::ALL)),
                (
                    format!("search-disk-{seed}.txt"),
                    search(
                        seed,
                        &FaultKind::ALL
                            .into_iter()
                            .chain(FaultKind::DISK)
                            .collect::<Vec<_>>(),
                    ),
                ),
                (format!("rota-{seed}.txt"), rota(seed)),
            ];
            for (name, plan) in cases {
                let text = pinned_text(&plan);
                let path = dir.join(&name);
                if write {
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&path, &text).unwrap();
                    continue;
                }
                let pinned = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(text == pinned, "{name} changed:\n{text}");
            }
        }
    }
}
