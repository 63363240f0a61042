//! Faults: what to break, when, and how to undo exactly what was broken.
//!
//! [`schedule`] plans the faults from the seed. Each kind of fault lives in its own file
//! and implements [`Fault`]: `start` applies a planned fault and returns a typed record of
//! what it did, `stop` undoes precisely that. [`run`] walks the schedule, records every
//! start and stop in the history, and always stops what it started. A new kind of fault
//! is one new file, its [`FaultKind`] and its line in [`registry`].

mod clock;
mod corrupt;
mod disk;
mod env;
mod latency;
mod membership;
mod message;
mod partition;
mod picks;
mod process;
mod reach;
mod schedule;
pub mod schedule_file;
mod wipe;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use checker::record::{FaultDetails, FaultEdge, FaultEntry};
use tokio::sync::Notify;
use tokio::time::Instant;
use workloads::recorder::Recorder;

use crate::fabric::Fabric;
pub use corrupt::{Change, CorruptPlan, FileKind};
pub use env::Env;
pub use reach::{carries, usable, why_not};
pub use schedule::{FaultKind, FaultPlan, Layer, Planned, Shape, Target};

/// One kind of fault, as its file implements it.
pub(crate) trait Fault: Sized + Send + Sync + 'static {
    /// Applies `p`; returns what was done, which is all `stop` needs.
    fn start(p: &Planned, env: &Env) -> impl Future<Output = Result<Self>> + Send;
    /// Undoes what `start` did.
    fn stop(&self, env: &Env) -> impl Future<Output = Result<()>> + Send;
    /// In words, for the console and results.json: "kill leader [2]".
    fn describe(&self) -> String;
    /// For the history and results.json.
    fn details(&self) -> FaultDetails;
    /// Whether links of `fabric` can carry out `kind` (one of the kinds this type serves).
    fn carried_by(kind: FaultKind, fabric: &Fabric) -> bool;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A fault in force, whatever its kind: [`Fault`] with its type forgotten.
trait Active: Send + Sync {
    fn stop<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<()>>;
    fn describe(&self) -> String;
    fn details(&self) -> FaultDetails;
}

impl<F: Fault> Active for F {
    fn stop<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<()>> {
        Box::pin(Fault::stop(self, env))
    }
    fn describe(&self) -> String {
        Fault::describe(self)
    }
    fn details(&self) -> FaultDetails {
        Fault::details(self)
    }
}

/// Starts a fault of type `F` and forgets its type.
fn start_as<'a, F: Fault>(p: &'a Planned, env: &'a Env) -> BoxFuture<'a, Result<Started>> {
    Box::pin(async move { Ok(Started(Box::new(F::start(p, env).await?))) })
}

/// A kind of fault's implementation, as the registry hands it out.
struct Entry {
    start: for<'a> fn(&'a Planned, &'a Env) -> BoxFuture<'a, Result<Started>>,
    carried_by: fn(FaultKind, &Fabric) -> bool,
}

fn entry<F: Fault>() -> Entry {
    Entry {
        start: start_as::<F>,
        carried_by: F::carried_by,
    }
}

/// The registry: which file carries out each kind of fault. Adding a kind is its file
/// and its line here.
fn registry(kind: FaultKind) -> Entry {
    use FaultKind::*;
    match kind {
        Kill | Pause => entry::<process::ProcessFault>(),
        Partition => entry::<partition::PartitionFault>(),
        Latency => entry::<latency::LatencyFault>(),
        LinkLatency => entry::<latency::LinkLatencyFault>(),
        Duplicate | Reorder | Replay | Drop | Loss | Bandwidth => {
            entry::<message::MessageFaultRun>()
        }
        LoseUnsynced => entry::<disk::PowerLoss>(),
        DiskFull | SlowFsync => entry::<disk::DiskSpell>(),
        Corrupt => entry::<corrupt::CorruptFault>(),
        Wipe => entry::<wipe::WipeFault>(),
        Membership => entry::<membership::MembershipFault>(),
        ClockJump | ClockRate | ClockStrobe => entry::<clock::ClockFault>(),
    }
}

/// A started fault of any kind.
pub struct Started(Box<dyn Active>);

impl Started {
    pub async fn start(p: &Planned, env: &Env) -> Result<Started> {
        (registry(p.kind).start)(p, env).await
    }

    pub async fn stop(&self, env: &Env) -> Result<()> {
        self.0.stop(env).await
    }

    pub fn describe(&self) -> String {
        self.0.describe()
    }

