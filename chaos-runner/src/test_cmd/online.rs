//! `--fail-fast`: checking the history while the run goes.
//!
//! A prefix of a history, with the operations still open counted as of unknown outcome,
//! that is not linearizable proves the whole history is not: whatever happens next cannot
//! undo what was already observed. So a thread of its own checks each key's history so
//! far, again whenever the key has new events, and stops the run at the first anomaly;
//! the final check then finds it again and explains it as usual.
//!
//! The checks must not starve the cluster of CPU: a key is checked again no sooner than
//! three times as long as its last check took after that check ended (at most about a
//! quarter of one core), and at most every 100 ms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checker::check::CheckOptions;
use checker::record::FailFast;
use checker::{History, Verdict};
use workloads::recorder::{KeyHistories, Recorder};

use super::config::Judged;

/// What the online checker knows, for the progress line and results.json.
#[derive(Debug, Default)]
pub struct OnlineState {
    /// Checks done, and the keys whose whole history so far is linearizable.
    pub checks: u64,
    pub clean_keys: usize,
    /// The first anomaly found.
    pub anomaly: Option<FailFast>,
}

impl OnlineState {
    /// For the progress line.
    pub fn describe(&self) -> String {
        match &self.anomaly {
            Some(a) => format!("online: ANOMALY on key {}", a.key),
            None => format!(
                "online: {} keys linearizable so far ({} checks)",
                self.clean_keys, self.checks
            ),
        }
    }
}

/// The online checker's handle: its state, and how to stop it.
pub struct Online {
    pub state: Arc<Mutex<OnlineState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Online {
    /// Starts checking `recorder`'s history (which must keep it: `keep_history`) against
    /// `kind`'s model; `found` runs once, on the thread, at the first anomaly.
    pub fn start(
        recorder: Arc<Recorder>,
        kind: Judged,
        found: impl FnOnce(&FailFast) + Send + 'static,
    ) -> Online {
        let state = Arc::new(Mutex::new(OnlineState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("online-checker".into())
                .spawn(move || watch(&recorder, kind, &state, &stop, found))
                .expect("a thread for the online checker")
        };
        Online {
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops checking (at the end of the load) and returns the anomaly found, if any.
    pub fn finish(mut self) -> Option<FailFast> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.state.lock().expect("lock").anomaly.clone()
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// When a key may be checked next, and what it had seen then.
struct KeyWatch {
    seen: u64,
    next_at: Instant,
    clean: bool,
}

/// The verdict on one key's history so far, and for an anomaly: the operation that cannot
/// be placed, in words, and when it returned (ns on the history's clock).
fn check_key(kind: Judged, history: &History) -> (Verdict, Option<(String, u64)>) {
    let opts = CheckOptions {
        threads: 1,
        timeout: Some(Duration::from_secs(2)),
        memory_limit: 256 << 20,
        explain_timeout: Duration::from_millis(200),
        ..CheckOptions::default()
    };
    match super::check::check_as(kind, history, &opts) {
        Ok(r) => {
            let first = r.failures.first().map(|f| {
                let why = f
                    .states
                    .first()
                    .map_or(f.op.description.clone(), |s| s.reason.clone());
                (why, f.op.ret.unwrap_or(f.op.call))
            });
            (r.verdict, first)
        }
        // A malformed operation is the recorder's bug: the final check reports it.
        Err(_) => (Verdict::Unknown, None),
    }
}

fn watch(
    recorder: &Recorder,
    kind: Judged,
    state: &Mutex<OnlineState>,
    stop: &AtomicBool,
    found: impl FnOnce(&FailFast),
) {
    let mut keys: BTreeMap<String, KeyWatch> = BTreeMap::new();
    let mut histories = KeyHistories::default();
    let epoch = recorder.epoch();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        histories.update(recorder);
        for (key, &seen) in histories.changes() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let w = keys.entry(key.clone()).or_insert(KeyWatch {
                seen: 0,
                next_at: Instant::now(),
                clean: false,
            });
            if seen == w.seen || Instant::now() < w.next_at {
                continue;
            }
            let Some(history) = histories.history(key) else {
                continue;
            };
            let began = Instant::now();
            let (verdict, first) = check_key(kind, history);
            let took = began.elapsed();
            w.seen = seen;
            w.next_at = Instant::now() + 3 * took;
            w.clean = verdict == Verdict::Valid;
            let mut st = state.lock().expect("lock");
            st.checks += 1;
            st.clean_keys = keys.values().filter(|k| k.clean).count();
            if verdict == Verdict::Invalid {
                let (what, returned) = first.unwrap_or_default();
                let anomaly = FailFast {
                    key: key.clone(),
                    what,
                    returned_s: returned as f64 / 1e9,
                    detected_s: epoch.elapsed().as_secs_f64(),
                };
                st.anomaly = Some(anomaly.clone());
                drop(st);
                found(&anomaly);
                return;
            }
        }
    }
}
