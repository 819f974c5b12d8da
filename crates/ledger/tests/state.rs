//! State machine tests: building and applying blocks, per-transaction outcomes, submission
//! checks and the block checks of `apply_block`.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{Hash, MemberId, SecretKey, Signature};
use consort_ledger::conformance::{sample_genesis, sample_keys, sample_notarize};
use consort_ledger::{
    Block, InvalidCode, LedgerError, LedgerState, MemberInfo, Transaction, TxOutcome, TxPayload,
};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

fn setup(members: u8) -> (Vec<SecretKey>, LedgerState) {
    let keys = sample_keys(members);
    let state = LedgerState::from_genesis(&sample_genesis(&keys)).unwrap();
    (keys, state)
}

fn code_of(outcome: &TxOutcome) -> Option<InvalidCode> {
    match outcome {
        TxOutcome::Valid => None,
        TxOutcome::Invalid { code, .. } => Some(*code),
    }
}

fn new_member(name: &str, seed: u8) -> (SecretKey, MemberInfo) {
    let key = SecretKey::from_seed(&[seed; 32]);
    let info = MemberInfo {
        name: name.into(),
        public_key: key.public_key(),
        peer_addr: "10.0.0.9:7000".into(),
        api_addr: "10.0.0.9:8000".into(),
    };
    (key, info)
}

#[test]
fn built_block_applies_on_another_state_and_records_invalid_txs() {
    let (keys, builder) = setup(3);
    let mut follower = builder.clone();
    let chain = builder.chain_id();
    let outsider = SecretKey::from_seed(&[99; 32]);
    let (_, newcomer) = new_member("newcomer", 50);

    let mut add_without_majority = Transaction::sign(
        TxPayload::MemberAdd(newcomer.clone()),
        &keys[0],
        &chain,
        10,
        T0,
    );
    add_without_majority.approvals.clear();
    let txs = vec![
        sample_notarize(&keys[0], &chain, 1),
        sample_notarize(&keys[0], &chain, 1), // same nonce, same block
        sample_notarize(&outsider, &chain, 2),
        add_without_majority,
        sample_notarize(&keys[1], &chain, 1), // same nonce, other signer: fine
    ];
    let block = builder.build_block(txs, &keys[1], T0 + 1, &[]);
    let codes: Vec<_> = block.outcomes.iter().map(code_of).collect();
    assert_eq!(
        codes,
        vec![
            None,
            Some(InvalidCode::ReplayedNonce),
            Some(InvalidCode::UnknownSigner),
            Some(InvalidCode::InsufficientApprovals),
            None,
        ]
    );
    assert_eq!(builder.height(), 0, "build_block never mutates");

    let applied = follower.apply_block(&block, true).unwrap();
    assert_eq!((applied.valid, applied.invalid), (2, 3));
    assert!(!applied.membership_changed);
    assert_eq!(follower.height(), 1);
    assert_eq!(follower.head_hash(), block.hash());
    assert_eq!(follower.state_root(), block.header.state_root);
    assert!(follower.is_nonce_used(&keys[0].member_id(), 1));
    assert!(
        !follower.is_nonce_used(&keys[0].member_id(), 10),
        "invalid tx keeps its nonce"
    );

    // The block survives its encoding unchanged.
    assert_eq!(Block::decode(&block.encode()).unwrap(), block);
}

#[test]
fn member_add_with_majority_changes_membership_and_digest() {
    let (keys, state) = setup(3);
    let chain = state.chain_id();
    let (new_key, newcomer) = new_member("newcomer", 50);
    let mut add = Transaction::sign(
        TxPayload::MemberAdd(newcomer.clone()),
        &keys[0],
        &chain,
        1,
        T0,
    );
    add.add_approval(&keys[1], &chain);
    state.check_submission(&add).unwrap();
    let digest_before = state.members_digest();

    let mut follower = state.clone();
    let block = state.build_block(vec![add.clone()], &keys[0], T0, &[true]);
    assert_eq!(block.outcomes, vec![TxOutcome::Valid]);
    let applied = follower.apply_block(&block, true).unwrap();
    assert!(applied.membership_changed);
    assert!(follower.is_member(&newcomer.id()));
    assert_ne!(follower.members_digest(), digest_before);

    // The new member can sign at once; a duplicate add is MemberExists.
    let mut again = Transaction::sign(TxPayload::MemberAdd(newcomer), &keys[2], &chain, 2, T0);
    again.add_approval(&keys[0], &chain);
    again.add_approval(&keys[1], &chain);
    let txs = vec![sample_notarize(&new_key, &chain, 1), again];
    let block2 = follower.build_block(txs, &keys[0], T0 + 5, &[]);
    assert_eq!(block2.outcomes[0], TxOutcome::Valid);
    assert_eq!(
        code_of(&block2.outcomes[1]),
        Some(InvalidCode::MemberExists)
    );
    follower.apply_block(&block2, true).unwrap();
}

