//! The node's core, independent of sockets: the chain over its block store, Raft over a
//! [`Transport`], the sequencer, and the background tasks that follow membership. It also
//! owns the submission path every front end uses ([`NodeShared::submit`]).
//!
//! [`crate::node::run`] puts TLS links and the HTTP API around a core; tests can instead wire
//! several cores together over an in-memory [`crate::transport::MemHub`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use consort_crypto::{Hash, MemberId, SecretKey};
use consort_ledger::{
    Genesis, InvalidCode, LedgerError, LedgerState, Transaction, TxOutcome, TxPayload,
};
use futures::future::BoxFuture;
use openraft::{BasicNode, ServerState};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use consort_engine::{Action, Engine, Event, RaftMembership, VoterStep};

use crate::chain::{Chain, Committed};
use crate::clock::{Clock, SystemClock};
use crate::error::NodeError;
use crate::peer::PeerHandler;
use crate::raft::log_store::LogStore;
use crate::raft::network::{decode, encode, Network, PeerRequest};
use crate::raft::state_machine::StateMachine;
use crate::raft::{raft_config, NodeId, Raft};
use crate::sequencer::Sequencer;
use crate::transport::Transport;

/// How long a submission may take, finding a leader included, before the submitter is told
/// it is not committed (yet).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Fault injection for the crash tests, inert unless the variable is set:
/// `CONSORT_TEST_EXIT_AFTER_SUBMIT=routed` makes the node process exit as soon as a dataset
/// record it took in was accepted by a leader, `=committed` once it is committed, in both
/// cases before the submitter is answered, as a crash at that moment would.
mod fault {
    use std::sync::OnceLock;

    pub const VARIABLE: &str = "CONSORT_TEST_EXIT_AFTER_SUBMIT";

    pub fn exit_if(stage: &str, dataset_record: bool) {
        static STAGE: OnceLock<Option<String>> = OnceLock::new();
        let armed = STAGE.get_or_init(|| std::env::var(VARIABLE).ok());
        if dataset_record && armed.as_deref() == Some(stage) {
            tracing::error!("{VARIABLE}={stage}: exiting before the submitter is answered");
            std::process::exit(70);
        }
    }
}

/// What the front ends (API, tests) share.
pub struct NodeShared {
    pub chain: Arc<Chain>,
    pub sequencer: Arc<Sequencer>,
    pub raft: Raft,
    /// The API bearer token; wiped from memory when the node stops.
    pub token: zeroize::Zeroizing<String>,
    pub me: MemberId,
    pub name: String,
    /// Incoming MPC traffic, by session.
    pub mpc: Arc<crate::mpc::MpcRouter>,
    /// The links to the other members (for MPC sessions).
    pub links: Arc<dyn Transport>,
    /// The member's signing key (decisions and attestations of joint queries).
    pub key: Arc<SecretKey>,
    /// Joint-query bookkeeping.
    pub queries: Arc<crate::query::QueryService>,
    /// The node's decisions (queries, membership, blocks), taken without I/O.
    pub engine: std::sync::Mutex<Engine>,
    /// Time, for the engine's events and the transactions this node signs.
    pub clock: Arc<dyn Clock>,
}

/// A submitted transaction that was taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Queued at the leader; not waited for.
    Pending(Hash),
    /// In a block applied on this node (valid, or recorded invalid with its reason).
    Committed(Committed),
}

/// Why a submitted transaction was not (yet) committed.
#[derive(Debug)]
pub enum Refusal {
    /// This node's check against its ledger state failed.
    Rejected(LedgerError),
    /// The leader's full check failed.
    RefusedByLeader(crate::raft::network::ForwardRefusal),
    /// Nothing committed it within [`COMMIT_TIMEOUT`]; it may still commit later.
    NotCommitted(Hash),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Rejected(e) => write!(f, "transaction rejected: {e}"),
            Refusal::RefusedByLeader(reason) => write!(f, "transaction rejected: {reason}"),
            Refusal::NotCommitted(id) => write!(
                f,
                "transaction {id} was not committed within {}s (is a majority of members up?); it may still be committed later",
                COMMIT_TIMEOUT.as_secs()
            ),
        }
    }
}

/// What became of a transaction the leader refused as a replayed nonce.
enum Replay {
    /// This very transaction is in the chain: an earlier copy of it committed.
    Ours(Committed),
    /// Another transaction holds the nonce: the refusal stands.
    Other,
    /// This node has not caught up far enough to tell.
    Unknown,
}

/// One accepted transaction on its way: its slot in the results, id, signer and nonce.
struct Routed {
    slot: usize,
    id: Hash,
    signer: MemberId,
    nonce: u64,
    dataset_record: bool,
}

