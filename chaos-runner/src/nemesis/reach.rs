//! Which fault kinds a cluster can undergo: what its links can carry out (each fault
//! kind's file says, through the registry) and what its server allows.

use super::{registry, FaultKind};
use crate::cluster::Server;
use crate::fabric::Fabric;

/// Whether links of `fabric` can carry out `kind`: its implementation says.
pub fn carries(fabric: &Fabric, kind: FaultKind) -> bool {
    (registry(kind).carried_by)(kind, fabric)
}

/// The kinds of `requested` a cluster of `server` on `fabric` can undergo. With `all`,
/// every kind they can (etcd in proxy mode: kill and pause); otherwise naming one they
/// cannot is refused, with the kind and why (`"partition: ..."`).
pub fn usable(
    fabric: &Fabric,
    server: &dyn Server,
    server_name: &str,
    requested: Vec<FaultKind>,
    all: bool,
) -> Result<Vec<FaultKind>, String> {
    let why = |k: FaultKind| -> Option<String> {
        if k.needs_layer() {
            if let Some(why) = crate::cluster::disk::unavailable() {
                return Some(why);
            }
        }
        if k.is_clock() {
            if let Some(why) = crate::cluster::clock::unavailable() {
                return Some(why);
            }
        }
        if k == FaultKind::Membership && !server.membership_api() {
            return Some(format!(
                "{server_name} cannot undergo it: the runner changes membership through \
                 raft-node's /cluster/members API, which {server_name} does not serve"
            ));
        }
        if let Some(why) = server.refuses(k) {
            return Some(format!("{server_name} cannot undergo it: {why}"));
        }
        (!carries(fabric, k)).then(|| why_not(fabric, k).to_string())
    };
    if all {
        return Ok(requested
            .into_iter()
            .filter(|&k| why(k).is_none())
            .collect());
    }
    match requested.iter().find_map(|&k| why(k).map(|w| (k, w))) {
        Some((k, w)) => Err(format!("{}: {w}", k.name())),
        None => Ok(requested),
    }
}

/// Why links of `fabric` cannot carry out `kind` (for the error when it is asked for).
pub fn why_not(fabric: &Fabric, kind: FaultKind) -> &'static str {
    let plain_proxies = Fabric::Proxies {
        latency_ms: 0,
        tls: false,
    };
    match fabric {
        Fabric::Direct => {
            "the nodes are linked directly (--net direct, or a server such as etcd that \
             advertises one peer URL to every member, or a --node-cmd without {peers} or \
             {peer_addr:K}, so the per-link proxies cannot cut or slow its links); use \
             kill and pause, or --net netns"
        }
        Fabric::Proxies { tls: false, .. } => {
            "it acts on packets, which only --net netns's switch sees"
        }
        // What plain proxies can do and these cannot needs to see the requests.
        Fabric::Proxies { tls: true, .. } if carries(&plain_proxies, kind) => {
            "with --tls the proxies carry encrypted bytes and never see whole HTTP \
             requests; use --net netns (its switch duplicates and reorders packets \
             under TLS too), or leave out --tls"
        }
        Fabric::Proxies { tls: true, .. } => {
            "it acts on packets, which only --net netns's switch sees"
        }
        Fabric::Switch { .. } => {
            "it acts on whole HTTP requests, which only the proxies of --net proxy see"
        }
        Fabric::Hosts(_) if kind.is_clock() => {
            "on hosts over ssh the runner does not move clocks yet (libfaketime's control \
             files live on the machine that runs the nodes); use --net netns or proxy"
        }
        Fabric::Hosts(_) if kind.is_disk() => {
            "no disk fault reaches hosts over ssh (the disk layer is not installed \
             there); use --net netns or proxy"
        }
        Fabric::Hosts(_) => {
            "on hosts over ssh the runner partitions links with nftables, but does not \
             delay, duplicate or drop their packets (that needs tc netem, not used yet); \
             use kill, pause and partition, or --net netns on one machine"
        }
    }
}
