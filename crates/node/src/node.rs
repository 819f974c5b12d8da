//! Running a node: a [`NodeCore`] behind TLS peer links and the HTTP API.
//!
//! [`run`] takes already-bound listeners and a shutdown future, so tests can start nodes
//! in-process as well as through the `consort node run` binary.

mod http;

use std::future::Future;
use std::sync::Arc;

use consort_ledger::{Genesis, LedgerState};
use tokio::net::TcpListener;

use crate::config::MemberDir;
use crate::core::NodeCore;
use crate::error::NodeError;
use crate::peer::server::MemberSources;
use crate::peer::{PeerContext, PeerPool, TrustSet};

pub use crate::core::NodeShared;
pub use http::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS as MAX_API_CONNECTIONS};

/// The largest peer frame: room for an AppendEntries of [`crate::raft::MAX_PAYLOAD_ENTRIES`]
/// full blocks.
pub const PEER_MAX_FRAME: usize = 64 * 1024 * 1024;

/// The sockets a node serves on.
pub struct Listeners {
    pub peer: TcpListener,
    pub api: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the member's config.
    pub async fn bind(peer_addr: &str, api_addr: &str) -> Result<Self, NodeError> {
        let peer = TcpListener::bind(peer_addr)
            .await
            .map_err(|e| NodeError::io(format!("binding the peer address {peer_addr}"), e))?;
        let api = TcpListener::bind(api_addr)
            .await
            .map_err(|e| NodeError::io(format!("binding the API address {api_addr}"), e))?;
        Ok(Self { peer, api })
    }
}

/// Runs the node until `shutdown` completes, then stops cleanly.
pub async fn run(
    dir: &MemberDir,
    genesis: Genesis,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let config = dir.load_config()?;
    let key = Arc::new(dir.load_key()?);
    let token = zeroize::Zeroizing::new(dir.load_token()?);
    let me = key.member_id();
    remember_genesis(dir, &genesis)?;

    let trust = TrustSet::new(Vec::new());
    let peer_context = PeerContext::with_limits(
        &key,
        trust.clone(),
        genesis.chain_id(),
        PEER_MAX_FRAME,
        crate::peer::DEFAULT_HANDSHAKE_TIMEOUT,
    )?;
    let pool = PeerPool::new(peer_context.clone());
    let hook_pool = pool.clone();
    let member_sources = MemberSources::default();
    let hook_sources = member_sources.clone();
    let core = NodeCore::start(
        &config.name,
        key,
        token,
        &genesis,
        &dir.data_dir(),
        Arc::new(pool),
        Box::new(move |state: &LedgerState| {
            sync_peers(state, &trust, &hook_pool, &hook_sources, me)
        }),
    )
    .await?;

    core.shared
        .queries
        .set_database_url(dir.database_url(&config));
    core.shared
        .queries
        .set_commitment_key(dir.commitment_key()?);
    let peer_task = tokio::spawn(crate::peer::server::serve_with_members(
        listeners.peer,
        peer_context,
        core.peer_handler(),
        member_sources,
        core.stopping(),
    ));
    tracing::info!(
        "node {} ({me}) serving peers on {} and the API on {}",
        config.name,
        config.peer_addr,
        config.api_addr
    );
    http::serve(
        listeners.api,
        crate::api::router(core.shared.clone(), config.bench_endpoints),
        http::Limits::default(),
        shutdown,
    )
    .await;
    tracing::info!("node {} shutting down", config.name);
    core.shutdown().await;
    peer_task.abort();
    Ok(())
}

/// Keeps a copy of the genesis in the member directory and refuses to run a directory
/// against a different consortium.
fn remember_genesis(dir: &MemberDir, genesis: &Genesis) -> Result<(), NodeError> {
    let path = dir.genesis_path();
    if path.exists() {
        let stored = crate::config::read_genesis(&path)?;
        if stored.chain_id() != genesis.chain_id() {
            return Err(NodeError::Config(format!(
                "{} belongs to consortium {}, but the given genesis is {}",
                dir.root.display(),
                stored.chain_id(),
                genesis.chain_id()
            )));
        }
        return Ok(());
    }
    let json =
        serde_json::to_string_pretty(genesis).map_err(|e| NodeError::Internal(e.to_string()))?;
    std::fs::write(&path, json + "\n")
        .map_err(|e| NodeError::io(format!("writing {}", path.display()), e))
}

/// Points the TLS trust set, the peer pool and the peer server's member reserve at the
/// ledger's current members.
fn sync_peers(
    state: &LedgerState,
    trust: &TrustSet,
    pool: &PeerPool,
    sources: &MemberSources,
    me: consort_crypto::MemberId,
) {
    trust.replace(state.members().values().map(|m| m.public_key));
    sources.set_addresses(state.members().values().map(|m| m.peer_addr.clone()));
    pool.set_peers(
        state
            .members()
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, m)| (*id, m.peer_addr.clone()))
            .collect(),
    );
}
