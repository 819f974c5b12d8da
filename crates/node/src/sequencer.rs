//! Transaction intake and block production.
//!
//! Any node accepts a signed transaction after checking it against its ledger state, then
//! routes it to the current Raft leader's mempool (directly, or over the peer link). The
//! leader's builder loop takes everything pending, up to [`MAX_BLOCK_TXS`], builds a block on
//! the state it has applied, signs it, and proposes it to Raft. One block is in flight at a
//! time, so every block extends the one before it, and whatever arrives while a block is in
//! flight goes into the next: under load, blocks grow, which is the group commit.
//!
//! Routing survives a leader change: a forward that fails (the leader died, or leadership
//! moved) is retried against the leader Raft names next, until the submission's deadline.
//! A retry may deliver a transaction the leader already has, so the builder leaves out any
//! exact copy of a transaction already in the batch or already in the chain: a transaction
//! is recorded at most once, and its first outcome is the one the chain keeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consort_crypto::{MemberId, SecretKey};
use consort_ledger::{InvalidCode, LedgerState, Transaction};
use openraft::ServerState;
use tokio::sync::Notify;
use tokio::time::Instant;

use consort_engine::builder::{self, BuilderStep, BuilderView};

use crate::chain::Chain;
use crate::clock::Clock;
use crate::error::NodeError;
use crate::peer::PeerError;
use crate::raft::network::{
    decode, encode, ForwardRefusal, ForwardResponse, MemberDirectory, PeerRequest,
};
use crate::raft::{BlockEntry, NodeId, Raft};
use crate::transport::Transport;

pub use crate::clock::now_ms;
pub use consort_engine::builder::MAX_BLOCK_TXS;

/// How long a node that lost leadership keeps trying to hand its queued transactions on.
pub const LEADER_WAIT: Duration = Duration::from_secs(3);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node that is no longer the leader tries to pass a forwarded batch on; well
/// under [`FORWARD_TIMEOUT`], so the sender hears back and retries itself.
const PASS_ON_BUDGET: Duration = Duration::from_secs(2);
/// Pause between routing attempts (doubling from the first to the second value); a change
/// of leader ends the pause at once.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_millis(250);

pub struct Sequencer {
    chain: Arc<Chain>,
    raft: Raft,
    key: Arc<SecretKey>,
    me: NodeId,
    transport: Arc<dyn Transport>,
    mempool: Mutex<Vec<Transaction>>,
    wake: Notify,
    clock: Arc<dyn Clock>,
}

impl Sequencer {
    pub fn new(
        chain: Arc<Chain>,
        raft: Raft,
        key: Arc<SecretKey>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let me = key.member_id().raft_node_id();
        Self {
            chain,
            raft,
            key,
            me,
            transport,
            mempool: Mutex::new(Vec::new()),
            wake: Notify::new(),
            clock,
        }
    }

