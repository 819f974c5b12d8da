//! openraft's state machine: applies committed block entries to the [`Chain`].
//!
//! The applied-log id and the last membership are stored in the block store's meta table in
//! the same write transaction as each block, so after a crash the node resumes exactly after
//! the last durable block. Logs are never purged (the snapshot policy is `Never`), so
//! followers always catch up by log replication; snapshots are built on request as the full
//! chain, and installing one is refused rather than half-done.

use std::io::Cursor;
use std::sync::Arc;

use consort_ledger::Block;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta};

use super::{
    storage_err, Applied, LogId, StorageError, StorageIOError, StoredMembership, TypeConfig,
};
use crate::chain::Chain;

const APPLIED_KEY: &str = "raft_applied";
const MEMBERSHIP_KEY: &str = "raft_membership";

type Entry = openraft::Entry<TypeConfig>;

pub struct StateMachine {
    chain: Arc<Chain>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

fn sm_read_err(e: impl std::fmt::Display) -> StorageError {
    storage_err(StorageIOError::read_state_machine, e)
}

fn apply_err(e: impl std::fmt::Display) -> StorageError {
    storage_err(StorageIOError::write_state_machine, e)
}

impl StateMachine {
    pub fn new(chain: Arc<Chain>) -> Result<Self, StorageError> {
        let store = chain.store();
        let last_applied = match store.meta(APPLIED_KEY).map_err(sm_read_err)? {
            Some(bytes) => bincode::deserialize(&bytes).map_err(sm_read_err)?,
            None => None,
        };
        let membership = match store.meta(MEMBERSHIP_KEY).map_err(sm_read_err)? {
            Some(bytes) => bincode::deserialize(&bytes).map_err(sm_read_err)?,
            None => StoredMembership::default(),
        };
        Ok(Self {
            chain,
            last_applied,
            membership,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = ChainSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            self.last_applied = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(Applied::default()),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(log_id), membership);
                    results.push(Applied::default());
                }
                EntryPayload::Normal(data) => {
                    let block = Block::decode(&data.block).map_err(apply_err)?;
                    let applied = bincode::serialize(&Some(log_id)).map_err(sm_read_err)?;
                    let membership = bincode::serialize(&self.membership).map_err(sm_read_err)?;
                    let chain = self.chain.clone();
                    let height = block.header.height;
                    // Validation verifies signatures on all cores; keep it off the runtime's
                    // worker threads.
                    tokio::task::spawn_blocking(move || {
                        chain.apply_block(
                            &block,
                            &[
                                (APPLIED_KEY, applied.as_slice()),
                                (MEMBERSHIP_KEY, membership.as_slice()),
                            ],
                        )
                    })
                    .await
                    .map_err(apply_err)?
                    .map_err(apply_err)?;
                    results.push(Applied {
                        height: Some(height),
                    });
                }
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        ChainSnapshotBuilder {
            chain: self.chain.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<super::NodeId, openraft::BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        // Logs are never purged, so a leader never needs to send a snapshot. Refuse instead
        // of replacing a verified chain with unverified bytes.
        Err(storage_err(
            |e| StorageIOError::write_snapshot(None, e),
            "installing snapshots is not supported: consort replicates the full log",
        ))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(None)
    }
}

/// Builds a snapshot holding the whole chain in the export format of docs/FORMAT.md.
pub struct ChainSnapshotBuilder {
    chain: Arc<Chain>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for ChainSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let store = self.chain.store().clone();
        let top = store.height().map_err(sm_read_err)?.unwrap_or(0);
        let mut bytes = Vec::new();
        consort_ledger::write_export(
            &mut bytes,
            (0..=top).map(|h| {
                store.raw_block(h).and_then(|b| {
                    b.ok_or_else(|| {
                        consort_ledger::LedgerError::Store(format!("block {h} missing"))
                    })
                })
            }),
        )
        .map_err(sm_read_err)?;
        let snapshot_id = format!(
            "{}-{}",
            self.last_applied.map(|l| l.index).unwrap_or(0),
            top
        );
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}
