//! Dataset registration and update rules: names unique per owner, consecutive versions with
//! lineage, schema-compatible updates, and a catalog every node agrees on.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{hash_domain, Hash, SecretKey};
use consort_ledger::conformance::{sample_genesis, sample_keys};
use consort_ledger::dataset::{ColumnSpec, DatasetKind, DatasetRecord};
use consort_ledger::{InvalidCode, LedgerState, Transaction, TxOutcome, TxPayload};

fn column(name: &str, ty: &str, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        ty: ty.into(),
        nullable,
    }
}

fn record(
    name: &str,
    columns: Vec<ColumnSpec>,
    version: u32,
    parent: Option<Hash>,
) -> DatasetRecord {
    DatasetRecord {
        name: name.into(),
        kind: DatasetKind::Table,
        columns,
        row_count: 10,
        commitment: hash_domain(
            "test-commitment",
            &[name.as_bytes(), &version.to_be_bytes()],
        ),
        input_hash: hash_domain("test-input", &[name.as_bytes()]),
        recipe_hash: hash_domain("test-recipe", &[]),
        version,
        parent,
        commitment_scheme: Default::default(),
    }
}

fn visits_v1() -> Vec<ColumnSpec> {
    vec![
        column("patient", "text", false),
        column("age", "integer", true),
    ]
}

struct Ledger {
    keys: Vec<SecretKey>,
    state: LedgerState,
    nonce: u64,
}

impl Ledger {
    fn new() -> Self {
        let keys = sample_keys(3);
        let state = LedgerState::from_genesis(&sample_genesis(&keys)).unwrap();
        Ledger {
            keys,
            state,
            nonce: 0,
        }
    }

    fn tx(&mut self, signer: usize, payload: TxPayload) -> Transaction {
        self.nonce += 1;
        Transaction::sign(
            payload,
            &self.keys[signer],
            &self.state.chain_id(),
            self.nonce,
            1,
        )
    }

    /// Builds and applies a block (on a second state too, so both nodes must agree).
    fn commit(&mut self, txs: Vec<Transaction>) -> Vec<TxOutcome> {
        let flags = vec![false; txs.len()];
        let block = self.state.build_block(txs, &self.keys[0], 5, &flags);
        self.state.apply_block(&block, true).unwrap();
        block.outcomes
    }
}

fn code(outcome: &TxOutcome) -> Option<InvalidCode> {
    match outcome {
        TxOutcome::Valid => None,
        TxOutcome::Invalid { code, .. } => Some(*code),
    }
}

#[test]
fn register_update_and_catalog() {
    let mut l = Ledger::new();
    let register = l.tx(
        1,
        TxPayload::DatasetRegister(record("visits", visits_v1(), 1, None)),
    );
    let register_id = register.id();
    // Another owner may use the same name; the same owner may not, even in the same block.
    let other_owner = l.tx(
        2,
        TxPayload::DatasetRegister(record("visits", visits_v1(), 1, None)),
    );
    let again = l.tx(
        1,
        TxPayload::DatasetRegister(record("visits", visits_v1(), 1, None)),
    );
    let outcomes = l.commit(vec![register, other_owner, again]);
    assert_eq!(
        outcomes.iter().map(code).collect::<Vec<_>>(),
        vec![None, None, Some(InvalidCode::DatasetExists)]
    );
    assert_eq!(l.state.datasets().len(), 2);
    let owner = l.keys[1].member_id();
    assert_eq!(
        l.state.dataset(&owner, "visits").unwrap().tx_id,
        register_id
    );

    // An update adds a nullable column: fine, and it becomes the current version.
    let mut v2_columns = visits_v1();
    v2_columns.push(column("ward", "text", true));
    let update = l.tx(
        1,
        TxPayload::DatasetUpdate(record("visits", v2_columns.clone(), 2, Some(register_id))),
    );
    let update_id = update.id();
    assert_eq!(
        l.commit(vec![update]).iter().map(code).collect::<Vec<_>>(),
        vec![None]
    );
    let entry = l.state.dataset(&owner, "visits").unwrap();
    assert_eq!((entry.record.version, entry.tx_id), (2, update_id));

    // Stale parents and skipped versions are refused.
    let stale = l.tx(
        1,
        TxPayload::DatasetUpdate(record("visits", v2_columns.clone(), 3, Some(register_id))),
    );
    let skipped = l.tx(
        1,
        TxPayload::DatasetUpdate(record("visits", v2_columns.clone(), 4, Some(update_id))),
    );
    let outcomes = l.commit(vec![stale, skipped]);
    assert!(
        outcomes
            .iter()
            .all(|o| code(o) == Some(InvalidCode::StaleVersion)),
        "{outcomes:?}"
    );

    // Incompatible schemas: a removed column, a changed type, a new non-null column.
    let removed = vec![column("patient", "text", false)];
    let retyped = vec![
        column("patient", "text", false),
        column("age", "float", true),
        column("ward", "text", true),
    ];
    let mut strict_new = v2_columns.clone();
    strict_new.push(column("bed", "integer", false));
    for columns in [removed, retyped, strict_new] {
        let tx = l.tx(
            1,
            TxPayload::DatasetUpdate(record("visits", columns, 3, Some(update_id))),
        );
        assert_eq!(
            code(&l.commit(vec![tx])[0]),
            Some(InvalidCode::IncompatibleSchema)
        );
    }

    // Updating what does not exist, or someone else's dataset.
    let unknown = l.tx(
        1,
        TxPayload::DatasetUpdate(record("claims", visits_v1(), 2, Some(update_id))),
    );
    let foreign = l.tx(
        0,
        TxPayload::DatasetUpdate(record("visits", v2_columns, 3, Some(update_id))),
    );
    let outcomes = l.commit(vec![unknown, foreign]);
    assert!(
        outcomes
            .iter()
            .all(|o| code(o) == Some(InvalidCode::UnknownDataset)),
        "{outcomes:?}"
    );
}

