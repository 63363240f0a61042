//! The packet switch: every node's namespace has one TUN device as its only link, the
//! runner's namespace has one for the clients, and this forwards IPv4 packets between
//! them, doing to each directed node-to-node link what its faults say.
//!
//! Node-to-client traffic is never faulted (as in proxy mode, where clients talk to the
//! nodes directly): a client's view of a fault is the nodes' behaviour, not its own link.
//!
//! Per packet, a link is first what the proxy layers fold into ([`LinkMode`]: up, cut,
//! black-hole, delay), then its packet fault ([`PacketFault`]), if one is in force. A
//! cut link answers each TCP packet with a reset, so live connections fail at once; a
//! black hole swallows everything. Delayed packets go through a delay line per link
//! that keeps their order; reordered and duplicated copies travel on their own.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use checker::record::PacketRecord;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::packet::{ipv4_ends, tcp_reset_for};
use super::tun::Tun;
use crate::links::LinkMode;

/// What a packet fault does to the packets of one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketFault {
    /// 20% of packets are lost (TCP retransmits them after a timeout).
    Loss,
    /// Half the packets arrive twice, the copy 0-10 ms later.
    Duplicate,
    /// 30% of packets are held 1-10 ms, so later ones overtake them.
    Reorder,
    /// The link carries 256 KiB/s; packets queue behind it, and a queue longer than a
    /// second overflows (drops), as a router's would.
    Bandwidth,
}

impl PacketFault {
    const LOSS: f64 = 0.2;
    const DUPLICATE: f64 = 0.5;
    const REORDER: f64 = 0.3;
    const BANDWIDTH_BYTES_PER_S: u64 = 256 << 10;
    const QUEUE_LIMIT: Duration = Duration::from_secs(1);
}

/// What the fault in force decides for one packet.
#[derive(Debug, PartialEq)]
enum Fate {
    /// Dropped (loss, or the bandwidth queue overflowed).
    Lost,
    /// Delivered once, after this long (no fault: the link's own delay).
    After(Duration),
    /// Delivered twice: the original after the link's delay, the copy later.
    Twice(Duration, Duration),
    /// Delivered late, on its own, so that later packets overtake it.
    Overtaken(Duration),
}

#[derive(Default)]
struct Counts {
    seen: u64,
    acted: u64,
    bytes_acted: u64,
    overflowed: u64,
}

struct FaultState {
    fault: Option<PacketFault>,
    rng: StdRng,
    counts: Counts,
    /// When the bandwidth-limited link is free again.
    free_at: Instant,
}

/// One directed link's packet fault, shared by the nemesis (which sets it) and the
/// switch (which applies it).
pub struct PacketLink {
    /// Whether a fault is in force: read per packet without the lock, so a link with no
    /// fault (nearly always) costs one atomic load.
    active: AtomicBool,
    state: Mutex<FaultState>,
}

impl Default for PacketLink {
    fn default() -> Self {
        PacketLink {
            active: AtomicBool::new(false),
            state: Mutex::new(FaultState {
                fault: None,
                rng: StdRng::seed_from_u64(0),
                counts: Counts::default(),
                free_at: Instant::now(),
            }),
        }
    }
}

impl PacketLink {
    /// Starts (`Some`) or ends a fault; starting one resets its counts and seeds its
    /// random choices, so a seed replays the same decisions for the same packets.
    pub fn set(&self, fault: Option<PacketFault>, seed: u64) {
        let mut s = self.state.lock().expect("packet link");
        if fault.is_some() {
            s.counts = Counts::default();
            s.rng = StdRng::seed_from_u64(seed);
            s.free_at = Instant::now();
        }
        s.fault = fault;
        self.active.store(fault.is_some(), Ordering::Release);
    }

    /// What the fault did since it started, for the history.
    pub fn record(&self, from: u64, to: u64) -> PacketRecord {
        let s = self.state.lock().expect("packet link");
        PacketRecord {
            from,
            to,
            seen: s.counts.seen,
            acted: s.counts.acted,
            bytes_acted: s.counts.bytes_acted,
            overflowed: s.counts.overflowed,
        }
    }

