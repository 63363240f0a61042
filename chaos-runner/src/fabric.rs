//! How node-to-node traffic travels: one type for the choice, with what each choice
//! needs, which `test` and `bench` resolve from the same `--net` flag, the cluster
//! start-up builds, and the nemesis asks what faults it can carry out (and why not).

use clap::ValueEnum;

use crate::cluster::ServerKind;
use crate::nemesis::FaultKind;
use crate::netns::Range;
use crate::ssh::SshPlan;

/// `--net`, as `test` and `bench` both take it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    /// Straight over loopback: no network faults (only kill and pause), nothing in the
    /// way (`bench`'s default).
    Direct,
    /// One TCP proxy per directed link, on 127.0.0.1; the server must take a per-peer
    /// address map (--peers). Needs nothing (`test`'s default).
    Proxy,
    /// Each node in a network namespace of its own, with its own address and its real
    /// peers' addresses, joined by the runner's packet switch. Needs root and iproute2.
    Netns,
}

/// What carries node-to-node traffic, which decides the faults a run can have.
#[derive(Debug, Clone)]
pub enum Fabric {
    /// Straight over loopback: processes only (a server that advertises one address to
    /// every member, such as etcd, under `--net proxy`; `bench` by default).
    Direct,
    /// One TCP proxy per directed link, each with this steady one-way delay: byte
    /// streams, and whole HTTP requests unless the nodes speak TLS (`tls`).
    Proxies { latency_ms: u64, tls: bool },
    /// The packet switch of `--net netns`: IP packets.
    Switch {
        latency_ms: u64,
        range: Option<Range>,
    },
    /// A node per host over ssh (`--hosts`): nftables on each host.
    Hosts(Box<SshPlan>),
}

impl Fabric {
    /// The fabric the flags ask for: hosts over ssh when given, else `--net`; a server
    /// that cannot take an address per peer gets direct links under `--net proxy`.
    pub fn resolve(
        net: NetArg,
        server: ServerKind,
        tls: bool,
        latency_ms: u64,
        range: Option<Range>,
        ssh: Option<SshPlan>,
    ) -> Fabric {
        if let Some(ssh) = ssh {
            return Fabric::Hosts(Box::new(ssh));
        }
        match net {
            NetArg::Direct => Fabric::Direct,
            NetArg::Netns => Fabric::Switch { latency_ms, range },
            NetArg::Proxy if !server.server().per_peer_addresses() => Fabric::Direct,
            NetArg::Proxy => Fabric::Proxies { latency_ms, tls },
        }
    }

    /// Whether these links can carry out `kind`.
    pub fn carries(&self, kind: FaultKind) -> bool {
        use FaultKind::*;
        match kind {
            Kill | Pause => true,
            Partition => !matches!(self, Fabric::Direct),
            Latency | LinkLatency => matches!(self, Fabric::Proxies { .. } | Fabric::Switch { .. }),
            Duplicate | Reorder => {
                matches!(
                    self,
                    Fabric::Proxies { tls: false, .. } | Fabric::Switch { .. }
                )
            }
            Replay | Drop => matches!(self, Fabric::Proxies { tls: false, .. }),
            Loss | Bandwidth => matches!(self, Fabric::Switch { .. }),
        }
    }

    /// Why these links cannot carry out `kind` (for the error when it is asked for).
    pub fn why_not(&self, kind: FaultKind) -> &'static str {
        let plain_proxies = Fabric::Proxies {
            latency_ms: 0,
            tls: false,
        };
        match self {
            Fabric::Direct => {
                "the nodes are linked directly (--net direct, or a server such as etcd that \
                 advertises one peer URL to every member, so the per-link proxies cannot cut \
                 or slow its links); use kill and pause, or --net netns"
            }
            Fabric::Proxies { tls: false, .. } => {
                "it acts on packets, which only --net netns's switch sees"
            }
            // What plain proxies can do and these cannot needs to see the requests.
            Fabric::Proxies { tls: true, .. } if plain_proxies.carries(kind) => {
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
            Fabric::Hosts(_) => {
                "on hosts over ssh the runner partitions links with nftables, but does not \
                 delay, duplicate or drop their packets (that needs tc netem, not used yet); \
                 use kill, pause and partition, or --net netns on one machine"
            }
        }
    }

    /// In test.json's words.
    pub fn net_name(&self) -> &'static str {
        match self {
            Fabric::Direct => "direct",
            Fabric::Proxies { .. } => "proxy",
            Fabric::Switch { .. } => "netns",
            Fabric::Hosts(_) => "ssh",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_fabric_carries() {
        let proxies = Fabric::Proxies {
            latency_ms: 0,
            tls: false,
        };
        let tls = Fabric::Proxies {
            latency_ms: 0,
            tls: true,
        };
        let switch = Fabric::Switch {
            latency_ms: 0,
            range: None,
        };
        let carried = |f: &Fabric| -> Vec<&str> {
            FaultKind::ALL
                .into_iter()
                .filter(|&k| f.carries(k))
                .map(FaultKind::name)
                .collect()
        };
        assert_eq!(carried(&Fabric::Direct), ["kill", "pause"]);
        assert_eq!(
            carried(&proxies),
            [
                "kill",
                "pause",
                "partition",
                "latency",
                "duplicate",
                "reorder",
                "replay",
                "drop"
            ]
        );
        assert_eq!(carried(&tls), ["kill", "pause", "partition", "latency"]);
        assert_eq!(
            carried(&switch),
            [
                "kill",
                "pause",
                "partition",
                "latency",
                "duplicate",
                "reorder",
                "loss",
                "bandwidth"
            ]
        );
        assert!(tls.why_not(FaultKind::Replay).contains("--tls"));
        assert!(tls.why_not(FaultKind::Loss).contains("packets"));
        // etcd cannot have a proxy per link: --net proxy gives it direct links.
        let etcd = Fabric::resolve(NetArg::Proxy, ServerKind::Etcd, false, 5, None, None);
        assert!(matches!(etcd, Fabric::Direct));
        let raft = Fabric::resolve(NetArg::Proxy, ServerKind::RaftNode, true, 5, None, None);
        assert!(matches!(
            raft,
            Fabric::Proxies {
                latency_ms: 5,
                tls: true
            }
        ));
    }
}
