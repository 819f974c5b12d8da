//! Raft RPCs over the peer links, and the one message enum every peer request uses.

use crate::error::NodeError;
use std::sync::Arc;
use std::time::Duration;

use consort_crypto::MemberId;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::peer::PeerError;
use crate::transport::Transport;

/// Every request one node sends another over a peer link.
#[derive(Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Signed transactions (canonical bytes) a follower passes to the leader's mempool.
    Forward(Vec<Vec<u8>>),
    /// Liveness probe (answered with an empty body), used to pick a query's compute nodes.
    Ping,
    /// A page of one of the receiver's datasets for a member with `plain` on the columns.
    FetchPage(crate::datasets::fetch::PageRequest),
    /// The recipient's confirmation of a whole fetch; the owner records a `DataTransfer`.
    FetchDone(crate::datasets::fetch::DoneRequest),
}

/// The answer to [`PeerRequest::Forward`]: per transaction, accepted or why not.
pub type ForwardResponse = Vec<Result<(), ForwardRefusal>>;

/// Why the leader refused a forwarded transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardRefusal {
    /// The invalid-transaction code (docs/FORMAT.md §4) when the ledger rules refused it.
    pub code: Option<u8>,
    pub reason: String,
}

impl ForwardRefusal {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            code: None,
            reason: reason.into(),
        }
    }

    pub fn from_ledger(e: &consort_ledger::LedgerError) -> Self {
        let code = match e {
            consort_ledger::LedgerError::Rejected(code, _) => Some(code.as_u8()),
            _ => None,
        };
        Self {
            code,
            reason: e.to_string(),
        }
    }

    pub fn invalid_code(&self) -> Option<consort_ledger::InvalidCode> {
        self.code.and_then(consort_ledger::InvalidCode::from_u8)
    }
}

impl std::fmt::Display for ForwardRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, NodeError> {
    bincode::serialize(value)
        .map_err(|e| NodeError::Internal(format!("encoding a peer message failed: {e}")))
}

/// Decodes peer bytes with an allocation limit, so a hostile length prefix cannot make the
/// node allocate more than the frame it already holds.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, NodeError> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(bytes.len() as u64 + 1024)
        .deserialize(bytes)
        .map_err(|e| NodeError::Malformed(format!("malformed peer message: {e}")))
}

/// Maps Raft node ids to the member ids whose links carry them.
pub trait MemberDirectory: Send + Sync + 'static {
    fn member_for_node(&self, node: NodeId) -> Option<MemberId>;
}

pub struct Network {
    transport: Arc<dyn Transport>,
    directory: Arc<dyn MemberDirectory>,
}

impl Network {
    pub fn new(transport: Arc<dyn Transport>, directory: Arc<dyn MemberDirectory>) -> Self {
        Self {
            transport,
            directory,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        PeerConnection {
            target,
            transport: self.transport.clone(),
            directory: self.directory.clone(),
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    transport: Arc<dyn Transport>,
    directory: Arc<dyn MemberDirectory>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerConnection {
    async fn call<T, E>(&self, request: &PeerRequest, timeout: Duration) -> RpcResult<T, E>
    where
        T: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let unreachable = |reason: String| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(reason)))
        };
        let member = self.directory.member_for_node(self.target).ok_or_else(|| {
            unreachable(format!("raft node {} is not a ledger member", self.target))
        })?;
        let body = encode(request).map_err(|e| {
            RPCError::Network(NetworkError::new(&std::io::Error::other(e.to_string())))
        })?;
        let reply = self
            .transport
            .request(member, body, timeout)
            .await
            .map_err(|e| match e {
                PeerError::Remote(reason) => {
                    RPCError::Network(NetworkError::new(&std::io::Error::other(reason)))
                }
                other => unreachable(other.to_string()),
            })?;
        let result: Result<T, RaftError<NodeId, E>> = decode(&reply).map_err(|e| {
            RPCError::Network(NetworkError::new(&std::io::Error::other(e.to_string())))
        })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.call(&PeerRequest::AppendEntries(rpc), option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(&PeerRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(&PeerRequest::Vote(rpc), option.hard_ttl()).await
    }
}