    /// Decides the fate of a packet of `len` bytes, arriving `now`, that the link delays
    /// by `delay`.
    fn decide(&self, len: usize, delay: Duration, now: Instant) -> Fate {
        if !self.active.load(Ordering::Acquire) {
            return Fate::After(delay);
        }
        let mut s = self.state.lock().expect("packet link");
        let Some(fault) = s.fault else {
            return Fate::After(delay);
        };
        s.counts.seen += 1;
        let fate = match fault {
            PacketFault::Loss => {
                if s.rng.gen_bool(PacketFault::LOSS) {
                    Fate::Lost
                } else {
                    Fate::After(delay)
                }
            }
            PacketFault::Duplicate => {
                if s.rng.gen_bool(PacketFault::DUPLICATE) {
                    let later = Duration::from_micros(s.rng.gen_range(0..=10_000));
                    Fate::Twice(delay, delay + later)
                } else {
                    Fate::After(delay)
                }
            }
            PacketFault::Reorder => {
                if s.rng.gen_bool(PacketFault::REORDER) {
                    let held = Duration::from_micros(s.rng.gen_range(1_000..=10_000));
                    Fate::Overtaken(delay + held)
                } else {
                    Fate::After(delay)
                }
            }
            PacketFault::Bandwidth => {
                let start = s.free_at.max(now);
                let queued = start - now;
                if queued > PacketFault::QUEUE_LIMIT {
                    s.counts.overflowed += 1;
                    Fate::Lost
                } else {
                    let send_time = Duration::from_micros(
                        len as u64 * 1_000_000 / PacketFault::BANDWIDTH_BYTES_PER_S,
                    );
                    s.free_at = start + send_time;
                    Fate::After(delay + queued + send_time)
                }
            }
        };
        if fate != Fate::After(delay) {
            s.counts.acted += 1;
            s.counts.bytes_acted += len as u64;
        }
        fate
    }
}

/// One directed node-to-node link as the switch sees it.
pub struct SwitchLink {
    pub mode: watch::Receiver<LinkMode>,
    pub packets: Arc<PacketLink>,
}

/// Where a TUN leads: the runner's clients (`None`) or a node.
pub struct Port {
    pub tun: Arc<Tun>,
    pub addr: Ipv4Addr,
    pub node: Option<u64>,
}

struct Link {
    state: SwitchLink,
    /// The delay line: packets with the time they may leave, in order.
    line: mpsc::UnboundedSender<(Instant, Bytes)>,
    /// When the last packet put on the line leaves (no packet may leave before it).
    last_due: Mutex<Instant>,
}

struct Fabric {
    ports: Vec<Port>,
    route: HashMap<Ipv4Addr, usize>,
    /// Keyed by (from node, to node).
    links: BTreeMap<(u64, u64), Link>,
}

/// The running switch; its tasks end when it is dropped (and the TUN devices with them,
/// once nothing else holds them).
pub struct Switch {
    tasks: Vec<JoinHandle<()>>,
}

