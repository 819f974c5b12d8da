//! Peer link tests over real TCP on 127.0.0.1: mutual pinned-key TLS, hello checks,
//! multiplexing, hostile input, vanishing peers and timeouts.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consort_crypto::{Hash, MemberId, PublicKey, SecretKey};
use consort_node::error::NodeError;
use consort_node::peer::{
    connect_authenticated, serve, PeerClient, PeerContext, PeerError, PeerHandler, PeerLimits,
    PeerPool, TrustSet,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const CHAIN: Hash = Hash([7; 32]);
const T: Duration = Duration::from_secs(5);

/// Captures tracing events process-wide so tests can assert that refusals are logged.
mod logcap {
    use std::fmt::Write;
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};

    static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Capture;
    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(event.metadata().level().to_string());
            event.record(&mut line);
            eprintln!("{}", line.0);
            LOGS.lock().unwrap_or_else(|p| p.into_inner()).push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    pub fn install() {
        static ONCE: OnceLock<()> = OnceLock::new();
        ONCE.get_or_init(|| {
            let _ = tracing::subscriber::set_global_default(Capture);
        });
    }

    /// Number of captured lines containing every needle.
    pub fn count(needles: &[&str]) -> usize {
        let logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
        logs.iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits up to 5 s for a captured line containing every needle.
    pub async fn wait_for(needles: &[&str]) -> bool {
        for _ in 0..100 {
            if count(needles) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

struct Node {
    key: SecretKey,
    ctx: PeerContext,
}

impl Node {
    fn new(trusted: &[PublicKey], chain: Hash) -> Self {
        Self::with_key(SecretKey::generate(), trusted, chain, 1 << 20)
    }
    fn with_key(key: SecretKey, trusted: &[PublicKey], chain: Hash, max_frame: usize) -> Self {
        let limits = PeerLimits {
            max_frame,
            ..PeerLimits::default()
        };
        Self::with_limits(key, trusted, chain, limits)
    }
    fn with_limits(key: SecretKey, trusted: &[PublicKey], chain: Hash, limits: PeerLimits) -> Self {
        let trust = TrustSet::new(trusted.iter().copied());
        let ctx = PeerContext::with_peer_limits(&key, trust, chain, limits).expect("context");
        Self { key, ctx }
    }
    fn id(&self) -> MemberId {
        self.key.member_id()
    }
    fn pk(&self) -> PublicKey {
        self.key.public_key()
    }
}

struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    async fn start(ctx: &PeerContext, handler: Arc<dyn PeerHandler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, ctx, handler)
    }
    fn start_on(listener: TcpListener, ctx: &PeerContext, handler: Arc<dyn PeerHandler>) -> Self {
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, ctx.clone(), handler, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            task,
            stop: Some(stop),
        }
    }
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(T, &mut self.task).await;
    }
}

/// Replies `from-member-id || body`, after a small body-dependent delay so that responses
/// come back out of order.
fn echo() -> Arc<dyn PeerHandler> {
    Arc::new(|from: MemberId, body: Vec<u8>| async move {
        let delay = body.first().copied().unwrap_or(0) % 7;
        tokio::time::sleep(Duration::from_millis(delay.into())).await;
        if body == b"fail" {
            return Err(NodeError::PeerRefused("handler says no".into()));
        }
        Ok([from.0.as_slice(), &body].concat())
    })
}

/// Never answers unless the body is "fast".
fn stalling() -> Arc<dyn PeerHandler> {
    Arc::new(|_from: MemberId, body: Vec<u8>| async move {
        if body != b"fast" {
            std::future::pending::<()>().await;
        }
        Ok(body)
    })
}

fn timed<F: Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(10), f)
}

