//! The owner's part of a joint query: re-plan the request's SQL from this node's own view
//! of the ledger, check that it is the plan the requester recorded, check it against this
//! owner's grants, and record the decision. The owner decides alone; no other node's
//! opinion of its grants counts (DESIGN §6).

use consort_ledger::policy::{GrantEntry, QueryDecision, QueryEntry};
use consort_ledger::TxPayload;

use crate::core::NodeShared;

/// Decides on `entry` and records the decision.
pub(super) async fn decide(node: &NodeShared, entry: QueryEntry) {
    let decision = judge(node, &entry);
    tracing::info!(
        "query {}: {} ({})",
        entry.id,
        if decision.approve {
            "approved"
        } else {
            "refused"
        },
        decision.reason
    );
    // A submission can fail while the ledger is busy or changing leader; keep trying while
    // the query is still open and this owner's decision is not on the ledger.
    let give_up = tokio::time::Instant::now() + super::DECISION_TIMEOUT;
    loop {
        let payload = TxPayload::QueryDecision(decision.clone());
        match super::submit_payload(node, payload).await {
            Ok(_) => return,
            Err(e) => tracing::warn!("recording the decision on query {}: {e}", entry.id),
        }
        let still_needed = node.chain.read(|s| {
            s.query(&entry.id)
                .is_some_and(|q| q.result.is_none() && !q.decisions.iter().any(|d| d.0 == node.me))
        });
        if !still_needed || tokio::time::Instant::now() >= give_up {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn refuse(entry: &QueryEntry, reason: String) -> QueryDecision {
    QueryDecision {
        query: entry.id,
        approve: false,
        // The reason can quote hostile SQL; the ledger takes at most MAX_TEXT_BYTES.
        reason: consort_ledger::rules_limits::bounded_text(&reason),
        min_group_size: 0,
    }
}

fn judge(node: &NodeShared, entry: &QueryEntry) -> QueryDecision {
    let me = node.me;
    let now = crate::sequencer::now_ms();
    node.chain.read(|state| {
        let plan = match consort_query::plan(&entry.request.sql, &super::catalog(state)) {
            Ok(plan) => plan,
            Err(e) => return refuse(entry, format!("the query does not plan here: {e}")),
        };
        if plan.hash() != entry.request.plan_hash {
            return refuse(
                entry,
                "the recorded plan hash is not the plan of this SQL over the ledger's datasets"
                    .into(),
            );
        }
        let mut min_group_size = 1;
        let mut reasons = Vec::new();
        for dataset in entry.request.datasets.iter().filter(|d| d.owner == me) {
            match state.dataset(&me, &dataset.name) {
                Some(current) if current.tx_id == dataset.version_tx => {}
                _ => {
                    return refuse(
                        entry,
                        format!(
                            "dataset {} is no longer at the version the query names",
                            dataset.name
                        ),
                    )
                }
            }
            let grants: Vec<&GrantEntry> = state.grants_on(&me, &dataset.name).collect();
            let verdict = consort_query::check_policy(
                &plan,
                &me,
                &dataset.name,
                &entry.requester,
                &grants,
                now,
            );
            if !verdict.approve {
                return refuse(entry, verdict.reason);
            }
            min_group_size = min_group_size.max(verdict.min_group_size);
            reasons.push(verdict.reason);
        }
        QueryDecision {
            query: entry.id,
            approve: true,
            reason: consort_ledger::rules_limits::bounded_text(&reasons.join("; ")),
            min_group_size,
        }
    })
}