#[test]
fn member_remove_rules() {
    let (keys, state) = setup(3);
    let chain = state.chain_id();
    let victim = keys[2].member_id();
    let remove = |nonce, approvers: &[&SecretKey], member: MemberId| {
        let mut tx = Transaction::sign(
            TxPayload::MemberRemove { member },
            &keys[0],
            &chain,
            nonce,
            T0,
        );
        for key in approvers {
            tx.add_approval(key, &chain);
        }
        tx
    };
    // An approval from a non-member and a duplicate approval do not count.
    let outsider = SecretKey::from_seed(&[77; 32]);
    let weak = remove(1, &[&outsider, &keys[0]], victim);
    assert!(matches!(
        state.check_submission(&weak),
        Err(LedgerError::Rejected(InvalidCode::InsufficientApprovals, _))
    ));
    let unknown = remove(2, &[&keys[1]], outsider.member_id());
    assert!(matches!(
        state.check_submission(&unknown),
        Err(LedgerError::Rejected(InvalidCode::UnknownMember, _))
    ));
    let good = remove(3, &[&keys[1]], victim);
    let mut follower = state.clone();
    let block = state.build_block(vec![good], &keys[0], T0, &[]);
    assert_eq!(block.outcomes, vec![TxOutcome::Valid]);
    assert!(
        follower
            .apply_block(&block, true)
            .unwrap()
            .membership_changed
    );
    assert!(!follower.is_member(&victim));

    // The last member cannot be removed.
    let (solo, solo_state) = setup(1);
    let tx = Transaction::sign(
        TxPayload::MemberRemove {
            member: solo[0].member_id(),
        },
        &solo[0],
        &solo_state.chain_id(),
        1,
        T0,
    );
    assert!(matches!(
        solo_state.check_submission(&tx),
        Err(LedgerError::Rejected(InvalidCode::BadPayload, _))
    ));
}

#[test]
fn check_submission_rejects_with_clear_errors() {
    let (keys, mut state) = setup(2);
    let chain = state.chain_id();
    let good = sample_notarize(&keys[0], &chain, 5);
    state.check_submission(&good).unwrap();

    let mut bad_sig = good.clone();
    bad_sig.signature.0[0] ^= 1;
    let err = state.check_submission(&bad_sig).unwrap_err();
    assert!(
        matches!(err, LedgerError::Rejected(InvalidCode::BadSignature, _)),
        "{err}"
    );
    assert!(err.to_string().contains("BadSignature"), "{err}");

    let wrong_chain = sample_notarize(&keys[0], &Hash([1; 32]), 6);
    assert!(matches!(
        state.check_submission(&wrong_chain),
        Err(LedgerError::Rejected(InvalidCode::BadSignature, _))
    ));

    let stranger = sample_notarize(&SecretKey::from_seed(&[42; 32]), &chain, 5);
    let err = state.check_submission(&stranger).unwrap_err();
    assert!(
        matches!(err, LedgerError::Rejected(InvalidCode::UnknownSigner, _)),
        "{err}"
    );
    assert!(err.to_string().contains("not a member"), "{err}");

    let genesis_again = Transaction::sign(
        TxPayload::Genesis(sample_genesis(&keys)),
        &keys[0],
        &chain,
        9,
        T0,
    );
    assert!(matches!(
        state.check_submission(&genesis_again),
        Err(LedgerError::Rejected(InvalidCode::BadPayload, _))
    ));

    let block = state.build_block(vec![good.clone()], &keys[0], T0, &[true]);
    state.apply_block(&block, true).unwrap();
    let err = state.check_submission(&good).unwrap_err();
    assert!(
        matches!(err, LedgerError::Rejected(InvalidCode::ReplayedNonce, _)),
        "{err}"
    );
    assert!(err.to_string().contains("nonce 5"), "{err}");
}

#[test]
fn bad_signature_is_recorded_not_trusted_when_unchecked() {
    let (keys, state) = setup(2);
    let chain = state.chain_id();
    let mut forged = sample_notarize(&keys[0], &chain, 1);
    forged.signature = Signature([3; 64]);
    let good = sample_notarize(&keys[1], &chain, 1);
    let block = state.build_block(vec![forged, good], &keys[0], T0, &[false, true]);
    assert_eq!(code_of(&block.outcomes[0]), Some(InvalidCode::BadSignature));
    assert_eq!(block.outcomes[1], TxOutcome::Valid);
    let mut follower = state.clone();
    follower.apply_block(&block, true).unwrap();
    let mut replay = state.clone();
    replay.apply_block(&block, false).unwrap();
    assert_eq!(replay.state_root(), follower.state_root());
}

