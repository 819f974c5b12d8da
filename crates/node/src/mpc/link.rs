//! [`PeerMpcTransport`]: the MPC protocol's [`consort_mpc::Transport`] over the node's
//! authenticated peer links.
//!
//! The protocol thread blocks; the links are async. `send` queues the message for a task
//! that owns the link to that peer and sends it as chunks of at most
//! [`CHUNK_BYTES`](super::wire::CHUNK_BYTES), one request at a time, so order is kept
//! without sequence numbers. `recv` waits on the session's inbox for that peer, which the
//! peer service fills. When the link task fails (the peer vanished or refused), it says so
//! into the same inbox, so a party waiting on that peer fails at once instead of at its
//! timeout.

use crate::error::NodeError;
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consort_crypto::MemberId;
use consort_mpc::{MpcError, PartyId};

use super::router::{Inbound, MpcRouter};
use super::wire::{encode_chunk, encode_close, SessionId, CHUNK_BYTES};
use crate::transport::Transport as PeerTransport;

/// One party's end of an MPC session over the peer links.
pub struct PeerMpcTransport {
    me: PartyId,
    session: SessionId,
    names: Vec<String>,
    outboxes: HashMap<PartyId, tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    inboxes: HashMap<PartyId, mpsc::Receiver<Inbound>>,
    /// Peers that left the session or whose link failed, with the reason: every later
    /// wait on them fails at once instead of at the timeout.
    dead: HashMap<PartyId, Option<String>>,
    timeout: Duration,
    router: Arc<MpcRouter>,
    bytes_sent: u64,
    messages_sent: u64,
}

impl PeerMpcTransport {
    /// Joins `session` as party `parties.index_of(me)`. `names` label the parties in
    /// errors; `timeout` bounds every wait for a peer. Must be called inside a Tokio
    /// runtime (the link tasks are spawned on it).
    pub fn open(
        router: Arc<MpcRouter>,
        links: Arc<dyn PeerTransport>,
        session: SessionId,
        parties: Vec<MemberId>,
        names: Vec<String>,
        me: MemberId,
        timeout: Duration,
    ) -> Result<Self, NodeError> {
        let my_index = parties.iter().position(|p| *p == me).ok_or_else(|| {
            NodeError::Rejected(format!(
                "this node ({me}) is not a party of session {session}"
            ))
        })?;
        if names.len() != parties.len() {
            return Err(NodeError::Internal("one name per party is needed".into()));
        }
        let mut registration = router.register(session, &parties, me)?;
        let mut outboxes = HashMap::new();
        let mut inboxes = HashMap::new();
        for (index, &member) in parties.iter().enumerate() {
            if index == my_index {
                continue;
            }
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
            let notify = registration.notifiers.remove(&member);
            tokio::spawn(link_task(
                links.clone(),
                member,
                session,
                timeout,
                rx,
                notify,
            ));
            outboxes.insert(index, tx);
            if let Some(inbox) = registration.inboxes.remove(&member) {
                inboxes.insert(index, inbox);
            }
        }
        Ok(Self {
            me: my_index,
            session,
            names,
            outboxes,
            inboxes,
            dead: HashMap::new(),
            timeout,
            router,
            bytes_sent: 0,
            messages_sent: 0,
        })
    }

    /// The session this transport belongs to.
    pub fn session(&self) -> SessionId {
        self.session
    }

    fn name(&self, p: PartyId) -> String {
        self.names
            .get(p)
            .cloned()
            .unwrap_or_else(|| format!("party {p}"))
    }
}

/// What a session hands its link task for one peer.
enum Outgoing {
    Message(Vec<u8>),
    /// The session is over here: tell the peer, after everything queued before.
    Close,
}

/// The request bodies of one queued message, numbered from `first`. They are encoded as
/// the window takes them, so a long message costs one window of copies in memory, and its
/// first chunk leaves before the rest is copied.
struct ChunkBodies {
    session: SessionId,
    first: u64,
    /// `None` for the close notice.
    message: Option<Vec<u8>>,
    pieces: usize,
    next: usize,
}

impl ChunkBodies {
    fn new(session: SessionId, first: u64, outgoing: Outgoing) -> Self {
        let (message, pieces) = match outgoing {
            Outgoing::Message(m) => {
                let pieces = m.len().div_ceil(CHUNK_BYTES).max(1);
                (Some(m), pieces)
            }
            Outgoing::Close => (None, 1),
        };
        Self {
            session,
            first,
            message,
            pieces,
            next: 0,
        }
    }
}