impl NodeShared {
    /// Hands `event` to the engine and returns its actions. The engine lock is never held
    /// across an await.
    pub fn engine(&self, event: Event<'_>) -> Vec<Action> {
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .handle(event)
    }

    /// Checks, routes and (with `wait`) awaits a batch, all within [`COMMIT_TIMEOUT`]. Each
    /// transaction gets its own result; failing to reach any leader fails the whole call.
    ///
    /// Forwards are retried through a leader change (see [`Sequencer::route`]). A retry can
    /// deliver a transaction the dead leader's successor already holds: the builder keeps it
    /// out of a second block, and a "nonce already used" answer to a retry is looked up
    /// here, so the submitter gets the first copy's outcome. A transaction that was in the
    /// chain before it was submitted is refused as a replay, as always.
    pub async fn submit(
        &self,
        txs: Vec<Transaction>,
        wait: bool,
    ) -> Result<Vec<Result<Submitted, Refusal>>, NodeError> {
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        // The leader checks everything it queues; a follower pre-checks cheaply and leaves
        // the signatures to the leader, so each signature is verified strictly once on intake.
        let leading = self.sequencer.believes_leader();
        let (txs, checks) = self.chain.check_off_runtime(txs, leading).await?;
        let mut results: Vec<Result<Submitted, Refusal>> = Vec::with_capacity(txs.len());
        let mut accepted = Vec::new();
        let mut routed = Vec::new();
        let mut waiters = HashMap::new();
        for (tx, check) in txs.into_iter().zip(checks) {
            match check {
                Ok(()) => {
                    let id = tx.id();
                    if wait {
                        waiters.insert(results.len(), self.chain.wait_for(id));
                    }
                    routed.push(Routed {
                        slot: results.len(),
                        id,
                        signer: tx.signer,
                        nonce: tx.nonce,
                        dataset_record: matches!(
                            tx.payload,
                            TxPayload::DatasetRegister(_) | TxPayload::DatasetUpdate(_)
                        ),
                    });
                    results.push(Ok(Submitted::Pending(id)));
                    accepted.push(tx);
                }
                Err(e) => results.push(Err(Refusal::Rejected(e))),
            }
        }
        let routing = match self.sequencer.route(accepted, leading, deadline).await {
            Ok(routing) => routing,
            Err(e) => {
                for r in &routed {
                    self.chain.forget_waiter(&r.id);
                }
                return Err(e);
            }
        };
        let mut replays = Vec::new();
        let answers = routing.answers.into_iter().zip(routing.uncertain);
        for (r, (answer, uncertain)) in routed.iter().zip(answers) {
            let refusal = match answer {
                Ok(()) => {
                    fault::exit_if("routed", r.dataset_record);
                    continue;
                }
                Err(refusal) => refusal,
            };
            waiters.remove(&r.slot);
            self.chain.forget_waiter(&r.id);
            // Final or not is decided as `Sequencer::route` decides it: by whether the
            // refusal carries a code at all, even one this build does not know.
            results[r.slot] = match (refusal.code, refusal.invalid_code()) {
                // After a forward that may have got through, perhaps by this very
                // transaction: find out below.
                (_, Some(InvalidCode::ReplayedNonce)) if uncertain => {
                    replays.push((r, refusal));
                    continue;
                }
                (Some(_), _) => Err(Refusal::RefusedByLeader(refusal)),
                // Not a verdict on the transaction: it may have reached a leader.
                (None, _) => Err(Refusal::NotCommitted(r.id)),
            };
        }
        for r in &routed {
            let Some(receiver) = waiters.remove(&r.slot) else {
                continue;
            };
            results[r.slot] = match tokio::time::timeout_at(deadline, receiver).await {
                Ok(Ok(committed)) => {
                    fault::exit_if("committed", r.dataset_record);
                    Ok(Submitted::Committed(committed))
                }
                _ => {
                    self.chain.forget_waiter(&r.id);
                    Err(Refusal::NotCommitted(r.id))
                }
            };
        }
        for (r, refusal) in replays {
            results[r.slot] = match self.resolve_replay(r, deadline).await {
                Replay::Ours(committed) => Ok(Submitted::Committed(committed)),
                Replay::Other => Err(Refusal::RefusedByLeader(refusal)),
                Replay::Unknown => Err(Refusal::NotCommitted(r.id)),
            };
        }
        Ok(results)
    }

    /// Waits (until `deadline`) for this node to apply the block that used `r`'s nonce, to
    /// tell whether it holds this transaction or another one.
    async fn resolve_replay(&self, r: &Routed, deadline: tokio::time::Instant) -> Replay {
        let mut heights = self.chain.subscribe_height();
        loop {
            // The nonce first: a block is in the store before its state is visible, so once
            // the nonce shows as used the store holds whichever transaction used it. Looking
            // in the store first could miss a block that lands between the two reads.
            if self.chain.read(|s| s.is_nonce_used(&r.signer, r.nonce)) {
                return match self.recorded(&r.id) {
                    Some(committed) => Replay::Ours(committed),
                    None => Replay::Other,
                };
            }
            match tokio::time::timeout_at(deadline, heights.changed()).await {
                Ok(Ok(())) => {}
                _ => return Replay::Unknown,
            }
        }
    }

