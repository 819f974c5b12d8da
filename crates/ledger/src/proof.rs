//! Inclusion proofs, format version 2: a self-contained JSON document showing that a
//! transaction is in a block of a given chain, which member sealed that block, who was a
//! member around it, and the outcome code the block records (`docs/FORMAT.md` §12).
//!
//! The proof anchors everything in the chain id. It carries the genesis transaction (whose
//! block 0 hashes to the chain id) and every valid membership change and rule upgrade up to
//! the proven block (the *governance history*). Each of those is signed for the chain id and
//! backed by a majority of the members of its time, so the verifier rebuilds, from the
//! genesis alone, the member set and rule version before the block, at the transaction and
//! after the block; a key that never became a member this way cannot have sealed a block.
//! The block's state root is then opened twice (§7.2) to show that the rebuilt member sets
//! are the ones the block commits to and which outcome code it records for the transaction.
//!
//! What the proof binds to the chain: from rule version 3 the block signature names the
//! chain id; under versions 1 and 2 only a transaction signature valid for the chain id does,
//! and a proof with neither is refused with the version named. What it cannot show is
//! listed in `docs/SECURITY.md` ("Inclusion proofs").

use std::collections::{BTreeMap, HashMap};

use consort_crypto::{merkle, verify, Hash, MemberId, PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::block::{
    block_signature_names_chain, block_signing_message, Block, BlockHeader, InvalidCode, TxOutcome,
};
use crate::error::LedgerError;
use crate::rules_limits::RULES_V2;
use crate::state::{members_digest, next_state_root, LedgerState};
use crate::tx::{Genesis, MemberInfo, Transaction, TxPayload};

/// The proof format this build writes and reads.
pub const PROOF_VERSION: u32 = 2;
/// The largest proof document read, in bytes.
pub const MAX_PROOF_BYTES: usize = 64 << 20;
/// The most governance entries (membership changes and upgrades) a proof may list.
pub const MAX_GOVERNANCE_ENTRIES: usize = 65_536;
/// The most entries in `outcomes` or `outcomes_before` (transactions of one block).
pub const MAX_OUTCOME_ENTRIES: usize = 1 << 20;
/// The longest audit path (a block holds fewer than 2^32 transactions).
pub const MAX_AUDIT_PATH: usize = 32;

/// A valid `MemberAdd`, `MemberRemove` or `RulesUpgrade` and where the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceEntry {
    pub height: u64,
    pub tx_index: u32,
    pub tx: Transaction,
}

/// The valid governance transactions of `block`, in block order.
pub fn governance_entries(block: &Block) -> Vec<GovernanceEntry> {
    block
        .txs
        .iter()
        .zip(&block.outcomes)
        .enumerate()
        .filter(|(_, (tx, outcome))| outcome.is_valid() && is_governance(&tx.payload))
        .map(|(i, (tx, _))| GovernanceEntry {
            height: block.header.height,
            tx_index: u32::try_from(i).unwrap_or(u32::MAX),
            tx: tx.clone(),
        })
        .collect()
}

fn is_governance(payload: &TxPayload) -> bool {
    matches!(
        payload,
        TxPayload::MemberAdd(_) | TxPayload::MemberRemove { .. } | TxPayload::RulesUpgrade { .. }
    )
}

/// One transaction's entry in the state root (§7.2): its id and outcome code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeEntry {
    pub tx_id: Hash,
    pub code: u8,
}

fn outcome_entries(block: &Block) -> Vec<OutcomeEntry> {
    block
        .txs
        .iter()
        .zip(&block.outcomes)
        .map(|(tx, outcome)| OutcomeEntry {
            tx_id: tx.id(),
            code: outcome.code_byte(),
        })
        .collect()
}

