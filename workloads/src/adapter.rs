//! The client adapter protocol: a program in any language that speaks to the server
//! under test, driven over its stdin and stdout, one JSON object per line
//! (docs/client-protocol.md is the specification; this is the runner's side).
//!
//! Each adapter process serves one logical client at a time: the runner hands an
//! operation to an idle adapter, or starts a new one, and takes the invoke time as it
//! writes the line and the completion time as it reads the answer. An adapter that
//! crashes, hangs past the deadline or writes anything but the answer it owes is killed
//! and never used again; its operation is unknown (`info`) if it could have changed
//! anything, and failed if it was a read. The runner retires the logical process of an
//! unknown operation, so the next operation runs under a new process id, on a new
//! adapter process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::client::{Answer, BoxFuture, Client, FailReason, NodeApi, Reply, Route};
use crate::generator::{Func, OpSpec};

/// The longest line an adapter may write: a whole set's read fits many times over, and
/// a runaway adapter cannot make the runner buffer without bound.
const MAX_LINE: usize = 16 << 20;

/// How to start adapters and what to tell them.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    /// The command, run by `sh -c` (so it may be a pipeline or have arguments).
    pub command: String,
    /// The cluster's nodes and their client addresses, sent in the handshake.
    pub nodes: Vec<NodeApi>,
    /// The workload's name (register, kv, set, queue), sent in the handshake.
    pub workload: String,
    /// Where each adapter's stderr goes: `client-K.stderr` in this folder.
    pub stderr_dir: PathBuf,
    /// How long an adapter may take to answer the handshake.
    pub ready_within: Duration,
    /// How long an operation may take (`--op-timeout`), sent in the handshake: an
    /// adapter that gives up a little sooner answers instead of being killed.
    pub op_timeout: Duration,
}

/// One running adapter process.
struct Adapter {
    /// Its number among every adapter the run started (the handshake's `client`).
    index: u64,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The runner's [`Client`] over adapter processes.
pub struct AdapterClient {
    spec: AdapterSpec,
    idle: Mutex<Vec<Adapter>>,
    started: AtomicU64,
    next_op: AtomicU64,
    /// Adapters that failed to start since the last one that did: each failure doubles
    /// the wait before the next try (to a second), so a broken command does not start
    /// thousands of processes.
    failed_starts: AtomicU64,
}

/// Why an adapter could not be used; the text names the adapter and its stderr file.
#[derive(Debug)]
struct Broken(String);

impl AdapterClient {
    pub fn new(spec: AdapterSpec) -> AdapterClient {
        AdapterClient {
            spec,
            idle: Mutex::new(Vec::new()),
            started: AtomicU64::new(0),
            next_op: AtomicU64::new(1),
            failed_starts: AtomicU64::new(0),
        }
    }

    /// Starts one adapter and keeps it for the first operation: before a run, so that
    /// an adapter that cannot start stops the run with why, instead of failing every
    /// operation.
    pub async fn check(&self, deadline: Instant) -> Result<(), String> {
        let adapter = self.start(deadline).await.map_err(|Broken(why)| why)?;
        self.idle.lock().expect("not poisoned").push(adapter);
        Ok(())
    }

    /// How many adapter processes the run has started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    fn stderr_path(&self, index: u64) -> PathBuf {
        self.spec.stderr_dir.join(format!("client-{index}.stderr"))
    }

