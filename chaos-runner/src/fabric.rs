//! How node-to-node traffic travels: one type for the choice, with what each choice
//! needs, which `test` and `bench` resolve from the same `--net` flag and the cluster
//! start-up builds. Which faults it can carry out each fault's implementation says
//! (`nemesis::carries`).

use clap::ValueEnum;

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
    /// Whether the nodes run on this machine (their files are reachable here): all but
    /// hosts over ssh.
    pub fn on_this_machine(&self) -> bool {
        !matches!(self, Fabric::Hosts(_))
    }

    /// The fabric the flags ask for: hosts over ssh when given, else `--net`; a server
    /// that cannot take an address per peer gets direct links under `--net proxy`.
    pub fn resolve(
        net: NetArg,
        per_peer_addresses: bool,
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
            NetArg::Proxy if !per_peer_addresses => Fabric::Direct,
            NetArg::Proxy => Fabric::Proxies { latency_ms, tls },
        }
    }

    /// How many nodes the cluster has: one per host over ssh, else `asked` (`--nodes`).
    pub fn node_count(&self, asked: u64) -> u64 {
        match self {
            Fabric::Hosts(ssh) => ssh.hosts.len() as u64,
            _ => asked,
        }
    }

    /// The steady one-way delay of every link (`--link-latency`); 0 where the runner
    /// does not stand in the links.
    pub fn latency_ms(&self) -> u64 {
        match self {
            Fabric::Proxies { latency_ms, .. } | Fabric::Switch { latency_ms, .. } => *latency_ms,
            Fabric::Direct | Fabric::Hosts(_) => 0,
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
    fn a_server_without_per_peer_addresses_gets_direct_links_under_proxy() {
        let etcd = Fabric::resolve(NetArg::Proxy, false, false, 5, None, None);
        assert!(matches!(etcd, Fabric::Direct));
        let raft = Fabric::resolve(NetArg::Proxy, true, true, 5, None, None);
        assert!(matches!(
            raft,
            Fabric::Proxies {
                latency_ms: 5,
                tls: true
            }
        ));
        let netns = Fabric::resolve(NetArg::Netns, false, false, 0, None, None);
        assert_eq!(netns.net_name(), "netns");
    }
}
