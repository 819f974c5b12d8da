//! The accepting side of peer links: [`serve`] accepts TCP connections, authenticates them
//! (TLS + hello within [`PRE_AUTH_TIMEOUT`]), then reads request frames and runs each
//! request on its own task through the [`PeerHandler`], writing responses as they finish.
//!
//! An anonymous connection holds a socket and a task until it authenticates, so how many
//! may wait, and from where, is bounded ([`admission`]): current members' addresses have a
//! reserve, other sources share a pool with a per-source limit and the heaviest source is
//! evicted first. Refusals of anonymous connections are logged a few in full per interval
//! and otherwise counted into one summary line ([`refusals`]). An authenticated member may
//! hold at most [`MAX_LINKS_PER_MEMBER`] links; a newer one closes its oldest.
//!
//! A failing link (refused key, wrong genesis, oversized or malformed frame, EOF mid-frame,
//! a member removed from the trust set) is closed and logged at `warn`; the server keeps
//! accepting.

mod admission;
pub(crate) mod refusals;

use crate::error::NodeError;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consort_crypto::MemberId;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

pub use admission::{MemberSources, MEMBER_RESERVE, PER_SOURCE_PENDING, SHARED_PENDING};

use self::admission::{Admission, Ticket};
use self::refusals::{RefusalLog, SUMMARY_INTERVAL};
use super::frame::{read_frame, Message, OutFrame};
use super::link::{accept_authenticated, write_loop, AuthenticatedLink};
use super::{PeerContext, PeerError};

/// The longest an anonymous connection may take over its TLS handshake and hello (a
/// shorter handshake timeout in the context wins). A member on any working network needs
/// a few round trips; holding a slot longer only helps someone starving the others.
pub const PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Authenticated links one member may hold at once.
pub const MAX_LINKS_PER_MEMBER: usize = 16;
/// Requests handled concurrently per link; reading pauses (backpressure) beyond this.
const MAX_INFLIGHT_PER_LINK: usize = 1024;
/// Queued outgoing frames per link.
const WRITE_QUEUE: usize = 256;

/// Application handler for requests arriving on peer links.
pub trait PeerHandler: Send + Sync + 'static {
    /// Handles one request body from member `from`; the answer is sent back verbatim, an
    /// error as its one-line message (it arrives at the caller as [`PeerError::Remote`]).
    fn handle(
        &self,
        from: MemberId,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, NodeError>>;
}

impl<F, Fut> PeerHandler for F
where
    F: Fn(MemberId, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, NodeError>> + Send + 'static,
{
    fn handle(
        &self,
        from: MemberId,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, NodeError>> {
        Box::pin(self(from, body))
    }
}

/// Accepts and serves peer links on `listener` until `shutdown` completes; then stops
/// accepting and closes every open link. No source address counts as a member's.
pub async fn serve(
    listener: TcpListener,
    ctx: PeerContext,
    handler: Arc<dyn PeerHandler>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_members(listener, ctx, handler, MemberSources::default(), shutdown).await
}

/// [`serve`], with connections from `members`' addresses served from their own reserve.
pub async fn serve_with_members(
    listener: TcpListener,
    ctx: PeerContext,
    handler: Arc<dyn PeerHandler>,
    members: MemberSources,
    shutdown: impl Future<Output = ()>,
) {
    let mut links = JoinSet::new();
    let admission = Admission::new(members);
    let member_links = Arc::new(MemberLinks::default());
    let log = Arc::new(RefusalLog::new("peer connections"));
    let mut summary = tokio::time::interval(SUMMARY_INTERVAL);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => match admission.admit(addr.ip()) {
                    Ok(ticket) => {
                        let link = serve_link(
                            ctx.clone(),
                            handler.clone(),
                            tcp,
                            addr,
                            ticket,
                            Arc::clone(&log),
                            Arc::clone(&member_links),
                        );
                        links.spawn(link);
                    }
                    Err(refused) => {
                        // A reset instead of a FIN leaves no TIME_WAIT behind per refusal.
                        let _ = tcp.set_zero_linger();
                        drop(tcp);
                        log.refused(refused.reason(), || {
                            format!("refused peer connection from {addr}: {refused}")
                        });
                    }
                },
                Err(e) => {
                    log.refused("failed to accept", || format!("accepting peer connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = summary.tick() => log.flush_if_due(),
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
    mut ticket: Ticket,
    log: Arc<RefusalLog>,
    member_links: Arc<MemberLinks>,
) {
    let mut peer = addr.to_string();
    let limit = ctx.handshake_timeout().min(PRE_AUTH_TIMEOUT);
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(limit, accept_authenticated(&ctx, tcp, &mut peer)) => accepted,
        () = ticket.evicted() => {
            log.refused("evicted for a lighter source", || {
                format!("dropped pending peer connection from {addr}: its slot went to a source holding fewer")
            });
            return;
        }
    };
    drop(ticket);
    let link = match accepted {
        Ok(Ok(link)) => link,
        Ok(Err(e)) => {
            log.refused("failed their handshake", || {
                format!("refused peer link from {peer}: {e}")
            });
            return;
        }
        Err(_) => {
            log.refused("did not finish their handshake in time", || {
                format!("refused peer link from {peer}: handshake not completed within {limit:?}")
            });
            return;
        }
    };
    let label = link.label.clone();
    let (_registered, mut superseded) = member_links.register(link.member);
    debug!(peer = %label, "peer link established");
    tokio::select! {
        result = run_link(&ctx, handler, link) => match result {
            Ok(()) => debug!(peer = %label, "peer closed the link"),
            Err(e) => warn!(peer = %label, "closing peer link {label}: {e}"),
        },
        _ = &mut superseded => warn!(
            peer = %label,
            "closing peer link {label}: the member opened more than {MAX_LINKS_PER_MEMBER} links"
        ),
    }
}

/// The authenticated links open per member, oldest first; dropping a sender closes its
/// link.
#[derive(Default)]
struct MemberLinks {
    state: Mutex<OpenLinks>,
}

#[derive(Default)]
struct OpenLinks {
    next_id: u64,
    by_member: HashMap<MemberId, BTreeMap<u64, oneshot::Sender<()>>>,
}

/// Removes a link from [`MemberLinks`] when it ends.
struct Registered<'a> {
    links: &'a MemberLinks,
    member: MemberId,
    id: u64,
}

impl MemberLinks {
    /// Adds a link of `member`, closing its oldest one if it holds too many; the receiver
    /// completes when this link is closed the same way.
    fn register(&self, member: MemberId) -> (Registered<'_>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = state.next_id;
        state.next_id += 1;
        let open = state.by_member.entry(member).or_default();
        open.insert(id, tx);
        while open.len() > MAX_LINKS_PER_MEMBER {
            open.pop_first();
        }
        let registered = Registered {
            links: self,
            member,
            id,
        };
        (registered, rx)
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut state = self.links.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = state.by_member.get_mut(&self.member) {
            open.remove(&self.id);
            if open.is_empty() {
                state.by_member.remove(&self.member);
            }
        }
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
                // The wire carries an error as its message: the request's answer ends here.
                let result = match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(answer) => answer.map_err(|e| e.to_string()),
                    Err(_) => Err("request handler panicked".to_string()),
                };
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