    /// Starts adapter number `index` and waits for its `ready`, until `deadline`.
    async fn start(&self, deadline: Instant) -> Result<Adapter, Broken> {
        let index = self.started.fetch_add(1, Ordering::Relaxed);
        let err_path = self.stderr_path(index);
        let named = |what: String| Broken(format!("adapter {index}: {what}"));
        std::fs::create_dir_all(&self.spec.stderr_dir).map_err(|e| {
            named(format!(
                "cannot create {}: {e}",
                self.spec.stderr_dir.display()
            ))
        })?;
        let stderr = std::fs::File::create(&err_path)
            .map_err(|e| named(format!("cannot create {}: {e}", err_path.display())))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&self.spec.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        // A process group of its own, so that killing it kills what `sh` started too;
        // and `sh` dies with the runner, however the runner ends (what it started then
        // reads the end of its input).
        // SAFETY: setpgid and prctl are async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setpgid(0, 0) != 0 || libc_prctl_pdeathsig() != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| named(format!("cannot start `sh -c {}`: {e}", self.spec.command)))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut adapter = Adapter {
            index,
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let nodes: Vec<Value> = self
            .spec
            .nodes
            .iter()
            .map(|n| json!({"id": n.id, "addr": n.addr}))
            .collect();
        let hello = json!({
            "type": "init",
            "client": index,
            "workload": self.spec.workload,
            "nodes": nodes,
            "op_timeout_ms": self.spec.op_timeout.as_millis() as u64,
        });
        let ready_by = deadline.min(Instant::now() + self.spec.ready_within);
        let answer = adapter.exchange(&hello, ready_by).await;
        match answer {
            Ok(v) if v["type"] == "ready" => Ok(adapter),
            Ok(v) => Err(self
                .broken(
                    adapter,
                    format!("answered the handshake with {v}, not {{\"type\":\"ready\"}}"),
                )
                .await),
            Err(why) => Err(self
                .broken(adapter, format!("{why} before it was ready"))
                .await),
        }
    }

    /// Kills `adapter` and says why it is no longer used, with its exit status and the
    /// last line of its stderr.
    async fn broken(&self, mut adapter: Adapter, why: String) -> Broken {
        adapter.kill();
        let status = tokio::time::timeout(Duration::from_secs(1), adapter.child.wait())
            .await
            .ok()
            .and_then(|s| s.ok());
        let path = self.stderr_path(adapter.index);
        let last = std::fs::read_to_string(&path).ok().and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        });
        let mut text = format!("adapter {}: {why}", adapter.index);
        if let Some(s) = status.filter(|s| !s.success() && s.code().is_some()) {
            text += &format!(" ({s})");
        }
        if let Some(l) = last {
            let l: String = l.chars().take(300).collect();
            text += &format!("; its stderr ends: {l}");
        }
        text += &format!(" [{}]", path.display());
        Broken(text)
    }

    #[cfg(test)]
    async fn perform(&self, op: &OpSpec, deadline: Instant) -> Answer {
        self.perform_routed(op, deadline).await.answer
    }

    /// Performs `op` on an adapter; the route is what the adapter said (`node`, `via`).
    async fn perform_routed(&self, op: &OpSpec, deadline: Instant) -> Reply {
        let certainly_not = |why: String| match op.f {
            Func::Read | Func::ReadAll => Answer::Fail(FailReason::ReadFailed, why),
            _ => Answer::Fail(FailReason::Unreachable, why),
        };
        let idle = self.idle.lock().expect("not poisoned").pop();
        let mut adapter = match idle {
            Some(a) => a,
            None => loop {
                match self.start(deadline).await {
                    Ok(a) => {
                        self.failed_starts.store(0, Ordering::Relaxed);
                        break a;
                    }
                    Err(Broken(why)) => {
                        let k = self.failed_starts.fetch_add(1, Ordering::Relaxed).min(4);
                        let pause = Duration::from_millis(60 << k);
                        // Nothing was sent: the operation certainly did not happen.
                        if Instant::now() + pause >= deadline {
                            tokio::time::sleep_until(deadline).await;
                            return Reply::unrouted(certainly_not(why));
                        }
                        tokio::time::sleep(pause).await;
                    }
                }
            },
        };
        let id = self.next_op.fetch_add(1, Ordering::Relaxed);
        let request = request(id, op);
        match adapter.exchange(&request, deadline).await {
            Ok(v) => match answer_of(op, id, &v) {
                Ok(answer) => {
                    self.idle.lock().expect("not poisoned").push(adapter);
                    Reply {
                        answer,
                        route: route_of(&v),
                    }
                }
                Err(why) => Reply::unrouted(self.lost(op, self.broken(adapter, why).await)),
            },
            Err(why) => Reply::unrouted(self.lost(op, self.broken(adapter, why).await)),
        }
    }

    /// The outcome of an operation whose adapter broke after it was sent: a read changed
    /// nothing, anything else may have happened.
    fn lost(&self, op: &OpSpec, Broken(why): Broken) -> Answer {
        match op.f {
            Func::Read | Func::ReadAll => Answer::Fail(FailReason::ReadFailed, why),
            _ => Answer::Info(why),
        }
    }
}

