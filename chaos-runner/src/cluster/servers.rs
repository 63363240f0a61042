//! What is particular to each kind of server the runner starts: the `--target` flag,
//! where its binary is, its command line for node N, and how to ask it who leads and
//! which client dialect it speaks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use workloads::client::Dialect;

use super::process::which;
use super::spec::NodeSpec;
use crate::tls::ApiAccess;

/// The server a command drives (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// The embedded Raft key-value store (raft-node beside this executable), or any
    /// server with its command line (--raft-node PATH).
    RaftNode,
    /// etcd members, from Debian's etcd-server package (apt-get install etcd-server).
    Etcd,
}

impl TargetArg {
    pub fn name(self) -> &'static str {
        match self {
            TargetArg::RaftNode => "raft-node",
            TargetArg::Etcd => "etcd",
        }
    }

    pub fn kind(self) -> ServerKind {
        match self {
            TargetArg::RaftNode => ServerKind::RaftNode,
            TargetArg::Etcd => ServerKind::Etcd,
        }
    }
}

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

/// `--raft-node PATH`, or raft-node beside this executable.
pub fn raft_node_binary(given: Option<&PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("raft-node"),
    };
    if !bin.is_file() {
        bail!(
            "no server binary at {}; build it (cargo build --release) or pass --raft-node PATH",
            bin.display()
        );
    }
    Ok(bin)
}

/// Which server the nodes run, which decides their command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `--id --transport-port --api-port --data-dir --peers` (raft-node, or any server
    /// that takes the same flags).
    RaftNode,
    /// An etcd member: `--name n<id>`, peer and client URLs on loopback, and the whole
    /// cluster in `--initial-cluster`.
    Etcd,
}

/// raft-node's flags: `--id --transport-port --api-port --data-dir --peers`.
pub(super) fn raft_node_args(spec: &NodeSpec) -> Vec<String> {
    let peers: Vec<String> = spec.peers.iter().map(|(i, a)| format!("{i}={a}")).collect();
    let mut args: Vec<String> = vec![
        "--id".into(),
        spec.id.to_string(),
        "--transport-port".into(),
        spec.transport_port.to_string(),
        "--api-port".into(),
        spec.api_port.to_string(),
        "--data-dir".into(),
        spec.data_dir.display().to_string(),
        "--peers".into(),
        peers.join(","),
    ];
    // Only when it is not the default, so servers without the flag still run in proxy
    // mode.
    if !spec.host.is_loopback() {
        args.push("--listen-addr".into());
        args.push(spec.host.to_string());
    }
    if let Some(tls) = &spec.tls {
        args.extend(tls.args());
    }
    args
}

/// An etcd member: `--name n<id>`, peer and client URLs on its address, and the whole
/// cluster in `--initial-cluster`.
pub(super) fn etcd_args(spec: &NodeSpec) -> Vec<String> {
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
        "new",
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

/// One HTTP/1.1 request with a JSON answer, on a fresh connection, within a second.
pub(super) async fn http_json(
    access: &ApiAccess,
    api: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Option<Value> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tokio::time::timeout(Duration::from_secs(1), access.exchange(api, req.as_bytes()))
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str::<Value>(body.trim()).ok()
}

/// Which `/kv` dialect the nodes at `apis` speak, from the first `/client/status` that
/// answers in a known one; `Err` with what the nodes said when none does.
pub async fn detect_dialect(access: &ApiAccess, apis: &[(u64, String)]) -> Result<Dialect> {
    let mut said = Vec::new();
    for (id, api) in apis {
        match status(access, api).await {
            Some(s) => match Dialect::from_status(&s) {
                Some(d) => return Ok(d),
                None => said.push(format!("node {id}: {s}")),
            },
            None => said.push(format!("node {id}: no JSON answer")),
        }
    }
    bail!(
        "cannot tell which API the server speaks: /client/status has neither \"role\" \
         (raft-node) nor \"state\" (seed-style); pass --api. The nodes said:\n{}",
        said.join("\n")
    )
}

/// Asks a node for its status: role and leader, if it speaks `/client/status`.
pub async fn status(access: &ApiAccess, api: &str) -> Option<Value> {
    http_json(access, api, "GET", "/client/status", "").await
}

/// Whether the etcd member at `api` says it is the leader.
pub(super) async fn etcd_leads(access: &ApiAccess, api: &str) -> bool {
    let Some(s) = http_json(access, api, "POST", "/v3/maintenance/status", "{}").await else {
        return false;
    };
    s["leader"].is_string() && s["leader"] == s["header"]["member_id"]
}

/// The id of the node that says it leads, among `apis` (id, address).
pub async fn find_leader_of(
    kind: ServerKind,
    access: &ApiAccess,
    apis: &[(u64, String)],
) -> Option<u64> {
    for (id, api) in apis {
        let leads = match kind {
            ServerKind::RaftNode => status(access, api)
                .await
                .is_some_and(|s| Dialect::status_says_leader(&s)),
            ServerKind::Etcd => etcd_leads(access, api).await,
        };
        if leads {
            return Some(*id);
        }
    }
    None
}
