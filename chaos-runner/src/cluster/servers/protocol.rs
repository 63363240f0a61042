//! The protocol every server implements, and the HTTP helpers servers share.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use checker::fault::FaultKind;

use serde_json::Value;
use workloads::client::Dialect;

use crate::cluster::spec::NodeSpec;
use crate::tls::ApiAccess;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a durable file is to its server, so a corruption can aim at one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// A write-ahead log segment: the newest and the older ones are told apart.
    Log,
    /// A snapshot of the state machine, or its data file.
    Snapshot,
    /// Term, vote, what was synced: small files that say what the others must hold.
    Metadata,
}

/// Everything the runner needs from one kind of server.
pub trait Server: Sync {
    /// Its command line for one node (the user's extra flags are added after).
    /// `founding`: the node's first start in the run, when the cluster is new; every
    /// later start rejoins a cluster that exists (and a node whose state was lost must
    /// not found a second one).
    fn args(&self, spec: &NodeSpec, founding: bool) -> Vec<String>;
    /// Whether the node whose client API is at `api` says it leads.
    fn leads<'a>(&'a self, access: &'a ApiAccess, api: &'a str) -> BoxFuture<'a, bool>;
    /// Whether each node can be told its own address for each peer, so that the
    /// runner's per-link proxies can carry (and cut, and slow) each link.
    fn per_peer_addresses(&self) -> bool;
    /// Whether the runner can start it with mutual TLS (`--tls`).
    fn tls(&self) -> bool;
    /// The client dialect, when the server has one; `None`: asked of the nodes.
    fn dialect(&self) -> Option<Dialect>;
    /// The folder where node `spec` keeps what must survive a crash: what a fault of
    /// the disk acts on, and what the run keeps for the user to read.
    fn durable_dir(&self, spec: &NodeSpec) -> PathBuf {
        spec.data_dir.clone()
    }
    /// The files in [`Server::durable_dir`] that hold acknowledged data, as patterns
    /// relative to it (`*` within one name), each with its role: a corruption fault
    /// picks among them.
    fn durable_files(&self) -> &'static [(&'static str, FileRole)];
    /// Why this server cannot undergo faults of `kind`, when that is so whatever its
    /// links are (the links' own limits are the fabric's to say).
    fn refuses(&self, _kind: FaultKind) -> Option<&'static str> {
        None
    }
}

/// One HTTP/1.1 request with a JSON answer, on a fresh connection, within a second.
pub async fn http_json(
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

/// Asks a node for its status: role and leader, if it speaks `/client/status`.
pub async fn status(access: &ApiAccess, api: &str) -> Option<Value> {
    http_json(access, api, "GET", "/client/status", "").await
}
