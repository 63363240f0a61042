//! etcd members, from Debian's etcd-server package, spoken to through the v3 JSON
//! gateway.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use checker::fault::FaultKind;
use workloads::client::Dialect;

use super::protocol::{go_refuses, http_json, BoxFuture, FileRole, Server};
use crate::cluster::process::which;
use crate::cluster::spec::NodeSpec;
use crate::tls::ApiAccess;

/// An etcd member: `--name n<id>`, peer and client URLs on its address, and the whole
/// cluster in `--initial-cluster`.
#[derive(Debug)]
pub struct Etcd;

/// `--etcd PATH`, or `etcd` on PATH.
pub fn etcd_binary(given: &Path) -> Result<PathBuf> {
    which(given).with_context(|| {
        format!(
            "no etcd binary {:?} on PATH: install Debian's etcd-server package \
             (apt-get install etcd-server) or pass --etcd PATH",
            given
        )
    })
}

impl Server for Etcd {
    /// A restart says `--initial-cluster-state existing`: etcd ignores it while its data
    /// folder holds a WAL, but a member whose folder a power loss emptied would otherwise
    /// found a new cluster under the same token (and the same cluster ID) instead of
    /// asking the others for theirs.
    fn args(&self, spec: &NodeSpec, founding: bool) -> Vec<String> {
        let peer_url = format!("http://{}", spec.transport_addr());
        let client_url = format!("http://{}", spec.api_addr());
        let mut members = vec![format!("n{}={peer_url}", spec.id)];
        members.extend(spec.peers.iter().map(|(i, a)| format!("n{i}=http://{a}")));
        members.sort();
        [
            "--name",
            &format!("n{}", spec.id),
            "--data-dir",
            &spec.data_dir.display().to_string(),
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--initial-cluster",
            &members.join(","),
            "--initial-cluster-state",
            if founding { "new" } else { "existing" },
            "--initial-cluster-token",
            "chaos-runner",
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ]
        .map(String::from)
        .to_vec()
    }

    fn leads<'a>(&'a self, access: &'a ApiAccess, api: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(s) = http_json(access, api, "POST", "/v3/maintenance/status", "{}").await
            else {
                return false;
            };
            s["leader"].is_string() && s["leader"] == s["header"]["member_id"]
        })
    }

    /// Each member advertises one peer URL to every other member, so a link cannot be
    /// given a proxy of its own.
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
        Some(Dialect::Etcd)
    }

    /// etcd's write-ahead log and its bbolt database (`--data-dir`'s `member/`).
    fn durable_files(&self) -> &'static [(&'static str, FileRole)] {
        &[
            ("member/wal/*.wal", FileRole::Log),
            ("member/snap/db", FileRole::Snapshot),
            ("member/snap/*.snap", FileRole::Snapshot),
        ]
    }
}
