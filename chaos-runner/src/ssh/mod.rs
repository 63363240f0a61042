//! `--hosts`: nodes on other machines, driven over SSH with the OpenSSH client.
//!
//! One control connection per host (`ssh -M`, a child of the runner with its death
//! signal) carries every later command, so a signal or a firewall change costs a round
//! trip, not a handshake. A node is started by a session that stays open for the node's
//! life: on the host, a small shell script starts the node in a session of its own
//! (`setsid`), reports its pid, reports its exit status when it ends, and kills its whole
//! process group when the session's input closes. The runner holds that input, so if the
//! runner dies (even by SIGKILL), its ssh clients die with it, the inputs close, and the
//! nodes die on their hosts too.
//!
//! Partitions are nftables rules on the receiving host (a table per run,
//! `inet chaos_<run>`, replaced atomically on every change, deleted at the end); a
//! table left by a dead run is deleted by the next run that reaches the host.

pub mod firewall;
mod plan;

pub use plan::{SshArgs, SshPlan, SshTarget};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::run_lock::{self, RunLock};

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One host of the run, reached through its control connection.
pub struct Remote {
    pub id: u64,
    pub target: SshTarget,
    socket: PathBuf,
    base_args: Vec<String>,
    /// This node's folder on the host: `bin/`, `data/`, `log`.
    pub dir: String,
    /// The server binary on the host.
    pub bin: String,
    /// `sudo -n ` when the login is not root (for nft), else empty.
    sudo: &'static str,
    master: Mutex<Child>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} on {}", self.id, self.target.destination())
    }
}

impl Remote {
    /// An ssh command through the control connection, running `script` on the host.
    fn command(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(&self.base_args)
            .arg("-S")
            .arg(&self.socket)
            .args(["-o", "ControlMaster=no"])
            .arg(self.target.destination())
            .arg(script);
        c
    }

    /// Runs `script` on the host with `input` on its stdin; its stdout, or an error with
    /// what it said.
    pub fn run(&self, script: &str, input: &[u8]) -> Result<String> {
        let mut child = self
            .command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run ssh (install openssh-client)")?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        if !out.status.success() {
            bail!(
                "on {}: `{script}` failed ({}): {}",
                self.target.host,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The node's log on the host.
    pub fn log(&self) -> String {
        format!("{}/log", self.dir)
    }

    /// The node's data folder on the host.
    pub fn data(&self) -> String {
        format!("{}/data", self.dir)
    }

    /// Copies the node's log and data folder into `log` and `data_dir` here.
    pub fn fetch(&self, log: &Path, data_dir: &Path) -> Result<()> {
        let text = self.run(
            &format!("cat {} 2>/dev/null; true", quote(&self.log())),
            b"",
        )?;
        std::fs::write(log, text)?;
        std::fs::create_dir_all(data_dir)?;
        let out = self
            .command(&format!("tar -C {} -cf - .", quote(&self.data())))
            .stderr(Stdio::null())
            .output()?;
        let mut untar = Command::new("tar")
            .arg("-xf")
            .arg("-")
            .arg("-C")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .spawn()
            .context("cannot run tar")?;
        untar.stdin.take().expect("piped").write_all(&out.stdout)?;
        untar.wait()?;
        Ok(())
    }

    /// The last `lines` lines of the node's log on the host.
    pub fn log_tail(&self, lines: usize) -> String {
        self.run(
            &format!("tail -n {lines} {} 2>/dev/null; true", quote(&self.log())),
            b"",
        )
        .unwrap_or_else(|e| format!("(cannot read the log on {}: {e:#})", self.target.host))
    }

    /// Runs an idempotent `script`, again after a short wait if ssh itself failed (a
    /// dropped connection, a busy host): up to three tries.
    pub fn run_retry(&self, script: &str, input: &[u8]) -> Result<String> {
        let mut tries = 0;
        loop {
            match self.run(script, input) {
                Ok(out) => return Ok(out),
                Err(e) if tries == 2 => return Err(e),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100 * tries));
                }
            }
        }
    }

    /// Sends `sig` (KILL, STOP, CONT, TERM) to the process group `pgid` on the host.
    pub fn signal(&self, pgid: i32, sig: &str) -> Result<()> {
        self.run_retry(&format!("kill -{sig} -- -{pgid} 2>/dev/null; true"), b"")
            .map(drop)
            .with_context(|| format!("cannot send SIG{sig} to node {}", self.id))
    }

    /// Starts `argv` (the binary first) as a node on the host, its output appended to its
    /// log; see the module docs for how it dies with the runner.
    pub fn start_node(
        &self,
        argv: &[String],
        spawn: impl Fn(Command) -> std::io::Result<Child>,
    ) -> Result<RemoteNode> {
        let cmdline: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        let script = format!(
            "exec 3<&0; cd {dir} || exit 1; \
             setsid {cmd} >>{log} 2>&1 </dev/null & pid=$!; echo \"pid $pid\"; \
             (read _ <&3; kill -KILL -- -$pid) >/dev/null 2>&1 & w=$!; \
             wait $pid; echo \"exit $?\"; kill $w 2>/dev/null",
            dir = quote(&self.dir),
            cmd = cmdline.join(" "),
            log = quote(&self.log()),
        );
        let mut cmd = self.command(&script);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut session = spawn(cmd).context("cannot run ssh (install openssh-client)")?;
        let stdout = session.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let exit = Arc::new(Mutex::new(None));
        let exit_w = exit.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(pid) = line.strip_prefix("pid ") {
                    let _ = tx.send(pid.trim().parse::<i32>().ok());
                } else if let Some(status) = line.strip_prefix("exit ") {
                    *exit_w.lock().expect("exit") = Some(format!("exit status: {status}"));
                    return;
                }
            }
            // The session ended without a status: the host or the connection is gone.
            let mut e = exit_w.lock().expect("exit");
            if e.is_none() {
                *e = Some("the ssh session ended".into());
            }
        });
        let pid = rx
            .recv_timeout(Duration::from_secs(15))
            .ok()
            .flatten()
            .with_context(|| format!("node {} did not start on {}", self.id, self.target.host))?;
        Ok(RemoteNode {
            pgid: pid,
            session,
            exit,
        })
    }
}

