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

pub struct MessageFaultRun {
    kind: FaultKind,
    nodes: Vec<u64>,
    links: Vec<(u64, u64)>,
    /// Filled by `stop`: what the fault did to requests (those listed, those only
    /// counted), or to packets.
    done: Mutex<(Vec<MessageRecord>, u64, Vec<PacketRecord>)>,
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
            net.set_fault(link, Some((p.kind, p.pick.wrapping_add(i as u64))))
                .map_err(anyhow::Error::msg)?;
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
        let mut records = Vec::new();
        let mut unlisted = 0;
        let mut packets = Vec::new();
        for &link in &self.links {
            // Ending a fault is never refused.
            let _ = net.set_fault(link, None);
            let done = net.take_record(link, env.epoch);
            records.extend(done.messages);
            unlisted += done.not_listed;
            packets.extend(done.packet);
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
