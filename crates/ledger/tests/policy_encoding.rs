//! The canonical encoding of the grant and joint-query payloads (tags 6 to 11): round trips,
//! and errors (never panics) for garbage, truncated and non-canonical bytes.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{hash_domain, Hash, MemberId, SecretKey};
use consort_ledger::policy::{
    ColumnGrant, DataTransfer, DatasetRef, Grant, Grantee, Permission, QueryDecision, QueryOutcome,
    QueryRequest, QueryResult, Revoke,
};
use consort_ledger::{Transaction, TxPayload};
use proptest::prelude::*;

fn key() -> SecretKey {
    SecretKey::from_seed(&[7; 32])
}

fn signed(payload: TxPayload) -> Transaction {
    Transaction::sign(payload, &key(), &Hash([1; 32]), 42, 1_000)
}

fn round_trips(payload: TxPayload) {
    let tx = signed(payload);
    let bytes = tx.encode();
    let back = Transaction::decode(&bytes).expect("canonical payload decodes");
    assert_eq!(back, tx);
    assert_eq!(back.encode(), bytes);
    // Every strict prefix is an error, not a panic.
    for cut in 0..bytes.len() {
        assert!(
            Transaction::decode(&bytes[..cut]).is_err(),
            "prefix {cut} decoded"
        );
    }
}

fn decode_error(tx: &Transaction) -> String {
    match Transaction::decode(&tx.encode()) {
        Ok(_) => panic!("non-canonical {} decoded", tx.kind_name()),
        Err(e) => e.to_string(),
    }
}

/// Offset of the payload in a transaction body: tag, signer, nonce, timestamp.
const PAYLOAD: usize = 1 + 16 + 8 + 8;

fn h(label: &str) -> Hash {
    hash_domain("test", &[label.as_bytes()])
}

fn grant(columns: Vec<ColumnGrant>) -> Grant {
    Grant {
        dataset: "visits".into(),
        grantee: Grantee::Anyone,
        columns,
        min_group_size: 3,
        expires_ms: Some(9_000),
    }
}

fn col(name: &str, permissions: &[Permission]) -> ColumnGrant {
    ColumnGrant {
        column: name.into(),
        permissions: permissions.to_vec(),
    }
}

fn dref(owner: u8, name: &str) -> DatasetRef {
    DatasetRef {
        owner: MemberId([owner; 16]),
        name: name.into(),
        version_tx: h(name),
    }
}

fn request(datasets: Vec<DatasetRef>) -> QueryRequest {
    QueryRequest {
        sql: "SELECT 1".into(),
        plan_hash: h("plan"),
        datasets,
        compute: vec![MemberId([3; 16]), MemberId([1; 16]), MemberId([2; 16])],
    }
}

#[test]
fn fixed_examples_round_trip() {
    use Permission::*;
    round_trips(TxPayload::Grant(grant(vec![
        col("age", &[Group, Aggregate]),
        col("patient", &[Plain, Filter, Join]),
    ])));
    round_trips(TxPayload::Grant(Grant {
        grantee: Grantee::Member(MemberId([9; 16])),
        expires_ms: None,
        ..grant(vec![col("*", &[Plain])])
    }));
    round_trips(TxPayload::Revoke(Revoke { grant: h("g") }));
    round_trips(TxPayload::QueryRequest(request(vec![
        dref(1, "b"),
        dref(1, "c"),
        dref(2, "a"),
    ])));
    round_trips(TxPayload::QueryDecision(QueryDecision {
        query: h("q"),
        approve: false,
        reason: "column age lacks aggregate".into(),
        min_group_size: 0,
    }));
    round_trips(TxPayload::QueryResult(QueryResult {
        query: h("q"),
        outcome: QueryOutcome::Revealed {
            result_hash: h("r"),
            columns: vec!["ward".into(), "avg_age".into()],
            rows: 4,
            suppressed_groups: 1,
            share_digests: vec![h("s0"), h("s1"), h("s2")],
        },
    }));
    round_trips(TxPayload::QueryResult(QueryResult {
        query: h("q"),
        outcome: QueryOutcome::Failed {
            reason: "timeout".into(),
        },
    }));
    round_trips(TxPayload::DataTransfer(DataTransfer {
        recipient: MemberId([5; 16]),
        dataset: "visits".into(),
        version_tx: h("v"),
        columns: vec!["patient".into()],
        rows: 10,
        content_hash: h("c"),
    }));
}

