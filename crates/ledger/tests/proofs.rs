//! Inclusion proofs of format version 2 (docs/FORMAT.md §12): every transaction of a chain
//! has a proof that verifies — the genesis, invalid outcomes, members admitted and removed —
//! and each forgery is refused for the reason it is a forgery: another chain, an outsider's
//! block, a doctored history or outcome, a downgraded rule version, sloppy JSON.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{Hash, SecretKey};
use consort_ledger::conformance::{sample_genesis, sample_keys, sample_notarize};
use consort_ledger::proof::{MAX_PROOF_BYTES, PROOF_VERSION};
use consort_ledger::rules_limits::{RULES_V1, RULES_V2, RULES_V3};
use consort_ledger::{
    read_export, Binding, Block, Genesis, InclusionProof, InvalidCode, LedgerError, LedgerState,
    MemberInfo, Transaction, TxOutcome, TxPayload,
};

const T0: u64 = 1_700_000_000_000;

/// A chain under construction: founders `keys`, blocks proposed round-robin.
struct Chain {
    keys: Vec<SecretKey>,
    state: LedgerState,
    blocks: Vec<Block>,
    nonce: u64,
}

impl Chain {
    fn with_genesis(keys: Vec<SecretKey>, genesis: &Genesis) -> Chain {
        Chain {
            state: LedgerState::from_genesis(genesis).unwrap(),
            blocks: vec![genesis.block()],
            keys,
            nonce: 0,
        }
    }

    fn new(rules_version: u32) -> Chain {
        let keys = sample_keys(3);
        let mut genesis = sample_genesis(&keys);
        genesis.rules_version = rules_version;
        Chain::with_genesis(keys, &genesis)
    }

