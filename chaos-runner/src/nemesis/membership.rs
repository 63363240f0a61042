//! `membership`: changes of the cluster's membership through the server's API, where
//! Jepsen found bugs in etcd, Consul and Redis-Raft.
//!
//! When it starts, the fault asks the leader for one of:
//! - **a removal**: a voter (the one the plan's target names) leaves the cluster while
//!   its process keeps running, as when an operator removes a member before stopping its
//!   machine. Half the time a second removal, of another follower, races the first: a
//!   correct server takes one change at a time and refuses the second while the first
//!   has not committed.
//! - **the removal of members it cannot reach**: the leader's links to its followers are
//!   cut (where the runner carries the links), then the followers are removed, two at
//!   once, as an operator "removes the dead members" of a leader that lost them. A
//!   correct server cannot commit the first removal without one of them, refuses the
//!   second, and loses its leadership to the followers' side (check-quorum). A server
//!   that takes both leaves the leader a majority of itself while the followers, who
//!   never heard of either change, elect their own leader: two clusters acknowledging
//!   writes. The links come back when the fault ends.
//! - **a leader transfer** to another voter.
//!
//! When it ends, each removed node comes back as a new server (Raft dissertation §3.8: a
//! member that left is not the old one restarted): it is stopped, its data directory
//! emptied, started again, added as a learner, and promoted once the leader says it has
//! caught up. Only a node the leader's committed configuration no longer lists is emptied;
//! a removal whose outcome was unknown and did not happen leaves the node as it was.
//!
//! Every change, with its outcome, is in the history (the fault's details) and on the
//! report's timeline. The changes go through raft-node's `/cluster/members` API; servers
//! without it cannot undergo this fault (`Server::membership_api`).

use std::time::Duration;

use anyhow::Result;
use checker::record::{FaultDetails, MemberChange};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{Env, Fault, FaultKind, Planned, Target};
use crate::cluster::{find_leader_of, http_call, http_call_within};
use crate::fabric::Fabric;
use crate::links::LinkMode;

/// How long a change may take to be answered, leader elections included.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a view of the cluster must hold before the fault acts on it: longer than an
/// election timeout (raft-node's default is 300-600 ms).
const STABLE: Duration = Duration::from_secs(1);
/// How long one request for a change waits for its answer: longer than raft-node takes
/// to say a change's outcome is unknown (its leadership lost, or its request timeout).
const ANSWER_WITHIN: Duration = Duration::from_secs(6);
/// How long a node brought back may take to catch up before its promotion is given up
/// (the next `membership` fault tries again).
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);

pub struct MembershipFault {
    /// The changes asked for when it started.
    started: Vec<MemberChange>,
    /// Nodes whose removal was accepted, or may have been: brought back when it ends.
    removed: Vec<u64>,
    /// The changes that brought them back (filled in by `stop`).
    restored: std::sync::Mutex<Vec<MemberChange>>,
    /// Links this fault cut (the leader's to the nodes it removes), mended when it ends.
    cut: bool,
}