#[tokio::test]
async fn round_trip_and_200_concurrent_requests_on_one_link() {
    logcap::install();
    let (a_key, b_key) = (SecretKey::generate(), SecretKey::generate());
    let keys = [a_key.public_key(), b_key.public_key()];
    let a = Node::with_key(a_key, &keys, CHAIN, 1 << 20);
    let b = Node::with_key(b_key, &keys, CHAIN, 1 << 20);
    let server = Server::start(&a.ctx, echo()).await;

    let client = PeerClient::new(b.ctx.clone(), a.id(), server.addr.to_string());
    assert_eq!(client.connect().await.expect("connect"), a.id());
    let resp = client.request(b"ping".to_vec(), T).await.expect("ping");
    assert_eq!(resp, [b.id().0.as_slice(), b"ping"].concat());
    let err = client.request(b"fail".to_vec(), T).await.unwrap_err();
    assert!(
        matches!(&err, PeerError::Remote(m) if m == "handler says no"),
        "{err}"
    );

    let b_id = b.id();
    let calls = (0u32..200).map(|i| {
        let client = client.clone();
        async move {
            let body = i.to_be_bytes().iter().rev().copied().collect::<Vec<u8>>();
            let resp = client.request(body.clone(), T).await.expect("request");
            assert_eq!(resp, [b_id.0.as_slice(), &body].concat(), "request {i}");
        }
    });
    timed(futures::future::join_all(calls))
        .await
        .expect("all answered");
    // Every request went over the single link opened by connect().
    let established = logcap::count(&["peer link established", &b.id().to_string()]);
    assert_eq!(established, 1);
    server.stop().await;
}

#[tokio::test]
async fn client_key_unknown_to_server_is_refused() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let c_key = SecretKey::generate();
    // The server trusts only itself; the client trusts the server.
    a.ctx.trust().replace([a.pk()]);
    let c = Node::with_key(c_key, &[a.pk()], CHAIN, 1 << 20);
    let server = Server::start(&a.ctx, echo()).await;

    let client = PeerClient::new(c.ctx.clone(), a.id(), server.addr.to_string());
    let err = timed(client.request(b"hi".to_vec(), T))
        .await
        .expect("no hang");
    let err = err.unwrap_err();
    assert!(matches!(err, PeerError::RefusedByPeer { .. }), "{err}");
    let c_hex = c.pk().to_string();
    assert!(logcap::wait_for(&["WARN", "unknown peer key", &c_hex]).await);
    server.stop().await;
}

#[tokio::test]
async fn server_key_unknown_to_client_is_refused() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let c = Node::new(&[], CHAIN);
    a.ctx.trust().replace([a.pk(), c.pk()]);
    c.ctx.trust().replace([c.pk()]);
    let server = Server::start(&a.ctx, echo()).await;

    let err = connect_authenticated(&c.ctx, &server.addr.to_string(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PeerError::UnknownPeerKey { key } if key == a.pk()),
        "{err}"
    );
    assert!(err.to_string().contains("unknown peer key"));
    // The server cannot name the client (it never sent a certificate), only its address.
    assert!(logcap::wait_for(&["WARN", "refused our key", "CertificateUnknown"]).await);
    server.stop().await;
}

#[tokio::test]
async fn key_removed_from_trust_set_cannot_connect_again() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let b = Node::new(&[], CHAIN);
    let keys = [a.pk(), b.pk()];
    a.ctx.trust().replace(keys);
    b.ctx.trust().replace(keys);
    let server = Server::start(&a.ctx, echo()).await;

    let client = PeerClient::new(b.ctx.clone(), a.id(), server.addr.to_string());
    client.request(b"one".to_vec(), T).await.expect("member");

    a.ctx.trust().replace([a.pk()]);
    // The open link is closed at its next request ...
    let err = client.request(b"two".to_vec(), T).await.unwrap_err();
    assert!(matches!(err, PeerError::Disconnected { .. }), "{err}");
    // ... and neither the old client nor a fresh one can reconnect.
    let err = client.request(b"three".to_vec(), T).await.unwrap_err();
    assert!(matches!(err, PeerError::RefusedByPeer { .. }), "{err}");
    let fresh = PeerClient::new(b.ctx.clone(), a.id(), server.addr.to_string());
    let err = fresh.connect().await.unwrap_err();
    assert!(matches!(err, PeerError::RefusedByPeer { .. }), "{err}");

    // Re-adding the key lets it back in immediately.
    a.ctx.trust().replace(keys);
    fresh
        .request(b"four".to_vec(), T)
        .await
        .expect("re-admitted");
    server.stop().await;
}

