//! The owner's part of a joint query: record the decision the engine took
//! (`consort_engine::queries::judge`: re-plan from this node's own view of the ledger, check
//! the recorded plan hash and the dataset versions, check the owner's grants). The owner
//! decides alone; no other node's opinion of its grants counts (DESIGN §6).

use consort_ledger::policy::QueryDecision;
use consort_ledger::TxPayload;

use crate::core::NodeShared;

/// Records `decision`, retrying while the ledger is busy or changing leader, as long as the
/// query is still open and this owner's decision is not on the ledger.
pub(super) async fn record(node: &NodeShared, decision: QueryDecision) {
    let query = decision.query;
    tracing::info!(
        "query {query}: {} ({})",
        if decision.approve {
            "approved"
        } else {
            "refused"
        },
        decision.reason
    );
    let give_up = tokio::time::Instant::now() + super::DECISION_TIMEOUT;
    loop {
        let payload = TxPayload::QueryDecision(decision.clone());
        match super::submit_payload(node, payload).await {
            Ok(_) => return,
            Err(e) => tracing::warn!("recording the decision on query {query}: {e}"),
        }
        let still_needed = node.chain.read(|s| {
            s.query(&query)
                .is_some_and(|q| q.result.is_none() && !q.decisions.iter().any(|d| d.0 == node.me))
        });
        if !still_needed || tokio::time::Instant::now() >= give_up {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
