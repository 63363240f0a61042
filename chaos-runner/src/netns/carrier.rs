//! The packet switch as a [`Carrier`]: link modes and packet faults, applied by the
//! switch's tasks to every IP packet of a directed link.

use std::collections::BTreeMap;
use std::sync::Arc;

use checker::fault::FaultKind;

use super::switch::{PacketFault, PacketLink, SwitchLink};
use crate::links::{Carrier, LinkMode, LinkRecord, ModeWatches};

/// The control side of the switch's links; the switch gets the [`SwitchLink`]s.
pub struct SwitchCarrier {
    modes: ModeWatches,
    packets: BTreeMap<(u64, u64), Arc<PacketLink>>,
}

impl SwitchCarrier {
    /// The links between `ids`, and what the switch reads of each.
    pub fn between(ids: &[u64]) -> (SwitchCarrier, BTreeMap<(u64, u64), SwitchLink>) {
        let (modes, watches) = ModeWatches::between(ids);
        let mut packets = BTreeMap::new();
        let mut for_switch = BTreeMap::new();
        for (link, mode) in watches {
            let p = Arc::new(PacketLink::default());
            packets.insert(link, p.clone());
            for_switch.insert(link, SwitchLink { mode, packets: p });
        }
        (SwitchCarrier { modes, packets }, for_switch)
    }
}

/// The switch's fault for a nemesis kind: single IP packets.
fn packet_fault(kind: FaultKind) -> Option<PacketFault> {
    match kind {
        FaultKind::Duplicate => Some(PacketFault::Duplicate),
        FaultKind::Reorder => Some(PacketFault::Reorder),
        FaultKind::Loss => Some(PacketFault::Loss),
        FaultKind::Bandwidth => Some(PacketFault::Bandwidth),
        _ => None,
    }
}

impl Carrier for SwitchCarrier {
    fn links(&self) -> Vec<(u64, u64)> {
        self.modes.links()
    }

    fn set_mode(&self, link: (u64, u64), mode: LinkMode) {
        self.modes.set(link, mode);
    }

    fn set_fault(&self, link: (u64, u64), fault: Option<(FaultKind, u64)>) -> Result<(), String> {
        let Some(p) = self.packets.get(&link) else {
            return Ok(());
        };
        match fault {
            None => p.set(None, 0),
            Some((kind, seed)) => {
                let f = packet_fault(kind)
                    .ok_or_else(|| format!("{} cannot act on packets", kind.name()))?;
                p.set(Some(f), seed);
            }
        }
        Ok(())
    }

    fn take_record(&self, (from, to): (u64, u64), _epoch: std::time::Instant) -> LinkRecord {
        LinkRecord {
            packet: self.packets.get(&(from, to)).map(|p| p.record(from, to)),
            ..LinkRecord::default()
        }
    }
}
