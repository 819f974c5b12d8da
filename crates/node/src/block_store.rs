//! [`BlockStore`] on redb: crash-safe, every append one durable write transaction. It runs
//! the ledger crate's conformance suite (`tests/block_store.rs`), as `MemBlockStore` does.
//!
//! Tables: `blocks` (u64 height → encoded block), `txindex` (32-byte tx id → 12 bytes:
//! u64 BE height || u32 BE position), `meta` (string key → bytes).

use std::path::Path;

use consort_crypto::Hash;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use consort_ledger::store::{check_next_height, encode_for_store};
use consort_ledger::{Block, BlockStore, LedgerError};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const TX_INDEX: TableDefinition<[u8; 32], [u8; 12]> = TableDefinition::new("txindex");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A block store in one redb database file.
pub struct RedbBlockStore {
    db: Database,
}

impl std::fmt::Debug for RedbBlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBlockStore").finish_non_exhaustive()
    }
}

fn store_err(e: impl Into<redb::Error>) -> LedgerError {
    LedgerError::Store(e.into().to_string())
}

impl RedbBlockStore {
    /// Opens the database at `path`, creating it (and its tables) if needed.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let db = Database::create(path)
            .map_err(|e| LedgerError::Store(format!("{}: {e}", path.display())))?;
        // Create the tables up front so read transactions never see them missing.
        let txn = db.begin_write().map_err(store_err)?;
        txn.open_table(BLOCKS).map_err(store_err)?;
        txn.open_table(TX_INDEX).map_err(store_err)?;
        txn.open_table(META).map_err(store_err)?;
        txn.commit().map_err(store_err)?;
        Ok(RedbBlockStore { db })
    }

    /// Test hook: replaces the stored bytes of a block, to simulate on-disk corruption.
    pub fn overwrite_raw_block(&self, height: u64, bytes: &[u8]) -> Result<(), LedgerError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(store_err)?;
            blocks.insert(height, bytes).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }
}

fn last_height(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Option<u64>, LedgerError> {
    Ok(blocks
        .last()
        .map_err(store_err)?
        .map(|(height, _)| height.value()))
}

impl BlockStore for RedbBlockStore {
    fn append(&self, block: &Block, meta: &[(&str, &[u8])]) -> Result<(), LedgerError> {
        let (bytes, index_entries) = encode_for_store(block);
        let mut txn = self.db.begin_write().map_err(store_err)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(store_err)?;
            check_next_height(last_height(&blocks)?, block)?;
            blocks
                .insert(block.header.height, bytes.as_slice())
                .map_err(store_err)?;
            let mut index = txn.open_table(TX_INDEX).map_err(store_err)?;
            for (id, (height, position)) in index_entries {
                let mut location = [0u8; 12];
                location[..8].copy_from_slice(&height.to_be_bytes());
                location[8..].copy_from_slice(&position.to_be_bytes());
                index.insert(id.0, location).map_err(store_err)?;
            }
            let mut meta_table = txn.open_table(META).map_err(store_err)?;
            for (key, value) in meta {
                meta_table.insert(*key, *value).map_err(store_err)?;
            }
        }
        // Dropping an uncommitted transaction aborts it, so an error above stores nothing.
        txn.commit().map_err(store_err)
    }

    fn height(&self) -> Result<Option<u64>, LedgerError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let blocks = txn.open_table(BLOCKS).map_err(store_err)?;
        if blocks.is_empty().map_err(store_err)? {
            return Ok(None);
        }
        last_height(&blocks)
    }

    fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        self.raw_block(height)?
            .map(|raw| Block::decode(&raw))
            .transpose()
    }

    fn raw_block(&self, height: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let blocks = txn.open_table(BLOCKS).map_err(store_err)?;
        let value = blocks.get(height).map_err(store_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn locate_tx(&self, id: &Hash) -> Result<Option<(u64, u32)>, LedgerError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let index = txn.open_table(TX_INDEX).map_err(store_err)?;
        let Some(location) = index.get(id.0).map_err(store_err)? else {
            return Ok(None);
        };
        let location = location.value();
        let mut height = [0u8; 8];
        let mut position = [0u8; 4];
        height.copy_from_slice(&location[..8]);
        position.copy_from_slice(&location[8..]);
        Ok(Some((
            u64::from_be_bytes(height),
            u32::from_be_bytes(position),
        )))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let meta = txn.open_table(META).map_err(store_err)?;
        let value = meta.get(key).map_err(store_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }
}
