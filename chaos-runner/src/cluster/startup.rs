//! Starting a whole cluster: ports and addresses, how its links are carried (directly,
//! through proxies, the packet switch, or hosts over ssh), what must outlive the nodes,
//! and waiting for a leader. `test` and `bench` share it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use workloads::adapter::{AdapterClient, AdapterSpec};
use workloads::client::{Client, Dialect, KvClient, NodeApi};
use workloads::nats::{NatsClient, Reads};

use super::nodes::Cluster;
use super::process::{blocking, free_ports, Scope};
use super::servers::{find_leader_of, Server};
use super::spec::NodeSpec;
use crate::fabric::Fabric;
use crate::links::Network;
use crate::netns::carrier::SwitchCarrier;
use crate::netns::Hosts;
use crate::proxy::Proxies;
use crate::ssh::firewall::FirewallCarrier;
use crate::ssh::SshHosts;
use crate::store::RunDir;
use crate::tls::ApiAccess;

/// What must outlive the nodes and go after them: netns mode's namespaces and switch,
/// ssh mode's connections and firewall followers. Dropped after the cluster.
#[derive(Default)]
pub struct Hosting {
    netns: Option<Hosts>,
    ssh: Option<(Arc<SshHosts>, Vec<tokio::task::JoinHandle<()>>)>,
    /// The run's processes (nodes, ssh connections): declared last, so whatever is left
    /// of them dies only after the hosts above have been cleared through them.
    scope: Option<Scope>,
}

impl Hosting {
    /// One line for the console about where the nodes are, if not on loopback.
    pub fn describe(&self) -> Option<String> {
        if let Some(h) = &self.netns {
            return Some(h.describe());
        }
        let (ssh, _) = self.ssh.as_ref()?;
        let hosts: Vec<String> = ssh
            .remotes
            .values()
            .map(|r| format!("n{}={}", r.id, r.target.host))
            .collect();
        Some(format!("hosts (ssh): {}", hosts.join(", ")))
    }
}

impl Drop for Hosting {
    fn drop(&mut self) {
        if let Some((_, tasks)) = &self.ssh {
            for t in tasks {
                t.abort();
            }
        }
    }
}

/// How to bring a cluster up: which server, how many nodes, how their links are made,
/// and how long a leader may take.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// What the runner knows of the server (its command lines, who leads).
    pub server: std::sync::Arc<dyn Server>,
    pub bin: PathBuf,
    pub node_args: Vec<String>,
    pub nodes: u64,
    pub links: Fabric,
    pub leader_within: Duration,
    /// Mutual TLS on both ports of every node, with certificates the run makes.
    pub tls: bool,
    /// The lazy layer, when the run has disk faults: a lazy disk under every node.
    pub lazy_disk: Option<super::disk::Layer>,
    /// Every node under a clock of its own (libfaketime), when the run has clock faults:
    /// which of its clocks the faults move.
    pub clocks: Option<super::clock::ClockScope>,
}

/// A cluster that is up and has a leader.
pub struct Running {
    pub cluster: Cluster,
    pub net: Option<Network>,
    /// Every node's id and client API address.
    pub apis: Vec<(u64, String)>,
    /// Every node's id and where to ask it who leads ([`super::Server::probe_addr`]).
    pub probes: Vec<(u64, String)>,
    /// How the runner reaches those APIs (plain, or TLS: `--tls`).
    pub access: ApiAccess,
    pub leader: u64,
    /// Namespaces and switch, or ssh hosts. Declared after `cluster`, so the nodes are
    /// gone before their namespaces or hosts are cleared.
    pub hosting: Hosting,
}

impl Running {
    /// Every node's id and client address, as clients take them.
    fn node_apis(&self) -> Vec<NodeApi> {
        self.apis
            .iter()
            .map(|(id, addr)| NodeApi {
                id: *id,
                addr: addr.clone(),
            })
            .collect()
    }