    /// The leader as this node currently sees it, waiting until `deadline` for one.
    async fn leader(&self, deadline: Instant) -> Result<NodeId, NodeError> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = metrics.borrow().current_leader {
                return Ok(leader);
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err(NodeError::NoQuorum(
                        "no Raft leader: too few members are reachable to order transactions"
                            .into(),
                    ))
                }
            }
        }
    }

    /// Routes transactions to the leader's mempool and returns, per transaction, whether the
    /// leader accepted it. `verified` says the signatures were checked on intake (this node
    /// led then); if this node turns out to lead now, unverified ones are checked before
    /// they are queued, because the builder records queued transactions as checked.
    ///
    /// A failed forward is retried against the leader Raft names next until `deadline`. The
    /// answer is `Err` only if no transaction can have reached a leader (or a leader's
    /// answer was malformed); a transaction that may have (a forward that timed out or
    /// broke off) but was never acknowledged ends with a refusal without a ledger code: its
    /// outcome is not known.
    pub async fn route(
        &self,
        txs: Vec<Transaction>,
        verified: bool,
        deadline: Instant,
    ) -> Result<Routing, NodeError> {
        let mut answers: ForwardResponse = vec![Ok(()); txs.len()];
        let mut uncertain = vec![false; txs.len()];
        if verified && self.is_leader() {
            self.enqueue(txs);
            return Ok(Routing { answers, uncertain });
        }
        let mut slots: Vec<usize> = (0..txs.len()).collect();
        let mut open = txs;
        let mut pause = RETRY_FIRST;
        let mut metrics = self.raft.metrics();
        while !open.is_empty() {
            let (tried, failure) = match self.route_once(&open, verified, deadline).await {
                Ok(replies) => {
                    let (mut again, mut again_slots) = (Vec::new(), Vec::new());
                    let attempt = std::mem::take(&mut open).into_iter().zip(replies);
                    for (slot, (tx, reply)) in slots.iter().zip(attempt) {
                        // Only a ledger rule's verdict is final; anything else (a node that
                        // could not pass the batch on) is worth another try.
                        if matches!(&reply, Err(r) if r.code.is_none()) {
                            uncertain[*slot] = true;
                            again.push(tx);
                            again_slots.push(*slot);
                        }
                        answers[*slot] = reply;
                    }
                    (open, slots) = (again, again_slots);
                    (metrics.borrow().current_leader, None)
                }
                Err(Attempt::Final(e)) => {
                    // Transactions answered in an earlier round, or that may have reached a
                    // leader, must not be reported as never routed.
                    let progressed =
                        slots.len() < answers.len() || slots.iter().any(|&slot| uncertain[slot]);
                    if !progressed {
                        return Err(e);
                    }
                    for &slot in &slots {
                        answers[slot] = Err(ForwardRefusal::new(format!(
                            "{e}; it may have reached the leader before"
                        )));
                    }
                    return Ok(Routing { answers, uncertain });
                }
                Err(Attempt::Retry {
                    leader,
                    error,
                    delivered,
                }) => {
                    if delivered {
                        slots.iter().for_each(|&slot| uncertain[slot] = true);
                    }
                    (leader, Some(error))
                }
            };
            if open.is_empty() {
                break;
            }
            if Instant::now() + pause >= deadline {
                let delivered = slots.iter().any(|&slot| uncertain[slot]);
                return match failure {
                    Some(e) if !delivered => Err(e),
                    failure => {
                        let reason = failure.map_or_else(
                            || "the leader could not take the transaction in".to_string(),
                            |e| e.to_string(),
                        );
                        for &slot in &slots {
                            answers[slot] = Err(ForwardRefusal::new(format!(
                                "{reason}; it may have reached the leader before"
                            )));
                        }
                        Ok(Routing { answers, uncertain })
                    }
                };
            }
            if let Some(e) = &failure {
                tracing::debug!("routing {} transactions: {e}; retrying", open.len());
            }
            // A new leader is worth trying at once; otherwise wait out the pause.
            let _ = tokio::time::timeout(pause, async {
                loop {
                    if metrics.changed().await.is_err() {
                        // Raft is shutting down: no change will come, so wait out the pause
                        // instead of spinning.
                        std::future::pending::<()>().await;
                    }
                    if metrics.borrow().current_leader != tried {
                        return;
                    }
                }
            })
            .await;
            pause = (pause * 2).min(RETRY_MAX);
        }
        Ok(Routing { answers, uncertain })
    }

    /// One routing attempt to the leader as this node sees it now.
    async fn route_once(
        &self,
        txs: &[Transaction],
        verified: bool,
        deadline: Instant,
    ) -> Result<ForwardResponse, Attempt> {
        let leader = self
            .leader(deadline)
            .await
            .map_err(|error| Attempt::Retry {
                leader: None,
                error,
                delivered: false,
            })?;
        if leader == self.me {
            return Ok(self.queue_as_leader(txs, verified).await);
        }
        let retry = |error: NodeError, delivered: bool| Attempt::Retry {
            leader: Some(leader),
            error,
            delivered,
        };
        let member = self.chain.member_for_node(leader).ok_or_else(|| {
            retry(
                NodeError::NoQuorum(format!("leader {leader} is not a known member")),
                false,
            )
        })?;
        let body = encode(&PeerRequest::Forward(
            txs.iter().map(|t| t.encode()).collect(),
        ))
        .map_err(Attempt::Final)?;
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(50), FORWARD_TIMEOUT);
        let reply = self
            .transport
            .request(member, body, timeout)
            .await
            .map_err(|e| {
                // A refused connection delivered nothing; any other failure may have come
                // after the leader took the batch in.
                let delivered =
                    !matches!(e, PeerError::Unreachable { .. } | PeerError::NoSuchPeer(_));
                retry(
                    NodeError::NoQuorum(format!("could not reach the leader {member}: {e}")),
                    delivered,
                )
            })?;
        let answers: ForwardResponse = decode(&reply).map_err(Attempt::Final)?;
        if answers.len() != txs.len() {
            return Err(Attempt::Final(NodeError::Internal(format!(
                "the leader answered {} of {} forwarded transactions",
                answers.len(),
                txs.len()
            ))));
        }
        Ok(answers)
    }

    /// Queues transactions on this node as leader, first checking signatures not yet
    /// checked (a follower's pre-check skips them, and it may have become leader since).
    async fn queue_as_leader(&self, txs: &[Transaction], verified: bool) -> ForwardResponse {
        if verified {
            self.enqueue(txs.to_vec());
            return vec![Ok(()); txs.len()];
        }
        let count = txs.len();
        let (txs, checks) = match self.chain.check_off_runtime(txs.to_vec(), true).await {
            Ok(checked) => checked,
            Err(e) => return vec![Err(ForwardRefusal::new(e.to_string())); count],
        };
        let mut answers = Vec::with_capacity(txs.len());
        let mut good = Vec::with_capacity(txs.len());
        for (tx, check) in txs.into_iter().zip(checks) {
            match check {
                Ok(()) => {
                    good.push(tx);
                    answers.push(Ok(()));
                }
                Err(e) => answers.push(Err(ForwardRefusal::from_ledger(&e))),
            }
        }
        self.enqueue(good);
        answers
    }

    /// Whether this node currently leads (a hint: leadership can move at any moment).
    pub fn believes_leader(&self) -> bool {
        self.is_leader()
    }

    /// Handles a follower's [`PeerRequest::Forward`]: re-checks every transaction (the leader
    /// trusts no other node's checks) and queues the good ones.
    pub async fn accept_forwarded(&self, raw: Vec<Vec<u8>>) -> ForwardResponse {
        let mut answers: ForwardResponse = Vec::with_capacity(raw.len());
        let mut well_formed = Vec::with_capacity(raw.len());
        let mut positions = Vec::with_capacity(raw.len());
        for bytes in &raw {
            match Transaction::decode(bytes) {
                Ok(tx) => {
                    positions.push(answers.len());
                    well_formed.push(tx);
                    answers.push(Ok(()));
                }
                Err(e) => answers.push(Err(ForwardRefusal::from_ledger(&e))),
            }
        }
        let (well_formed, checks) = match self.chain.check_off_runtime(well_formed, true).await {
            Ok(checked) => checked,
            Err(e) => return vec![Err(ForwardRefusal::new(e.to_string())); raw.len()],
        };
        let mut good = Vec::with_capacity(well_formed.len());
        for ((tx, check), position) in well_formed.into_iter().zip(checks).zip(positions) {
            match check {
                Ok(()) => good.push(tx),
                Err(e) => answers[position] = Err(ForwardRefusal::from_ledger(&e)),
            }
        }
        if self.is_leader() {
            self.enqueue(good);
        } else if !good.is_empty() {
            // Leadership moved while the request was in flight: pass the batch on, briefly;
            // a refusal without a ledger code tells the sender to try the next leader itself.
            let deadline = Instant::now() + PASS_ON_BUDGET;
            let count = good.len();
            let moved: Result<Routing, NodeError> =
                Box::pin(self.route(good, true, deadline)).await;
            let further: ForwardResponse = match moved {
                // A replay refusal after an attempt that may have delivered could be this
                // very transaction: only the sender can tell, on its own next try.
                Ok(Routing {
                    answers: passed,
                    uncertain,
                }) => passed
                    .into_iter()
                    .zip(uncertain)
                    .map(|(answer, uncertain)| match answer {
                        Err(r)
                            if uncertain
                                && r.invalid_code() == Some(InvalidCode::ReplayedNonce) =>
                        {
                            Err(ForwardRefusal::new(format!(
                                "{r} (perhaps by this very transaction)"
                            )))
                        }
                        answer => answer,
                    })
                    .collect(),
                Err(e) => vec![Err(ForwardRefusal::new(e.to_string())); count],
            };
            let mut further = further.into_iter();
            for answer in answers.iter_mut().filter(|a| a.is_ok()) {
                *answer = further.next().unwrap_or(Ok(()));
            }
        }
        answers
    }

    fn enqueue(&self, txs: Vec<Transaction>) {
        self.mempool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(txs);
        self.wake.notify_one();
    }

    fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.me)
    }

    /// What the builder sees now (`consort_engine::builder`).
    fn builder_view(&self) -> BuilderView {
        let (leading, applied_whole_log) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (
                m.state == ServerState::Leader && m.current_leader == Some(self.me),
                m.last_applied.map(|l| l.index) == m.last_log_index,
            )
        };
        BuilderView {
            leading,
            applied_whole_log,
            halted: self.chain.halted().is_some(),
            pending: self.mempool.lock().unwrap_or_else(|p| p.into_inner()).len(),
        }
    }

    /// The builder loop; returns when `shutdown` fires. The engine decides each step.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut last_timestamp = 0u64;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            let take = match builder::step(&self.builder_view()) {
                BuilderStep::Wait => continue,
                BuilderStep::HandOver => {
                    self.hand_over_mempool().await;
                    continue;
                }
                BuilderStep::Build { take } => take,
            };
            let batch: Vec<Transaction> = {
                let mut pool = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
                let take = take.min(pool.len());
                pool.drain(..take).collect()
            };
            let batch = self
                .chain
                .read(|state| without_copies(state, &self.chain, batch));
            if batch.is_empty() {
                continue;
            }
            last_timestamp = builder::block_timestamp(self.clock.now_ms(), last_timestamp);
            let checked = vec![true; batch.len()];
            let key = self.key.clone();
            let block = self
                .chain
                .read(|state| state.build_block(batch, &key, last_timestamp, &checked));
            let block_hash = block.hash();
            self.chain.note_built_here(block_hash);
            let entry = BlockEntry {
                block: block.encode(),
            };
            if let Err(e) = self.raft.client_write(entry).await {
                // The block may or may not commit under the next leader; its submitters
                // were not acknowledged and learn the outcome by timeout or lookup.
                tracing::warn!("proposing block {} failed: {e}", block.header.height);
            }
        }
    }

    /// A node that lost leadership forwards what it had queued but never proposed.
    async fn hand_over_mempool(&self) {
        let pending: Vec<Transaction> =
            std::mem::take(&mut *self.mempool.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return;
        }
        match self
            .route(pending, true, Instant::now() + LEADER_WAIT)
            .await
        {
            Ok(routing) => {
                let refused = routing.answers.iter().filter(|a| a.is_err()).count();
                if refused > 0 {
                    tracing::warn!("the new leader refused {refused} handed-over transactions");
                }
            }
            Err(e) => tracing::warn!("could not hand queued transactions to the new leader: {e}"),
        }
    }
}