#[tokio::test]
async fn wrong_chain_id_is_refused_as_different_genesis() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let b = Node::new(&[], Hash([8; 32]));
    a.ctx.trust().replace([a.pk(), b.pk()]);
    b.ctx.trust().replace([a.pk(), b.pk()]);
    let server = Server::start(&a.ctx, echo()).await;

    let client = PeerClient::new(b.ctx.clone(), a.id(), server.addr.to_string());
    let err = client.request(b"hi".to_vec(), T).await.unwrap_err();
    assert!(matches!(err, PeerError::WrongGenesis { .. }), "{err}");
    assert!(err.to_string().contains("different genesis"), "{err}");
    assert!(logcap::wait_for(&["WARN", "different genesis", &b.id().to_string()]).await);
    server.stop().await;
}

#[tokio::test]
async fn expecting_another_member_at_the_address_is_refused() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let b = Node::new(&[], CHAIN);
    let other = SecretKey::generate().member_id();
    a.ctx.trust().replace([a.pk(), b.pk()]);
    b.ctx.trust().replace([a.pk(), b.pk()]);
    let server = Server::start(&a.ctx, echo()).await;

    let addr = server.addr.to_string();
    let err = connect_authenticated(&b.ctx, &addr, Some(other))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PeerError::WrongMember { expected, actual } if expected == other && actual == a.id()),
        "{err}"
    );
    let any = PeerClient::to_address(b.ctx.clone(), addr);
    assert_eq!(any.connect().await.expect("any member"), a.id());
    server.stop().await;
}

