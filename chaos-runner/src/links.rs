//! The links between a cluster's nodes and the faults on them, in one model whatever
//! carries them out.
//!
//! A link's state is the sum of independent layers, so faults that overlap (a partition
//! during a spell of slow links, a kill while requests are being duplicated) never undo
//! each other: a cut (partition), an added delay (the latency fault), the weather (a
//! delay the schedule changes during the run) and the run's steady `--link-latency`.
//! [`Network`] keeps those layers and folds them into one [`LinkMode`] per link; a
//! [`Carrier`] makes each link behave as its mode says. Faults on whole messages or
//! packets go straight to the carrier, since only it sees them.
//!
//! The carriers: one TCP proxy per directed link (`proxy::Proxies`), the packet switch
//! of `--net netns` (`netns::carrier::SwitchCarrier`), and the hosts' firewalls of ssh
//! mode (`ssh::firewall::FirewallCarrier`). Each keeps its own per-link state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use checker::fault::FaultKind;
use checker::record::{MessageRecord, PacketRecord};

/// What a link does to traffic, all its faults folded together: the one vocabulary the
/// proxies, the packet switch and the hosts' firewalls all carry out, so every fault
/// means the same in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Up,
    /// Live connections are reset, new ones refused (reset at once).
    Cut,
    /// Nothing passes and nothing is refused: the sender's timeouts fire.
    BlackHole,
    /// Every chunk (or packet) waits `ms` plus up to `jitter_ms` more.
    Delay {
        ms: u64,
        jitter_ms: u64,
    },
}

/// What a link fault on whole messages or packets did, for the history.
#[derive(Debug, Default)]
pub struct LinkRecord {
    /// Requests the fault acted on (proxies), as many as are kept.
    pub messages: Vec<MessageRecord>,
    /// How many more requests it acted on than `messages` lists.
    pub not_listed: u64,
    /// Packets it saw and acted on (the switch).
    pub packet: Option<PacketRecord>,
}

/// Makes the directed links between nodes behave as the nemesis says. Implemented by
/// each way the runner can stand between nodes; nothing else needs to know which.
pub trait Carrier: Send + Sync {
    /// Every directed link it carries, as (from, to).
    fn links(&self) -> Vec<(u64, u64)>;

    /// Where node `from` must send to reach node `to`, when that is not `to`'s own
    /// address (a proxy's port).
    fn addr(&self, _from: u64, _to: u64) -> Option<SocketAddr> {
        None
    }

    /// Puts one link in `mode`.
    fn set_mode(&self, link: (u64, u64), mode: LinkMode);

    /// Starts a fault on the link's messages or packets (`Some((kind, seed))`: a seed
    /// replays the same decisions), or ends it (`None`, never refused). A kind this
    /// carrier cannot act on is refused with the reason.
    fn set_fault(&self, link: (u64, u64), fault: Option<(FaultKind, u64)>) -> Result<(), String>;

    /// What the link's fault did since it started. `epoch` is where the history's clock
    /// starts.
    fn take_record(&self, _link: (u64, u64), _epoch: std::time::Instant) -> LinkRecord {
        LinkRecord::default()
    }
}

/// The faults in force on one link, each set and cleared on its own.
#[derive(Debug, Clone, Copy, Default)]
struct Layers {
    /// A partition: `Cut` or `BlackHole`.
    cut: Option<LinkMode>,
    /// The latency fault: added delay and jitter.
    slow: Option<(u64, u64)>,
    /// The schedule's changing background delay and its jitter.
    weather: (u64, u64),
}

/// The links of a cluster, the fault layers on each, and what carries them out.
pub struct Network {
    layers: BTreeMap<(u64, u64), Mutex<Layers>>,
    /// The steady one-way delay of every link (`--link-latency`).
    base_ms: u64,
    carrier: Box<dyn Carrier>,
}

impl Network {
    /// The links `carrier` carries, each at the steady delay `base_ms`.
    pub fn new(carrier: impl Carrier + 'static, base_ms: u64) -> Network {
        let layers = carrier
            .links()
            .into_iter()
            .map(|l| (l, Mutex::new(Layers::default())))
            .collect();
        let net = Network {
            layers,
            base_ms,
            carrier: Box::new(carrier),
        };
        net.update_all(|_| {});
        net
    }

    /// Where node `from` must send to reach node `to`: its proxy, in proxy mode.
    pub fn addr(&self, from: u64, to: u64) -> Option<SocketAddr> {
        self.carrier.addr(from, to)
    }

    /// Every directed link, as (from, to).
    pub fn links(&self) -> Vec<(u64, u64)> {
        self.layers.keys().copied().collect()
    }