/// An inclusion proof of format version 2. Its JSON form (`serde`) is the one of FORMAT.md
/// §12; read untrusted text with [`InclusionProof::from_json`], which also names a version-1
/// proof as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireProof", into = "WireProof")]
pub struct InclusionProof {
    pub chain_id: Hash,
    pub height: u64,
    pub tx_index: u64,
    pub tree_size: u64,
    /// The transaction's encoding (§3.1).
    pub tx: Vec<u8>,
    pub audit_path: Vec<Hash>,
    pub header: BlockHeader,
    pub block_hash: Hash,
    pub block_signature: Signature,
    /// The rule version in force at the start of the block: the one that sealed it.
    pub rules_version: u32,
    /// The proposer's key as a member before the block; none for block 0.
    pub proposer_key: Option<PublicKey>,
    /// The signer's key: as a member at the transaction, or else as the genesis or the
    /// governance history admitted it; none for block 0 and for a signer never admitted.
    pub signer_key: Option<PublicKey>,
    /// The recorded outcome. Its code is proved; its detail text is not.
    pub outcome: TxOutcome,
    /// The genesis transaction's encoding; none for block 0 (whose `tx` it is).
    pub genesis: Option<Vec<u8>>,
    /// Every valid governance transaction of blocks 1 to `height`, in chain order.
    pub governance: Vec<GovernanceEntry>,
    /// The state root of block `height - 2` (zero for heights 0 and 1).
    pub state_root_2back: Hash,
    /// Id and outcome code of every transaction of block `height - 1` (empty for block 0).
    pub outcomes_before: Vec<OutcomeEntry>,
    /// Id and outcome code of every transaction of block `height`.
    pub outcomes: Vec<OutcomeEntry>,
}

/// What binds a verified proof to its chain id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// Block 0 hashes to the chain id.
    Genesis,
    /// The block signature names the chain id (blocks sealed under rule version 3 on).
    BlockSignature,
    /// The transaction's signature is valid for the chain id and the block records an
    /// outcome that validation reaches only after checking it (blocks sealed under 1 or 2).
    TransactionSignature,
}

/// A member as the proof shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvedMember {
    pub member_id: MemberId,
    pub name: String,
    pub public_key: PublicKey,
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
    /// The rule version that sealed the block.
    pub rules_version: u32,
    pub binding: Binding,
    /// None for block 0.
    pub proposer: Option<ProvedMember>,
    pub signer: MemberId,
    pub signer_key: Option<PublicKey>,
    /// Whether the signer was a member at the transaction's position in the block.
    pub signer_was_member: bool,
    /// The outcome code the block records (proved).
    pub outcome_code: u8,
    /// The outcome as the proof states it; its detail text is not proved.
    pub outcome: TxOutcome,
    pub members_before: Vec<ProvedMember>,
    pub members_after: Vec<ProvedMember>,
}

fn proof_err(reason: impl Into<String>) -> LedgerError {
    LedgerError::Proof(reason.into())
}

/// Everything a proof of a transaction in block `block` needs from the chain.
pub struct ProofSources<'a> {
    /// Block 0.
    pub genesis: &'a Block,
    /// Block `height - 1` (block 0 for height 1; unused for height 0).
    pub previous: Option<&'a Block>,
    /// The state root of block `height - 2` (ignored below height 2).
    pub state_root_2back: Hash,
    /// The valid governance transactions of blocks 1 to at least `height`, in chain order
    /// (later ones are left out of the proof).
    pub governance: &'a [GovernanceEntry],
}

impl InclusionProof {
    /// The proof for transaction `index` of `block` from the chain's parts (see
    /// [`ProofSources`]). Builds a proof for every transaction; whether it verifies is up to
    /// [`InclusionProof::verify`] (a transaction of a block sealed under rule version 1 or 2
    /// that its own signature cannot bind to the chain does not).
    pub fn build(
        block: &Block,
        index: usize,
        sources: &ProofSources<'_>,
    ) -> Result<InclusionProof, LedgerError> {
        let height = block.header.height;
        let (Some(tx), Some(outcome)) = (block.txs.get(index), block.outcomes.get(index)) else {
            return Err(proof_err(format!(
                "block {height} has no transaction {index}"
            )));
        };
        let leaves: Vec<Vec<u8>> = block.txs.iter().map(Transaction::encode).collect();
        let audit_path = merkle::audit_path(&leaves, index)
            .ok_or_else(|| proof_err("transaction index out of range"))?;
        let chain_id = sources.genesis.hash();
        let genesis = genesis_of(sources.genesis)?;
        let mut proof = InclusionProof {
            chain_id,
            height,
            tx_index: index as u64,
            tree_size: leaves.len() as u64,
            tx: tx.encode(),
            audit_path,
            header: block.header.clone(),
            block_hash: block.hash(),
            block_signature: block.signature,
            rules_version: genesis.rules_version,
            proposer_key: None,
            signer_key: None,
            outcome: outcome.clone(),
            genesis: None,
            governance: Vec::new(),
            state_root_2back: Hash::ZERO,
            outcomes_before: Vec::new(),
            outcomes: outcome_entries(block),
        };
        if height == 0 {
            return Ok(proof);
        }
        let previous = sources
            .previous
            .ok_or_else(|| proof_err(format!("the proof of block {height} needs its parent")))?;
        if previous.header.height + 1 != height {
            return Err(proof_err(format!(
                "block {} is not the parent of block {height}",
                previous.header.height
            )));
        }
        proof.genesis = Some(
            sources
                .genesis
                .txs
                .first()
                .map(Transaction::encode)
                .unwrap_or_default(),
        );
        proof.governance = sources
            .governance
            .iter()
            .filter(|e| e.height <= height)
            .cloned()
            .collect();
        proof.state_root_2back = if height >= 2 {
            sources.state_root_2back
        } else {
            Hash::ZERO
        };
        proof.outcomes_before = outcome_entries(previous);
        let replay = replay(genesis, &proof.governance, height, proof.tx_index).map_err(|e| {
            proof_err(format!(
                "the chain's governance history does not replay: {e}"
            ))
        })?;
        proof.rules_version = replay.before.rules_version;
        proof.proposer_key = replay
            .before
            .members
            .get(&block.header.proposer)
            .map(|m| m.public_key);
        proof.signer_key = replay.signer_key(&tx.signer);
        Ok(proof)
    }

