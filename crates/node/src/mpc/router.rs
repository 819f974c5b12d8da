//! Incoming MPC traffic: chunks arrive on the peer links (any task, any time) and wait in
//! per-(session, sender) inboxes until the session's protocol thread reads them.
//!
//! A party may start sending before its peer has registered the session (the three API
//! calls that start a session race), so chunks for an unknown session are buffered, within
//! limits that keep a member from filling our memory with sessions nobody runs.

use crate::error::NodeError;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consort_crypto::MemberId;

use super::wire::{Chunk, SessionId};

/// Sessions that may be buffered before they are registered here.
pub const MAX_UNREGISTERED_SESSIONS: usize = 64;
/// Bytes buffered per session before it is registered here.
pub const MAX_UNREGISTERED_BYTES: usize = 256 << 20;
/// Bytes buffered across all sessions not registered here: without it, members could make
/// a node hold 64 sessions of 256 MiB each.
pub const MAX_UNREGISTERED_TOTAL_BYTES: usize = 1 << 30;
/// Chunks a sender may have in flight to one receiver; more out of order is refused.
pub const MAX_OUT_OF_ORDER: u64 = 64;
/// Ended sessions remembered, so their stragglers (a peer's goodbye, chunks of an
/// aborted round) are dropped instead of waiting as a new session.
pub const REMEMBERED_ENDED_SESSIONS: usize = 4096;
/// How long an unregistered session's buffer is kept.
pub const UNREGISTERED_TTL: Duration = Duration::from_secs(300);

/// What a session's protocol thread reads from one peer's inbox.
#[derive(Debug)]
pub enum Inbound {
    /// A piece of a message, `data[start..]`; `last` ends the message.
    Data {
        last: bool,
        data: Vec<u8>,
        start: usize,
    },
    /// Our own link to that peer failed: nothing more will come from it.
    Gone(String),
    /// The peer left the session after everything it sent before.
    Closed,
}

/// Puts one sender's chunks back in sequence order.
#[derive(Default)]
struct Reorder {
    next: u64,
    held: BTreeMap<u64, Inbound>,
}

struct Slot {
    /// The parties, once registered.
    parties: Option<Vec<MemberId>>,
    order: HashMap<MemberId, Reorder>,
    senders: HashMap<MemberId, mpsc::Sender<Inbound>>,
    receivers: HashMap<MemberId, mpsc::Receiver<Inbound>>,
    buffered: usize,
    created: Instant,
}

impl Slot {
    fn new() -> Self {
        Self {
            parties: None,
            order: HashMap::new(),
            senders: HashMap::new(),
            receivers: HashMap::new(),
            buffered: 0,
            created: Instant::now(),
        }
    }

    fn channel(&mut self, from: MemberId) -> mpsc::Sender<Inbound> {
        if let Some(tx) = self.senders.get(&from) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel();
        self.senders.insert(from, tx.clone());
        self.receivers.insert(from, rx);
        tx
    }
}

/// Routes MPC chunks to sessions. Shared by the peer service and the sessions.
#[derive(Default)]
pub struct MpcRouter {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    running: HashMap<SessionId, Slot>,
    ended: HashSet<SessionId>,
    ended_order: VecDeque<SessionId>,
}

/// The inboxes of a registered session, one per other party, and the senders that let the
/// session's own link tasks report a dead peer into them.
pub struct Registration {
    pub inboxes: HashMap<MemberId, mpsc::Receiver<Inbound>>,
    pub notifiers: HashMap<MemberId, mpsc::Sender<Inbound>>,
}