/// `PR_SET_PDEATHSIG = SIGKILL` for the calling (forked) process.
fn libc_prctl_pdeathsig() -> i32 {
    // SAFETY: prctl with PR_SET_PDEATHSIG reads only its integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    }
}

impl Drop for Adapter {
    /// Whatever the adapter started goes with it.
    fn drop(&mut self) {
        self.kill();
    }
}

impl Adapter {
    /// SIGKILL to its process group (`sh` and what it started).
    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: killpg has no memory preconditions.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.start_kill();
    }

    /// Writes `message` as one line and reads one line back, until `deadline`.
    async fn exchange(&mut self, message: &Value, deadline: Instant) -> Result<Value, String> {
        let mut line = message.to_string();
        line.push('\n');
        let work = async {
            self.stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("cannot write to it ({e}): it exited"))?;
            self.stdin
                .flush()
                .await
                .map_err(|e| format!("cannot write to it ({e})"))?;
            // At most MAX_LINE bytes and its newline are read: a runaway adapter is cut
            // off there, not buffered.
            let mut buf = Vec::new();
            let limit = MAX_LINE as u64 + 1;
            match (&mut self.stdout)
                .take(limit)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) => Err("exited".to_string()),
                Ok(_) if buf.last() != Some(&b'\n') && buf.len() as u64 >= limit => {
                    Err(format!("wrote a line longer than {MAX_LINE} bytes"))
                }
                Ok(_) => {
                    let l = String::from_utf8_lossy(&buf);
                    serde_json::from_str::<Value>(l.trim_end()).map_err(|e| {
                        let l: String = l.trim_end().chars().take(200).collect();
                        format!("wrote {l:?}, which is not JSON ({e})")
                    })
                }
                Err(e) => Err(format!("wrote something unreadable ({e})")),
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err("did not answer in time".to_string()),
        }
    }
}

