//! A query's MPC session on this node, as the engine started it
//! ([`consort_engine::SessionStart`], with the plan it made once): the owner pushes its part
//! down to its own database, then every party (owners, compute nodes, requester) runs
//! `consort_query::run_party` over the session's links; the compute nodes then attest the
//! result on the ledger with `consort_query::cosign` (one `QueryResult` signed by compute
//! party 0 and approved by parties 1 and 2).

use std::sync::Arc;

use consort_data::Row;
use consort_engine::SessionStart;
use consort_mpc::transport::Transport;
use consort_query::{Attestation, LocalInput, LocalWork, Plan, ResultTable};

use crate::core::NodeShared;
use crate::error::NodeError;

/// Plays this node's roles in the query and reports the outcome where it belongs.
pub(super) async fn join(node: Arc<NodeShared>, start: SessionStart) {
    let query = start.query;
    let requester = start.requester;
    let result = run(&node, start).await;
    match &result {
        Ok(_) => tracing::info!("query {query}: this node's part is done"),
        Err(e) => tracing::warn!("query {query}: {e}"),
    }
    if requester {
        let answer = match result {
            Ok(Some(table)) => Ok(table),
            Ok(None) => Err("the session ended without an answer for the requester".into()),
            Err(e) => Err(e.to_string()),
        };
        node.queries.record_answer(query, answer);
    }
}

async fn run(
    node: &Arc<NodeShared>,
    start: SessionStart,
) -> Result<Option<ResultTable>, NodeError> {
    let me = node.me;
    let SessionStart {
        query,
        plan,
        roles,
        min_group_size,
        own_datasets,
        peer_timeout,
        ..
    } = start;
    let local = if roles.owners.contains(&me) {
        Some(local_part(node, &plan, &own_datasets).await?)
    } else {
        None
    };
    if let Some(delay) = test_session_delay() {
        tokio::time::sleep(delay).await;
    }
    let parties = roles.parties();
    let mut transport: Box<dyn Transport> = Box::new(crate::mpc::start_session(
        node,
        super::session_of(&query),
        &parties,
        peer_timeout,
    )?);
    let key = node.key.clone();
    let chain_id = node.chain.read(|s| s.chain_id());
    // Party 0 of the compute nodes picks the attestation's nonce and time.
    let nonce: u64 = rand::random();
    let timestamp_ms = node.clock.now_ms();
    let joined = tokio::task::spawn_blocking(move || {
        let mut rng = rand::rngs::OsRng;
        let outcome = consort_query::run_party(
            &mut transport,
            &plan,
            &roles,
            &me,
            local,
            min_group_size,
            &mut rng,
        )?;
        let attested = match roles.compute.iter().position(|c| *c == me) {
            Some(index) => {
                let who = Attestation {
                    index,
                    compute: &roles.compute,
                    key: &key,
                    chain_id: &chain_id,
                    nonce,
                    timestamp_ms,
                };
                let payload = consort_query::result_payload(query, &outcome)?;
                consort_query::cosign(transport.as_mut(), &who, payload)?
            }
            None => None,
        };
        Ok::<_, consort_query::QueryError>((outcome.table, attested))
    })
    .await
    .map_err(|e| NodeError::Internal(format!("the query task failed: {e}")))?;
    let (table, attested) = joined?;
    if let Some(tx) = attested {
        super::submit_tx(node, tx)
            .await
            .map_err(|e| NodeError::PeersFailed(format!("recording the attested result: {e}")))?;
    }
    Ok(table)
}

/// This owner's rows for the query: its part pushed down to its own database.
async fn local_part(
    node: &NodeShared,
    plan: &Plan,
    own_datasets: &[String],
) -> Result<LocalInput, NodeError> {
    let me = node.me;
    if let Some(join) = &plan.join {
        // Each side this member holds: key, payload columns and WHERE mask of every row.
        let store = node.queries.store().await?;
        let mut sides: [Option<Vec<Row>>; 2] = [None, None];
        for (i, side) in join.sides().into_iter().enumerate() {
            if !side.owners.contains(&me) {
                continue;
            }
            let (table, schema) = own_table(node, &side.dataset)?;
            let rows = store
                .select(&table, &schema, &side.local_select())
                .await
                .map_err(NodeError::database("reading this owner's side of the join"))?;
            sides[i] = Some(rows);
        }
        let [left, right] = sides;
        return Ok(LocalInput::Join { left, right });
    }
    let store = node.queries.store().await?;
    let selects: Vec<_> = plan
        .value_lists()
        .iter()
        .map(|l| plan.value_list_select(l))
        .collect();
    let mut rows = Vec::new();
    let mut lists: Vec<Vec<Row>> = vec![Vec::new(); selects.len()];
    for dataset in own_datasets {
        let (table, schema) = own_table(node, dataset)?;
        let part = match &plan.local {
            LocalWork::Aggregate(q) => store.aggregate(&table, &schema, q).await,
            LocalWork::Select(q) => store.select(&table, &schema, q).await,
        }
        .map_err(NodeError::database(
            "running this owner's part on its database",
        ))?;
        rows.extend(part);
        for (select, list) in selects.iter().zip(lists.iter_mut()) {
            let part = store
                .select(&table, &schema, select)
                .await
                .map_err(NodeError::database(
                    "reading this owner's values for DISTINCT or a percentile",
                ))?;
            list.extend(part);
        }
    }
    if selects.is_empty() {
        return Ok(LocalInput::Rows(rows));
    }
    Ok(LocalInput::Aggregate {
        partials: rows,
        lists,
    })
}

/// The database table and schema of this member's current version of `dataset`.
fn own_table(
    node: &NodeShared,
    dataset: &str,
) -> Result<(String, consort_data::Schema), NodeError> {
    let me = node.me;
    let record = node
        .chain
        .read(|s| s.dataset(&me, dataset).map(|d| d.record.clone()))
        .ok_or_else(|| NodeError::Internal(format!("dataset {dataset} is not on the ledger")))?;
    let schema = crate::datasets::schema_of(&record.columns)?;
    Ok((
        crate::datasets::table_name(&record.name, record.version),
        schema,
    ))
}

/// Test hook: `CONSORT_TEST_SESSION_DELAY_MS` holds every party back before its session, so
/// the fault tests can kill a compute node while a query is in flight.
fn test_session_delay() -> Option<std::time::Duration> {
    std::env::var("CONSORT_TEST_SESSION_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
}