impl MpcRouter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a chunk from member `from`.
    pub fn deliver(&self, from: MemberId, chunk: Chunk) -> Result<(), NodeError> {
        let mut all = self.lock();
        if all.ended.contains(&chunk.session) {
            return Ok(());
        }
        let slots = &mut all.running;
        if !slots.contains_key(&chunk.session) {
            let now = Instant::now();
            slots.retain(|_, s| s.parties.is_some() || now - s.created < UNREGISTERED_TTL);
            let waiting = slots.values().filter(|s| s.parties.is_none()).count();
            if waiting >= MAX_UNREGISTERED_SESSIONS {
                return Err(NodeError::PeerRefused(format!(
                    "too many MPC sessions waiting to start here (limit {MAX_UNREGISTERED_SESSIONS})"
                )));
            }
            slots.insert(chunk.session, Slot::new());
        }
        let Some(slot) = slots.get(&chunk.session) else {
            return Err(NodeError::Internal("MPC session slot vanished".into()));
        };
        match slot.parties.as_ref().map(|p| p.contains(&from)) {
            Some(false) => {
                return Err(NodeError::PeerRefused(format!(
                    "member {from} is not a party of MPC session {}",
                    chunk.session
                )));
            }
            Some(true) => {}
            None => {
                if slot.buffered + chunk.buffer.len() > MAX_UNREGISTERED_BYTES {
                    return Err(NodeError::PeerRefused(format!(
                        "MPC session {} is not running here and has buffered too much",
                        chunk.session
                    )));
                }
                let total: usize = slots
                    .values()
                    .filter(|s| s.parties.is_none())
                    .map(|s| s.buffered)
                    .sum();
                if total + chunk.buffer.len() > MAX_UNREGISTERED_TOTAL_BYTES {
                    return Err(NodeError::PeerRefused(format!(
                        "MPC sessions not running here have buffered {total} bytes (limit {MAX_UNREGISTERED_TOTAL_BYTES})"
                    )));
                }
            }
        }
        let Some(slot) = slots.get_mut(&chunk.session) else {
            return Err(NodeError::Internal("MPC session slot vanished".into()));
        };
        if slot.parties.is_none() {
            slot.buffered += chunk.buffer.len();
        }
        let tx = slot.channel(from);
        let order = slot.order.entry(from).or_default();
        if chunk.seq < order.next || chunk.seq - order.next >= MAX_OUT_OF_ORDER {
            return Err(NodeError::PeerRefused(format!(
                "MPC chunk {} of session {} is out of sequence (expected {} to {})",
                chunk.seq,
                chunk.session,
                order.next,
                order.next + MAX_OUT_OF_ORDER - 1
            )));
        }
        if order.held.contains_key(&chunk.seq) {
            return Err(NodeError::PeerRefused(format!(
                "MPC chunk {} of session {} arrived twice",
                chunk.seq, chunk.session
            )));
        }
        let inbound = if chunk.close {
            Inbound::Closed
        } else {
            Inbound::Data {
                last: chunk.last,
                data: chunk.buffer,
                start: chunk.start,
            }
        };
        order.held.insert(chunk.seq, inbound);
        while let Some(next) = order.held.remove(&order.next) {
            order.next += 1;
            // The receiver is gone only once the session ended: late chunks are dropped.
            let _ = tx.send(next);
        }
        Ok(())
    }

    /// Registers a session run by this node with `parties` (including this node's member
    /// `me`), taking over whatever arrived early.
    pub fn register(
        &self,
        session: SessionId,
        parties: &[MemberId],
        me: MemberId,
    ) -> Result<Registration, NodeError> {
        let mut all = self.lock();
        if all.ended.contains(&session) {
            return Err(NodeError::Rejected(format!(
                "MPC session {session} already ran here"
            )));
        }
        let slot = all.running.entry(session).or_insert_with(Slot::new);
        if slot.parties.is_some() {
            return Err(NodeError::Rejected(format!(
                "MPC session {session} is already running here"
            )));
        }
        // Whatever a non-party sent early is dropped, never read as a party's message.
        slot.senders.retain(|m, _| parties.contains(m));
        slot.order.retain(|m, _| parties.contains(m));
        slot.receivers.retain(|m, _| parties.contains(m));
        slot.parties = Some(parties.to_vec());
        let mut inboxes = HashMap::new();
        let mut notifiers = HashMap::new();
        for &p in parties.iter().filter(|&&p| p != me) {
            notifiers.insert(p, slot.channel(p));
            if let Some(rx) = slot.receivers.remove(&p) {
                inboxes.insert(p, rx);
            }
        }
        Ok(Registration { inboxes, notifiers })
    }

    /// Ends a session: later chunks for it are dropped, and it cannot run again here.
    pub fn unregister(&self, session: &SessionId) {
        let mut all = self.lock();
        all.running.remove(session);
        if all.ended.insert(*session) {
            all.ended_order.push_back(*session);
            if all.ended_order.len() > REMEMBERED_ENDED_SESSIONS {
                if let Some(old) = all.ended_order.pop_front() {
                    all.ended.remove(&old);
                }
            }
        }
    }

    /// Sessions currently known (registered or buffering).
    pub fn session_count(&self) -> usize {
        self.lock().running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(b: u8) -> MemberId {
        MemberId([b; 16])
    }

    fn chunk(session: SessionId, data: &[u8], last: bool) -> Chunk {
        chunk_at(session, 0, data, last)
    }

    fn chunk_at(session: SessionId, seq: u64, data: &[u8], last: bool) -> Chunk {
        Chunk::new(session, seq, last, data.to_vec())
    }

    #[test]
    fn early_chunks_wait_for_the_session_and_strangers_are_refused() {
        let router = MpcRouter::new();
        let s = SessionId([7; 16]);
        router.deliver(member(2), chunk(s, b"early", true)).unwrap();
        let reg = router
            .register(s, &[member(1), member(2), member(3)], member(1))
            .unwrap();
        match reg.inboxes[&member(2)].try_recv().unwrap() {
            Inbound::Data { last, data, start } => assert!(last && data[start..] == b"early"[..]),
            other => panic!("{other:?}"),
        }
        let err = router.deliver(member(9), chunk(s, b"x", true)).unwrap_err();
        assert!(err.to_string().contains("not a party"), "{err}");
        assert!(router.register(s, &[member(1)], member(1)).is_err());
        router.unregister(&s);
        assert_eq!(router.session_count(), 0);
        // Stragglers of an ended session are dropped, and it cannot start again.
        router.deliver(member(2), chunk(s, b"late", true)).unwrap();
        assert_eq!(router.session_count(), 0);
        let again = router.register(s, &[member(1), member(2), member(3)], member(1));
        assert!(matches!(again, Err(e) if e.to_string().contains("already ran")));
    }

    #[test]
    fn chunks_are_delivered_in_sequence_order() {
        let router = MpcRouter::new();
        let s = SessionId([8; 16]);
        let reg = router
            .register(s, &[member(1), member(2)], member(1))
            .unwrap();
        for seq in [2u64, 0, 1] {
            router
                .deliver(member(2), chunk_at(s, seq, &[seq as u8], seq == 2))
                .unwrap();
        }
        let got: Vec<u8> = (0..3)
            .map(|_| match reg.inboxes[&member(2)].try_recv().unwrap() {
                Inbound::Data { data, start, .. } => data[start],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, [0, 1, 2]);
        let stale = router.deliver(member(2), chunk_at(s, 1, b"x", true));
        assert!(stale.unwrap_err().to_string().contains("out of sequence"));
        let far = router.deliver(member(2), chunk_at(s, 3 + MAX_OUT_OF_ORDER, b"x", true));
        assert!(far.unwrap_err().to_string().contains("out of sequence"));
        router
            .deliver(member(2), chunk_at(s, 4, b"x", true))
            .unwrap();
        let twice = router.deliver(member(2), chunk_at(s, 4, b"x", true));
        assert!(twice.unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn unregistered_sessions_are_bounded_in_bytes_altogether() {
        let router = MpcRouter::new();
        let piece = vec![0u8; 64 << 20];
        let sessions = MAX_UNREGISTERED_TOTAL_BYTES / MAX_UNREGISTERED_BYTES;
        let mut refused = None;
        'fill: for i in 0..=sessions {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            for seq in 0..(MAX_UNREGISTERED_BYTES / piece.len()) as u64 {
                if let Err(e) =
                    router.deliver(member(2), chunk_at(SessionId(id), seq, &piece, false))
                {
                    refused = Some((i, e));
                    break 'fill;
                }
            }
        }
        let (at, err) = refused.expect("the total is bounded");
        assert_eq!(at, sessions, "{err}");
        assert!(err.to_string().contains("buffered"), "{err}");
    }

    #[test]
    fn unregistered_sessions_are_bounded() {
        let router = MpcRouter::new();
        for i in 0..MAX_UNREGISTERED_SESSIONS {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            router
                .deliver(member(2), chunk(SessionId(id), b"x", true))
                .unwrap();
        }
        let err = router
            .deliver(member(2), chunk(SessionId([0xff; 16]), b"x", true))
            .unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
    }
}
