//! The request/response transport between members' nodes, as a trait, so the layers above
//! (Raft's network, transaction forwarding, and later MPC sessions) do not depend on sockets.
//!
//! - [`crate::peer::PeerPool`] is the real implementation: TLS 1.3 links with pinned keys.
//! - [`MemTransport`] delivers requests in memory to handlers registered on a [`MemHub`],
//!   for tests of the layers above.
//! - [`conformance`] is the one suite both must pass.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use consort_crypto::MemberId;
use futures::future::BoxFuture;

use crate::peer::{PeerError, PeerHandler, PeerPool};

/// Sends one request to a member's node and waits, at most `timeout`, for its answer.
/// A remote handler's `Err` comes back as [`PeerError::Remote`]; an unknown member as
/// [`PeerError::NoSuchPeer`]; no answer in time as [`PeerError::Timeout`].
pub trait Transport: Send + Sync + 'static {
    fn request(
        &self,
        to: MemberId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>>;
}

impl Transport for PeerPool {
    fn request(
        &self,
        to: MemberId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let pool = self.clone();
        Box::pin(async move { PeerPool::request(&pool, &to, body, timeout).await })
    }
}

/// Handlers of in-memory nodes, by member.
#[derive(Default)]
pub struct MemHub {
    handlers: RwLock<HashMap<MemberId, Arc<dyn PeerHandler>>>,
}

impl MemHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes `member` reachable, answering with `handler`.
    pub fn register(&self, member: MemberId, handler: Arc<dyn PeerHandler>) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(member, handler);
    }

    /// Takes `member` off the hub, as if its node vanished.
    pub fn unregister(&self, member: &MemberId) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(member);
    }

    /// The transport member `me` sends through.
    pub fn transport(self: &Arc<Self>, me: MemberId) -> MemTransport {
        MemTransport {
            me,
            hub: self.clone(),
        }
    }
}

/// An in-memory [`Transport`] endpoint.
#[derive(Clone)]
pub struct MemTransport {
    me: MemberId,
    hub: Arc<MemHub>,
}

impl Transport for MemTransport {
    fn request(
        &self,
        to: MemberId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let handler = self
            .hub
            .handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&to)
            .cloned();
        let from = self.me;
        Box::pin(async move {
            let handler = handler.ok_or(PeerError::NoSuchPeer(to))?;
            match tokio::time::timeout(timeout, handler.handle(from, body)).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(reason)) => Err(PeerError::Remote(reason.to_string())),
                Err(_) => Err(PeerError::Timeout {
                    peer: to.to_string(),
                }),
            }
        })
    }
}

/// The conformance suite every [`Transport`] passes. The server side must answer with
/// [`conformance::fixture_handler`].
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    // A conformance suite fails by panicking, as tests do.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::error::NodeError;

    /// Echoes `echo:…`, fails on `fail`, never answers `hang`.
    pub fn fixture_handler() -> Arc<dyn PeerHandler> {
        Arc::new(|_from: MemberId, body: Vec<u8>| async move {
            if body == b"fail" {
                return Err(NodeError::PeerRefused("boom".into()));
            }
            if body == b"hang" {
                futures::future::pending::<()>().await;
            }
            match body.strip_prefix(b"echo:") {
                Some(rest) => Ok(rest.to_vec()),
                None => Err(NodeError::PeerRefused("unknown fixture request".into())),
            }
        })
    }

    /// Runs every check against `transport`, whose member `server` answers with the fixture
    /// handler and whose member `absent` does not exist.
    pub async fn run_all(transport: &dyn Transport, server: MemberId, absent: MemberId) {
        let t = Duration::from_secs(5);

        let answer = transport.request(server, b"echo:hello".to_vec(), t).await;
        assert_eq!(answer.expect("echo"), b"hello");

        let big = [b"echo:".to_vec(), vec![7u8; 1 << 20]].concat();
        let answer = transport.request(server, big, t).await.expect("1 MiB echo");
        assert_eq!(answer.len(), 1 << 20);

        match transport.request(server, b"fail".to_vec(), t).await {
            Err(PeerError::Remote(reason)) => assert!(reason.contains("boom"), "{reason}"),
            other => panic!("a handler error must arrive as Remote, got {other:?}"),
        }

        let started = std::time::Instant::now();
        let hung = transport
            .request(server, b"hang".to_vec(), Duration::from_millis(300))
            .await;
        assert!(
            matches!(hung, Err(PeerError::Timeout { .. })),
            "got {hung:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the timeout must bound the wait"
        );

        let many = (0..100u32).map(|i| {
            let body = format!("echo:{i}").into_bytes();
            transport.request(server, body, t)
        });
        for (i, answer) in futures::future::join_all(many)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(answer.expect("concurrent echo"), i.to_string().into_bytes());
        }

        let missing = transport.request(absent, b"echo:x".to_vec(), t).await;
        assert!(
            matches!(missing, Err(PeerError::NoSuchPeer(_))),
            "got {missing:?}"
        );
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[tokio::test]
        async fn mem_transport_conforms() {
            let hub = MemHub::new();
            let (a, b, c) = (MemberId([1; 16]), MemberId([2; 16]), MemberId([3; 16]));
            hub.register(b, fixture_handler());
            run_all(&hub.transport(a), b, c).await;
            hub.unregister(&b);
            let gone = hub
                .transport(a)
                .request(b, b"echo:x".to_vec(), Duration::from_secs(1))
                .await;
            assert!(matches!(gone, Err(PeerError::NoSuchPeer(_))));
        }
    }
}
