//! In-memory [`BlockStore`] for tests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use consort_crypto::Hash;

use super::{check_next_height, encode_for_store, BlockStore};
use crate::block::Block;
use crate::error::LedgerError;

#[derive(Debug, Default)]
pub struct MemBlockStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    blocks: Vec<Vec<u8>>,
    tx_index: HashMap<Hash, (u64, u32)>,
    meta: HashMap<String, Vec<u8>>,
}

impl MemBlockStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, LedgerError> {
        self.inner
            .lock()
            .map_err(|_| LedgerError::Store("memory store lock poisoned".into()))
    }

    /// Test hook: replaces the stored bytes of a block, to simulate corruption.
    pub fn overwrite_raw_block(&self, height: u64, bytes: Vec<u8>) -> Result<(), LedgerError> {
        let mut inner = self.lock()?;
        let slot = usize::try_from(height)
            .ok()
            .and_then(|h| inner.blocks.get_mut(h))
            .ok_or_else(|| LedgerError::Store(format!("no block at height {height}")))?;
        *slot = bytes;
        Ok(())
    }
}

impl BlockStore for MemBlockStore {
    fn append(&self, block: &Block, meta: &[(&str, &[u8])]) -> Result<(), LedgerError> {
        let mut inner = self.lock()?;
        let current = inner.blocks.len().checked_sub(1).map(|h| h as u64);
        check_next_height(current, block)?;
        let (bytes, index) = encode_for_store(block);
        inner.blocks.push(bytes);
        for (id, location) in index {
            inner.tx_index.insert(id, location);
        }
        for (key, value) in meta {
            inner.meta.insert((*key).to_owned(), value.to_vec());
        }
        Ok(())
    }

    fn height(&self) -> Result<Option<u64>, LedgerError> {
        Ok(self.lock()?.blocks.len().checked_sub(1).map(|h| h as u64))
    }

    fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        self.raw_block(height)?
            .map(|raw| Block::decode(&raw))
            .transpose()
    }

    fn raw_block(&self, height: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = self.lock()?;
        Ok(usize::try_from(height)
            .ok()
            .and_then(|h| inner.blocks.get(h))
            .cloned())
    }

    fn locate_tx(&self, id: &Hash) -> Result<Option<(u64, u32)>, LedgerError> {
        Ok(self.lock()?.tx_index.get(id).copied())
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.lock()?.meta.get(key).cloned())
    }
}
