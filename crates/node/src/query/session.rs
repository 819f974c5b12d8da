//! A query's MPC session on this node: the owner pushes its part down to its own database,
//! then every party (owners, compute nodes, requester) runs `consort_query::run_party`
//! over the session's links; the compute nodes then attest the result on the ledger with
//! one `QueryResult` signed by compute party 0 and approved by parties 1 and 2.

use std::sync::Arc;

use consort_crypto::{Hash, MemberId, SecretKey, Signature};
use consort_data::Row;
use consort_ledger::policy::{QueryEntry, QueryOutcome, QueryResult};
use consort_ledger::{Approval, Transaction, TxPayload};
use consort_mpc::transport::{unframe, Transport, TAG_DATA};
use consort_query::{LocalInput, LocalWork, PartyOutcome, Plan, ResultTable, Roles};

use crate::core::NodeShared;

/// Plays this node's roles in the query and reports the outcome where it belongs.
pub(super) async fn join(node: Arc<NodeShared>, entry: QueryEntry) {
    let result = run(&node, &entry).await;
    let me = node.me;
    match &result {
        Ok(_) => tracing::info!("query {}: this node's part is done", entry.id),
        Err(e) => tracing::warn!("query {}: {e}", entry.id),
    }
    if entry.requester == me {
        let answer = match result {
            Ok(Some(table)) => Ok(table),
            Ok(None) => Err("the session ended without an answer for the requester".into()),
            Err(e) => Err(e),
        };
        node.queries.record_answer(entry.id, answer);
    }
}

async fn run(node: &Arc<NodeShared>, entry: &QueryEntry) -> Result<Option<ResultTable>, String> {
    let me = node.me;
    let plan = node
        .chain
        .read(|s| consort_query::plan(&entry.request.sql, &super::catalog(s)))
        .map_err(|e| format!("the query does not plan on this node: {e}"))?;
    if plan.hash() != entry.request.plan_hash {
        return Err("the recorded plan hash does not match this node's plan".into());
    }
    let compute: [MemberId; 3] = entry
        .request
        .compute
        .as_slice()
        .try_into()
        .map_err(|_| "the request does not name three compute nodes".to_string())?;
    let roles = Roles {
        compute,
        owners: entry.request.owners(),
        requester: entry.requester,
    };
    let min_group_size = entry
        .decisions
        .iter()
        .map(|d| d.1.min_group_size)
        .max()
        .unwrap_or(consort_ledger::policy::DEFAULT_MIN_GROUP_SIZE)
        .max(1);
    let local = if roles.owners.contains(&me) {
        Some(local_part(node, &plan, entry).await?)
    } else {
        None
    };
    if let Some(delay) = test_session_delay() {
        tokio::time::sleep(delay).await;
    }
    let parties = roles.parties();
    let mut transport: Box<dyn Transport> = Box::new(
        crate::mpc::start_session(
            node,
            super::session_of(&entry.id),
            &parties,
            session_timeout(node, &plan, entry),
        )
        .map_err(|e| e.to_string())?,
    );
    let key = node.key.clone();
    let chain_id = node.chain.read(|s| s.chain_id());
    let query = entry.id;
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
        )
        .map_err(|e| e.to_string())?;
        let attested = match compute.iter().position(|c| *c == me) {
            Some(index) => attest(
                transport.as_mut(),
                index,
                &compute,
                &key,
                &chain_id,
                result_payload(query, &outcome)?,
            )?,
            None => None,
        };
        Ok::<_, String>((outcome.table, attested))
    })
    .await
    .map_err(|e| format!("the query task failed: {e}"))?;
    let (table, attested) = joined?;
    if let Some(tx) = attested {
        super::submit_tx(node, tx)
            .await
            .map_err(|e| format!("recording the attested result: {e}"))?;
    }
    Ok(table)
}

/// How long a party may wait on another's next message. In a JOIN the compute parties
/// wait while the owners run their PSI, whose length grows with the rows on the ledger;
/// the allowance is about three times what the PSI takes on a 2-core machine.
fn session_timeout(node: &NodeShared, plan: &Plan, entry: &QueryEntry) -> std::time::Duration {
    if plan.join.is_none() {
        return super::SESSION_TIMEOUT;
    }
    let rows: u64 = node.chain.read(|s| {
        entry
            .request
            .datasets
            .iter()
            .filter_map(|d| s.dataset(&d.owner, &d.name).map(|e| e.record.row_count))
            .sum()
    });
    super::SESSION_TIMEOUT + super::PSI_WAIT_PER_ROW * u32::try_from(rows).unwrap_or(u32::MAX)
}