impl Switch {
    /// Starts forwarding between `ports`, applying `links`.
    pub fn start(ports: Vec<Port>, links: BTreeMap<(u64, u64), SwitchLink>) -> Switch {
        let route = ports.iter().enumerate().map(|(i, p)| (p.addr, i)).collect();
        let mut tasks = Vec::new();
        let by_node: HashMap<u64, Arc<Tun>> = ports
            .iter()
            .filter_map(|p| p.node.map(|n| (n, p.tun.clone())))
            .collect();
        let links = links
            .into_iter()
            .map(|((from, to), state)| {
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.push(tokio::spawn(delay_line(rx, by_node[&to].clone())));
                let link = Link {
                    state,
                    line: tx,
                    last_due: Mutex::new(Instant::now()),
                };
                ((from, to), link)
            })
            .collect();
        let fabric = Arc::new(Fabric {
            ports,
            route,
            links,
        });
        for i in 0..fabric.ports.len() {
            tasks.push(tokio::spawn(read_port(fabric.clone(), i)));
        }
        Switch { tasks }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn delay_line(mut rx: mpsc::UnboundedReceiver<(Instant, Bytes)>, to: Arc<Tun>) {
    while let Some((due, packet)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        to.send(&packet);
    }
}

/// Reads every packet that arrives on port `i` and forwards it.
async fn read_port(fabric: Arc<Fabric>, i: usize) {
    // The TUN's MTU is 65520: one buffer fits any packet.
    let mut buf = vec![0u8; 65_536];
    loop {
        match fabric.ports[i].tun.recv(&mut buf).await {
            Ok(n) => fabric.forward(i, &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The device is gone (the run is ending).
            Err(_) => return,
        }
    }
}

impl Fabric {
    fn forward(&self, from: usize, packet: &[u8]) {
        let Some((_, dst)) = ipv4_ends(packet) else {
            return;
        };
        let Some(&to) = self.route.get(&dst) else {
            return;
        };
        let (Some(a), Some(b)) = (self.ports[from].node, self.ports[to].node) else {
            // Clients and nodes: never faulted.
            self.ports[to].tun.send(packet);
            return;
        };
        let Some(link) = self.links.get(&(a, b)) else {
            return;
        };
        let delay = match *link.state.mode.borrow() {
            LinkMode::Up => Duration::ZERO,
            LinkMode::Cut => {
                if let Some(reset) = tcp_reset_for(packet) {
                    self.ports[from].tun.send(&reset);
                }
                return;
            }
            LinkMode::BlackHole => return,
            LinkMode::Delay { ms, jitter_ms } => {
                let jitter = if jitter_ms > 0 {
                    rand::thread_rng().gen_range(0..=jitter_ms)
                } else {
                    0
                };
                Duration::from_millis(ms + jitter)
            }
        };
        let tun = &self.ports[to].tun;
        match link
            .state
            .packets
            .decide(packet.len(), delay, Instant::now())
        {
            Fate::Lost => {}
            Fate::After(d) => link.in_order(tun, packet, d),
            Fate::Twice(d, copy) => {
                link.in_order(tun, packet, d);
                on_its_own(tun, packet, copy);
            }
            Fate::Overtaken(d) => on_its_own(tun, packet, d),
        }
    }
}

impl Link {
    /// Delivers after `delay`, never before a packet that came earlier on this link.
    fn in_order(&self, tun: &Arc<Tun>, packet: &[u8], delay: Duration) {
        let now = Instant::now();
        let mut last = self.last_due.lock().expect("delay line");
        if delay.is_zero() && *last <= now {
            tun.send(packet);
            return;
        }
        let due = (now + delay).max(*last);
        *last = due;
        let _ = self.line.send((due, Bytes::copy_from_slice(packet)));
    }
}

/// Delivers a copy after `delay`, outside the link's order.
fn on_its_own(tun: &Arc<Tun>, packet: &[u8], delay: Duration) {
    let tun = tun.clone();
    let copy = Bytes::copy_from_slice(packet);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        tun.send(&copy);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fates(fault: PacketFault, n: usize) -> Vec<Fate> {
        let link = PacketLink::default();
        link.set(Some(fault), 7);
        (0..n)
            .map(|_| link.decide(1_000, Duration::from_millis(2), Instant::now()))
            .collect()
    }

    #[tokio::test]
    async fn each_fault_acts_on_its_share_and_counts_it() {
        let lost = fates(PacketFault::Loss, 1_000)
            .iter()
            .filter(|f| **f == Fate::Lost)
            .count();
        assert!((120..280).contains(&lost), "{lost} of 1000 lost");
        let twice = fates(PacketFault::Duplicate, 1_000)
            .iter()
            .filter(|f| matches!(f, Fate::Twice(d, c) if *c >= *d))
            .count();
        assert!((400..600).contains(&twice), "{twice} duplicated");
        let late = fates(PacketFault::Reorder, 1_000)
            .iter()
            .filter(|f| matches!(f, Fate::Overtaken(d) if *d >= Duration::from_millis(3)))
            .count();
        assert!((200..400).contains(&late), "{late} held back");
        let link = PacketLink::default();
        link.set(Some(PacketFault::Loss), 7);
        for _ in 0..100 {
            link.decide(10, Duration::ZERO, Instant::now());
        }
        let r = link.record(1, 2);
        assert_eq!((r.from, r.to, r.seen), (1, 2, 100));
        assert_eq!(r.bytes_acted, 10 * r.acted);
        assert!(r.acted > 0);
    }

    #[tokio::test]
    async fn the_same_seed_decides_the_same() {
        assert_eq!(
            fates(PacketFault::Reorder, 200),
            fates(PacketFault::Reorder, 200)
        );
    }

    #[tokio::test]
    async fn bandwidth_queues_packets_and_overflows_after_a_second() {
        let link = PacketLink::default();
        link.set(Some(PacketFault::Bandwidth), 1);
        // 256 KiB/s: a 64 KiB packet takes 250 ms on the wire.
        let now = Instant::now();
        let dues: Vec<Fate> = (0..6)
            .map(|_| link.decide(64 << 10, Duration::ZERO, now))
            .collect();
        assert_eq!(dues[0], Fate::After(Duration::from_millis(250)));
        assert_eq!(dues[3], Fate::After(Duration::from_millis(1_000)));
        assert_eq!(dues[4], Fate::After(Duration::from_millis(1_250)));
        assert_eq!(dues[5], Fate::Lost, "over a second queued");
        assert_eq!(link.record(1, 2).overflowed, 1);
        link.set(None, 0);
        assert_eq!(
            link.decide(64 << 10, Duration::ZERO, now),
            Fate::After(Duration::ZERO)
        );
    }
}
