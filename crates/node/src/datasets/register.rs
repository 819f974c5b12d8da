//! Putting a stored table on the ledger so that the two end up together or not at all.
//!
//! The node's answer to the submission can be lost (the node or the leader crashes between
//! taking the transaction in and answering). The table is dropped only once the ledger is
//! known not to hold the record: a definite refusal, or an invalid outcome. Otherwise the
//! outcome is looked up by transaction id and, while it is not found, the same signed bytes
//! are submitted again: the node answers with the recorded outcome if the first copy
//! committed and commits it otherwise, and the nonce keeps it from committing twice. If even
//! that yields no answer in [`OUTCOME_BUDGET`], the table is kept and the error says so.

use std::time::Duration;

use consort_crypto::Hash;
use consort_ledger::dataset::DatasetRecord;
use consort_ledger::{Transaction, TxPayload};
use serde_json::Value;
use tokio::time::Instant;

use super::Context;
use crate::client::ApiClient;
use crate::config::{read_genesis, MemberDir};
use crate::error::NodeError;

/// How long a lost answer is chased (lookups and resubmissions) before the outcome is
/// reported unknown. Covers a node restart plus a Raft election with room to spare.
pub const OUTCOME_BUDGET: Duration = Duration::from_secs(45);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What became of a registration.
#[derive(Debug, PartialEq)]
enum Outcome {
    Valid {
        height: u64,
    },
    Invalid(String),
    /// Refused before it was queued, so it is in no block and never will be.
    Refused(String),
    /// Neither the node's answer nor the ledger tells.
    Unknown(String),
}

/// Submits the ledger record of `ctx.table` and settles its outcome; drops the table unless
/// the ledger holds (or may hold) the record.
pub(super) async fn register(
    dir: &MemberDir,
    ctx: &Context,
    record: &DatasetRecord,
    update: bool,
) -> Result<(String, u64), NodeError> {
    let key = dir.load_key()?;
    let genesis = read_genesis(&dir.genesis_path())?;
    let payload = if update {
        TxPayload::DatasetUpdate(record.clone())
    } else {
        TxPayload::DatasetRegister(record.clone())
    };
    let tx = Transaction::sign(
        payload,
        &key,
        &genesis.chain_id(),
        rand::random(),
        crate::clock::now_ms(),
    );
    let id = tx.id();
    let (name, table) = (&record.name, &ctx.table);
    let failure = match settle(&ctx.client, &tx, OUTCOME_BUDGET).await {
        Outcome::Valid { height } => return Ok((id.to_string(), height)),
        Outcome::Unknown(reason) => {
            return Err(NodeError::Rejected(format!(
                "the outcome of transaction {id} (registering {name}) is unknown: {reason}; the table {table} is kept; run `consort dataset verify {name}` once the node answers (it passes if the registration committed), or retry later"
            )))
        }
        Outcome::Invalid(reason) => format!(
            "the ledger recorded the registration of {name} (transaction {id}) as invalid: {reason}"
        ),
        Outcome::Refused(reason) => format!("registering {name} on the ledger was refused: {reason}"),
    };
    match ctx.store.drop_table(table).await {
        Ok(()) => Err(NodeError::Rejected(format!(
            "{failure}; the table {table} was dropped"
        ))),
        Err(e) => Err(NodeError::Rejected(format!(
            "{failure}; dropping the table {table} failed too ({e}): drop it by hand"
        ))),
    }
}

/// Submits `tx` and, while its outcome is not known, looks it up and resubmits it, for at
/// most `budget`.
async fn settle(client: &ApiClient, tx: &Transaction, budget: Duration) -> Outcome {
    let id = tx.id();
    let give_up = Instant::now() + budget;
    let mut answer = client.submit(tx, true).await;
    loop {
        let reason = match answer {
            Ok(v) => match outcome_of(&v) {
                Some(outcome) => return outcome,
                None => format!("unexpected answer from the node: {v}"),
            },
            Err(NodeError::Api { status, message }) if refused_for_good(status) => {
                return Outcome::Refused(message)
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() + RETRY_PAUSE >= give_up {
            return Outcome::Unknown(reason);
        }
        tracing::debug!("the outcome of {id} is not known yet ({reason}); asking again");
        tokio::time::sleep(RETRY_PAUSE).await;
        answer = match client.find_tx(&id).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => client.submit(tx, true).await,
            Err(e) => Err(e),
        };
    }
}

/// A refusal that means the transaction was never queued: a ledger rule, the request
/// itself, or the token. A 409 (nonce already used) is not one: the node answers the same
/// transaction with its recorded outcome, so a 409 means it could not look it up yet.
fn refused_for_good(status: u16) -> bool {
    matches!(status, 400 | 401 | 403 | 413 | 422)
}

/// The outcome in a submit answer or a transaction lookup, if it says the transaction was
/// committed.
fn outcome_of(answer: &Value) -> Option<Outcome> {
    let verdict = if answer["status"] == "committed" {
        answer
    } else if answer["outcome"].is_object() {
        &answer["outcome"]
    } else {
        return None;
    };
    Some(match verdict["valid"].as_bool()? {
        true => Outcome::Valid {
            height: answer["height"].as_u64().unwrap_or(0),
        },
        false => Outcome::Invalid(
            verdict["reason"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string(),
        ),
    })
}

/// Checks a re-ingested table against the ledger record whose local table was missing:
/// the same input must give the same record. Keeps the table if it does, drops it if not.
pub(super) async fn restore(
    ctx: &Context,
    ledger: &DatasetRecord,
    tx_id: Hash,
    rebuilt: &DatasetRecord,
) -> Result<(String, u64), NodeError> {
    if rebuilt == ledger {
        let height = match ctx.client.find_tx(&tx_id).await {
            Ok(Some(found)) => found["height"].as_u64().unwrap_or(0),
            _ => 0,
        };
        return Ok((tx_id.to_string(), height));
    }
    let _ = ctx.store.drop_table(&ctx.table).await;
    let what = if rebuilt.commitment != ledger.commitment {
        format!(
            "commitment {} where the ledger has {}",
            rebuilt.commitment, ledger.commitment
        )
    } else {
        "a different schema, row count or recipe".to_string()
    };
    Err(NodeError::Rejected(format!(
        "dataset {} is on the ledger but its table {} was missing; this input gives {what}, so nothing was restored (give the original input and recipe)",
        ledger.name, ctx.table
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_outcomes_from_submit_answers_and_lookups() {
        let submitted = json!({ "status": "committed", "valid": true, "height": 7 });
        assert_eq!(outcome_of(&submitted), Some(Outcome::Valid { height: 7 }));
        let looked_up = json!({ "height": 9, "outcome": { "valid": false, "reason": "taken" } });
        assert_eq!(
            outcome_of(&looked_up),
            Some(Outcome::Invalid("taken".into()))
        );
        assert_eq!(outcome_of(&json!({ "status": "pending" })), None);
    }

    #[test]
    fn only_definite_refusals_drop_the_table() {
        for status in [400, 401, 403] {
            assert!(refused_for_good(status), "{status}");
        }
        for status in [409, 429, 500, 502, 503, 504] {
            assert!(!refused_for_good(status), "{status}");
        }
    }
}