/// Each tampering of an otherwise good block is refused with a reason naming the problem,
/// and leaves the state untouched.
#[test]
fn apply_block_rejects_tampered_blocks() {
    let (keys, state) = setup(3);
    let chain = state.chain_id();
    let txs: Vec<_> = (1..=4)
        .map(|n| sample_notarize(&keys[(n % 3) as usize], &chain, n))
        .collect();
    let good = state.build_block(txs, &keys[0], T0, &[]);

    let expect_reject = |block: &Block, needle: &str| {
        let mut follower = state.clone();
        let err = follower.apply_block(block, true).unwrap_err();
        assert!(
            matches!(&err, LedgerError::InvalidBlock { height: 1, reason } if reason.contains(needle)),
            "expected {needle:?}, got {err}"
        );
        assert_eq!(follower.height(), 0);
        assert_eq!(follower.head_hash(), state.head_hash());
    };
    let resign = |mut block: Block| {
        block.signature = keys[0].sign(&state.block_signing_message(&block.header));
        block
    };

    let mut b = good.clone();
    b.header.height = 2;
    expect_reject(&resign(b), "height");

    let mut b = good.clone();
    b.header.prev_hash = Hash([9; 32]);
    expect_reject(&resign(b), "prev_hash");

    let mut b = good.clone();
    b.txs.remove(1);
    b.outcomes.remove(1);
    b.header.tx_count = 3;
    expect_reject(&resign(b), "tx_root");

    let mut b = good.clone();
    b.outcomes[2] = TxOutcome::Invalid {
        code: InvalidCode::ReplayedNonce,
        detail: "made up".into(),
    };
    expect_reject(&b, "outcome");

    let mut b = good.clone();
    b.signature.0[10] ^= 0x40;
    expect_reject(&b, "block signature");

    let mut b = good.clone();
    b.signature = keys[1].sign(&state.block_signing_message(&b.header));
    expect_reject(&b, "block signature");

    let outsider = SecretKey::from_seed(&[66; 32]);
    let mut b = good.clone();
    b.header.proposer = outsider.member_id();
    b.signature = outsider.sign(&state.block_signing_message(&b.header));
    expect_reject(&b, "not a member");

    let mut b = good.clone();
    b.header.state_root = Hash([5; 32]);
    expect_reject(&resign(b), "state_root");

    let mut b = good.clone();
    b.header.tx_count = 5;
    expect_reject(&resign(b), "transactions");

    let mut follower = state.clone();
    follower.apply_block(&good, true).unwrap();
}

fn arb_txs() -> impl Strategy<Value = Vec<(usize, u64, bool)>> {
    // (signer index among 4 keys, where index 3 is not a member; nonce from a small range so
    // repeats are common; whether to corrupt the signature)
    proptest::collection::vec((0usize..4, 0u64..6, proptest::bool::weighted(0.1)), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_blocks_build_and_apply_to_the_same_state(
        blocks in proptest::collection::vec(arb_txs(), 1..4),
    ) {
        let (keys, mut builder) = setup(3);
        let outsider = SecretKey::from_seed(&[200; 32]);
        let mut follower = builder.clone();
        let chain = builder.chain_id();
        for (height, spec) in blocks.iter().enumerate() {
            let txs: Vec<Transaction> = spec
                .iter()
                .map(|&(signer, nonce, corrupt)| {
                    let key = keys.get(signer).unwrap_or(&outsider);
                    let mut tx = sample_notarize(key, &chain, nonce);
                    if corrupt {
                        tx.signature.0[63] ^= 0x10;
                    }
                    tx
                })
                .collect();
            let proposer = &keys[height % keys.len()];
            let block = builder.build_block(txs, proposer, T0 + height as u64, &[]);
            builder.apply_block(&block, false).unwrap();
            let decoded = Block::decode(&block.encode()).unwrap();
            follower.apply_block(&decoded, true).unwrap();
            prop_assert_eq!(builder.state_root(), follower.state_root());
            prop_assert_eq!(builder.head_hash(), follower.head_hash());
        }
    }
}

/// Rough throughput check (`cargo test --release -- --ignored throughput`): build and apply a
/// block of 10,000 transactions with full signature checks.
#[test]
#[ignore]
fn throughput_build_and_apply_10k() {
    let (keys, state) = setup(3);
    let chain = state.chain_id();
    let txs: Vec<Transaction> = (0..10_000u64)
        .map(|n| sample_notarize(&keys[(n % 3) as usize], &chain, n))
        .collect();
    let started = std::time::Instant::now();
    let block = state.build_block(txs, &keys[0], T0, &[]);
    let built = started.elapsed();
    let mut follower = state.clone();
    let started = std::time::Instant::now();
    let applied = follower.apply_block(&block, true).unwrap();
    let applied_in = started.elapsed();
    assert_eq!(applied.valid, 10_000);
    println!("build: {built:?}, apply (signatures checked): {applied_in:?}");
}
