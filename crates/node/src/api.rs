//! The HTTP JSON API. Every route but `/api/health` and `/api/openapi.json` requires the
//! member's bearer token. Errors are always JSON `{"error": "..."}` with a 4xx status for
//! bad requests, never a panic.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use consort_crypto::Hash;
use consort_ledger::{InclusionProof, LedgerError, Transaction};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chain::Committed;
use crate::core::{NodeShared, Refusal, Submitted};
use crate::error::NodeError;
use crate::views;

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// At most this many transactions in one batch submission.
pub const MAX_BATCH: usize = 10_000;

pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // One line, whatever the underlying error (a SQL parser's, say) put in it.
        let message = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        (self.status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match &e {
            NodeError::Rejected(_) => StatusCode::CONFLICT,
            NodeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NodeError::Forbidden(_) => StatusCode::FORBIDDEN,
            NodeError::PeersFailed(_) => StatusCode::BAD_GATEWAY,
            NodeError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            NodeError::NoQuorum(_) | NodeError::Halted(_) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Ledger(LedgerError::Rejected(..)) => StatusCode::CONFLICT,
            NodeError::Ledger(LedgerError::Decode { .. }) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

pub fn router(shared: Arc<NodeShared>, bench_endpoints: bool) -> Router {
    let bench = if bench_endpoints {
        Router::new()
            .route("/api/mpc/bench", post(mpc_bench))
            .route("/api/psi/bench", post(psi_bench))
    } else {
        Router::new()
            .route("/api/mpc/bench", post(bench_off))
            .route("/api/psi/bench", post(bench_off))
    };
    let protected = Router::new()
        .merge(bench)
        .route("/api/tx", post(submit_one))
        .route("/api/txs", post(submit_many))
        .route("/api/ledger/status", get(status))
        .route("/api/ledger/blocks/:height", get(block))
        .route("/api/ledger/txs/:id", get(transaction))
        .route("/api/ledger/proof/:id", get(proof))
        .route("/api/ledger/export", get(export))
        .route("/api/ledger/verify", get(verify))
        .route("/api/datasets", get(catalog))
        .route("/api/query", post(query))
        .route("/api/queries", get(queries))
        .route("/api/queries/:id", get(query_show))
        .route("/api/grants", get(grants))
        .route("/api/datasets/fetch-page", post(fetch_page))
        .route("/api/datasets/fetch-done", post(fetch_done))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    Router::new()
        .route("/api/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/api/openapi.json", get(openapi))
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such API route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this API route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_declared_oversize))
        .with_state(shared)
}

async fn bench_off() -> ApiError {
    ApiError::not_found(
        "the benchmark endpoints are off on this node (set bench_endpoints = true in its config.toml)",
    )
}

/// Refuses a body whose declared length is over the limit before reading any of it.
/// (Bodies without a length are cut off at the limit as they are read.)
async fn refuse_declared_oversize(request: axum::extract::Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > MAX_BODY as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body of {len} bytes is over the {MAX_BODY}-byte limit"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

async fn require_token(
    State(shared): State<Arc<NodeShared>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if consort_crypto::constant_time_eq(token.as_bytes(), shared.token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong API token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API token: send `Authorization: Bearer <token>` (the token is in DIR/api.token)",
        )
        .into_response(),
    }
}

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// Reads a JSON body; a body that is too large or unreadable is a JSON error too.
fn parse_json<T: serde::de::DeserializeOwned>(body: Body) -> ApiResult<T> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("unreadable request body: {}", e.body_text()),
        )
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON request: {e}")))
}

fn default_wait() -> bool {
    true
}

#[derive(Deserialize)]
struct SubmitOne {
    /// Hex of the transaction's canonical encoding.
    tx: String,
    #[serde(default = "default_wait")]
    wait: bool,
}

#[derive(Deserialize)]
struct SubmitMany {
    txs: Vec<String>,
    #[serde(default = "default_wait")]
    wait: bool,
}

fn decode_tx(hex_tx: &str) -> Result<Transaction, String> {
    let bytes = hex::decode(hex_tx.trim()).map_err(|e| format!("transaction is not hex: {e}"))?;
    Transaction::decode(&bytes).map_err(|e| format!("malformed transaction: {e}"))
}

fn committed_json(c: &Committed) -> Value {
    json!({
        "tx_id": c.tx_id.to_string(), "status": "committed", "height": c.height, "index": c.index,
        "valid": c.valid, "reason": c.reason,
    })
}

