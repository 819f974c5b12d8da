//! The validation rules of grants, revocations, joint queries and data transfers
//! (docs/FORMAT.md §8.2): each valid case is accepted and each violation is recorded invalid
//! with its code.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{hash_domain, Hash, MemberId, SecretKey};
use consort_ledger::conformance::{sample_genesis, sample_keys};
use consort_ledger::dataset::{ColumnSpec, DatasetKind, DatasetRecord};
use consort_ledger::policy::{
    ColumnGrant, DataTransfer, DatasetRef, Grant, Grantee, Permission, QueryDecision, QueryOutcome,
    QueryRequest, QueryResult, Revoke,
};
use consort_ledger::{InvalidCode, LedgerState, Transaction, TxOutcome, TxPayload};

use InvalidCode::*;
use Permission::*;

const NOW: u64 = 1_000;

struct Ledger {
    keys: Vec<SecretKey>,
    state: LedgerState,
    nonce: u64,
}

impl Ledger {
    /// Five members: 1 and 2 own datasets, 3 requests queries, 0, 1 and 2 compute, 4 looks on.
    fn new() -> Self {
        let keys = sample_keys(5);
        let state = LedgerState::from_genesis(&sample_genesis(&keys)).unwrap();
        Ledger {
            keys,
            state,
            nonce: 0,
        }
    }

    fn id(&self, member: usize) -> MemberId {
        self.keys[member].member_id()
    }

    fn tx(&mut self, signer: usize, payload: TxPayload) -> Transaction {
        self.nonce += 1;
        Transaction::sign(
            payload,
            &self.keys[signer],
            &self.state.chain_id(),
            self.nonce,
            NOW,
        )
    }

    /// Builds a block, checks that building left the state alone, and applies it.
    fn commit(&mut self, txs: Vec<Transaction>) -> Vec<Option<InvalidCode>> {
        let flags = vec![false; txs.len()];
        let before = (self.state.grants().len(), self.state.queries().len());
        let block = self.state.build_block(txs, &self.keys[0], 5, &flags);
        assert_eq!(
            (self.state.grants().len(), self.state.queries().len()),
            before
        );
        self.state.apply_block(&block, true).unwrap();
        block.outcomes.iter().map(code).collect()
    }

    /// Commits one transaction and returns its code (None if valid).
    fn one(&mut self, signer: usize, payload: TxPayload) -> Option<InvalidCode> {
        let tx = self.tx(signer, payload);
        self.commit(vec![tx])[0]
    }

    fn register(&mut self, owner: usize, name: &str, kind: DatasetKind) -> Hash {
        let columns = match kind {
            DatasetKind::Table => vec![column("patient"), column("age")],
            DatasetKind::Files => vec![],
        };
        let record = DatasetRecord {
            name: name.into(),
            kind,
            columns,
            row_count: 10,
            commitment: h(name),
            input_hash: h("input"),
            recipe_hash: h("recipe"),
            version: 1,
            parent: None,
            commitment_scheme: Default::default(),
        };
        let tx = self.tx(owner, TxPayload::DatasetRegister(record));
        let id = tx.id();
        assert_eq!(self.commit(vec![tx]), vec![None]);
        id
    }

    /// Registers version 2 of `owner`'s table `name`, whose version 1 is `parent`.
    fn update(&mut self, owner: usize, name: &str, parent: Hash) -> Hash {
        let mut record = self
            .state
            .dataset(&self.id(owner), name)
            .unwrap()
            .record
            .clone();
        record.version = 2;
        record.parent = Some(parent);
        let tx = self.tx(owner, TxPayload::DatasetUpdate(record));
        let id = tx.id();
        assert_eq!(self.commit(vec![tx]), vec![None]);
        id
    }
}

fn code(outcome: &TxOutcome) -> Option<InvalidCode> {
    match outcome {
        TxOutcome::Valid => None,
        TxOutcome::Invalid { code, .. } => Some(*code),
    }
}

fn h(label: &str) -> Hash {
    hash_domain("test", &[label.as_bytes()])
}

fn column(name: &str) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        ty: "text".into(),
        nullable: true,
    }
}

fn col(name: &str, permissions: &[Permission]) -> ColumnGrant {
    ColumnGrant {
        column: name.into(),
        permissions: permissions.to_vec(),
    }
}

fn grant(dataset: &str, grantee: Grantee, columns: Vec<ColumnGrant>) -> Grant {
    Grant {
        dataset: dataset.into(),
        grantee,
        columns,
        min_group_size: 3,
        expires_ms: None,
    }
}

