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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use consort_crypto::{Hash, MemberId};
use consort_ledger::policy::{QueryOutcome, QueryRequest, QueryResult};
use consort_ledger::{Transaction, TxPayload};
use consort_query::ResultTable;
use consort_store::{open_store, DatasetStore};
use tokio::sync::watch;

pub use views::{grants_json, queries_json, query_json};

use crate::chain::Committed;
use consort_engine::queries::QueryAction;
use consort_engine::requester::{self, Deadlines, Progress};
use consort_engine::{Action, Event};

use crate::core::{NodeShared, Refusal, Submitted};
use crate::error::NodeError;

/// How long the requester waits for every owner's decision.
pub const DECISION_TIMEOUT: Duration = Duration::from_secs(30);
pub use consort_engine::queries::{PSI_WAIT_PER_ROW, SESSION_TIMEOUT};
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

    fn record_answer(&self, id: Hash, answer: Result<ResultTable, String>) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(id, answer);
        }
        self.answered.send_modify(|n| *n += 1);
    }

    fn has_answer(&self, id: &Hash) -> bool {
        self.answers.lock().is_ok_and(|a| a.contains_key(id))
    }

    fn take_answer(&self, id: &Hash) -> Option<Result<ResultTable, String>> {
        self.answers.lock().ok().and_then(|mut a| a.remove(id))
    }
}

pub use consort_engine::{catalog, choose_compute};

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
        node.clock.now_ms(),
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
/// Errors in the SQL or the catalog are returned before anything is recorded. The plan is
/// handed to the engine, so this node does not plan the request again when it joins.
pub async fn run_query(
    node: &Arc<NodeShared>,
    sql: &str,
    timeout: Duration,
) -> Result<QueryAnswer, NodeError> {
    if let Some(inner) = consort_query::explain_target(sql) {
        return explain(node, inner);
    }
    let plan = node
        .chain
        .read(|s| consort_query::plan(sql, &catalog(s)))
        .map_err(|e| NodeError::BadRequest(e.to_string()))?;
    let plan = Arc::new(plan);
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
    node.engine(Event::Planned(plan));
    let committed = submit_payload(node, TxPayload::QueryRequest(request)).await?;
    let query = committed.tx_id;
    let started = node.clock.now_ms();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let deadlines = Deadlines {
        decisions_ms: started.saturating_add(millis(DECISION_TIMEOUT.min(timeout))),
        answer_ms: started.saturating_add(millis(timeout)),
    };
    let mut heights = node.chain.subscribe_height();
    let mut answered = node.queries.answered.subscribe();
    loop {
        let answer_here = node.queries.has_answer(&query);
        let now = node.clock.now_ms();
        let step = node.chain.read(|s| {
            s.query(&query)
                .map(|entry| requester::progress(entry, answer_here, now, deadlines))
        });
        let step = step.ok_or_else(|| NodeError::Internal(format!("query {query} vanished")))?;
        match step {
            Progress::Failed { reason } => {
                return Err(NodeError::PeersFailed(format!(
                    "query {query} failed: {reason}"
                )));
            }
            Progress::Refused { by, reason } => {
                let reason = format!("refused by {}: {reason}", member_name(node, &by));
                record_failure(node, query, reason.clone()).await;
                return Err(NodeError::Forbidden(format!("query {query} {reason}")));
            }
            Progress::Collect => match node.queries.take_answer(&query) {
                Some(Ok(table)) => {
                    let deadline = tokio::time::Instant::now()
                        + Duration::from_millis(deadlines.answer_ms.saturating_sub(now));
                    return finish(node, query, table, deadline).await;
                }
                Some(Err(reason)) => {
                    record_failure(node, query, reason.clone()).await;
                    return Err(NodeError::PeersFailed(format!(
                        "query {query} failed: {reason}"
                    )));
                }
                None => continue,
            },
            Progress::DecisionsMissing { missing } => {
                let missing: Vec<String> = missing.iter().map(|m| member_name(node, m)).collect();
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
            Progress::OutOfTime => {
                let reason = format!("no answer within {} s", timeout.as_secs());
                record_failure(node, query, reason.clone()).await;
                return Err(NodeError::TimedOut(format!(
                    "query {query} failed: {reason}"
                )));
            }
            Progress::Wait => {}
        }
        tokio::select! {
            _ = heights.changed() => {}
            _ = answered.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// `EXPLAIN <query>`: the plan in words, one row per line; nothing is recorded.
fn explain(node: &NodeShared, sql: &str) -> Result<QueryAnswer, NodeError> {
    let plan = node
        .chain
        .read(|s| consort_query::plan(sql, &catalog(s)))
        .map_err(|e| NodeError::BadRequest(e.to_string()))?;
    Ok(QueryAnswer {
        query_id: String::new(),
        columns: vec!["plan".into()],
        rows: consort_query::explain(&plan)
            .into_iter()
            .map(|line| vec![serde_json::Value::String(line)])
            .collect(),
        suppressed_groups: 0,
        ledger: LedgerRefs {
            request: String::new(),
            decisions: Vec::new(),
            result: None,
        },
    })
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
            match &result.outcome {
                QueryOutcome::Revealed { result_hash, .. } if *result_hash != table.hash() => {
                    return Err(NodeError::Rejected(format!(
                        "the attested result hash {result_hash} does not match the revealed table"
                    )));
                }
                QueryOutcome::Revealed { .. } => {}
                // A table that the ledger does not attest is not an answer.
                QueryOutcome::Failed { reason } => {
                    return Err(NodeError::PeersFailed(format!(
                        "query {query} failed: {reason}"
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

/// Follows the ledger and plays this node's parts in every open query: each block (and a
/// tick each second) goes to the engine, and its actions are carried out here.
pub async fn follow_queries(node: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let mut heights = node.chain.subscribe_height();
    loop {
        let now_ms = node.clock.now_ms();
        let actions = node
            .chain
            .read(|state| node.engine(Event::Ledger { state, now_ms }));
        for action in actions {
            if let Action::Query(action) = action {
                carry_out(&node, action);
            }
        }
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

fn carry_out(node: &Arc<NodeShared>, action: QueryAction) {
    match action {
        QueryAction::Decide(decision) => {
            let node = node.clone();
            tokio::spawn(async move { owner::record(&node, decision).await });
        }
        QueryAction::Join(start) => {
            let node = node.clone();
            tokio::spawn(async move { session::join(node, *start).await });
        }
        QueryAction::CannotJoin {
            query,
            reason,
            requester,
        } => {
            tracing::warn!("query {query}: {reason}");
            if requester {
                node.queries.record_answer(query, Err(reason));
            }
        }
    }
}
