//! The peer-link transport (TLS over 127.0.0.1) passes the same conformance suite as the
//! in-memory one.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{hash_domain, SecretKey};
use consort_node::peer::{serve, PeerContext, PeerPool, TrustSet};
use consort_node::transport::conformance::{fixture_handler, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_peer_pool_conforms() {
    let (a, b, absent) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let trust = TrustSet::new([a.public_key(), b.public_key()]);
    let chain_id = hash_domain("transport conformance", &[]);
    let server_ctx = PeerContext::new(&b, trust.clone(), chain_id).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, server_ctx, fixture_handler(), async move {
        let _ = stop_rx.await;
    }));
    let pool = PeerPool::new(PeerContext::new(&a, trust, chain_id).unwrap());
    pool.set_peers(vec![(b.member_id(), addr)]);
    run_all(&pool, b.member_id(), absent.member_id()).await;
    let _ = stop_tx.send(());
    let _ = server.await;
}
