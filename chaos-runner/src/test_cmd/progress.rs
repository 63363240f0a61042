//! What a person watching the run sees: a progress bar on a terminal, a line every five
//! seconds otherwise; and a loud warning when a node dies on its own.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use checker::record::FaultDetails;
use tokio::sync::Notify;
use tokio::time::Instant;
use workloads::recorder::Recorder;

use crate::cluster::Cluster;
use crate::nemesis::Live;

/// A node that exits on its own (not by the nemesis) is a finding worth shouting: record
/// it in the history and the warnings. Its first exit is told with the end of its log;
/// later ones (a node that cannot start, restarted by every fault) in one line each, so
/// the cause is not buried under copies of itself. `crashes`: exits so far, per node.
async fn report_crashes(
    cluster: &tokio::sync::Mutex<Cluster>,
    recorder: &Recorder,
    live: &Live,
    crashes: &mut std::collections::BTreeMap<u64, u32>,
) {
    let mut c = cluster.lock().await;
    for id in c.ids() {
        if let Some(status) = c.exited(id) {
            let n = crashes.entry(id).or_default();
            *n += 1;
            let w = match *n {
                1 => format!(
                    "node {id} exited on its own ({status}); the end of its log:\n{}",
                    c.log_tail(id, 10)
                ),
                n if n <= 3 => {
                    format!("node {id} exited on its own again ({status}; {n} times so far)")
                }
                n => format!(
                    "node {id} exited on its own again ({status}; {n} times so far; runner.log \
                     has each)"
                ),
            };
            let details = FaultDetails {
                nodes: vec![id],
                status: Some(status),
                ..FaultDetails::default()
            };
            recorder.nemesis(checker::record::FaultEdge::Crash, &details);
            // A node that cannot start exits after every fault for the rest of the run
            // (thousands of times in an hour): the console and results.json hear of the
            // first three and then the 10th, 100th, ...; runner.log of each.
            if shown(*n) {
                crate::console::say!("WARNING: {w}");
                live.warn(w);
            } else {
                crate::console::record(&format!("WARNING: {w}"));
            }
        }
    }
}

/// Whether a node's `n`th exit is told on the console: the first three, then each power
/// of ten.
fn shown(n: u32) -> bool {
    let mut p = 10;
    while p < n {
        p = p.saturating_mul(10);
    }
    n <= 3 || n == p
}

/// Where progress goes: the bar on a terminal, else a line every five seconds.
struct Ticker {
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    last_line: Instant,
}

impl Ticker {
    fn new(total: Duration) -> Ticker {
        Ticker {
            bar: bar(total),
            start: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn show(&mut self, msg: String) {
        match &self.bar {
            Some(b) => {
                b.set_position(self.start.elapsed().as_millis() as u64);
                b.set_message(msg);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                crate::console::say!("[{:>5.1}s] {msg}", self.start.elapsed().as_secs_f64());
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

fn bar(time_limit: Duration) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(time_limit.as_millis() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:24}] {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    })
}

/// Runs until `done` is notified.
pub async fn run(
    recorder: Arc<Recorder>,
    live: Arc<Live>,
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    time_limit: Duration,
    online: Option<Arc<std::sync::Mutex<super::online::OnlineState>>>,
    done: Arc<Notify>,
) {
    let mut ticker = Ticker::new(time_limit);
    let (mut last_total, mut last_t, mut rate) = (0, Instant::now(), 0.0);
    let mut crashes = std::collections::BTreeMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = done.notified() => break,
        }
        report_crashes(&cluster, &recorder, &live, &mut crashes).await;
        let counts = recorder.counts();
        let dt = last_t.elapsed().as_secs_f64();
        if dt >= 1.0 {
            rate = (counts.total() - last_total) as f64 / dt;
            (last_total, last_t) = (counts.total(), Instant::now());
        }
        let active = live.active_now();
        let mut msg = format!(
            "ok {} fail {} info {} | {:.0} ops/s | {}",
            counts.ok,
            counts.fail,
            counts.info,
            rate,
            if active.is_empty() {
                "no fault"
            } else {
                &active
            }
        );
        if let Some(o) = &online {
            msg += &format!(" | {}", o.lock().expect("lock").describe());
        }
        ticker.show(msg);
    }
    ticker.finish();
}

/// `bench`'s live view until `done` is notified: the bar on a terminal, a line every five
/// seconds otherwise, with the operations so far and the current rate; the warm-up says
/// so (its operations are not measured).
pub async fn bench(recorder: Arc<Recorder>, warmup: Duration, total: Duration, done: Arc<Notify>) {
    let mut ticker = Ticker::new(total);
    let start = Instant::now();
    let (mut last_ok, mut last_t, mut rate) = (0, Instant::now(), 0.0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = done.notified() => break,
        }
        let counts = recorder.counts();
        let dt = last_t.elapsed().as_secs_f64();
        if dt >= 1.0 {
            rate = (counts.ok - last_ok) as f64 / dt;
            (last_ok, last_t) = (counts.ok, Instant::now());
        }
        let phase = if start.elapsed() < warmup {
            "warm-up"
        } else {
            "measuring"
        };
        let msg = format!(
            "ok {} fail {} info {} | {rate:.0} ok/s | {phase}",
            counts.ok, counts.fail, counts.info
        );
        ticker.show(msg);
    }
    ticker.finish();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_that_keeps_exiting_is_told_at_powers_of_ten() {
        let told: Vec<u32> = (1..=20_000).filter(|&n| super::shown(n)).collect();
        assert_eq!(told, [1, 2, 3, 10, 100, 1000, 10_000]);
    }
}