    /// What the link from `from` to `to` does now (tests check faults with it).
    #[cfg(test)]
    pub fn mode(&self, from: u64, to: u64) -> Option<LinkMode> {
        let layers = *self.layers.get(&(from, to))?.lock().expect("link layers");
        Some(self.fold(&layers))
    }

    fn fold(&self, layers: &Layers) -> LinkMode {
        layers.cut.unwrap_or_else(|| {
            let (extra, slow_jitter) = layers.slow.unwrap_or((0, 0));
            let ms = self.base_ms + layers.weather.0 + extra;
            let jitter_ms = slow_jitter + layers.weather.1;
            if ms == 0 && jitter_ms == 0 {
                LinkMode::Up
            } else {
                LinkMode::Delay { ms, jitter_ms }
            }
        })
    }

    fn update(&self, link: (u64, u64), change: impl FnOnce(&mut Layers)) {
        let Some(layers) = self.layers.get(&link) else {
            return;
        };
        let mut layers = layers.lock().expect("link layers");
        change(&mut layers);
        self.carrier.set_mode(link, self.fold(&layers));
    }

    fn update_all(&self, change: impl Fn(&mut Layers)) {
        for &link in self.layers.keys() {
            self.update(link, &change);
        }
    }

    /// Partitions the link: `Cut` or `BlackHole`.
    pub fn cut(&self, from: u64, to: u64, mode: LinkMode) {
        self.update((from, to), |s| s.cut = Some(mode));
    }

    /// Ends every partition.
    pub fn uncut_all(&self) {
        self.update_all(|s| s.cut = None);
    }

    /// Adds `ms` (plus up to `jitter_ms`) to every link, or removes it (`None`).
    pub fn slow_all(&self, slow: Option<(u64, u64)>) {
        self.update_all(|s| s.slow = slow);
    }

    /// Sets the background delay of every link: `ms`, plus up to `jitter_ms` drawn per
    /// chunk. Jitter keeps each connection's bytes in order, but two requests on two
    /// connections of one link may then arrive in either order.
    pub fn set_weather(&self, ms: u64, jitter_ms: u64) {
        self.update_all(|s| s.weather = (ms, jitter_ms));
    }

    /// Starts (`Some((kind, seed))`) or ends a fault on the link's messages or packets.
    pub fn set_fault(
        &self,
        link: (u64, u64),
        fault: Option<(FaultKind, u64)>,
    ) -> Result<(), String> {
        self.carrier.set_fault(link, fault)
    }

    /// What the link's message or packet fault did since it started.
    pub fn take_record(&self, link: (u64, u64), epoch: std::time::Instant) -> LinkRecord {
        self.carrier.take_record(link, epoch)
    }

    /// Makes `ms` the steady delay of every link, now and after each heal.
    #[cfg(test)]
    pub fn set_base_latency(&mut self, ms: u64) {
        self.base_ms = ms;
        self.update_all(|_| {});
    }

    /// The steady delay of every link.
    pub fn base_latency(&self) -> u64 {
        self.base_ms
    }

    /// Ends every fault: each link returns to the steady delay.
    pub fn heal(&self) {
        for &link in self.layers.keys() {
            self.update(link, |s| *s = Layers::default());
            // Ending a fault is never refused.
            let _ = self.carrier.set_fault(link, None);
        }
    }
}

/// A carrier's per-link mode, published to whatever acts on it (the switch's tasks, the
/// firewall's followers): one watch per directed link.
pub struct ModeWatches {
    senders: BTreeMap<(u64, u64), tokio::sync::watch::Sender<LinkMode>>,
}

impl ModeWatches {
    /// One watch per directed link between `ids`, starting `Up`; returns the receivers.
    pub fn between(
        ids: &[u64],
    ) -> (
        ModeWatches,
        BTreeMap<(u64, u64), tokio::sync::watch::Receiver<LinkMode>>,
    ) {
        let mut senders = BTreeMap::new();
        let mut receivers = BTreeMap::new();
        for &from in ids {
            for &to in ids {
                if from != to {
                    let (tx, rx) = tokio::sync::watch::channel(LinkMode::Up);
                    senders.insert((from, to), tx);
                    receivers.insert((from, to), rx);
                }
            }
        }
        (ModeWatches { senders }, receivers)
    }

    pub fn links(&self) -> Vec<(u64, u64)> {
        self.senders.keys().copied().collect()
    }

    /// Publishes `mode` if it differs from what the link has.
    pub fn set(&self, link: (u64, u64), mode: LinkMode) {
        if let Some(tx) = self.senders.get(&link) {
            tx.send_if_modified(|m| std::mem::replace(m, mode) != mode);
        }
    }
}