#[test]
fn malformed_records_are_bad_payloads() {
    let mut l = Ledger::new();
    let cases = vec![
        record("", visits_v1(), 1, None),
        record("1starts-with-digit", visits_v1(), 1, None),
        record("has space", visits_v1(), 1, None),
        record("has-dash", visits_v1(), 1, None),
        record(&"x".repeat(49), visits_v1(), 1, None),
        record(
            "dup",
            vec![column("a", "text", true), column("a", "integer", true)],
            1,
            None,
        ),
        record("badtype", vec![column("a", "varchar", true)], 1, None),
        record("nocolumns", vec![], 1, None),
    ];
    for r in cases {
        let tx = l.tx(1, TxPayload::DatasetRegister(r.clone()));
        assert_eq!(
            code(&l.commit(vec![tx])[0]),
            Some(InvalidCode::BadPayload),
            "{r:?}"
        );
    }
    let mut files = record("scans", vec![], 1, None);
    files.kind = DatasetKind::Files;
    let tx = l.tx(1, TxPayload::DatasetRegister(files));
    assert_eq!(code(&l.commit(vec![tx])[0]), None);
    // A registration must be version 1 without a parent.
    let tx = l.tx(
        1,
        TxPayload::DatasetRegister(record("v2first", visits_v1(), 2, None)),
    );
    assert_eq!(
        code(&l.commit(vec![tx])[0]),
        Some(InvalidCode::StaleVersion)
    );
}

#[test]
fn dataset_payloads_round_trip_the_canonical_encoding() {
    let mut l = Ledger::new();
    let mut r = record("visits", visits_v1(), 2, Some(hash_domain("p", &[])));
    r.columns
        .push(column("naïve \"quoted\"; drop", "timestamp", true));
    for payload in [
        TxPayload::DatasetRegister(r.clone()),
        TxPayload::DatasetUpdate(r),
    ] {
        let tx = l.tx(1, payload);
        let bytes = tx.encode();
        assert_eq!(Transaction::decode(&bytes).unwrap(), tx);
        // Any truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(Transaction::decode(&bytes[..cut]).is_err());
        }
    }
}

#[test]
fn salted_column_commitments_are_a_rule_of_version_3() {
    use consort_ledger::dataset::CommitmentScheme;
    let salted = |name: &str, version: u32, parent: Option<Hash>| DatasetRecord {
        commitment_scheme: CommitmentScheme::SaltedColumns,
        ..record(name, visits_v1(), version, parent)
    };
    // The scheme travels in the kind byte: 2 for a salted-columns table. The two
    // transactions below differ only in it (same signer, nonce and timestamp).
    let mut l = Ledger::new();
    let tx = l.tx(1, TxPayload::DatasetRegister(salted("visits", 1, None)));
    let bytes = tx.encode();
    assert_eq!(Transaction::decode(&bytes).unwrap(), tx);
    l.nonce -= 1;
    let plain = l
        .tx(
            1,
            TxPayload::DatasetRegister(record("visits", visits_v1(), 1, None)),
        )
        .encode();
    let differ: Vec<usize> = (0..bytes.len().min(plain.len()))
        .filter(|&i| bytes[i] != plain[i])
        .collect();
    let at = differ[0];
    assert_eq!((bytes[at], plain[at]), (2, 0));
    // Kind 3 (salted files) never decodes.
    let mut files = bytes.clone();
    files[at] = 3;
    assert!(Transaction::decode(&files).is_err());

    // Under rule version 2 the record is refused, naming the version it needs ...
    let keys = sample_keys(3);
    let mut genesis = sample_genesis(&keys);
    genesis.rules_version = consort_ledger::rules_limits::RULES_V2;
    let mut old = Ledger {
        state: LedgerState::from_genesis(&genesis).unwrap(),
        keys,
        nonce: 0,
    };
    let tx = old.tx(1, TxPayload::DatasetRegister(salted("visits", 1, None)));
    match &old.commit(vec![tx])[0] {
        TxOutcome::Invalid { code, detail } => {
            assert_eq!(*code, InvalidCode::BadPayload);
            assert!(detail.contains("needs rule version 3"), "{detail}");
        }
        other => panic!("accepted under version 2: {other:?}"),
    }
    // ... while a row-hash table registers, and under version 3 an update moves it to the
    // salted scheme.
    let mut l = Ledger::new();
    let register = l.tx(
        1,
        TxPayload::DatasetRegister(record("visits", visits_v1(), 1, None)),
    );
    let parent = register.id();
    let update = l.tx(
        1,
        TxPayload::DatasetUpdate(salted("visits", 2, Some(parent))),
    );
    assert_eq!(
        l.commit(vec![register, update])
            .iter()
            .map(code)
            .collect::<Vec<_>>(),
        vec![None, None]
    );
    let owner = l.keys[1].member_id();
    assert_eq!(
        l.state
            .dataset(&owner, "visits")
            .unwrap()
            .record
            .commitment_scheme,
        CommitmentScheme::SaltedColumns
    );
}