    /// A recording client for this cluster, speaking `dialect` (a NATS client makes the
    /// streams its workloads use, with a copy on every node, up to NATS's five).
    pub async fn client(&self, dialect: Dialect) -> Result<Arc<dyn Client>> {
        let nodes = self.node_apis();
        if dialect.is_nats() {
            let reads = match dialect {
                Dialect::NatsDirect => Reads::Direct,
                _ => Reads::Leader,
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let client = NatsClient::connect(&nodes, reads, nodes.len(), deadline).await?;
            return Ok(Arc::new(client));
        }
        let client = KvClient::with_tls(nodes, dialect, self.access.client_config());
        Ok(Arc::new(client))
    }

    /// A client over adapter processes running `command` (`--client-cmd`), each told the
    /// nodes and `workload`; their stderr goes to `stderr_dir`.
    pub fn adapter_client(
        &self,
        command: &str,
        workload: &str,
        stderr_dir: std::path::PathBuf,
        op_timeout: Duration,
    ) -> Arc<AdapterClient> {
        let nodes = self.node_apis();
        Arc::new(AdapterClient::new(AdapterSpec {
            command: command.to_string(),
            nodes,
            workload: workload.to_string(),
            stderr_dir,
            ready_within: Duration::from_secs(30),
            op_timeout,
        }))
    }
}

/// Where each node listens and how it reaches its peers, under each [`Fabric`].
pub(super) struct Addressing {
    net: Option<Network>,
    hosting: Hosting,
    /// Node id -> (listen address, transport port, API port, monitoring port).
    nodes: BTreeMap<u64, (IpAddr, u16, u16, u16)>,
    /// Loopback ports held until the nodes start.
    reserved: Vec<std::net::TcpListener>,
}

impl Addressing {
    /// The ports every node uses in its own namespace (nothing else listens there).
    const NETNS_PORTS: (u16, u16, u16) = (7000, 8000, 9000);

    async fn new(plan: &ClusterPlan, ids: &[u64], scope: &Scope) -> Result<Addressing> {
        let (t, a, m) = Self::NETNS_PORTS;
        if let Fabric::Switch { latency_ms, range } = &plan.links {
            let mut hosts = Hosts::create(ids, *range)?;
            let (carrier, links) = SwitchCarrier::between(ids);
            let net = Network::new(carrier, *latency_ms);
            hosts.start_switch(links);
            let nodes = ids
                .iter()
                .map(|&i| (i, (IpAddr::V4(hosts.addr(i)), t, a, m)))
                .collect();
            return Ok(Addressing {
                net: Some(net),
                hosting: Hosting {
                    netns: Some(hosts),
                    ssh: None,
                    scope: None,
                },
                nodes,
                reserved: Vec::new(),
            });
        }
        if let Fabric::Hosts(ssh) = &plan.links {
            let hosts = blocking(|| SshHosts::connect(ssh, &plan.bin, |c| scope.spawn(c)))?;
            let hosts = Arc::new(hosts);
            let (carrier, links) = FirewallCarrier::between(ids);
            let net = Network::new(carrier, 0);
            let follow = crate::ssh::firewall::follow(&hosts, links);
            let nodes = ids
                .iter()
                .map(|&i| (i, (hosts.remotes[&i].target.addr, t, a, m)))
                .collect();
            return Ok(Addressing {
                net: Some(net),
                hosting: Hosting {
                    netns: None,
                    ssh: Some((hosts, follow)),
                    scope: None,
                },
                nodes,
                reserved: Vec::new(),
            });
        }
        let n = ids.len();
        let (ports, reserved) = free_ports(3 * n)?;
        let nodes: BTreeMap<u64, (IpAddr, u16, u16, u16)> = ids
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let local = IpAddr::from([127, 0, 0, 1]);
                (i, (local, ports[k], ports[n + k], ports[2 * n + k]))
            })
            .collect();
        let net = match plan.links {
            Fabric::Proxies { latency_ms, .. } => {
                let targets: Vec<(u64, std::net::SocketAddr)> = nodes
                    .iter()
                    .map(|(&i, &(host, t, _, _))| (i, std::net::SocketAddr::new(host, t)))
                    .collect();
                Some(Network::new(Proxies::start(&targets).await?, latency_ms))
            }
            _ => None,
        };
        Ok(Addressing {
            net,
            hosting: Hosting::default(),
            nodes,
            reserved,
        })
    }

    /// How node `from` reaches node `to`: its proxy, or `to`'s own address.
    fn peer(&self, from: u64, to: u64) -> String {
        if let Some(addr) = self.net.as_ref().and_then(|n| n.addr(from, to)) {
            return addr.to_string();
        }
        let (host, t, _, _) = self.nodes[&to];
        std::net::SocketAddr::new(host, t).to_string()
    }
}