async fn submit_one(State(shared): State<Arc<NodeShared>>, body: Body) -> ApiResult {
    let request: SubmitOne = parse_json(body)?;
    let tx = decode_tx(&request.tx).map_err(ApiError::bad_request)?;
    let mut results = shared.submit(vec![tx], request.wait).await?;
    let result = results
        .pop()
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no result"))?;
    result_json(result).map(Json)
}

async fn submit_many(State(shared): State<Arc<NodeShared>>, body: Body) -> ApiResult {
    let request: SubmitMany = parse_json(body)?;
    if request.txs.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "at most {MAX_BATCH} transactions per request, got {}",
                request.txs.len()
            ),
        ));
    }
    let mut txs = Vec::with_capacity(request.txs.len());
    for (i, hex_tx) in request.txs.iter().enumerate() {
        txs.push(decode_tx(hex_tx).map_err(|e| ApiError::bad_request(format!("txs[{i}]: {e}")))?);
    }
    let results = shared.submit(txs, request.wait).await?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| match result_json(r) {
            Ok(v) => v,
            Err(e) => json!({ "status": "rejected", "error": e.message }),
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

fn result_json(result: Result<Submitted, Refusal>) -> Result<Value, ApiError> {
    match result {
        Ok(Submitted::Pending(id)) => Ok(json!({ "tx_id": id.to_string(), "status": "pending" })),
        Ok(Submitted::Committed(c)) => Ok(committed_json(&c)),
        Err(refusal @ Refusal::Rejected(_)) | Err(refusal @ Refusal::RefusedByLeader(_)) => {
            let code = match &refusal {
                Refusal::Rejected(LedgerError::Rejected(code, _)) => Some(*code),
                Refusal::RefusedByLeader(r) => r.invalid_code(),
                _ => None,
            };
            Err(ApiError::new(rejection_status(code), refusal.to_string()))
        }
        Err(refusal @ Refusal::NotCommitted(_)) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            refusal.to_string(),
        )),
    }
}

/// The status for a transaction the ledger rules refuse: a stranger is forbidden, a replay
/// conflicts, anything else is a bad request.
fn rejection_status(code: Option<consort_ledger::InvalidCode>) -> StatusCode {
    match code {
        Some(consort_ledger::InvalidCode::UnknownSigner) => StatusCode::FORBIDDEN,
        Some(consort_ledger::InvalidCode::ReplayedNonce) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn status(State(shared): State<Arc<NodeShared>>) -> ApiResult {
    Ok(Json(shared.status_json()))
}

fn parse_height(raw: &str) -> ApiResult<u64> {
    raw.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "block height {raw:?} is not a non-negative integer"
        ))
    })
}

fn parse_tx_id(raw: &str) -> ApiResult<Hash> {
    raw.parse::<Hash>().map_err(|_| {
        ApiError::bad_request(format!("transaction id {raw:?} is not 64 hex characters"))
    })
}

async fn block(State(shared): State<Arc<NodeShared>>, Path(raw): Path<String>) -> ApiResult {
    let height = parse_height(&raw)?;
    let block = shared
        .chain
        .store()
        .block(height)
        .map_err(NodeError::from)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no block at height {height} (the chain height is {})",
                shared.chain.height()
            ))
        })?;
    Ok(Json(views::block_json(&block)))
}

fn locate(shared: &NodeShared, id: &Hash) -> ApiResult<(consort_ledger::Block, u32)> {
    let store = shared.chain.store();
    let (height, index) = store
        .locate_tx(id)
        .map_err(NodeError::from)?
        .ok_or_else(|| ApiError::not_found(format!("no committed transaction {id}")))?;
    let block = store
        .block(height)
        .map_err(NodeError::from)?
        .ok_or_else(|| ApiError::not_found(format!("block {height} is missing")))?;
    Ok((block, index))
}

async fn transaction(State(shared): State<Arc<NodeShared>>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_tx_id(&raw)?;
    let (block, index) = locate(&shared, &id)?;
    let i = index as usize;
    let (Some(tx), Some(outcome)) = (block.txs.get(i), block.outcomes.get(i)) else {
        return Err(ApiError::not_found(format!(
            "transaction {id} is not at its indexed position"
        )));
    };
    let mut v = views::tx_json(tx);
    v["height"] = json!(block.header.height);
    v["index"] = json!(index);
    v["block_hash"] = json!(block.hash().to_string());
    v["block_timestamp_ms"] = json!(block.header.timestamp_ms);
    v["outcome"] = views::outcome_json(outcome);
    Ok(Json(v))
}