#[test]
fn tags_are_fixed() {
    let cases = [
        (TxPayload::Grant(grant(vec![])), 6, "Grant"),
        (TxPayload::Revoke(Revoke { grant: h("g") }), 7, "Revoke"),
        (TxPayload::QueryRequest(request(vec![])), 8, "QueryRequest"),
        (
            TxPayload::QueryDecision(QueryDecision {
                query: h("q"),
                approve: true,
                reason: String::new(),
                min_group_size: 3,
            }),
            9,
            "QueryDecision",
        ),
        (
            TxPayload::QueryResult(QueryResult {
                query: h("q"),
                outcome: QueryOutcome::Failed { reason: "x".into() },
            }),
            10,
            "QueryResult",
        ),
        (
            TxPayload::DataTransfer(DataTransfer {
                recipient: MemberId([5; 16]),
                dataset: "d".into(),
                version_tx: h("v"),
                columns: vec![],
                rows: 0,
                content_hash: h("c"),
            }),
            11,
            "DataTransfer",
        ),
    ];
    for (payload, tag, name) in cases {
        assert_eq!((payload.tag(), payload.kind_name()), (tag, name));
        assert_eq!(signed(payload).encode()[0], tag);
    }
}

#[test]
fn unknown_codes_and_tags_are_decode_errors() {
    // Grant with dataset "visits" (4 + 6 bytes), then the grantee tag.
    let tx = signed(TxPayload::Grant(grant(vec![col(
        "a",
        &[Permission::Plain],
    )])));
    let grantee_at = PAYLOAD + 4 + 6;
    let mut bytes = tx.encode();
    assert_eq!(bytes[grantee_at], 1, "Anyone is tag 1");
    bytes[grantee_at] = 2;
    let err = Transaction::decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("unknown grantee tag 2"), "{err}");

    // After the grantee: column count (4), name "a" (4 + 1), permission count (4), code.
    let code_at = grantee_at + 1 + 4 + 5 + 4;
    for bad in [5u8, 0xff] {
        let mut bytes = tx.encode();
        assert_eq!(bytes[code_at], 0, "plain is code 0");
        bytes[code_at] = bad;
        let err = Transaction::decode(&bytes).unwrap_err().to_string();
        assert!(
            err.contains(&format!("unknown permission code {bad}")),
            "{err}"
        );
    }

    // QueryResult: query hash, then the outcome tag.
    let tx = signed(TxPayload::QueryResult(QueryResult {
        query: h("q"),
        outcome: QueryOutcome::Failed { reason: "x".into() },
    }));
    let mut bytes = tx.encode();
    assert_eq!(bytes[PAYLOAD + 32], 1, "Failed is tag 1");
    bytes[PAYLOAD + 32] = 2;
    let err = Transaction::decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("unknown query outcome tag 2"), "{err}");

    // QueryDecision: a bool byte other than 0 or 1.
    let tx = signed(TxPayload::QueryDecision(QueryDecision {
        query: h("q"),
        approve: true,
        reason: String::new(),
        min_group_size: 3,
    }));
    let mut bytes = tx.encode();
    bytes[PAYLOAD + 32] = 2;
    assert!(Transaction::decode(&bytes).is_err());
}

