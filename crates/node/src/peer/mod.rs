//! Peer links between consortium members.
//!
//! This module owns the node-to-node transport: mutually authenticated TLS 1.3 links whose
//! peers are identified by pinned Ed25519 member keys (no public CA), a length-prefixed frame
//! codec with a maximum frame size, the application hello that binds a link to one genesis
//! (chain id) and one member id, and multiplexed request/response over a single link.
//! Request and response bodies are opaque bytes to this layer; the node puts Raft RPCs and
//! forwarded transactions in them.
//!
//! - [`trust`]: [`TrustSet`], the shared, live set of member keys allowed to connect.
//! - [`tls`]: certificate generation from the member key and the pinned-key rustls verifiers.
//! - [`frame`]: the frame codec, the [`Hello`](frame::Hello) and the multiplexed message enum.
//! - [`link`]: TLS handshake + hello producing an [`AuthenticatedLink`].
//! - [`server`]: [`serve`], accepting links and dispatching requests to a [`PeerHandler`].
//! - [`client`]: [`PeerClient`] (one remote member, lazy reconnecting) and [`PeerPool`].
//!
//! Every failure caused by a remote peer (bad certificate, unknown key, wrong genesis,
//! oversized or malformed frame, EOF mid-frame) closes only that link and is logged with
//! `tracing` at `warn`, naming the peer and the reason.

pub mod client;
pub mod frame;
pub mod link;
pub mod server;
pub mod tls;
pub mod trust;

use std::sync::Arc;
use std::time::Duration;

use consort_crypto::{Hash, MemberId, PublicKey, SecretKey};

pub use client::{PeerClient, PeerPool};
pub use link::{connect_authenticated, AuthenticatedLink};
pub use server::{serve, PeerHandler};
pub use tls::PeerIdentity;
pub use trust::TrustSet;

/// Version of the peer link protocol carried in the hello.
pub const PROTOCOL_VERSION: u16 = 1;
/// Default maximum frame payload size (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Default time allowed for TCP connect + TLS handshake + hello exchange.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time allowed for the rest of a frame to arrive once its length prefix was read.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(60);
/// TLS server name sent by clients. Peers are verified by pinned key, never by name.
pub const SNI_NAME: &str = "consort-peer";

/// Errors of the peer link layer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Socket-level failure.
    #[error("peer link i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// TLS configuration or handshake failure (including alerts sent by the peer).
    #[error("TLS error: {0}")]
    Tls(String),
    /// A peer's certificate that is not X.509 DER.
    #[error("certificate is not valid X.509 DER")]
    CertNotX509,
    /// A peer's certificate whose subject key is not Ed25519.
    #[error("certificate key is not Ed25519")]
    CertNotEd25519,
    /// Our identity could not be turned into a certificate / TLS configuration.
    #[error("invalid local peer identity: {0}")]
    Identity(String),
    /// The peer presented a key that is not a current consortium member.
    #[error("unknown peer key {key}: not a current consortium member")]
    UnknownPeerKey {
        /// The key presented in the peer's certificate.
        key: PublicKey,
    },
    /// TCP connect to the peer failed.
    #[error("cannot connect to peer {peer}: {source}")]
    Unreachable {
        /// Address of the peer.
        peer: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// No client is configured for this member.
    #[error("no peer link configured for member {0}")]
    NoSuchPeer(MemberId),
    /// The peer refused our certificate (our key is not a member in its view).
    #[error("peer {peer} refused our key ({reason})")]
    RefusedByPeer {
        /// Address or member id of the peer.
        peer: String,
        /// The TLS alert or reason received.
        reason: String,
    },
    /// The peer's hello carries a different chain id.
    #[error("peer runs a different genesis (peer chain id {theirs}, ours {ours})")]
    WrongGenesis {
        /// Our chain id.
        ours: Hash,
        /// The chain id the peer announced.
        theirs: Hash,
    },
    /// We expected a specific member at that address and found another.
    #[error("expected member {expected} but the peer is member {actual}")]
    WrongMember {
        /// The member we meant to reach.
        expected: MemberId,
        /// The member the certificate belongs to.
        actual: MemberId,
    },
    /// The hello was malformed or inconsistent with the certificate.
    #[error("bad hello from peer {peer}: {reason}")]
    BadHello {
        /// Address or member id of the peer.
        peer: String,
        /// What was wrong.
        reason: String,
    },
    /// A frame length exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Announced or requested length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// Undecodable or protocol-violating data (including EOF in the middle of a frame).
    #[error("malformed peer data: {0}")]
    Malformed(String),
    /// Connecting, handshaking or waiting for a response took too long.
    #[error("timed out talking to peer {peer}")]
    Timeout {
        /// Address or member id of the peer.
        peer: String,
    },
    /// The link to the peer closed before the response arrived.
    #[error("link to peer {peer} is disconnected")]
    Disconnected {
        /// Address or member id of the peer.
        peer: String,
    },
    /// The remote handler returned an error.
    #[error("peer returned an error: {0}")]
    Remote(String),
}