async fn proof(State(shared): State<Arc<NodeShared>>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_tx_id(&raw)?;
    let (block, index) = locate(&shared, &id)?;
    let chain = shared.chain.clone();
    let proof = tokio::task::spawn_blocking(move || build_proof(&chain, &block, index))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(serde_json::to_value(&proof).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?))
}

/// The inclusion proof (format version 2) of transaction `index` of `block`: every
/// transaction has one — the genesis, invalid ones, and those of members removed since.
fn build_proof(
    chain: &crate::chain::Chain,
    block: &consort_ledger::Block,
    index: u32,
) -> Result<InclusionProof, NodeError> {
    chain.proof(block, index as usize)
}

async fn export(State(shared): State<Arc<NodeShared>>) -> Result<Response, ApiError> {
    let chain = shared.chain.clone();
    let bytes = tokio::task::spawn_blocking(move || chain.export_bytes())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn verify(State(shared): State<Arc<NodeShared>>) -> ApiResult {
    let chain = shared.chain.clone();
    let report = tokio::task::spawn_blocking(move || chain.verify_stored())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(report))
}

/// Every member's registered datasets: names, owners, schemas, counts and commitments —
/// never rows.
async fn catalog(State(shared): State<Arc<NodeShared>>) -> ApiResult {
    let datasets: Vec<Value> = shared.chain.read(|state| {
        state
            .datasets()
            .values()
            .map(|entry| {
                let owner_name = state.members().get(&entry.owner).map(|m| m.name.clone());
                views::dataset_json(entry, owner_name.as_deref())
            })
            .collect()
    });
    Ok(Json(json!({ "datasets": datasets })))
}

/// At most this many elements in a benchmark session.
pub const MAX_MPC_BENCH_N: usize = 50_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MpcBenchRequest {
    /// 32 hex digits, the same at all three parties.
    session: String,
    /// The three compute parties' member ids, in party order.
    parties: Vec<String>,
    op: String,
    n: usize,
    seed: u64,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// Runs this node's party of an MPC benchmark session (the other two parties are asked
/// the same by the caller) and reports what it measured and whether the result verified.
async fn mpc_bench(State(shared): State<Arc<NodeShared>>, body: Bytes) -> ApiResult {
    use crate::mpc::bench;
    let request: MpcBenchRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid MPC benchmark request: {e}")))?;
    let session = crate::mpc::SessionId::parse(&request.session)
        .ok_or_else(|| ApiError::bad_request("session must be 32 hex digits"))?;
    let parties = request
        .parties
        .iter()
        .map(|p| {
            p.parse::<consort_crypto::MemberId>()
                .map_err(|_| ApiError::bad_request(format!("{p:?} is not a member id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !bench::OPS.contains(&request.op.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown MPC operation {:?} (expected one of {})",
            request.op,
            bench::OPS.join(", ")
        )));
    }
    if request.n == 0 || request.n > MAX_MPC_BENCH_N {
        return Err(ApiError::bad_request(format!(
            "n must be between 1 and {MAX_MPC_BENCH_N}"
        )));
    }
    if parties.len() != consort_mpc::transport::COMPUTE_PARTIES {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "an MPC benchmark needs exactly {} compute parties",
                consort_mpc::transport::COMPUTE_PARTIES
            ),
        ));
    }
    let timeout = std::time::Duration::from_secs(request.timeout_secs.unwrap_or(60).clamp(1, 3600));
    let transport = crate::mpc::start_session(&shared, session, &parties, timeout)?;
    let (op, n, seed) = (request.op, request.n, request.seed);
    let report =
        tokio::task::spawn_blocking(move || bench::run_party(Box::new(transport), &op, n, seed))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("MPC task: {e}"))
            })?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("MPC session {session} failed: {e}"),
                )
            })?;
    Ok(Json(json!(report)))
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

#[derive(Deserialize)]
struct QueryBody {
    sql: String,
    /// Bound on the whole query, in seconds (default 120).
    timeout_secs: Option<u64>,
}

