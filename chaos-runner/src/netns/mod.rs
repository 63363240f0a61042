//! `--net netns`: each node in a Linux network namespace of its own, with its own address,
//! its only link a TUN device whose other end is the runner's packet switch ([`switch`]).
//!
//! Nodes listen on their own address and reach their peers at the peers' real
//! addresses: no proxies, no per-peer address maps, so any server that advertises one
//! address per member (etcd, most production systems) can be partitioned. Clients reach
//! the nodes through one more TUN in the runner's namespace, whose address brings the
//! only route this adds to the machine (to the test range). Nothing is routed further:
//! a namespace has no default route and there is no NAT.
//!
//! Names carry the run (`chaos-<run>-n1`, TUN `<run>n1`); a lock file in
//! `/run/chaos-runner/` is held for the run's life. A run that dies without cleaning up
//! (SIGKILL) leaves only its namespaces (its TUNs and route vanish with its descriptors,
//! its nodes with their death signal); the next run, or `chaos-runner clean`, removes
//! those whose lock is free, and no others.

pub mod carrier;
pub mod packet;
pub mod switch;
pub mod tun;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use crate::run_lock::{self, is_run_name, RunLock};
use switch::{Port, Switch, SwitchLink};
use tun::Tun;

const NETNS_DIR: &str = "/run/netns";
/// Large, so a TCP stream is not chopped into Ethernet-sized packets: the switch pays
/// per packet, not per byte.
const MTU: u32 = 65_520;

