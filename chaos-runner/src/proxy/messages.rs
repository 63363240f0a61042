//! Message faults: what a link does to whole requests, where TCP would never let a
//! network do it.
//!
//! Raft is specified for a network that loses, delays, duplicates and reorders messages.
//! TCP hides the last two, but an RPC layer does not: a request retried after a timeout,
//! or delivered late over a second connection, is an ordinary event. So copies and held
//! requests travel over connections of their own, opened by the proxy, and their answers
//! are read and thrown away; the client's own connection only ever carries requests in
//! the order it sent them, each answered once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::{response_complete, Frame};
use super::LinkMode;

/// A fault of whole requests on one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageFault {
    /// Every other request, on average, is delivered again up to `DUPLICATE_WITHIN` later.
    Duplicate,
    /// About one request in three is held back and delivered after 1 to 3 later ones.
    Reorder,
    /// Every 20 to 200 ms, a copy of a request seen in the last `REPLAY_WINDOW`.
    Replay,
    /// About one request in three is swallowed: its sender's timeout fires.
    Drop,
}

/// How likely each request is to be dropped, held or duplicated.
const DROP_P: f64 = 0.3;
const HOLD_P: f64 = 0.3;
const DUPLICATE_P: f64 = 0.5;
/// The latest a duplicate arrives after its original.
const DUPLICATE_WITHIN: Duration = Duration::from_millis(500);
/// A held request goes out after this long even if nothing follows it.
const HOLD_AT_MOST: Duration = Duration::from_millis(1500);
/// How far back a replay reaches, and the memory it may use per link.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(10);
const RECENT_MAX: usize = 512;
const RECENT_MAX_BYTES: usize = 4 << 20;
/// Events kept per fault and link; beyond, they are only counted.
const EVENTS_MAX: usize = 200;
/// A copy's whole exchange (connect, send, read the answer).
const COPY_TIMEOUT: Duration = Duration::from_secs(2);

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Dropped,
    Held,
    /// A held request, delivered late.
    Released,
    /// A second delivery of a request that was also delivered.
    Duplicated,
    /// A copy of an earlier request, delivered again.
    Replayed,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Dropped => "dropped",
            Action::Held => "held",
            Action::Released => "released",
            Action::Duplicated => "duplicated",
            Action::Replayed => "replayed",
        }
    }
}

/// One thing a message fault did.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    pub action: Action,
    pub frame: Arc<Frame>,
    pub at: Instant,
}

/// The message-fault state of one directed link, shared by all its connections.
pub struct LinkMessages {
    target: SocketAddr,
    mode: watch::Receiver<LinkMode>,
    state: Mutex<State>,
}

struct Held {
    frame: Arc<Frame>,
    /// Forwarded requests still to pass it.
    after: u32,
}

struct State {
    fault: Option<MessageFault>,
    rng: StdRng,
    /// Requests seen lately, for replays (oldest first).
    recent: VecDeque<Arc<Frame>>,
    recent_bytes: usize,
    held: Vec<Held>,
    events: Vec<MessageEvent>,
    /// Events past `EVENTS_MAX`.
    uncounted: u64,
    worker: Option<JoinHandle<()>>,
}

impl State {
    fn note(&mut self, action: Action, frame: Arc<Frame>) {
        if self.events.len() < EVENTS_MAX {
            self.events.push(MessageEvent {
                action,
                frame,
                at: Instant::now(),
            });
        } else {
            self.uncounted += 1;
        }
    }