/// A node running on a host.
pub struct RemoteNode {
    /// Its pid, which is also its process group (it leads a session of its own).
    pub pgid: i32,
    /// The ssh session that started it; closing its input kills the node.
    session: Child,
    exit: Arc<Mutex<Option<String>>>,
}

impl RemoteNode {
    /// The local ssh client's pid (registered as a child of the runner).
    pub fn session_pid(&self) -> u32 {
        self.session.id()
    }

    /// How the node ended, once it has.
    pub fn exited(&self) -> Option<String> {
        self.exit.lock().expect("exit").clone()
    }

    /// Waits (up to `within`) for the node to end.
    pub fn wait(&self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.exited() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RemoteNode {
    fn drop(&mut self) {
        // Closing the session's input makes the host kill the node's group.
        drop(self.session.stdin.take());
        let _ = self.session.kill();
        let _ = self.session.wait();
    }
}

/// The hosts of one run.
pub struct SshHosts {
    run: String,
    pub remotes: BTreeMap<u64, Arc<Remote>>,
    /// Held for the run's life: tells a later run that this run's tables are not stale.
    _lock: RunLock,
}

impl SshHosts {
    /// Opens a control connection to each host (node `i` on `plan.hosts[i-1]`), checks
    /// what the hosts need, removes what dead runs left there, and puts the server
    /// binary (`local_bin`, unless `--remote-bin`) in each node's folder.
    pub fn connect(
        plan: &SshPlan,
        local_bin: &Path,
        spawn: impl Fn(Command) -> std::io::Result<Child>,
    ) -> Result<SshHosts> {
        if Command::new("ssh").arg("-V").output().is_err() {
            bail!("--hosts needs the OpenSSH client: apt-get install openssh-client");
        }
        // Locks and control sockets that runs killed here left behind.
        run_lock::clean_dead_files()?;
        let lock = RunLock::new()?;
        let run = lock.run().to_string();
        let mut base_args: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-o".into(),
            "ServerAliveInterval=5".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ];
        if let Some(k) = &plan.key {
            base_args.push("-i".into());
            base_args.push(k.display().to_string());
        }
        for o in &plan.options {
            base_args.push("-o".into());
            base_args.push(o.clone());
        }
        let mut remotes = BTreeMap::new();
        for (i, target) in plan.hosts.iter().enumerate() {
            let id = i as u64 + 1;
            let remote = open(id, target, &base_args, &run, plan, &spawn)?;
            remotes.insert(id, Arc::new(remote));
        }
        let hosts = SshHosts {
            run,
            remotes,
            _lock: lock,
        };
        for r in hosts.remotes.values() {
            hosts.prepare(r, plan, local_bin)?;
        }
        Ok(hosts)
    }

    /// Checks the host's tools, clears dead runs' tables, makes the node's folder and
    /// uploads the binary.
    fn prepare(&self, r: &Remote, plan: &SshPlan, local_bin: &Path) -> Result<()> {
        let mut need = vec!["setsid", "tar"];
        if plan.firewall {
            need.push("nft");
        }
        let missing = r.run(
            &format!(
                "PATH=$PATH:/usr/sbin:/sbin; for t in {}; do command -v $t >/dev/null || echo $t; done",
                need.join(" ")
            ),
            b"",
        )?;
        let missing: Vec<&str> = missing.split_whitespace().collect();
        if !missing.is_empty() {
            bail!(
                "host {} lacks {}: install util-linux, tar and nftables there",
                r.target.host,
                missing.join(", ")
            );
        }
        self.clear_dead_dirs(r, plan)?;
        if plan.firewall {
            if !r.sudo.is_empty() {
                r.run("sudo -n true", b"").with_context(|| {
                    format!(
                        "partitions need root on {} (or sudo without a password)",
                        r.target.host
                    )
                })?;
            }
            self.clear_dead_tables(r)?;
        }
        r.run(
            &format!("mkdir -p {}/data {}/bin", quote(&r.dir), quote(&r.dir)),
            b"",
        )?;
        if plan.remote_bin.is_none() {
            let bytes = std::fs::read(local_bin)
                .with_context(|| format!("cannot read {}", local_bin.display()))?;
            r.run(
                &format!("cat > {b} && chmod +x {b}", b = quote(&r.bin)),
                &bytes,
            )
            .with_context(|| format!("cannot upload the server to {}", r.target.host))?;
        }
        Ok(())
    }

    /// Removes the folders that runs which died here (SIGKILL) left on the host.
    fn clear_dead_dirs(&self, r: &Remote, plan: &SshPlan) -> Result<()> {
        let root = quote(&plan.remote_dir.display().to_string());
        let listed = r.run(&format!("ls {root} 2>/dev/null; true"), b"")?;
        for name in listed.split_whitespace() {
            if run_lock::is_run_name(name) && name != self.run && RunLock::is_dead(name)? {
                r.run(&format!("rm -rf {root}/{name}"), b"")?;
            }
        }
        Ok(())
    }

    /// Deletes `chaos_<run>` tables on the host whose run is not alive here.
    fn clear_dead_tables(&self, r: &Remote) -> Result<()> {
        let tables = r.run(&format!("{}nft list tables", r.sudo), b"")?;
        for t in tables.lines() {
            let Some(name) = t.trim().strip_prefix("table inet chaos_") else {
                continue;
            };
            // Only names this tool makes (a lock file's name is built from it).
            if !run_lock::is_run_name(name) {
                continue;
            }
            if name != self.run && RunLock::is_dead(name)? {
                r.run(
                    &format!("{}nft delete table inet chaos_{name}", r.sudo),
                    b"",
                )?;
            }
        }
        Ok(())
    }

    /// Replaces the run's firewall table on node `id`'s host with `rules` (see
    /// [`firewall::render`]).
    pub fn apply_firewall(&self, id: u64, rules: &str) -> Result<()> {
        let r = &self.remotes[&id];
        let script = firewall::table(&self.run, rules);
        r.run_retry(&format!("{}nft -f -", r.sudo), script.as_bytes())?;
        Ok(())
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for r in self.remotes.values() {
            let _ = r.run(
                &format!(
                    "{}nft delete table inet chaos_{} 2>/dev/null; rm -rf {}; rmdir {} 2>/dev/null; true",
                    r.sudo,
                    self.run,
                    quote(&r.dir),
                    quote(r.dir.rsplit_once('/').map_or(&r.dir, |(p, _)| p)),
                ),
                b"",
            );
            let mut m = r.master.lock().expect("master");
            let _ = m.kill();
            let _ = m.wait();
            // A killed master leaves its socket behind.
            let _ = std::fs::remove_file(&r.socket);
        }
    }
}

/// Opens the control connection to one host and waits until it is up.
fn open(
    id: u64,
    target: &SshTarget,
    base_args: &[String],
    run: &str,
    plan: &SshPlan,
    spawn: &impl Fn(Command) -> std::io::Result<Child>,
) -> Result<Remote> {
    let socket = run_lock::state_dir().join(format!("{run}-ssh-{id}"));
    let mut base = base_args.to_vec();
    if let Some(p) = target.port {
        base.push("-p".into());
        base.push(p.to_string());
    }
    let mut cmd = Command::new("ssh");
    cmd.args(&base)
        .args(["-M", "-N", "-S"])
        .arg(&socket)
        .arg(target.destination())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut master = spawn(cmd).context("cannot run ssh (install openssh-client)")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = master.try_wait() {
            let mut said = String::new();
            if let Some(mut e) = master.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut said);
            }
            bail!(
                "cannot reach {} over ssh ({status}): {}",
                target.destination(),
                said.trim()
            );
        }
        if socket.exists() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = master.kill();
            bail!(
                "ssh to {} did not connect within 15 s",
                target.destination()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let root_login =
        target.user.as_deref() == Some("root") || (target.user.is_none() && run_lock::is_root());
    let dir = format!("{}/{run}/n{id}", plan.remote_dir.display());
    let bin = match &plan.remote_bin {
        Some(b) => b.display().to_string(),
        None => format!("{dir}/bin/server"),
    };
    Ok(Remote {
        id,
        target: target.clone(),
        socket,
        base_args: base,
        dir,
        bin,
        sudo: if root_login { "" } else { "sudo -n " },
        master: Mutex::new(master),
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn targets_parse_with_user_and_port() {
        let t = SshTarget::parse("root@10.1.2.3:2222").unwrap();
        assert_eq!(t.user.as_deref(), Some("root"));
        assert_eq!(t.port, Some(2222));
        assert_eq!(t.addr, "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(t.destination(), "root@10.1.2.3");
        let t = SshTarget::parse("127.0.0.1").unwrap();
        assert_eq!((t.user, t.port), (None, None));
        for bad in ["@h", "root@", "h:notaport", "root@h:99999"] {
            assert!(SshTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "with space", "it's", "$(rm -rf /)", "", "a\"b"] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
