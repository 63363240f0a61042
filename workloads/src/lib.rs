//! `workloads`: what the clients of a chaos test do, and how it is recorded.
//!
//! - [`generator`]: which operation a client does next (register and kv workloads, presets).
//! - [`client`]: the HTTP client that performs one operation against any node, follows
//!   leader hints, and classifies the answer as ok, fail (certainly not applied) or info
//!   (outcome unknown).
//! - [`nats`]: the same operations over NATS JetStream (a stream, a key-value bucket).
//! - [`recorder`]: streams every invocation, completion and fault to `history.jsonl`.
//! - [`runner`]: the concurrent clients, one logical process each, retired after `info`.
//! - [`txn`]: transactions (list-append, rw-register) on the wire and back.

pub mod adapter;
pub mod client;
pub mod generator;
pub mod nats;
pub mod recorder;
pub mod runner;
pub mod txn;
