//! The nodes under test: real processes (or nodes on hosts over ssh), each in its own
//! process group, each told to die with the runner; the running cluster's kill, pause,
//! resume and restart.
//!
//! - `process`: forking children that die with the runner; `emergency`: the clean-up
//!   of Ctrl-C and panics.
//! - `servers`: what is particular to raft-node, seed-style servers and etcd.
//! - `startup`: starting a cluster with its links, and waiting for a leader.
//! - `clock`: each node's clock under libfaketime, for the clock faults.
//! - `spec`: a node's id, ports, folders and peers; `nodes`: the running cluster.

pub mod clock;
pub mod disk;
mod emergency;
mod nodes;
mod process;
mod servers;
mod spec;
mod startup;

pub use emergency::*;
pub use nodes::*;
pub use process::*;
pub use servers::*;
pub use startup::*;