/// Which node the adapter says served the operation: its optional `node` and `via`.
fn route_of(v: &Value) -> Route {
    Route {
        node: v["node"].as_u64(),
        via: v["via"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    }
}

/// The line that asks for `op`.
fn request(id: u64, op: &OpSpec) -> Value {
    let mut m = json!({"id": id, "f": op.f.name(false), "key": op.key});
    match op.f {
        Func::Write | Func::Add | Func::Append | Func::Txn => m["value"] = op.value.clone(),
        Func::Cas => {
            m["expected"] = op.value.get(0).cloned().unwrap_or(Value::Null);
            m["new"] = op.value.get(1).cloned().unwrap_or(Value::Null);
        }
        Func::Read | Func::ReadAll | Func::Delete => {}
    }
    m
}

/// What an adapter's answer `v` to operation `id` means; `Err` when it is not an answer
/// the protocol allows (the adapter is then not trusted again).
fn answer_of(op: &OpSpec, id: u64, v: &Value) -> Result<Answer, String> {
    if v["id"].as_u64() != Some(id) {
        return Err(format!(
            "answered {v} to operation {id}: the id does not match"
        ));
    }
    let error = || v["error"].as_str().unwrap_or("").to_string();
    match v["type"].as_str() {
        Some("ok") => Ok(Answer::Ok(match op.f {
            // What a write did is what it asked for; only reads return something.
            Func::Read => v.get("value").cloned().unwrap_or(Value::Null),
            Func::ReadAll => match v.get("value") {
                Some(Value::Array(a)) => Value::Array(a.clone()),
                Some(Value::Null) | None => Value::Array(Vec::new()),
                Some(other) => return Err(format!("answered a read-all with {other}, not a list")),
            },
            // A transaction answers its micro-operations, reads filled in.
            Func::Txn => match v.get("value") {
                Some(Value::Array(a)) if a.len() == op.value.as_array().map_or(0, Vec::len) => {
                    Value::Array(a.clone())
                }
                other => {
                    return Err(format!(
                        "answered a txn with {}, not its {} micro-operations",
                        other.unwrap_or(&Value::Null),
                        op.value.as_array().map_or(0, Vec::len)
                    ))
                }
            },
            _ => op.value.clone(),
        })),
        Some("fail") => {
            let reason = match (v["reason"].as_str(), op.f) {
                (Some("cas-mismatch"), _) => FailReason::CasMismatch,
                (Some("conflict"), Func::Txn) => FailReason::Conflict,
                (Some("unreachable"), _) => FailReason::Unreachable,
                (Some("rejected"), _) => FailReason::Rejected,
                (_, Func::Read | Func::ReadAll) => FailReason::ReadFailed,
                (_, Func::Txn) if !op.writes() => FailReason::ReadFailed,
                (None, Func::Cas) => FailReason::CasMismatch,
                _ => FailReason::NotApplied,
            };
            Ok(Answer::Fail(reason, error()))
        }
        Some("info") => Ok(match op.f {
            Func::Read | Func::ReadAll => Answer::Fail(FailReason::ReadFailed, error()),
            Func::Txn if !op.writes() => Answer::Fail(FailReason::ReadFailed, error()),
            _ => Answer::Info(error()),
        }),
        _ => Err(format!("answered {v}: \"type\" must be ok, fail or info")),
    }
}

impl Client for AdapterClient {
    fn invoke<'a>(
        &'a self,
        op: &'a OpSpec,
        deadline: Instant,
        _home: Option<usize>,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(self.perform_routed(op, deadline))
    }

    /// Adapters find the leader themselves.
    fn set_leader(&self, _index: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: Func, value: Value) -> OpSpec {
        OpSpec {
            f,
            key: "k1".to_string(),
            value,
        }
    }

    #[test]
    fn requests_name_each_argument() {
        let cas = request(7, &op(Func::Cas, json!(["1", "2"])));
        assert_eq!(
            cas,
            json!({"id": 7, "f": "cas", "key": "k1", "expected": "1", "new": "2"})
        );
        assert_eq!(
            request(8, &op(Func::Read, Value::Null)),
            json!({"id": 8, "f": "read", "key": "k1"})
        );
        assert_eq!(request(9, &op(Func::Add, json!("e")))["value"], "e");
    }

    #[test]
    fn a_transaction_is_asked_with_its_micro_operations_and_answered_with_them() {
        let t = OpSpec {
            f: Func::Txn,
            key: "list-append".into(),
            value: json!([["append", 1, 4], ["r", 1, null]]),
        };
        let req = request(3, &t);
        assert_eq!(req["f"], "txn");
        assert_eq!(req["key"], "list-append");
        assert_eq!(req["value"], t.value);
        let done = json!([["append", 1, 4], ["r", 1, [2, 4]]]);
        let ok = answer_of(&t, 3, &json!({"id": 3, "type": "ok", "value": done}));
        assert_eq!(ok.unwrap(), Answer::Ok(done));
        let short = answer_of(
            &t,
            3,
            &json!({"id": 3, "type": "ok", "value": [["r", 1, []]]}),
        );
        assert!(short.is_err(), "an answer must have every micro-operation");
        // A conflict is a failure with its own reason, and says so back.
        let conflict = json!({"id": 3, "type": "fail", "reason": "conflict", "error": "moved"});
        let a = answer_of(&t, 3, &conflict).unwrap();
        assert_eq!(a, Answer::Fail(FailReason::Conflict, "moved".into()));
        assert_eq!(serve::answer_line(3, &a)["reason"], "conflict");
        // A read-only transaction that ended unknown changed nothing.
        let ro = OpSpec {
            value: json!([["r", 1, null]]),
            ..t
        };
        let info = answer_of(
            &ro,
            4,
            &json!({"id": 4, "type": "info", "error": "timeout"}),
        );
        assert!(matches!(
            info.unwrap(),
            Answer::Fail(FailReason::ReadFailed, _)
        ));
    }

    #[test]
    fn answers_are_classified_and_anything_else_is_refused() {
        let w = op(Func::Write, json!("3"));
        let ok = answer_of(&w, 1, &json!({"id": 1, "type": "ok", "value": "ignored"}));
        assert_eq!(ok.unwrap(), Answer::Ok(json!("3")));
        let r = op(Func::Read, Value::Null);
        let read = answer_of(&r, 2, &json!({"id": 2, "type": "ok", "value": "5"}));
        assert_eq!(read.unwrap(), Answer::Ok(json!("5")));
        // A read with no value read nothing.
        let none = answer_of(&r, 2, &json!({"id": 2, "type": "ok"}));
        assert_eq!(none.unwrap(), Answer::Ok(Value::Null));
        let cas = op(Func::Cas, json!(["1", "2"]));
        let f = answer_of(
            &cas,
            3,
            &json!({"id": 3, "type": "fail", "error": "version"}),
        );
        assert_eq!(
            f.unwrap(),
            Answer::Fail(FailReason::CasMismatch, "version".into())
        );
        let i = answer_of(&w, 4, &json!({"id": 4, "type": "info", "error": "timeout"}));
        assert_eq!(i.unwrap(), Answer::Info("timeout".into()));
        // An unknown read is a failed one: it changed nothing.
        let i = answer_of(&r, 4, &json!({"id": 4, "type": "info"}));
        assert!(matches!(
            i.unwrap(),
            Answer::Fail(FailReason::ReadFailed, _)
        ));
        // Wrong id, wrong type, a read-all that is not a list.
        assert!(answer_of(&w, 5, &json!({"id": 6, "type": "ok"})).is_err());
        assert!(answer_of(&w, 5, &json!({"id": 5, "type": "maybe"})).is_err());
        let all = op(Func::ReadAll, Value::Null);
        assert!(answer_of(&all, 5, &json!({"id": 5, "type": "ok", "value": 3})).is_err());
    }

    fn spec(dir: &std::path::Path, command: &str) -> AdapterSpec {
        AdapterSpec {
            command: command.to_string(),
            nodes: vec![NodeApi {
                id: 1,
                addr: "127.0.0.1:1".to_string(),
            }],
            workload: "register".to_string(),
            stderr_dir: dir.to_path_buf(),
            ready_within: Duration::from_secs(5),
            op_timeout: Duration::from_secs(2),
        }
    }

    /// A small adapter in shell: a register in a file, answering every operation.
    const GOOD: &str = r#"read -r hello; echo '{"type":"ready"}'
        v=null
        while read -r line; do
          id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
          case "$line" in
            *'"f":"write"'*) v=$(echo "$line" | sed 's/.*"value":\("[^"]*"\).*/\1/')
                             echo "{\"id\":$id,\"type\":\"ok\"}" ;;
            *) echo "{\"id\":$id,\"type\":\"ok\",\"value\":$v}" ;;
          esac
        done"#;

    #[tokio::test]
    async fn a_good_adapter_serves_operations_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let c = AdapterClient::new(spec(dir.path(), GOOD));
        let soon = || Instant::now() + Duration::from_secs(5);
        assert_eq!(
            c.perform(&op(Func::Read, Value::Null), soon()).await,
            Answer::Ok(Value::Null)
        );
        c.perform(&op(Func::Write, json!("4")), soon()).await;
        assert_eq!(
            c.perform(&op(Func::Read, Value::Null), soon()).await,
            Answer::Ok(json!("4"))
        );
        assert_eq!(c.started(), 1, "one adapter, reused");
    }

    /// Garbage, a hang and a crash: each ends its write unknown and its read failed,
    /// with an error that says what the adapter did and where its stderr is, and the
    /// next operation gets a new adapter.
    #[tokio::test]
    async fn bad_adapters_make_writes_unknown_and_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "garbage",
                r#"read -r h; echo '{"type":"ready"}'; read -r l; echo 'oops'"#,
                "not JSON",
            ),
            (
                "hang",
                r#"read -r h; echo '{"type":"ready"}'; read -r l; sleep 30"#,
                "in time",
            ),
            (
                "crash",
                r#"read -r h; echo '{"type":"ready"}'; read -r l; echo dying >&2; exit 3"#,
                "dying",
            ),
            (
                "runaway",
                r#"read -r h; echo '{"type":"ready"}'; read -r l; head -c 17000000 /dev/zero | tr '\0' a; sleep 5"#,
                "longer than",
            ),
        ];
        for (name, cmd, says) in cases {
            let c = AdapterClient::new(spec(dir.path(), cmd));
            let deadline = Instant::now() + Duration::from_millis(700);
            match c.perform(&op(Func::Write, json!("1")), deadline).await {
                Answer::Info(e) => {
                    assert!(e.contains(says), "{name}: {e}");
                    assert!(e.contains("client-0.stderr"), "{name}: {e}");
                }
                a => panic!("{name}: {a:?}"),
            }
            let deadline = Instant::now() + Duration::from_millis(700);
            let read = c.perform(&op(Func::Read, Value::Null), deadline).await;
            assert!(
                matches!(read, Answer::Fail(FailReason::ReadFailed, _)),
                "{name}: {read:?}"
            );
            assert_eq!(
                c.started(),
                2,
                "{name}: a new adapter for the next operation"
            );
        }
        // One that never gets ready: nothing was sent, so the write certainly failed.
        let c = AdapterClient::new(spec(dir.path(), "exit 1"));
        let deadline = Instant::now() + Duration::from_millis(300);
        match c.perform(&op(Func::Write, json!("1")), deadline).await {
            Answer::Fail(FailReason::Unreachable, e) => {
                assert!(e.contains("before it was ready"), "{e}")
            }
            a => panic!("{a:?}"),
        }
    }
}