/// Size and time limits of peer links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Maximum frame payload size (also bounds bincode allocations).
    pub max_frame: usize,
    /// Time allowed for TCP connect + TLS handshake + hello exchange.
    pub handshake_timeout: Duration,
    /// Time allowed for the rest of a frame once its first byte arrived (idle links between
    /// frames are never timed out).
    pub frame_timeout: Duration,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
        }
    }
}

/// Everything a node needs to run peer links: its TLS identity, the live trust set, the
/// chain id announced in the hello, and limits. Cheap to clone.
#[derive(Clone)]
pub struct PeerContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    identity: PeerIdentity,
    trust: TrustSet,
    chain_id: Hash,
    limits: PeerLimits,
    server_config: Arc<rustls::ServerConfig>,
    client_config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PeerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerContext")
            .field("member_id", &self.inner.identity.member_id())
            .field("chain_id", &self.inner.chain_id)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl PeerContext {
    /// Builds a context with default limits from the member key, the shared trust set and
    /// the chain id (genesis block hash).
    pub fn new(key: &SecretKey, trust: TrustSet, chain_id: Hash) -> Result<Self, PeerError> {
        Self::with_peer_limits(key, trust, chain_id, PeerLimits::default())
    }

    /// Builds a context with an explicit maximum frame size and handshake timeout (other
    /// limits default).
    pub fn with_limits(
        key: &SecretKey,
        trust: TrustSet,
        chain_id: Hash,
        max_frame: usize,
        handshake_timeout: Duration,
    ) -> Result<Self, PeerError> {
        let limits = PeerLimits {
            max_frame,
            handshake_timeout,
            ..PeerLimits::default()
        };
        Self::with_peer_limits(key, trust, chain_id, limits)
    }

    /// Builds a context with every limit explicit.
    pub fn with_peer_limits(
        key: &SecretKey,
        trust: TrustSet,
        chain_id: Hash,
        limits: PeerLimits,
    ) -> Result<Self, PeerError> {
        let identity = PeerIdentity::from_secret_key(key)?;
        let server_config = tls::server_config(&identity, trust.clone())?;
        let client_config = tls::client_config(&identity, trust.clone())?;
        Ok(Self {
            inner: Arc::new(ContextInner {
                identity,
                trust,
                chain_id,
                limits,
                server_config,
                client_config,
            }),
        })
    }

    /// Our TLS identity.
    pub fn identity(&self) -> &PeerIdentity {
        &self.inner.identity
    }
    /// Our member id.
    pub fn member_id(&self) -> MemberId {
        self.inner.identity.member_id()
    }
    /// The live trust set consulted by every handshake.
    pub fn trust(&self) -> &TrustSet {
        &self.inner.trust
    }
    /// The chain id announced and required in hellos.
    pub fn chain_id(&self) -> Hash {
        self.inner.chain_id
    }
    /// The configured limits.
    pub fn limits(&self) -> PeerLimits {
        self.inner.limits
    }
    /// Maximum frame payload size.
    pub fn max_frame(&self) -> usize {
        self.inner.limits.max_frame
    }
    /// Time allowed for connect + TLS handshake + hello.
    pub fn handshake_timeout(&self) -> Duration {
        self.inner.limits.handshake_timeout
    }
    /// Time allowed for the rest of a frame once its first byte arrived.
    pub fn frame_timeout(&self) -> Duration {
        self.inner.limits.frame_timeout
    }
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.inner.server_config.clone()
    }
    pub(crate) fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.inner.client_config.clone()
    }
}
