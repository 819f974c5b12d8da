//! The accepting side of peer links: [`serve`] accepts TCP connections, authenticates them
//! (TLS + hello within the handshake timeout), then reads request frames and runs each
//! request on its own task through the [`PeerHandler`], writing responses as they finish.
//!
//! A failing link (refused key, wrong genesis, oversized or malformed frame, EOF mid-frame,
//! a member removed from the trust set) is closed and logged at `warn`; the server keeps
//! accepting.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use consort_crypto::MemberId;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::frame::{read_frame, Message, OutFrame};
use super::link::{accept_authenticated, write_loop, AuthenticatedLink};
use super::{PeerContext, PeerError};

/// Connections still in TLS handshake / hello at once; extra connections are dropped.
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Requests handled concurrently per link; reading pauses (backpressure) beyond this.
const MAX_INFLIGHT_PER_LINK: usize = 1024;
/// Queued outgoing frames per link.
const WRITE_QUEUE: usize = 256;

/// Application handler for requests arriving on peer links.
pub trait PeerHandler: Send + Sync + 'static {
    /// Handles one request body from member `from`; the result is sent back verbatim
    /// (`Err` arrives at the caller as [`PeerError::Remote`]).
    fn handle(&self, from: MemberId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

impl<F, Fut> PeerHandler for F
where
    F: Fn(MemberId, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
{
    fn handle(&self, from: MemberId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        Box::pin(self(from, body))
    }
}

/// Accepts and serves peer links on `listener` until `shutdown` completes; then stops
/// accepting and closes every open link.
pub async fn serve(
    listener: TcpListener,
    ctx: PeerContext,
    handler: Arc<dyn PeerHandler>,
    shutdown: impl Future<Output = ()>,
) {
    let mut links = JoinSet::new();
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                        warn!(peer = %addr, "dropping peer connection from {addr}: too many pending handshakes");
                        continue;
                    };
                    links.spawn(serve_link(ctx.clone(), handler.clone(), tcp, addr, permit));
                }
                Err(e) => {
                    warn!("accepting peer connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
    debug!("peer server shutting down; closing {} links", links.len());
    links.shutdown().await;
}

async fn serve_link(
    ctx: PeerContext,
    handler: Arc<dyn PeerHandler>,
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let mut peer = addr.to_string();
    let accepted = tokio::time::timeout(
        ctx.handshake_timeout(),
        accept_authenticated(&ctx, tcp, &mut peer),
    )
    .await;
    drop(permit);
    let link = match accepted {
        Ok(Ok(link)) => link,
        Ok(Err(e)) => {
            warn!(peer = %peer, "refused peer link from {peer}: {e}");
            return;
        }
        Err(_) => {
            warn!(peer = %peer, "refused peer link from {peer}: handshake not completed within {:?}", ctx.handshake_timeout());
            return;
        }
    };
    let label = link.label.clone();
    debug!(peer = %label, "peer link established");
    match run_link(&ctx, handler, link).await {
        Ok(()) => debug!(peer = %label, "peer closed the link"),
        Err(e) => warn!(peer = %label, "closing peer link {label}: {e}"),
    }
}

async fn run_link(
    ctx: &PeerContext,
    handler: Arc<dyn PeerHandler>,
    link: AuthenticatedLink,
) -> Result<(), PeerError> {
    let max = ctx.max_frame();
    let (mut rd, wr) = tokio::io::split(link.stream);
    let (tx, rx) = mpsc::channel::<OutFrame>(WRITE_QUEUE);
    let (member, key) = (link.member, link.key);
    let reader = async {
        let mut handlers = JoinSet::new();
        let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT_PER_LINK));
        loop {
            let Some(frame) = read_frame(&mut rd, max, ctx.frame_timeout()).await? else {
                return Ok(());
            };
            if !ctx.trust().contains(&key) {
                return Err(PeerError::UnknownPeerKey { key });
            }
            let (id, body) = Message::decode_request(frame, max)?;
            while handlers.try_join_next().is_some() {}
            let Ok(permit) = inflight.clone().acquire_owned().await else {
                return Ok(());
            };
            let fut = handler.handle(member, body);
            let tx = tx.clone();
            handlers.spawn(async move {
                let result = AssertUnwindSafe(fut)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err("request handler panicked".to_string()));
                drop(permit);
                if let Some(frame) = encode_response(id, result, max) {
                    // A closed queue means the link is going away; nothing to report.
                    let _ = tx.send(OutFrame::whole(frame)).await;
                }
            });
        }
    };
    tokio::select! {
        r = reader => r,
        w = write_loop(wr, rx, max) => w,
    }
}

fn encode_response(id: u64, result: Result<Vec<u8>, String>, max: usize) -> Option<Vec<u8>> {
    match (Message::Response { id, result }).encode(max) {
        Ok(frame) => Some(frame),
        Err(e) => {
            warn!("peer response {id} cannot be sent: {e}");
            Message::Response {
                id,
                result: Err(format!("response not sendable: {e}")),
            }
            .encode(max)
            .ok()
        }
    }
}
