//! Latency: 50 to 150 ms more on every link (over the run's `--link-latency` baseline),
//! order kept.

use anyhow::Result;
use checker::record::FaultDetails;

use super::{Env, Fault, Planned};
use crate::proxy::LinkMode;

const ADDED_MS: u64 = 50;
const JITTER_MS: u64 = 100;

pub struct LatencyFault {
    delay_ms: u64,
    jitter_ms: u64,
    nodes: Vec<u64>,
}

impl Fault for LatencyFault {
    async fn start(_: &Planned, env: &Env) -> Result<Self> {
        let net = env.net()?;
        let base = match net.baseline() {
            LinkMode::Delay { ms, .. } => ms,
            _ => 0,
        };
        let f = LatencyFault {
            delay_ms: base + ADDED_MS,
            jitter_ms: JITTER_MS,
            nodes: env.ids(),
        };
        net.set_all(LinkMode::Delay {
            ms: f.delay_ms,
            jitter_ms: f.jitter_ms,
        });
        Ok(f)
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        env.net()?.heal();
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
