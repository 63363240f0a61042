//! What the chaos-runner integration tests share.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_chaos-runner");

/// The raft-node binary beside chaos-runner, built if this test runs alone.
pub fn raft_node() -> PathBuf {
    let path = Path::new(BIN).with_file_name("raft-node");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "raft-node"])
            .status()
            .unwrap();
        assert!(status.success(), "building raft-node failed");
    }
    assert!(path.is_file(), "no raft-node at {}", path.display());
    path
}