/// Namespaces created by this process and not yet removed, for the emergency path
/// (Ctrl-C, panic), which cannot run destructors.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// An IPv4 range for the test network (`--net-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Range {
    /// The block RFC 2544 sets aside for benchmark networks, one /24 of it per run.
    const AUTO_BLOCK: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);

    pub fn parse(s: &str) -> Result<Range> {
        let (a, p) = s.split_once('/').with_context(|| {
            format!("--net-range {s:?}: expected ADDRESS/PREFIX, e.g. 198.18.7.0/24")
        })?;
        let addr: Ipv4Addr = a
            .parse()
            .with_context(|| format!("--net-range {s:?}: {a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (16..=29).contains(p))
            .with_context(|| format!("--net-range {s:?}: the prefix must be 16 to 29"))?;
        let mask = u32::MAX << (32 - prefix);
        Ok(Range {
            base: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// Node `id`'s address: the `id`th of the range (198.18.0.1 for node 1).
    pub fn node(&self, id: u64) -> Option<Ipv4Addr> {
        let i = u32::try_from(id).ok()?;
        (i >= 1 && i + 2 < self.size()).then(|| Ipv4Addr::from(u32::from(self.base) + i))
    }

    /// The runner's (the clients') address: the last usable one.
    pub fn runner(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + self.size() - 2)
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Checks what netns mode needs, naming what is missing and where it comes from.
pub fn preflight() -> Result<()> {
    if !run_lock::is_root() {
        bail!(
            "--net netns creates network namespaces and TUN devices, which needs root \
             (CAP_NET_ADMIN); run as root, or use --net proxy"
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        bail!("--net netns needs /dev/net/tun (the kernel's tun module: modprobe tun)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        bail!("--net netns needs the ip command: install Debian's iproute2 package (apt-get install iproute2)");
    }
    Ok(())
}

/// Runs `ip ARGS`, failing with what it said.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Removes one named namespace, as `ip netns delete` does (detach its mount, remove
/// the name); processes still inside keep it alive until they exit.
fn remove_namespace(name: &str) {
    let path = Path::new(NETNS_DIR).join(name);
    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&path);
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|n| n != name);
}

/// Removes every namespace this process created and still has (the emergency path).
pub fn remove_live() {
    let names = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for n in names {
        remove_namespace(&n);
    }
}

/// The run a namespace name belongs to (`chaos-<run>-n<id>`).
fn run_of(ns: &str) -> Option<&str> {
    let rest = ns.strip_prefix("chaos-")?;
    let (run, node) = rest.rsplit_once("-n")?;
    node.parse::<u64>().ok()?;
    is_run_name(run).then_some(run)
}

/// Kills whatever still runs inside the namespace at `path` (a node whose death signal
/// did not fire).
fn kill_inside(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = std::fs::metadata(path) else {
        return;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let same = std::fs::metadata(p.path().join("ns/net"))
            .is_ok_and(|m| m.ino() == ns.ino() && m.dev() == ns.dev());
        if same {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Removes what dead runs left: namespaces (and anything inside them) whose run's lock
/// is free. Live runs, and namespaces not named by this tool, are left alone. Returns
/// the names removed.
pub fn clean_dead_runs() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let names: Vec<String> = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    for name in names {
        let Some(run) = run_of(&name) else { continue };
        if RunLock::is_dead(run)? {
            let path = Path::new(NETNS_DIR).join(&name);
            kill_inside(&path);
            remove_namespace(&name);
            removed.push(name);
        }
    }
    run_lock::clean_dead_files()?;
    Ok(removed)
}

/// The IPv4 ranges this machine already uses: its interfaces' addresses (as /32) and
/// every route but the default one. A test range must overlap none, or its route would
/// take traffic meant for a real network.
fn ranges_in_use() -> Result<Vec<Range>> {
    let mut used = Vec::new();
    for args in [
        &["-4", "-o", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"][..],
    ] {
        let out = Command::new("ip")
            .args(args)
            .output()
            .context("cannot run ip (install iproute2)")?;
        used.extend(parse_ranges(&String::from_utf8_lossy(&out.stdout)));
    }
    Ok(used)
}

/// The ranges named in `ip -4 addr` (after `inet`) or `ip -4 route` (the first word,
/// maybe after a route type) output; bare addresses are /32.
fn parse_ranges(text: &str) -> Vec<Range> {
    let cidr = |t: &str| -> Option<Range> {
        let (a, p) = t.split_once('/').unwrap_or((t, "32"));
        let base: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Some(Range {
            base: Ipv4Addr::from(u32::from(base) & mask),
            prefix,
        })
    };
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().peekable();
            if l.contains(" inet ") {
                w.find(|&t| t == "inet")?;
                return w.next().and_then(|t| cidr(t.split('/').next()?));
            }
            let first = *w.peek()?;
            let dest = if ["local", "broadcast", "unicast", "multicast"].contains(&first) {
                w.nth(1)?
            } else {
                w.next()?
            };
            cidr(dest)
        })
        .filter(|r| r.prefix > 0)
        .collect()
}

impl Range {
    fn overlaps(&self, other: &Range) -> bool {
        let p = self.prefix.min(other.prefix);
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        u32::from(self.base) & mask == u32::from(other.base) & mask
    }
}

/// Refuses a `--net-range` that overlaps an address or route of this machine.
pub fn check_free(r: Range) -> Result<()> {
    if let Some(u) = ranges_in_use()?.iter().find(|u| r.overlaps(u)) {
        bail!(
            "--net-range {r} overlaps {u}, which this machine already uses (an address or a \
             route); pick a free range"
        );
    }
    Ok(())
}

/// The range to use: `given`, checked to be free, or the first free /24 of 198.18.0.0/15.
fn choose_range(given: Option<Range>) -> Result<Range> {
    if let Some(r) = given {
        check_free(r)?;
        return Ok(r);
    }
    let used = ranges_in_use()?;
    let (block, prefix) = Range::AUTO_BLOCK;
    (0..1u32 << (24 - prefix))
        .map(|i| Range {
            base: Ipv4Addr::from(u32::from(block) + (i << 8)),
            prefix: 24,
        })
        .find(|r| !used.iter().any(|u| r.overlaps(u)))
        .context("every /24 of 198.18.0.0/15 is in use; pass --net-range")
}

/// The namespaces, TUN devices and switch of one run. Dropping it removes them (nodes
/// must be stopped first: they are, since the cluster is dropped before this).
pub struct Hosts {
    run: String,
    range: Range,
    names: BTreeMap<u64, String>,
    tuns: Vec<(Option<u64>, Arc<Tun>)>,
    switch: Option<Switch>,
    /// Held for the run's life: tells a later run this one is alive.
    _lock: RunLock,
}

impl Hosts {
    /// Creates a namespace per node in `ids`, each with its TUN and address, and the
    /// runner's own TUN. The switch starts with [`Hosts::start_switch`].
    pub fn create(ids: &[u64], range: Option<Range>) -> Result<Hosts> {
        preflight()?;
        // Set-up of concurrent runs takes turns: each picks a free range, and each clears
        // what dead runs left. Two runs clearing at once would see each other's probe of
        // a dead run's lock as that run being alive.
        let _setup = run_lock::flock(&run_lock::state_dir().join("setup.lock"), true)?;
        let cleaned = clean_dead_runs()?;
        if !cleaned.is_empty() {
            crate::console::say!("removed {} namespaces left by dead runs", cleaned.len());
        }
        let range = choose_range(range)?;
        for &id in ids {
            if range.node(id).is_none() {
                bail!("--net-range {range} has no address for node {id}; use a larger range");
            }
        }
        let lock = RunLock::new()?;
        let mut hosts = Hosts {
            run: lock.run().to_string(),
            range,
            names: BTreeMap::new(),
            tuns: Vec::new(),
            switch: None,
            _lock: lock,
        };
        for &id in ids {
            hosts.add_node(id)?;
        }
        let name = format!("{}c", hosts.run);
        let tun = Tun::create(&name).with_context(|| format!("cannot create TUN {name}"))?;
        let cidr = format!("{}/{}", range.runner(), range.prefix);
        ip(&["addr", "add", &cidr, "dev", &name])?;
        ip(&["link", "set", "dev", &name, "mtu", &MTU.to_string(), "up"])?;
        hosts.tuns.push((None, Arc::new(tun)));
        Ok(hosts)
    }

    fn add_node(&mut self, id: u64) -> Result<()> {
        let ns = format!("chaos-{}-n{id}", self.run);
        ip(&["netns", "add", &ns])?;
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ns.clone());
        self.names.insert(id, ns.clone());
        let name = format!("{}n{id}", self.run);
        let tun = Tun::create(&name).with_context(|| format!("cannot create TUN {name}"))?;
        ip(&["link", "set", "dev", &name, "netns", &ns])?;
        let addr = self.range.node(id).expect("checked");
        let cidr = format!("{addr}/{}", self.range.prefix);
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", &name])?;
        ip(&[
            "-n",
            &ns,
            "link",
            "set",
            "dev",
            &name,
            "mtu",
            &MTU.to_string(),
            "up",
        ])?;
        self.tuns.push((Some(id), Arc::new(tun)));
        Ok(())
    }

    /// Starts forwarding, with `links` (from the [`carrier::SwitchCarrier`] that owns
    /// the faults).
    pub fn start_switch(&mut self, links: BTreeMap<(u64, u64), SwitchLink>) {
        let ports = self
            .tuns
            .iter()
            .map(|(node, tun)| Port {
                tun: tun.clone(),
                addr: match node {
                    Some(id) => self.range.node(*id).expect("checked"),
                    None => self.range.runner(),
                },
                node: *node,
            })
            .collect();
        self.switch = Some(Switch::start(ports, links));
    }

    /// One line for the console: where the nodes are.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.names.values().map(String::as_str).collect();
        format!(
            "network: namespaces {} on {}, joined by the runner's switch (clients at {})",
            names.join(", "),
            self.range,
            self.range.runner()
        )
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> Ipv4Addr {
        self.range.node(id).expect("a node of this run")
    }

    /// The namespace node `id` runs in, as a path `setns` can open.
    pub fn netns_path(&self, id: u64) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.names[&id])
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.switch = None;
        for ns in self.names.values() {
            remove_namespace(ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_name_their_hosts() {
        let r = Range::parse("198.18.7.99/24").unwrap();
        assert_eq!(r.to_string(), "198.18.7.0/24");
        assert_eq!(r.node(1), Some(Ipv4Addr::new(198, 18, 7, 1)));
        assert_eq!(r.node(253), Some(Ipv4Addr::new(198, 18, 7, 253)));
        assert_eq!(r.node(254), None, "the runner's");
        assert_eq!(r.runner(), Ipv4Addr::new(198, 18, 7, 254));
        let small = Range::parse("10.9.9.8/29").unwrap();
        assert_eq!(small.node(5), Some(Ipv4Addr::new(10, 9, 9, 13)));
        assert_eq!(small.node(6), None);
        for bad in [
            "198.18.0.0",
            "198.18.0/24",
            "198.18.0.0/8",
            "198.18.0.0/30",
            "x/24",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_in_use_come_from_addresses_and_routes_but_not_the_default() {
        let addrs = "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n";
        let routes = "default via 192.0.2.1 dev eth0\n10.8.0.0/16 via 192.0.2.9 dev eth0\n\
                      local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1\n";
        let used: Vec<String> = parse_ranges(addrs)
            .into_iter()
            .chain(parse_ranges(routes))
            .map(|r| r.to_string())
            .collect();
        assert_eq!(used, ["192.0.2.2/32", "10.8.0.0/16", "127.0.0.1/32"]);
        let r = Range::parse("10.8.3.0/24").unwrap();
        assert!(r.overlaps(&Range::parse("10.8.0.0/16").unwrap()));
        assert!(!r.overlaps(&Range::parse("10.9.0.0/16").unwrap()));
    }

    #[test]
    fn only_this_tools_namespaces_have_a_run() {
        assert_eq!(run_of("chaos-cr00ab12-n3"), Some("cr00ab12"));
        assert_eq!(run_of("chaos-../etc-n3"), None);
        assert_eq!(run_of("chaos-cr00ab12-nx"), None);
        assert_eq!(run_of("my-namespace"), None);
    }
}
