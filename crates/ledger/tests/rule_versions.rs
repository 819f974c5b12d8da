//! Rule versions (docs/FORMAT.md §8.4): a chain keeps the outcomes recorded under its old
//! rules, a majority moves it to new ones, and from then on the new limits hold.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{hash_domain, Hash, SecretKey};
use consort_ledger::block::{block_signing_message_v1, block_signing_message_v2};
use consort_ledger::conformance::{sample_genesis, sample_keys};
use consort_ledger::dataset::{ColumnSpec, DatasetKind, DatasetRecord};
use consort_ledger::policy::{DatasetRef, QueryRequest};
use consort_ledger::rules_limits::{LATEST_RULES, RULES_V1, RULES_V2, RULES_V3};
use consort_ledger::{
    read_export, verify_chain, Block, Genesis, InvalidCode, LedgerState, Transaction, TxOutcome,
    TxPayload,
};

struct Chain {
    keys: Vec<SecretKey>,
    genesis: Genesis,
    state: LedgerState,
    blocks: Vec<Block>,
    nonce: u64,
}

impl Chain {
    fn new(rules_version: u32) -> Self {
        let keys = sample_keys(3);
        let mut genesis = sample_genesis(&keys);
        genesis.rules_version = rules_version;
        let state = LedgerState::from_genesis(&genesis).unwrap();
        Chain {
            blocks: vec![genesis.block()],
            keys,
            genesis,
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
            1_000,
        )
    }

    fn commit(&mut self, txs: Vec<Transaction>) -> Vec<TxOutcome> {
        let flags = vec![false; txs.len()];
        let block = self.state.build_block(txs, &self.keys[0], 5, &flags);
        self.state.apply_block(&block, true).unwrap();
        let outcomes = block.outcomes.clone();
        self.blocks.push(block);
        outcomes
    }

    fn register(&mut self, columns: Vec<ColumnSpec>) -> TxOutcome {
        let record = DatasetRecord {
            name: format!("visits{}", self.nonce),
            kind: DatasetKind::Table,
            columns,
            row_count: 1,
            commitment: h("c"),
            input_hash: h("i"),
            recipe_hash: h("r"),
            version: 1,
            parent: None,
            commitment_scheme: Default::default(),
        };
        let tx = self.tx(1, TxPayload::DatasetRegister(record));
        self.commit(vec![tx]).remove(0)
    }

    fn request(&mut self, sql: String) -> Transaction {
        let owner = self.keys[1].member_id();
        let version_tx = self
            .state
            .datasets()
            .values()
            .next()
            .expect("a dataset is registered")
            .tx_id;
        let name = self.state.datasets().keys().next().unwrap().1.clone();
        let compute = self.keys.iter().map(SecretKey::member_id).collect();
        self.tx(
            2,
            TxPayload::QueryRequest(QueryRequest {
                sql,
                plan_hash: Hash::ZERO,
                datasets: vec![DatasetRef {
                    owner,
                    name,
                    version_tx,
                }],
                compute,
            }),
        )
    }

    fn upgrade(&mut self, version: u32, approvers: &[usize]) -> Transaction {
        let mut tx = self.tx(0, TxPayload::RulesUpgrade { version });
        for &a in approvers {
            tx.add_approval(&self.keys[a], &self.state.chain_id());
        }
        tx
    }
}

fn verify(blocks: &[Block]) -> consort_ledger::VerifyReport {
    verify_chain(blocks.iter().map(|b| Ok(b.encode()))).unwrap()
}

fn h(label: &str) -> Hash {
    hash_domain("test", &[label.as_bytes()])
}

fn column(name: &str) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        ty: "integer".into(),
        nullable: true,
    }
}

fn hostile_sql() -> String {
    let head = "SELECT COUNT(*) FROM visits WHERE age > 1";
    head.to_string() + &"+1".repeat((65_536 - head.len()) / 2)
}

fn invalid(outcome: &TxOutcome) -> Option<(InvalidCode, String)> {
    match outcome {
        TxOutcome::Valid => None,
        TxOutcome::Invalid { code, detail } => Some((*code, detail.clone())),
    }
}

#[test]
fn rule_version_1_keeps_accepting_what_it_accepted() {
    let mut chain = Chain::new(RULES_V1);
    assert!(chain.register(vec![column("age")]).is_valid());
    let hostile = chain.request(hostile_sql());
    assert!(chain.commit(vec![hostile]).remove(0).is_valid());
    let long = chain.register(vec![column(&"c".repeat(5_000))]);
    assert!(long.is_valid(), "{long:?}");
    assert_eq!(chain.state.rules_version(), RULES_V1);
    assert_eq!(verify(&chain.blocks).height, chain.state.height());
}

