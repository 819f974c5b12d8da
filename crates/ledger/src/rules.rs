//! The transaction rules of `docs/FORMAT.md` §8.2: how one transaction is judged against the
//! state as left by the transactions before it in the same block, and what a valid one changes.

use std::collections::{BTreeMap, HashSet};

use consort_crypto::{verify, Hash, MemberId};

use crate::block::{InvalidCode, TxOutcome};
use crate::dataset::{DatasetEntry, DatasetRecord};
use crate::policy::{GrantEntry, QueryEntry};
use crate::state::LedgerState;
use crate::tx::{EncodedTx, MemberInfo, TxPayload};

/// The effect of a block's transactions, accumulated against a read-only base state so that
/// neither building nor a failed apply touches the base. Membership is copied on first write
/// (membership changes are rare); nonces go into a per-block overlay set; datasets, grants
/// and queries changed by the block go into overlay maps that shadow the base entries.
pub(crate) struct BlockEffects<'s> {
    pub(crate) base: &'s LedgerState,
    pub(crate) members: Option<BTreeMap<MemberId, MemberInfo>>,
    pub(crate) new_nonces: HashSet<(MemberId, u64)>,
    /// Datasets registered or updated by this block's valid transactions.
    pub(crate) dataset_changes: BTreeMap<(MemberId, String), DatasetEntry>,
    /// Grants created or revoked by this block's valid transactions, by grant id.
    pub(crate) grant_changes: BTreeMap<Hash, GrantEntry>,
    /// Queries requested, decided or concluded by this block's valid transactions, by id.
    pub(crate) query_changes: BTreeMap<Hash, QueryEntry>,
    pub(crate) outcomes: Vec<TxOutcome>,
    pub(crate) ids_and_codes: Vec<(Hash, u8)>,
    /// The rule version for the next transaction; a valid `RulesUpgrade` raises it.
    pub(crate) rules_version: u32,
}

impl<'s> BlockEffects<'s> {
    pub(crate) fn new(base: &'s LedgerState, capacity: usize) -> Self {
        BlockEffects {
            base,
            members: None,
            new_nonces: HashSet::with_capacity(capacity),
            dataset_changes: BTreeMap::new(),
            grant_changes: BTreeMap::new(),
            query_changes: BTreeMap::new(),
            outcomes: Vec::with_capacity(capacity),
            ids_and_codes: Vec::with_capacity(capacity),
            rules_version: base.rules_version,
        }
    }

    pub(crate) fn members(&self) -> &BTreeMap<MemberId, MemberInfo> {
        self.members.as_ref().unwrap_or(&self.base.members)
    }

    fn members_mut(&mut self) -> &mut BTreeMap<MemberId, MemberInfo> {
        self.members
            .get_or_insert_with(|| self.base.members.clone())
    }

    pub(crate) fn dataset(&self, owner: &MemberId, name: &str) -> Option<&DatasetEntry> {
        let key = (*owner, name.to_string());
        self.dataset_changes
            .get(&key)
            .or_else(|| self.base.datasets.get(&key))
    }

    fn nonce_used(&self, signer: &MemberId, nonce: u64) -> bool {
        let key = (*signer, nonce);
        self.new_nonces.contains(&key) || self.base.used_nonces.contains(&key)
    }

    /// Validates one transaction against the state as changed by the earlier valid ones, and
    /// applies it if valid. `signature_ok` is the precomputed check of the tx signature
    /// under the signer's key.
    pub(crate) fn process(
        &mut self,
        enc: &EncodedTx<'_>,
        signature_ok: bool,
        chain_id: &Hash,
    ) -> TxOutcome {
        let outcome = self.validate_and_apply(enc, signature_ok, chain_id);
        self.ids_and_codes.push((enc.id(), outcome.code_byte()));
        outcome
    }

