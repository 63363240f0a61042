//! Peer input as an attacker or a failing network would send it: real messages of a
//! working cluster, then the same bytes mangled (bits flipped, varints blown up, cut
//! short, stretched) and decoded again, and every message that decodes stepped into
//! cores in each role, some with terms at the top of the space or past the jump bound.
//! No input may panic the core, move its term backwards or past `TERM_LIMIT`, raise it
//! by more than `TERM_JUMP` at once, or make it commit past what it holds.
//!
//! Seeded and bounded: `FUZZ_CASES=N` for more cases, `FUZZ_SEED=S` for another stream.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use std::sync::Arc;

use super::*;

fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id, (1..=3).filter(|&p| p != id).collect());
    c.election_ticks_min = 10;
    c.election_ticks_max = 20;
    c.heartbeat_ticks = 2;
    c.snapshot_check = |_| true;
    c
}

fn fresh(id: NodeId) -> Raft {
    Raft::new(cfg(id), Recovered::default()).unwrap()
}

/// A core with nothing on disk: it asks the members before it takes part (`join.rs`).
fn joining(id: NodeId) -> Raft {
    let mut rec = Recovered::default();
    rec.hard_state.joining = true;
    Raft::new(cfg(id), rec).unwrap()
}

/// Three cores exchanging messages until they have elected a leader, replicated
/// commands and snapshotted: every message they sent, and the cores as they ended.
fn working_cluster(rng: &mut StdRng) -> (Vec<Message>, Vec<Raft>) {
    // Founded from empty disks, so that the questions and answers of joining are in the
    // corpus too.
    let mut nodes: Vec<Raft> = (1..=3).map(joining).collect();
    let mut seen = Vec::new();
    let mut flight: VecDeque<Message> = VecDeque::new();
    for step in 0..600u64 {
        for n in nodes.iter_mut() {
            n.tick();
        }
        if step % 3 == 0 {
            if let Some(l) = nodes.iter_mut().find(|n| n.role() == Role::Leader) {
                let _ = l.propose(vec![rng.gen(); rng.gen_range(1..64)]);
                let _ = l.read_index(step);
            }
        }
        for n in nodes.iter_mut() {
            settle(n, &mut flight);
        }
        while let Some(m) = flight.pop_front() {
            seen.push(m.clone());
            // Node 3 is cut off for a while, so it falls behind the leader's snapshot
            // and is sent one when it is back.
            if (200..400).contains(&step) && (m.to == 3 || m.from == 3) {
                continue;
            }
            let to = m.to as usize - 1;
            if to < nodes.len() {
                nodes[to].step(m);
                settle(&mut nodes[to], &mut flight);
            }
        }
    }
    (seen, nodes)
}

/// Takes a core's `Ready` as a driver would (its storage always succeeds), queueing its
/// messages and compacting now and then so snapshots are sent too.
fn settle(n: &mut Raft, flight: &mut VecDeque<Message>) {
    let rd = n.ready();
    if let Some(hs) = rd.hard_state {
        assert!(hs.term <= TERM_LIMIT, "term {} was persisted", hs.term);
    }
    flight.extend(rd.messages);
    let applied = n.applied;
    if applied > n.log.snapshot_index() + 20 {
        if let Some(term) = n.log.term(applied) {
            n.compact(Snapshot {
                index: applied,
                term,
                data: Arc::new(vec![1, 2, 3]),
                members: None,
            });
        }
    }
}

/// One mangling of `bytes`: flipped bits, a run of 0xff (a varint blown up to the
/// largest values), cut short, stretched with noise, or a byte overwritten.
fn mangle(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match rng.gen_range(0..5) {
        0 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => {
            let i = rng.gen_range(0..bytes.len());
            let n = rng.gen_range(1..11).min(bytes.len() - i);
            bytes[i..i + n].fill(0xff);
        }
        2 => bytes.truncate(rng.gen_range(0..bytes.len())),
        3 => {
            let extra: Vec<u8> = (0..rng.gen_range(1..32)).map(|_| rng.gen()).collect();
            let at = rng.gen_range(0..=bytes.len());
            bytes.splice(at..at, extra);
        }
        _ => {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = rng.gen();
        }
    }
}

#[test]
fn mangled_and_forged_peer_messages_never_panic_wrap_or_overreach() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f022);
    let mut rng = StdRng::seed_from_u64(seed);
    let (corpus, mut cores) = working_cluster(&mut rng);
    assert!(cores.iter().any(|n| n.role() == Role::Leader), "no leader");
    let kinds: std::collections::HashSet<_> = corpus
        .iter()
        .map(|m| std::mem::discriminant(&m.body))
        .collect();
    assert!(
        kinds.len() >= 10,
        "only {} kinds of message seen",
        kinds.len()
    );
    // A second leader in the leader's own term, as only a forger can claim: refused.
    let li = cores.iter().position(|n| n.role() == Role::Leader).unwrap();
    let (lid, lterm) = (cores[li].id(), cores[li].term());
    for m in corpus.iter().filter(|m| m.from == lid && m.term == lterm) {
        let mut forged = m.clone();
        forged.from = if lid == 1 { 2 } else { 1 };
        forged.to = lid;
        cores[li].step(forged);
        settle(&mut cores[li], &mut VecDeque::new());
        assert_eq!(
            cores[li].role(),
            Role::Leader,
            "a forged leader deposed the leader"
        );
        assert_eq!(cores[li].term(), lterm);
    }
    // A fresh follower, a candidate and a joining node as well as the working cluster's.
    cores.push(fresh(1));
    cores.push(joining(3));
    let mut candidate = fresh(2);
    for _ in 0..25 {
        candidate.tick();
    }
    candidate.ready();
    cores.push(candidate);
    let mut decoded = 0;
    for case in 0..cases {
        let mut m = corpus[rng.gen_range(0..corpus.len())].clone();
        if rng.gen_bool(0.3) {
            let near = [
                0,
                1,
                m.term,
                m.term + 1,
                m.term + TERM_JUMP,
                m.term + TERM_JUMP + 1,
                TERM_LIMIT,
                TERM_LIMIT + 1,
                Term::MAX - 3,
                Term::MAX - 2,
                Term::MAX - 1,
                Term::MAX,
            ];
            m.term = near[rng.gen_range(0..near.len())];
        }
        let mut bytes = postcard::to_stdvec(&vec![m]).unwrap();
        if rng.gen_bool(0.8) {
            mangle(&mut rng, &mut bytes);
        }
        let Ok(msgs) = postcard::from_bytes::<Vec<Message>>(&bytes) else {
            continue;
        };
        decoded += 1;
        let core = &mut cores[case % 6];
        for mut m in msgs {
            m.to = core.id();
            let term = core.term();
            core.step(m);
            assert!(core.term() >= term, "the term went back");
            assert!(
                core.term() - term <= TERM_JUMP && core.term() <= TERM_LIMIT,
                "one message moved the term from {term} to {}",
                core.term()
            );
            let mut flight = VecDeque::new();
            settle(core, &mut flight);
            assert!(
                core.commit_index() <= core.log.last_index(),
                "committed past the log"
            );
        }
        if case % 7 == 0 {
            core.tick();
        }
    }
    assert!(decoded > cases / 4, "only {decoded} of {cases} decoded");
}