/// The adapter side of the protocol, over the built-in HTTP client: what `chaos-runner
/// adapter` runs. A reference adapter (every rule of the protocol in one place), and the
/// yardstick of what the protocol itself costs: against the built-in client, it adds
/// only the pipes and the JSON lines.
pub mod serve {
    use serde_json::{json, Value};
    use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::time::{Duration, Instant};

    use crate::client::{Answer, Dialect, FailReason, KvClient, NodeApi};
    use crate::generator::{Func, OpSpec};

    /// Why serving stopped before the input ended.
    #[derive(Debug, thiserror::Error)]
    pub enum ServeError {
        #[error("reading or writing the pipes: {0}")]
        Io(#[from] std::io::Error),
        #[error("the handshake {0:?} is not an init message with nodes")]
        Handshake(String),
        #[error("line {0:?} is not an operation: {1}")]
        Operation(String, String),
    }

    /// The operation a request line asks for.
    pub fn operation(line: &str) -> Result<(u64, OpSpec), ServeError> {
        let bad = |why: &str| ServeError::Operation(line.to_string(), why.to_string());
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let id = v["id"].as_u64().ok_or_else(|| bad("no id"))?;
        let f = v["f"]
            .as_str()
            .and_then(Func::parse)
            .ok_or_else(|| bad("no known f"))?;
        let key = v["key"].as_str().ok_or_else(|| bad("no key"))?.to_string();
        let value = match f {
            Func::Cas => json!([v["expected"], v["new"]]),
            _ => v.get("value").cloned().unwrap_or(Value::Null),
        };
        Ok((id, OpSpec { f, key, value }))
    }

