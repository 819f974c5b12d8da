//! The conformance suite every [`BlockStore`] implementation must pass, plus the small
//! deterministic sample chain it (and other crates' tests) can use.
//!
//! Run it from an implementation's tests: `conformance::run_all(|| MyStore::new())`. `make`
//! must return a new, empty store on every call. Failures panic with a description (this
//! module is test support, never called on untrusted input).

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{Hash, SecretKey};

use crate::block::Block;
use crate::state::LedgerState;
use crate::store::BlockStore;
use crate::tx::{Genesis, MemberInfo, Notarization, NotarizedFile, Transaction, TxPayload};
use crate::verify::verify_chain;

/// Deterministic member keys: member `i` has seed `[i + 1; 32]`.
pub fn sample_keys(count: u8) -> Vec<SecretKey> {
    (1..=count)
        .map(|i| SecretKey::from_seed(&[i; 32]))
        .collect()
}

/// A genesis with one member per key, named `member-<i>`.
pub fn sample_genesis(keys: &[SecretKey]) -> Genesis {
    Genesis {
        consortium: "conformance".into(),
        created_ms: 1_700_000_000_000,
        members: keys
            .iter()
            .enumerate()
            .map(|(i, key)| MemberInfo {
                name: format!("member-{i}"),
                public_key: key.public_key(),
                peer_addr: format!("127.0.0.1:{}", 7000 + i),
                api_addr: format!("127.0.0.1:{}", 8000 + i),
            })
            .collect(),
        rules_version: crate::rules_limits::LATEST_RULES,
    }
}

/// A signed Notarize transaction with a single file named after `nonce`.
pub fn sample_notarize(key: &SecretKey, chain_id: &Hash, nonce: u64) -> Transaction {
    let payload = TxPayload::Notarize(Notarization {
        files: vec![NotarizedFile {
            name: format!("file-{nonce}.csv"),
            size: nonce * 10,
            blake3: consort_crypto::hash_domain("sample", &[&nonce.to_be_bytes()]),
        }],
        note: Some(format!("note {nonce}")),
    });
    Transaction::sign(payload, key, chain_id, nonce, 1_700_000_000_000 + nonce)
}

/// Genesis plus `extra_blocks` blocks of `txs_per_block` Notarize transactions each, signed
/// round-robin by the members and proposed round-robin.
pub fn sample_chain(
    members: u8,
    extra_blocks: u64,
    txs_per_block: u64,
) -> (Vec<SecretKey>, Vec<Block>) {
    let keys = sample_keys(members);
    let genesis = sample_genesis(&keys);
    let mut blocks = vec![genesis.block()];
    let Ok(mut state) = LedgerState::from_genesis(&genesis) else {
        panic!("sample genesis must be valid");
    };
    let mut nonce = 0u64;
    for height in 1..=extra_blocks {
        let txs: Vec<Transaction> = (0..txs_per_block)
            .map(|_| {
                nonce += 1;
                let signer = &keys[(nonce as usize) % keys.len()];
                sample_notarize(signer, &state.chain_id(), nonce)
            })
            .collect();
        let proposer = &keys[(height as usize) % keys.len()];
        let block = state.build_block(txs, proposer, 1_700_000_000_000 + height * 1000, &[]);
        if let Err(e) = state.apply_block(&block, true) {
            panic!("sample block {height} must apply: {e}");
        }
        blocks.push(block);
    }
    (keys, blocks)
}

/// Runs every conformance check against fresh stores from `make`.
pub fn run_all<S: BlockStore>(make: impl Fn() -> S) {
    empty_store_has_nothing(&make());
    appended_blocks_read_back(&make());
    append_enforces_next_height(&make());
    stored_chain_verifies(&make());
}

fn empty_store_has_nothing(store: &impl BlockStore) {
    assert_eq!(
        store.height().expect("height"),
        None,
        "empty store has no height"
    );
    assert!(store.block(0).expect("block").is_none());
    assert!(store.raw_block(0).expect("raw_block").is_none());
    assert!(store
        .locate_tx(&Hash([7; 32]))
        .expect("locate_tx")
        .is_none());
    assert!(store.meta("anything").expect("meta").is_none());
}

fn appended_blocks_read_back(store: &impl BlockStore) {
    let (_, blocks) = sample_chain(3, 3, 4);
    for block in &blocks {
        let height = block.header.height.to_be_bytes();
        store
            .append(block, &[("applied", &height), ("fixed", b"x")])
            .expect("append");
        assert_eq!(store.height().expect("height"), Some(block.header.height));
    }
    for block in &blocks {
        let h = block.header.height;
        assert_eq!(
            store.block(h).expect("block").as_ref(),
            Some(block),
            "block {h}"
        );
        assert_eq!(
            store.raw_block(h).expect("raw").as_deref(),
            Some(block.encode().as_slice())
        );
        for (i, tx) in block.txs.iter().enumerate() {
            assert_eq!(
                store.locate_tx(&tx.id()).expect("locate"),
                Some((h, i as u32)),
                "tx {i} of block {h}"
            );
        }
    }
    assert!(store.block(blocks.len() as u64).expect("block").is_none());
    let last = (blocks.len() as u64 - 1).to_be_bytes();
    assert_eq!(
        store.meta("applied").expect("meta").as_deref(),
        Some(last.as_slice())
    );
    assert_eq!(
        store.meta("fixed").expect("meta").as_deref(),
        Some(b"x".as_slice())
    );
}

fn append_enforces_next_height(store: &impl BlockStore) {
    let (_, blocks) = sample_chain(2, 2, 1);
    assert!(
        store.append(&blocks[1], &[]).is_err(),
        "first block must be height 0"
    );
    store
        .append(&blocks[0], &[("m", b"0")])
        .expect("append genesis");
    assert!(
        store.append(&blocks[0], &[("m", b"dup")]).is_err(),
        "duplicate height"
    );
    assert!(store.append(&blocks[2], &[("m", b"gap")]).is_err(), "gap");
    // A refused append leaves nothing behind, including its metadata.
    assert_eq!(store.height().expect("height"), Some(0));
    assert_eq!(
        store.meta("m").expect("meta").as_deref(),
        Some(b"0".as_slice())
    );
    for tx in &blocks[2].txs {
        assert!(store.locate_tx(&tx.id()).expect("locate").is_none());
    }
}

fn stored_chain_verifies(store: &impl BlockStore) {
    let (_, blocks) = sample_chain(3, 4, 3);
    for block in &blocks {
        store.append(block, &[]).expect("append");
    }
    let height = store.height().expect("height").expect("non-empty");
    let report = verify_chain((0..=height).map(|h| {
        store
            .raw_block(h)
            .and_then(|raw| raw.ok_or_else(|| crate::LedgerError::Store(format!("missing {h}"))))
    }))
    .expect("stored chain verifies");
    assert_eq!(report.height, height);
    assert_eq!(Some(report.head_hash), blocks.last().map(Block::hash));
}
