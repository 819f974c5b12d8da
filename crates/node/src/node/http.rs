//! Serving the HTTP API with bounds that `axum::serve` cannot set.
//!
//! Every accepted connection holds a socket, a task and hyper's read buffer, so they are
//! bounded in number ([`MAX_CONNECTIONS`]), in the time a request head may take (which is
//! also how long a keep-alive connection may sit idle, [`HEADER_READ_TIMEOUT`]), in the
//! time a request body may take ([`BODY_READ_TIMEOUT`], answered 408) and in buffer size.
//! When every slot is taken, a new connection closes the oldest one that is between
//! requests, so half-written heads cannot lock callers out; if every connection is busy
//! with a request the new one is closed at once. Those refusals are counted into a periodic
//! summary line.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::api::ApiError;
use crate::peer::server::refusals::{RefusalLog, SUMMARY_INTERVAL};

/// Open API connections at most.
pub const MAX_CONNECTIONS: usize = 256;
/// Time allowed for a whole request head, counted from when the connection starts waiting
/// for one (so it also closes idle keep-alive connections).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole request body once its head arrived: the largest body
/// ([`crate::api::MAX_BODY`], 32 MiB) at about 0.56 MB/s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// hyper's per-connection read buffer, which also caps a request head.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The bounds of one API server (tests shrink them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in progress
/// finish (for a bounded time).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let table = Arc::new(Table {
        max: limits.max_connections,
        state: Mutex::default(),
    });
    let log = RefusalLog::new("API connections");
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut summary = tokio::time::interval(SUMMARY_INTERVAL);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => match table.admit() {
                    Some((slot, evicted)) => {
                        if evicted {
                            log.refused("idle connections closed to make room", || {
                                format!("closed an idle API connection to admit {addr}: {} are open", limits.max_connections)
                            });
                        }
                        let connection =
                            serve_connection(tcp, router.clone(), limits, slot, stopping.clone());
                        connections.spawn(connection);
                    }
                    None => {
                        let _ = tcp.set_zero_linger();
                        drop(tcp);
                        log.refused("refused with every connection busy", || {
                            format!("refused API connection from {addr}: all {} connections are busy", limits.max_connections)
                        });
                    }
                },
                Err(e) => {
                    log.refused("failed to accept", || format!("accepting an API connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = summary.tick() => log.flush_if_due(),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
}

async fn serve_connection(
    tcp: TcpStream,
    router: Router,
    limits: Limits,
    mut slot: Slot,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let service = Tracked {
        router: TowerToHyperService::new(router),
        busy: Arc::clone(&slot.busy),
        body_timeout: limits.body_read_timeout,
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    let busy = Arc::clone(&slot.busy);
    tokio::select! {
        // Errors here are the client's (a reset, a head too slow or malformed); hyper has
        // answered what deserved an answer.
        _ = connection.as_mut() => return,
        // The table picked this connection while it was idle, but a request may have begun
        // since. Requests only begin while this task polls the connection, so the count
        // read here is exact: an idle connection closes now, a busy one after its answer.
        () = slot.evicted() => if busy.load(Ordering::Acquire) == 0 {
            return;
        },
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// The open connections, oldest first, and whether each is in a request.
struct Table {
    max: usize,
    state: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    entries: BTreeMap<u64, Conn>,
}

struct Conn {
    busy: Arc<AtomicU32>,
    /// Dropped to close the connection.
    _evict: oneshot::Sender<()>,
}

/// A connection's place in the [`Table`], given back when dropped.
struct Slot {
    table: Arc<Table>,
    id: u64,
    busy: Arc<AtomicU32>,
    evicted: oneshot::Receiver<()>,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, Open> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection, and whether an idle one was closed for it.
    fn admit(self: &Arc<Self>) -> Option<(Slot, bool)> {
        let mut state = self.lock();
        let mut evicted = false;
        if state.entries.len() >= self.max {
            let idle = state
                .entries
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)?;
            state.entries.remove(&idle);
            evicted = true;
        }
        let id = state.next_id;
        state.next_id += 1;
        let (tx, rx) = oneshot::channel();
        let busy = Arc::new(AtomicU32::new(0));
        let conn = Conn {
            busy: Arc::clone(&busy),
            _evict: tx,
        };
        state.entries.insert(id, conn);
        let slot = Slot {
            table: Arc::clone(self),
            id,
            busy,
            evicted: rx,
        };
        Some((slot, evicted))
    }
}

impl Slot {
    async fn evicted(&mut self) {
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.lock().entries.remove(&self.id);
    }
}

/// Marks a connection as in a request from the request head until the response body is
/// sent or dropped, so that it is never closed to make room.
struct Busy(Arc<AtomicU32>);

impl Busy {
    fn new(busy: &Arc<AtomicU32>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(busy))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router behind the body deadline, tracking whether its connection is busy.
#[derive(Clone)]
struct Tracked {
    router: TowerToHyperService<Router>,
    busy: Arc<AtomicU32>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Tracking>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy::new(&self.busy);
        let timed_out = Arc::new(AtomicBool::new(false));
        let request = request.map(|body| Deadline {
            body,
            at: tokio::time::Instant::now() + self.body_timeout,
            sleep: None,
            timed_out: Arc::clone(&timed_out),
        });
        let response = hyper::service::Service::call(&self.router, request);
        let limit = self.body_timeout;
        Box::pin(async move {
            let Ok(mut response) = response.await;
            if timed_out.load(Ordering::Relaxed) {
                response = body_timeout(limit);
            }
            Ok(response.map(|body| Tracking { body, _busy: busy }))
        })
    }
}

/// The answer to a body that did not arrive in time, whatever the handler made of the
/// failed read; the connection closes since the rest of the body may still come.
fn body_timeout(limit: Duration) -> Response<Body> {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body did not arrive within {limit:?}"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline passed.
struct Deadline {
    body: Incoming,
    at: tokio::time::Instant,
    /// Armed on the first read, so bodiless requests never touch the timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let at = this.at;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err("request body read timed out".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its connection marked busy until it is sent.
struct Tracking {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracking {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const LIMITS: Limits = Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
    };

    /// A server whose `/slow` answers only once the returned gate is opened, so tests do
    /// not race a timer on a loaded machine.
    async fn start() -> (SocketAddr, watch::Sender<bool>) {
        let (gate, opened) = watch::channel(false);
        let router = Router::new()
            .route(
                "/len",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/slow",
                get(move || {
                    let mut opened = opened.clone();
                    async move {
                        let _ = opened.wait_for(|open| *open).await;
                        "done"
                    }
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, LIMITS, std::future::pending()));
        (addr, gate)
    }

    /// Everything the server sends until it closes the connection.
    async fn answer(tcp: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out));
        let _ = read.await.expect("the server closes the connection");
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        tcp
    }

    #[tokio::test]
    async fn a_stalled_body_is_answered_408_and_a_stalled_head_is_closed() {
        let (addr, _gate) = start().await;
        let head = b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab";
        let started = Instant::now();
        let text = answer(&mut send(addr, head).await).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"error\""), "{text}");
        assert!(started.elapsed() >= LIMITS.body_read_timeout);

        let started = Instant::now();
        let text = answer(&mut send(addr, b"GET /len HTTP/1.1\r\nHost: x\r\n").await).await;
        assert!(!text.starts_with("HTTP/1.1 2"), "{text}");
        assert!(started.elapsed() >= LIMITS.header_read_timeout);

        let whole =
            b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab";
        let text = answer(&mut send(addr, whole).await).await;
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn at_the_cap_idle_connections_make_room_and_busy_ones_do_not() {
        let (addr, gate) = start().await;
        let mut idle = Vec::new();
        for _ in 0..LIMITS.max_connections {
            idle.push(send(addr, b"GET /len HTTP/1.1\r\n").await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let request = b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut slow = Vec::new();
        for _ in 0..LIMITS.max_connections {
            slow.push(send(addr, request).await);
        }
        // Each slow request took the place of a half-written head, oldest first.
        for tcp in &mut idle {
            let started = Instant::now();
            answer(tcp).await;
            assert!(started.elapsed() < LIMITS.header_read_timeout);
        }
        // Every connection is busy now (the gate is shut): one more is closed, unanswered.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = answer(&mut send(addr, request).await).await;
        assert!(text.is_empty(), "{text}");
        gate.send(true).unwrap();
        for tcp in &mut slow {
            let text = answer(tcp).await;
            assert!(
                text.starts_with("HTTP/1.1 200") && text.ends_with("done"),
                "{text}"
            );
        }
    }
}
