//! The `--hosts` flags and what they resolve to: the hosts, and how to reach them.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// One `[user@]host[:port]` of `--hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The host's address, which its node listens on and its peers' firewalls name.
    pub addr: IpAddr,
}

impl SshTarget {
    pub fn parse(s: &str) -> Result<SshTarget> {
        let (user, rest) = match s.split_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => bail!("--hosts {s:?}: empty user name"),
            None => (None, s),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (
                h,
                Some(
                    p.parse::<u16>()
                        .with_context(|| format!("--hosts {s:?}: {p:?} is not a port"))?,
                ),
            ),
            _ => (rest, None),
        };
        if host.is_empty() {
            bail!("--hosts {s:?}: no host name");
        }
        let addr = match host.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => (host, 22)
                .to_socket_addrs()
                .with_context(|| format!("--hosts {s:?}: cannot resolve {host}"))?
                .map(|a| a.ip())
                .find(IpAddr::is_ipv4)
                .with_context(|| format!("--hosts {s:?}: {host} has no IPv4 address"))?,
        };
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port,
            addr,
        })
    }

    pub(super) fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// The flags of ssh mode, shared by `test` and `bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct SshArgs {
    /// Run the nodes on other machines over ssh, one node per host, instead of here:
    /// [USER@]HOST[:PORT],... (at least 3). The runner uploads the server (or uses
    /// --remote-bin), starts each node in a session of its own and copies logs and data
    /// back at the end; `test` also kills and pauses nodes by signal and partitions links
    /// with nftables on the hosts. Each host needs sshd, setsid and tar, and for
    /// partitions nftables and root (or passwordless sudo); nodes listen on the host's
    /// address, ports 7000 (peers) and 8000 (clients). The cluster has as many nodes as
    /// hosts (--nodes is not used).
    #[arg(long, value_name = "HOSTS")]
    pub hosts: Option<String>,
    /// --hosts: the private key ssh logs in with (default: ssh's own choice).
    #[arg(long, value_name = "FILE", requires = "hosts")]
    pub ssh_key: Option<PathBuf>,
    /// --hosts: an ssh option, repeatable, e.g. --ssh-option StrictHostKeyChecking=accept-new
    #[arg(long = "ssh-option", value_name = "KEY=VALUE", requires = "hosts")]
    pub ssh_options: Vec<String>,
    /// --hosts: the server binary already on every host (nothing is uploaded).
    #[arg(long, value_name = "PATH", requires = "hosts")]
    pub remote_bin: Option<PathBuf>,
    /// --hosts: where each run keeps its nodes' binary, data and logs on the hosts
    /// (removed at the end, after they are copied back).
    #[arg(
        long,
        default_value = "/tmp/chaos-runner",
        value_name = "DIR",
        requires = "hosts"
    )]
    pub remote_dir: PathBuf,
}

impl SshArgs {
    /// The plan these flags make (`None` without `--hosts`): at least three hosts, each
    /// once. `firewall`: whether the run partitions links (then hosts need nft).
    pub fn plan(&self, firewall: bool) -> Result<Option<SshPlan>> {
        let Some(list) = &self.hosts else {
            return Ok(None);
        };
        let hosts: Vec<SshTarget> = list
            .split(',')
            .map(|h| SshTarget::parse(h.trim()))
            .collect::<Result<_>>()?;
        if hosts.len() < 3 {
            bail!(
                "--hosts needs at least 3 hosts (one node each), got {}",
                hosts.len()
            );
        }
        for (i, h) in hosts.iter().enumerate() {
            if hosts[..i].iter().any(|o| o.addr == h.addr) {
                bail!("--hosts names {} twice: one node per host", h.addr);
            }
        }
        if self.remote_dir.is_relative() {
            bail!("--remote-dir must be an absolute path");
        }
        Ok(Some(SshPlan {
            hosts,
            key: self.ssh_key.clone(),
            options: self.ssh_options.clone(),
            remote_bin: self.remote_bin.clone(),
            remote_dir: self.remote_dir.clone(),
            firewall,
        }))
    }
}

/// How to reach the hosts (`--hosts`, `--ssh-key`, `--ssh-option`, `--remote-bin`,
/// `--remote-dir`).
#[derive(Debug, Clone)]
pub struct SshPlan {
    pub hosts: Vec<SshTarget>,
    pub key: Option<PathBuf>,
    pub options: Vec<String>,
    /// The server binary already on every host; `None`: upload the local one.
    pub remote_bin: Option<PathBuf>,
    pub remote_dir: PathBuf,
    /// Whether the run partitions links (then every host needs nft).
    pub firewall: bool,
}
