//! JSON views of grants and queries for the API and the CLI.

use consort_crypto::{Hash, MemberId};
use consort_data::Value;
use consort_ledger::policy::{GrantEntry, Grantee, QueryEntry, QueryOutcome};
use consort_ledger::LedgerState;
use serde_json::{json, Value as Json};

/// A stored value as JSON: numbers and booleans as themselves, dates and timestamps as
/// ISO text, NULL as null.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Boolean(b) => json!(b),
        Value::Text(s) => json!(s.as_str()),
        Value::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
        Value::Timestamp(t) => json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    }
}

pub(super) fn name_of(state: &LedgerState, id: &MemberId) -> String {
    state
        .members()
        .get(id)
        .map(|m| m.name.clone())
        .unwrap_or_else(|| id.to_string())
}

fn grant_json(state: &LedgerState, g: &GrantEntry, now_ms: u64) -> Json {
    let grantee = match &g.grant.grantee {
        Grantee::Anyone => json!("*"),
        Grantee::Member(id) => json!(name_of(state, id)),
    };
    let status = if g.revoked_by.is_some() {
        "revoked"
    } else if g.grant.expires_ms.is_some_and(|t| now_ms >= t) {
        "expired"
    } else {
        "active"
    };
    json!({
        "grant_id": g.id.to_string(),
        "owner": name_of(state, &g.owner),
        "owner_id": g.owner.to_string(),
        "dataset": g.grant.dataset,
        "grantee": grantee,
        "columns": g.grant.columns.iter().map(|c| json!({
            "column": c.column,
            "permissions": c.permissions.iter().map(|p| p.name()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "min_group_size": g.grant.min_group_size,
        "expires_ms": g.grant.expires_ms,
        "granted_ms": g.granted_ms,
        "revoked_by": g.revoked_by.map(|h| h.to_string()),
        "status": status,
    })
}

/// The grants `me` gave and received (directly or through `*`).
pub fn grants_json(state: &LedgerState, me: &MemberId, now_ms: u64) -> Json {
    let given: Vec<Json> = state
        .grants()
        .values()
        .filter(|g| g.owner == *me)
        .map(|g| grant_json(state, g, now_ms))
        .collect();
    let received: Vec<Json> = state
        .grants()
        .values()
        .filter(|g| g.owner != *me && g.grant.grantee.covers(me))
        .map(|g| grant_json(state, g, now_ms))
        .collect();
    json!({ "given": given, "received": received })
}

fn status_of(q: &QueryEntry) -> &'static str {
    match &q.result {
        Some((r, _)) => match r.outcome {
            QueryOutcome::Revealed { .. } => "answered",
            QueryOutcome::Failed { .. } => {
                if q.decisions.iter().any(|d| !d.1.approve) {
                    "refused"
                } else {
                    "failed"
                }
            }
        },
        None if q.decisions.iter().any(|d| !d.1.approve) => "refused",
        None if q.decisions.len() == q.request.owners().len() => "running",
        None => "awaiting decisions",
    }
}

fn summary_json(state: &LedgerState, q: &QueryEntry) -> Json {
    json!({
        "query_id": q.id.to_string(),
        "requester": name_of(state, &q.requester),
        "sql": q.request.sql,
        "status": status_of(q),
        "requested_ms": q.requested_ms,
    })
}

/// Every query on the ledger, oldest first.
pub fn queries_json(state: &LedgerState) -> Json {
    let mut all: Vec<&QueryEntry> = state.queries().values().collect();
    all.sort_by_key(|q| (q.requested_ms, q.id));
    Json::Array(all.into_iter().map(|q| summary_json(state, q)).collect())
}

/// One query's full record.
pub fn query_json(state: &LedgerState, id: &Hash) -> Option<Json> {
    let q = state.query(id)?;
    let mut view = summary_json(state, q);
    view["plan_hash"] = json!(q.request.plan_hash.to_string());
    view["datasets"] = json!(q
        .request
        .datasets
        .iter()
        .map(|d| json!({"owner": name_of(state, &d.owner), "name": d.name, "version_tx": d.version_tx.to_string()}))
        .collect::<Vec<_>>());
    view["compute"] = json!(q
        .request
        .compute
        .iter()
        .map(|c| name_of(state, c))
        .collect::<Vec<_>>());
    view["decisions"] = json!(q
        .decisions
        .iter()
        .map(|(owner, d, tx)| json!({
            "owner": name_of(state, owner),
            "approve": d.approve,
            "reason": d.reason,
            "min_group_size": d.min_group_size,
            "tx_id": tx.to_string(),
        }))
        .collect::<Vec<_>>());
    view["result"] = match &q.result {
        None => Json::Null,
        Some((r, tx)) => {
            let mut result = serde_json::to_value(&r.outcome).unwrap_or(Json::Null);
            result["tx_id"] = json!(tx.to_string());
            result
        }
    };
    Some(view)
}