impl Iterator for ChunkBodies {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.next >= self.pieces {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let seq = self.first + i as u64;
        Some(match &self.message {
            None => encode_close(self.session, seq),
            Some(m) => {
                let piece =
                    &m[(i * CHUNK_BYTES).min(m.len())..((i + 1) * CHUNK_BYTES).min(m.len())];
                encode_chunk(self.session, seq, i + 1 == self.pieces, piece)
            }
        })
    }
}

/// Requests in flight to one peer: enough to keep the link busy while earlier chunks are
/// acknowledged, few enough to bound what the receiver holds out of order.
const WINDOW: usize = 16;

/// Sends the messages queued for `peer` as numbered chunks, up to [`WINDOW`] at a time,
/// until the session drops its end.
async fn link_task(
    links: Arc<dyn PeerTransport>,
    peer: MemberId,
    session: SessionId,
    timeout: Duration,
    queue: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    notify: Option<mpsc::Sender<Inbound>>,
) {
    use futures::StreamExt;
    let messages = futures::stream::unfold(queue, |mut queue| async move {
        queue.recv().await.map(|message| (message, queue))
    });
    let mut seq = 0u64;
    let bodies = messages.flat_map(move |outgoing| {
        let bodies = ChunkBodies::new(session, seq, outgoing);
        seq += bodies.pieces as u64;
        futures::stream::iter(bodies)
    });
    let sent = bodies
        .map(|body| links.request(peer, body, timeout))
        .buffer_unordered(WINDOW);
    let mut sent = std::pin::pin!(sent);
    while let Some(result) = sent.next().await {
        if let Err(e) = result {
            if let Some(notify) = &notify {
                let _ = notify.send(Inbound::Gone(e.to_string()));
            }
            return;
        }
    }
}

impl consort_mpc::Transport for PeerMpcTransport {
    fn me(&self) -> PartyId {
        self.me
    }

    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> consort_mpc::Result<()> {
        let len = msg.len() as u64;
        let outbox = self.outboxes.get(&to).ok_or_else(|| {
            MpcError::InvalidArgument(format!("no party {to} in session {}", self.session))
        })?;
        outbox
            .send(Outgoing::Message(msg))
            .map_err(|_| MpcError::PeerGone {
                peer: self.name(to),
            })?;
        self.bytes_sent += len;
        self.messages_sent += 1;
        Ok(())
    }

    fn recv(&mut self, from: PartyId) -> consort_mpc::Result<Vec<u8>> {
        let peer = self.name(from);
        let timeout = self.timeout;
        let inbox = self.inboxes.get(&from).ok_or_else(|| {
            MpcError::InvalidArgument(format!("no party {from} in session {}", self.session))
        })?;
        match self.dead.get(&from) {
            Some(None) => return Err(MpcError::PeerGone { peer }),
            Some(Some(reason)) => {
                return Err(MpcError::Transport {
                    peer,
                    reason: reason.clone(),
                })
            }
            None => {}
        }
        let deadline = Instant::now() + timeout;
        let mut pieces: Vec<(Vec<u8>, usize)> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(left) {
                Ok(Inbound::Data {
                    last,
                    mut data,
                    start,
                }) => {
                    if pieces.is_empty() && last {
                        // A one-chunk message: shift its header out in place.
                        data.drain(..start.min(data.len()));
                        return Ok(data);
                    }
                    pieces.push((data, start));
                    if last {
                        let total = pieces.iter().map(|(d, s)| d.len().saturating_sub(*s)).sum();
                        let mut message = Vec::with_capacity(total);
                        for (d, s) in &pieces {
                            message.extend_from_slice(d.get(*s..).unwrap_or_default());
                        }
                        return Ok(message);
                    }
                }
                Ok(Inbound::Gone(reason)) => {
                    self.dead.insert(from, Some(reason.clone()));
                    return Err(MpcError::Transport { peer, reason });
                }
                Ok(Inbound::Closed) => {
                    self.dead.insert(from, None);
                    return Err(MpcError::PeerGone { peer });
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(MpcError::Timeout {
                        peer,
                        after: timeout,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => return Err(MpcError::PeerGone { peer }),
            }
        }
    }

    fn peer_name(&self, p: PartyId) -> String {
        self.name(p)
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    fn messages_sent(&self) -> u64 {
        self.messages_sent
    }
}

impl Drop for PeerMpcTransport {
    fn drop(&mut self) {
        // The link tasks finish sending what is queued, tell the peers this party left,
        // and end with their queues.
        for outbox in self.outboxes.values() {
            let _ = outbox.send(Outgoing::Close);
        }
        self.router.unregister(&self.session);
    }
}