    fn remember(&mut self, frame: &Arc<Frame>) {
        self.recent_bytes += frame.bytes.len();
        self.recent.push_back(frame.clone());
        let now = Instant::now();
        while let Some(old) = self.recent.front() {
            let too_old = now.duration_since(old.seen) > REPLAY_WINDOW;
            if too_old || self.recent.len() > RECENT_MAX || self.recent_bytes > RECENT_MAX_BYTES {
                self.recent_bytes -= old.bytes.len();
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }
}

impl LinkMessages {
    pub fn new(target: SocketAddr, mode: watch::Receiver<LinkMode>) -> Arc<LinkMessages> {
        Arc::new(LinkMessages {
            target,
            mode,
            state: Mutex::new(State {
                fault: None,
                rng: StdRng::seed_from_u64(0),
                recent: VecDeque::new(),
                recent_bytes: 0,
                held: Vec::new(),
                events: Vec::new(),
                uncounted: 0,
                worker: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("link message state")
    }

    /// Whether the client's connection carries `frame` on: false when the fault dropped
    /// or held it. Copies it may send later go over connections of their own.
    pub fn decide(self: &Arc<Self>, frame: Frame) -> Option<bytes::Bytes> {
        let frame = Arc::new(frame);
        let mut s = self.lock();
        s.remember(&frame);
        match s.fault {
            None | Some(MessageFault::Replay) => {}
            Some(MessageFault::Drop) => {
                if s.rng.gen_bool(DROP_P) {
                    s.note(Action::Dropped, frame);
                    return None;
                }
            }
            Some(MessageFault::Duplicate) => {
                if s.rng.gen_bool(DUPLICATE_P) {
                    let after = s.rng.gen_range(Duration::ZERO..=DUPLICATE_WITHIN);
                    self.copy(frame.clone(), Some(Action::Duplicated), after);
                }
            }
            Some(MessageFault::Reorder) => {
                if s.rng.gen_bool(HOLD_P) {
                    let after = s.rng.gen_range(1..=3);
                    s.held.push(Held {
                        frame: frame.clone(),
                        after,
                    });
                    s.note(Action::Held, frame);
                    return None;
                }
                for h in &mut s.held {
                    h.after -= 1;
                }
                // Released just behind the request that passed them.
                let (due, kept) = std::mem::take(&mut s.held)
                    .into_iter()
                    .partition(|h| h.after == 0);
                s.held = kept;
                self.release(due, Duration::from_millis(5));
            }
        }
        Some(frame.bytes.clone())
    }

    /// Starts (`Some`) or ends (`None`) a message fault; `seed` drives its choices. Ending
    /// one delivers what it still holds.
    pub fn set(self: &Arc<Self>, fault: Option<MessageFault>, seed: u64) {
        let mut s = self.lock();
        if let Some(w) = s.worker.take() {
            w.abort();
        }
        // Released now, so the fault's record lists them before it ends.
        for h in std::mem::take(&mut s.held) {
            s.note(Action::Released, h.frame.clone());
            self.copy(h.frame, None, Duration::ZERO);
        }
        s.fault = fault;
        s.rng = StdRng::seed_from_u64(seed);
        if matches!(fault, Some(MessageFault::Replay | MessageFault::Reorder)) {
            let me = self.clone();
            s.worker = Some(tokio::spawn(async move { me.work().await }));
        }
    }

    /// What the faults did since the last call, and how many events were only counted.
    pub fn take_events(&self) -> (Vec<MessageEvent>, u64) {
        let mut s = self.lock();
        (
            std::mem::take(&mut s.events),
            std::mem::take(&mut s.uncounted),
        )
    }

    /// Replays, and releases requests held too long, while the fault lasts.
    async fn work(self: Arc<Self>) {
        loop {
            let pause = self.lock().rng.gen_range(20..=200);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let mut s = self.lock();
            match s.fault {
                Some(MessageFault::Replay) => {
                    let now = Instant::now();
                    let fresh: Vec<Arc<Frame>> = s
                        .recent
                        .iter()
                        .filter(|f| now.duration_since(f.seen) <= REPLAY_WINDOW)
                        .cloned()
                        .collect();
                    if let Some(f) = fresh.choose(&mut s.rng) {
                        self.copy(f.clone(), Some(Action::Replayed), Duration::ZERO);
                    }
                }
                Some(MessageFault::Reorder) => {
                    let now = Instant::now();
                    let (due, kept) = std::mem::take(&mut s.held)
                        .into_iter()
                        .partition(|h| now.duration_since(h.frame.seen) >= HOLD_AT_MOST);
                    s.held = kept;
                    self.release(due, Duration::ZERO);
                }
                _ => return,
            }
        }
    }

    fn release(self: &Arc<Self>, held: Vec<Held>, after: Duration) {
        for h in held {
            self.copy(h.frame, Some(Action::Released), after);
        }
    }

    /// Delivers `frame` again after `after`, over a connection of its own, through the
    /// link as it is then (a cut link loses the copy; a slow one delays it). `action` is
    /// noted once the copy is written (`None`: noted already).
    fn copy(self: &Arc<Self>, frame: Arc<Frame>, action: Option<Action>, after: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let wait = match *me.mode.borrow() {
                LinkMode::Cut | LinkMode::BlackHole => return,
                LinkMode::Up => 0,
                LinkMode::Delay { ms, jitter_ms } => {
                    ms + rand::thread_rng().gen_range(0..=jitter_ms)
                }
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if send_copy(me.target, &frame.bytes).await {
                if let Some(action) = action {
                    me.lock().note(action, frame);
                }
            }
        });
    }
}

/// Sends one request on a fresh connection and reads its answer to the end; true when
/// the request was written.
async fn send_copy(target: SocketAddr, request: &[u8]) -> bool {
    let sent = tokio::time::timeout(COPY_TIMEOUT, async {
        let mut s = TcpStream::connect(target).await?;
        let _ = s.set_nodelay(true);
        s.write_all(request).await?;
        Ok::<_, std::io::Error>(s)
    })
    .await;
    let Ok(Ok(mut s)) = sent else {
        return false;
    };
    // Read the answer before closing, so the server never sees its request cut short.
    let _ = tokio::time::timeout(COPY_TIMEOUT, async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || response_complete(&answer) || answer.len() > 1 << 20 {
                break;
            }
        }
    })
    .await;
    true
}
