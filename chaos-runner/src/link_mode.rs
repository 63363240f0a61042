//! What a link does to traffic: the one vocabulary the proxies, the packet switch and the
//! hosts' firewalls all carry out, so every fault means the same in every mode.

/// What a link does to traffic, all its faults folded together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Up,
    /// Live connections are reset, new ones refused (reset at once).
    Cut,
    /// Nothing passes and nothing is refused: the sender's timeouts fire.
    BlackHole,
    /// Every chunk (or packet) waits `ms` plus up to `jitter_ms` more.
    Delay {
        ms: u64,
        jitter_ms: u64,
    },
}
