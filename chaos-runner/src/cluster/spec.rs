//! What the runner knows of one node before starting it: its id, ports, folders, peers
//! and where it runs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::ssh::Remote;
use crate::tls::NodeTls;

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub transport_port: u16,
    pub api_port: u16,
    /// A third port, for servers that serve their state apart from their clients (NATS's
    /// monitoring port, which says who leads).
    pub monitor_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// `ID=HOST:PORT` of every peer, as this node must reach it (through its proxies).
    pub peers: Vec<(u64, String)>,
    /// The address it listens on: 127.0.0.1, or its own in netns and ssh modes.
    pub host: IpAddr,
    /// The network namespace it runs in (netns mode).
    pub netns: Option<PathBuf>,
    /// The host it runs on (ssh mode): `data_dir` is then a path there, and `log` and
    /// `local_data` are where they are copied back to at the end.
    pub remote: Option<Arc<Remote>>,
    /// The node's data folder in the run's store.
    pub local_data: PathBuf,
    /// Its certificate, key and CA, when the run uses TLS (`--tls`).
    pub tls: Option<NodeTls>,
}

impl NodeSpec {
    pub fn api_addr(&self) -> String {
        format!("{}:{}", self.host, self.api_port)
    }

    pub fn monitor_addr(&self) -> String {
        format!("{}:{}", self.host, self.monitor_port)
    }

    pub fn transport_addr(&self) -> String {
        format!("{}:{}", self.host, self.transport_port)
    }
}
