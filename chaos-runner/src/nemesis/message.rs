//! Message faults on every link into and out of the target nodes: under the proxies,
//! duplicate, reorder, replay or drop whole peer requests (`proxy::messages`); under the
//! packet switch of netns mode, duplicate, reorder, lose or throttle IP packets
//! (`netns::switch::PacketFault`).

use std::sync::Mutex;

use anyhow::Result;
use checker::record::{FaultDetails, MessageRecord, PacketRecord};

use super::picks::choose_nodes;
use super::schedule::{FaultKind, Target};
use super::{Env, Fault, Planned};
use crate::fabric::Fabric;
use crate::netns::switch::PacketFault;
use crate::proxy::{MessageFault, Network};

pub struct MessageFaultRun {
    kind: FaultKind,
    nodes: Vec<u64>,
    links: Vec<(u64, u64)>,
    /// Filled by `stop`: what the fault did to requests (those listed, those only
    /// counted), or to packets.
    done: Mutex<(Vec<MessageRecord>, u64, Vec<PacketRecord>)>,
}

/// The proxy's fault for a nemesis kind.
pub fn proxy_fault(kind: FaultKind) -> Option<MessageFault> {
    match kind {
        FaultKind::Duplicate => Some(MessageFault::Duplicate),
        FaultKind::Reorder => Some(MessageFault::Reorder),
        FaultKind::Replay => Some(MessageFault::Replay),
        FaultKind::Drop => Some(MessageFault::Drop),
        _ => None,
    }
}

/// The switch's fault for a nemesis kind.
pub fn packet_fault(kind: FaultKind) -> Option<PacketFault> {
    match kind {
        FaultKind::Duplicate => Some(PacketFault::Duplicate),
        FaultKind::Reorder => Some(PacketFault::Reorder),
        FaultKind::Loss => Some(PacketFault::Loss),
        FaultKind::Bandwidth => Some(PacketFault::Bandwidth),
        _ => None,
    }
}

/// Starts (`on`) or ends the fault of `kind` on link `a -> b`, at the level the network
/// works at.
fn set(net: &Network, kind: FaultKind, (a, b): (u64, u64), on: bool, seed: u64) -> Result<()> {
    let refused = || {
        let level = if net.is_switched() {
            "packets"
        } else {
            "requests"
        };
        anyhow::anyhow!("{} cannot act on {level}", kind.name())
    };
    if net.is_switched() {
        let fault = packet_fault(kind).ok_or_else(refused)?;
        net.set_packet_fault(a, b, on.then_some(fault), seed);
    } else {
        let fault = proxy_fault(kind).ok_or_else(refused)?;
        net.set_message_fault(a, b, on.then_some(fault), seed);
    }
    Ok(())
}

impl Fault for MessageFaultRun {
    /// Whole requests need proxies that see them (not through TLS); packets need the
    /// switch; duplicate and reorder work on either.
    fn carried_by(kind: FaultKind, fabric: &Fabric) -> bool {
        use FaultKind::*;
        let requests = matches!(fabric, Fabric::Proxies { tls: false, .. });
        let packets = matches!(fabric, Fabric::Switch { .. });
        match kind {
            Duplicate | Reorder => requests || packets,
            Replay | Drop => requests,
            Loss | Bandwidth => packets,
            _ => false,
        }
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let net = env.net()?;
        let ids = env.ids();
        let nodes = if p.target == Target::All {
            ids.clone()
        } else {
            choose_nodes(p, &ids, env.leader_for(p).await)
        };
        let links: Vec<(u64, u64)> = net
            .links()
            .into_iter()
            .filter(|(a, b)| nodes.contains(a) || nodes.contains(b))
            .collect();
        for (i, &link) in links.iter().enumerate() {
            set(net, p.kind, link, true, p.pick.wrapping_add(i as u64))?;
        }
        Ok(MessageFaultRun {
            kind: p.kind,
            nodes,
            links,
            done: Mutex::new((Vec::new(), 0, Vec::new())),
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        let net = env.net()?;
        let at = |t: tokio::time::Instant| {
            t.into_std().saturating_duration_since(env.epoch).as_nanos() as u64
        };
        let mut records = Vec::new();
        let mut unlisted = 0;
        for &link in &self.links {
            set(net, self.kind, link, false, 0)?;
        }
        let packets = self
            .links
            .iter()
            .filter_map(|&(a, b)| net.packet_record(a, b))
            .collect();
        for &(a, b) in &self.links {
            let (events, more) = net.take_message_events(a, b);
            unlisted += more;
            records.extend(events.into_iter().map(|e| MessageRecord {
                action: e.action.name().to_string(),
                from: a,
                to: b,
                method: e.frame.method.clone(),
                path: e.frame.path.clone(),
                bytes: e.frame.bytes.len() as u64,
                seen: at(e.frame.seen),
                at: at(e.at),
            }));
        }
        *self.done.lock().expect("message fault record") = (records, unlisted, packets);
        Ok(())
    }

    fn describe(&self) -> String {
        let counts = self.done.lock().expect("message fault record");
        let mut s = format!("{} {:?}", self.kind.name(), self.nodes);
        if !counts.0.is_empty() {
            s.push_str(&format!(" ({} requests)", counts.0.len() as u64 + counts.1));
        }
        let packets: u64 = counts.2.iter().map(|p| p.acted).sum();
        if packets > 0 {
            s.push_str(&format!(" ({packets} packets)"));
        }
        s
    }

    fn details(&self) -> FaultDetails {
        let done = self.done.lock().expect("message fault record");
        FaultDetails {
            nodes: self.nodes.clone(),
            links: self.links.iter().map(|&(a, b)| [a, b]).collect(),
            messages: done.0.clone(),
            messages_not_listed: (done.1 > 0).then_some(done.1),
            packets: done.2.clone(),
            ..FaultDetails::default()
        }
    }
}