/// Runs a joint query as the requester and answers with the revealed table.
async fn query(State(shared): State<Arc<NodeShared>>, body: Body) -> ApiResult {
    let request: QueryBody = parse_json(body)?;
    // `run_query` plans first: SQL that does not plan is a 400 before anything is recorded.
    let timeout =
        std::time::Duration::from_secs(request.timeout_secs.unwrap_or(120).clamp(1, 3600));
    let answer = crate::query::run_query(&shared, &request.sql, timeout).await?;
    serde_json::to_value(answer)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn queries(State(shared): State<Arc<NodeShared>>) -> ApiResult {
    Ok(Json(shared.chain.read(crate::query::queries_json)))
}

async fn query_show(State(shared): State<Arc<NodeShared>>, Path(id): Path<String>) -> ApiResult {
    let id: Hash = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a query id (64 hex digits)")))?;
    shared
        .chain
        .read(|s| crate::query::query_json(s, &id))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no query {id} on the ledger")))
}

async fn grants(State(shared): State<Arc<NodeShared>>) -> ApiResult {
    let now = shared.clock.now_ms();
    Ok(Json(
        shared
            .chain
            .read(|s| crate::query::grants_json(s, &shared.me, now)),
    ))
}

#[derive(Deserialize)]
struct Relay<T> {
    owner: String,
    request: T,
}

/// Sends a fetch request to the owner's node over the peer link and returns its answer.
async fn relay_fetch<T>(
    shared: &NodeShared,
    owner: &str,
    request: crate::raft::network::PeerRequest,
) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned,
{
    let owner: consort_crypto::MemberId = owner
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{owner:?} is not a member id")))?;
    let body = crate::raft::network::encode(&request)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let answer = shared
        .links
        .request(owner, body, std::time::Duration::from_secs(60))
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("reaching the owner: {e}")))?;
    // The owner's answer carries its refusal as text (a wire type, as in every peer reply).
    let answer: Result<T, String> = crate::raft::network::decode(&answer)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    answer.map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("the owner refused: {e}")))
}

async fn fetch_page(State(shared): State<Arc<NodeShared>>, body: Body) -> ApiResult {
    let relay: Relay<crate::datasets::fetch::PageRequest> = parse_json(body)?;
    let page: crate::datasets::fetch::Page = relay_fetch(
        &shared,
        &relay.owner,
        crate::raft::network::PeerRequest::FetchPage(relay.request),
    )
    .await?;
    serde_json::to_value(page)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn fetch_done(State(shared): State<Arc<NodeShared>>, body: Body) -> ApiResult {
    let relay: Relay<crate::datasets::fetch::DoneRequest> = parse_json(body)?;
    let tx: Hash = relay_fetch(
        &shared,
        &relay.owner,
        crate::raft::network::PeerRequest::FetchDone(relay.request),
    )
    .await?;
    Ok(Json(json!({ "transfer_tx": tx.to_string() })))
}

#[derive(Deserialize)]
struct PsiBenchRequest {
    session: String,
    parties: Vec<String>,
    n: usize,
    seed: u64,
    timeout_secs: Option<u64>,
}

/// Joins a two-party PSI benchmark session (as `POST /api/mpc/bench` does for MPC).
async fn psi_bench(State(shared): State<Arc<NodeShared>>, body: Body) -> ApiResult {
    let request: PsiBenchRequest = parse_json(body)?;
    let session = crate::mpc::SessionId::parse(&request.session)
        .ok_or_else(|| ApiError::bad_request("session must be 32 hex digits"))?;
    let parties = request
        .parties
        .iter()
        .map(|p| {
            p.parse::<consort_crypto::MemberId>()
                .map_err(|_| ApiError::bad_request(format!("{p:?} is not a member id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parties.len() != 2 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a PSI runs between exactly 2 parties",
        ));
    }
    if request.n == 0 || request.n > MAX_MPC_BENCH_N {
        return Err(ApiError::bad_request(format!(
            "n must be between 1 and {MAX_MPC_BENCH_N}"
        )));
    }
    let timeout =
        std::time::Duration::from_secs(request.timeout_secs.unwrap_or(120).clamp(1, 3600));
    let transport = crate::mpc::start_session(&shared, session, &parties, timeout)?;
    let (n, seed) = (request.n, request.seed);
    let report = tokio::task::spawn_blocking(move || {
        crate::mpc::psi_bench::run_party(Box::new(transport), n, seed)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    serde_json::to_value(report)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