    fn validate_and_apply(
        &mut self,
        enc: &EncodedTx<'_>,
        signature_ok: bool,
        chain_id: &Hash,
    ) -> TxOutcome {
        let tx = enc.tx;
        if !self.members().contains_key(&tx.signer) {
            return TxOutcome::invalid(
                InvalidCode::UnknownSigner,
                format!("signer {} is not a member", tx.signer),
            );
        }
        if self.rules_version >= crate::rules_limits::RULES_V2 {
            if let Err(outcome) = crate::rules_limits::check_signature_encoding(tx) {
                return outcome;
            }
        }
        if !signature_ok {
            return TxOutcome::invalid(
                InvalidCode::BadSignature,
                "signature does not verify under the signer's key",
            );
        }
        if self.nonce_used(&tx.signer, tx.nonce) {
            return TxOutcome::invalid(
                InvalidCode::ReplayedNonce,
                format!("nonce {} already used by {}", tx.nonce, tx.signer),
            );
        }
        // Rules added by a version judge only transactions recorded under it, so a block
        // recorded under an older version keeps its outcomes (FORMAT.md §8.4).
        if self.rules_version >= crate::rules_limits::RULES_V2 {
            if let Err(outcome) = crate::rules_limits::check(&tx.payload) {
                return outcome;
            }
        }
        match &tx.payload {
            TxPayload::Genesis(_) => {
                return TxOutcome::invalid(
                    InvalidCode::BadPayload,
                    "Genesis transaction outside block 0",
                )
            }
            TxPayload::Notarize(_) => {}
            TxPayload::MemberAdd(info) => {
                if let Err(outcome) = self.check_majority(enc, chain_id) {
                    return outcome;
                }
                if let Err(outcome) = self.check_member_add(info) {
                    return outcome;
                }
                self.members_mut().insert(info.id(), info.clone());
            }
            TxPayload::MemberRemove { member } => {
                if let Err(outcome) = self.check_majority(enc, chain_id) {
                    return outcome;
                }
                if !self.members().contains_key(member) {
                    return TxOutcome::invalid(
                        InvalidCode::UnknownMember,
                        format!("{member} is not a member"),
                    );
                }
                if self.members().len() == 1 {
                    return TxOutcome::invalid(
                        InvalidCode::BadPayload,
                        "cannot remove the last member",
                    );
                }
                self.members_mut().remove(member);
            }
            TxPayload::DatasetRegister(record) | TxPayload::DatasetUpdate(record) => {
                let checked = record
                    .check_shape()
                    .and_then(|()| self.check_commitment_scheme(record))
                    .map_err(|reason| TxOutcome::invalid(InvalidCode::BadPayload, reason))
                    .and_then(|()| match &tx.payload {
                        TxPayload::DatasetRegister(_) => {
                            self.check_dataset_register(&tx.signer, record)
                        }
                        _ => self.check_dataset_update(&tx.signer, record),
                    });
                if let Err(outcome) = checked {
                    return outcome;
                }
                self.record_dataset(tx.signer, record, enc.id());
            }
            TxPayload::Grant(grant) => {
                if let Err(outcome) = self.apply_grant(enc, grant) {
                    return outcome;
                }
            }
            TxPayload::Revoke(revoke) => {
                if let Err(outcome) = self.apply_revoke(enc, revoke) {
                    return outcome;
                }
            }
            TxPayload::QueryRequest(request) => {
                if let Err(outcome) = self.apply_query_request(enc, request) {
                    return outcome;
                }
            }
            TxPayload::QueryDecision(decision) => {
                if let Err(outcome) = self.apply_query_decision(enc, decision) {
                    return outcome;
                }
            }
            TxPayload::QueryResult(result) => {
                if let Err(outcome) = self.apply_query_result(enc, result, chain_id) {
                    return outcome;
                }
            }
            TxPayload::RulesUpgrade { version } => {
                if let Err(outcome) = self.check_majority(enc, chain_id) {
                    return outcome;
                }
                if *version <= self.rules_version || *version > crate::rules_limits::LATEST_RULES {
                    return TxOutcome::invalid(
                        InvalidCode::BadPayload,
                        format!(
                            "rule version {version} is not later than the current {} and at most {}",
                            self.rules_version,
                            crate::rules_limits::LATEST_RULES
                        ),
                    );
                }
                self.rules_version = *version;
            }
            TxPayload::DataTransfer(transfer) => {
                if let Err(outcome) = self.check_data_transfer(enc, transfer) {
                    return outcome;
                }
            }
        }
        self.new_nonces.insert((tx.signer, tx.nonce));
        TxOutcome::Valid
    }

    /// More than half of the current members — the signer plus distinct members with a valid
    /// approval — must back a membership change.
    fn check_majority(&self, enc: &EncodedTx<'_>, chain_id: &Hash) -> Result<(), TxOutcome> {
        let members = self.members();
        let approvers = self.approvers(enc, chain_id);
        if approvers.len() * 2 > members.len() {
            Ok(())
        } else {
            Err(TxOutcome::invalid(
                InvalidCode::InsufficientApprovals,
                format!(
                    "{} of {} members approved; more than half must",
                    approvers.len(),
                    members.len()
                ),
            ))
        }
    }

