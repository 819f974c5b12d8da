//! Joint queries on a node (DESIGN §8): the requester's side ([`run_query`]: plan, choose the
//! compute nodes, record the request, wait for the answer), and the follower task
//! ([`follow_queries`]) through which every node plays its parts as the ledger records
//! requests and decisions: an owner checks the plan against its own grants and records its
//! decision ([`owner`]); once every owner approved, the owners, the compute nodes and the
//! requester run the query's MPC session and the compute nodes attest the result
//! ([`session`]).
//!
//! The planner, the policy check and the MPC protocol are pure and live in
//! `consort-query`; this module only reads the ledger, talks to the member's database and
//! moves bytes.

mod owner;
mod session;
mod views;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use consort_crypto::{hash_domain, Hash, MemberId};
use consort_ledger::policy::{QueryOutcome, QueryRequest, QueryResult};
use consort_ledger::{LedgerState, Transaction, TxPayload};
use consort_query::{Catalog, ResultTable};
use consort_store::{open_store, DatasetStore};
use tokio::sync::watch;

pub use views::{grants_json, queries_json, query_json};

use crate::chain::Committed;
use crate::core::{NodeShared, Refusal, Submitted};
use crate::error::NodeError;

/// How long the requester waits for every owner's decision.
pub const DECISION_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on any one wait for a peer inside a query's MPC session.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra patience per row of the joined datasets while the owners run their PSI (which
/// costs about 70 µs of one core per row and owner).
pub const PSI_WAIT_PER_ROW: Duration = Duration::from_micros(200);
/// How long a submission keeps retrying while no leader can be reached.
const ROUTE_RETRY: Duration = Duration::from_secs(15);
/// How long a peer has to answer the liveness ping when compute nodes are chosen.
const PING_TIMEOUT: Duration = Duration::from_millis(1500);

/// A node's query bookkeeping: what it already decided or joined, and the answers it
/// received as a requester (kept in memory only: the ledger keeps the record, the answer
/// itself is the requester's to keep).
#[derive(Default)]
pub struct QueryService {
    database_url: OnceLock<String>,
    /// The member's commitment secret, to open its salted datasets (`dataset fetch`).
    commitment_key: OnceLock<zeroize::Zeroizing<[u8; 32]>>,
    store: tokio::sync::OnceCell<Arc<dyn DatasetStore>>,
    decided: Mutex<HashSet<Hash>>,
    joined: Mutex<HashSet<Hash>>,
    answers: Mutex<HashMap<Hash, Result<ResultTable, String>>>,
    answered: watch::Sender<u64>,
}

impl QueryService {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Points the service at the member's database (owners push their part down to it).
    pub fn set_database_url(&self, url: String) {
        let _ = self.database_url.set(url);
    }

    /// Gives the service the member's commitment secret (`MemberDir::commitment_key`).
    pub fn set_commitment_key(&self, key: zeroize::Zeroizing<[u8; 32]>) {
        let _ = self.commitment_key.set(key);
    }

    pub(crate) fn commitment_key(&self) -> Result<&[u8; 32], NodeError> {
        self.commitment_key
            .get()
            .map(|k| &**k)
            .ok_or_else(|| NodeError::Config("this node has no commitment key configured".into()))
    }

    pub(crate) async fn store(&self) -> Result<Arc<dyn DatasetStore>, NodeError> {
        let url = self.database_url.get().cloned().ok_or_else(|| {
            NodeError::Config("this node has no dataset database configured".into())
        })?;
        self.store
            .get_or_try_init(|| async move { open_store(&url).await.map_err(NodeError::Store) })
            .await
            .cloned()
    }

    fn first_time(set: &Mutex<HashSet<Hash>>, id: Hash) -> bool {
        set.lock().map(|mut s| s.insert(id)).unwrap_or(false)
    }

    fn record_answer(&self, id: Hash, answer: Result<ResultTable, String>) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(id, answer);
        }
        self.answered.send_modify(|n| *n += 1);
    }

    fn take_answer(&self, id: &Hash) -> Option<Result<ResultTable, String>> {
        self.answers.lock().ok().and_then(|mut a| a.remove(id))
    }
}

/// The catalog the planner sees: the members and every dataset on the ledger.
pub fn catalog(state: &LedgerState) -> Catalog {
    Catalog {
        members: state
            .members()
            .iter()
            .map(|(id, m)| (*id, m.name.clone()))
            .collect(),
        datasets: state.datasets().values().cloned().collect(),
    }
}

/// The session of a query's MPC run: the first 16 bytes of the query id.
fn session_of(query: &Hash) -> crate::mpc::SessionId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&query.0[..16]);
    crate::mpc::SessionId(id)
}

/// Signs `payload` with this node's key and waits for it to be committed.
pub(crate) async fn submit_payload(
    node: &NodeShared,
    payload: TxPayload,
) -> Result<Committed, NodeError> {
    let chain_id = node.chain.read(|s| s.chain_id());
    let tx = Transaction::sign(
        payload,
        &node.key,
        &chain_id,
        rand::random(),
        crate::sequencer::now_ms(),
    );
    submit_tx(node, tx).await
}

