//! Chain-level tests: `verify_chain` against tampering, the in-memory block store's
//! conformance, export files and inclusion proofs (the redb store's are in consort-node).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{Hash, SecretKey};
use consort_ledger::conformance::{self, sample_chain};
use consort_ledger::rules_limits::LATEST_RULES;
use consort_ledger::{
    read_export, verify_chain, write_export, Block, InclusionProof, LedgerError, MemBlockStore,
    Transaction, VerifyFailure,
};
use proptest::prelude::*;

fn raw(blocks: &[Block]) -> Vec<Vec<u8>> {
    blocks.iter().map(Block::encode).collect()
}

fn verify_raw(raw_blocks: &[Vec<u8>]) -> Result<consort_ledger::VerifyReport, VerifyFailure> {
    verify_chain(raw_blocks.iter().cloned().map(Ok))
}

/// Re-encodes `block` after `edit` (keeping everything else, including the signature).
fn edited(block: &Block, edit: impl FnOnce(&mut Block)) -> Vec<u8> {
    let mut b = block.clone();
    edit(&mut b);
    b.encode()
}

#[test]
fn good_chain_verifies() {
    let (_, blocks) = sample_chain(3, 6, 5);
    let report = verify_raw(&raw(&blocks)).unwrap();
    assert_eq!(report.height, 6);
    assert_eq!(report.tx_count, 1 + 6 * 5);
    assert_eq!(report.chain_id, blocks[0].hash());
    assert_eq!(report.head_hash, blocks[6].hash());
    assert_eq!(report.state_root, blocks[6].header.state_root);
}

#[test]
fn every_flipped_byte_fails_at_its_height() {
    let (_, blocks) = sample_chain(2, 6, 2);
    let good = raw(&blocks);
    for height in 0..good.len() {
        let len = good[height].len();
        // Every byte of the small genesis and of one block, and a sample of the others.
        let step = if height <= 1 { 1 } else { 7 };
        for pos in (0..len).step_by(step) {
            for mask in [0x01u8, 0x80] {
                let mut chain = good.clone();
                chain[height][pos] ^= mask;
                let failure = verify_raw(&chain).expect_err("a flipped byte must be detected");
                assert_eq!(
                    failure.height, height as u64,
                    "flip of byte {pos} in block {height}: {failure}"
                );
                assert!(failure
                    .to_string()
                    .starts_with(&format!("height {height}: ")));
            }
        }
    }
}

#[test]
fn structural_tampering_fails_at_the_right_height() {
    let (keys, blocks) = sample_chain(3, 6, 4);
    let good = raw(&blocks);
    let fails_at = |chain: Vec<Vec<u8>>, height: u64, needle: &str| {
        let failure = verify_raw(&chain).unwrap_err();
        assert_eq!(failure.height, height, "{failure}");
        assert!(
            failure.reason.contains(needle),
            "expected {needle:?} in {failure}"
        );
    };

    let mut chain = good.clone();
    chain[3] = edited(&blocks[3], |b| {
        b.txs.remove(2);
        b.outcomes.remove(2);
    });
    fails_at(chain, 3, "transactions");

    let mut chain = good.clone();
    chain[4] = edited(&blocks[4], |b| {
        b.txs.remove(0);
        b.outcomes.remove(0);
        b.header.tx_count -= 1;
        b.signature = keys[4 % 3].sign(&b.header.signing_message(LATEST_RULES, &blocks[0].hash()));
    });
    fails_at(chain, 4, "tx_root");

    let mut chain = good.clone();
    chain.swap(2, 5);
    fails_at(chain, 2, "height");

    let mut chain = good.clone();
    chain.remove(3);
    fails_at(chain, 3, "height");

    let forger = SecretKey::from_seed(&[123; 32]);
    let mut chain = good.clone();
    chain[5] = edited(&blocks[5], |b| {
        b.signature = forger.sign(&b.header.signing_message(LATEST_RULES, &blocks[0].hash()))
    });
    fails_at(chain, 5, "block signature");

    let mut chain = good.clone();
    chain[1] = edited(&blocks[1], |b| b.txs[0].signature.0[0] ^= 1);
    fails_at(chain, 1, "tx_root");

    let mut chain = good.clone();
    chain[0] = edited(&blocks[0], |b| b.header.timestamp_ms += 1);
    fails_at(chain, 0, "genesis");

    let failure = verify_chain(
        good.into_iter()
            .map(Ok)
            .chain([Err(LedgerError::Store("disk on fire".into()))]),
    )
    .unwrap_err();
    assert_eq!(failure.height, 7);
    assert!(failure.reason.contains("disk on fire"));
    assert_eq!(verify_chain(Vec::new()).unwrap_err().height, 0);
}

#[test]
fn conformance_mem_store() {
    conformance::run_all(MemBlockStore::new);
}

