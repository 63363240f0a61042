//! `--target command`: any server, started from a command template the user gives
//! (`--node-cmd`), so that testing a server in any language needs no Rust. The runner
//! fills in each node's id, addresses, ports and folder, runs the command with `sh -c`
//! in the node's own process group (and namespace, with `--net netns`), and kills,
//! pauses and stops it by signals to that group, as it does every server.
//!
//! Which faults the cluster can undergo follows from the template: the per-link proxies
//! can only cut or slow a link when each node is told its own address for each peer
//! (`{peers}` or `{peer_addr:K}`); otherwise partitions and latency need `--net netns`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use checker::fault::FaultKind;
use workloads::client::Dialect;

use super::protocol::{BoxFuture, FileRole, Server};
use crate::cluster::spec::NodeSpec;
use crate::tls::ApiAccess;

/// The placeholders a template may use, with what each becomes (for `--help` and
/// errors).
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("id", "the node's id, 1 to n"),
    ("n", "how many nodes the cluster has"),
    (
        "listen",
        "the address the node listens on (127.0.0.1, or its own in netns)",
    ),
    ("api_port", "the port its clients connect to"),
    ("peer_port", "the port its peers connect to"),
    (
        "aux_port",
        "a third port, for servers that need one (ZooKeeper's elections)",
    ),
    ("data_dir", "its data folder (kept in the run)"),
    (
        "peers",
        "ID=HOST:PEER_PORT,... for every other node, as this node must dial it (through \
         that link's proxy with --net proxy)",
    ),
    (
        "members",
        "ID=HOST:PEER_PORT,... for every node including itself, at their own addresses",
    ),
    (
        "members_aux",
        "ID=HOST:AUX_PORT,... for every node including itself",
    ),
    (
        "peer_addr:K",
        "HOST:PEER_PORT that this node must dial for node K (its proxy with --net proxy)",
    ),
];

/// A command with `{placeholders}`, checked when the flags are read.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    /// The placeholder names it uses (`peer_addr:K` as `peer_addr`).
    used: BTreeSet<String>,
    /// The highest K of its `{peer_addr:K}` (0 without one): a node the cluster must
    /// have, or the address would render empty.
    max_peer: u64,
}