    fn chain_id(&self) -> Hash {
        self.state.chain_id()
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    fn notarize(&mut self, key: &SecretKey) -> Transaction {
        let nonce = self.next_nonce();
        sample_notarize(key, &self.chain_id(), nonce)
    }

    /// A membership change or upgrade by founder 0, approved by founders `approvers`.
    fn governed(&mut self, payload: TxPayload, approvers: &[usize]) -> Transaction {
        let nonce = self.next_nonce();
        let mut tx = Transaction::sign(payload, &self.keys[0], &self.chain_id(), nonce, T0);
        for &a in approvers {
            tx.add_approval(&self.keys[a], &self.chain_id());
        }
        tx
    }

    fn commit(&mut self, txs: Vec<Transaction>) -> &Block {
        let n = self.keys.len();
        let proposer = (0..n)
            .map(|j| &self.keys[(self.blocks.len() + j) % n])
            .find(|k| self.state.is_member(&k.member_id()))
            .expect("a founder is still a member");
        let block = self
            .state
            .build_block(txs, proposer, T0 + self.blocks.len() as u64, &[]);
        self.state.apply_block(&block, true).unwrap();
        self.blocks.push(block);
        self.blocks.last().unwrap()
    }

    fn proof(&self, height: usize, index: usize) -> InclusionProof {
        InclusionProof::from_chain(&self.blocks, height as u64, index).unwrap()
    }

    fn position_of(&self, tx: &Transaction) -> (usize, usize) {
        let id = tx.id();
        self.blocks
            .iter()
            .enumerate()
            .find_map(|(h, b)| b.txs.iter().position(|t| t.id() == id).map(|i| (h, i)))
            .expect("the transaction is in the chain")
    }
}

fn newcomer(seed: u8) -> (SecretKey, MemberInfo) {
    let key = SecretKey::from_seed(&[seed; 32]);
    let info = MemberInfo {
        name: format!("newcomer-{seed}"),
        public_key: key.public_key(),
        peer_addr: "10.0.0.9:7000".into(),
        api_addr: "10.0.0.9:8000".into(),
    };
    (key, info)
}

fn code(outcome: &TxOutcome) -> Option<InvalidCode> {
    match outcome {
        TxOutcome::Valid => None,
        TxOutcome::Invalid { code, .. } => Some(*code),
    }
}

fn refused(proof: &InclusionProof, needle: &str) -> String {
    let err = proof
        .verify()
        .expect_err(&format!(
            "a proof that should fail with {needle:?} verified"
        ))
        .to_string();
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    err
}

/// A chain of every kind of transaction a proof must cover: valid ones, each invalid code that
/// matters for binding, a member admitted, a member removed (with a transaction from before
/// and after), and a member admitted and removed within one block.
struct Busy {
    chain: Chain,
    outsider_tx: Transaction,
    foreign_tx: Transaction,
    replayed_tx: Transaction,
    removed_before: Transaction,
    removed_after: Transaction,
    fleeting_tx: Transaction,
}

fn busy_chain(rules_version: u32) -> Busy {
    let mut chain = Chain::new(rules_version);
    let k = chain.keys.clone();
    let outsider = SecretKey::from_seed(&[99; 32]);
    let a = chain.notarize(&k[1]);
    let b = chain.notarize(&k[2]);
    chain.commit(vec![a, b]);

    // Block 2: an outsider's transaction (UnknownSigner), one signed for another chain
    // (BadSignature), and a replayed nonce (ReplayedNonce).
    let outsider_tx = chain.notarize(&outsider);
    let nonce = chain.next_nonce();
    let foreign_tx = sample_notarize(&k[1], &Hash([7; 32]), nonce);
    let first = chain.notarize(&k[2]);
    let mut replayed_tx = first.clone();
    replayed_tx.timestamp_ms += 1;
    replayed_tx.signature = k[2].sign(&replayed_tx.signing_message(&chain.chain_id()));
    let outcomes = chain
        .commit(vec![
            outsider_tx.clone(),
            foreign_tx.clone(),
            first,
            replayed_tx.clone(),
        ])
        .outcomes
        .clone();
    assert_eq!(code(&outcomes[0]), Some(InvalidCode::UnknownSigner));
    assert_eq!(code(&outcomes[1]), Some(InvalidCode::BadSignature));
    assert_eq!(code(&outcomes[3]), Some(InvalidCode::ReplayedNonce));

    // Block 3: admit newcomer 40, who then signs.
    let (key40, info40) = newcomer(40);
    let add = chain.governed(TxPayload::MemberAdd(info40), &[1]);
    chain.commit(vec![add]);
    let by40 = chain.notarize(&key40);
    chain.commit(vec![by40]);

    // Block 5: founder 2 signs, then is removed; block 6: its transaction is UnknownSigner.
    let removed_before = chain.notarize(&k[2]);
    let remove = chain.governed(
        TxPayload::MemberRemove {
            member: k[2].member_id(),
        },
        &[1, 2],
    );
    let outcomes = chain
        .commit(vec![removed_before.clone(), remove])
        .outcomes
        .clone();
    assert!(outcomes.iter().all(TxOutcome::is_valid), "{outcomes:?}");
    let removed_after = chain.notarize(&k[2]);
    let outcomes = chain.commit(vec![removed_after.clone()]).outcomes.clone();
    assert_eq!(code(&outcomes[0]), Some(InvalidCode::UnknownSigner));

    // Block 7: newcomer 41 is admitted, signs, and is removed, all in one block.
    let (key41, info41) = newcomer(41);
    let add = chain.governed(TxPayload::MemberAdd(info41.clone()), &[1]);
    let fleeting_tx = chain.notarize(&key41);
    let mut remove = chain.governed(
        TxPayload::MemberRemove {
            member: info41.id(),
        },
        &[1],
    );
    remove.add_approval(&key40, &chain.chain_id());
    let outcomes = chain
        .commit(vec![add, fleeting_tx.clone(), remove])
        .outcomes
        .clone();
    assert!(outcomes.iter().all(TxOutcome::is_valid), "{outcomes:?}");
    let last = chain.notarize(&k[1]);
    chain.commit(vec![last]);
    Busy {
        chain,
        outsider_tx,
        foreign_tx,
        replayed_tx,
        removed_before,
        removed_after,
        fleeting_tx,
    }
}

#[test]
fn every_transaction_of_a_rule_version_3_chain_has_a_proof_that_verifies() {
    let busy = busy_chain(RULES_V3);
    let chain = &busy.chain;
    for (h, block) in chain.blocks.iter().enumerate() {
        for i in 0..block.txs.len() {
            let proof = chain.proof(h, i);
            let json = serde_json::to_string_pretty(&proof).unwrap();
            let parsed = InclusionProof::from_json(&json).unwrap();
            assert_eq!(parsed, proof, "JSON round trip of block {h} tx {i}");
            let report = parsed
                .verify()
                .unwrap_or_else(|e| panic!("block {h} tx {i}: {e}"));
            assert_eq!(report.tx_id, block.txs[i].id());
            assert_eq!(report.outcome_code, block.outcomes[i].code_byte());
            assert_eq!(report.rules_version, RULES_V3);
            let binding = if h == 0 {
                Binding::Genesis
            } else {
                Binding::BlockSignature
            };
            assert_eq!(report.binding, binding, "block {h} tx {i}");
        }
    }

    // What the reports say about the signers.
    let report_of = |tx: &Transaction| {
        let (h, i) = chain.position_of(tx);
        chain.proof(h, i).verify().unwrap()
    };
    let outsider = report_of(&busy.outsider_tx);
    assert!(!outsider.signer_was_member);
    assert_eq!(
        outsider.signer_key, None,
        "an outsider's key is never shown"
    );
    let removed = report_of(&busy.removed_after);
    assert!(!removed.signer_was_member);
    assert_eq!(removed.signer_key, Some(chain.keys[2].public_key()));
    assert_eq!(removed.outcome_code, InvalidCode::UnknownSigner.as_u8());
    let before = report_of(&busy.removed_before);
    assert!(before.signer_was_member);
    assert!(before
        .members_before
        .iter()
        .any(|m| m.member_id == chain.keys[2].member_id()));
    assert!(!before
        .members_after
        .iter()
        .any(|m| m.member_id == chain.keys[2].member_id()));
    // Admitted and removed within the block: a member at its transaction, though neither
    // before nor after the block.
    let fleeting = report_of(&busy.fleeting_tx);
    assert!(fleeting.signer_was_member);
    assert!(fleeting.outcome.is_valid());
    assert!(!fleeting
        .members_before
        .iter()
        .chain(&fleeting.members_after)
        .any(|m| m.member_id == busy.fleeting_tx.signer));
    assert_eq!(
        report_of(&busy.replayed_tx).outcome_code,
        InvalidCode::ReplayedNonce.as_u8()
    );
    assert_eq!(
        report_of(&busy.foreign_tx).outcome_code,
        InvalidCode::BadSignature.as_u8()
    );
}

/// The chain of a second consortium with exactly the same members (keys, names, addresses):
/// its member digests match, so only what names the chain can tell the two apart.
fn twin(rules_version: u32) -> Genesis {
    let keys = sample_keys(3);
    let mut genesis = sample_genesis(&keys);
    genesis.consortium = "twin".into();
    genesis.rules_version = rules_version;
    genesis
}

/// `proof` moved to the twin chain: its chain id and genesis, and a governance history that
/// the twin shares (none here).
fn moved_to_twin(proof: &InclusionProof, twin: &Genesis) -> InclusionProof {
    let mut p = proof.clone();
    p.chain_id = twin.chain_id();
    p.genesis = Some(twin.block().txs[0].encode());
    p
}

#[test]
fn a_proof_moved_to_another_chain_is_refused() {
    // A block of one plain transaction, then one with an outsider's, one signed for another
    // chain and a valid one; no membership changes, so the twin's history is the same
    // (empty) and so are its member digests.
    for version in [RULES_V1, RULES_V2, RULES_V3] {
        let mut chain = Chain::new(version);
        let k = chain.keys.clone();
        let a = chain.notarize(&k[1]);
        chain.commit(vec![a]);
        let outsider = SecretKey::from_seed(&[99; 32]);
        let o = chain.notarize(&outsider);
        let nonce = chain.next_nonce();
        let foreign = sample_notarize(&k[1], &Hash([7; 32]), nonce);
        let valid = chain.notarize(&k[2]);
        chain.commit(vec![o, foreign, valid]);
        let twin = twin(version);

        // Changing the chain id alone breaks the genesis anchor.
        let mut p = chain.proof(2, 0);
        p.chain_id = twin.chain_id();
        refused(&p, "genesis");

        for (index, what) in [(0, "UnknownSigner"), (1, "BadSignature"), (2, "valid")] {
            let genuine = chain.proof(2, index);
            if let Err(e) = genuine.verify() {
                // Under versions 1 and 2 the invalid ones are refused on their own chain too.
                assert!(version < RULES_V3 && index < 2, "{what}: {e}");
                let named = format!("block 2 was sealed under rule version {version}");
                assert!(e.to_string().contains(&named), "{e}");
            }
            let moved = moved_to_twin(&genuine, &twin);
            let err = moved.verify().unwrap_err().to_string();
            match (version, index) {
                (RULES_V3, _) => assert!(
                    err.contains("names the chain") && err.contains("rule version 3"),
                    "{what}: {err}"
                ),
                (_, 2) => assert!(
                    err.contains("signature does not verify for chain"),
                    "{what}: {err}"
                ),
                _ => assert!(
                    err.contains(&format!("rule version {version}"))
                        && err.contains("nothing binds"),
                    "{what}: {err}"
                ),
            }
        }
    }
}

#[test]
fn a_block_sealed_by_an_outsider_around_a_genuine_transaction_is_refused() {
    let mut chain = Chain::new(RULES_V3);
    let k = chain.keys.clone();
    let genuine = chain.notarize(&k[1]);
    let outsider = SecretKey::from_seed(&[66; 32]);
    // The outsider builds block 1 on the genuine state, with itself as proposer, and signs
    // it over the chain-naming message: everything but its membership is in order.
    let forged = chain
        .state
        .build_block(vec![genuine], &outsider, T0 + 1, &[]);
    let mut blocks = chain.blocks.clone();
    blocks.push(forged);
    let mut proof = InclusionProof::from_chain(&blocks, 1, 0).unwrap();
    assert_eq!(proof.proposer_key, None, "no history admits the outsider");
    refused(&proof, "was not a member before block 1");
    proof.proposer_key = Some(outsider.public_key());
    refused(&proof, "was not a member before block 1");

    // Nor can it write itself into the history: a MemberAdd it signs is not valid.
    let info = MemberInfo {
        name: "outsider".into(),
        public_key: outsider.public_key(),
        peer_addr: "10.0.0.66:7000".into(),
        api_addr: "10.0.0.66:8000".into(),
    };
    let mut add = Transaction::sign(
        TxPayload::MemberAdd(info.clone()),
        &outsider,
        &chain.chain_id(),
        1,
        T0,
    );
    add.add_approval(&outsider, &chain.chain_id());
    proof.governance = vec![consort_ledger::GovernanceEntry {
        height: 1,
        tx_index: 0,
        tx: add,
    }];
    refused(&proof, "governance entry 0");
    // Signed by a founder but approved by no one else: no majority.
    let mut add = Transaction::sign(TxPayload::MemberAdd(info), &k[0], &chain.chain_id(), 5, T0);
    add.add_approval(&outsider, &chain.chain_id());
    proof.governance[0].tx = add;
    proof.governance[0].height = 1;
    let err = proof.verify().unwrap_err().to_string();
    assert!(
        err.contains("governance entry 0") || err.contains("outcomes do not show"),
        "{err}"
    );
}

#[test]
fn doctored_histories_outcomes_and_keys_are_refused() {
    let busy = busy_chain(RULES_V3);
    let chain = &busy.chain;
    let (h, i) = chain.position_of(&busy.removed_after);
    let proof = chain.proof(h, i);
    proof.verify().unwrap();
    assert_eq!(
        proof.governance.len(),
        2,
        "the admission of 40 and the removal of 2"
    );

    // Leaving out the removal of the signer (to make it look like a member).
    let mut p = proof.clone();
    p.governance.retain(|e| {
        !matches!(e.tx.payload, TxPayload::MemberRemove { member } if member == busy.removed_after.signer)
    });
    refused(&p, "state root");
    // Leaving out an admission.
    let mut p = proof.clone();
    p.governance.remove(0);
    assert!(p.verify().is_err());
    // Reordering.
    let mut p = proof.clone();
    p.governance.swap(0, 1);
    refused(&p, "out of order");
    // A doctored member card (the name) breaks the entry's signature.
    let mut p = proof.clone();
    if let TxPayload::MemberAdd(info) = &mut p.governance[0].tx.payload {
        info.name = "mallory".into();
    }
    refused(&p, "governance entry 0");
    // A non-governance transaction in the history.
    let mut p = proof.clone();
    p.governance[0].tx = busy.removed_before.clone();
    refused(&p, "not a membership change");

    // The outcome code: claimed differently, or changed in the list too.
    let mut p = proof.clone();
    p.outcome = TxOutcome::Valid;
    refused(&p, "records outcome code 1 (UnknownSigner)");
    let mut p = proof.clone();
    p.outcome = TxOutcome::Valid;
    p.outcomes[i].code = 0;
    refused(&p, "state root");
    // The previous block's outcomes, and the state root two back.
    let mut p = proof.clone();
    p.outcomes_before[0].code = 7;
    refused(&p, "state root");
    let mut p = proof.clone();
    p.state_root_2back = Hash([1; 32]);
    refused(&p, "state root");
    // The detail text is stated, not proved: changing it alone still verifies.
    let mut p = proof.clone();
    p.outcome = TxOutcome::Invalid {
        code: InvalidCode::UnknownSigner,
        detail: "anything".into(),
    };
    p.verify().unwrap();

    // Keys: the signer's as admitted, or none at all.
    let mut p = proof.clone();
    p.signer_key = None;
    refused(&p, "signer_key");
    let mut p = proof.clone();
    p.signer_key = Some(chain.keys[1].public_key());
    refused(&p, "signer_key");
    let (h, i) = chain.position_of(&busy.outsider_tx);
    let mut p = chain.proof(h, i);
    p.signer_key = Some(SecretKey::from_seed(&[99; 32]).public_key());
    refused(&p, "never admitted");

    // The rule version the proof names must be the one the history gives.
    let mut p = proof.clone();
    p.rules_version = RULES_V2;
    refused(&p, "sealed under rule version 2");
}

#[test]
fn an_upgraded_chain_binds_from_the_block_after_its_upgrade_and_cannot_be_downgraded() {
    let mut chain = Chain::new(RULES_V2);
    let k = chain.keys.clone();
    let outsider = SecretKey::from_seed(&[99; 32]);
    let before = chain.notarize(&outsider);
    chain.commit(vec![before]);
    let upgrade = chain.governed(TxPayload::RulesUpgrade { version: RULES_V3 }, &[1]);
    let same_block = chain.notarize(&outsider);
    chain.commit(vec![upgrade, same_block]);
    let after = chain.notarize(&outsider);
    chain.commit(vec![after]);
    let valid = chain.notarize(&k[1]);
    chain.commit(vec![valid]);

    // Block 1 (version 2): an outsider's transaction binds nothing.
    let err = chain.proof(1, 0).verify().unwrap_err().to_string();
    assert!(
        err.contains("block 1 was sealed under rule version 2") && err.contains("nothing binds"),
        "{err}"
    );
    // Block 2 holds the upgrade but was sealed under version 2 (the version at its start).
    assert_eq!(chain.proof(2, 0).verify().unwrap().rules_version, RULES_V2);
    refused(&chain.proof(2, 1), "rule version 2");
    // Block 3 was sealed under version 3: bound by its signature.
    let report = chain.proof(3, 0).verify().unwrap();
    assert_eq!(
        (report.rules_version, report.binding),
        (RULES_V3, Binding::BlockSignature)
    );

    // A forger who leaves the upgrade out of the history, to have the block judged by
    // version 2, needs a signature over the version-1 message that no proposer made.
    let mut p = chain.proof(3, 0);
    p.governance.clear();
    p.rules_version = RULES_V2;
    refused(&p, "consort/block-sig/v1");
    let mut p = chain.proof(4, 0);
    p.governance.clear();
    p.rules_version = RULES_V2;
    refused(&p, "consort/block-sig/v1");
}

#[test]
fn the_genesis_proof_is_rebuilt_from_its_genesis() {
    let busy = busy_chain(RULES_V3);
    let proof = busy.chain.proof(0, 0);
    let report = proof.verify().unwrap();
    assert_eq!(report.kind, "Genesis");
    assert_eq!(report.binding, Binding::Genesis);
    assert_eq!(report.members_after.len(), 3);
    let mut p = proof.clone();
    p.outcome = TxOutcome::Invalid {
        code: InvalidCode::BadPayload,
        detail: String::new(),
    };
    p.outcomes[0].code = 7;
    refused(&p, "recorded valid");
    let mut p = proof.clone();
    p.governance = busy.chain.proof(3, 0).governance;
    refused(&p, "empty");
    let mut p = proof;
    p.rules_version = RULES_V1;
    refused(&p, "rules_version of its genesis");
}

/// Every transaction of the version-1 fixture chain either verifies, bound by its own
/// signature, or is refused with the rule version named.
#[test]
fn proofs_of_the_version_1_fixture_chain_verify_or_name_the_version() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hostile-v1.export"
    ))
    .unwrap();
    let blocks: Vec<Block> = read_export(&bytes)
        .unwrap()
        .iter()
        .map(|b| Block::decode(b).unwrap())
        .collect();
    let (mut verified, mut refused) = (0, 0);
    for (h, block) in blocks.iter().enumerate().skip(1) {
        for (i, outcome) in block.outcomes.iter().enumerate() {
            let proof = InclusionProof::from_chain(&blocks, h as u64, i).unwrap();
            match proof.verify() {
                Ok(report) => {
                    assert_eq!(report.rules_version, RULES_V1);
                    assert_eq!(report.binding, Binding::TransactionSignature);
                    verified += 1;
                }
                Err(e) => {
                    assert!(!outcome.is_valid(), "block {h} tx {i}: {e}");
                    assert!(e.to_string().contains("rule version 1"), "{e}");
                    refused += 1;
                }
            }
        }
    }
    eprintln!("version-1 fixture: {verified} proofs verify, {refused} are refused");
    assert!(verified > 0);
    let hostile =
        blocks
            .iter()
            .enumerate()
            .find_map(|(h, b)| {
                b.txs.iter().position(|tx| {
                matches!(&tx.payload, TxPayload::QueryRequest(r) if r.sql.len() > 60_000)
            })
            .map(|i| (h, i))
            })
            .unwrap();
    let report = InclusionProof::from_chain(&blocks, hostile.0 as u64, hostile.1)
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(report.kind, "QueryRequest");
}