#[test]
fn export_round_trip_and_malformed_exports() {
    let (_, blocks) = sample_chain(2, 3, 2);
    let good = raw(&blocks);
    let mut file = Vec::new();
    let written = write_export(&mut file, good.iter().cloned().map(Ok)).unwrap();
    assert_eq!(written, 4);
    assert_eq!(read_export(&file).unwrap(), good);
    verify_raw(&read_export(&file).unwrap()).unwrap();

    // An iterator without an exact size (filter) is buffered and gives the same bytes.
    let mut file2 = Vec::new();
    write_export(&mut file2, good.iter().cloned().map(Ok).filter(|_| true)).unwrap();
    assert_eq!(file2, file);

    for cut in [0, 5, 8, 12, 15, file.len() - 1] {
        let err = read_export(&file[..cut]).unwrap_err();
        assert!(matches!(err, LedgerError::Export(_)), "cut {cut}: {err}");
    }
    let mut trailing = file.clone();
    trailing.push(0);
    assert!(read_export(&trailing)
        .unwrap_err()
        .to_string()
        .contains("after the last block"));
    let mut huge = file.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(read_export(&huge)
        .unwrap_err()
        .to_string()
        .contains("announces"));
    assert!(read_export(b"garbage that is not an export")
        .unwrap_err()
        .to_string()
        .contains("CNSRTEX1"));

    let failing = good
        .iter()
        .cloned()
        .map(Ok)
        .chain([Err(LedgerError::Store("boom".into()))]);
    assert!(write_export(&mut Vec::new(), failing).is_err());
}

fn proof_for(blocks: &[Block], height: usize, index: usize) -> InclusionProof {
    InclusionProof::from_chain(blocks, height as u64, index).unwrap()
}

#[test]
fn inclusion_proofs_verify_and_detect_forgery() {
    let (_, blocks) = sample_chain(3, 3, 5);
    for height in 1..blocks.len() {
        for index in 0..5 {
            let proof = proof_for(&blocks, height, index);
            let json = serde_json::to_string_pretty(&proof).unwrap();
            let parsed = InclusionProof::from_json(&json).unwrap();
            assert_eq!(parsed, proof);
            let report = parsed.verify().unwrap();
            assert_eq!(report.tx_id, blocks[height].txs[index].id());
            assert_eq!(report.height, height as u64);
        }
    }
    let genesis_proof = proof_for(&blocks, 0, 0);
    assert_eq!(genesis_proof.verify().unwrap().kind, "Genesis");
    assert!(InclusionProof::from_chain(&blocks, 1, 5).is_err());
    assert!(InclusionProof::from_chain(&blocks, 9, 0).is_err());

    let proof = proof_for(&blocks, 2, 3);
    let must_fail = |p: InclusionProof, what: &str| {
        assert!(p.verify().is_err(), "{what} must not verify");
    };

    let mut p = proof.clone();
    let mut tx = Transaction::decode(&p.tx).unwrap();
    tx.timestamp_ms += 1;
    p.tx = tx.encode();
    must_fail(p, "modified tx");

    let mut p = proof.clone();
    p.tx = proof_for(&blocks, 2, 2).tx;
    must_fail(p, "other tx of the same block");

    let mut p = proof.clone();
    p.audit_path[0] = Hash([1; 32]);
    must_fail(p, "wrong path");

    let mut p = proof.clone();
    p.audit_path.pop();
    must_fail(p, "short path");

    let mut p = proof.clone();
    p.tx_index = 2;
    must_fail(p, "wrong index");

    let mut p = proof.clone();
    p.header.timestamp_ms += 1;
    must_fail(p.clone(), "forged header");
    p.block_hash = p.header.hash();
    must_fail(p, "forged header with matching hash");

    let mut p = proof.clone();
    p.block_signature.0[3] ^= 1;
    must_fail(p, "forged block signature");

    let mut p = proof.clone();
    p.proposer_key = Some(SecretKey::from_seed(&[88; 32]).public_key());
    must_fail(p, "wrong proposer key");

    let mut p = proof.clone();
    p.chain_id = Hash([4; 32]);
    must_fail(p, "other chain");

    let mut p = proof.clone();
    p.tx = vec![0xff; 3];
    must_fail(p, "undecodable tx");

    let mut p = genesis_proof.clone();
    p.chain_id = Hash([4; 32]);
    must_fail(p, "genesis of another chain");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Transaction::decode(&bytes);
        let _ = Block::decode(&bytes);
        let _ = read_export(&bytes);
        let mut with_magic = b"CNSRTEX1".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = read_export(&with_magic);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(proof) = InclusionProof::from_json(text) {
                let _ = proof.verify();
            }
        }
    }

    #[test]
    fn mutated_blocks_never_panic(pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let (_, blocks) = sample_chain(2, 1, 3);
        let mut bytes = blocks[1].encode();
        let len = bytes.len();
        bytes[pos % len] = byte;
        if let Ok(block) = Block::decode(&bytes) {
            // Canonical: whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(block.encode(), bytes.clone());
            for tx in &block.txs {
                prop_assert_eq!(Transaction::decode(&tx.encode()).unwrap(), tx.clone());
            }
        }
        let _ = Block::decode(&bytes[..cut % len]);
        let _ = verify_raw(&[blocks[0].encode(), bytes]);
    }
}