/// The leader's answers to routed transactions.
pub struct Routing {
    /// Per transaction: accepted, or why not.
    pub answers: ForwardResponse,
    /// Per transaction: whether a failed earlier attempt may have delivered it, so that a
    /// "nonce already used" answer may be about this very transaction.
    pub uncertain: Vec<bool>,
}

/// Why a routing attempt failed.
enum Attempt {
    /// Worth another try (with the next leader): `leader` is the one tried, `delivered`
    /// whether the batch may have reached it anyway.
    Retry {
        leader: Option<NodeId>,
        error: NodeError,
        delivered: bool,
    },
    /// No retry can help (a malformed answer).
    Final(NodeError),
}

/// `batch` without exact copies of a transaction earlier in the batch or already in the
/// chain. A retried forward can deliver a transaction twice; a second copy would only be
/// recorded invalid (its nonce is used) and would shadow the first in the transaction index.
/// A different transaction reusing a nonce stays, to be recorded invalid as before.
fn without_copies(state: &LedgerState, chain: &Chain, batch: Vec<Transaction>) -> Vec<Transaction> {
    // Ids are hashed only for the rare transaction whose nonce is already taken.
    let mut first: HashMap<(MemberId, u64), usize> = HashMap::with_capacity(batch.len());
    let mut kept: Vec<Transaction> = Vec::with_capacity(batch.len());
    for tx in batch {
        if state.is_nonce_used(&tx.signer, tx.nonce)
            && matches!(chain.store().locate_tx(&tx.id()), Ok(Some(_)))
        {
            continue;
        }
        match first.get(&(tx.signer, tx.nonce)) {
            Some(&earlier) if kept[earlier].id() == tx.id() => continue,
            Some(_) => {}
            None => {
                first.insert((tx.signer, tx.nonce), kept.len());
            }
        }
        kept.push(tx);
    }
    kept
}

impl MemberDirectory for Chain {
    fn member_for_node(&self, node: NodeId) -> Option<MemberId> {
        Chain::member_for_node(self, node)
    }
}