#[test]
fn rule_version_2_refuses_hostile_sql_and_long_names_with_reasons() {
    let mut chain = Chain::new(RULES_V2);
    assert!(chain.register(vec![column("age")]).is_valid());
    let hostile = chain.request(hostile_sql());
    let outcome = chain.commit(vec![hostile]).remove(0);
    let (code, detail) = invalid(&outcome).expect("refused");
    assert_eq!(code, InvalidCode::BadPayload);
    assert!(
        detail.contains("tokens") || detail.contains("operators"),
        "{detail}"
    );
    let ands = vec!["age > 1"; 2_000].join(" AND ");
    let wide = chain.request(format!("SELECT COUNT(*) FROM visits WHERE {ands}"));
    let (_, detail) = invalid(&chain.commit(vec![wide]).remove(0)).expect("refused");
    assert!(detail.contains("operators"), "{detail}");
    let fine = chain.request("SELECT COUNT(*) FROM visits WHERE age > 1".into());
    assert!(chain.commit(vec![fine]).remove(0).is_valid());

    let (_, detail) = invalid(&chain.register(vec![column(&"c".repeat(5_000))])).unwrap();
    assert!(detail.contains("at most 128"), "{detail}");
    let (_, detail) = invalid(&chain.register(vec![column("a\nb")])).unwrap();
    assert!(detail.contains("control character"), "{detail}");
    verify(&chain.blocks);
}

#[test]
fn an_upgrade_needs_a_majority_and_applies_from_the_next_transaction() {
    let mut chain = Chain::new(RULES_V1);
    assert!(chain.register(vec![column("age")]).is_valid());

    let alone = chain.upgrade(RULES_V2, &[]);
    let (code, _) = invalid(&chain.commit(vec![alone]).remove(0)).unwrap();
    assert_eq!(code, InvalidCode::InsufficientApprovals);
    assert_eq!(chain.state.rules_version(), RULES_V1);

    // In one block: a hostile request before the upgrade is judged by version 1, the same
    // request after it by version 2.
    let before = chain.request(hostile_sql());
    let upgrade = chain.upgrade(RULES_V2, &[1]);
    let after = chain.request(hostile_sql());
    let outcomes = chain.commit(vec![before, upgrade, after]);
    assert!(outcomes[0].is_valid());
    assert!(outcomes[1].is_valid(), "{:?}", outcomes[1]);
    assert_eq!(invalid(&outcomes[2]).unwrap().0, InvalidCode::BadPayload);
    assert_eq!(chain.state.rules_version(), RULES_V2);

    let again = chain.upgrade(RULES_V2, &[1, 2]);
    assert!(invalid(&chain.commit(vec![again]).remove(0))
        .unwrap()
        .1
        .contains("not later"));
    let beyond = chain.upgrade(LATEST_RULES + 1, &[1, 2]);
    assert!(!chain.commit(vec![beyond]).remove(0).is_valid());

    // A verifier replaying from genesis reaches the same outcomes.
    verify(&chain.blocks);
}

#[test]
fn intake_applies_the_latest_limits_even_on_a_version_1_chain() {
    let mut chain = Chain::new(RULES_V1);
    assert!(chain.register(vec![column("age")]).is_valid());
    let hostile = chain.request(hostile_sql());
    let err = chain.state.check_submission(&hostile).unwrap_err();
    assert!(err.to_string().contains("tokens"), "{err}");
}

#[test]
fn a_versioned_genesis_round_trips_and_version_1_keeps_its_chain_id() {
    let keys = sample_keys(2);
    let mut genesis = sample_genesis(&keys);
    genesis.rules_version = RULES_V1;
    let v1_block = genesis.block();
    assert_eq!(v1_block.txs[0].payload.tag(), TxPayload::TAG_GENESIS);
    genesis.rules_version = RULES_V2;
    let v2_block = genesis.block();
    assert_eq!(
        v2_block.txs[0].payload.tag(),
        TxPayload::TAG_GENESIS_VERSIONED
    );
    assert_ne!(v1_block.hash(), v2_block.hash());
    let decoded = Transaction::decode(&v2_block.txs[0].encode()).unwrap();
    assert_eq!(decoded, v2_block.txs[0]);

    // The JSON of a version-1 genesis has no rules_version (old files read the same).
    genesis.rules_version = RULES_V1;
    let json = serde_json::to_string(&genesis).unwrap();
    assert!(!json.contains("rules_version"));
    let back: Genesis = serde_json::from_str(&json).unwrap();
    assert_eq!(back.rules_version, RULES_V1);

    genesis.rules_version = LATEST_RULES + 1;
    assert!(genesis.validate().is_err());
    let _ = Chain::new(LATEST_RULES).genesis;
}