fn json_of(proof: &InclusionProof) -> serde_json::Value {
    serde_json::to_value(proof).unwrap()
}

fn read(value: &serde_json::Value) -> Result<InclusionProof, LedgerError> {
    InclusionProof::from_json(&value.to_string())
}

fn unreadable(value: &serde_json::Value, needle: &str) {
    let err = read(value).expect_err(&format!("should not read ({needle})"));
    assert!(matches!(err, LedgerError::ProofFormat(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(needle), "expected {needle:?} in: {text}");
}

#[test]
fn proof_json_is_strict() {
    let busy = busy_chain(RULES_V3);
    let (h, i) = busy.chain.position_of(&busy.fleeting_tx);
    let proof = busy.chain.proof(h, i);
    let good = json_of(&proof);
    assert_eq!(good["version"], PROOF_VERSION);
    assert_eq!(read(&good).unwrap(), proof);

    // Uppercase hex, anywhere.
    for pointer in [
        "/chain_id",
        "/tx",
        "/header/state_root",
        "/header/proposer",
        "/block_signature",
        "/signer_key",
        "/governance/0/tx",
        "/outcomes/0/tx_id",
        "/audit_path/0",
    ] {
        let mut v = good.clone();
        let field = v
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}"));
        let upper = field.as_str().unwrap().to_uppercase();
        assert_ne!(upper, field.as_str().unwrap(), "{pointer} holds letters");
        *field = serde_json::json!(upper);
        unreadable(&v, "lowercase");
    }
    // White space, a prefix, a wrong length.
    let mut v = good.clone();
    v["chain_id"] = serde_json::json!(format!(" {}", proof.chain_id));
    unreadable(&v, "lowercase");
    let mut v = good.clone();
    v["block_hash"] = serde_json::json!(format!("0x{}", proof.block_hash));
    unreadable(&v, "lowercase");
    let mut v = good.clone();
    v["block_hash"] = serde_json::json!(&proof.block_hash.to_string()[2..]);
    unreadable(&v, "hex characters");

    // Unknown fields, at every level.
    let mut v = good.clone();
    v["comment"] = serde_json::json!("hello");
    unreadable(&v, "unknown field");
    let mut v = good.clone();
    v["header"]["extra"] = serde_json::json!(1);
    unreadable(&v, "unknown field");
    let mut v = good.clone();
    v["governance"][0]["note"] = serde_json::json!("x");
    unreadable(&v, "unknown field");
    let mut v = good.clone();
    v["outcomes"][0]["detail"] = serde_json::json!("x");
    unreadable(&v, "unknown field");
    let (h, i) = busy.chain.position_of(&busy.removed_after);
    let mut v = json_of(&busy.chain.proof(h, i));
    assert!(read(&v).is_ok());
    v["outcome"]["Invalid"]["why"] = serde_json::json!("x");
    unreadable(&v, "unknown field");

    // Optional values are present as null, never left out.
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("genesis");
    unreadable(&v, "missing field");
    let mut v = good.clone();
    v["signer_key"] = serde_json::Value::Null;
    let p = read(&v).unwrap();
    assert!(p.verify().is_err(), "null signer_key where a key is due");

    // Repeated fields.
    let text = good.to_string();
    let repeated = text.replacen("\"height\":", "\"height\":1,\"height\":", 1);
    assert!(InclusionProof::from_json(&repeated)
        .unwrap_err()
        .to_string()
        .contains("duplicate field"));

    // Version 1 (no version field) and unknown versions.
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("version");
    unreadable(&v, "version-1 inclusion proof");
    unreadable(&v, "consort ledger proof");
    let mut v = good.clone();
    v["version"] = serde_json::json!(3);
    unreadable(&v, "proof version 3");
    let mut v = good.clone();
    v["version"] = serde_json::json!("2");
    unreadable(&v, "proof version \"2\"");
    let mut v = good.clone();
    v["version"] = serde_json::Value::Null;
    unreadable(&v, "proof version null");

    // Too large.
    let big = " ".repeat(MAX_PROOF_BYTES + 1);
    assert!(InclusionProof::from_json(&big)
        .unwrap_err()
        .to_string()
        .contains("at most"));
}

/// A genuine version-1 proof, as the build before wrote it, is named as such.
#[test]
fn a_version_1_proof_is_named() {
    let old = r#"{"chain_id":"a527295135e627b233de6cce60b5209df23cf884ac34b6e48d2a3a31de09e91f",
        "height":1,"tx_index":0,"tree_size":1,"tx":"00","audit_path":[],
        "header":{"height":1,"prev_hash":"00","tx_root":"00","state_root":"00","timestamp_ms":0,
        "proposer":"00","tx_count":1},"block_hash":"00","block_signature":"00",
        "proposer_key":"00","signer_key":"00","outcome":"Valid"}"#;
    let err = InclusionProof::from_json(old).unwrap_err().to_string();
    assert!(err.contains("version-1"), "{err}");
    assert!(err.contains("consort ledger proof"), "{err}");
}