/// Makes the links (proxies, or namespaces and switch), starts every node with its data
/// and log in `run`'s folder, and waits for a leader. The one way `test` and `bench`
/// start clusters.
pub async fn start_cluster(plan: &ClusterPlan, run: &RunDir) -> Result<Running> {
    let ids: Vec<u64> = (1..=plan.nodes).collect();
    let scope = Scope::new();
    let mut addressing = Addressing::new(plan, &ids, &scope).await?;
    addressing.hosting.scope = Some(scope.clone());
    let specs: Vec<NodeSpec> = ids
        .iter()
        .map(|&i| {
            let (host, transport_port, api_port, monitor_port) = addressing.nodes[&i];
            let remote = addressing
                .hosting
                .ssh
                .as_ref()
                .map(|(h, _)| h.remotes[&i].clone());
            NodeSpec {
                id: i,
                transport_port,
                api_port,
                monitor_port,
                log: run.node_log(i),
                peers: ids
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| (j, addressing.peer(i, j)))
                    .collect(),
                host,
                netns: addressing.hosting.netns.as_ref().map(|h| h.netns_path(i)),
                remote: remote.clone(),
                local_data: run.node_dir(i),
                tls: None,
                data_dir: match &remote {
                    Some(r) => PathBuf::from(r.data()),
                    None => run.node_dir(i),
                },
            }
        })
        .collect();
    let mut specs = specs;
    let mut access = ApiAccess::default();
    if plan.tls {
        let hosts: Vec<(u64, IpAddr)> = specs.iter().map(|s| (s.id, s.host)).collect();
        let (files, run_access) = crate::tls::create(&run.path.join("tls"), &hosts)?;
        for s in &mut specs {
            s.tls = files.get(&s.id).cloned();
        }
        access = run_access;
    }
    let apis: Vec<(u64, String)> = specs.iter().map(|s| (s.id, s.api_addr())).collect();
    let server = plan
        .server
        .for_cluster(&specs)
        .unwrap_or_else(|| plan.server.clone());
    let probes: Vec<(u64, String)> = specs.iter().map(|s| (s.id, server.probe_addr(s))).collect();
    // Free the ports only now, so nothing this process bound meanwhile took one.
    addressing.reserved.clear();
    let mut cluster = Cluster::new(
        server,
        plan.bin.clone(),
        plan.node_args.clone(),
        specs,
        access.clone(),
        scope,
    );
    if let Some(layer) = &plan.lazy_disk {
        cluster.with_lazy_disks(layer);
    }
    if let Some(scope) = plan.clocks {
        cluster.with_clocks(&run.path.join("clocks"), scope)?;
    }
    for &i in &ids {
        cluster.start(i)?;
    }
    let leader = wait_for_leader(&mut cluster, plan.leader_within).await?;
    Ok(Running {
        cluster,
        net: addressing.net,
        apis,
        probes,
        access,
        leader,
        hosting: addressing.hosting,
    })
}

/// Waits until some node leads, or fails with every node's log tail.
pub async fn wait_for_leader(cluster: &mut Cluster, within: Duration) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let probes: Vec<(u64, String)> = cluster
        .ids()
        .iter()
        .map(|&i| (i, cluster.server().probe_addr(cluster.spec(i))))
        .collect();
    let server = cluster.server_ref();
    loop {
        for id in cluster.ids() {
            if let Some(status) = cluster.exited(id) {
                bail!(
                    "node {id} exited ({status}) while the cluster was starting; the end of its log:\n{}",
                    cluster.log_tail(id, 15)
                );
            }
        }
        if server.knows_leader() {
            if let Some(l) = find_leader_of(&*server, cluster.access(), &probes).await {
                return Ok(l);
            }
        } else {
            // Without a leader to find, the cluster is up when every node is.
            let mut up = true;
            for (_, probe) in &probes {
                up &= server.leads(cluster.access(), probe).await;
            }
            if up {
                return Ok(probes[0].0);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let tails: Vec<String> = cluster
                .ids()
                .iter()
                .map(|&i| {
                    format!(
                        "--- node {i} ({}):\n{}",
                        cluster.spec(i).log.display(),
                        cluster.log_tail(i, 8)
                    )
                })
                .collect();
            bail!(
                "no leader after {within:?}; the end of each node's log:\n{}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
