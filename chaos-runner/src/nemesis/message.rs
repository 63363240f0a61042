//! Message faults: duplicate, reorder, replay or drop whole peer requests on every link
//! into and out of the target nodes (see `proxy::messages` for what each does).

use std::sync::Mutex;

use anyhow::Result;
use checker::record::{FaultDetails, MessageRecord};

use super::schedule::{choose_nodes, FaultKind, Target};
use super::{Env, Fault, Planned};
use crate::proxy::MessageFault;

pub struct MessageFaultRun {
    kind: FaultKind,
    nodes: Vec<u64>,
    links: Vec<(u64, u64)>,
    /// Filled by `stop`: what the fault did.
    done: Mutex<(Vec<MessageRecord>, u64)>,
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

impl Fault for MessageFaultRun {
    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let net = env.net()?;
        let fault = proxy_fault(p.kind).expect("a message fault kind");
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
        for (i, &(a, b)) in links.iter().enumerate() {
            net.set_message_fault(a, b, Some(fault), p.pick.wrapping_add(i as u64));
        }
        Ok(MessageFaultRun {
            kind: p.kind,
            nodes,
            links,
            done: Mutex::new((Vec::new(), 0)),
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        let net = env.net()?;
        let at = |t: tokio::time::Instant| {
            t.into_std().saturating_duration_since(env.epoch).as_nanos() as u64
        };
        let mut records = Vec::new();
        let mut unlisted = 0;
        for &(a, b) in &self.links {
            net.set_message_fault(a, b, None, 0);
        }
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
        *self.done.lock().expect("message fault record") = (records, unlisted);
        Ok(())
    }

    fn describe(&self) -> String {
        let counts = self.done.lock().expect("message fault record");
        let mut s = format!("{} {:?}", self.kind.name(), self.nodes);
        if !counts.0.is_empty() {
            s.push_str(&format!(" ({} requests)", counts.0.len() as u64 + counts.1));
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
            ..FaultDetails::default()
        }
    }
}
