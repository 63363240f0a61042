//! What is particular to each kind of server the runner starts, behind one protocol,
//! [`Server`] (in spirit Jepsen's `db/DB` with its client): its command line for node N,
//! how to ask it who leads, which client dialect it speaks, what its links allow. Each
//! server is a file here; [`ServerKind`] lists them.

mod etcd;
mod nats;
mod protocol;
mod raft_node;

use anyhow::{bail, Result};

use workloads::client::Dialect;

use crate::tls::ApiAccess;

pub use etcd::etcd_binary;
pub use nats::nats_binary;
pub use protocol::{status, FileRole, Server};
pub use raft_node::raft_node_binary;

/// The servers a command can drive (`--target`): adding one is its file in this folder,
/// its variant here and its line in [`ServerKind::server`].
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
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::RaftNode => "raft-node",
            ServerKind::Etcd => "etcd",
            ServerKind::Nats => "nats",
        }
    }

    /// Its implementation of the protocol.
    pub fn server(self) -> &'static dyn Server {
        match self {
            ServerKind::RaftNode => &raft_node::RaftNode,
            ServerKind::Etcd => &etcd::Etcd,
            ServerKind::Nats => &nats::Nats,
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
    kind: ServerKind,
    access: &ApiAccess,
    probes: &[(u64, String)],
) -> Option<u64> {
    for (id, probe) in probes {
        if kind.server().leads(access, probe).await {
            return Some(*id);
        }
    }
    None
}
