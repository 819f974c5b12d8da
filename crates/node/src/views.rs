//! JSON views of ledger records, shared by the API and the CLI's output.

use consort_ledger::{Block, Transaction, TxOutcome, TxPayload};
use serde_json::{json, Value};

pub fn payload_json(payload: &TxPayload) -> Value {
    match payload {
        TxPayload::Genesis(genesis) => json!({
            "consortium": genesis.consortium,
            "created_ms": genesis.created_ms,
            "rules_version": genesis.rules_version,
            "members": genesis.members,
        }),
        TxPayload::Notarize(notarization) => json!({
            "files": notarization.files.iter().map(|f| json!({
                "name": f.name, "size": f.size, "blake3": f.blake3.to_string(),
            })).collect::<Vec<_>>(),
            "note": notarization.note,
        }),
        TxPayload::MemberAdd(info) => json!({ "member": info, "member_id": info.id().to_string() }),
        TxPayload::MemberRemove { member } => json!({ "member_id": member.to_string() }),
        TxPayload::DatasetRegister(record) | TxPayload::DatasetUpdate(record) => {
            serde_json::to_value(record).unwrap_or(Value::Null)
        }
        TxPayload::Grant(grant) => serde_json::to_value(grant).unwrap_or(Value::Null),
        TxPayload::Revoke(revoke) => serde_json::to_value(revoke).unwrap_or(Value::Null),
        TxPayload::QueryRequest(request) => serde_json::to_value(request).unwrap_or(Value::Null),
        TxPayload::QueryDecision(decision) => serde_json::to_value(decision).unwrap_or(Value::Null),
        TxPayload::QueryResult(result) => serde_json::to_value(result).unwrap_or(Value::Null),
        TxPayload::DataTransfer(transfer) => serde_json::to_value(transfer).unwrap_or(Value::Null),
        TxPayload::RulesUpgrade { version } => json!({ "version": version }),
    }
}

/// A catalog entry: the ledger's record of a dataset (no rows, ever).
pub fn dataset_json(
    entry: &consort_ledger::dataset::DatasetEntry,
    owner_name: Option<&str>,
) -> Value {
    let r = &entry.record;
    json!({
        "owner": entry.owner.to_string(),
        "owner_name": owner_name,
        "name": r.name,
        "kind": r.kind,
        "version": r.version,
        "columns": r.columns,
        "row_count": r.row_count,
        "commitment": r.commitment.to_string(),
        "input_hash": r.input_hash.to_string(),
        "recipe_hash": r.recipe_hash.to_string(),
        "parent": r.parent.map(|p| p.to_string()),
        "commitment_scheme": r.commitment_scheme.as_str(),
        "tx_id": entry.tx_id.to_string(),
    })
}

pub fn outcome_json(outcome: &TxOutcome) -> Value {
    match outcome {
        TxOutcome::Valid => json!({ "valid": true }),
        TxOutcome::Invalid { code, detail } => {
            json!({ "valid": false, "code": format!("{code:?}"), "reason": detail })
        }
    }
}

pub fn tx_json(tx: &Transaction) -> Value {
    json!({
        "tx_id": tx.id().to_string(),
        "kind": tx.kind_name(),
        "signer": tx.signer.to_string(),
        "nonce": tx.nonce,
        "timestamp_ms": tx.timestamp_ms,
        "payload": payload_json(&tx.payload),
        "signature": tx.signature.to_string(),
        "approvals": tx.approvals.iter().map(|a| json!({
            "member": a.member.to_string(), "signature": a.signature.to_string(),
        })).collect::<Vec<_>>(),
    })
}

pub fn block_json(block: &Block) -> Value {
    let h = &block.header;
    json!({
        "height": h.height,
        "hash": block.hash().to_string(),
        "prev_hash": h.prev_hash.to_string(),
        "tx_root": h.tx_root.to_string(),
        "state_root": h.state_root.to_string(),
        "timestamp_ms": h.timestamp_ms,
        "proposer": h.proposer.to_string(),
        "tx_count": h.tx_count,
        "signature": block.signature.to_string(),
        "txs": block.txs.iter().zip(&block.outcomes).map(|(tx, outcome)| {
            let mut v = tx_json(tx);
            v["outcome"] = outcome_json(outcome);
            v
        }).collect::<Vec<_>>(),
    })
}