#[test]
fn a_versioned_genesis_that_names_version_1_does_not_decode() {
    let keys = sample_keys(1);
    let mut genesis = sample_genesis(&keys);
    genesis.rules_version = RULES_V2;
    let mut bytes = genesis.block().txs[0].encode();
    // The version is the u32 just before the 64-byte signature and the approval count.
    let at = bytes.len() - 64 - 4 - 4;
    bytes[at..at + 4].copy_from_slice(&1u32.to_be_bytes());
    assert!(Transaction::decode(&bytes).is_err());
}

/// The fixture chain: exported by the build before rule versions existed, it holds a
/// `QueryRequest` whose 65 KB `1+1+…` SQL crashed every owner's node, committed valid under
/// rule version 1. Every later build must verify it as it stands.
#[test]
fn the_hostile_version_1_fixture_chain_still_verifies() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hostile-v1.export"
    ))
    .unwrap();
    let raw = read_export(&bytes).unwrap();
    let blocks: Vec<Block> = raw.iter().map(|b| Block::decode(b).unwrap()).collect();
    let hostile = blocks
        .iter()
        .flat_map(|b| b.txs.iter().zip(&b.outcomes))
        .find_map(|(tx, outcome)| match &tx.payload {
            TxPayload::QueryRequest(r) if r.sql.len() > 60_000 => Some(outcome.clone()),
            _ => None,
        })
        .expect("the fixture holds the hostile request");
    assert!(hostile.is_valid(), "recorded valid under rule version 1");
    let report = verify_chain(raw.into_iter().map(Ok)).unwrap();
    assert_eq!(report.height, 6);
    let TxPayload::Genesis(genesis) = &blocks[0].txs[0].payload else {
        panic!("block 0 holds the genesis")
    };
    assert_eq!(genesis.rules_version, RULES_V1);
}

/// The encoding y + p of the first y < 19 whose point dalek accepts as a member key: valid
/// for consort's version-1 rules, refused by RFC 8032 decoding.
fn non_canonical_key() -> consort_crypto::PublicKey {
    (0..19u8)
        .map(|y| {
            let mut b = [0xffu8; 32];
            b[31] = 0x7f;
            b[0] = 0xed + y;
            consort_crypto::PublicKey(b)
        })
        .find(|k| k.is_valid())
        .expect("such a key exists")
}

fn member_add(chain: &mut Chain, key: consort_crypto::PublicKey) -> Transaction {
    let info = consort_ledger::MemberInfo {
        name: "newcomer".into(),
        public_key: key,
        peer_addr: "127.0.0.1:9".into(),
        api_addr: "127.0.0.1:10".into(),
    };
    let mut tx = chain.tx(0, TxPayload::MemberAdd(info));
    tx.add_approval(&chain.keys[1], &chain.state.chain_id());
    tx
}

#[test]
fn non_canonical_keys_are_refused_from_rule_version_2_only() {
    let key = non_canonical_key();
    assert!(!key.is_canonical());

    let mut old = Chain::new(RULES_V1);
    let tx = member_add(&mut old, key);
    assert!(old.commit(vec![tx]).remove(0).is_valid());

    let mut new = Chain::new(RULES_V2);
    let tx = member_add(&mut new, key);
    let (code, detail) = invalid(&new.commit(vec![tx]).remove(0)).unwrap();
    assert_eq!(code, InvalidCode::BadPayload);
    assert!(detail.contains("canonically"), "{detail}");

    // In a genesis: accepted under version 1 (as it always was), refused under version 2.
    let keys = sample_keys(2);
    let mut genesis = sample_genesis(&keys);
    genesis.members[1].public_key = key;
    genesis.rules_version = RULES_V1;
    genesis.validate().unwrap();
    genesis.rules_version = RULES_V2;
    let err = genesis.validate().unwrap_err().to_string();
    assert!(err.contains("canonically"), "{err}");
}

#[test]
fn a_non_canonical_signature_r_is_named_from_rule_version_2() {
    let crafted = |chain: &mut Chain| {
        let mut tx = chain.tx(1, TxPayload::RulesUpgrade { version: 99 });
        let mut r = [0xffu8; 32];
        r[31] = 0x7f;
        r[0] = 0xed + 3;
        tx.signature.0[..32].copy_from_slice(&r);
        tx
    };
    let mut old = Chain::new(RULES_V1);
    let tx = crafted(&mut old);
    // Intake refuses it too (the signature cannot verify with a changed R in any case).
    let err = old.state.check_submission(&tx).unwrap_err().to_string();
    assert!(err.contains("BadSignature"), "{err}");
    let (code, detail) = invalid(&old.commit(vec![tx]).remove(0)).unwrap();
    assert_eq!(code, InvalidCode::BadSignature);
    assert!(detail.contains("does not verify"), "{detail}");

    let mut new = Chain::new(RULES_V2);
    let tx = crafted(&mut new);
    let (code, detail) = invalid(&new.commit(vec![tx]).remove(0)).unwrap();
    assert_eq!(code, InvalidCode::BadSignature);
    assert!(detail.contains("R is not canonically"), "{detail}");
    verify(&new.blocks);
    verify(&old.blocks);
}

