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

/// One line of /proc/self/mountinfo: where, and what (file system type and source,
/// `fuse` and `chaos-lazyfs` for this layer).
pub struct Mount {
    pub point: std::path::PathBuf,
    pub fstype: String,
    pub source: String,
}

/// The mounts this process sees. The mount point is the fifth field, with a space
/// written as `\040`; type and source follow the ` - ` separator.
pub fn mounts() -> Vec<Mount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let point = head.split(' ').nth(4)?.replace("\\040", " ");
            let mut t = tail.split(' ');
            Some(Mount {
                point: point.into(),
                fstype: t.next()?.to_string(),
                source: t.next()?.to_string(),
            })
        })
        .collect()
}

/// Whether `path` is a mount point now.
pub fn is_mounted(path: &std::path::Path) -> bool {
    mounts().iter().any(|m| m.point == path)
}