pub(crate) async fn submit_tx(node: &NodeShared, tx: Transaction) -> Result<Committed, NodeError> {
    let kind = tx.kind_name();
    // A leader that just vanished makes routing fail until Raft elects another; the
    // transaction was not taken in, so sending it again is safe.
    let retry_until = tokio::time::Instant::now() + ROUTE_RETRY;
    let mut results = loop {
        match node.submit(vec![tx.clone()], true).await {
            Err(NodeError::NoQuorum(reason)) if tokio::time::Instant::now() < retry_until => {
                tracing::debug!("{kind}: {reason}; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => break other?,
        }
    };
    match results.pop() {
        Some(Ok(Submitted::Committed(c))) if c.valid => Ok(c),
        Some(Ok(Submitted::Committed(c))) => Err(NodeError::Rejected(format!(
            "the ledger recorded the {kind} as invalid: {}",
            c.reason.unwrap_or_default()
        ))),
        Some(Ok(Submitted::Pending(id))) => Err(NodeError::Rejected(format!(
            "{kind} {id} was queued but not confirmed"
        ))),
        Some(Err(Refusal::NotCommitted(id))) => {
            Err(NodeError::NoQuorum(Refusal::NotCommitted(id).to_string()))
        }
        Some(Err(refusal)) => Err(NodeError::Rejected(refusal.to_string())),
        None => Err(NodeError::Internal("submission returned no result".into())),
    }
}

/// Records that a query failed (nothing was revealed).
async fn record_failure(node: &NodeShared, query: Hash, reason: String) {
    let already = node
        .chain
        .read(|s| s.query(&query).map(|q| q.result.is_some()))
        .unwrap_or(true);
    if already {
        return;
    }
    let payload = TxPayload::QueryResult(QueryResult {
        query,
        outcome: QueryOutcome::Failed {
            reason: consort_ledger::rules_limits::bounded_text(&reason),
        },
    });
    if let Err(e) = submit_payload(node, payload).await {
        tracing::warn!("recording the failure of query {query}: {e}");
    }
}

/// The members that answer a ping now (this node always counts as live).
async fn live_members(node: &NodeShared) -> Vec<MemberId> {
    let members: Vec<MemberId> = node.chain.read(|s| s.members().keys().copied().collect());
    let ping =
        crate::raft::network::encode(&crate::raft::network::PeerRequest::Ping).unwrap_or_default();
    let probes = members.iter().map(|m| {
        let links = node.links.clone();
        let body = ping.clone();
        let me = node.me;
        let m = *m;
        async move {
            if m == me {
                return Some(m);
            }
            links.request(m, body, PING_TIMEOUT).await.ok().map(|_| m)
        }
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Three compute nodes chosen deterministically from the live members: ordered by
/// `hash_domain("consort/compute/v1", [plan_hash, member id])`, so the choice spreads
/// over members and anyone can recompute it from the request.
pub fn choose_compute(plan_hash: &Hash, live: &[MemberId]) -> Option<Vec<MemberId>> {
    let mut ranked: Vec<(Hash, MemberId)> = live
        .iter()
        .map(|m| (hash_domain("consort/compute/v1", &[&plan_hash.0, &m.0]), *m))
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.1 == b.1);
    (ranked.len() >= 3).then(|| ranked.into_iter().take(3).map(|(_, m)| m).collect())
}

/// What the requester gets back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryAnswer {
    pub query_id: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub suppressed_groups: u64,
    pub ledger: LedgerRefs,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerRefs {
    pub request: String,
    pub decisions: Vec<String>,
    pub result: Option<String>,
}

/// Plans `sql`, records the request, and waits for the answer (or the recorded failure).
/// Errors in the SQL or the catalog are returned before anything is recorded.
pub async fn run_query(
    node: &Arc<NodeShared>,
    sql: &str,
    timeout: Duration,
) -> Result<QueryAnswer, NodeError> {
    let plan = node
        .chain
        .read(|s| consort_query::plan(sql, &catalog(s)))
        .map_err(|e| NodeError::BadRequest(e.to_string()))?;
    let plan_hash = plan.hash();
    let live = live_members(node).await;
    let compute = choose_compute(&plan_hash, &live).ok_or_else(|| {
        NodeError::NoQuorum(format!(
            "a joint query needs three live members to compute it; only {} answered",
            live.len()
        ))
    })?;
    let request = QueryRequest {
        sql: sql.to_string(),
        plan_hash,
        datasets: plan.datasets.clone(),
        compute,
    };
    let owners = request.owners();
    let committed = submit_payload(node, TxPayload::QueryRequest(request)).await?;
    let query = committed.tx_id;
    let deadline = tokio::time::Instant::now() + timeout;
    let decided_by = tokio::time::Instant::now() + DECISION_TIMEOUT.min(timeout);
    let mut heights = node.chain.subscribe_height();
    let mut answered = node.queries.answered.subscribe();
    loop {
        let (decisions, result) = node.chain.read(|s| {
            s.query(&query)
                .map(|q| (q.decisions.clone(), q.result.clone()))
                .unwrap_or_default()
        });
        if let Some((result, _)) = &result {
            if let QueryOutcome::Failed { reason } = &result.outcome {
                return Err(NodeError::PeersFailed(format!(
                    "query {query} failed: {reason}"
                )));
            }
        }
        if let Some((member, decision, _)) = decisions.iter().find(|d| !d.1.approve) {
            let name = member_name(node, member);
            let reason = format!("refused by {name}: {}", decision.reason);
            record_failure(node, query, reason.clone()).await;
            return Err(NodeError::Forbidden(format!("query {query} {reason}")));
        }
        if let Some(answer) = node.queries.take_answer(&query) {
            match answer {
                Ok(table) => return finish(node, query, table, deadline).await,
                Err(reason) => {
                    record_failure(node, query, reason.clone()).await;
                    return Err(NodeError::PeersFailed(format!(
                        "query {query} failed: {reason}"
                    )));
                }
            }
        }
        let now = tokio::time::Instant::now();
        if decisions.len() < owners.len() && now >= decided_by {
            let missing: Vec<String> = owners
                .iter()
                .filter(|o| !decisions.iter().any(|d| d.0 == **o))
                .map(|o| member_name(node, o))
                .collect();
            let reason = format!(
                "no decision from {} within {} s (is its node up?)",
                missing.join(", "),
                DECISION_TIMEOUT.as_secs()
            );
            record_failure(node, query, reason.clone()).await;
            return Err(NodeError::TimedOut(format!(
                "query {query} failed: {reason}"
            )));
        }
        if now >= deadline {
            let reason = format!("no answer within {} s", timeout.as_secs());
            record_failure(node, query, reason.clone()).await;
            return Err(NodeError::TimedOut(format!(
                "query {query} failed: {reason}"
            )));
        }
        tokio::select! {
            _ = heights.changed() => {}
            _ = answered.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// After the reveal: waits for the compute nodes' attested `QueryResult` and builds the
/// answer.
async fn finish(
    node: &NodeShared,
    query: Hash,
    table: ResultTable,
    deadline: tokio::time::Instant,
) -> Result<QueryAnswer, NodeError> {
    let mut heights = node.chain.subscribe_height();
    loop {
        let entry = node.chain.read(|s| s.query(&query).cloned());
        let Some(entry) = entry else {
            return Err(NodeError::Internal(format!("query {query} vanished")));
        };
        if let Some((result, result_tx)) = &entry.result {
            if let QueryOutcome::Revealed { result_hash, .. } = &result.outcome {
                if *result_hash != table.hash() {
                    return Err(NodeError::Rejected(format!(
                        "the attested result hash {result_hash} does not match the revealed table"
                    )));
                }
            }
            return Ok(QueryAnswer {
                query_id: query.to_string(),
                columns: table.columns.clone(),
                rows: table
                    .rows
                    .iter()
                    .map(|r| r.iter().map(views::value_json).collect())
                    .collect(),
                suppressed_groups: table.suppressed_groups,
                ledger: LedgerRefs {
                    request: query.to_string(),
                    decisions: entry.decisions.iter().map(|d| d.2.to_string()).collect(),
                    result: Some(result_tx.to_string()),
                },
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NodeError::TimedOut(format!(
                "query {query}: the answer arrived but the compute nodes' attestation was not recorded in time"
            )));
        }
        tokio::select! {
            _ = heights.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn member_name(node: &NodeShared, id: &MemberId) -> String {
    node.chain.read(|s| views::name_of(s, id))
}

/// Follows the ledger and plays this node's parts in every open query.
pub async fn follow_queries(node: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let mut heights = node.chain.subscribe_height();
    loop {
        step(&node);
        tokio::select! {
            _ = heights.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

fn step(node: &Arc<NodeShared>) {
    let me = node.me;
    let (to_decide, to_join) = node.chain.read(|s| {
        let mut to_decide = Vec::new();
        let mut to_join = Vec::new();
        for (id, entry) in s.queries() {
            if entry.result.is_some() {
                continue;
            }
            let owners = entry.request.owners();
            if owners.contains(&me) && !entry.decisions.iter().any(|d| d.0 == me) {
                to_decide.push(entry.clone());
            }
            let all_approved = owners
                .iter()
                .all(|o| entry.decisions.iter().any(|d| d.0 == *o && d.1.approve));
            let involved = owners.contains(&me)
                || entry.request.compute.contains(&me)
                || entry.requester == me;
            if all_approved && involved {
                to_join.push((*id, entry.clone()));
            }
        }
        (to_decide, to_join)
    });
    for entry in to_decide {
        if QueryService::first_time(&node.queries.decided, entry.id) {
            let node = node.clone();
            tokio::spawn(async move { owner::decide(&node, entry).await });
        }
    }
    for (id, entry) in to_join {
        if QueryService::first_time(&node.queries.joined, id) {
            let node = node.clone();
            tokio::spawn(async move { session::join(node, entry).await });
        }
    }
}
