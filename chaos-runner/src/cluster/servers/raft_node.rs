//! raft-node, and any server that takes its command line: the embedded target, and the
//! seed-style servers of docs/testing-your-server.md (their dialect is detected).

use std::path::PathBuf;

use anyhow::{bail, Result};
use workloads::client::Dialect;

use super::protocol::{status, BoxFuture, FileRole, Server};
use crate::cluster::spec::NodeSpec;
use crate::tls::ApiAccess;

/// `--id --transport-port --api-port --data-dir --peers`.
#[derive(Debug)]
pub struct RaftNode;

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

impl Server for RaftNode {
    fn args(&self, spec: &NodeSpec, _founding: bool) -> Vec<String> {
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

    fn leads<'a>(&'a self, access: &'a ApiAccess, api: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            status(access, api)
                .await
                .is_some_and(|s| Dialect::status_says_leader(&s))
        })
    }

    /// raft-node's status says `joining` while it waits for the members and
    /// `catching_up_to` while its log is behind the floor they reported; a seed-style
    /// server has neither field, and is taken at its word once it answers.
    fn rejoined<'a>(&'a self, access: &'a ApiAccess, api: &'a str) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move {
            // A node that does not answer has not been seen to rejoin.
            let s = status(access, api).await;
            Some(s.is_some_and(|s| s["joining"].is_null() && s["catching_up_to"].is_null()))
        })
    }

    fn per_peer_addresses(&self) -> bool {
        true
    }

    fn membership_api(&self) -> bool {
        true
    }

    fn tls(&self) -> bool {
        true
    }

    fn dialect(&self) -> Option<Dialect> {
        None
    }

    /// raft-node's write-ahead log segments, its snapshot and its term/vote file
    /// (raft-node/src/storage.rs). Seed-style servers keep what they like under
    /// `--data-dir`; their files match the same patterns only if they name them so.
    fn durable_files(&self) -> &'static [(&'static str, FileRole)] {
        &[
            ("wal-*.log", FileRole::Log),
            ("snapshot.bin", FileRole::Snapshot),
            ("state.bin", FileRole::Metadata),
            ("wal.synced", FileRole::Metadata),
        ]
    }
}
