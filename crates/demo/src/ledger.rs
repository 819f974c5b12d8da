//! The two ledger operations the CLI, the demo and the benchmarks share: signing a
//! transaction as the member of a directory, and verifying a chain export from its bytes.

use anyhow::{Context, Result};
use consort_ledger::{Transaction, TxPayload, VerifyFailure, VerifyReport};
use consort_node::config::{read_genesis, MemberDir};

/// Builds a signed transaction for the member of `dir`.
pub fn sign_for(dir: &MemberDir, payload: TxPayload) -> Result<Transaction> {
    let key = dir.load_key()?;
    let genesis = read_genesis(&dir.genesis_path())
        .context("this member has no genesis yet: start its node once with `consort node run`")?;
    Ok(Transaction::sign(
        payload,
        &key,
        &genesis.chain_id(),
        rand::random(),
        consort_node::clock::now_ms(),
    ))
}

/// Replays a chain export (docs/FORMAT.md) from genesis; an unreadable export fails at
/// height 0.
pub fn verify_export_bytes(bytes: &[u8]) -> Result<VerifyReport, VerifyFailure> {
    match consort_ledger::read_export(bytes) {
        Ok(blocks) => consort_ledger::verify_chain(blocks.into_iter().map(Ok)),
        Err(e) => Err(VerifyFailure {
            height: 0,
            reason: format!("unreadable export: {e}"),
        }),
    }
}