fn note(chain: &mut Chain) -> Transaction {
    let payload = TxPayload::Notarize(consort_ledger::Notarization {
        files: Vec::new(),
        note: Some(format!("note {}", chain.nonce)),
    });
    chain.tx(1, payload)
}

/// The next block of `chain`, built (and so signed) by founder 0 but not applied.
fn next_block(chain: &mut Chain) -> Block {
    let tx = note(chain);
    chain
        .state
        .build_block(vec![tx], &chain.keys[0], 5, &[false])
}

/// Whether `block` applies as the next block of `chain` (on a copy of its state).
fn applies(chain: &Chain, block: &Block) -> Result<(), String> {
    let mut state = chain.state.clone();
    state
        .apply_block(block, true)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn verify_with(chain: &Chain, block: &Block) -> Result<(), consort_ledger::VerifyFailure> {
    verify_chain(chain.blocks.iter().chain([block]).map(|b| Ok(b.encode()))).map(|_| ())
}

#[test]
fn a_rule_version_3_block_signed_over_the_old_message_is_refused() {
    let mut chain = Chain::new(RULES_V3);
    let chain_id = chain.state.chain_id();
    let mut block = next_block(&mut chain);
    let hash = block.hash();
    let key = chain.keys[0].public_key();
    consort_crypto::verify(
        &key,
        &block_signing_message_v2(&chain_id, &hash),
        &block.signature,
    )
    .expect("the proposer signs the message that names the chain");
    applies(&chain, &block).unwrap();

    block.signature = chain.keys[0].sign(&block_signing_message_v1(&hash));
    let err = applies(&chain, &block).unwrap_err();
    assert!(
        err.contains("block signature does not verify") && err.contains("rule version 3"),
        "{err}"
    );
    let failure = verify_with(&chain, &block).unwrap_err();
    assert_eq!(failure.height, 1);
    assert!(failure.reason.contains("consort/block-sig/v2"), "{failure}");
}

#[test]
fn a_rule_version_2_chain_still_takes_old_message_blocks() {
    let mut chain = Chain::new(RULES_V2);
    let chain_id = chain.state.chain_id();
    let mut block = next_block(&mut chain);
    let hash = block.hash();
    consort_crypto::verify(
        &chain.keys[0].public_key(),
        &block_signing_message_v1(&hash),
        &block.signature,
    )
    .expect("under version 2 the proposer signs the block hash alone");
    verify_with(&chain, &block).unwrap();
    // The new message is not accepted in its place.
    block.signature = chain.keys[0].sign(&block_signing_message_v2(&chain_id, &hash));
    assert!(applies(&chain, &block).is_err());
    assert!(verify_with(&chain, &block).is_err());
}

#[test]
fn an_upgrade_to_version_3_switches_the_block_message_at_the_next_block() {
    let mut chain = Chain::new(RULES_V2);
    let chain_id = chain.state.chain_id();
    assert!(chain.register(vec![column("age")]).is_valid());
    let upgrade = chain.upgrade(RULES_V3, &[1]);
    let after_upgrade = note(&mut chain);
    // The block holding the upgrade was begun under version 2 and is signed as such.
    let block = chain.state.build_block(
        vec![upgrade, after_upgrade],
        &chain.keys[0],
        5,
        &[false, false],
    );
    assert!(
        block.outcomes.iter().all(TxOutcome::is_valid),
        "{:?}",
        block.outcomes
    );
    consort_crypto::verify(
        &chain.keys[0].public_key(),
        &block_signing_message_v1(&block.hash()),
        &block.signature,
    )
    .expect("the upgrade's own block is sealed under version 2");
    let mut resigned = block.clone();
    resigned.signature = chain.keys[0].sign(&block_signing_message_v2(&chain_id, &block.hash()));
    assert!(applies(&chain, &resigned).is_err());
    chain.state.apply_block(&block, true).unwrap();
    chain.blocks.push(block);
    assert_eq!(chain.state.rules_version(), RULES_V3);

    // From the next block on, the message names the chain.
    let mut next = next_block(&mut chain);
    consort_crypto::verify(
        &chain.keys[0].public_key(),
        &block_signing_message_v2(&chain_id, &next.hash()),
        &next.signature,
    )
    .expect("sealed under version 3");
    verify_with(&chain, &next).unwrap();
    next.signature = chain.keys[0].sign(&block_signing_message_v1(&next.hash()));
    let err = applies(&chain, &next).unwrap_err();
    assert!(err.contains("rule version 3"), "{err}");
    let failure = verify_with(&chain, &next).unwrap_err();
    assert_eq!(failure.height, chain.state.height() + 1);
}