    /// The proof for transaction `index` of block `height` of a whole chain in memory.
    pub fn from_chain(
        blocks: &[Block],
        height: u64,
        index: usize,
    ) -> Result<InclusionProof, LedgerError> {
        let at = |h: u64| {
            usize::try_from(h)
                .ok()
                .and_then(|h| blocks.get(h))
                .ok_or_else(|| proof_err(format!("the chain has no block {h}")))
        };
        let block = at(height)?;
        let genesis = at(0)?;
        let governance: Vec<GovernanceEntry> = blocks
            .iter()
            .skip(1)
            .take_while(|b| b.header.height <= height)
            .flat_map(governance_entries)
            .collect();
        let previous = if height >= 1 {
            Some(at(height - 1)?)
        } else {
            None
        };
        let state_root_2back = if height >= 2 {
            at(height - 2)?.header.state_root
        } else {
            Hash::ZERO
        };
        InclusionProof::build(
            block,
            index,
            &ProofSources {
                genesis,
                previous,
                state_root_2back,
                governance: &governance,
            },
        )
    }

    /// Reads a proof from untrusted JSON text: at most [`MAX_PROOF_BYTES`], version 2,
    /// no unknown or repeated fields, hex in lowercase only (FORMAT.md §12). A version-1
    /// proof is refused with an error that says so.
    pub fn from_json(text: &str) -> Result<InclusionProof, LedgerError> {
        let unreadable = |reason: String| LedgerError::ProofFormat(reason);
        if text.len() > MAX_PROOF_BYTES {
            return Err(unreadable(format!(
                "the proof is {} bytes; at most {MAX_PROOF_BYTES} are read",
                text.len()
            )));
        }
        /// Whether `version` is there at all (`null` included), and what it holds.
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<serde_json::Value>, D::Error> {
            serde_json::Value::deserialize(d).map(Some)
        }
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default, deserialize_with = "present")]
            version: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_str(text)
            .map_err(|e| unreadable(format!("not a JSON object: {e}")))?;
        match probe.version {
            None => {
                return Err(unreadable(
                    "this is a version-1 inclusion proof (it has no \"version\" field), which \
                     proved neither membership nor the outcome nor, for invalid transactions, the \
                     chain; this build reads version 2 only: make a new proof with `consort \
                     ledger proof <txid>`"
                        .into(),
                ))
            }
            Some(v) if v.as_u64() != Some(u64::from(PROOF_VERSION)) => {
                return Err(unreadable(format!(
                    "proof version {v} is not known to this build (it reads version \
                     {PROOF_VERSION})"
                )))
            }
            Some(_) => {}
        }
        serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))
    }

    /// Checks every claim the proof makes (FORMAT.md §12) and reports what it shows.
    pub fn verify(&self) -> Result<ProofReport, LedgerError> {
        let tx = Transaction::decode(&self.tx)?;
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
        if self.audit_path.len() > MAX_AUDIT_PATH
            || !merkle::verify_inclusion(
                &self.tx,
                self.tx_index,
                self.tree_size,
                &self.audit_path,
                &self.header.tx_root,
            )
        {
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
        if self.outcomes.len() as u64 != self.tree_size {
            return Err(proof_err(format!(
                "outcomes lists {} transactions; the block holds {}",
                self.outcomes.len(),
                self.tree_size
            )));
        }
        let tx_id = tx.id();
        let index = usize::try_from(self.tx_index).unwrap_or(usize::MAX);
        let Some(entry) = self.outcomes.get(index) else {
            return Err(proof_err("tx_index is outside outcomes"));
        };
        if entry.tx_id != tx_id {
            return Err(proof_err(format!(
                "outcomes names {} at index {}, not the transaction {tx_id}",
                entry.tx_id, self.tx_index
            )));
        }
        if entry.code != self.outcome.code_byte() {
            return Err(proof_err(format!(
                "the block records outcome code {} ({}) for the transaction; the proof claims {} ({})",
                entry.code,
                code_name(entry.code),
                self.outcome.code_byte(),
                code_name(self.outcome.code_byte())
            )));
        }
        if self.height == 0 {
            return self.verify_genesis(&tx, block_hash);
        }
        self.verify_block(&tx, tx_id, block_hash)
    }

    /// Block 0 is unsigned: it is authentic iff it is the block its genesis transaction
    /// defines and its hash is the chain id.
    fn verify_genesis(
        &self,
        tx: &Transaction,
        block_hash: Hash,
    ) -> Result<ProofReport, LedgerError> {
        let TxPayload::Genesis(genesis) = &tx.payload else {
            return Err(proof_err("block 0 can only hold the Genesis transaction"));
        };
        genesis.validate()?;
        if !self.outcome.is_valid() {
            return Err(proof_err("the genesis transaction is recorded valid"));
        }
        if genesis.block().header != self.header || block_hash != self.chain_id {
            return Err(proof_err(
                "the header is not the genesis block of this chain id",
            ));
        }
        let empty = self.genesis.is_none()
            && self.governance.is_empty()
            && self.outcomes_before.is_empty()
            && self.state_root_2back == Hash::ZERO
            && self.proposer_key.is_none()
            && self.signer_key.is_none()
            && self.block_signature == Signature::ZERO;
        if !empty || self.rules_version != genesis.rules_version {
            return Err(proof_err(
                "a proof of block 0 has rules_version of its genesis, a zero block_signature \
                 and state_root_2back, null genesis, proposer_key and signer_key, and empty \
                 governance and outcomes_before",
            ));
        }
        let members = proved(
            &genesis
                .members
                .iter()
                .map(|m| (m.id(), m.clone()))
                .collect(),
        );
        Ok(ProofReport {
            chain_id: self.chain_id,
            height: 0,
            block_hash,
            tx_id: tx.id(),
            tx_index: 0,
            kind: tx.kind_name(),
            rules_version: genesis.rules_version,
            binding: Binding::Genesis,
            proposer: None,
            signer: tx.signer,
            signer_key: None,
            signer_was_member: false,
            outcome_code: 0,
            outcome: self.outcome.clone(),
            members_before: Vec::new(),
            members_after: members,
        })
    }

    fn verify_block(
        &self,
        tx: &Transaction,
        tx_id: Hash,
        block_hash: Hash,
    ) -> Result<ProofReport, LedgerError> {
        let h = self.height;
        // 1. The genesis, anchored by the chain id.
        let genesis_bytes = self
            .genesis
            .as_deref()
            .ok_or_else(|| proof_err("a proof above block 0 carries the genesis transaction"))?;
        let genesis_tx = Transaction::decode(genesis_bytes)?;
        let TxPayload::Genesis(genesis) = &genesis_tx.payload else {
            return Err(proof_err("genesis is not a Genesis transaction"));
        };
        genesis.validate()?;
        let genesis_block = genesis.block();
        if genesis_block.hash() != self.chain_id || genesis.transaction().encode() != genesis_bytes
        {
            return Err(proof_err(format!(
                "genesis is not the genesis of chain {}",
                self.chain_id
            )));
        }

        // 2. Membership and rule version, rebuilt from the genesis through the history.
        if self.governance.len() > MAX_GOVERNANCE_ENTRIES {
            return Err(proof_err("governance lists too many entries"));
        }
        for (i, e) in self.governance.iter().enumerate() {
            let list = if e.height == h {
                Some(&self.outcomes)
            } else if e.height + 1 == h {
                Some(&self.outcomes_before)
            } else {
                None
            };
            if let Some(list) = list {
                let recorded = list.get(e.tx_index as usize);
                if recorded
                    != Some(&OutcomeEntry {
                        tx_id: e.tx.id(),
                        code: 0,
                    })
                {
                    return Err(proof_err(format!(
                        "governance entry {i} claims transaction {} of block {} recorded valid, \
                         which the block's outcomes do not show",
                        e.tx_index, e.height
                    )));
                }
            }
        }
        let replay = replay(genesis, &self.governance, h, self.tx_index).map_err(proof_err)?;
        if self.rules_version != replay.before.rules_version {
            return Err(proof_err(format!(
                "the proof says block {h} was sealed under rule version {}, but the genesis and \
                 the governance history put it under version {}",
                self.rules_version, replay.before.rules_version
            )));
        }
        let version = replay.before.rules_version;

        // 3. The block commits to those member sets and to the outcomes (§7.2).
        if self.outcomes_before.len() > MAX_OUTCOME_ENTRIES {
            return Err(proof_err("outcomes_before lists too many entries"));
        }
        let pairs = |list: &[OutcomeEntry]| -> Vec<(Hash, u8)> {
            list.iter().map(|e| (e.tx_id, e.code)).collect()
        };
        let root_before = next_state_root(
            &self.state_root_2back,
            &members_digest(&replay.before.members),
            &pairs(&self.outcomes_before),
        );
        if h == 1 && root_before != genesis_block.header.state_root {
            return Err(proof_err(
                "state_root_2back, the genesis members and outcomes_before do not give the \
                 state root of block 0",
            ));
        }
        let root = next_state_root(
            &root_before,
            &members_digest(&replay.after.members),
            &pairs(&self.outcomes),
        );
        if root != self.header.state_root {
            return Err(proof_err(format!(
                "the block's state root does not follow from state_root_2back, outcomes_before, \
                 outcomes and the members the genesis and governance history give before and \
                 after block {h}"
            )));
        }

        // 4. The proposer was a member before the block and signed it.
        let proposer = self.header.proposer;
        let Some(proposer_info) = replay.before.members.get(&proposer) else {
            return Err(proof_err(format!(
                "proposer {proposer} was not a member before block {h}"
            )));
        };
        if self.proposer_key != Some(proposer_info.public_key) {
            return Err(proof_err(format!(
                "proposer_key is not the key of proposer {proposer} ({})",
                proposer_info.public_key
            )));
        }
        let canonical = version < RULES_V2 || self.block_signature.has_canonical_r();
        let message = block_signing_message(version, &self.chain_id, &block_hash);
        if !canonical || verify(&proposer_info.public_key, &message, &self.block_signature).is_err()
        {
            return Err(proof_err(if block_signature_names_chain(version) {
                format!(
                    "the block signature does not verify: block {h} was sealed under rule \
                     version {version}, whose block signature names the chain, and it does not \
                     sign chain {} (consort/block-sig/v2)",
                    self.chain_id
                )
            } else {
                format!(
                    "the block signature does not verify: block {h} was sealed under rule \
                     version {version}, whose block signature is over the block hash alone \
                     (consort/block-sig/v1)"
                )
            }));
        }

        // 5. The signer, its key and the recorded code agree.
        let code = self.outcome.code_byte();
        let signer = tx.signer;
        let signer_key = replay.signer_key(&signer);
        if self.signer_key != signer_key {
            return Err(proof_err(match signer_key {
                Some(key) => format!("signer_key is not the key of signer {signer} ({key})"),
                None => format!(
                    "signer {signer} was never admitted up to block {h}, so the proof carries no \
                     signer_key"
                ),
            }));
        }
        let signer_was_member = replay.at_tx.members.contains_key(&signer);
        let unknown = InvalidCode::UnknownSigner.as_u8();
        let bad_signature = InvalidCode::BadSignature.as_u8();
        if signer_was_member == (code == unknown) {
            return Err(proof_err(if signer_was_member {
                format!("the block records UnknownSigner, but {signer} was a member there")
            } else {
                format!(
                    "{signer} was not a member at the transaction, yet the block records {}",
                    code_name(code)
                )
            }));
        }
        let signature_valid = signer_key.is_some_and(|key| {
            (replay.at_tx.rules_version < RULES_V2 || tx.signature.has_canonical_r())
                && verify(&key, &tx.signing_message(&self.chain_id), &tx.signature).is_ok()
        });
        if code != unknown && code != bad_signature && !signature_valid {
            return Err(proof_err(format!(
                "the block records {} for the transaction, but its signature does not verify \
                 for chain {}",
                code_name(code),
                self.chain_id
            )));
        }
        if code == bad_signature && signature_valid {
            return Err(proof_err(format!(
                "the block records BadSignature, but the transaction's signature verifies for \
                 chain {}",
                self.chain_id
            )));
        }

        // 6. Something names the chain.
        let binding = if block_signature_names_chain(version) {
            Binding::BlockSignature
        } else if code != unknown && code != bad_signature {
            Binding::TransactionSignature
        } else {
            return Err(proof_err(format!(
                "block {h} was sealed under rule version {version}, whose block signature does \
                 not name the chain, and the transaction (recorded {}) carries no signature \
                 valid for chain {}; nothing binds this proof to that chain",
                code_name(code),
                self.chain_id
            )));
        };

        Ok(ProofReport {
            chain_id: self.chain_id,
            height: h,
            block_hash,
            tx_id,
            tx_index: self.tx_index,
            kind: tx.kind_name(),
            rules_version: version,
            binding,
            proposer: Some(ProvedMember {
                member_id: proposer,
                name: proposer_info.name.clone(),
                public_key: proposer_info.public_key,
            }),
            signer,
            signer_key,
            signer_was_member,
            outcome_code: code,
            outcome: self.outcome.clone(),
            members_before: proved(&replay.before.members),
            members_after: proved(&replay.after.members),
        })
    }
}

