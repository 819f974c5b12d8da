//! Transaction intake and block production.
//!
//! Any node accepts a signed transaction after checking it against its ledger state, then
//! routes it to the current Raft leader's mempool (directly, or over the peer link). The
//! leader's builder loop takes everything pending, up to [`MAX_BLOCK_TXS`], builds a block on
//! the state it has applied, signs it, and proposes it to Raft. One block is in flight at a
//! time, so every block extends the one before it, and whatever arrives while a block is in
//! flight goes into the next: under load, blocks grow, which is the group commit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consort_crypto::{MemberId, SecretKey};
use consort_ledger::Transaction;
use openraft::ServerState;
use tokio::sync::Notify;

use crate::chain::Chain;
use crate::error::NodeError;
use crate::raft::network::{
    decode, encode, ForwardRefusal, ForwardResponse, MemberDirectory, PeerRequest,
};
use crate::raft::{BlockEntry, NodeId, Raft};
use crate::transport::Transport;

/// The most transactions one block holds; keeps a block (and an AppendEntries batch of
/// [`crate::raft::MAX_PAYLOAD_ENTRIES`] blocks) far below the peer frame limit.
pub const MAX_BLOCK_TXS: usize = 4096;

/// How long a submission may wait for a leader to appear before it is refused.
pub const LEADER_WAIT: Duration = Duration::from_secs(3);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Sequencer {
    chain: Arc<Chain>,
    raft: Raft,
    key: Arc<SecretKey>,
    me: NodeId,
    transport: Arc<dyn Transport>,
    mempool: Mutex<Vec<Transaction>>,
    wake: Notify,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Sequencer {
    pub fn new(
        chain: Arc<Chain>,
        raft: Raft,
        key: Arc<SecretKey>,
        transport: Arc<dyn Transport>,
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
        }
    }

    /// The leader as this node currently sees it, waiting up to [`LEADER_WAIT`] for one.
    async fn leader(&self) -> Result<NodeId, NodeError> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
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
    /// leader accepted it. Transactions this node queues itself (as leader) must already have
    /// passed [`consort_ledger::LedgerState::check_submissions`]; the leader fully re-checks
    /// forwarded ones, so a follower needs only the cheap pre-check.
    pub async fn route(&self, txs: Vec<Transaction>) -> Result<ForwardResponse, NodeError> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        let leader = self.leader().await?;
        if leader == self.me {
            let accepted = vec![Ok(()); txs.len()];
            self.enqueue(txs);
            return Ok(accepted);
        }
        let member = self
            .chain
            .member_for_node(leader)
            .ok_or_else(|| NodeError::NoQuorum(format!("leader {leader} is not a known member")))?;
        let body = encode(&PeerRequest::Forward(
            txs.iter().map(|t| t.encode()).collect(),
        ))
        .map_err(NodeError::Internal)?;
        let reply = self
            .transport
            .request(member, body, FORWARD_TIMEOUT)
            .await
            .map_err(|e| {
                NodeError::NoQuorum(format!("could not reach the leader {member}: {e}"))
            })?;
        let answers: ForwardResponse = decode(&reply).map_err(NodeError::Internal)?;
        if answers.len() != txs.len() {
            return Err(NodeError::Internal(format!(
                "the leader answered {} of {} forwarded transactions",
                answers.len(),
                txs.len()
            )));
        }
        Ok(answers)
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
            // Leadership moved while the request was in flight: pass the batch on.
            let moved: Result<ForwardResponse, NodeError> = Box::pin(self.route(good)).await;
            match moved {
                Ok(further) => {
                    let mut further = further.into_iter();
                    for answer in answers.iter_mut().filter(|a| a.is_ok()) {
                        *answer = further.next().unwrap_or(Ok(()));
                    }
                }
                Err(e) => return vec![Err(ForwardRefusal::new(e.to_string())); raw.len()],
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

    /// True when this node leads and has applied its whole log, so a block built on its
    /// state extends the chain every node will have.
    fn ready_to_build(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader
            && m.current_leader == Some(self.me)
            && m.last_applied.map(|l| l.index) == m.last_log_index
    }

    /// The builder loop; returns when `shutdown` fires.
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
            if self.chain.halted().is_some() {
                continue;
            }
            if !self.ready_to_build() {
                if !self.is_leader() {
                    self.hand_over_mempool().await;
                }
                continue;
            }
            let batch: Vec<Transaction> = {
                let mut pool = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
                let take = pool.len().min(MAX_BLOCK_TXS);
                pool.drain(..take).collect()
            };
            if batch.is_empty() {
                continue;
            }
            last_timestamp = now_ms().max(last_timestamp);
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
        match self.route(pending).await {
            Ok(answers) => {
                let refused = answers.iter().filter(|a| a.is_err()).count();
                if refused > 0 {
                    tracing::warn!("the new leader refused {refused} handed-over transactions");
                }
            }
            Err(e) => tracing::warn!("could not hand queued transactions to the new leader: {e}"),
        }
    }
}

impl MemberDirectory for Chain {
    fn member_for_node(&self, node: NodeId) -> Option<MemberId> {
        Chain::member_for_node(self, node)
    }
}
