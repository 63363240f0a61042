//! `chaos-runner test --hosts`: nodes on "remote" hosts over ssh, exactly as against real
//! machines. The hosts are network namespaces this test makes, each running its own sshd
//! with a key made for the test, joined by a bridge the test makes (addresses of
//! 198.19.0.0/16 only, no route out). Needs root, sshd and nft (CI installs
//! openssh-server and nftables and sets CHAOS_REQUIRE_SSH, which turns a skip into a
//! failure). The lab is removed on every exit path (its guard's drop).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{assert_refused, can_run, chaos_test, raft_node, wait_for, BIN};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("PATH=$PATH:/usr/sbin:/sbin command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn lab_possible() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ok = root && have("sshd") && have("ssh") && have("nft") && have("ssh-keygen");
    can_run(
        ok,
        "CHAOS_REQUIRE_SSH",
        "root, openssh-server and nftables (for the ssh lab)",
    )
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh_out(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Three hosts (namespaces with sshd) on a bridge.
struct Lab {
    dir: tempfile::TempDir,
    tag: String,
    subnet: u8,
    namespaces: Vec<String>,
    sshd: Vec<Child>,
}

impl Lab {
    fn up(tag: &str, subnet: u8) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut lab = Lab {
            dir,
            tag: tag.to_string(),
            subnet,
            namespaces: Vec::new(),
            sshd: Vec::new(),
        };
        let d = lab.dir.path().to_path_buf();
        for key in ["client_key", "host_key"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(st.success());
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "HostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n",
                d = d.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let bridge = lab.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("198.19.{subnet}.254/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 1..=3 {
            let ns = format!("sshlab-{tag}-{i}");
            ip(&["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            let veth = format!("vsl{tag}{i}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", &bridge, "up"]);
            let addr = format!("198.19.{subnet}.{i}");
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let sshd = Command::new("ip")
                .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .args(["-o", &format!("ListenAddress={addr}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            lab.sshd.push(sshd);
        }
        lab.wait_for_sshd();
        lab
    }

    fn bridge(&self) -> String {
        format!("brlab{}", self.tag)
    }

    fn hosts(&self) -> String {
        (1..=3)
            .map(|i| format!("root@198.19.{}.{i}", self.subnet))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn wait_for_sshd(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 1..=3 {
            let addr = format!("198.19.{}.{i}:22", self.subnet);
            while std::net::TcpStream::connect(&addr).is_err() {
                assert!(Instant::now() < deadline, "sshd on {addr} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn test_command(&self, store: &Path, args: &[&str]) -> Command {
        let key = self.dir.path().join("client_key").display().to_string();
        let remote = self.remote_dir();
        let hosts = self.hosts();
        let mut all = vec![
            "--hosts",
            &hosts,
            "--ssh-key",
            &key,
            "--ssh-option",
            "StrictHostKeyChecking=no",
            "--ssh-option",
            "UserKnownHostsFile=/dev/null",
            "--remote-dir",
            &remote,
        ];
        all.extend_from_slice(args);
        chaos_test(store, &raft_node(), &all)
    }

    /// Where runs keep their folders "on the hosts" (one filesystem here).
    fn remote_dir(&self) -> String {
        format!("{}/remote", self.dir.path().display())
    }

    /// What runs left on the hosts: run folders, firewall tables, node processes.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = std::fs::read_dir(self.remote_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| format!("folder {}", e.path().display()))
                    .collect()
            })
            .unwrap_or_default();
        for ns in &self.namespaces {
            let tables = sh_out("ip", &["netns", "exec", ns, "nft", "list", "tables"]);
            left.extend(
                tables
                    .lines()
                    .filter(|t| t.contains("chaos_"))
                    .map(|t| format!("{ns}: {t}")),
            );
        }
        let remote = self.remote_dir();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with(&remote) {
                left.push(format!("process {cmd}"));
            }
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.sshd {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .status();
    }
}

fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).unwrap()
}

#[test]
fn a_chaos_test_over_ssh_is_valid_with_every_fault_and_leaves_nothing() {
    if !lab_possible() {
        return;
    }
    let lab = Lab::up("a", 244);
    let store = tempfile::tempdir().unwrap();
    let out = lab
        .test_command(
            store.path(),
            &[
                "--time-limit",
                "12",
                "--nemesis",
                "kill,pause,partition",
                "--nemesis-interval",
                "1",
                "--seed",
                "5",
            ],
        )
        .output()
        .unwrap();
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{console}");
    assert_eq!(out.status.code(), Some(0), "valid expected");
    assert!(
        console.contains("hosts (ssh): n1=198.19.244.1"),
        "{console}"
    );
    let run = latest(store.path());
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["net"], "ssh");
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    for f in ["stop-kill", "stop-pause", "stop-partition"] {
        assert!(history.contains(&format!("\"f\":\"{f}\"")), "no {f}");
    }
    // Logs and data came back from the hosts.
    for i in 1..=3 {
        let log = std::fs::read_to_string(run.join(format!("nodes/n{i}.log"))).unwrap();
        assert!(
            log.contains(&format!("transport_addr=198.19.244.{i}:7000")),
            "{log}"
        );
        assert!(run.join(format!("nodes/n{i}/state.bin")).is_file());
    }
    wait_for("nothing left on the hosts", Duration::from_secs(10), || {
        lab.leftovers().is_empty()
    });
}

#[test]
fn nodes_die_with_a_killed_runner_and_the_next_run_clears_its_folder() {
    if !lab_possible() {
        return;
    }
    let lab = Lab::up("b", 245);
    let store = tempfile::tempdir().unwrap();
    let mut child = lab
        .test_command(store.path(), &["--time-limit", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nodes_up = || {
        lab.leftovers()
            .iter()
            .filter(|l| l.starts_with("process ") && l.contains("--id"))
            .count()
            == 3
    };
    wait_for(
        "three nodes on the hosts",
        Duration::from_secs(60),
        nodes_up,
    );
    child.kill().unwrap(); // SIGKILL: no clean-up code runs.
    child.wait().unwrap();
    wait_for(
        "the nodes to die on their hosts",
        Duration::from_secs(15),
        || !lab.leftovers().iter().any(|l| l.starts_with("process ")),
    );
    assert!(
        lab.leftovers().iter().any(|l| l.starts_with("folder ")),
        "the dead run's folder stays until a run clears it"
    );
    let out = lab
        .test_command(store.path(), &["--time-limit", "3", "--nemesis", "none"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("nothing left on the hosts", Duration::from_secs(10), || {
        lab.leftovers().is_empty()
    });
    // Nor here: the dead run's lock and control sockets went with it.
    let state = std::fs::read_dir("/run/chaos-runner").unwrap();
    let dead_runs_files: Vec<String> = state
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-ssh-"))
        .filter(|n| {
            let lock = format!("/run/chaos-runner/{}.lock", &n[..8]);
            std::fs::File::open(&lock).is_err()
        })
        .collect();
    assert!(dead_runs_files.is_empty(), "{dead_runs_files:?}");
}

#[test]
fn unreachable_hosts_and_faults_ssh_cannot_make_are_clear_errors() {
    let store = tempfile::tempdir().unwrap();
    assert_refused(
        store.path(),
        [
            (vec!["--hosts", "127.0.0.1,127.0.0.2"], "at least 3 hosts"),
            (
                vec!["--hosts", "127.0.0.1,127.0.0.1,127.0.0.2"],
                "names 127.0.0.1 twice",
            ),
            (
                vec![
                    "--hosts",
                    "127.0.0.1,127.0.0.2,127.0.0.3",
                    "--nemesis",
                    "latency",
                ],
                "does not delay",
            ),
            (
                vec!["--hosts", "127.0.0.1,127.0.0.2,127.0.0.3", "--net", "netns"],
                "cannot be used with",
            ),
        ],
    );
    // A host nothing answers on: a clear error naming it, quickly, and nothing left.
    let out = Command::new(BIN)
        .arg("test")
        .arg("--store")
        .arg(store.path())
        .arg("--raft-node")
        .arg(raft_node())
        .args([
            "--hosts",
            "nobody@127.0.0.1:1,nobody@127.0.0.2:1,nobody@127.0.0.3:1",
            "--nemesis",
            "kill",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot reach nobody@127.0.0.1"), "{err}");
}
