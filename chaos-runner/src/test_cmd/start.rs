//! Phase 1: the cluster is up behind its links and one node leads; the recorder is open.

use std::sync::Arc;

use anyhow::{Context, Result};
use workloads::client::Dialect;
use workloads::generator::{Generator, Mix, WorkloadKind};
use workloads::recorder::Recorder;
use workloads::runner::Shared;

use super::config::Config;
use crate::cluster::{detect_dialect, start_cluster};
use crate::nemesis::{Env, Live};
use crate::store::RunDir;

/// A cluster under test, and what records what happens to it.
pub(super) struct Testbed {
    /// The API the server speaks, and the mix that fits it.
    pub dialect: Dialect,
    pub mix: Mix,
    pub env: Arc<Env>,
    pub recorder: Arc<Recorder>,
    pub shared: Arc<Shared>,
    pub live: Arc<Live>,
}

/// Phase 1: the nodes are up behind their proxies and one leads; the recorder is open.
pub(super) async fn start(cfg: &Config, run: &RunDir) -> Result<Testbed> {
    let running = start_cluster(&cfg.cluster, run).await?;
    let dialect = match cfg.dialect {
        Some(d) => d,
        None => detect_dialect(&running.access, &running.apis).await?,
    };
    let mix = if dialect.has_cas() {
        cfg.mix
    } else {
        cfg.mix_without_cas
            .clone()
            .map_err(|e| anyhow::anyhow!("the server speaks the {} API, {e}", dialect.name()))?
    };
    if dialect != Dialect::RaftNode {
        crate::console::say!("api: {}", dialect.name());
    }
    if mix != cfg.mix {
        crate::console::say!(
            "the server has no compare-and-set ({} API): the register workload runs reads and writes only",
            dialect.name()
        );
    }
    if let Some(line) = running.hosting.describe() {
        crate::console::say!("{line}");
    }
    let who = match running.cluster.server().knows_leader() {
        true => format!("leader: node {}", running.leader),
        false => "every node up (who leads is not known: no --node-leads)".to_string(),
    };
    crate::console::say!(
        "{who}; running {} clients for {:.0} s",
        cfg.concurrency,
        cfg.time_limit.as_secs_f64()
    );
    let recorder = Recorder::create(&run.history(), cfg.kind == WorkloadKind::Kv)
        .with_context(|| format!("cannot create {}", run.history().display()))?;
    // --fail-fast checks the history as it grows: the recorder keeps it in memory.
    let recorder = Arc::new(if cfg.fail_fast {
        recorder.keep_history()
    } else {
        recorder
    });
    let client: Arc<dyn workloads::client::Client> = match &cfg.client_cmd {
        Some(cmd) => {
            let dir = run.path.join("adapters");
            let adapters = running.adapter_client(cmd, cfg.kind.name(), dir, cfg.op_timeout);
            let by = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            if let Err(why) = adapters.check(by).await {
                anyhow::bail!("--client-cmd: the adapter did not get ready: {why}");
            }
            adapters
        }
        None => running.client(dialect).await?,
    };
    let mut generator = Generator::new(cfg.kind, cfg.keys, mix);
    generator.txn_len = cfg.txn_len;
    generator.writes_per_key = cfg.writes_per_key;
    let generator = Arc::new(generator);
    let shared = Shared::new(client, generator, recorder.clone());
    let env = Env {
        server: running.cluster.server_ref(),
        cluster: Arc::new(tokio::sync::Mutex::new(running.cluster)),
        net: running.net.map(Arc::new),
        apis: running.apis,
        probes: running.probes,
        access: running.access,
        epoch: recorder.epoch(),
        corrupted: Default::default(),
        wiped: Default::default(),
        corrupt: cfg.corrupt.clone(),
        _hosting: running.hosting,
    };
    Ok(Testbed {
        dialect,
        mix,
        env: Arc::new(env),
        recorder,
        shared,
        live: Arc::new(Live::default()),
    })
}
