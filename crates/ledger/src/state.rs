//! The ledger state machine: membership, used nonces, datasets, grants, queries and the chain
//! head, advanced one block at a time by deterministic validation (`docs/FORMAT.md` §7–§8).
//!
//! Pure: no I/O, no clock, no randomness. Block producers call [`LedgerState::build_block`];
//! every node (and `verify_chain`) re-validates with [`LedgerState::apply_block`], which
//! recomputes every outcome and the state root and refuses a block that disagrees.

use std::collections::{BTreeMap, HashMap, HashSet};

use consort_crypto::encoding::Writer;
use consort_crypto::{
    hash_domain, merkle, verify, verify_each, verify_many, Hash, MemberId, PublicKey,
};
use consort_crypto::{SecretKey, Signature};
use rayon::prelude::*;

use crate::block::{Block, BlockHeader, InvalidCode, TxOutcome};
use crate::dataset::DatasetEntry;
use crate::error::LedgerError;
use crate::policy::{GrantEntry, QueryEntry};
use crate::rules::BlockEffects;
use crate::tx::{EncodedTx, Genesis, MemberInfo, Transaction, TxPayload};

/// Domain of the state root.
pub const STATE_ROOT_DOMAIN: &str = "consort/state/v1";
/// Domain of the members digest.
pub const MEMBERS_DIGEST_DOMAIN: &str = "consort/members/v1";

/// `hash_domain("consort/members/v1", [u32 count, for each member in id order:
/// id || public_key || bytes(name) || bytes(peer_addr) || bytes(api_addr)])`.
pub fn members_digest(members: &BTreeMap<MemberId, MemberInfo>) -> Hash {
    let mut w = Writer::with_capacity(4 + members.len() * 96);
    w.length_prefix(members.len());
    for (id, info) in members {
        w.member_id(id)
            .public_key(&info.public_key)
            .string(&info.name)
            .string(&info.peer_addr)
            .string(&info.api_addr);
    }
    hash_domain(MEMBERS_DIGEST_DOMAIN, &[w.as_bytes()])
}

/// `hash_domain("consort/state/v1", [prev_state_root, members_digest, u32 n,
/// for each tx: tx_id || outcome code byte])`.
pub fn next_state_root(prev: &Hash, members_digest: &Hash, txs: &[(Hash, u8)]) -> Hash {
    let mut w = Writer::with_capacity(4 + 33 * txs.len());
    w.length_prefix(txs.len());
    for (id, code) in txs {
        w.hash(id).u8(*code);
    }
    hash_domain(
        STATE_ROOT_DOMAIN,
        &[&prev.0, &members_digest.0, w.as_bytes()],
    )
}

/// Summary of a successfully applied block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub membership_changed: bool,
    pub valid: usize,
    pub invalid: usize,
}

/// The replicated ledger state after some block.
#[derive(Clone)]
pub struct LedgerState {
    pub(crate) chain_id: Hash,
    height: u64,
    head_hash: Hash,
    state_root: Hash,
    pub(crate) members: BTreeMap<MemberId, MemberInfo>,
    members_digest: Hash,
    /// `(signer, nonce)` of every valid transaction so far.
    pub(crate) used_nonces: HashSet<(MemberId, u64)>,
    /// Every member's datasets, by (owner, name), at their latest version.
    pub(crate) datasets: BTreeMap<(MemberId, String), DatasetEntry>,
    /// Every grant ever made, revoked ones included, by grant id.
    pub(crate) grants: BTreeMap<Hash, GrantEntry>,
    /// Every joint query ever requested, by query id.
    pub(crate) queries: BTreeMap<Hash, QueryEntry>,
    /// The rule version that judges the next transaction (FORMAT.md §8.4).
    pub(crate) rules_version: u32,
}

impl std::fmt::Debug for LedgerState {
    // Summarised: the nonce set grows with the chain and would swamp any log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerState")
            .field("chain_id", &self.chain_id)
            .field("height", &self.height)
            .field("head_hash", &self.head_hash)
            .field("state_root", &self.state_root)
            .field("members", &self.members.len())
            .field("used_nonces", &self.used_nonces.len())
            .field("datasets", &self.datasets.len())
            .field("grants", &self.grants.len())
            .field("queries", &self.queries.len())
            .field("rules_version", &self.rules_version)
            .finish()
    }
}

/// A bulk signature check: strict ([`verify_each`]) or batched ([`verify_many`]).
type SignatureVerifier = fn(&[(PublicKey, Vec<u8>, Signature)]) -> Vec<bool>;

