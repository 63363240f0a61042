//! NATS servers with JetStream, from Debian's nats-server package, spoken to through the
//! official client (`workloads::nats`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use checker::fault::FaultKind;
use workloads::client::Dialect;

use super::protocol::{go_refuses, http_json, BoxFuture, FileRole, Server};
use crate::cluster::process::which;
use crate::cluster::spec::NodeSpec;
use crate::tls::ApiAccess;

/// A NATS server named `n<id>`: JetStream on, its store in the node's folder, clients
/// on the API port, routes on the transport port to every peer, and the monitoring
/// port (which says who leads) on the third.
#[derive(Debug)]
pub struct Nats;

/// `--nats PATH`, or `nats-server` on PATH.
pub fn nats_binary(given: &Path) -> Result<PathBuf> {
    which(given).with_context(|| {
        format!(
            "no nats-server binary {:?} on PATH: install Debian's nats-server package \
             (apt-get install nats-server) or pass --nats PATH",
            given
        )
    })
}

impl Server for Nats {
    /// The same line for the first start and every restart: a server rejoins from its
    /// store and its routes; the cluster's name ties them together.
    fn args(&self, spec: &NodeSpec, _founding: bool) -> Vec<String> {
        let routes: Vec<String> = spec
            .peers
            .iter()
            .map(|(_, a)| format!("nats://{a}"))
            .collect();
        [
            "--jetstream",
            "--store_dir",
            &spec.data_dir.display().to_string(),
            "--server_name",
            &format!("n{}", spec.id),
            "--addr",
            &spec.host.to_string(),
            "--port",
            &spec.api_port.to_string(),
            "--http_port",
            &spec.monitor_port.to_string(),
            "--cluster_name",
            "chaos",
            "--cluster",
            &format!("nats://{}", spec.transport_addr()),
            "--routes",
            &routes.join(","),
        ]
        .map(String::from)
        .to_vec()
    }

    /// The node leads if it names itself the leader of the set stream, or, before that
    /// stream exists, of JetStream's meta group (`/jsz`; its own name from `/varz`).
    fn leads<'a>(&'a self, access: &'a ApiAccess, probe: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let path = "/jsz?accounts=true&streams=true";
            let Some(jsz) = http_json(access, probe, "GET", path, "").await else {
                return false;
            };
            let Some(varz) = http_json(access, probe, "GET", "/varz", "").await else {
                return false;
            };
            let me = &varz["server_name"];
            let streams = jsz["account_details"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten());
            let mut set_stream = streams.filter(|s| s["name"] == workloads::nats::SET_STREAM);
            let leader = match set_stream.next() {
                Some(s) => &s["cluster"]["leader"],
                None => &jsz["meta_cluster"]["leader"],
            };
            me.is_string() && leader == me
        })
    }

    fn probe_addr(&self, spec: &NodeSpec) -> String {
        spec.monitor_addr()
    }

    /// Each server may learn its peers' own route addresses from the others (route
    /// gossip) and dial them past a proxy, so links are cut in namespaces (`--net netns`).
    fn per_peer_addresses(&self) -> bool {
        false
    }

    fn tls(&self) -> bool {
        false
    }

    fn refuses(&self, kind: FaultKind) -> Option<&'static str> {
        go_refuses(kind)
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::Nats)
    }

    /// The file store of the two streams the workloads use (`$G` is the default
    /// account): message blocks (the log, newest by name) and their indexes and stream
    /// metadata. The streams' Raft groups keep their logs under `$SYS/_js_/` in folders
    /// named at random, which a fixed pattern cannot name.
    fn durable_files(&self) -> &'static [(&'static str, FileRole)] {
        &[
            ("jetstream/$G/streams/chaos/msgs/*.blk", FileRole::Log),
            ("jetstream/$G/streams/chaos/msgs/*.idx", FileRole::Metadata),
            ("jetstream/$G/streams/chaos/meta.inf", FileRole::Metadata),
            ("jetstream/$G/streams/KV_chaos/msgs/*.blk", FileRole::Log),
            (
                "jetstream/$G/streams/KV_chaos/msgs/*.idx",
                FileRole::Metadata,
            ),
        ]
    }
}
