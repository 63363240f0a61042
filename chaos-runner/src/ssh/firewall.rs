//! Partitions on real hosts: each host drops (or resets) what arrives from the peers its
//! node must not hear, in an nftables table of the run's own. The rules follow the same
//! link modes the proxies and the switch follow ([`LinkMode`]), so every
//! partition shape and target works unchanged.
//!
//! A link `a -> b` is cut at `b`'s input by `a`'s address, as Jepsen does with iptables:
//! at the level of packets, like the switch of netns mode.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Weak};

use checker::fault::FaultKind;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::SshHosts;
use crate::links::{Carrier, LinkMode, ModeWatches};

/// The hosts' firewalls as a [`Carrier`]: they cut whole links (partitions) and nothing
/// finer, so delays and faults on messages or packets are not theirs to carry out.
pub struct FirewallCarrier {
    modes: ModeWatches,
}

impl FirewallCarrier {
    /// The links between `ids`, and the modes [`follow`] keeps the tables in step with.
    pub fn between(
        ids: &[u64],
    ) -> (
        FirewallCarrier,
        BTreeMap<(u64, u64), watch::Receiver<LinkMode>>,
    ) {
        let (modes, watches) = ModeWatches::between(ids);
        (FirewallCarrier { modes }, watches)
    }
}

impl Carrier for FirewallCarrier {
    fn links(&self) -> Vec<(u64, u64)> {
        self.modes.links()
    }

    fn set_mode(&self, link: (u64, u64), mode: LinkMode) {
        self.modes.set(link, mode);
    }

    fn set_fault(&self, _link: (u64, u64), fault: Option<(FaultKind, u64)>) -> Result<(), String> {
        match fault {
            None => Ok(()),
            Some((kind, _)) => Err(format!(
                "{} needs proxies or the packet switch; the hosts' firewalls only cut links",
                kind.name()
            )),
        }
    }
}

/// The rules for one host, given the mode of each link into it and the sender's address.
pub fn render(into: &[(IpAddr, LinkMode)]) -> String {
    let mut out = String::new();
    for (from, mode) in into {
        match mode {
            LinkMode::Cut => {
                out.push_str(&format!(
                    "    ip saddr {from} meta l4proto tcp reject with tcp reset\n    ip saddr {from} drop\n"
                ));
            }
            LinkMode::BlackHole => out.push_str(&format!("    ip saddr {from} drop\n")),
            LinkMode::Up | LinkMode::Delay { .. } => {}
        }
    }
    out
}

/// The whole table, replacing the run's previous one in one transaction (creating it
/// first makes the delete valid when there was none).
pub fn table(run: &str, rules: &str) -> String {
    format!(
        "table inet chaos_{run}\ndelete table inet chaos_{run}\ntable inet chaos_{run} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n{rules}  }}\n}}\n"
    )
}

/// Keeps every host's table in step with the links into it: one task per host, which
/// re-renders and applies whenever one of those links changes mode. The tasks hold the
/// hosts weakly, so the run's own handle decides when they are cleared.
pub fn follow(
    hosts: &Arc<SshHosts>,
    links: BTreeMap<(u64, u64), watch::Receiver<LinkMode>>,
) -> Vec<JoinHandle<()>> {
    let addr = |id: u64| hosts.remotes[&id].target.addr;
    let mut by_host: BTreeMap<u64, Vec<(IpAddr, watch::Receiver<LinkMode>)>> = BTreeMap::new();
    for ((from, to), mode) in links {
        by_host.entry(to).or_default().push((addr(from), mode));
    }
    let mut tasks = Vec::new();
    for (to, into) in by_host {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut modes = Vec::new();
        for (from, mode) in into {
            let mut watch = mode.clone();
            modes.push((from, mode));
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while watch.changed().await.is_ok() {
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            }));
        }
        let hosts: Weak<SshHosts> = Arc::downgrade(hosts);
        tasks.push(tokio::spawn(async move {
            let mut applied = render(&[]);
            while rx.recv().await.is_some() {
                while rx.try_recv().is_ok() {}
                let now: Vec<(IpAddr, LinkMode)> =
                    modes.iter().map(|(a, m)| (*a, *m.borrow())).collect();
                let rules = render(&now);
                if rules == applied {
                    continue;
                }
                let Some(h) = hosts.upgrade() else { return };
                let r = rules.clone();
                match tokio::task::spawn_blocking(move || h.apply_firewall(to, &r)).await {
                    Ok(Ok(())) => applied = rules,
                    Ok(Err(e)) => {
                        crate::console::say!("warning: firewall of node {to} not changed: {e:#}")
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_resets_tcp_and_drops_the_rest_black_hole_drops_up_passes() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let rules = render(&[
            (a, LinkMode::Cut),
            (b, LinkMode::BlackHole),
            (
                c,
                LinkMode::Delay {
                    ms: 5,
                    jitter_ms: 0,
                },
            ),
        ]);
        assert_eq!(
            rules,
            "    ip saddr 10.0.0.1 meta l4proto tcp reject with tcp reset\n    ip saddr 10.0.0.1 drop\n    ip saddr 10.0.0.2 drop\n"
        );
        let t = table("cr00aa11", &rules);
        assert!(t.starts_with("table inet chaos_cr00aa11\ndelete table inet chaos_cr00aa11\n"));
        assert!(t.contains("hook input"));
        assert_eq!(render(&[(a, LinkMode::Up)]), "");
    }
}
