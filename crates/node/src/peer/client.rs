//! The connecting side of peer links.
//!
//! A [`PeerClient`] talks to one remote member: it connects lazily (TCP + TLS + hello within
//! the handshake timeout), multiplexes any number of concurrent requests over that single
//! link, and reconnects on the next request after the link died. When a link dies every
//! request in flight on it fails at once with [`PeerError::Disconnected`].
//! A [`PeerPool`] holds one client per member, keyed by [`MemberId`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use consort_crypto::{MemberId, PublicKey};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::frame::{read_frame, Message, OutFrame};
use super::link::{connect_authenticated, write_loop, AuthenticatedLink};
use super::{PeerContext, PeerError};

/// Queued outgoing request frames per link.
const WRITE_QUEUE: usize = 256;

type Waiter = oneshot::Sender<Result<Vec<u8>, String>>;

/// A cheap-clone handle for requests to one remote member (or to whoever answers at an
/// address, see [`PeerClient::to_address`]).
#[derive(Clone)]
pub struct PeerClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    ctx: PeerContext,
    addr: String,
    expected: Option<MemberId>,
    conn: tokio::sync::Mutex<Option<Connection>>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("addr", &self.inner.addr)
            .field("expected", &self.inner.expected)
            .finish_non_exhaustive()
    }
}

impl PeerClient {
    /// A client for member `member` listening at `addr`; the link is refused unless the
    /// peer's certificate key derives `member`.
    pub fn new(ctx: PeerContext, member: MemberId, addr: impl Into<String>) -> Self {
        Self::build(ctx, Some(member), addr.into())
    }

    /// A client for whichever trusted member answers at `addr`.
    pub fn to_address(ctx: PeerContext, addr: impl Into<String>) -> Self {
        Self::build(ctx, None, addr.into())
    }

    fn build(ctx: PeerContext, expected: Option<MemberId>, addr: String) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                ctx,
                addr,
                expected,
                conn: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The peer address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The member this client insists on, if any.
    pub fn expected_member(&self) -> Option<MemberId> {
        self.inner.expected
    }

    /// Ensures a link is up (connecting if needed) and returns the peer's member id.
    pub async fn connect(&self) -> Result<MemberId, PeerError> {
        Ok(self.connection().await?.member)
    }

    /// Closes the current link, if any; the next request reconnects.
    pub async fn disconnect(&self) {
        self.inner.conn.lock().await.take();
    }

    /// Sends `body` and waits for the peer's response, connecting first if needed. The whole
    /// operation (including connecting) is bounded by `timeout`.
    pub async fn request(&self, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, PeerError> {
        let attempt = async {
            let conn = self.connection().await?;
            conn.call(body, self.inner.ctx.max_frame()).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(res) => res,
            Err(_) => Err(PeerError::Timeout { peer: self.label() }),
        }
    }

    fn label(&self) -> String {
        match self.inner.expected {
            Some(m) => format!("{m}@{}", self.inner.addr),
            None => self.inner.addr.clone(),
        }
    }

    async fn connection(&self) -> Result<Connection, PeerError> {
        let inner = &self.inner;
        let mut slot = inner.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            if !conn.shared.is_closed() && inner.ctx.trust().contains(&conn.key) {
                return Ok(conn.clone());
            }
        }
        // Drop a dead link (or one to a key no longer trusted) before reconnecting.
        slot.take();
        let link = connect_authenticated(&inner.ctx, &inner.addr, inner.expected).await?;
        debug!(peer = %link.label, "peer link connected");
        let conn = Connection::start(link, &inner.ctx);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// One established client link: the queue to its writer and the table of waiting requests.
#[derive(Clone)]
struct Connection {
    tx: mpsc::Sender<OutFrame>,
    shared: Arc<Shared>,
    member: MemberId,
    key: PublicKey,
}

struct Shared {
    label: String,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    closed: bool,
    waiters: HashMap<u64, Waiter>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn is_closed(&self) -> bool {
        self.lock().closed
    }
    fn disconnected(&self) -> PeerError {
        PeerError::Disconnected {
            peer: self.label.clone(),
        }
    }
    /// Marks the link dead and drops every waiter, failing their requests immediately.
    fn close(&self) {
        let waiters = {
            let mut p = self.lock();
            p.closed = true;
            std::mem::take(&mut p.waiters)
        };
        drop(waiters);
    }
}

/// Removes a request's waiter when the request finishes or is cancelled (timeout).
struct WaiterGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().waiters.remove(&self.id);
    }
}

