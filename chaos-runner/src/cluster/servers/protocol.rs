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
pub trait Server: Send + Sync + std::fmt::Debug {
    /// Its command line for one node (the user's extra flags are added after).
    /// `founding`: the node's first start in the run, when the cluster is new; every
    /// later start rejoins a cluster that exists (and a node whose state was lost must
    /// not found a second one).
    fn args(&self, spec: &NodeSpec, founding: bool) -> Vec<String>;
    /// Whether the node whose [`Server::probe_addr`] is `probe` says it leads.
    fn leads<'a>(&'a self, access: &'a ApiAccess, probe: &'a str) -> BoxFuture<'a, bool>;
    /// Where to ask node `spec` who leads: its client API, unless the server answers
    /// such questions on a port of its own.
    fn probe_addr(&self, spec: &NodeSpec) -> String {
        spec.api_addr()
    }
    /// Whether [`Server::leads`] says who leads. When it does not (a command server
    /// without --node-leads), it says whether a node is up: the cluster is up when
    /// every node is, and "leader" targets hit a random node.
    fn knows_leader(&self) -> bool {
        true
    }
    /// Environment variables for every node's process.
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The server as it must be for a cluster of `specs`, when it needs to know every
    /// node before it can start one (a command template's `{members}`); `None`: as is.
    fn for_cluster(&self, _specs: &[NodeSpec]) -> Option<std::sync::Arc<dyn Server>> {
        None
    }
    /// A shell command to run once for node `spec` before its first start.
    fn setup(&self, _spec: &NodeSpec) -> Option<String> {
        None
    }
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

    /// Whether a node that lost its disk (`wipe`) has rejoined and caught up, asked at
    /// `probe`; `None` if this server cannot say (it then counts as rejoined once it runs).
    fn rejoined<'a>(
        &'a self,
        _access: &'a ApiAccess,
        _probe: &'a str,
    ) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async { None })
    }

    /// Whether it serves raft-node's membership API (`/cluster/members`,
    /// `/cluster/transfer-leader`), which the `membership` fault drives.
    fn membership_api(&self) -> bool {
        false
    }
}

/// Why a Go server cannot undergo `kind`: clock faults go through libc, which Go's
/// runtime bypasses.
pub fn go_refuses(kind: FaultKind) -> Option<&'static str> {
    kind.is_clock().then_some(
        "it is a Go binary, which reads the clock through the vDSO and not through libc, so \
         libfaketime cannot move its clock",
    )
}

/// One HTTP/1.1 request with a JSON answer, on a fresh connection, within a second;
/// `None` unless the answer is 200.
pub async fn http_json(
    access: &ApiAccess,
    api: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Option<Value> {
    match http_call(access, api, method, path, body).await? {
        (200, v) => Some(v),
        _ => None,
    }
}

/// One HTTP/1.1 request on a fresh connection, within a second: the status and the
/// JSON body (`null` when the body is not JSON).
pub async fn http_call(
    access: &ApiAccess,
    api: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, Value)> {
    http_call_within(access, api, method, path, body, Duration::from_secs(1)).await
}

/// [`http_call`], waiting up to `within` for the answer.
pub async fn http_call_within(
    access: &ApiAccess,
    api: &str,
    method: &str,
    path: &str,
    body: &str,
    within: Duration,
) -> Option<(u16, Value)> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tokio::time::timeout(within, access.exchange(api, req.as_bytes()))
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let json = if chunked {
        dechunk(body).and_then(|b| serde_json::from_str::<Value>(&b).ok())
    } else {
        serde_json::from_str::<Value>(body.trim()).ok()
    };
    Some((status, json.unwrap_or(Value::Null)))
}

/// The body of a chunked HTTP/1.1 answer (Go's servers chunk answers over 2 KiB);
/// `None` if it is cut short or malformed.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Asks a node for its status: role and leader, if it speaks `/client/status`.
pub async fn status(access: &ApiAccess, api: &str) -> Option<Value> {
    http_json(access, api, "GET", "/client/status", "").await
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n").as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(
            dechunk("a;ext=1\r\n0123456789\r\n0\r\n\r\n").as_deref(),
            Some("0123456789")
        );
        // Cut short, or a size that is not hex: no body.
        assert_eq!(dechunk("9\r\nabc"), None);
        assert_eq!(dechunk("zz\r\nabc\r\n0\r\n"), None);
    }
}
