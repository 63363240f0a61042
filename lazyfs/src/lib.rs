//! A FUSE pass-through filesystem that behaves like a page cache over a real folder: what
//! a program writes stays in this process's memory until the program fsyncs it, and
//! names change durably only when their folder is fsynced. A crash then throws away
//! everything not durable and leaves the backing folder as a power cut would have.
//!
//! chaos-runner mounts one under each node's data folder (the `chaos-lazyfs` binary) to
//! test what servers promise about durability; the idea is LazyFS's (Ramos et al.,
//! used by Jepsen and etcd's robustness tests), written here in Rust.

pub mod fs;
pub mod journal;
pub mod overlay;

/// Whether `path` is a mount point now, from /proc/self/mountinfo (whose fifth field is
/// the mount point, with a space written as `\040`).
pub fn is_mounted(path: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| m.replace("\\040", " ") == want)
    })
}