impl Connection {
    fn start(link: AuthenticatedLink, ctx: &PeerContext) -> Self {
        let shared = Arc::new(Shared {
            label: link.label.clone(),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Pending::default()),
        });
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let conn = Self {
            tx,
            shared: shared.clone(),
            member: link.member,
            key: link.key,
        };
        let (max, frame_timeout) = (ctx.max_frame(), ctx.frame_timeout());
        tokio::spawn(async move {
            let (mut rd, wr) = tokio::io::split(link.stream);
            let result = tokio::select! {
                r = read_loop(&mut rd, &shared, max, frame_timeout) => r,
                w = write_loop(wr, rx, max) => w,
            };
            shared.close();
            match result {
                Ok(()) => debug!(peer = %shared.label, "peer link closed"),
                Err(e) => warn!(peer = %shared.label, "closing peer link {}: {e}", shared.label),
            }
        });
        conn
    }

    async fn call(&self, body: Vec<u8>, max: usize) -> Result<Vec<u8>, PeerError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = Message::request_frame(id, body, max)?;
        let (wtx, wrx) = oneshot::channel();
        {
            let mut p = self.shared.lock();
            if p.closed {
                return Err(self.shared.disconnected());
            }
            p.waiters.insert(id, wtx);
        }
        let _guard = WaiterGuard {
            shared: &self.shared,
            id,
        };
        if self.tx.send(frame).await.is_err() {
            return Err(self.shared.disconnected());
        }
        match wrx.await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(msg)) => Err(PeerError::Remote(msg)),
            Err(_) => Err(self.shared.disconnected()),
        }
    }
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    shared: &Shared,
    max: usize,
    frame_timeout: Duration,
) -> Result<(), PeerError> {
    loop {
        let Some(frame) = read_frame(rd, max, frame_timeout).await? else {
            return Ok(());
        };
        match Message::decode(&frame, max)? {
            Message::Response { id, result } => {
                let waiter = shared.lock().waiters.remove(&id);
                // No waiter: the request timed out meanwhile; drop the late response.
                if let Some(w) = waiter {
                    let _ = w.send(result);
                }
            }
            Message::Request { id, .. } => {
                return Err(PeerError::Malformed(format!(
                    "unexpected request frame (id {id}) on a client link"
                )))
            }
        }
    }
}

/// One [`PeerClient`] per remote member, replaced wholesale when membership changes.
#[derive(Clone)]
pub struct PeerPool {
    ctx: PeerContext,
    clients: Arc<RwLock<HashMap<MemberId, PeerClient>>>,
}

impl std::fmt::Debug for PeerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPool")
            .field("members", &self.members())
            .finish_non_exhaustive()
    }
}

impl PeerPool {
    /// An empty pool using `ctx` for every link.
    pub fn new(ctx: PeerContext) -> Self {
        Self {
            ctx,
            clients: Arc::default(),
        }
    }

    /// Sets the peers to `(member, address)`. Clients whose address did not change keep
    /// their link; removed members' links close once no request uses them. Our own member
    /// id is skipped.
    pub fn set_peers(&self, peers: Vec<(MemberId, String)>) {
        let me = self.ctx.member_id();
        let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::with_capacity(peers.len());
        for (member, addr) in peers {
            if member == me {
                continue;
            }
            let client = match clients.remove(&member) {
                Some(c) if c.addr() == addr => c,
                _ => PeerClient::new(self.ctx.clone(), member, addr),
            };
            next.insert(member, client);
        }
        *clients = next;
    }

    /// The client for `member`, if it is a configured peer.
    pub fn client(&self, member: &MemberId) -> Option<PeerClient> {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(member)
            .cloned()
    }

    /// The configured peers.
    pub fn members(&self) -> Vec<MemberId> {
        let mut v: Vec<MemberId> = self
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        v.sort();
        v
    }

    /// Sends a request to `member` (see [`PeerClient::request`]).
    pub async fn request(
        &self,
        member: &MemberId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let client = self.client(member).ok_or(PeerError::NoSuchPeer(*member))?;
        client.request(body, timeout).await
    }
}
