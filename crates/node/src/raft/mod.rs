//! Raft ordering of ledger blocks with openraft.
//!
//! The Raft log carries whole signed blocks (their canonical bytes). The leader's
//! [`crate::sequencer`] builds each block on top of the state it has applied, so a block is
//! always valid against its predecessor; every node re-validates a block when Raft applies it
//! ([`state_machine`]). The log and vote live in their own redb file ([`log_store`]); RPCs
//! travel over the mutually authenticated peer links ([`network`]).

// openraft's own error types are large; they are returned, not stored, on cold paths.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

/// A log entry's application data: one block in its canonical encoding (docs/FORMAT.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockEntry {
    pub block: Vec<u8>,
}

impl std::fmt::Display for BlockEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockEntry({} bytes)", self.block.len())
    }
}

/// What applying an entry produced: the height of the block it carried, if any.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    pub height: Option<u64>,
}

openraft::declare_raft_types!(
    /// The Raft type configuration of a consort node.
    pub TypeConfig:
        D = BlockEntry,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type StorageIOError = openraft::StorageIOError<NodeId>;

/// Wraps any displayable error as an openraft storage I/O error of the given kind.
pub(crate) fn storage_err(
    make: fn(openraft::AnyError) -> StorageIOError,
    e: impl std::fmt::Display,
) -> StorageError {
    let io = std::io::Error::other(e.to_string());
    StorageError::IO {
        source: make(openraft::AnyError::new(&io)),
    }
}

/// The largest number of entries (blocks) sent in one AppendEntries RPC; with blocks capped
/// at [`crate::sequencer::MAX_BLOCK_TXS`] this keeps every RPC well under the frame limit.
pub const MAX_PAYLOAD_ENTRIES: u64 = 8;

/// Raft timing tuned for a consortium on a LAN or loopback where nodes share few cores:
/// elections must not fire while a busy node is merely slow.
pub fn raft_config(cluster_name: &str) -> Result<openraft::Config, openraft::ConfigError> {
    openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: 150,
        election_timeout_min: 800,
        election_timeout_max: 1600,
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        purge_batch_size: 1,
        ..Default::default()
    }
    .validate()
}