fn code_name(code: u8) -> &'static str {
    match InvalidCode::from_u8(code) {
        Some(c) => c.name(),
        None if code == 0 => "Valid",
        None => "an unknown code",
    }
}

fn proved(members: &BTreeMap<MemberId, MemberInfo>) -> Vec<ProvedMember> {
    members
        .iter()
        .map(|(id, m)| ProvedMember {
            member_id: *id,
            name: m.name.clone(),
            public_key: m.public_key,
        })
        .collect()
}

fn genesis_of(block: &Block) -> Result<&Genesis, LedgerError> {
    match block.txs.first().map(|tx| &tx.payload) {
        Some(TxPayload::Genesis(genesis)) if block.header.height == 0 => Ok(genesis),
        _ => Err(proof_err("block 0 does not hold a Genesis transaction")),
    }
}

/// The member set and rule version at one point of the chain.
struct Snapshot {
    members: BTreeMap<MemberId, MemberInfo>,
    rules_version: u32,
}

impl Snapshot {
    fn of(state: &LedgerState) -> Snapshot {
        Snapshot {
            members: state.members().clone(),
            rules_version: state.rules_version(),
        }
    }
}

/// Membership and rule version around transaction `tx_index` of block `height`, rebuilt
/// from the genesis through the governance history.
struct Replay {
    /// At the start of block `height`.
    before: Snapshot,
    /// Just before the transaction.
    at_tx: Snapshot,
    /// At the end of block `height`.
    after: Snapshot,
    /// Every key the genesis or the history admitted, by member id.
    admitted: HashMap<MemberId, PublicKey>,
}