fn visits_grant() -> Grant {
    grant(
        "visits",
        Grantee::Anyone,
        vec![col("age", &[Group, Aggregate]), col("patient", &[Join])],
    )
}

#[test]
fn grants_need_an_owned_dataset_known_columns_and_a_sane_shape() {
    let mut l = Ledger::new();
    l.register(1, "visits", DatasetKind::Table);
    l.register(1, "scans", DatasetKind::Files);
    let owner = l.id(1);

    let valid = l.tx(1, TxPayload::Grant(visits_grant()));
    let grant_id = valid.id();
    // Only the owner can grant: member 2 has no dataset of that name.
    let not_owner = l.tx(2, TxPayload::Grant(visits_grant()));
    assert_eq!(
        l.commit(vec![valid, not_owner]),
        vec![None, Some(UnknownDataset)]
    );
    let entry = l.state.grant(&grant_id).unwrap();
    assert_eq!(
        (entry.id, entry.owner, entry.granted_ms, entry.revoked_by),
        (grant_id, owner, NOW, None)
    );
    assert_eq!(entry.grant, visits_grant());
    assert_eq!(l.state.grants_on(&owner, "visits").count(), 1);
    assert_eq!(l.state.grants_on(&owner, "scans").count(), 0);
    assert_eq!(l.state.grants_on(&l.id(2), "visits").count(), 0);

    let member2 = Grantee::Member(l.id(2));
    let cases: Vec<(Grant, Option<InvalidCode>)> = vec![
        (grant("visits", member2, vec![col("age", &[Plain])]), None),
        (
            grant("visits", Grantee::Anyone, vec![col("ward", &[Plain])]),
            Some(UnknownColumn),
        ),
        (
            grant("nothing", Grantee::Anyone, vec![col("age", &[Plain])]),
            Some(UnknownDataset),
        ),
        (grant("visits", Grantee::Anyone, vec![]), Some(BadPayload)),
        (
            grant("visits", Grantee::Anyone, vec![col("age", &[])]),
            Some(BadPayload),
        ),
        (
            Grant {
                min_group_size: 0,
                ..visits_grant()
            },
            Some(BadPayload),
        ),
        (
            Grant {
                expires_ms: Some(NOW),
                ..visits_grant()
            },
            Some(BadPayload),
        ),
        (
            Grant {
                expires_ms: Some(NOW + 1),
                ..visits_grant()
            },
            None,
        ),
        (
            grant(
                "visits",
                Grantee::Member(l.id(1)),
                vec![col("age", &[Plain])],
            ),
            Some(BadPayload),
        ),
        (
            grant(
                "visits",
                Grantee::Member(MemberId([9; 16])),
                vec![col("age", &[Plain])],
            ),
            Some(UnknownMember),
        ),
        // Non-canonical forms built in memory (or read from JSON) are refused too.
        (
            grant(
                "visits",
                Grantee::Anyone,
                vec![col("patient", &[Plain]), col("age", &[Plain])],
            ),
            Some(BadPayload),
        ),
        (
            grant("visits", Grantee::Anyone, vec![col("age", &[Group, Plain])]),
            Some(BadPayload),
        ),
        // Files datasets: the whole dataset, plain only.
        (grant("scans", member2, vec![col("*", &[Plain])]), None),
        (
            grant("scans", member2, vec![col("*", &[Plain, Group])]),
            Some(BadPayload),
        ),
        (
            grant("scans", member2, vec![col("name", &[Plain])]),
            Some(BadPayload),
        ),
    ];
    for (i, (g, expected)) in cases.into_iter().enumerate() {
        assert_eq!(l.one(1, TxPayload::Grant(g)), expected, "case {i}");
    }
    assert_eq!(l.state.grants_on(&owner, "visits").count(), 3);
    assert_eq!(l.state.grants_on(&owner, "scans").count(), 1);
}

#[test]
fn grant_detail_texts() {
    let mut l = Ledger::new();
    l.register(1, "visits", DatasetKind::Table);
    let tx = l.tx(
        1,
        TxPayload::Grant(grant(
            "visits",
            Grantee::Anyone,
            vec![col("ward", &[Plain])],
        )),
    );
    let flags = [false];
    let block = l.state.build_block(vec![tx], &l.keys[0], 5, &flags);
    assert_eq!(
        block.outcomes[0],
        TxOutcome::Invalid {
            code: UnknownColumn,
            detail: "visits has no column ward".into()
        }
    );
}