/// Reads until EOF or error; true if the link closed within the timeout.
async fn closes<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(T, wait).await.is_ok()
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_only_that_link() {
    logcap::install();
    let a = Node::with_key(SecretKey::generate(), &[], CHAIN, 1024);
    let b = Node::with_key(SecretKey::generate(), &[], CHAIN, 1024);
    a.ctx.trust().replace([a.pk(), b.pk()]);
    b.ctx.trust().replace([a.pk(), b.pk()]);
    let server = Server::start(&a.ctx, echo()).await;
    let addr = server.addr.to_string();

    // Not TLS at all.
    let mut raw = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(closes(&mut raw).await, "non-TLS link not closed");

    // Authenticated, then an oversized length prefix.
    let mut link = connect_authenticated(&b.ctx, &addr, Some(a.id()))
        .await
        .expect("link");
    link.stream
        .write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("write");
    link.stream.flush().await.expect("flush");
    assert!(
        closes(&mut link.stream).await,
        "oversized frame link not closed"
    );
    assert!(logcap::wait_for(&["WARN", "exceeds the maximum of 1024", &b.id().to_string()]).await);

    // Authenticated, then a well-sized frame that is not a message.
    let mut link = connect_authenticated(&b.ctx, &addr, Some(a.id()))
        .await
        .expect("link");
    link.stream
        .write_all(&[0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    link.stream.flush().await.expect("flush");
    assert!(
        closes(&mut link.stream).await,
        "garbage frame link not closed"
    );
    assert!(logcap::wait_for(&["WARN", "undecodable message frame", &b.id().to_string()]).await);

    // Authenticated, then EOF in the middle of a frame.
    let mut link = connect_authenticated(&b.ctx, &addr, Some(a.id()))
        .await
        .expect("link");
    link.stream
        .write_all(&[0, 0, 0, 10, 1, 2, 3])
        .await
        .expect("write");
    link.stream.shutdown().await.expect("shutdown");
    assert!(
        closes(&mut link.stream).await,
        "truncated frame link not closed"
    );

    // The server still serves a well-behaved client; a too-large request fails locally.
    let client = PeerClient::new(b.ctx.clone(), a.id(), addr);
    let resp = client
        .request(b"still here".to_vec(), T)
        .await
        .expect("good client");
    assert!(resp.ends_with(b"still here"));
    let err = client.request(vec![0; 4096], T).await.unwrap_err();
    assert!(
        matches!(err, PeerError::FrameTooLarge { max: 1024, .. }),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test]
async fn silent_and_stalling_clients_are_dropped_after_timeouts() {
    logcap::install();
    let limits = PeerLimits {
        max_frame: 1024,
        handshake_timeout: Duration::from_millis(300),
        frame_timeout: Duration::from_millis(300),
    };
    let a = Node::with_limits(SecretKey::generate(), &[], CHAIN, limits);
    let b = Node::new(&[], CHAIN);
    a.ctx.trust().replace([a.pk(), b.pk()]);
    b.ctx.trust().replace([a.pk(), b.pk()]);
    let server = Server::start(&a.ctx, echo()).await;
    let addr = server.addr.to_string();

    // Connects and says nothing: dropped once the handshake timeout passes.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    let started = Instant::now();
    assert!(closes(&mut silent).await, "silent client not dropped");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(logcap::wait_for(&["WARN", "handshake not completed within 300ms"]).await);

    // Authenticated, idle between frames: kept; then starts a frame and stalls: dropped.
    let mut link = connect_authenticated(&b.ctx, &addr, Some(a.id()))
        .await
        .expect("link");
    let mut buf = [0u8; 16];
    let idle = tokio::time::timeout(Duration::from_millis(800), link.stream.read(&mut buf)).await;
    assert!(idle.is_err(), "idle link was closed");
    link.stream
        .write_all(&[0, 0, 0, 100, 1])
        .await
        .expect("write");
    link.stream.flush().await.expect("flush");
    assert!(
        closes(&mut link.stream).await,
        "stalled frame link not closed"
    );
    assert!(logcap::wait_for(&["WARN", "frame not completed", &b.id().to_string()]).await);
    server.stop().await;
}

#[tokio::test]
async fn vanished_server_fails_pending_requests_promptly_and_client_reconnects() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let b = Node::new(&[], CHAIN);
    a.ctx.trust().replace([a.pk(), b.pk()]);
    b.ctx.trust().replace([a.pk(), b.pk()]);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::start_on(listener, &a.ctx, stalling());

    let client = PeerClient::new(b.ctx.clone(), a.id(), addr.to_string());
    client.connect().await.expect("connect");
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.request(vec![i], Duration::from_secs(30)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.task.abort();
    for p in pending {
        let res = timed(p).await.expect("no hang").expect("join");
        let err = res.unwrap_err();
        assert!(
            matches!(err, PeerError::Disconnected { ref peer } if peer.contains(&a.id().to_string())),
            "{err}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    // While the peer is gone, requests fail fast; once it is back, the client reconnects.
    let err = client.request(b"fast".to_vec(), T).await.unwrap_err();
    assert!(matches!(err, PeerError::Unreachable { .. }), "{err}");
    let listener = TcpListener::bind(addr).await.expect("rebind");
    let server = Server::start_on(listener, &a.ctx, stalling());
    let resp = client
        .request(b"fast".to_vec(), T)
        .await
        .expect("reconnected");
    assert_eq!(resp, b"fast");
    server.stop().await;
}

#[tokio::test]
async fn request_times_out_when_handler_never_answers() {
    logcap::install();
    let a = Node::new(&[], CHAIN);
    let b = Node::new(&[], CHAIN);
    a.ctx.trust().replace([a.pk(), b.pk()]);
    b.ctx.trust().replace([a.pk(), b.pk()]);
    let server = Server::start(&a.ctx, stalling()).await;

    let pool = PeerPool::new(b.ctx.clone());
    pool.set_peers(vec![
        (a.id(), server.addr.to_string()),
        (b.id(), "127.0.0.1:1".to_string()),
    ]);
    assert_eq!(pool.members(), vec![a.id()], "own id skipped");
    let client = pool.client(&a.id()).expect("client");

    let started = Instant::now();
    let err = client
        .request(b"slow".to_vec(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The link survives a timed-out request.
    let resp = pool
        .request(&a.id(), b"fast".to_vec(), T)
        .await
        .expect("fast");
    assert_eq!(resp, b"fast");
    let err = pool.request(&b.id(), b"x".to_vec(), T).await.unwrap_err();
    assert!(matches!(err, PeerError::NoSuchPeer(_)), "{err}");
    server.stop().await;
}