impl Replay {
    /// The signer's key: as a member at the transaction, or else as admitted.
    fn signer_key(&self, signer: &MemberId) -> Option<PublicKey> {
        self.at_tx
            .members
            .get(signer)
            .map(|m| m.public_key)
            .or_else(|| self.admitted.get(signer).copied())
    }
}

fn replay(
    genesis: &Genesis,
    governance: &[GovernanceEntry],
    height: u64,
    tx_index: u64,
) -> Result<Replay, String> {
    let mut state = LedgerState::from_genesis(genesis).map_err(|e| e.to_string())?;
    let mut admitted: HashMap<MemberId, PublicKey> = genesis
        .members
        .iter()
        .map(|m| (m.id(), m.public_key))
        .collect();
    let mut before = None;
    let mut at_tx = None;
    let mut last: Option<(u64, u32)> = None;
    for (i, entry) in governance.iter().enumerate() {
        let position = (entry.height, entry.tx_index);
        if entry.height == 0 || entry.height > height || last.is_some_and(|l| position <= l) {
            return Err(format!(
                "governance entry {i} (block {}, transaction {}) is out of order or outside \
                 blocks 1 to {height}",
                entry.height, entry.tx_index
            ));
        }
        last = Some(position);
        if !is_governance(&entry.tx.payload) {
            return Err(format!(
                "governance entry {i} is a {} transaction, not a membership change or rule \
                 upgrade",
                entry.tx.kind_name()
            ));
        }
        if entry.height == height && before.is_none() {
            before = Some(Snapshot::of(&state));
        }
        if entry.height == height && u64::from(entry.tx_index) >= tx_index && at_tx.is_none() {
            at_tx = Some(Snapshot::of(&state));
        }
        if let TxOutcome::Invalid { code, detail } = state.apply_governance_tx(&entry.tx) {
            return Err(format!(
                "governance entry {i} ({} in block {}, transaction {}) is not valid after the \
                 entries before it: {code}: {detail}",
                entry.tx.kind_name(),
                entry.height,
                entry.tx_index
            ));
        }
        if let TxPayload::MemberAdd(info) = &entry.tx.payload {
            admitted.insert(info.id(), info.public_key);
        }
    }
    let end = Snapshot::of(&state);
    let before = before.unwrap_or_else(|| Snapshot::of(&state));
    let at_tx = at_tx.unwrap_or_else(|| Snapshot::of(&state));
    Ok(Replay {
        before,
        at_tx,
        after: end,
        admitted,
    })
}