#[test]
fn non_canonical_orders_are_decode_errors() {
    use Permission::*;
    let unsorted_columns = signed(TxPayload::Grant(grant(vec![
        col("b", &[Plain]),
        col("a", &[Plain]),
    ])));
    assert!(decode_error(&unsorted_columns).contains("grant columns are not strictly ascending"));
    let repeated_column = signed(TxPayload::Grant(grant(vec![
        col("a", &[Plain]),
        col("a", &[Group]),
    ])));
    assert!(decode_error(&repeated_column).contains("grant columns are not strictly ascending"));
    for permissions in [&[Group, Plain][..], &[Plain, Plain][..]] {
        let tx = signed(TxPayload::Grant(grant(vec![col("a", permissions)])));
        assert!(decode_error(&tx).contains("permissions of column a are not strictly ascending"));
    }
    for datasets in [
        vec![dref(2, "a"), dref(1, "b")],
        vec![dref(1, "b"), dref(1, "a")],
        vec![dref(1, "a"), dref(1, "a")],
    ] {
        let tx = signed(TxPayload::QueryRequest(request(datasets)));
        assert!(decode_error(&tx).contains("datasets are not strictly ascending"));
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    // A QueryRequest claiming 2^32 - 1 datasets in a short input.
    let tx = signed(TxPayload::QueryRequest(request(vec![])));
    let mut bytes = tx.encode();
    let count_at = PAYLOAD + 4 + 8 + 32;
    bytes[count_at..count_at + 4].copy_from_slice(&[0xff; 4]);
    assert!(Transaction::decode(&bytes).is_err());
}

fn arb_hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn arb_member() -> impl Strategy<Value = MemberId> {
    any::<[u8; 16]>().prop_map(MemberId)
}

fn arb_grant() -> impl Strategy<Value = Grant> {
    let column = ("[a-z]{1,8}", proptest::collection::btree_set(0u8..5, 0..5));
    (
        "[a-zA-Z0-9_]{0,12}",
        proptest::option::of(arb_member()),
        proptest::collection::btree_map(column.0, column.1, 0..5),
        any::<u32>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(dataset, member, columns, min_group_size, expires_ms)| Grant {
                dataset,
                grantee: member.map_or(Grantee::Anyone, Grantee::Member),
                columns: columns
                    .into_iter()
                    .map(|(column, codes)| ColumnGrant {
                        column,
                        permissions: codes
                            .into_iter()
                            .filter_map(Permission::from_code)
                            .collect(),
                    })
                    .collect(),
                min_group_size,
                expires_ms,
            },
        )
}

fn arb_request() -> impl Strategy<Value = QueryRequest> {
    (
        ".{0,40}",
        arb_hash(),
        proptest::collection::btree_map((arb_member(), "[a-z]{1,6}"), arb_hash(), 0..4),
        proptest::collection::vec(arb_member(), 0..5),
    )
        .prop_map(|(sql, plan_hash, datasets, compute)| QueryRequest {
            sql,
            plan_hash,
            datasets: datasets
                .into_iter()
                .map(|((owner, name), version_tx)| DatasetRef {
                    owner,
                    name,
                    version_tx,
                })
                .collect(),
            compute,
        })
}

fn arb_outcome() -> impl Strategy<Value = QueryOutcome> {
    prop_oneof![
        (
            arb_hash(),
            proptest::collection::vec(".{0,8}", 0..4),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(arb_hash(), 0..4),
        )
            .prop_map(
                |(result_hash, columns, rows, suppressed_groups, share_digests)| {
                    QueryOutcome::Revealed {
                        result_hash,
                        columns,
                        rows,
                        suppressed_groups,
                        share_digests,
                    }
                }
            ),
        ".{0,20}".prop_map(|reason| QueryOutcome::Failed { reason }),
    ]
}

fn arb_payload() -> impl Strategy<Value = TxPayload> {
    prop_oneof![
        arb_grant().prop_map(TxPayload::Grant),
        arb_hash().prop_map(|grant| TxPayload::Revoke(Revoke { grant })),
        arb_request().prop_map(TxPayload::QueryRequest),
        (arb_hash(), any::<bool>(), ".{0,20}", any::<u32>()).prop_map(
            |(query, approve, reason, min_group_size)| TxPayload::QueryDecision(QueryDecision {
                query,
                approve,
                reason,
                min_group_size,
            })
        ),
        (arb_hash(), arb_outcome())
            .prop_map(|(query, outcome)| TxPayload::QueryResult(QueryResult { query, outcome })),
        (
            arb_member(),
            "[a-z]{0,10}",
            arb_hash(),
            proptest::collection::vec(".{0,8}", 0..4),
            any::<u64>(),
            arb_hash(),
        )
            .prop_map(
                |(recipient, dataset, version_tx, columns, rows, content_hash)| {
                    TxPayload::DataTransfer(DataTransfer {
                        recipient,
                        dataset,
                        version_tx,
                        columns,
                        rows,
                        content_hash,
                    })
                }
            ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn payloads_round_trip(payload in arb_payload()) {
        let tx = signed(payload);
        let bytes = tx.encode();
        let back = Transaction::decode(&bytes).expect("canonical payload decodes");
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back, tx);
    }

    #[test]
    fn mutated_payloads_never_panic(
        payload in arb_payload(),
        pos in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<usize>(),
    ) {
        let mut bytes = signed(payload).encode();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        bytes.truncate(cut % (bytes.len() + 1));
        // Whatever decodes must be canonical: it re-encodes to the same bytes.
        if let Ok(tx) = Transaction::decode(&bytes) {
            prop_assert_eq!(tx.encode(), bytes);
        }
    }

    #[test]
    fn garbage_after_a_policy_tag_never_panics(
        tag in 6u8..12,
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        let _ = Transaction::decode(&bytes);
    }
}
