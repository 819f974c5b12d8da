//! Block storage: the [`BlockStore`] trait and its in-memory implementation
//! [`MemBlockStore`]. The crash-safe store nodes use (`RedbBlockStore`, on redb) lives in
//! `consort-node`, with the files; every implementation passes the shared suite in
//! [`crate::conformance`], and [`check_next_height`] and [`encode_for_store`] are what an
//! implementation needs from this crate to behave like the others.

mod mem;

pub use self::mem::MemBlockStore;

use consort_crypto::Hash;

use crate::block::Block;
use crate::error::LedgerError;
use crate::tx::EncodedTx;

/// An append-only sequence of blocks (from height 0) with a transaction index and a small
/// key/value area for node metadata.
pub trait BlockStore: Send + Sync {
    /// Atomically stores `block` (which must be the next height: 0 for an empty store), its
    /// transactions' index entries and the `meta` key/values. Durable when it returns.
    fn append(&self, block: &Block, meta: &[(&str, &[u8])]) -> Result<(), LedgerError>;
    /// The height of the last block; `None` if the store is empty (not even genesis).
    fn height(&self) -> Result<Option<u64>, LedgerError>;
    fn block(&self, height: u64) -> Result<Option<Block>, LedgerError>;
    /// The stored bytes of a block exactly as written (`Block::encode`).
    fn raw_block(&self, height: u64) -> Result<Option<Vec<u8>>, LedgerError>;
    /// `(height, index in block)` of a transaction by id.
    fn locate_tx(&self, id: &Hash) -> Result<Option<(u64, u32)>, LedgerError>;
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError>;
}

/// The height a store must receive next, or an error if `block` is not it.
pub fn check_next_height(current: Option<u64>, block: &Block) -> Result<(), LedgerError> {
    let expected = current.map_or(0, |h| h + 1);
    if block.header.height == expected {
        Ok(())
    } else {
        Err(LedgerError::Store(format!(
            "cannot append block at height {}: the next height is {expected}",
            block.header.height
        )))
    }
}

/// A transaction index entry: `(tx id, (height, position in block))`.
pub type TxIndexEntry = (Hash, (u64, u32));

/// The block's encoding and its index entries `(tx id, (height, position))`, encoding each
/// transaction only once.
pub fn encode_for_store(block: &Block) -> (Vec<u8>, Vec<TxIndexEntry>) {
    let encoded: Vec<EncodedTx<'_>> = block.txs.iter().map(EncodedTx::new).collect();
    let index = encoded
        .iter()
        .enumerate()
        .map(|(i, enc)| {
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            (enc.id(), (block.header.height, position))
        })
        .collect();
    let tx_bytes: Vec<Vec<u8>> = encoded.into_iter().map(|enc| enc.bytes).collect();
    (block.encode_with_txs(&tx_bytes), index)
}