    pub fn details(&self) -> FaultDetails {
        self.0.details()
    }
}

/// What the run shows while it goes and reports when it ends.
#[derive(Default)]
pub struct Live {
    /// The faults in force, in words, by layer.
    pub active: Mutex<BTreeMap<Layer, String>>,
    /// Faults that started and stopped, in order.
    pub faults: Mutex<Vec<FaultEntry>>,
    /// Things that went wrong on the way (a node that crashed, a cluster that did not
    /// recover).
    pub warnings: Mutex<Vec<String>>,
}

impl Live {
    /// The faults in force now, in words ("" when healthy).
    pub fn active_now(&self) -> String {
        let active = self.active.lock().expect("lock");
        active.values().cloned().collect::<Vec<_>>().join(" + ")
    }

    pub fn warn(&self, w: String) {
        self.warnings.lock().expect("lock").push(w);
    }
}

/// Carries out `schedule` (offsets from `started`) until it ends or `finish` is notified;
/// a fault in force then is stopped before returning. Each layer runs on its own, so
/// background faults overlap foreground ones.
pub async fn run(
    schedule: Vec<Planned>,
    started: Instant,
    env: Arc<Env>,
    recorder: Arc<Recorder>,
    live: Arc<Live>,
    finish: Arc<Notify>,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let layers = Layer::ALL.map(|layer| {
        let plans: Vec<Planned> = schedule
            .iter()
            .filter(|p| p.layer == layer)
            .cloned()
            .collect();
        tokio::spawn(run_layer(
            plans,
            started,
            env.clone(),
            recorder.clone(),
            live.clone(),
            stop_rx.clone(),
        ))
    });
    // `finish` ends every layer at once; each stops the fault it has in force.
    let stopper = tokio::spawn(async move {
        finish.notified().await;
        stop_tx.send_replace(true);
    });
    let mut result = Ok(());
    for layer in layers {
        let r = layer.await.context("nemesis layer").and_then(|r| r);
        if result.is_ok() {
            result = r;
        }
    }
    stopper.abort();
    result
}