#[test]
fn only_the_owner_revokes_and_only_once() {
    let mut l = Ledger::new();
    l.register(1, "visits", DatasetKind::Table);
    // Grant and revoke in the same block: the revoke sees the grant.
    let g = l.tx(1, TxPayload::Grant(visits_grant()));
    let grant_id = g.id();
    let by_other = l.tx(2, TxPayload::Revoke(Revoke { grant: grant_id }));
    let revoke = l.tx(1, TxPayload::Revoke(Revoke { grant: grant_id }));
    let revoke_id = revoke.id();
    assert_eq!(
        l.commit(vec![g, by_other, revoke]),
        vec![None, Some(NotOwner), None]
    );
    let entry = l.state.grant(&grant_id).unwrap();
    assert_eq!(entry.revoked_by, Some(revoke_id));
    assert!(!entry.applies_to(&l.id(3), NOW));

    assert_eq!(
        l.one(1, TxPayload::Revoke(Revoke { grant: grant_id })),
        Some(AlreadyRevoked)
    );
    assert_eq!(
        l.one(1, TxPayload::Revoke(Revoke { grant: h("none") })),
        Some(UnknownGrant)
    );
    assert_eq!(
        l.state.grant(&grant_id).unwrap().revoked_by,
        Some(revoke_id)
    );
}

/// Registers member 1's "visits" and member 2's "claims"; returns the query's dataset refs.
fn two_datasets(l: &mut Ledger) -> Vec<DatasetRef> {
    let visits = l.register(1, "visits", DatasetKind::Table);
    let claims = l.register(2, "claims", DatasetKind::Table);
    let mut refs = vec![
        DatasetRef {
            owner: l.id(1),
            name: "visits".into(),
            version_tx: visits,
        },
        DatasetRef {
            owner: l.id(2),
            name: "claims".into(),
            version_tx: claims,
        },
    ];
    refs.sort_by(|a, b| (a.owner, &a.name).cmp(&(b.owner, &b.name)));
    refs
}

fn request(l: &Ledger, datasets: Vec<DatasetRef>) -> QueryRequest {
    QueryRequest {
        sql: "SELECT ward, avg(age) FROM visits JOIN claims USING (patient) GROUP BY ward".into(),
        plan_hash: h("plan"),
        datasets,
        compute: vec![l.id(0), l.id(1), l.id(2)],
    }
}

fn decision(query: Hash, approve: bool, min_group_size: u32) -> TxPayload {
    TxPayload::QueryDecision(QueryDecision {
        query,
        approve,
        reason: if approve { "ok" } else { "age lacks aggregate" }.into(),
        min_group_size,
    })
}

fn revealed(query: Hash, digests: usize) -> TxPayload {
    TxPayload::QueryResult(QueryResult {
        query,
        outcome: QueryOutcome::Revealed {
            result_hash: h("result"),
            columns: vec!["ward".into(), "avg".into()],
            rows: 2,
            suppressed_groups: 0,
            share_digests: (0..digests).map(|i| h(&format!("share{i}"))).collect(),
        },
    })
}

fn failed(query: Hash, reason: &str) -> TxPayload {
    TxPayload::QueryResult(QueryResult {
        query,
        outcome: QueryOutcome::Failed {
            reason: reason.into(),
        },
    })
}

#[test]
fn query_requests_name_current_versions_and_three_compute_nodes() {
    let mut l = Ledger::new();
    let refs = two_datasets(&mut l);
    let base = request(&l, refs.clone());
    let with = |edit: &dyn Fn(&mut QueryRequest)| {
        let mut r = base.clone();
        edit(&mut r);
        TxPayload::QueryRequest(r)
    };
    let cases = vec![
        (with(&|r| r.sql.clear()), Some(BadPayload)),
        (with(&|r| r.sql = "x".repeat(65_537)), Some(BadPayload)),
        (with(&|r| r.sql = "x".repeat(65_536)), None),
        (with(&|r| r.datasets.clear()), Some(BadPayload)),
        (with(&|r| r.datasets.reverse()), Some(BadPayload)),
        (
            with(&|r| r.datasets[1] = r.datasets[0].clone()),
            Some(BadPayload),
        ),
        (with(&|r| r.compute.truncate(2)), Some(BadPayload)),
        (with(&|r| r.compute[2] = r.compute[0]), Some(BadPayload)),
        (
            with(&|r| r.compute[2] = MemberId([9; 16])),
            Some(UnknownMember),
        ),
        (
            with(&|r| r.datasets[0].name = "zzz".into()),
            Some(UnknownDataset),
        ),
        (
            with(&|r| r.datasets[0].version_tx = h("old")),
            Some(StaleVersion),
        ),
    ];
    for (i, (payload, expected)) in cases.into_iter().enumerate() {
        assert_eq!(l.one(3, payload), expected, "case {i}");
    }

    let tx = l.tx(3, TxPayload::QueryRequest(base.clone()));
    let query_id = tx.id();
    assert_eq!(l.commit(vec![tx]), vec![None]);
    let entry = l.state.query(&query_id).unwrap();
    assert_eq!(
        (entry.id, entry.requester, entry.requested_ms),
        (query_id, l.id(3), NOW)
    );
    assert_eq!(entry.request, base);
    assert!(entry.decisions.is_empty() && entry.result.is_none());
    assert_eq!(l.state.queries().len(), 2);

    // After an update, a request naming the old version is stale.
    let visits_index = refs.iter().position(|d| d.name == "visits").unwrap();
    l.update(1, "visits", refs[visits_index].version_tx);
    assert_eq!(l.one(3, TxPayload::QueryRequest(base)), Some(StaleVersion));
}

