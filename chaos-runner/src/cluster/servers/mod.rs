//! What is particular to each kind of server the runner starts, behind one protocol,
//! [`Server`] (in spirit Jepsen's `db/DB` with its client): its command line for node N,
//! how to ask it who leads, which client dialect it speaks, what its links allow. Each
//! server is a file here; [`ServerKind`] lists them.

pub mod command;
mod etcd;
mod nats;
mod protocol;
mod raft_node;

use std::sync::Arc;

use anyhow::{bail, Result};

use workloads::client::Dialect;

use crate::tls::ApiAccess;

pub use etcd::etcd_binary;
pub use nats::nats_binary;
pub use protocol::{http_call, http_call_within, status, FileRole, Server};
pub use raft_node::raft_node_binary;

/// The servers a command can drive (`--target`): adding one is its file in this folder,
/// its variant here and its line in [`ServerKind::builtin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// The embedded Raft key-value store (raft-node beside this executable), or any
    /// server with its command line (--raft-node PATH).
    RaftNode,
    /// etcd members, from Debian's etcd-server package (apt-get install etcd-server).
    Etcd,
    /// NATS servers with JetStream, from Debian's nats-server package (apt-get install
    /// nats-server): a stream for --workload set and queue, a key-value bucket for
    /// register.
    Nats,
    /// Any server, started from --node-cmd (a command template) and spoken to through
    /// --client-cmd (an adapter program): see docs/testing-your-server.md.
    Command,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::RaftNode => "raft-node",
            ServerKind::Etcd => "etcd",
            ServerKind::Nats => "nats",
            ServerKind::Command => "command",
        }
    }

    /// Its implementation of the protocol, for the servers the runner knows (a command
    /// server is made from its flags: [`command::CommandServer`]).
    pub fn builtin(self) -> Option<Arc<dyn Server>> {
        match self {
            ServerKind::RaftNode => Some(Arc::new(raft_node::RaftNode)),
            ServerKind::Etcd => Some(Arc::new(etcd::Etcd)),
            ServerKind::Nats => Some(Arc::new(nats::Nats)),
            ServerKind::Command => None,
        }
    }
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

/// The id of the node that says it leads, among `probes` (id, [`Server::probe_addr`]).
pub async fn find_leader_of(
    server: &dyn Server,
    access: &ApiAccess,
    probes: &[(u64, String)],
) -> Option<u64> {
    if !server.knows_leader() {
        return None;
    }
    for (id, probe) in probes {
        if server.leads(access, probe).await {
            return Some(*id);
        }
    }
    None
}