    /// Where the chain recorded transaction `id`, with its outcome.
    pub fn recorded(&self, id: &Hash) -> Option<Committed> {
        let store = self.chain.store();
        let found = store.locate_tx(id).and_then(|location| match location {
            Some((height, index)) => Ok(store.block(height)?.map(|b| (b, index))),
            None => Ok(None),
        });
        let (block, index) = match found {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!("looking up transaction {id}: {e}");
                return None;
            }
        };
        let outcome = block.outcomes.get(index as usize)?;
        Some(Committed {
            tx_id: *id,
            height: block.header.height,
            index,
            valid: matches!(outcome, TxOutcome::Valid),
            reason: match outcome {
                TxOutcome::Valid => None,
                TxOutcome::Invalid { code, detail } => Some(format!("{code:?}: {detail}")),
            },
        })
    }

    pub fn status_json(&self) -> serde_json::Value {
        let metrics = self.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let (chain_id, height, head, state_root, members) = self.chain.read(|s| {
            (
                s.chain_id(),
                s.height(),
                s.head_hash(),
                s.state_root(),
                s.members()
                    .iter()
                    .map(|(id, info)| {
                        json!({
                            "member_id": id.to_string(), "name": info.name,
                            "peer_addr": info.peer_addr, "api_addr": info.api_addr,
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let leader = metrics
            .current_leader
            .and_then(|n| self.chain.member_for_node(n))
            .map(|m| m.to_string());
        json!({
            "name": self.name,
            "member_id": self.me.to_string(),
            "chain_id": chain_id.to_string(),
            "height": height,
            "head_hash": head.to_string(),
            "state_root": state_root.to_string(),
            "role": role,
            "leader": leader,
            "term": metrics.current_term,
            "members": members,
            "halted": self.chain.halted(),
            "rules_version": self.chain.read(|s| s.rules_version()),
        })
    }
}

/// Answers peers' requests: Raft RPCs, forwarded transactions and MPC chunks.
struct PeerService {
    raft: Raft,
    sequencer: Arc<Sequencer>,
    mpc: Arc<crate::mpc::MpcRouter>,
    shared: Arc<NodeShared>,
}

impl PeerHandler for PeerService {
    fn handle(
        &self,
        from: MemberId,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, NodeError>> {
        if crate::mpc::wire::is_chunk(&body) {
            let delivered = crate::mpc::wire::decode_chunk(body)
                .and_then(|chunk| self.mpc.deliver(from, chunk))
                .map(|()| Vec::new());
            return Box::pin(async move { delivered });
        }
        let raft = self.raft.clone();
        let sequencer = self.sequencer.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            match decode::<PeerRequest>(&body)? {
                PeerRequest::AppendEntries(rpc) => encode(&raft.append_entries(rpc).await),
                PeerRequest::Vote(rpc) => encode(&raft.vote(rpc).await),
                PeerRequest::InstallSnapshot(rpc) => encode(&raft.install_snapshot(rpc).await),
                PeerRequest::Forward(txs) => encode(&sequencer.accept_forwarded(txs).await),
                PeerRequest::Ping => Ok(Vec::new()),
                PeerRequest::FetchPage(req) => {
                    encode(&crate::datasets::fetch::serve_page(&shared, from, req).await)
                }
                PeerRequest::FetchDone(req) => {
                    encode(&crate::datasets::fetch::serve_done(&shared, from, req).await)
                }
            }
        })
    }
}

/// Called with the ledger state whenever the member set may have changed (and once at
/// start): the TLS front end points its trust set and peer list at the members.
pub type MembersHook = Box<dyn Fn(&LedgerState) + Send + Sync>;

/// A running node core.
pub struct NodeCore {
    pub shared: Arc<NodeShared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn raft_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Raft(e.to_string())
}

impl NodeCore {
    /// Opens the node's stores under `data_dir`, starts Raft over `transport`, and starts the
    /// sequencer and membership tasks.
    pub async fn start(
        name: &str,
        key: Arc<SecretKey>,
        token: zeroize::Zeroizing<String>,
        genesis: &Genesis,
        data_dir: &Path,
        transport: Arc<dyn Transport>,
        on_members: MembersHook,
    ) -> Result<Self, NodeError> {
        let me = key.member_id();
        std::fs::create_dir_all(data_dir)
            .map_err(|e| NodeError::io(format!("creating {}", data_dir.display()), e))?;
        let store = crate::block_store::RedbBlockStore::open(&data_dir.join("blocks.redb"))?;
        let chain = Arc::new(Chain::open(genesis, Arc::new(store))?);
        chain.read(|s| on_members(s));
        let chain_id = chain.read(|s| s.chain_id());

        let raft_cfg = Arc::new(raft_config(&chain_id.to_string()).map_err(raft_err)?);
        let log_store = LogStore::open(&data_dir.join("raft.redb"))
            .map_err(|e| NodeError::Storage(e.to_string()))?;
        let state_machine = StateMachine::new(chain.clone()).map_err(raft_err)?;
        let network = Network::new(transport.clone(), chain.clone());
        let raft = Raft::new(
            me.raft_node_id(),
            raft_cfg,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(raft_err)?;
        let founders: BTreeMap<NodeId, BasicNode> = genesis
            .members
            .iter()
            .map(|m| (m.id().raft_node_id(), BasicNode::new(&m.peer_addr)))
            .collect();
        if founders.contains_key(&me.raft_node_id())
            && !raft.is_initialized().await.map_err(raft_err)?
        {
            // Every founder proposes the same initial membership; openraft accepts it once.
            if let Err(e) = raft.initialize(founders).await {
                tracing::debug!("raft initialize: {e}");
            }
        }

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sequencer = Arc::new(Sequencer::new(
            chain.clone(),
            raft.clone(),
            key.clone(),
            transport.clone(),
            clock.clone(),
        ));
        let shared = Arc::new(NodeShared {
            chain: chain.clone(),
            sequencer: sequencer.clone(),
            raft: raft.clone(),
            token,
            me,
            name: name.to_string(),
            mpc: crate::mpc::MpcRouter::new(),
            links: transport.clone(),
            key,
            queries: crate::query::QueryService::new(),
            engine: std::sync::Mutex::new(Engine::new(me)),
            clock,
        });
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(sequencer.run(stop_rx.clone())),
            tokio::spawn(follow_membership(
                shared.clone(),
                on_members,
                stop_rx.clone(),
            )),
            tokio::spawn(crate::query::follow_queries(shared.clone(), stop_rx)),
        ];
        Ok(Self {
            shared,
            stop,
            tasks,
        })
    }

    /// The handler that answers this node's peers.
    pub fn peer_handler(&self) -> Arc<dyn PeerHandler> {
        Arc::new(PeerService {
            raft: self.shared.raft.clone(),
            sequencer: self.shared.sequencer.clone(),
            mpc: self.shared.mpc.clone(),
            shared: self.shared.clone(),
        })
    }

    /// A future that completes when [`NodeCore::shutdown`] begins.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    /// Stops Raft and the background tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.shared.raft.shutdown().await;
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Applies ledger membership changes to the front end (through the hook) and, on the
/// leader, to Raft's voter set (as the engine decides).
async fn follow_membership(
    node: Arc<NodeShared>,
    on_members: MembersHook,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = node.chain.subscribe_members();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = changes.changed() => node.chain.read(|s| on_members(s)),
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = reconcile_voters(&node).await {
            tracing::warn!("updating the Raft membership: {e}");
        }
    }
}

/// Raft's view of the membership, as the engine reads it.
fn raft_membership(raft: &Raft) -> RaftMembership {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    RaftMembership {
        leading: metrics.state == ServerState::Leader,
        voters: membership.voter_ids().collect(),
        known: membership.nodes().map(|(id, _)| *id).collect(),
        matched: metrics
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter_map(|(id, log)| log.as_ref().map(|l| (*id, l.index)))
                    .collect()
            })
            .unwrap_or_default(),
        last_log: metrics.last_log_index.unwrap_or(0),
    }
}

/// Carries out the engine's membership steps (`consort_engine::membership`).
async fn reconcile_voters(node: &NodeShared) -> Result<(), NodeError> {
    let raft = raft_membership(&node.raft);
    if !raft.leading {
        return Ok(());
    }
    let members: BTreeMap<NodeId, String> = node.chain.read(|s| {
        s.members()
            .iter()
            .map(|(id, m)| (id.raft_node_id(), m.peer_addr.clone()))
            .collect()
    });
    let actions = node.engine(Event::Membership {
        raft: &raft,
        members: &members,
    });
    for action in actions {
        match action {
            Action::Voters(VoterStep::AddLearner { node: id, addr }) => {
                node.raft
                    .add_learner(id, BasicNode::new(&addr), false)
                    .await
                    .map_err(raft_err)?;
            }
            Action::Voters(VoterStep::ChangeVoters(voters)) => {
                node.raft
                    .change_membership(voters, false)
                    .await
                    .map_err(raft_err)?;
            }
            _ => {}
        }
    }
    Ok(())
}