#[test]
fn decisions_and_a_revealed_result() {
    let mut l = Ledger::new();
    let refs = two_datasets(&mut l);
    let payload = TxPayload::QueryRequest(request(&l, refs));
    let tx = l.tx(3, payload);
    let q = tx.id();
    assert_eq!(l.commit(vec![tx]), vec![None]);

    // Decisions: only owners, once each, approvals with a group size.
    assert_eq!(l.one(3, decision(q, true, 3)), Some(NotOwner));
    assert_eq!(l.one(0, decision(q, true, 3)), Some(NotOwner));
    assert_eq!(l.one(1, decision(h("none"), true, 3)), Some(UnknownQuery));
    assert_eq!(l.one(1, decision(q, true, 0)), Some(BadPayload));
    let approve1 = l.tx(1, decision(q, true, 3));
    let again = l.tx(1, decision(q, false, 0));
    assert_eq!(
        l.commit(vec![approve1, again]),
        vec![None, Some(DuplicateDecision)]
    );

    // Not every owner has approved yet.
    let mut early = l.tx(0, revealed(q, 3));
    early.add_approval(&l.keys[1], &l.state.chain_id());
    early.add_approval(&l.keys[2], &l.state.chain_id());
    assert_eq!(l.commit(vec![early]), vec![Some(NotApproved)]);
    // A refusal is a decision, but not an approval.
    assert_eq!(l.one(2, decision(q, false, 0)), None);
    let mut refused = l.tx(0, revealed(q, 3));
    refused.add_approval(&l.keys[1], &l.state.chain_id());
    refused.add_approval(&l.keys[2], &l.state.chain_id());
    assert_eq!(l.commit(vec![refused]), vec![Some(NotApproved)]);
    assert_eq!(l.state.query(&q).unwrap().decisions.len(), 2);
}

#[test]
fn revealed_results_need_all_three_compute_nodes() {
    let mut l = Ledger::new();
    let refs = two_datasets(&mut l);
    let payload = TxPayload::QueryRequest(request(&l, refs));
    let tx = l.tx(3, payload);
    let q = tx.id();
    let a1 = l.tx(1, decision(q, true, 3));
    let a2 = l.tx(2, decision(q, true, 5));
    assert_eq!(l.commit(vec![tx, a1, a2]), vec![None, None, None]);
    let chain_id = l.state.chain_id();

    // Signed by compute node 0 with node 1's approval only.
    let mut two_of_three = l.tx(0, revealed(q, 3));
    two_of_three.add_approval(&l.keys[1], &chain_id);
    // An approval from a non-compute member, or a forged one, does not count.
    two_of_three.add_approval(&l.keys[4], &chain_id);
    let mut forged = two_of_three.clone();
    forged.approvals.push(consort_ledger::Approval {
        member: l.id(2),
        signature: two_of_three.approvals[0].signature,
    });
    // The requester signs, with only two compute approvals.
    let mut requester = l.tx(3, revealed(q, 3));
    requester.add_approval(&l.keys[0], &chain_id);
    requester.add_approval(&l.keys[2], &chain_id);
    let mut short_digests = l.tx(0, revealed(q, 2));
    short_digests.add_approval(&l.keys[1], &chain_id);
    short_digests.add_approval(&l.keys[2], &chain_id);
    assert_eq!(
        l.commit(vec![two_of_three, forged, requester, short_digests]),
        vec![
            Some(InsufficientApprovals),
            Some(InsufficientApprovals),
            Some(InsufficientApprovals),
            Some(BadPayload),
        ]
    );
    assert!(l.state.query(&q).unwrap().result.is_none());

    // The requester signs and all three compute nodes approve.
    let mut good = l.tx(3, revealed(q, 3));
    for node in 0..3 {
        good.add_approval(&l.keys[node], &chain_id);
    }
    let good_id = good.id();
    // A result after a result fails, even in the same block; so does a late decision.
    let mut second = l.tx(0, revealed(q, 3));
    second.add_approval(&l.keys[1], &chain_id);
    second.add_approval(&l.keys[2], &chain_id);
    let late_failure = l.tx(3, failed(q, "too late"));
    assert_eq!(
        l.commit(vec![good, second, late_failure]),
        vec![None, Some(QueryClosed), Some(QueryClosed)]
    );
    let entry = l.state.query(&q).unwrap();
    let (result, tx_id) = entry.result.as_ref().unwrap();
    assert_eq!((result.query, *tx_id), (q, good_id));
    assert_eq!(l.one(1, decision(q, true, 3)), Some(QueryClosed));
    assert_eq!(l.one(1, revealed(h("none"), 3)), Some(UnknownQuery));
}

