//! What the core checks of a peer's message before acting on it. Peers are not
//! authenticated (without TLS anyone who reaches the port can claim to be one), and a
//! correct peer can still be buggy or its bytes corrupt: a message may neither end the
//! cluster (a term nothing can follow) nor make no sense (entries out of order).

use super::{Body, Membership, Message, Payload, Raft, Term};

/// The highest term a node will hold. A message with a higher term is dropped, and a node
/// at this term no longer campaigns, so a term never wraps. Legitimate terms never come
/// near it: one election takes at least one election timeout, and with the jump bound
/// below a forged message cannot carry a node there either. Recovered state beyond it is
/// refused at start (only a forgery accepted by an older version, or corruption that
/// kept its checksum, could have written it).
pub const TERM_LIMIT: Term = 1 << 62;

/// How far messages may raise a node's term: a node holds this much *term credit* when
/// it starts, spends what each adopted higher term moves it, and earns one back per tick,
/// up to this cap. A legitimate gap is the number of elections a node missed, and terms
/// cannot advance faster than about one per election timeout (at least a few ticks), so
/// an honest cluster never runs short; a forged term far ahead is dropped instead of
/// adopted, and a forger can move a node at most this much per start of the node, plus
/// one per tick. `TERM_LIMIT / TERM_JUMP` = 2^30 starts would be needed to reach the limit.
pub const TERM_JUMP: Term = 1 << 32;

impl Raft {
    /// Whether a message may raise this node's term to `term`; if so, the jump is spent
    /// from the term credit (see [`TERM_JUMP`]).
    pub(super) fn spend_term_credit(&mut self, term: Term) -> bool {
        let jump = term - self.term;
        if jump > self.term_credit {
            self.refused_term_jumps = self.refused_term_jumps.saturating_add(1);
            return false;
        }
        self.term_credit -= jump;
        true
    }
}

/// The most servers a configuration may name: far more than any real cluster, few
/// enough that a forged one costs nothing to hold.
pub const MAX_MEMBERS: usize = 1024;

/// Whether a configuration could have come from a correct leader: at least one voter,
/// no id 0, no server both voter and learner, and not absurdly many.
pub(super) fn sane_members(m: &Membership) -> bool {
    !m.voters.is_empty()
        && m.voters.len() + m.learners.len() <= MAX_MEMBERS
        && m.addresses.len() <= MAX_MEMBERS
        && !m.voters.contains(&0)
        && !m.learners.contains(&0)
        && m.voters.is_disjoint(&m.learners)
}

/// Whether a message could have come from a correct peer: an AppendEntries carries
/// consecutive entries right after `prev_log_index`, with terms that never go back and
/// never exceed the sender's term, and sane configurations; so does a snapshot.
pub(super) fn well_formed(m: &Message) -> bool {
    let a = match &m.body {
        Body::Append(a) => a,
        Body::Snapshot(c) => return c.members.as_ref().is_none_or(sane_members),
        _ => return true,
    };
    let mut prev = (a.prev_log_index, a.prev_log_term);
    for e in &a.entries {
        if Some(e.index) != prev.0.checked_add(1) || e.term < prev.1 || e.term > m.term {
            return false;
        }
        if let Payload::Members(c) = &e.payload {
            if !sane_members(c) {
                return false;
            }
        }
        prev = (e.index, e.term);
    }
    true
}