    /// The answer line for operation `id`.
    pub fn answer_line(id: u64, answer: &Answer) -> Value {
        match answer {
            Answer::Ok(v) => json!({"id": id, "type": "ok", "value": v}),
            Answer::Fail(reason, e) => {
                let reason = match reason {
                    FailReason::CasMismatch => "cas-mismatch",
                    FailReason::Conflict => "conflict",
                    FailReason::NotApplied => "not-applied",
                    FailReason::Rejected => "rejected",
                    FailReason::Unreachable => "unreachable",
                    FailReason::ReadFailed => "not-applied",
                };
                json!({"id": id, "type": "fail", "reason": reason, "error": e})
            }
            Answer::Info(e) => json!({"id": id, "type": "info", "error": e}),
        }
    }

    /// Serves the protocol on `input` and `output` with the built-in client of `dialect`
    /// until the input ends.
    pub async fn serve(
        dialect: Dialect,
        mut input: impl AsyncBufRead + Unpin,
        mut output: impl AsyncWrite + Unpin,
    ) -> Result<(), ServeError> {
        let mut hello = String::new();
        input.read_line(&mut hello).await?;
        let v: Value = serde_json::from_str(&hello)
            .map_err(|_| ServeError::Handshake(hello.trim().to_string()))?;
        let nodes: Vec<NodeApi> = v["nodes"]
            .as_array()
            .ok_or_else(|| ServeError::Handshake(hello.trim().to_string()))?
            .iter()
            .filter_map(|n| {
                Some(NodeApi {
                    id: n["id"].as_u64()?,
                    addr: n["addr"].as_str()?.to_string(),
                })
            })
            .collect();
        // Give up a little before the runner would, so that it gets an answer.
        let timeout = Duration::from_millis(v["op_timeout_ms"].as_u64().unwrap_or(2000))
            .saturating_sub(Duration::from_millis(100))
            .max(Duration::from_millis(100));
        let client = KvClient::with_dialect(nodes, dialect);
        output.write_all(b"{\"type\":\"ready\"}\n").await?;
        output.flush().await?;
        let mut lines = input.lines();
        while let Some(line) = lines.next_line().await? {
            let (id, op) = operation(&line)?;
            let reply = client.invoke(&op, Instant::now() + timeout, None).await;
            let mut line = answer_line(id, &reply.answer);
            if let Some(n) = reply.route.node {
                line["node"] = json!(n);
            }
            if !reply.route.via.is_empty() {
                line["via"] = json!(reply.route.via);
            }
            let mut out = line.to_string();
            out.push('\n');
            output.write_all(out.as_bytes()).await?;
            output.flush().await?;
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn request_lines_become_operations_and_answers_lines() {
            let (id, op) =
                operation(r#"{"id":9,"f":"cas","key":"r1","expected":"1","new":"2"}"#).unwrap();
            assert_eq!((id, op.f, op.key.as_str()), (9, Func::Cas, "r1"));
            assert_eq!(op.value, json!(["1", "2"]));
            assert!(operation(r#"{"id":1,"f":"frobnicate","key":"k"}"#).is_err());
            assert!(operation("nope").is_err());
            let a = answer_line(3, &Answer::Fail(FailReason::CasMismatch, "x".into()));
            assert_eq!(a["reason"], "cas-mismatch");
            // Its own answers are what the runner's side accepts.
            let w = OpSpec {
                f: Func::Write,
                key: "k".into(),
                value: json!("5"),
            };
            let back = super::super::answer_of(&w, 4, &answer_line(4, &Answer::Info("t".into())));
            assert_eq!(back.unwrap(), Answer::Info("t".into()));
        }
    }
}