/// Per-block work shared by build and apply: encodings, Merkle leaf hashes, and signer keys.
struct PreparedTxs<'t> {
    encoded: Vec<EncodedTx<'t>>,
    tx_root: Hash,
    /// Key for each tx's signer id: from current members or from a MemberAdd earlier in the
    /// same block (ids are derived from keys, so the key for an id is unambiguous).
    signer_keys: Vec<Option<PublicKey>>,
}

impl LedgerState {
    /// The state after block 0 of `genesis`.
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, LedgerError> {
        genesis.validate()?;
        let block = genesis.block();
        let members: BTreeMap<MemberId, MemberInfo> = genesis
            .members
            .iter()
            .map(|m| (m.id(), m.clone()))
            .collect();
        let chain_id = block.hash();
        Ok(LedgerState {
            chain_id,
            height: 0,
            head_hash: chain_id,
            state_root: block.header.state_root,
            members_digest: members_digest(&members),
            members,
            used_nonces: HashSet::new(),
            datasets: BTreeMap::new(),
            grants: BTreeMap::new(),
            queries: BTreeMap::new(),
            rules_version: genesis.rules_version,
        })
    }

    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    /// Every member's registered datasets at their latest version, by (owner, name).
    pub fn datasets(&self) -> &BTreeMap<(MemberId, String), DatasetEntry> {
        &self.datasets
    }

    /// `owner`'s dataset `name`, if registered.
    pub fn dataset(&self, owner: &MemberId, name: &str) -> Option<&DatasetEntry> {
        self.datasets.get(&(*owner, name.to_string()))
    }

    /// Every grant, revoked and expired ones included, by grant id (its transaction's id).
    pub fn grants(&self) -> &BTreeMap<Hash, GrantEntry> {
        &self.grants
    }

    pub fn grant(&self, id: &Hash) -> Option<&GrantEntry> {
        self.grants.get(id)
    }

