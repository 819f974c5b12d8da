//! The redb block store (`consort_node::block_store`): the ledger crate's conformance suite,
//! reopening, and on-disk corruption caught by `verify_chain`.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_ledger::conformance::{self, sample_chain};
use consort_ledger::{verify_chain, BlockStore, LedgerError};
use consort_node::block_store::RedbBlockStore;

#[test]
fn conformance_redb_store() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RedbBlockStore::open(&dir.path().join(format!("store-{n}.redb"))).unwrap()
    });
}

fn store_raw_blocks(store: &impl BlockStore) -> Vec<Result<Vec<u8>, LedgerError>> {
    let height = store.height().unwrap().unwrap();
    (0..=height)
        .map(|h| {
            store
                .raw_block(h)
                .and_then(|r| r.ok_or_else(|| LedgerError::Store(format!("missing block {h}"))))
        })
        .collect()
}

#[test]
fn redb_store_survives_reopen_and_catches_disk_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let (_, blocks) = sample_chain(3, 5, 3);
    {
        let store = RedbBlockStore::open(&path).unwrap();
        for block in &blocks {
            store
                .append(block, &[("applied", &block.header.height.to_be_bytes())])
                .unwrap();
        }
    }
    let store = RedbBlockStore::open(&path).unwrap();
    assert_eq!(store.height().unwrap(), Some(5));
    assert_eq!(store.block(3).unwrap().as_ref(), Some(&blocks[3]));
    assert_eq!(
        store.meta("applied").unwrap(),
        Some(5u64.to_be_bytes().to_vec())
    );
    let tx_id = blocks[4].txs[2].id();
    assert_eq!(store.locate_tx(&tx_id).unwrap(), Some((4, 2)));
    verify_chain(store_raw_blocks(&store)).unwrap();

    // Flip one byte inside block 3's transaction area, directly in the redb table.
    let mut bytes = store.raw_block(3).unwrap().unwrap();
    let pos = bytes.len() / 2;
    bytes[pos] ^= 0x04;
    store.overwrite_raw_block(3, &bytes).unwrap();
    drop(store);
    let store = RedbBlockStore::open(&path).unwrap();
    let failure = verify_chain(store_raw_blocks(&store)).unwrap_err();
    assert_eq!(failure.height, 3, "{failure}");
}