// ---------------------------------------------------------------------------------------
// The JSON form. Every hex string is lowercase and of its exact length; every object refuses
// unknown fields; optional values are present as `null`.

/// A field that must be present, possibly as `null`.
fn required_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireProof {
    version: u32,
    chain_id: String,
    height: u64,
    tx_index: u64,
    tree_size: u64,
    tx: String,
    audit_path: Vec<String>,
    header: WireHeader,
    block_hash: String,
    block_signature: String,
    rules_version: u32,
    #[serde(deserialize_with = "required_option")]
    proposer_key: Option<String>,
    #[serde(deserialize_with = "required_option")]
    signer_key: Option<String>,
    outcome: WireOutcome,
    #[serde(deserialize_with = "required_option")]
    genesis: Option<String>,
    governance: Vec<WireGovernance>,
    state_root_2back: String,
    outcomes_before: Vec<WireOutcomeEntry>,
    outcomes: Vec<WireOutcomeEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    height: u64,
    prev_hash: String,
    tx_root: String,
    state_root: String,
    timestamp_ms: u64,
    proposer: String,
    tx_count: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum WireOutcome {
    Valid,
    Invalid { code: InvalidCode, detail: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireGovernance {
    height: u64,
    tx_index: u32,
    tx: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOutcomeEntry {
    tx_id: String,
    code: u8,
}

/// Lowercase hex, nothing else (no case folding, no white space, no prefix).
fn hex_bytes(what: &str, text: &str) -> Result<Vec<u8>, String> {
    if let Some(bad) = text.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "{what} holds {bad:?}; hex in a proof is lowercase 0-9a-f only"
        ));
    }
    hex::decode(text).map_err(|e| format!("{what} is not hex: {e}"))
}

fn hex_array<const N: usize>(what: &str, text: &str) -> Result<[u8; N], String> {
    let bytes = hex_bytes(what, text)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{what} has {} hex characters, not {}", text.len(), 2 * N))
}

fn hash(what: &str, text: &str) -> Result<Hash, String> {
    hex_array::<32>(what, text).map(Hash)
}

fn key(what: &str, text: &str) -> Result<PublicKey, String> {
    hex_array::<32>(what, text).map(PublicKey)
}

fn transaction(what: &str, text: &str) -> Result<Transaction, String> {
    let bytes = hex_bytes(what, text)?;
    Transaction::decode(&bytes).map_err(|e| format!("{what}: {e}"))
}

fn entries(what: &str, list: Vec<WireOutcomeEntry>) -> Result<Vec<OutcomeEntry>, String> {
    if list.len() > MAX_OUTCOME_ENTRIES {
        return Err(format!(
            "{what} lists {} transactions; at most {MAX_OUTCOME_ENTRIES} are read",
            list.len()
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(OutcomeEntry {
                tx_id: hash(&format!("{what}[{i}].tx_id"), &e.tx_id)?,
                code: e.code,
            })
        })
        .collect()
}

impl TryFrom<WireProof> for InclusionProof {
    type Error = String;

    fn try_from(w: WireProof) -> Result<Self, String> {
        if w.version != PROOF_VERSION {
            return Err(format!(
                "proof version {} is not known to this build (it reads version {PROOF_VERSION})",
                w.version
            ));
        }
        if w.audit_path.len() > MAX_AUDIT_PATH {
            return Err(format!(
                "audit_path has {} hashes; at most {MAX_AUDIT_PATH} are read",
                w.audit_path.len()
            ));
        }
        if w.governance.len() > MAX_GOVERNANCE_ENTRIES {
            return Err(format!(
                "governance lists {} transactions; at most {MAX_GOVERNANCE_ENTRIES} are read",
                w.governance.len()
            ));
        }
        let header = BlockHeader {
            height: w.header.height,
            prev_hash: hash("header.prev_hash", &w.header.prev_hash)?,
            tx_root: hash("header.tx_root", &w.header.tx_root)?,
            state_root: hash("header.state_root", &w.header.state_root)?,
            timestamp_ms: w.header.timestamp_ms,
            proposer: MemberId(hex_array::<16>("header.proposer", &w.header.proposer)?),
            tx_count: w.header.tx_count,
        };
        let audit_path = w
            .audit_path
            .iter()
            .enumerate()
            .map(|(i, h)| hash(&format!("audit_path[{i}]"), h))
            .collect::<Result<_, _>>()?;
        let governance = w
            .governance
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                Ok(GovernanceEntry {
                    height: e.height,
                    tx_index: e.tx_index,
                    tx: transaction(&format!("governance[{i}].tx"), &e.tx)?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(InclusionProof {
            chain_id: hash("chain_id", &w.chain_id)?,
            height: w.height,
            tx_index: w.tx_index,
            tree_size: w.tree_size,
            tx: hex_bytes("tx", &w.tx)?,
            audit_path,
            header,
            block_hash: hash("block_hash", &w.block_hash)?,
            block_signature: Signature(hex_array::<64>("block_signature", &w.block_signature)?),
            rules_version: w.rules_version,
            proposer_key: w
                .proposer_key
                .map(|k| key("proposer_key", &k))
                .transpose()?,
            signer_key: w.signer_key.map(|k| key("signer_key", &k)).transpose()?,
            outcome: match w.outcome {
                WireOutcome::Valid => TxOutcome::Valid,
                WireOutcome::Invalid { code, detail } => TxOutcome::Invalid { code, detail },
            },
            genesis: w.genesis.map(|g| hex_bytes("genesis", &g)).transpose()?,
            governance,
            state_root_2back: hash("state_root_2back", &w.state_root_2back)?,
            outcomes_before: entries("outcomes_before", w.outcomes_before)?,
            outcomes: entries("outcomes", w.outcomes)?,
        })
    }
}

impl From<InclusionProof> for WireProof {
    fn from(p: InclusionProof) -> WireProof {
        let entries = |list: Vec<OutcomeEntry>| {
            list.into_iter()
                .map(|e| WireOutcomeEntry {
                    tx_id: e.tx_id.to_string(),
                    code: e.code,
                })
                .collect()
        };
        WireProof {
            version: PROOF_VERSION,
            chain_id: p.chain_id.to_string(),
            height: p.height,
            tx_index: p.tx_index,
            tree_size: p.tree_size,
            tx: hex::encode(&p.tx),
            audit_path: p.audit_path.iter().map(Hash::to_string).collect(),
            header: WireHeader {
                height: p.header.height,
                prev_hash: p.header.prev_hash.to_string(),
                tx_root: p.header.tx_root.to_string(),
                state_root: p.header.state_root.to_string(),
                timestamp_ms: p.header.timestamp_ms,
                proposer: p.header.proposer.to_string(),
                tx_count: p.header.tx_count,
            },
            block_hash: p.block_hash.to_string(),
            block_signature: p.block_signature.to_string(),
            rules_version: p.rules_version,
            proposer_key: p.proposer_key.map(|k| k.to_string()),
            signer_key: p.signer_key.map(|k| k.to_string()),
            outcome: match p.outcome {
                TxOutcome::Valid => WireOutcome::Valid,
                TxOutcome::Invalid { code, detail } => WireOutcome::Invalid { code, detail },
            },
            genesis: p.genesis.map(hex::encode),
            governance: p
                .governance
                .into_iter()
                .map(|e| WireGovernance {
                    height: e.height,
                    tx_index: e.tx_index,
                    tx: hex::encode(e.tx.encode()),
                })
                .collect(),
            state_root_2back: p.state_root_2back.to_string(),
            outcomes_before: entries(p.outcomes_before),
            outcomes: entries(p.outcomes),
        }
    }
}