impl Template {
    /// Parses `text`, refusing unknown placeholders and unbalanced braces (`{{` and
    /// `}}` are literal braces).
    pub fn parse(flag: &str, text: &str) -> Result<Template> {
        let mut used = BTreeSet::new();
        let mut max_peer = 0;
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
            if after.starts_with(c as char) {
                rest = &after[1..];
                continue;
            }
            if c == b'}' {
                bail!("{flag}: a `}}` without its `{{` in {text:?} (write `}}}}` for a brace)");
            }
            let end = after
                .find('}')
                .with_context(|| format!("{flag}: a `{{` that is never closed in {text:?}"))?;
            let name = &after[..end];
            let base = match name.split_once(':').map(|(p, k)| (p, k.parse::<u64>())) {
                Some(("peer_addr", Ok(k))) if k >= 1 => {
                    max_peer = max_peer.max(k);
                    "peer_addr"
                }
                _ => name,
            };
            let known = base == "peer_addr"
                || (base != "peer_addr:K" && PLACEHOLDERS.iter().any(|(p, _)| *p == base));
            if !known {
                let known: Vec<String> = PLACEHOLDERS
                    .iter()
                    .map(|(p, _)| format!("{{{p}}}"))
                    .collect();
                bail!(
                    "{flag}: unknown placeholder {{{name}}}; known: {}",
                    known.join(", ")
                );
            }
            used.insert(base.to_string());
            rest = &after[end + 1..];
        }
        Ok(Template {
            text: text.to_string(),
            used,
            max_peer,
        })
    }

    /// Refuses a `{peer_addr:K}` for a node the cluster of `nodes` does not have.
    pub fn check_nodes(&self, flag: &str, nodes: u64) -> Result<()> {
        if self.max_peer > nodes {
            bail!(
                "{flag}: {{peer_addr:{}}} names node {}, but the cluster has {nodes} nodes \
                 (--nodes)",
                self.max_peer,
                self.max_peer
            );
        }
        Ok(())
    }

    pub fn uses(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    /// The command for node `spec` of a cluster of `members` (every node's spec, in
    /// id order).
    pub fn render(&self, spec: &NodeSpec, members: &[(u64, String, String)]) -> String {
        let mut out = String::new();
        let mut rest = self.text.as_str();
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
            if after.starts_with(c as char) {
                out.push(c as char);
                rest = &after[1..];
                continue;
            }
            let end = after.find('}').expect("checked by parse");
            out.push_str(&value(&after[..end], spec, members));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// `ID=ADDR,...`
fn joined(v: impl Iterator<Item = (u64, String)>) -> String {
    v.map(|(id, a)| format!("{id}={a}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What placeholder `name` becomes for node `spec`. `members`: (id, peer address, aux
/// address) of every node.
fn value(name: &str, spec: &NodeSpec, members: &[(u64, String, String)]) -> String {
    match name {
        "id" => spec.id.to_string(),
        "n" => members.len().to_string(),
        "listen" => spec.host.to_string(),
        "api_port" => spec.api_port.to_string(),
        "peer_port" => spec.transport_port.to_string(),
        "aux_port" => spec.monitor_port.to_string(),
        "data_dir" => spec.data_dir.display().to_string(),
        "peers" => joined(spec.peers.iter().cloned()),
        "members" => joined(members.iter().map(|(id, p, _)| (*id, p.clone()))),
        "members_aux" => joined(members.iter().map(|(id, _, a)| (*id, a.clone()))),
        other => {
            let k: u64 = other
                .strip_prefix("peer_addr:")
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            let own = members
                .iter()
                .find(|(id, ..)| *id == k)
                .map(|(_, p, _)| p.clone());
            spec.peers
                .iter()
                .find(|(id, _)| *id == k)
                .map(|(_, a)| a.clone())
                .or(own)
                .unwrap_or_default()
        }
    }
}

/// When a node counts as up.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Its client port accepts a TCP connection.
    Port,
    /// This command (a template) exits 0.
    Command(Template),
}

/// The command server: templates and what they imply.
#[derive(Debug, Clone)]
pub struct CommandServer {
    pub node_cmd: Template,
    /// Run once per node before its first start (to write a config file, say).
    pub setup: Option<Template>,
    pub env: Vec<(String, String)>,
    pub ready: Readiness,
    /// Exits 0 when the node leads; without it the runner does not know who leads, so
    /// "leader" targets hit a random node.
    pub leads: Option<Template>,
    /// Every node's (id, peer address, aux address), filled in as the specs are made.
    pub members: Vec<(u64, String, String)>,
}

impl CommandServer {
    /// Every node's addresses, once the runner has made their specs: what `{members}`
    /// and `{members_aux}` say.
    fn with_members(&self, specs: &[NodeSpec]) -> CommandServer {
        let mut s = self.clone();
        s.members = specs
            .iter()
            .map(|n| {
                (
                    n.id,
                    n.transport_addr(),
                    format!("{}:{}", n.host, n.monitor_port),
                )
            })
            .collect();
        s
    }
}

/// Runs `sh -c command` and says whether it exited 0 within `within`.
async fn succeeds(command: &str, within: Duration) -> bool {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    matches!(
        tokio::time::timeout(within, child.wait()).await,
        Ok(Ok(s)) if s.success()
    )
}

impl Server for CommandServer {
    fn args(&self, spec: &NodeSpec, _founding: bool) -> Vec<String> {
        vec!["-c".to_string(), self.node_cmd.render(spec, &self.members)]
    }

    /// The probe is a command (`cmd:`) or an address to connect to (`tcp:`).
    fn leads<'a>(&'a self, _access: &'a ApiAccess, probe: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if let Some(cmd) = probe.strip_prefix("cmd:") {
                return succeeds(cmd, Duration::from_secs(2)).await;
            }
            let addr = probe.strip_prefix("tcp:").unwrap_or(probe);
            matches!(
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await,
                Ok(Ok(_))
            )
        })
    }

    /// The leads command if there is one, else the readiness check.
    fn probe_addr(&self, spec: &NodeSpec) -> String {
        match (&self.leads, &self.ready) {
            (Some(t), _) | (None, Readiness::Command(t)) => {
                format!("cmd:{}", t.render(spec, &self.members))
            }
            (None, Readiness::Port) => format!("tcp:{}", spec.api_addr()),
        }
    }

    fn knows_leader(&self) -> bool {
        self.leads.is_some()
    }

    fn per_peer_addresses(&self) -> bool {
        self.node_cmd.uses("peers") || self.node_cmd.uses("peer_addr")
    }

    fn tls(&self) -> bool {
        false
    }

    /// The adapter (`--client-cmd`) speaks to it.
    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::Adapter)
    }

    /// Nothing is known of its files: `corrupt` needs a server that names them.
    fn durable_files(&self) -> &'static [(&'static str, FileRole)] {
        &[]
    }

    fn refuses(&self, kind: FaultKind) -> Option<&'static str> {
        (kind == FaultKind::Corrupt).then_some(
            "the runner does not know which of its files hold acknowledged data (use \
             lose-unsynced for what the disk loses)",
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    fn for_cluster(&self, specs: &[NodeSpec]) -> Option<std::sync::Arc<dyn Server>> {
        Some(std::sync::Arc::new(self.with_members(specs)))
    }

    fn setup(&self, spec: &NodeSpec) -> Option<String> {
        self.setup.as_ref().map(|t| t.render(spec, &self.members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(id: u64) -> NodeSpec {
        NodeSpec {
            id,
            transport_port: 7000 + id as u16,
            api_port: 8000 + id as u16,
            monitor_port: 9000 + id as u16,
            data_dir: PathBuf::from(format!("/d/n{id}")),
            log: PathBuf::from("/d/log"),
            peers: (1..=3)
                .filter(|&k| k != id)
                .map(|k| (k, format!("127.0.0.1:{}", 17000 + 10 * id + k)))
                .collect(),
            host: "127.0.0.1".parse().unwrap(),
            netns: None,
            remote: None,
            local_data: PathBuf::from("/d/n"),
            tls: None,
        }
    }

    #[test]
    fn templates_fill_in_each_node_and_refuse_unknown_names() {
        let members: Vec<(u64, String, String)> = (1..=3)
            .map(|k| {
                (
                    k,
                    format!("127.0.0.1:{}", 7000 + k),
                    format!("127.0.0.1:{}", 9000 + k),
                )
            })
            .collect();
        let t = Template::parse(
            "--node-cmd",
            "srv --id {id} of {n} --listen {listen}:{api_port} --data {data_dir} \
             --to3 {peer_addr:3} --peers {peers} --all {members} --elect {members_aux} {{x}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&spec(1), &members),
            "srv --id 1 of 3 --listen 127.0.0.1:8001 --data /d/n1 --to3 127.0.0.1:17013 \
             --peers 2=127.0.0.1:17012,3=127.0.0.1:17013 \
             --all 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
             --elect 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 {x}"
        );
        assert!(t.uses("peers") && t.uses("peer_addr") && !t.uses("aux_port"));
        for bad in ["x {idd}", "x {id", "x }", "{peer_addr:K}", "{peer_addr:0}"] {
            let e = Template::parse("--node-cmd", bad).unwrap_err().to_string();
            assert!(e.starts_with("--node-cmd: "), "{bad}: {e}");
        }
        let five = Template::parse("--node-cmd", "x {peer_addr:2} {peer_addr:5}").unwrap();
        assert!(five.check_nodes("--node-cmd", 5).is_ok());
        let e = five.check_nodes("--node-cmd", 3).unwrap_err().to_string();
        assert!(
            e.contains("{peer_addr:5} names node 5") && e.contains("3 nodes"),
            "{e}"
        );
        let e = Template::parse("--node-cmd", "{idd}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("{idd}") && e.contains("{peer_addr:K}"), "{e}");
    }
}
