//! The rules of `docs/FORMAT.md` §8.2 for grants, joint queries and data transfers (payload
//! tags 6 to 11). They are methods of the per-block overlay, like the other rules, so that a
//! block being built, or one that fails to apply, never touches the base state: every entry
//! a rule changes is copied into the overlay first.
//!
//! Each rule checks everything before it changes anything, so an `Err` leaves the overlay
//! as it was.

use consort_crypto::{Hash, MemberId};

use crate::block::{InvalidCode, TxOutcome};
use crate::dataset::{DatasetEntry, DatasetKind};
use crate::policy::{
    DataTransfer, Grant, GrantEntry, Grantee, Permission, QueryDecision, QueryEntry, QueryOutcome,
    QueryRequest, QueryResult, Revoke, COMPUTE_PARTIES, FILES_GRANT_COLUMN, MAX_QUERY_SQL,
};
use crate::rules::BlockEffects;
use crate::tx::EncodedTx;

type Checked<T = ()> = Result<T, TxOutcome>;

// The detail texts below are part of the format (docs/FORMAT.md §8.2): validators recompute
// them, so any change is a format change.

fn bad_payload(detail: impl Into<String>) -> TxOutcome {
    TxOutcome::invalid(InvalidCode::BadPayload, detail)
}

impl BlockEffects<'_> {
    pub(crate) fn grant(&self, id: &Hash) -> Option<&GrantEntry> {
        self.grant_changes
            .get(id)
            .or_else(|| self.base.grants.get(id))
    }

    pub(crate) fn query(&self, id: &Hash) -> Option<&QueryEntry> {
        self.query_changes
            .get(id)
            .or_else(|| self.base.queries.get(id))
    }

    fn check_member(&self, member: &MemberId) -> Checked {
        if self.members().contains_key(member) {
            Ok(())
        } else {
            Err(TxOutcome::invalid(
                InvalidCode::UnknownMember,
                format!("{member} is not a member"),
            ))
        }
    }

    fn owned_dataset(&self, owner: &MemberId, name: &str) -> Checked<&DatasetEntry> {
        self.dataset(owner, name).ok_or_else(|| {
            TxOutcome::invalid(
                InvalidCode::UnknownDataset,
                format!("{owner} has no dataset named {name}"),
            )
        })
    }

    /// `owner`'s dataset `name`, which must still be at the version registered by `version_tx`.
    fn dataset_at(&self, owner: &MemberId, name: &str, version_tx: &Hash) -> Checked {
        let entry = self.owned_dataset(owner, name)?;
        if entry.tx_id == *version_tx {
            Ok(())
        } else {
            Err(TxOutcome::invalid(
                InvalidCode::StaleVersion,
                format!(
                    "the current version of {name} of {owner} was registered by {}",
                    entry.tx_id
                ),
            ))
        }
    }

    /// A recorded query that has no result yet.
    fn open_query(&self, id: &Hash) -> Checked<&QueryEntry> {
        let Some(entry) = self.query(id) else {
            return Err(TxOutcome::invalid(
                InvalidCode::UnknownQuery,
                format!("no query {id}"),
            ));
        };
        if entry.result.is_some() {
            return Err(TxOutcome::invalid(
                InvalidCode::QueryClosed,
                format!("query {id} already has a result"),
            ));
        }
        Ok(entry)
    }

    pub(crate) fn apply_grant(&mut self, enc: &EncodedTx<'_>, grant: &Grant) -> Checked {
        let tx = enc.tx;
        if let Some(reason) = grant.non_canonical() {
            return Err(bad_payload(reason));
        }
        if grant.columns.is_empty() {
            return Err(bad_payload("a grant names at least one column"));
        }
        if let Some(c) = grant.columns.iter().find(|c| c.permissions.is_empty()) {
            return Err(bad_payload(format!(
                "column {} has no permissions",
                c.column
            )));
        }
        if grant.min_group_size == 0 {
            return Err(bad_payload("min_group_size must be at least 1"));
        }
        if grant.expires_ms.is_some_and(|t| t <= tx.timestamp_ms) {
            return Err(bad_payload(
                "the grant expires at or before its transaction's timestamp",
            ));
        }
        if let Grantee::Member(member) = &grant.grantee {
            if *member == tx.signer {
                return Err(bad_payload("a member cannot grant to itself"));
            }
            self.check_member(member)?;
        }
        let dataset = self.owned_dataset(&tx.signer, &grant.dataset)?;
        match dataset.record.kind {
            DatasetKind::Table => {
                let schema = &dataset.record.columns;
                if let Some(c) = grant
                    .columns
                    .iter()
                    .find(|c| !schema.iter().any(|s| s.name == c.column))
                {
                    return Err(TxOutcome::invalid(
                        InvalidCode::UnknownColumn,
                        format!("{} has no column {}", grant.dataset, c.column),
                    ));
                }
            }
            DatasetKind::Files => {
                // Files have no columns to choose from and no values to compute on: the only
                // thing a grant can allow is fetching them.
                let whole = matches!(grant.columns.as_slice(),
                    [c] if c.column == FILES_GRANT_COLUMN && c.permissions == [Permission::Plain]);
                if !whole {
                    return Err(bad_payload(
                        "a grant on a files dataset gives only plain on column *",
                    ));
                }
            }
        }
        let id = enc.id();
        self.grant_changes.insert(
            id,
            GrantEntry {
                id,
                owner: tx.signer,
                grant: grant.clone(),
                granted_ms: tx.timestamp_ms,
                revoked_by: None,
            },
        );
        Ok(())
    }

    pub(crate) fn apply_revoke(&mut self, enc: &EncodedTx<'_>, revoke: &Revoke) -> Checked {
        let id = revoke.grant;
        let Some(entry) = self.grant(&id) else {
            return Err(TxOutcome::invalid(
                InvalidCode::UnknownGrant,
                format!("no grant {id}"),
            ));
        };
        if entry.owner != enc.tx.signer {
            return Err(TxOutcome::invalid(
                InvalidCode::NotOwner,
                format!("grant {id} belongs to {}", entry.owner),
            ));
        }
        if let Some(by) = entry.revoked_by {
            return Err(TxOutcome::invalid(
                InvalidCode::AlreadyRevoked,
                format!("grant {id} was already revoked by {by}"),
            ));
        }
        let mut entry = entry.clone();
        entry.revoked_by = Some(enc.id());
        self.grant_changes.insert(id, entry);
        Ok(())
    }

    pub(crate) fn apply_query_request(
        &mut self,
        enc: &EncodedTx<'_>,
        request: &QueryRequest,
    ) -> Checked {
        let tx = enc.tx;
        if let Some(reason) = request.non_canonical() {
            return Err(bad_payload(reason));
        }
        if request.sql.is_empty() || request.sql.len() > MAX_QUERY_SQL {
            return Err(bad_payload(format!(
                "sql must be 1 to {MAX_QUERY_SQL} bytes"
            )));
        }
        if request.datasets.is_empty() {
            return Err(bad_payload("a query reads at least one dataset"));
        }
        if request.compute.len() != COMPUTE_PARTIES {
            return Err(bad_payload(format!(
                "a query names exactly {COMPUTE_PARTIES} compute nodes"
            )));
        }
        for (i, node) in request.compute.iter().enumerate() {
            if request.compute[..i].contains(node) {
                return Err(bad_payload("the compute nodes are not distinct"));
            }
        }
        for node in &request.compute {
            self.check_member(node)?;
        }
        for d in &request.datasets {
            self.dataset_at(&d.owner, &d.name, &d.version_tx)?;
        }
        let id = enc.id();
        self.query_changes.insert(
            id,
            QueryEntry {
                id,
                requester: tx.signer,
                request: request.clone(),
                requested_ms: tx.timestamp_ms,
                decisions: Vec::new(),
                result: None,
            },
        );
        Ok(())
    }

    pub(crate) fn apply_query_decision(
        &mut self,
        enc: &EncodedTx<'_>,
        decision: &QueryDecision,
    ) -> Checked {
        let signer = enc.tx.signer;
        let id = decision.query;
        let entry = self.open_query(&id)?;
        if !entry.request.datasets.iter().any(|d| d.owner == signer) {
            return Err(TxOutcome::invalid(
                InvalidCode::NotOwner,
                format!("{signer} owns none of the datasets of query {id}"),
            ));
        }
        if entry.decisions.iter().any(|(owner, ..)| *owner == signer) {
            return Err(TxOutcome::invalid(
                InvalidCode::DuplicateDecision,
                format!("{signer} already decided on query {id}"),
            ));
        }
        if decision.approve && decision.min_group_size == 0 {
            return Err(bad_payload(
                "an approval needs a min_group_size of at least 1",
            ));
        }
        let mut entry = entry.clone();
        entry.decisions.push((signer, decision.clone(), enc.id()));
        self.query_changes.insert(id, entry);
        Ok(())
    }

    pub(crate) fn apply_query_result(
        &mut self,
        enc: &EncodedTx<'_>,
        result: &QueryResult,
        chain_id: &Hash,
    ) -> Checked {
        let signer = enc.tx.signer;
        let id = result.query;
        let entry = self.open_query(&id)?;
        let request = &entry.request;
        match &result.outcome {
            QueryOutcome::Failed { reason } => {
                // Anyone taking part may report that the query cannot complete; outsiders
                // may not close other members' queries.
                let takes_part = signer == entry.requester
                    || request.compute.contains(&signer)
                    || request.datasets.iter().any(|d| d.owner == signer);
                if !takes_part {
                    return Err(TxOutcome::invalid(
                        InvalidCode::NotParticipant,
                        format!("{signer} takes no part in query {id}"),
                    ));
                }
                if reason.is_empty() {
                    return Err(bad_payload("a failed query needs a reason"));
                }
            }
            QueryOutcome::Revealed { share_digests, .. } => {
                if share_digests.len() != COMPUTE_PARTIES {
                    return Err(bad_payload(format!(
                        "a revealed result has exactly {COMPUTE_PARTIES} share digests"
                    )));
                }
                for owner in request.owners() {
                    let approved = entry
                        .decisions
                        .iter()
                        .any(|(by, decision, _)| *by == owner && decision.approve);
                    if !approved {
                        return Err(TxOutcome::invalid(
                            InvalidCode::NotApproved,
                            format!("{owner} has not approved query {id}"),
                        ));
                    }
                }
                // Each compute node attests the result by signing this transaction, so no
                // single node can claim a revelation the others did not take part in.
                let approvers = self.approvers(enc, chain_id);
                if let Some(node) = request.compute.iter().find(|m| !approvers.contains(m)) {
                    return Err(TxOutcome::invalid(
                        InvalidCode::InsufficientApprovals,
                        format!("compute node {node} did not sign the result of query {id}"),
                    ));
                }
            }
        }
        let mut entry = entry.clone();
        entry.result = Some((result.clone(), enc.id()));
        self.query_changes.insert(id, entry);
        Ok(())
    }

    /// A transfer changes no state; the rule only makes the record trustworthy.
    pub(crate) fn check_data_transfer(
        &self,
        enc: &EncodedTx<'_>,
        transfer: &DataTransfer,
    ) -> Checked {
        let signer = enc.tx.signer;
        if transfer.recipient == signer {
            return Err(bad_payload("a member cannot transfer to itself"));
        }
        self.check_member(&transfer.recipient)?;
        self.dataset_at(&signer, &transfer.dataset, &transfer.version_tx)
    }
}