#[test]
fn failed_results_come_from_participants_with_a_reason() {
    let mut l = Ledger::new();
    let refs = two_datasets(&mut l);
    let mut queries = Vec::new();
    for _ in 0..4 {
        let payload = TxPayload::QueryRequest(request(&l, refs.clone()));
        let tx = l.tx(3, payload);
        queries.push(tx.id());
        assert_eq!(l.commit(vec![tx]), vec![None]);
    }
    assert_eq!(l.one(4, failed(queries[0], "no")), Some(NotParticipant));
    assert_eq!(l.one(3, failed(queries[0], "")), Some(BadPayload));
    // The requester, an owner, or a compute node may report a failure.
    assert_eq!(l.one(3, failed(queries[0], "owner refused")), None);
    assert_eq!(l.one(2, failed(queries[1], "refused")), None);
    assert_eq!(l.one(0, failed(queries[2], "peer timeout")), None);
    let closed = l.state.query(&queries[0]).unwrap();
    assert!(matches!(
        closed.result.as_ref().map(|(r, _)| &r.outcome),
        Some(QueryOutcome::Failed { reason }) if reason == "owner refused"
    ));
    assert!(l.state.query(&queries[3]).unwrap().result.is_none());
}

#[test]
fn data_transfers_name_the_current_version_and_another_member() {
    let mut l = Ledger::new();
    let v1 = l.register(1, "visits", DatasetKind::Table);
    let transfer = |recipient: MemberId, dataset: &str, version_tx: Hash| {
        TxPayload::DataTransfer(DataTransfer {
            recipient,
            dataset: dataset.into(),
            version_tx,
            columns: vec!["age".into()],
            rows: 10,
            content_hash: h("sent"),
        })
    };
    let (me, other) = (l.id(1), l.id(2));
    assert_eq!(l.one(1, transfer(other, "visits", v1)), None);
    assert_eq!(l.one(1, transfer(me, "visits", v1)), Some(BadPayload));
    assert_eq!(
        l.one(1, transfer(MemberId([9; 16]), "visits", v1)),
        Some(UnknownMember)
    );
    assert_eq!(l.one(2, transfer(me, "visits", v1)), Some(UnknownDataset));
    l.update(1, "visits", v1);
    assert_eq!(l.one(1, transfer(other, "visits", v1)), Some(StaleVersion));
}

#[test]
fn check_submission_applies_the_same_rules() {
    let mut l = Ledger::new();
    l.register(1, "visits", DatasetKind::Table);
    let by_other = l.tx(2, TxPayload::Grant(visits_grant()));
    assert!(matches!(
        l.state.check_submission(&by_other),
        Err(consort_ledger::LedgerError::Rejected(UnknownDataset, _))
    ));
    let good = l.tx(1, TxPayload::Grant(visits_grant()));
    assert!(l.state.check_submission(&good).is_ok());
    // Checking never records anything.
    assert!(l.state.grants().is_empty());
}

#[test]
fn invalid_codes_round_trip() {
    for code in 12..=20u8 {
        let parsed = InvalidCode::from_u8(code).unwrap();
        assert_eq!(parsed.as_u8(), code);
    }
    assert_eq!(InvalidCode::from_u8(21), None);
    assert_eq!(
        [
            UnknownGrant,
            NotOwner,
            UnknownQuery,
            DuplicateDecision,
            QueryClosed,
            AlreadyRevoked,
            UnknownColumn,
            NotApproved,
            NotParticipant
        ]
        .map(InvalidCode::as_u8),
        [12, 13, 14, 15, 16, 17, 18, 19, 20]
    );
}
