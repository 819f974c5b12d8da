//! The node crate's error type.

use crate::peer::PeerError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Ledger(#[from] consort_ledger::LedgerError),
    #[error(transparent)]
    Crypto(#[from] consort_crypto::CryptoError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Data(#[from] consort_data::DataError),
    #[error(transparent)]
    Store(#[from] consort_store::StoreError),
    /// A joint query's planning, protocol or attestation failed.
    #[error(transparent)]
    Query(#[from] consort_query::QueryError),
    /// The member's own database failed at a named step.
    #[error("{context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: consort_store::StoreError,
    },
    #[error("{0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt data directory: {0}")]
    Corrupt(String),
    #[error("the ledger halted: {0}")]
    Halted(String),
    #[error("{0}")]
    NoQuorum(String),
    #[error("{0}")]
    Rejected(String),
    /// The caller's request is malformed or meaningless here (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// A member's policy refused the request (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// Other members failed to complete the work, e.g. an MPC session (HTTP 502).
    #[error("{0}")]
    PeersFailed(String),
    /// No outcome within the time allowed (HTTP 504).
    #[error("{0}")]
    TimedOut(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The API client (`client::ApiClient`) could not reach the node.
    #[error("cannot reach the node at {url}: {reason} (is `consort node run` running?)")]
    Unreachable { url: String, reason: String },
    /// The node's API answered with an error status (the API client's view).
    #[error("{message}")]
    Api { status: u16, message: String },
    /// The node's API answered with something the client cannot read.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
    /// A peer's message that does not decode (names what and why).
    #[error("{0}")]
    Malformed(String),
    /// A peer's message that decodes but is refused here: a limit, or a session it is not
    /// a party of.
    #[error("{0}")]
    PeerRefused(String),
}

impl NodeError {
    pub fn database(context: &'static str) -> impl FnOnce(consort_store::StoreError) -> Self {
        move |source| Self::Database { context, source }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