    /// The grants, revoked and expired ones included, on `owner`'s dataset `dataset`.
    pub fn grants_on<'a>(
        &'a self,
        owner: &'a MemberId,
        dataset: &'a str,
    ) -> impl Iterator<Item = &'a GrantEntry> + 'a {
        self.grants
            .values()
            .filter(move |g| g.owner == *owner && g.grant.dataset == dataset)
    }

    /// Every joint query, by query id (its `QueryRequest` transaction's id).
    pub fn queries(&self) -> &BTreeMap<Hash, QueryEntry> {
        &self.queries
    }

    pub fn query(&self, id: &Hash) -> Option<&QueryEntry> {
        self.queries.get(id)
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    /// The rule version that judges the next transaction (FORMAT.md §8.4).
    pub fn rules_version(&self) -> u32 {
        self.rules_version
    }

    pub fn head_hash(&self) -> Hash {
        self.head_hash
    }

    pub fn state_root(&self) -> Hash {
        self.state_root
    }

    pub fn members_digest(&self) -> Hash {
        self.members_digest
    }

    pub fn members(&self) -> &BTreeMap<MemberId, MemberInfo> {
        &self.members
    }

    pub fn is_member(&self, id: &MemberId) -> bool {
        self.members.contains_key(id)
    }

    pub fn member_key(&self, id: &MemberId) -> Option<PublicKey> {
        self.members.get(id).map(|m| m.public_key)
    }

    /// The message the proposer of the next block signs: its header under the rule version
    /// in force now, i.e. at the start of that block (FORMAT.md §5.3).
    pub fn block_signing_message(&self, header: &BlockHeader) -> Vec<u8> {
        header.signing_message(self.rules_version, &self.chain_id)
    }

    /// Whether `signer` already used `nonce` in a valid transaction.
    pub fn is_nonce_used(&self, signer: &MemberId, nonce: u64) -> bool {
        self.used_nonces.contains(&(*signer, nonce))
    }

    /// Checks a transaction submitted for inclusion against the current state, with the same
    /// rules a block applies (including the approval majority for membership changes), so a
    /// transaction that would be recorded invalid is refused up front.
    pub fn check_submission(&self, tx: &Transaction) -> Result<(), LedgerError> {
        self.check_submissions(std::slice::from_ref(tx))
            .pop()
            .unwrap_or(Ok(()))
    }

    /// [`LedgerState::check_submission`] for many transactions at once, each checked on its
    /// own against the current state. Signatures are verified strictly, in parallel: the
    /// verdict is recorded in the block, and every node must reach the same one (FORMAT.md
    /// §8.3), which batch verification alone does not guarantee for crafted signatures.
    pub fn check_submissions(&self, txs: &[Transaction]) -> Vec<Result<(), LedgerError>> {
        self.check_submissions_with(txs, true)
    }

    /// [`LedgerState::check_submissions`] without the signature check: for a node that
    /// forwards transactions to the leader, which checks them fully before it queues them.
    pub fn precheck_submissions(&self, txs: &[Transaction]) -> Vec<Result<(), LedgerError>> {
        self.check_submissions_with(txs, false)
    }

    fn check_submissions_with(
        &self,
        txs: &[Transaction],
        verify_signatures: bool,
    ) -> Vec<Result<(), LedgerError>> {
        let encoded: Vec<EncodedTx<'_>> = txs.par_iter().map(EncodedTx::new).collect();
        let mut positions = Vec::with_capacity(txs.len());
        let mut items: Vec<(PublicKey, Vec<u8>, Signature)> = Vec::with_capacity(txs.len());
        for (i, enc) in encoded.iter().enumerate() {
            // Only current members' keys count: a MemberAdd elsewhere in the batch does not.
            if let Some(member) = self.members.get(&enc.tx.signer) {
                positions.push(i);
                items.push((
                    member.public_key,
                    enc.signing_message(&self.chain_id),
                    enc.tx.signature,
                ));
            }
        }
        let mut signature_ok = vec![false; txs.len()];
        let verdicts = if verify_signatures {
            verify_each(&items)
        } else {
            vec![true; items.len()]
        };
        for (i, ok) in positions.into_iter().zip(verdicts) {
            if let Some(slot) = signature_ok.get_mut(i) {
                *slot = ok;
            }
        }
        encoded
            .iter()
            .zip(signature_ok)
            .map(|(enc, signature_ok)| {
                let mut effects = BlockEffects::new(self, 1);
                match effects.process(enc, signature_ok, &self.chain_id) {
                    // Under the newest rules `process` has checked everything already.
                    TxOutcome::Valid if self.rules_version >= crate::rules_limits::LATEST_RULES => {
                        Ok(())
                    }
                    // An honest node takes in nothing the newest rules would refuse, even
                    // while the chain still runs under older ones.
                    TxOutcome::Valid => match crate::rules_limits::check_intake(enc.tx) {
                        Err(TxOutcome::Invalid { code, detail }) => {
                            Err(LedgerError::Rejected(code, detail))
                        }
                        _ => Ok(()),
                    },
                    TxOutcome::Invalid { code, detail } => Err(LedgerError::Rejected(code, detail)),
                }
            })
            .collect()
    }

    /// Builds and signs the next block from `txs`, recording each transaction's outcome.
    /// `signatures_checked[i] == true` means the caller already verified tx `i`'s signature
    /// (e.g. in [`LedgerState::check_submission`]); the others are batch-verified here.
    /// Never mutates `self`.
    pub fn build_block(
        &self,
        txs: Vec<Transaction>,
        proposer: &SecretKey,
        timestamp_ms: u64,
        signatures_checked: &[bool],
    ) -> Block {
        let (header, outcomes) = {
            let prepared = self.prepare(&txs);
            let mut signature_ok = vec![true; txs.len()];
            let unchecked: Vec<usize> = (0..txs.len())
                .filter(|i| !signatures_checked.get(*i).copied().unwrap_or(false))
                .collect();
            // Outcomes recorded here must be strict verdicts (FORMAT.md §8.3).
            self.check_signatures(&prepared, &unchecked, &mut signature_ok, verify_each);

            let effects = self.run(&prepared, &signature_ok);
            let state_root = self.state_root_after(&effects);
            let header = BlockHeader {
                height: self.height + 1,
                prev_hash: self.head_hash,
                tx_root: prepared.tx_root,
                state_root,
                timestamp_ms,
                proposer: proposer.member_id(),
                tx_count: u32::try_from(txs.len()).unwrap_or(u32::MAX),
            };
            (header, effects.outcomes)
        };
        let signature = proposer.sign(&self.block_signing_message(&header));
        Block {
            header,
            signature,
            txs,
            outcomes,
        }
    }

    /// Re-validates `block` completely as the next block and, only if everything matches,
    /// advances the state. With `check_signatures == false` (replaying one's own trusted
    /// store) the block signature is not checked and tx signatures are taken as recorded.
    pub fn apply_block(
        &mut self,
        block: &Block,
        check_signatures: bool,
    ) -> Result<Applied, LedgerError> {
        let header = &block.header;
        let expected_height = self.height + 1;
        let fail = |reason: String| LedgerError::InvalidBlock {
            height: expected_height,
            reason,
        };
        if header.height != expected_height {
            return Err(fail(format!(
                "block claims height {}, expected {expected_height}",
                header.height
            )));
        }
        if header.prev_hash != self.head_hash {
            return Err(fail(format!(
                "prev_hash {} does not match the head {}",
                header.prev_hash, self.head_hash
            )));
        }
        let Some(proposer) = self.members.get(&header.proposer) else {
            return Err(fail(format!(
                "proposer {} is not a member",
                header.proposer
            )));
        };
        // Rule version 2 also wants R encoded canonically, as RFC 8032 decoding does (§8.4);
        // from rule version 3 the signed message names the chain (§5.3). The version is the
        // one in force at the start of the block.
        let canonical =
            self.rules_version < crate::rules_limits::RULES_V2 || block.signature.has_canonical_r();
        if check_signatures
            && (!canonical
                || verify(
                    &proposer.public_key,
                    &self.block_signing_message(header),
                    &block.signature,
                )
                .is_err())
        {
            let message = if crate::block::block_signature_names_chain(self.rules_version) {
                "consort/block-sig/v2, which names the chain"
            } else {
                "consort/block-sig/v1"
            };
            return Err(fail(format!(
                "block signature does not verify under proposer {} (rule version {} signs {message})",
                header.proposer, self.rules_version
            )));
        }
        let n = block.txs.len();
        if header.tx_count as usize != n || block.outcomes.len() != n {
            return Err(fail(format!(
                "header says {} transactions; block holds {n} transactions and {} outcomes",
                header.tx_count,
                block.outcomes.len()
            )));
        }
        let prepared = self.prepare(&block.txs);
        if prepared.tx_root != header.tx_root {
            return Err(fail(format!(
                "tx_root {} does not match the transactions (computed {})",
                header.tx_root, prepared.tx_root
            )));
        }

        // Signatures the block records as bad are re-checked one by one; all others are
        // batch-verified together (see FORMAT.md §8 on why claims steer the batching).
        let claimed_bad = |i: &usize| {
            matches!(
                block.outcomes.get(*i),
                Some(TxOutcome::Invalid {
                    code: InvalidCode::BadSignature,
                    ..
                })
            )
        };
        let mut signature_ok = vec![true; n];
        if check_signatures {
            let (bad, rest): (Vec<usize>, Vec<usize>) = (0..n).partition(claimed_bad);
            self.check_signatures(&prepared, &rest, &mut signature_ok, verify_many);
            for i in bad {
                signature_ok[i] = self.strict_signature_check(&prepared, i);
            }
        } else {
            for i in (0..n).filter(claimed_bad) {
                signature_ok[i] = false;
            }
        }

        let effects = self.run(&prepared, &signature_ok);
        for (i, (recorded, recomputed)) in block.outcomes.iter().zip(&effects.outcomes).enumerate()
        {
            if recorded != recomputed {
                return Err(fail(format!(
                    "tx {i} ({}): block records outcome {recorded:?}, validation gives {recomputed:?}",
                    effects.ids_and_codes.get(i).map(|(id, _)| *id).unwrap_or_default()
                )));
            }
        }
        let state_root = self.state_root_after(&effects);
        if state_root != header.state_root {
            return Err(fail(format!(
                "state_root {} does not match the recomputed {state_root}",
                header.state_root
            )));
        }

        let valid = effects.outcomes.iter().filter(|o| o.is_valid()).count();
        let BlockEffects {
            members,
            new_nonces,
            dataset_changes,
            grant_changes,
            query_changes,
            rules_version,
            ..
        } = effects;
        drop(prepared);
        let mut membership_changed = false;
        if let Some(members) = members {
            let digest = members_digest(&members);
            // A block may add and then remove the same member; only a net change counts.
            membership_changed = digest != self.members_digest;
            self.members_digest = digest;
            self.members = members;
        }
        self.used_nonces.extend(new_nonces);
        self.datasets.extend(dataset_changes);
        self.grants.extend(grant_changes);
        self.queries.extend(query_changes);
        self.rules_version = rules_version;
        self.height = expected_height;
        self.head_hash = header.hash();
        self.state_root = state_root;
        Ok(Applied {
            membership_changed,
            valid,
            invalid: n - valid,
        })
    }

    /// Judges `tx` as if it were the next transaction (signature checked strictly) and, if
    /// it is valid, applies its effect on membership, used nonces and the rule version.
    /// Height, head and state root do not move. For inclusion proofs (FORMAT.md §12), which
    /// rebuild membership and the rule version from the genesis through the chain's
    /// membership changes and upgrades alone; the caller passes only such transactions,
    /// whose effects touch nothing else.
    pub(crate) fn apply_governance_tx(&mut self, tx: &Transaction) -> TxOutcome {
        let enc = EncodedTx::new(tx);
        let canonical =
            self.rules_version < crate::rules_limits::RULES_V2 || tx.signature.has_canonical_r();
        let signature_ok = canonical
            && self.members.get(&tx.signer).is_some_and(|m| {
                verify(
                    &m.public_key,
                    &enc.signing_message(&self.chain_id),
                    &tx.signature,
                )
                .is_ok()
            });
        let mut effects = BlockEffects::new(self, 1);
        let outcome = effects.process(&enc, signature_ok, &self.chain_id);
        let BlockEffects {
            members,
            new_nonces,
            rules_version,
            ..
        } = effects;
        if outcome.is_valid() {
            if let Some(members) = members {
                self.members_digest = members_digest(&members);
                self.members = members;
            }
            self.used_nonces.extend(new_nonces);
            self.rules_version = rules_version;
        }
        outcome
    }

    fn prepare<'t>(&self, txs: &'t [Transaction]) -> PreparedTxs<'t> {
        let encoded: Vec<EncodedTx<'t>> = txs.par_iter().map(EncodedTx::new).collect();
        let leaves: Vec<Hash> = encoded
            .par_iter()
            .map(|e| merkle::leaf_hash(&e.bytes))
            .collect();
        let added: HashMap<MemberId, PublicKey> = txs
            .iter()
            .filter_map(|tx| match &tx.payload {
                TxPayload::MemberAdd(info) => Some((info.id(), info.public_key)),
                _ => None,
            })
            .collect();
        let signer_keys = txs
            .iter()
            .map(|tx| {
                self.member_key(&tx.signer)
                    .or_else(|| added.get(&tx.signer).copied())
            })
            .collect();
        PreparedTxs {
            encoded,
            tx_root: merkle::root_from_leaf_hashes(&leaves),
            signer_keys,
        }
    }

    /// Batch-verifies the signatures of txs `indices`, writing into `signature_ok`.
    fn check_signatures(
        &self,
        prepared: &PreparedTxs<'_>,
        indices: &[usize],
        signature_ok: &mut [bool],
        verifier: SignatureVerifier,
    ) {
        let mut positions = Vec::with_capacity(indices.len());
        let mut items: Vec<(PublicKey, Vec<u8>, Signature)> = Vec::with_capacity(indices.len());
        for &i in indices {
            let (Some(Some(key)), Some(enc)) =
                (prepared.signer_keys.get(i), prepared.encoded.get(i))
            else {
                // Unknown signer: the tx is invalid for that reason before signatures matter.
                if let Some(slot) = signature_ok.get_mut(i) {
                    *slot = false;
                }
                continue;
            };
            positions.push(i);
            items.push((*key, enc.signing_message(&self.chain_id), enc.tx.signature));
        }
        for (i, ok) in positions.into_iter().zip(verifier(&items)) {
            if let Some(slot) = signature_ok.get_mut(i) {
                *slot = ok;
            }
        }
    }

    fn strict_signature_check(&self, prepared: &PreparedTxs<'_>, i: usize) -> bool {
        match (prepared.signer_keys.get(i), prepared.encoded.get(i)) {
            (Some(Some(key)), Some(enc)) => {
                verify(key, &enc.signing_message(&self.chain_id), &enc.tx.signature).is_ok()
            }
            _ => false,
        }
    }

    fn run<'s>(&'s self, prepared: &PreparedTxs<'_>, signature_ok: &[bool]) -> BlockEffects<'s> {
        let mut effects = BlockEffects::new(self, prepared.encoded.len());
        for (enc, ok) in prepared.encoded.iter().zip(signature_ok) {
            let outcome = effects.process(enc, *ok, &self.chain_id);
            effects.outcomes.push(outcome);
        }
        effects
    }

    fn state_root_after(&self, effects: &BlockEffects<'_>) -> Hash {
        let digest = match &effects.members {
            Some(members) => members_digest(members),
            None => self.members_digest,
        };
        next_state_root(&self.state_root, &digest, &effects.ids_and_codes)
    }
}
