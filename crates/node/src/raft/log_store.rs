//! The Raft log and vote, kept durably in the node's `raft.redb`.
//!
//! Every append is one redb write transaction committed with immediate durability, so the
//! flush callback fires only once the entries are on disk: openraft then counts them toward
//! the commit quorum, which is what keeps an acknowledged block from being lost in a crash.
//! openraft hands over whole batches of entries per append, which gives group commit for free.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, Vote};
use redb::{Database, ReadableTable, TableDefinition};

use super::{storage_err, LogId, NodeId, StorageError, StorageIOError, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE_KEY: &str = "vote";
const PURGED_KEY: &str = "last_purged";
const COMMITTED_KEY: &str = "committed";

type Entry = openraft::Entry<TypeConfig>;

/// A redb-backed Raft log store. Cloning shares the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    storage_err(StorageIOError::read_logs, e)
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    storage_err(StorageIOError::write_logs, e)
}

impl LogStore {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        let Some(value) = table.get(key).map_err(read_err)? else {
            return Ok(None);
        };
        bincode::deserialize(value.value())
            .map(Some)
            .map_err(|e| read_err(*e))
    }

    fn write_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value).map_err(|e| write_err(*e))?;
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(META).map_err(write_err)?;
            table.insert(key, bytes.as_slice()).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let Some((_, value)) = table.last().map_err(read_err)? else {
            return Ok(None);
        };
        let entry: Entry = bincode::deserialize(value.value()).map_err(|e| read_err(*e))?;
        Ok(Some(entry.log_id))
    }

    /// Removes every entry whose index lies in `range`, in one durable transaction.
    fn remove_range(&self, range: impl RangeBounds<u64>) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            let keys: Vec<u64> = table
                .range(range)
                .map_err(write_err)?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(write_err)?;
            for key in keys {
                table.remove(key).map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => Bound::Included(*s),
            Bound::Excluded(s) => Bound::Excluded(*s),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(s) => Bound::Included(*s),
            Bound::Excluded(s) => Bound::Excluded(*s),
            Bound::Unbounded => Bound::Unbounded,
        };
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let mut entries = Vec::new();
        for item in table.range::<u64>((start, end)).map_err(read_err)? {
            let (_, value) = item.map_err(read_err)?;
            entries.push(bincode::deserialize(value.value()).map_err(|e| read_err(*e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> =
            self.read_meta::<Option<LogId>>(PURGED_KEY)?.flatten();
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.write_meta(VOTE_KEY, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(COMMITTED_KEY, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED_KEY)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            for entry in entries {
                let bytes = bincode::serialize(&entry).map_err(|e| write_err(*e))?;
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range(log_id.index..)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_meta(PURGED_KEY, &Some(log_id))?;
        self.remove_range(..=log_id.index)
    }
}