    /// The signer plus every distinct current member with a valid approval over the same
    /// signing message; approvals that fail are ignored, not an error (FORMAT.md §8.2).
    pub(crate) fn approvers(&self, enc: &EncodedTx<'_>, chain_id: &Hash) -> HashSet<MemberId> {
        let tx = enc.tx;
        let members = self.members();
        let mut approvers = HashSet::from([tx.signer]);
        let message = enc.signing_message(chain_id);
        for approval in &tx.approvals {
            if approvers.contains(&approval.member) {
                continue;
            }
            let Some(info) = members.get(&approval.member) else {
                continue;
            };
            let canonical = self.rules_version < crate::rules_limits::RULES_V2
                || approval.signature.has_canonical_r();
            if canonical && verify(&info.public_key, &message, &approval.signature).is_ok() {
                approvers.insert(approval.member);
            }
        }
        approvers
    }

    fn check_member_add(&self, info: &MemberInfo) -> Result<(), TxOutcome> {
        if info.name.trim().is_empty() || !info.public_key.is_valid() {
            return Err(TxOutcome::invalid(
                InvalidCode::BadPayload,
                "new member needs a non-empty name and a valid Ed25519 public key",
            ));
        }
        for (id, existing) in self.members() {
            if existing.public_key == info.public_key {
                return Err(TxOutcome::invalid(
                    InvalidCode::MemberExists,
                    format!("public key already belongs to member {id}"),
                ));
            }
            if existing.name == info.name {
                return Err(TxOutcome::invalid(
                    InvalidCode::MemberExists,
                    format!("name already used by member {id}"),
                ));
            }
        }
        Ok(())
    }

    /// The salted-columns commitment scheme is a rule of version 3 (`docs/FORMAT.md`
    /// §8.4): a build that predates it cannot decode the record, so under older versions
    /// such a record is refused rather than judged.
    fn check_commitment_scheme(&self, record: &DatasetRecord) -> Result<(), String> {
        if record.commitment_scheme.is_row_hash()
            || self.rules_version >= crate::rules_limits::RULES_V3
        {
            return Ok(());
        }
        Err(format!(
            "the {} commitment scheme needs rule version {}; this chain is at version {}",
            record.commitment_scheme.as_str(),
            crate::rules_limits::RULES_V3,
            self.rules_version
        ))
    }

    /// After the shape check: the rules of a registration.
    fn check_dataset_register(
        &self,
        owner: &MemberId,
        record: &DatasetRecord,
    ) -> Result<(), TxOutcome> {
        if self.dataset(owner, &record.name).is_some() {
            return Err(TxOutcome::invalid(
                InvalidCode::DatasetExists,
                format!("{owner} already has a dataset named {}", record.name),
            ));
        }
        if record.version != 1 || record.parent.is_some() {
            return Err(TxOutcome::invalid(
                InvalidCode::StaleVersion,
                "a registration is version 1 with no parent",
            ));
        }
        Ok(())
    }

    /// After the shape check: the rules of an update.
    fn check_dataset_update(
        &self,
        owner: &MemberId,
        record: &DatasetRecord,
    ) -> Result<(), TxOutcome> {
        let Some(current) = self.dataset(owner, &record.name) else {
            return Err(TxOutcome::invalid(
                InvalidCode::UnknownDataset,
                format!("{owner} has no dataset named {}", record.name),
            ));
        };
        if record.parent != Some(current.tx_id)
            || Some(record.version) != current.record.version.checked_add(1)
        {
            return Err(TxOutcome::invalid(
                InvalidCode::StaleVersion,
                format!(
                    "the current version of {} is {} (registered by {}); an update must be version {} with that parent",
                    record.name,
                    current.record.version,
                    current.tx_id,
                    u64::from(current.record.version) + 1
                ),
            ));
        }
        if let Some(reason) = record.incompatibility_with(&current.record) {
            return Err(TxOutcome::invalid(InvalidCode::IncompatibleSchema, reason));
        }
        Ok(())
    }

    fn record_dataset(&mut self, owner: MemberId, record: &DatasetRecord, tx_id: Hash) {
        self.dataset_changes.insert(
            (owner, record.name.clone()),
            DatasetEntry {
                owner,
                record: record.clone(),
                tx_id,
            },
        );
    }
}