/// The cluster as its leader sees it.
struct View {
    leader: u64,
    term: u64,
    voters: Vec<u64>,
    learners: Vec<u64>,
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Who leads and its committed configuration, waiting up to `within` for a settled
/// cluster: exactly one node says it leads, no node answers with a higher term, its
/// latest configuration has committed, and all of that still holds [`STABLE`] later.
/// (Right after links come back a deposed leader may still say it leads until it hears
/// the new term, and nodes cut off from it may be about to elect another: acting on its
/// view would bring back the wrong nodes.)
async fn view(env: &Env, within: Duration) -> Option<View> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(first) = settled(env).await {
            tokio::time::sleep(STABLE).await;
            if let Some(v) = settled(env).await {
                if (v.leader, v.term) == (first.leader, first.term) {
                    return Some(v);
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn settled(env: &Env) -> Option<View> {
    let mut leaders = Vec::new();
    let mut top_term = 0;
    for (id, api) in &env.apis {
        if let Some((200, s)) = http_call(&env.access, api, "GET", "/client/status", "").await {
            let term = s["term"].as_u64().unwrap_or(0);
            top_term = top_term.max(term);
            if s["role"] == "leader" {
                leaders.push((*id, term));
            }
        }
    }
    let [(leader, term)] = leaders[..] else {
        return None;
    };
    if term < top_term {
        return None;
    }
    let (status, m) = http_call(
        &env.access,
        api_of(env, leader),
        "GET",
        "/cluster/members",
        "",
    )
    .await?;
    (status == 200 && m["committed"] == json!(true) && m["leader"].as_u64() == Some(leader)).then(
        || View {
            leader,
            term,
            voters: ids(&m["voters"]),
            learners: ids(&m["learners"]),
        },
    )
}

fn api_of(env: &Env, id: u64) -> &str {
    env.apis
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("", |(_, a)| a.as_str())
}

/// Sends a change to whoever leads until it is answered with an outcome, within
/// [`CHANGE_DEADLINE`]: a node that is not the leader refused it before it entered any
/// log, so the next leader is asked. A request that got no answer may have been taken,
/// and is not sent again (its outcome is unknown). The outcome in the history's words.
async fn ask(env: &Env, method: &str, path: &str, body: &str) -> String {
    ask_at(env, None, method, path, body).await
}

/// [`ask`], asking `leader` first without looking for who leads: two changes meant to
/// race leave at the same instant.
async fn ask_at(
    env: &Env,
    mut leader: Option<u64>,
    method: &str,
    path: &str,
    body: &str,
) -> String {
    let deadline = Instant::now() + CHANGE_DEADLINE;
    let mut last = "no leader answered".to_string();
    while Instant::now() < deadline {
        let known = match leader.take() {
            Some(l) => Some(l),
            None => find_leader_of(&*env.server, &env.access, &env.probes).await,
        };
        if let Some(leader) = known {
            let api = api_of(env, leader);
            match http_call_within(&env.access, api, method, path, body, ANSWER_WITHIN).await {
                Some((200 | 202, _)) => return "ok".into(),
                Some((503, v)) if v["error"] == "not_leader" => {}
                Some((409, v)) => {
                    return format!("refused: {}", v["message"].as_str().unwrap_or("conflict"))
                }
                Some((_, v)) if v["outcome"] == "unknown" => {
                    return format!("unknown: {}", v["message"].as_str().unwrap_or("timed out"))
                }
                Some((s, v)) => last = format!("{s} {v}"),
                None => return format!("unknown: no answer within {ANSWER_WITHIN:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    format!("unknown: {last}")
}

fn change(what: &str, node: u64, outcome: String, since: Instant) -> MemberChange {
    MemberChange {
        change: what.into(),
        node,
        outcome,
        at_ms: since.elapsed().as_millis() as u64,
    }
}

/// Brings `node` back as a new server: stopped, emptied, started, added as a learner
/// and promoted once caught up. Only if the leader's committed configuration no longer
/// has it as a voter (else it is left alone, or just promoted if it is a learner).
async fn bring_back(
    env: &Env,
    node: u64,
    since: Instant,
    out: &mut Vec<MemberChange>,
) -> Result<()> {
    let Some(v) = view(env, CHANGE_DEADLINE).await else {
        out.push(change(
            "add-learner",
            node,
            "unknown: no leader with a committed configuration".into(),
            since,
        ));
        return Ok(());
    };
    if v.voters.contains(&node) {
        return Ok(());
    }
    if !v.learners.contains(&node) {
        {
            let mut c = env.cluster.lock().await;
            tokio::task::block_in_place(|| c.kill(node));
            let dir = c.durable_dir(node);
            tokio::task::block_in_place(|| super::wipe::empty_dir(&dir))?;
            c.forget_started(node);
            tokio::task::block_in_place(|| c.start(node))?;
        }
        let outcome = ask(
            env,
            "POST",
            "/cluster/members",
            &format!("{{\"id\":{node}}}"),
        )
        .await;
        let added = outcome == "ok";
        out.push(change("add-learner", node, outcome, since));
        if !added {
            return Ok(());
        }
    }
    // Promoted once the leader says it holds every committed entry (409 until then).
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    let body = format!("{{\"id\":{node},\"role\":\"voter\"}}");
    loop {
        let outcome = ask(env, "POST", "/cluster/members", &body).await;
        let caught_up = !outcome.contains("caught up") && !outcome.contains("has not committed");
        if caught_up || Instant::now() >= deadline {
            out.push(change("promote", node, outcome, since));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Fault for MembershipFault {
    /// Through the client API: any links.
    fn carried_by(_: FaultKind, _: &Fabric) -> bool {
        true
    }

    async fn start(p: &Planned, env: &Env) -> Result<Self> {
        let began = Instant::now();
        let mut started = Vec::new();
        // Nodes an earlier fault could not bring back come back first.
        let all = env.ids();
        if let Some(v) = view(env, CHANGE_DEADLINE).await {
            for n in all.iter().filter(|n| !v.voters.contains(n)) {
                bring_back(env, *n, began, &mut started).await?;
            }
        }
        let Some(v) = view(env, CHANGE_DEADLINE).await else {
            return Ok(MembershipFault {
                started,
                removed: Vec::new(),
                restored: Default::default(),
                cut: false,
            });
        };
        let followers: Vec<u64> = v
            .voters
            .iter()
            .copied()
            .filter(|&n| n != v.leader)
            .collect();
        let pick = |salt: u64, of: &[u64]| of[((p.pick ^ salt) % of.len() as u64) as usize];
        let mut removed = Vec::new();
        let mut cut = false;
        if p.pick.is_multiple_of(4) || v.voters.len() < 3 || followers.is_empty() {
            if let Some(&to) = followers.get((p.pick % followers.len().max(1) as u64) as usize) {
                let outcome = ask(
                    env,
                    "POST",
                    "/cluster/transfer-leader",
                    &format!("{{\"id\":{to}}}"),
                )
                .await;
                started.push(change("transfer-leader", to, outcome, began));
            }
        } else if (p.pick >> 4).is_multiple_of(2) && env.net.is_some() {
            // The leader loses its followers, then is asked to remove them all at once.
            let net = env.net()?;
            for &f in &followers {
                net.cut(v.leader, f, LinkMode::Cut);
                net.cut(f, v.leader, LinkMode::Cut);
                started.push(change("cut-off", f, "ok".into(), began));
            }
            cut = true;
            let at = Some(v.leader);
            let asks = followers.iter().map(|&f| async move {
                let path = format!("/cluster/members/{f}");
                (f, ask_at(env, at, "DELETE", &path, "").await)
            });
            for (n, outcome) in futures_util::future::join_all(asks).await {
                if !outcome.starts_with("refused") {
                    removed.push(n);
                }
                started.push(change("remove", n, outcome, began));
            }
        } else {
            let first = if p.target == Target::Leader {
                v.leader
            } else {
                pick(0x5245_4d31, &followers)
            };
            let second: Vec<u64> = followers.iter().copied().filter(|&n| n != first).collect();
            let race = (p.pick >> 8).is_multiple_of(2) && !second.is_empty();
            let path = |n: u64| format!("/cluster/members/{n}");
            let (a, b) = if race {
                let other = pick(0x5245_4d32, &second);
                let (pa, pb) = (path(first), path(other));
                let at = Some(v.leader);
                let (a, b) = tokio::join!(
                    ask_at(env, at, "DELETE", &pa, ""),
                    ask_at(env, at, "DELETE", &pb, "")
                );
                (a, Some((other, b)))
            } else {
                (ask(env, "DELETE", &path(first), "").await, None)
            };
            for (n, outcome) in std::iter::once((first, a)).chain(b) {
                if !outcome.starts_with("refused") {
                    removed.push(n);
                }
                started.push(change("remove", n, outcome, began));
            }
        }
        Ok(MembershipFault {
            started,
            removed,
            restored: Default::default(),
            cut,
        })
    }

    async fn stop(&self, env: &Env) -> Result<()> {
        if self.cut {
            env.net()?.uncut_all();
        }
        let since = Instant::now();
        let mut out = Vec::new();
        for &n in &self.removed {
            bring_back(env, n, since, &mut out).await?;
        }
        self.restored.lock().expect("restored").extend(out);
        Ok(())
    }

    fn describe(&self) -> String {
        let restored = self.restored.lock().expect("restored");
        let words: Vec<String> = self
            .started
            .iter()
            .chain(restored.iter())
            .map(|c| format!("{} n{}: {}", c.change, c.node, c.outcome))
            .collect();
        format!("membership ({})", words.join("; "))
    }

    fn details(&self) -> FaultDetails {
        let restored = self.restored.lock().expect("restored");
        FaultDetails {
            nodes: self.started.iter().map(|c| c.node).collect(),
            members: self
                .started
                .iter()
                .chain(restored.iter())
                .cloned()
                .collect(),
            ..FaultDetails::default()
        }
    }
}
