//! `raft-node`: a durable Raft key-value store, the default target of `chaos-runner`.
//!
//! - [`raft`]: the consensus core, sans-IO and deterministic.
//! - [`storage`]: the write-ahead log and snapshot files.
//! - [`kv`]: the key-value state machine.
//! - [`node`]: the driver that runs the core against real storage, network and clients.
//! - [`transport`]: node-to-node messages over HTTP; [`pipeline`], one peer's sender.
//! - [`api`]: the client HTTP API.
//! - [`body`]: reading request bodies of either port: size, deadline, memory budget.
//! - [`tls`]: optional mutual TLS for either port.
//! - [`parse_errors`]: JSON bodies for hyper's own parse-error answers.

mod answers;
pub mod api;
mod api_txn;
pub mod body;
pub mod kv;
pub mod node;
pub mod parse_errors;
pub mod pipeline;
pub mod raft;
pub mod storage;
pub mod tls;
pub mod transport;