/// This owner's rows for the query: its part pushed down to its own database.
async fn local_part(
    node: &NodeShared,
    plan: &Plan,
    entry: &QueryEntry,
) -> Result<LocalInput, String> {
    let me = node.me;
    if let Some(join) = &plan.join {
        // Each side this member holds: key, payload columns and WHERE mask of every row.
        let store = node.queries.store().await.map_err(|e| e.to_string())?;
        let mut sides: [Option<Vec<Row>>; 2] = [None, None];
        for (i, side) in join.sides().into_iter().enumerate() {
            if !side.owners.contains(&me) {
                continue;
            }
            let (table, schema) = own_table(node, &side.dataset)?;
            let rows = store
                .select(&table, &schema, &side.local_select())
                .await
                .map_err(|e| format!("reading this owner's side of the join: {e}"))?;
            sides[i] = Some(rows);
        }
        let [left, right] = sides;
        return Ok(LocalInput::Join { left, right });
    }
    let mine: Vec<_> = entry
        .request
        .datasets
        .iter()
        .filter(|d| d.owner == me)
        .collect();
    let store = node.queries.store().await.map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for dataset in mine {
        let (table, schema) = own_table(node, &dataset.name)?;
        let part = match &plan.local {
            LocalWork::Aggregate(q) => store.aggregate(&table, &schema, q).await,
            LocalWork::Select(q) => store.select(&table, &schema, q).await,
        }
        .map_err(|e| format!("running this owner's part on its database: {e}"))?;
        rows.extend(part);
    }
    Ok(LocalInput::Rows(rows))
}

/// The database table and schema of this member's current version of `dataset`.
fn own_table(node: &NodeShared, dataset: &str) -> Result<(String, consort_data::Schema), String> {
    let me = node.me;
    let record = node
        .chain
        .read(|s| s.dataset(&me, dataset).map(|d| d.record.clone()))
        .ok_or_else(|| format!("dataset {dataset} is not on the ledger"))?;
    let schema = crate::datasets::schema_of(&record.columns).map_err(|e| e.to_string())?;
    Ok((
        crate::datasets::table_name(&record.name, record.version),
        schema,
    ))
}

fn result_payload(query: Hash, outcome: &PartyOutcome) -> Result<TxPayload, String> {
    let result_hash = outcome
        .result_hash
        .ok_or("the requester did not send the result hash")?;
    Ok(TxPayload::QueryResult(QueryResult {
        query,
        outcome: QueryOutcome::Revealed {
            result_hash,
            columns: outcome.columns.clone(),
            rows: outcome.rows,
            suppressed_groups: outcome.suppressed_groups,
            share_digests: outcome.share_digests.clone(),
        },
    }))
}

fn send(t: &mut dyn Transport, to: usize, mut msg: Vec<u8>) -> Result<(), String> {
    msg.push(TAG_DATA);
    t.send(to, msg).map_err(|e| e.to_string())
}

fn recv(t: &mut dyn Transport, from: usize) -> Result<Vec<u8>, String> {
    let msg = t.recv(from).map_err(|e| e.to_string())?;
    unframe(msg, t.peer_name(from)).map_err(|e| e.to_string())
}

/// The compute nodes co-sign the same `QueryResult`: party 0 picks the nonce and time and
/// signs; parties 1 and 2 rebuild the identical transaction from their own outcome, so
/// they approve only a result equal to what they computed. Returns party 0's transaction.
fn attest(
    t: &mut dyn Transport,
    index: usize,
    compute: &[MemberId; 3],
    key: &SecretKey,
    chain_id: &Hash,
    payload: TxPayload,
) -> Result<Option<Transaction>, String> {
    if index == 0 {
        let nonce: u64 = rand::random();
        let timestamp_ms = crate::sequencer::now_ms();
        let mut tx = Transaction::sign(payload, key, chain_id, nonce, timestamp_ms);
        let mut header = nonce.to_le_bytes().to_vec();
        header.extend_from_slice(&timestamp_ms.to_le_bytes());
        for party in 1..3 {
            send(t, party, header.clone())?;
        }
        for (party, member) in compute.iter().enumerate().skip(1) {
            let sig = recv(t, party)?;
            let sig: [u8; 64] = sig
                .as_slice()
                .try_into()
                .map_err(|_| format!("{} sent a malformed attestation", t.peer_name(party)))?;
            tx.approvals.push(Approval {
                member: *member,
                signature: Signature(sig),
            });
        }
        return Ok(Some(tx));
    }
    let header = recv(t, 0)?;
    if header.len() != 16 {
        return Err(format!(
            "{} sent a malformed attestation header",
            t.peer_name(0)
        ));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&header[..8]);
    let nonce = u64::from_le_bytes(word);
    word.copy_from_slice(&header[8..]);
    let timestamp_ms = u64::from_le_bytes(word);
    let tx = Transaction {
        signer: compute[0],
        nonce,
        timestamp_ms,
        payload,
        signature: Signature([0; 64]),
        approvals: Vec::new(),
    };
    let signature = key.sign(&tx.signing_message(chain_id));
    send(t, 0, signature.0.to_vec())?;
    Ok(None)
}

/// Test hook: `CONSORT_TEST_SESSION_DELAY_MS` holds every party back before its session, so
/// the fault tests can kill a compute node while a query is in flight.
fn test_session_delay() -> Option<std::time::Duration> {
    std::env::var("CONSORT_TEST_SESSION_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
}
