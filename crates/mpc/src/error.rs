//! The crate's single error type.
//!
//! Every error that a peer can cause (disconnect, silence, a malformed or inconsistent
//! message) names that peer, so that an operator can tell which compute node failed.

use std::time::Duration;

/// Errors of the MPC engine. Any error leaves the [`crate::Session`] poisoned: the
/// correlated randomness of the parties is then out of step and the session must be
/// discarded (see [`MpcError::Poisoned`]).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MpcError {
    /// The peer closed its link (or its process ended) before the protocol finished.
    #[error("peer {peer} vanished (link closed) in the middle of the protocol")]
    PeerGone {
        /// Human-readable name of the peer (from [`crate::Transport::peer_name`]).
        peer: String,
    },
    /// No message arrived from the peer within the transport's bound.
    #[error("peer {peer} sent nothing for {after:?}")]
    Timeout {
        /// The silent peer.
        peer: String,
        /// How long we waited.
        after: Duration,
    },
    /// A message from the peer has the wrong length or shape.
    #[error("malformed message from peer {peer}: {reason}")]
    Malformed {
        /// The sender of the bad message.
        peer: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The replicated copies of a share disagree: a reveal refused to return a value.
    #[error("share mismatch on reveal: {what}")]
    Mismatch {
        /// Which components disagreed, naming the peers that sent them.
        what: String,
    },
    /// Another party failed and told us why (the reason names the peer at fault).
    #[error("peer {peer} aborted the session: {reason}")]
    Aborted {
        /// The party that sent the abort notice.
        peer: String,
        /// Its error, e.g. "peer m2 vanished …".
        reason: String,
    },
    /// The caller passed arguments the protocol cannot work with (lengths, roles, ranges).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A transport-specific failure that is not one of the above (I/O, framing).
    #[error("transport error with peer {peer}: {reason}")]
    Transport {
        /// The peer involved.
        peer: String,
        /// Implementation-specific description.
        reason: String,
    },
    /// The session failed earlier; its correlated randomness is out of step.
    #[error("session is unusable after an earlier failure: {0}")]
    Poisoned(String),
}

/// Result alias for the crate.
pub type Result<T> = std::result::Result<T, MpcError>;

impl MpcError {
    /// Shorthand for [`MpcError::InvalidArgument`].
    pub(crate) fn arg(msg: impl Into<String>) -> Self {
        MpcError::InvalidArgument(msg.into())
    }
}
