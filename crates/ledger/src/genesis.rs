//! Genesis: validation of a consortium's founding description and the deterministic
//! construction of block 0, whose hash is the chain id (`docs/FORMAT.md` §6).

use std::collections::BTreeSet;

use consort_crypto::{merkle, Hash, MemberId, Signature};

use crate::block::{Block, BlockHeader, TxOutcome};
use crate::error::LedgerError;
use crate::state::{members_digest, next_state_root};
use crate::tx::{Genesis, Transaction, TxPayload};

impl Genesis {
    /// At least one member, a non-empty consortium name, every member with a non-empty name
    /// and a valid Ed25519 key, no two members sharing a key or a name.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let fail = |reason: String| Err(LedgerError::InvalidGenesis(reason));
        if self.consortium.trim().is_empty() {
            return fail("the consortium name is empty".into());
        }
        if self.members.is_empty() {
            return fail("a consortium needs at least one member".into());
        }
        let latest = crate::rules_limits::LATEST_RULES;
        if self.rules_version == 0 || self.rules_version > latest {
            return fail(format!(
                "rule version {} is unknown to this build (1 to {latest})",
                self.rules_version
            ));
        }
        let mut keys = BTreeSet::new();
        let mut names = BTreeSet::new();
        for member in &self.members {
            if member.name.trim().is_empty() {
                return fail(format!("member {} has an empty name", member.id()));
            }
            if !member.public_key.is_valid() {
                return fail(format!(
                    "member {:?} has an invalid Ed25519 public key",
                    member.name
                ));
            }
            if self.rules_version >= crate::rules_limits::RULES_V2
                && !member.public_key.is_canonical()
            {
                return fail(format!(
                    "member {:?} has a public key that is not canonically encoded (y is not below p)",
                    member.name
                ));
            }
            if !keys.insert(member.public_key) {
                return fail(format!(
                    "public key {} appears more than once",
                    member.public_key
                ));
            }
            if !names.insert(member.name.as_str()) {
                return fail(format!(
                    "member name {:?} appears more than once",
                    member.name
                ));
            }
        }
        Ok(())
    }

    /// The single, unsigned transaction of block 0: signer and signature all zero, nonce 0,
    /// timestamp `created_ms`.
    pub fn transaction(&self) -> Transaction {
        Transaction {
            signer: MemberId::ZERO,
            nonce: 0,
            timestamp_ms: self.created_ms,
            payload: TxPayload::Genesis(self.clone()),
            signature: Signature::ZERO,
            approvals: Vec::new(),
        }
    }

    /// Block 0. Deterministic: every member computes the same bytes from `genesis.json`.
    pub fn block(&self) -> Block {
        let tx = self.transaction();
        let (encoded, body_len) = tx.encode_with_body_len();
        let tx_id = consort_crypto::hash_domain(
            crate::tx::TX_ID_DOMAIN,
            &[encoded.get(..body_len).unwrap_or(&encoded)],
        );
        let members = self.members.iter().map(|m| (m.id(), m.clone())).collect();
        let state_root = next_state_root(&Hash::ZERO, &members_digest(&members), &[(tx_id, 0)]);
        let header = BlockHeader {
            height: 0,
            prev_hash: Hash::ZERO,
            tx_root: merkle::root(&[&encoded]),
            state_root,
            timestamp_ms: self.created_ms,
            proposer: MemberId::ZERO,
            tx_count: 1,
        };
        Block {
            header,
            signature: Signature::ZERO,
            txs: vec![tx],
            outcomes: vec![TxOutcome::Valid],
        }
    }

    /// The chain id: the hash of block 0.
    pub fn chain_id(&self) -> Hash {
        self.block().hash()
    }
}
