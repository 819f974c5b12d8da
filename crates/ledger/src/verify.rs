//! Whole-chain verification from raw block bytes: replays every block from genesis with full
//! re-validation (hashes, signatures, Merkle roots, outcomes, state roots).

use consort_crypto::Hash;
use serde::Serialize;

use crate::block::Block;
use crate::error::LedgerError;
use crate::state::LedgerState;
use crate::tx::TxPayload;

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Height of the last block.
    pub height: u64,
    pub head_hash: Hash,
    pub state_root: Hash,
    /// Transactions in all blocks, including the genesis transaction and invalid ones.
    pub tx_count: u64,
    pub chain_id: Hash,
}

/// The first block that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    pub height: u64,
    pub reason: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "height {}: {}", self.height, self.reason)
    }
}

impl std::error::Error for VerifyFailure {}

/// Verifies a chain given as raw block bytes in height order, starting at height 0.
///
/// Block 0 must be byte-for-byte the block that `Genesis::block` builds from the genesis
/// transaction it contains; every later block must pass `LedgerState::apply_block` with
/// signature checks. The `n`-th item is taken to be height `n`, so a missing, extra or
/// reordered block fails at the first position where it does not fit.
pub fn verify_chain<I>(raw_blocks: I) -> Result<VerifyReport, VerifyFailure>
where
    I: IntoIterator<Item = Result<Vec<u8>, LedgerError>>,
{
    let mut blocks = raw_blocks.into_iter();
    let failure = |height: u64, reason: String| VerifyFailure { height, reason };

    let first = match blocks.next() {
        None => return Err(failure(0, "the chain is empty (no genesis block)".into())),
        Some(Err(e)) => return Err(failure(0, format!("cannot read block: {e}"))),
        Some(Ok(raw)) => raw,
    };
    let mut state = verify_genesis(&first).map_err(|reason| failure(0, reason))?;
    let mut tx_count = 1u64;

    for (position, raw) in blocks.enumerate() {
        let height = position as u64 + 1;
        let raw = raw.map_err(|e| failure(height, format!("cannot read block: {e}")))?;
        let block = Block::decode(&raw).map_err(|e| failure(height, e.to_string()))?;
        state.apply_block(&block, true).map_err(|e| match e {
            LedgerError::InvalidBlock { reason, .. } => failure(height, reason),
            other => failure(height, other.to_string()),
        })?;
        tx_count += block.txs.len() as u64;
    }
    Ok(VerifyReport {
        height: state.height(),
        head_hash: state.head_hash(),
        state_root: state.state_root(),
        tx_count,
        chain_id: state.chain_id(),
    })
}

fn verify_genesis(raw: &[u8]) -> Result<LedgerState, String> {
    let block = Block::decode(raw).map_err(|e| e.to_string())?;
    let genesis = match block.txs.as_slice() {
        [tx] => match &tx.payload {
            TxPayload::Genesis(genesis) => genesis,
            other => {
                return Err(format!(
                    "block 0 holds a {} transaction, not Genesis",
                    other.kind_name()
                ))
            }
        },
        txs => {
            return Err(format!(
                "block 0 must hold exactly one Genesis transaction, found {}",
                txs.len()
            ))
        }
    };
    let state = LedgerState::from_genesis(genesis).map_err(|e| e.to_string())?;
    if genesis.block().encode() != raw {
        return Err("block 0 is not the block its genesis transaction defines".into());
    }
    Ok(state)
}
