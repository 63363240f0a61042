//! Latency: 50 to 150 ms more on every link (over the run's `--link-latency` baseline),
//! order kept. And the search schedule's background spells of a steady 2 to 20 ms, half of
//! them with jitter.

use anyhow::Result;
use checker::record::FaultDetails;

use super::{Env, Fault, FaultKind, Planned};
use crate::fabric::Fabric;

const ADDED_MS: u64 = 50;
const JITTER_MS: u64 = 100;

pub struct LatencyFault {
    delay_ms: u64,
    jitter_ms: u64,
    nodes: Vec<u64>,
}

impl Fault for LatencyFault {
    /// Delay lines: in the proxies or the switch.
    fn carried_by(_: FaultKind, fabric: &Fabric) -> bool {
        matches!(fabric, Fabric::Proxies { .. } | Fabric::Switch { .. })
    }

    async fn start(_: &Planned, env: &Env) -> Result<Self> {
        let net = env.net()?;
        let f = LatencyFault {
            delay_ms: net.base_latency() + ADDED_MS,
            jitter_ms: JITTER_MS,
            nodes: env.ids(),
        };
        net.slow_all(Some((ADDED_MS, JITTER_MS)));
        Ok(f)
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        env.net()?.slow_all(None);
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "latency {}-{}ms",
            self.delay_ms,
            self.delay_ms + self.jitter_ms
        )
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            delay_ms: Some(self.delay_ms),
            jitter_ms: Some(self.jitter_ms),
            ..FaultDetails::default()
        }
    }
}

/// A spell of steady delay on every link (the search schedule's background).
pub struct LinkLatencyFault {
    ms: u64,
    jitter_ms: u64,
    nodes: Vec<u64>,
}

impl Fault for LinkLatencyFault {
    fn carried_by(kind: FaultKind, fabric: &Fabric) -> bool {
        LatencyFault::carried_by(kind, fabric)
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let (ms, jitter_ms) = p.link_latency_ms();
        env.net()?.set_weather(ms, jitter_ms);
        Ok(LinkLatencyFault {
            ms,
            jitter_ms,
            nodes: env.ids(),
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        env.net()?.set_weather(0, 0);
        Ok(())
    }

    fn describe(&self) -> String {
        link_latency_words(self.ms, self.jitter_ms)
    }

    fn details(&self) -> FaultDetails {
        FaultDetails {
            nodes: self.nodes.clone(),
            delay_ms: Some(self.ms),
            jitter_ms: (self.jitter_ms > 0).then_some(self.jitter_ms),
            ..FaultDetails::default()
        }
    }
}

/// "link-latency 5ms", or with jitter "link-latency 5-15ms".
pub fn link_latency_words(ms: u64, jitter_ms: u64) -> String {
    if jitter_ms == 0 {
        format!("link-latency {ms}ms")
    } else {
        format!("link-latency {ms}-{}ms", ms + jitter_ms)
    }
}
