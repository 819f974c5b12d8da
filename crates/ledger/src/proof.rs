//! Inclusion proofs: a self-contained JSON document showing that a transaction is in a signed
//! block of a given chain (`docs/FORMAT.md` §11).
//!
//! What a proof establishes: the transaction bytes are leaf `tx_index` of the block's
//! `tx_root`; the header hashes to `block_hash`; the block is signed by the member whose key
//! is `proposer_key`; the transaction is signed by `signer_key` for `chain_id`. The recorded
//! `outcome` is reported as claimed: checking it needs the whole block and chain state
//! (`consort ledger verify`).

use consort_crypto::{merkle, verify, Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockHeader, TxOutcome};
use crate::error::LedgerError;
use crate::tx::{Transaction, TxPayload};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub chain_id: Hash,
    pub height: u64,
    pub tx_index: u64,
    pub tree_size: u64,
    /// Lowercase hex of `Transaction::encode`.
    pub tx: String,
    pub audit_path: Vec<Hash>,
    pub header: BlockHeader,
    pub block_hash: Hash,
    pub block_signature: Signature,
    pub proposer_key: PublicKey,
    pub signer_key: PublicKey,
    pub outcome: TxOutcome,
}

/// What a verified proof shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProofReport {
    pub chain_id: Hash,
    pub height: u64,
    pub block_hash: Hash,
    pub tx_id: Hash,
    pub tx_index: u64,
    pub kind: &'static str,
    pub signer: consort_crypto::MemberId,
    /// As recorded in the block (not re-derived; see the module docs).
    pub outcome: TxOutcome,
}

fn proof_err(reason: impl Into<String>) -> LedgerError {
    LedgerError::Proof(reason.into())
}

impl InclusionProof {
    /// The proof for transaction `index` of `block`. `proposer_key` and `signer_key` are the
    /// keys of the block's proposer and the transaction's signer (ignored for block 0, which
    /// has neither; pass any key).
    pub fn build(
        block: &Block,
        index: usize,
        proposer_key: PublicKey,
        signer_key: PublicKey,
        chain_id: Hash,
    ) -> Result<InclusionProof, LedgerError> {
        let (Some(tx), Some(outcome)) = (block.txs.get(index), block.outcomes.get(index)) else {
            return Err(proof_err(format!(
                "block {} has no transaction {index}",
                block.header.height
            )));
        };
        let leaves: Vec<Vec<u8>> = block.txs.iter().map(Transaction::encode).collect();
        let audit_path = merkle::audit_path(&leaves, index)
            .ok_or_else(|| proof_err("transaction index out of range"))?;
        Ok(InclusionProof {
            chain_id,
            height: block.header.height,
            tx_index: index as u64,
            tree_size: leaves.len() as u64,
            tx: hex::encode(tx.encode()),
            audit_path,
            header: block.header.clone(),
            block_hash: block.hash(),
            block_signature: block.signature,
            proposer_key,
            signer_key,
            outcome: outcome.clone(),
        })
    }

    /// Checks every claim the proof makes (see the module docs for what that covers).
    pub fn verify(&self) -> Result<ProofReport, LedgerError> {
        let tx_bytes =
            hex::decode(&self.tx).map_err(|e| proof_err(format!("tx is not hex: {e}")))?;
        let tx = Transaction::decode(&tx_bytes)?;
        if self.header.height != self.height {
            return Err(proof_err(format!(
                "proof is for height {} but the header says {}",
                self.height, self.header.height
            )));
        }
        if u64::from(self.header.tx_count) != self.tree_size {
            return Err(proof_err(format!(
                "tree_size {} differs from the header's tx_count {}",
                self.tree_size, self.header.tx_count
            )));
        }
        if !merkle::verify_inclusion(
            &tx_bytes,
            self.tx_index,
            self.tree_size,
            &self.audit_path,
            &self.header.tx_root,
        ) {
            return Err(proof_err(
                "the audit path does not lead from the transaction to the block's tx_root",
            ));
        }
        let block_hash = self.header.hash();
        if block_hash != self.block_hash {
            return Err(proof_err(format!(
                "the header hashes to {block_hash}, not {}",
                self.block_hash
            )));
        }
        if self.height == 0 {
            self.verify_genesis(&tx)?;
        } else {
            self.verify_signatures(&tx)?;
        }
        Ok(ProofReport {
            chain_id: self.chain_id,
            height: self.height,
            block_hash,
            tx_id: tx.id(),
            tx_index: self.tx_index,
            kind: tx.kind_name(),
            signer: tx.signer,
            outcome: self.outcome.clone(),
        })
    }

    /// Block 0 is unsigned: it is authentic iff it is the block its genesis transaction
    /// defines and its hash is the chain id.
    fn verify_genesis(&self, tx: &Transaction) -> Result<(), LedgerError> {
        let TxPayload::Genesis(genesis) = &tx.payload else {
            return Err(proof_err("block 0 can only hold the Genesis transaction"));
        };
        if genesis.block().header != self.header || self.block_hash != self.chain_id {
            return Err(proof_err(
                "the header is not the genesis block of this chain id",
            ));
        }
        Ok(())
    }

    fn verify_signatures(&self, tx: &Transaction) -> Result<(), LedgerError> {
        if self.proposer_key.member_id() != self.header.proposer {
            return Err(proof_err(format!(
                "proposer_key belongs to {}, but the block was proposed by {}",
                self.proposer_key.member_id(),
                self.header.proposer
            )));
        }
        verify(
            &self.proposer_key,
            &self.header.signing_message(),
            &self.block_signature,
        )
        .map_err(|_| proof_err("the block signature does not verify"))?;
        if self.signer_key.member_id() != tx.signer {
            return Err(proof_err(format!(
                "signer_key belongs to {}, but the transaction was signed by {}",
                self.signer_key.member_id(),
                tx.signer
            )));
        }
        // A transaction recorded with a bad signature is still provably *included*; only a
        // transaction recorded valid must carry a valid signature.
        if self.outcome.is_valid() {
            verify(
                &self.signer_key,
                &tx.signing_message(&self.chain_id),
                &tx.signature,
            )
            .map_err(|_| proof_err("the transaction signature does not verify for this chain"))?;
        }
        Ok(())
    }
}