async fn run_layer(
    schedule: Vec<Planned>,
    started: Instant,
    env: Arc<Env>,
    recorder: Arc<Recorder>,
    live: Arc<Live>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    // How late the layer runs: a stop that takes time (a staggered restart) pushes what
    // follows, so the gap after it is kept and the next fault meets a cluster that had
    // its planned time to recover.
    let mut slip = std::time::Duration::ZERO;
    for p in schedule {
        tokio::select! {
            _ = tokio::time::sleep_until(started + p.start + slip) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        let fault = Started::start(&p, &env).await?;
        let details = fault.details();
        let t0 = recorder.nemesis(FaultEdge::Start(p.kind), &details);
        crate::console::record(&format!(
            "fault started ({:?} layer, {:.3} s): {}",
            p.layer,
            t0 as f64 / 1e9,
            fault.describe()
        ));
        live.active
            .lock()
            .expect("lock")
            .insert(p.layer, fault.describe());
        let finished = tokio::select! {
            _ = tokio::time::sleep_until(started + p.end + slip) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        fault.stop(&env).await?;
        slip = Instant::now().saturating_duration_since(started + p.end);
        let details = fault.details();
        let t1 = recorder.nemesis(FaultEdge::Stop(p.kind), &details);
        crate::console::record(&format!(
            "fault stopped ({:?} layer, {:.3} s): {}",
            p.layer,
            t1 as f64 / 1e9,
            fault.describe()
        ));
        live.active.lock().expect("lock").remove(&p.layer);
        live.faults.lock().expect("lock").push(FaultEntry {
            kind: Some(p.kind),
            fault: fault.describe(),
            start_s: t0 as f64 / 1e9,
            end_s: t1 as f64 / 1e9,
            value: details,
        });
        if finished {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::{Cluster, ServerKind};
    use crate::links::Network;

    #[test]
    fn what_each_fabric_carries() {
        let proxies = Fabric::Proxies {
            latency_ms: 0,
            tls: false,
        };
        let tls = Fabric::Proxies {
            latency_ms: 0,
            tls: true,
        };
        let switch = Fabric::Switch {
            latency_ms: 0,
            range: None,
        };
        let carried = |f: &Fabric| -> Vec<&str> {
            FaultKind::ALL
                .into_iter()
                .filter(|&k| carries(f, k))
                .map(FaultKind::name)
                .collect()
        };
        assert_eq!(carried(&Fabric::Direct), ["kill", "pause"]);
        assert_eq!(
            carried(&proxies),
            [
                "kill",
                "pause",
                "partition",
                "latency",
                "duplicate",
                "reorder",
                "replay",
                "drop"
            ]
        );
        assert_eq!(carried(&tls), ["kill", "pause", "partition", "latency"]);
        assert_eq!(
            carried(&switch),
            [
                "kill",
                "pause",
                "partition",
                "latency",
                "duplicate",
                "reorder",
                "loss",
                "bandwidth"
            ]
        );
        assert!(why_not(&tls, FaultKind::Replay).contains("--tls"));
        assert!(why_not(&tls, FaultKind::Loss).contains("packets"));
        // On hosts over ssh, what is missing is said for each layer.
        let hosts = Fabric::Hosts(Box::new(crate::ssh::SshPlan {
            hosts: Vec::new(),
            key: None,
            options: Vec::new(),
            remote_bin: None,
            remote_dir: "/tmp".into(),
            firewall: false,
        }));
        for kind in FaultKind::CLOCK {
            assert!(!carries(&hosts, kind) && why_not(&hosts, kind).contains("clocks"));
        }
        assert!(why_not(&hosts, FaultKind::LoseUnsynced).contains("disk"));
        assert!(why_not(&hosts, FaultKind::Loss).contains("netem"));
        assert!(
            carries(&proxies, FaultKind::LinkLatency)
                && !carries(&Fabric::Direct, FaultKind::LinkLatency)
        );
    }
    use crate::links::LinkMode;

    /// Three nodes' links (to an address never dialled) and no processes.
    async fn env() -> Env {
        let nowhere: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let proxies = crate::proxy::Proxies::start(&[(1, nowhere), (2, nowhere), (3, nowhere)])
            .await
            .unwrap();
        let net = Network::new(proxies, 0);
        let cluster = Cluster::new(
            ServerKind::RaftNode.builtin().unwrap(),
            "/nonexistent".into(),
            Vec::new(),
            Vec::new(),
            Default::default(),
            crate::cluster::Scope::new(),
        );
        Env {
            cluster: Arc::new(tokio::sync::Mutex::new(cluster)),
            net: Some(Arc::new(net)),
            apis: (1..=3).map(|i| (i, String::new())).collect(),
            probes: (1..=3).map(|i| (i, String::new())).collect(),
            access: Default::default(),
            server: ServerKind::RaftNode.builtin().unwrap(),
            epoch: std::time::Instant::now(),
            corrupted: Default::default(),
            wiped: Default::default(),
            corrupt: CorruptPlan {
                limit: 1,
                files: FileKind::ALL.to_vec(),
                changes: Change::ALL.to_vec(),
            },
            _hosting: Default::default(),
        }
    }

    fn planned(kind: FaultKind, shape: Shape, pick: u64) -> Planned {
        Planned {
            start: Duration::ZERO,
            end: Duration::ZERO,
            kind,
            target: Target::Random,
            shape,
            pick,
            layer: Layer::Foreground,
            staggered: false,
        }
    }

    fn all_up(env: &Env) -> bool {
        (1..=3).all(|a| {
            (1..=3)
                .filter(|&b| b != a)
                .all(|b| env.net().unwrap().mode(a, b) == Some(LinkMode::Up))
        })
    }

    #[tokio::test]
    async fn a_partition_cuts_exactly_what_its_record_says_and_stop_heals_it() {
        let env = env().await;
        for shape in Shape::ALL {
            for pick in 0..4 {
                let f = Started::start(&planned(FaultKind::Partition, shape, pick), &env)
                    .await
                    .unwrap();
                let d = f.details();
                let grudge = d.grudge.clone().expect("a partition records its grudge");
                let mode = if pick % 2 == 0 {
                    LinkMode::Cut
                } else {
                    LinkMode::BlackHole
                };
                assert_eq!(
                    d.mode,
                    Some(if pick % 2 == 0 {
                        checker::record::CutMode::Cut
                    } else {
                        checker::record::CutMode::BlackHole
                    })
                );
                for a in 1..=3u64 {
                    for b in (1..=3u64).filter(|&b| b != a) {
                        // b does not hear a: the link a -> b fails.
                        let deaf = grudge.get(&b.to_string()).is_some_and(|d| d.contains(&a));
                        let want = if deaf { mode } else { LinkMode::Up };
                        assert_eq!(
                            env.net().unwrap().mode(a, b),
                            Some(want),
                            "{shape:?} {a}->{b}"
                        );
                    }
                }
                assert!(f
                    .describe()
                    .starts_with(&format!("partition {}", shape.name())));
                f.stop(&env).await.unwrap();
                assert!(all_up(&env), "stop heals every link");
            }
        }
    }

    #[tokio::test]
    async fn latency_adds_to_the_baseline_and_stop_returns_to_it() {
        let mut env = env().await;
        let base = LinkMode::Delay {
            ms: 5,
            jitter_ms: 0,
        };
        Arc::get_mut(env.net.as_mut().unwrap())
            .unwrap()
            .set_base_latency(5);
        let f = Started::start(&planned(FaultKind::Latency, Shape::Halves, 0), &env)
            .await
            .unwrap();
        let d = f.details();
        assert_eq!((d.delay_ms, d.jitter_ms), (Some(55), Some(100)));
        assert_eq!(d.nodes, vec![1, 2, 3]);
        assert_eq!(
            env.net().unwrap().mode(1, 2),
            Some(LinkMode::Delay {
                ms: 55,
                jitter_ms: 100
            })
        );
        assert_eq!(f.describe(), "latency 55-155ms");
        f.stop(&env).await.unwrap();
        assert_eq!(env.net().unwrap().mode(3, 1), Some(base));
    }

    #[tokio::test]
    async fn overlapping_faults_never_undo_each_other() {
        let env = env().await;
        let net = env.net().unwrap();
        let weather = Planned {
            layer: Layer::Weather,
            ..planned(FaultKind::LinkLatency, Shape::Halves, 2)
        };
        let weather = Started::start(&weather, &env).await.unwrap();
        let ms = 10; // pick 2: no jitter
        assert_eq!(net.mode(1, 2), Some(LinkMode::Delay { ms, jitter_ms: 0 }));
        let part = Started::start(&planned(FaultKind::Partition, Shape::Isolate, 0), &env)
            .await
            .unwrap();
        let slow = Started::start(&planned(FaultKind::Latency, Shape::Halves, 0), &env)
            .await
            .unwrap();
        let cut = || {
            (1..=3u64)
                .flat_map(|a| (1..=3u64).map(move |b| (a, b)))
                .filter(|(a, b)| a != b && net.mode(*a, *b) == Some(LinkMode::Cut))
                .count()
        };
        assert_eq!(
            cut(),
            4,
            "isolating one of three cuts four links, latency or not"
        );
        // The background ends first: the partition and the latency fault stay.
        weather.stop(&env).await.unwrap();
        assert_eq!(cut(), 4);
        part.stop(&env).await.unwrap();
        assert_eq!(
            net.mode(1, 2),
            Some(LinkMode::Delay {
                ms: 50,
                jitter_ms: 100
            })
        );
        slow.stop(&env).await.unwrap();
        assert!(all_up(&env));
        // Pick 6: 10 ms with up to 20 more, on every link, and all gone when it stops.
        let gusty = Planned {
            layer: Layer::Weather,
            ..planned(FaultKind::LinkLatency, Shape::Halves, 6)
        };
        let gusty = Started::start(&gusty, &env).await.unwrap();
        assert_eq!(gusty.describe(), "link-latency 10-30ms");
        assert_eq!(gusty.details().jitter_ms, Some(20));
        for (a, b) in [(1, 2), (2, 3), (3, 1)] {
            assert_eq!(
                net.mode(a, b),
                Some(LinkMode::Delay {
                    ms: 10,
                    jitter_ms: 20
                })
            );
        }
        gusty.stop(&env).await.unwrap();
        assert!(all_up(&env));
    }

    #[tokio::test]
    async fn a_message_fault_covers_its_nodes_links_and_records_what_it_did() {
        let env = env().await;
        let p = Planned {
            target: Target::Random,
            ..planned(FaultKind::Duplicate, Shape::Halves, 9)
        };
        let f = Started::start(&p, &env).await.unwrap();
        let d = f.details();
        assert_eq!(d.nodes.len(), 1);
        let n = d.nodes[0];
        assert_eq!(d.links.len(), 4, "in and out of one node of three");
        assert!(d.links.iter().all(|[a, b]| *a == n || *b == n));
        assert!(d.messages.is_empty(), "nothing happened yet");
        f.stop(&env).await.unwrap();
        assert!(f.describe().starts_with(&format!("duplicate [{n}]")));
        let every = Planned {
            target: Target::All,
            ..planned(FaultKind::Drop, Shape::Halves, 9)
        };
        let f = Started::start(&every, &env).await.unwrap();
        assert_eq!(f.details().links.len(), 6);
        f.stop(&env).await.unwrap();
    }
}
