//! Rule versions and the limits that rule version 2 adds (`docs/FORMAT.md` §8.4).
//!
//! Every node re-checks every recorded outcome, so what validation accepts may only change
//! under a new rule version: a transaction is judged by the version in force where it is
//! recorded, and blocks recorded under version 1 keep their outcomes forever. A chain starts
//! under its genesis's version; a `RulesUpgrade` approved by a majority moves it on.

use crate::block::{InvalidCode, TxOutcome};
use crate::sql_limits::{self, SQL_LIMITS};
use crate::tx::TxPayload;

/// The rules of chains created before rule versions existed.
pub const RULES_V1: u32 = 1;
/// Version 1 plus the SQL lexical limits ([`sql_limits`]) and the name and text caps below.
pub const RULES_V2: u32 = 2;
/// Version 2 plus hiding dataset commitments (`CommitmentScheme::SaltedColumns`, FORMAT.md
/// §14.1) and block signatures that name the chain id (§5.3).
pub const RULES_V3: u32 = 3;
/// The newest version this build can judge; new chains start under it.
pub const LATEST_RULES: u32 = RULES_V3;

/// Member, column and granted-column names, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Columns of one dataset, and columns named by one grant or transfer.
pub const MAX_COLUMNS: usize = 1024;
/// Notarised file names, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 1024;
/// Notes and reasons, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Files in one notarisation.
pub const MAX_NOTARIZED_FILES: usize = 10_000;
/// Datasets read by one query.
pub const MAX_QUERY_DATASETS: usize = 64;

fn bad(reason: String) -> TxOutcome {
    TxOutcome::invalid(InvalidCode::BadPayload, reason)
}

fn check_name(what: &str, name: &str) -> Result<(), TxOutcome> {
    if name.len() > MAX_NAME_BYTES {
        return Err(bad(format!(
            "{what} is {} bytes; at most {MAX_NAME_BYTES} are allowed",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(format!("{what} contains a control character")));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), TxOutcome> {
    if text.len() > max {
        return Err(bad(format!(
            "{what} is {} bytes; at most {max} are allowed",
            text.len()
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), TxOutcome> {
    if n > max {
        return Err(bad(format!("{n} {what}; at most {max} are allowed")));
    }
    Ok(())
}

/// The checks rule version 2 adds, on the payload alone. The error is the outcome to record.
pub(crate) fn check(payload: &TxPayload) -> Result<(), TxOutcome> {
    match payload {
        TxPayload::Notarize(n) => {
            check_count("files", n.files.len(), MAX_NOTARIZED_FILES)?;
            for file in &n.files {
                check_text("a file name", &file.name, MAX_FILE_NAME_BYTES)?;
            }
            if let Some(note) = &n.note {
                check_text("the note", note, MAX_TEXT_BYTES)?;
            }
        }
        TxPayload::MemberAdd(info) => {
            if !info.public_key.is_canonical() {
                return Err(bad(
                    "the member key is not canonically encoded (y is not below p)".into(),
                ));
            }
            check_name("the member name", &info.name)?;
            check_text("the peer address", &info.peer_addr, MAX_NAME_BYTES)?;
            check_text("the API address", &info.api_addr, MAX_NAME_BYTES)?;
        }
        TxPayload::DatasetRegister(record) | TxPayload::DatasetUpdate(record) => {
            check_count("columns", record.columns.len(), MAX_COLUMNS)?;
            for c in &record.columns {
                check_name("a column name", &c.name)?;
            }
        }
        TxPayload::Grant(grant) => {
            check_count("granted columns", grant.columns.len(), MAX_COLUMNS)?;
            for c in &grant.columns {
                check_name("a granted column name", &c.column)?;
            }
        }
        TxPayload::QueryRequest(request) => {
            sql_limits::check(&request.sql, &SQL_LIMITS).map_err(bad)?;
            check_count("datasets", request.datasets.len(), MAX_QUERY_DATASETS)?;
        }
        TxPayload::QueryDecision(decision) => {
            check_text("the reason", &decision.reason, MAX_TEXT_BYTES)?;
        }
        TxPayload::QueryResult(result) => {
            if let crate::policy::QueryOutcome::Failed { reason } = &result.outcome {
                check_text("the reason", reason, MAX_TEXT_BYTES)?;
            }
        }
        TxPayload::DataTransfer(transfer) => {
            check_count("columns", transfer.columns.len(), MAX_COLUMNS)?;
        }
        TxPayload::Genesis(_)
        | TxPayload::MemberRemove { .. }
        | TxPayload::Revoke(_)
        | TxPayload::RulesUpgrade { .. } => {}
    }
    Ok(())
}

/// The signature's R must be a canonical point encoding under rule version 2 (FORMAT.md
/// §8.4); S is held canonical by strict verification in every version.
pub(crate) fn check_signature_encoding(tx: &crate::tx::Transaction) -> Result<(), TxOutcome> {
    if tx.signature.has_canonical_r() {
        Ok(())
    } else {
        Err(TxOutcome::invalid(
            InvalidCode::BadSignature,
            "the signature's R is not canonically encoded (y is not below p)",
        ))
    }
}

/// What an honest node refuses at intake whatever the chain's version: everything the
/// newest rules refuse on the transaction alone.
pub(crate) fn check_intake(tx: &crate::tx::Transaction) -> Result<(), TxOutcome> {
    check_signature_encoding(tx)?;
    check(&tx.payload)
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] at a character boundary, for reasons a node
/// writes itself (an error message can quote hostile input at length).
pub fn bounded_text(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_string();
    }
    let marker = "…";
    let mut end = MAX_TEXT_BYTES - marker.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_keeps_short_text_and_cuts_long_text_on_a_boundary() {
        assert_eq!(bounded_text("short"), "short");
        let long = "é".repeat(5000);
        let cut = bounded_text(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES);
        assert!(cut.ends_with('…'));
    }
}
