//! Faults of the clock, through each node's libfaketime control file
//! (`cluster::clock`): `clock-jump` moves the chosen nodes' clocks (wall and monotonic
//! together) forwards or backwards at once; `clock-rate` runs them fast or slow for a
//! spell; `clock-strobe` jumps them back and forth every few milliseconds for a spell.
//! Every clock snaps back to real time when the fault ends, as Jepsen's clock nemesis
//! resets clocks at heal.
//!
//! Sizes come from the plan's pick, so a seed replays them: jumps of 0.1 to 6.4 s either
//! way (past any election timeout, within what a badly synced host sees), rates of
//! 0.25x, 0.5x, 2x or 4x, strobes of 0.1 to 1.6 s swings every 10 to 50 ms.

use std::time::Duration;

use anyhow::{Context, Result};
use checker::record::{ClockChange, FaultDetails};

use super::{Env, Fault, FaultKind, Planned, Target};
use crate::cluster::clock::ClockScope;
use crate::fabric::Fabric;

/// How often a wall clock's drift moves it (`--clock-wall-only`): 10 ms steps, finer
/// than any timeout a server would take from the wall clock.
const DRIFT_STEP: Duration = Duration::from_millis(10);

/// What the fault does to each chosen node's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    Jump { by_s: f64 },
    Rate { rate: f64 },
    Strobe { swing_s: f64, every: Duration },
}

impl Change {
    /// The change plan `p` asks for, drawn from its pick.
    fn of(p: &Planned) -> Change {
        let size = 0.1 * f64::from(1u32 << (p.pick % 5)); // 0.1, 0.2, ... 1.6 s
        match p.kind {
            FaultKind::ClockJump => {
                let by_s = 0.1 * f64::from(1u32 << (p.pick % 7)); // 0.1 to 6.4 s
                let sign = if (p.pick >> 8) & 1 == 0 { 1.0 } else { -1.0 };
                Change::Jump { by_s: sign * by_s }
            }
            FaultKind::ClockRate => Change::Rate {
                rate: [0.25, 0.5, 2.0, 4.0][(p.pick % 4) as usize],
            },
            _ => Change::Strobe {
                swing_s: size,
                every: Duration::from_millis(10 + (p.pick >> 8) % 41),
            },
        }
    }

    fn record(self, node: u64) -> ClockChange {
        let (offset_s, rate) = match self {
            Change::Jump { by_s } => (by_s, 1.0),
            Change::Rate { rate } => (0.0, rate),
            Change::Strobe { swing_s, .. } => (swing_s, 1.0),
        };
        ClockChange {
            node,
            offset_ms: (offset_s * 1e3).round() as i64,
            rate_percent: (rate * 100.0).round() as u32,
        }
    }
}

pub struct ClockFault {
    kind: FaultKind,
    target: Target,
    nodes: Vec<u64>,
    change: Change,
    /// The task that keeps changing the clocks until the fault ends: a strobe's flips,
    /// or a wall clock's drift in steps.
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Fault for ClockFault {
    /// The control files are on this machine: any links here, not hosts over ssh.
    fn carried_by(_: FaultKind, fabric: &Fabric) -> bool {
        fabric.on_this_machine()
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let nodes = env.targets(p).await;
        let change = Change::of(p);
        let mut wall_only = false;
        {
            let mut c = env.cluster.lock().await;
            for &n in &nodes {
                let clock = c
                    .clock(n)
                    .with_context(|| format!("node {n} runs without a clock the runner moves"))?;
                wall_only |= clock.scope() == ClockScope::WallOnly;
                match change {
                    Change::Jump { by_s } => clock.jump(by_s)?,
                    // libfaketime's rate also scales sleeps, which a wall clock's drift
                    // must not: with the wall clock alone, the drift is stepped instead.
                    Change::Rate { rate } if clock.scope() == ClockScope::WallAndMonotonic => {
                        clock.run_at(rate)?
                    }
                    Change::Rate { .. } | Change::Strobe { .. } => {}
                }
            }
        }
        // Where the control file must change as the fault goes on: each step sets how far
        // ahead the clocks are, from the step's count and the time since the start.
        let stepping = match change {
            Change::Strobe { swing_s, every } => Some((every, swing_s, 1.0)),
            Change::Rate { rate } if wall_only => Some((DRIFT_STEP, 0.0, rate)),
            _ => None,
        };
        let ticker = stepping.map(|(every, swing_s, rate)| {
            let (cluster, nodes) = (env.cluster.clone(), nodes.clone());
            tokio::spawn(async move {
                let began = tokio::time::Instant::now();
                for step in 0u64.. {
                    let ahead = match swing_s > 0.0 && step % 2 == 0 {
                        true => swing_s,
                        false => (rate - 1.0) * began.elapsed().as_secs_f64(),
                    };
                    {
                        let mut c = cluster.lock().await;
                        for &n in &nodes {
                            if let Some(clock) = c.clock(n) {
                                let _ = clock.set(ahead, 1.0);
                            }
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            })
        });
        Ok(ClockFault {
            kind: p.kind,
            target: p.target,
            nodes,
            change,
            ticker,
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        let mut c = env.cluster.lock().await;
        for &n in &self.nodes {
            if let Some(clock) = c.clock(n) {
                clock.reset()?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let what = match self.change {
            Change::Jump { by_s } => format!("{by_s:+.1} s"),
            Change::Rate { rate } => format!("{rate}x"),
            Change::Strobe { swing_s, every } => {
                format!("{swing_s:.1} s every {} ms", every.as_millis())
            }
        };
        format!(
            "{} {} {:?} ({what})",
            self.kind.name(),
            self.target.name(),
            self.nodes
        )
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            target: Some(self.target),
            clocks: self.nodes.iter().map(|&n| self.change.record(n)).collect(),
            ..FaultDetails::default()
        }
    }
}

impl Drop for ClockFault {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::fault::Shape;

    fn planned(kind: FaultKind, pick: u64) -> Planned {
        Planned {
            start: Duration::ZERO,
            end: Duration::ZERO,
            kind,
            target: Target::Leader,
            shape: Shape::Halves,
            pick,
            layer: super::super::Layer::Foreground,
            staggered: false,
        }
    }

    #[test]
    fn sizes_come_from_the_pick_within_their_bounds() {
        for pick in 0..2000u64 {
            match Change::of(&planned(FaultKind::ClockJump, pick)) {
                Change::Jump { by_s } => assert!((0.1..=6.4).contains(&by_s.abs()), "{by_s}"),
                c => panic!("{c:?}"),
            }
            match Change::of(&planned(FaultKind::ClockRate, pick)) {
                Change::Rate { rate } => assert!([0.25, 0.5, 2.0, 4.0].contains(&rate)),
                c => panic!("{c:?}"),
            }
            match Change::of(&planned(FaultKind::ClockStrobe, pick)) {
                Change::Strobe { swing_s, every } => {
                    assert!((0.1..=1.6).contains(&swing_s));
                    assert!((10..=50).contains(&every.as_millis()));
                }
                c => panic!("{c:?}"),
            }
        }
        // Both directions occur.
        let backwards = (0..512u64).any(|p| {
            matches!(Change::of(&planned(FaultKind::ClockJump, p)), Change::Jump { by_s } if by_s < 0.0)
        });
        assert!(backwards);
        let r = Change::Rate { rate: 0.25 }.record(2);
        assert_eq!((r.node, r.offset_ms, r.rate_percent), (2, 0, 25));
    }
}
