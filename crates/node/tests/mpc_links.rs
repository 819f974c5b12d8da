//! MPC sessions over real peer links: [`PeerMpcTransport`] between nodes that talk TLS 1.3
//! on 127.0.0.1 passes the MPC transport conformance suite, runs real protocols to a
//! verified result, and keeps members that are not parties of a session out of it.
//!
//! Each test builds its own little cluster: per node a member key, an [`MpcRouter`], a TLS
//! server whose handler routes MPC chunks into that router (as the node's peer service
//! does), and a [`PeerPool`] to the other nodes. The protocol code blocks, so it runs on
//! plain threads; only the links live on the Tokio runtime.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use consort_crypto::{hash_domain, MemberId, SecretKey};
use consort_mpc::{ArithShares, MpcError, Session, Transport};
use consort_node::error::NodeError;
use consort_node::mpc::bench::run_party;
use consort_node::mpc::{wire, MpcRouter, PeerMpcTransport, SessionId};
use consort_node::peer::{serve, PeerContext, PeerHandler, PeerPool, TrustSet};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// One member's node, reduced to what MPC sessions use.
struct Node {
    id: MemberId,
    router: Arc<MpcRouter>,
    pool: Arc<PeerPool>,
    stop: Option<oneshot::Sender<()>>,
}

/// `n` nodes that all trust each other, every pair already connected.
struct Cluster {
    nodes: Vec<Node>,
    // Dropped last: the servers and links run on it.
    runtime: Runtime,
}

/// Answers peer requests the way the node's peer service answers MPC chunks.
fn mpc_handler(router: Arc<MpcRouter>) -> Arc<dyn PeerHandler> {
    Arc::new(move |from: MemberId, body: Vec<u8>| {
        let delivered = if wire::is_chunk(&body) {
            wire::decode_chunk(body)
                .and_then(|chunk| router.deliver(from, chunk))
                .map(|()| Vec::new())
        } else {
            Err(NodeError::PeerRefused(
                "this test node only takes MPC chunks".into(),
            ))
        };
        async move { delivered }
    })
}

impl Cluster {
    fn start(n: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
        let chain = hash_domain("mpc links test", &[]);
        let mut nodes = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for key in &keys {
            let trust = TrustSet::new(keys.iter().map(SecretKey::public_key));
            let ctx = PeerContext::new(key, trust, chain).expect("peer context");
            let router = MpcRouter::new();
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            addrs.push((
                key.member_id(),
                listener.local_addr().expect("addr").to_string(),
            ));
            let (stop, stopped) = oneshot::channel::<()>();
            runtime.spawn(serve(
                listener,
                ctx.clone(),
                mpc_handler(router.clone()),
                async move {
                    let _ = stopped.await;
                },
            ));
            nodes.push(Node {
                id: key.member_id(),
                router,
                pool: Arc::new(PeerPool::new(ctx)),
                stop: Some(stop),
            });
        }
        for node in &nodes {
            node.pool.set_peers(addrs.clone());
        }
        // Open every link now, so that no check's short timeout pays for a TLS handshake.
        runtime.block_on(async {
            for node in &nodes {
                for other in nodes.iter().filter(|o| o.id != node.id) {
                    let client = node.pool.client(&other.id).expect("configured peer");
                    assert_eq!(client.connect().await.expect("connect"), other.id);
                }
            }
        });
        Self { nodes, runtime }
    }

    fn name(&self, i: usize) -> String {
        format!("node{i} ({})", self.nodes[i].id)
    }

    /// Opens node `me`'s end of `session` among the nodes `parties` (indices into the
    /// cluster, in party order).
    fn open(
        &self,
        session: SessionId,
        parties: &[usize],
        me: usize,
        timeout: Duration,
    ) -> Result<PeerMpcTransport, String> {
        let _in_runtime = self.runtime.enter();
        let node = &self.nodes[me];
        PeerMpcTransport::open(
            node.router.clone(),
            node.pool.clone(),
            session,
            parties.iter().map(|&p| self.nodes[p].id).collect(),
            parties.iter().map(|&p| self.name(p)).collect(),
            node.id,
            timeout,
        )
        .map_err(|e| e.to_string())
    }

    /// A fresh session among the first `n` nodes, one transport per party.
    fn network(&self, n: usize, timeout: Duration) -> Vec<Box<dyn Transport>> {
        assert!(
            n <= self.nodes.len(),
            "the cluster has too few nodes for {n}"
        );
        let session = SessionId::random();
        let parties: Vec<usize> = (0..n).collect();
        (0..n)
            .map(|me| {
                let t = self.open(session, &parties, me, timeout).expect("open");
                Box::new(t) as Box<dyn Transport>
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(stop) = node.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

/// Polls `cond` for up to 5 s.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn peer_mpc_transport_over_tls_passes_the_conformance_suite() {
    // The suite asks for networks of 2, 3 and 4 parties; each gets a fresh session on the
    // same four nodes (and the links between them stay open from one network to the next).
    let cluster = Cluster::start(4);
    let started = Instant::now();
    let result = consort_mpc::conformance::run_all(|n, timeout| cluster.network(n, timeout));
    if let Err(failures) = result {
        panic!("PeerMpcTransport over TLS fails the conformance suite:\n{failures}");
    }
    eprintln!("conformance suite over TLS took {:?}", started.elapsed());
    // Every session the suite opened has ended; nothing is left registered.
    assert!(
        cluster
            .nodes
            .iter()
            .all(|n| eventually(|| n.router.session_count() == 0)),
        "sessions left behind: {:?}",
        cluster
            .nodes
            .iter()
            .map(|n| n.router.session_count())
            .collect::<Vec<_>>()
    );
}

#[test]
fn benchmark_protocols_verify_over_tls_links() {
    let cluster = Cluster::start(3);
    for (op, n) in [
        ("mul", 1000),
        ("lt", 100),
        ("sort", 33),
        ("min", 17),
        ("sum", 4),
    ] {
        let started = Instant::now();
        let transports = cluster.network(3, Duration::from_secs(30));
        let parties: Vec<_> = transports
            .into_iter()
            .map(|t| thread::spawn(move || run_party(t, op, n, 11)))
            .collect();
        for (i, party) in parties.into_iter().enumerate() {
            let report = party
                .join()
                .expect("party thread")
                .unwrap_or_else(|e| panic!("{op} n={n}, party {i}: {e}"));
            assert_eq!((report.party, report.n, report.op.as_str()), (i, n, op));
            assert!(report.verified, "{op} n={n}: party {i} did not verify");
            // Only `sum` is local to each party; the others talk to every peer.
            let talked = report.rounds > 0 && report.bytes_sent > 0 && report.messages_sent > 0;
            assert_eq!(talked, op != "sum", "{op} n={n}, party {i}: {report:?}");
        }
        eprintln!("{op} n={n} over TLS took {:?}", started.elapsed());
    }
}

#[test]
fn a_session_runs_only_once_per_node_and_only_with_its_parties() {
    let cluster = Cluster::start(2);
    let t = Duration::from_secs(5);
    let session = SessionId::random();
    let first = cluster.open(session, &[0, 1], 0, t).expect("first open");
    let err = cluster.open(session, &[0, 1], 0, t).err().expect("twice");
    assert!(err.contains("already running"), "{err}");
    // A node not among the parties cannot join.
    let err = cluster.open(SessionId::random(), &[1], 0, t).err();
    assert!(err.expect("not a party").contains("not a party"));
    // Once the session ended here, it is gone, and its id cannot run a second time.
    assert_eq!(first.session(), session);
    drop(first);
    assert_eq!(cluster.nodes[0].router.session_count(), 0);
    let err = cluster.open(session, &[0, 1], 0, t).err().expect("reopen");
    assert!(err.contains("already ran"), "{err}");
}

#[test]
fn a_member_outside_the_session_is_refused_and_never_heard() {
    let cluster = Cluster::start(3);
    let t = Duration::from_secs(5);
    let session = SessionId::random();
    // Nodes 0 and 1 run the session; node 2, a member but no party, claims a place in it.
    let mut p0 = cluster.open(session, &[0, 1], 0, t).expect("party 0");
    let mut p1 = cluster.open(session, &[0, 1], 1, t).expect("party 1");
    let mut intruder = cluster
        .open(session, &[0, 2], 2, t)
        .expect("the intruder's own view of the session");
    intruder.send(0, b"let me in".to_vec()).expect("queued");
    // Node 0's router refuses the chunk; the intruder's link says so into its inbox.
    let started = Instant::now();
    match intruder.recv(0) {
        Err(MpcError::Transport { peer, reason }) => {
            assert_eq!(peer, cluster.name(0));
            assert!(reason.contains("not a party"), "{reason}");
        }
        other => panic!("the intruder's chunk was not refused: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refusal was slow"
    );
    // The parties are unaffected and never see the intruder's message.
    p1.send(0, b"from party 1".to_vec()).expect("send");
    assert_eq!(p0.recv(1).expect("recv"), b"from party 1");
    p0.send(1, b"from party 0".to_vec()).expect("send");
    assert_eq!(p1.recv(0).expect("recv"), b"from party 0");
    match p0.recv(2) {
        Err(MpcError::InvalidArgument(_)) => {}
        other => panic!("a two-party session has no party 2: {other:?}"),
    }
}

#[test]
fn early_chunks_from_a_non_party_are_dropped_when_the_session_starts() {
    let cluster = Cluster::start(3);
    let session = SessionId::random();
    // Node 2 sends before node 0 has started the session: node 0 buffers it ...
    let mut intruder = cluster
        .open(session, &[0, 2], 2, Duration::from_secs(5))
        .expect("intruder");
    intruder
        .send(0, b"early and forged".to_vec())
        .expect("queued");
    assert!(
        eventually(|| cluster.nodes[0].router.session_count() == 1),
        "the early chunk never reached node 0"
    );
    // ... but once node 0 starts it with nodes 0 and 1, that chunk is no party's message.
    let mut p0 = cluster
        .open(session, &[0, 1], 0, Duration::from_millis(300))
        .expect("party 0");
    match p0.recv(1) {
        Err(MpcError::Timeout { peer, .. }) => assert_eq!(peer, cluster.name(1)),
        other => panic!("party 0 read something party 1 never sent: {other:?}"),
    }
    // From now on the intruder is refused outright.
    intruder.send(0, b"again".to_vec()).expect("queued");
    match intruder.recv(0) {
        Err(MpcError::Transport { reason, .. }) => {
            assert!(reason.contains("not a party"), "{reason}")
        }
        other => panic!("the intruder's second chunk was not refused: {other:?}"),
    }
}

#[test]
fn a_vanished_party_is_reported_at_once_and_stays_gone() {
    let cluster = Cluster::start(3);
    let timeout = Duration::from_secs(10);
    let mut ts = cluster.network(3, timeout);
    let mut t2 = ts.pop().expect("party 2");
    t2.send(0, vec![1, 2, 3]).expect("send");
    drop(t2);
    assert_eq!(ts[0].recv(2).expect("sent before leaving"), [1, 2, 3]);
    // Every later wait on the party that left fails at once, not after the timeout: the
    // protocol drains a gone peer's queue looking for an abort notice.
    for attempt in 0..3 {
        let started = Instant::now();
        match ts[0].recv(2) {
            Err(MpcError::PeerGone { peer }) => assert_eq!(peer, cluster.name(2)),
            other => panic!("recv {attempt} from the party that left gave {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "recv {attempt} from the party that left took {:?}",
            started.elapsed()
        );
    }
    // The others still talk.
    ts[1].send(0, vec![4]).expect("send");
    assert_eq!(ts[0].recv(1).expect("recv"), [4]);
}

#[test]
fn survivors_name_a_party_that_vanishes_mid_protocol_before_their_timeout() {
    let cluster = Cluster::start(3);
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    let sessions = cluster.network(3, timeout);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let parties: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let ready = ready_tx.clone();
            thread::spawn(move || -> Result<(), MpcError> {
                let mut session = Session::setup(t, &mut rand::rngs::OsRng)?;
                let _ = ready.send(());
                if i == 2 {
                    // Party 2 leaves right after the key agreement.
                    return Ok(());
                }
                // Multiplying needs one peer, revealing both: each survivor waits on party
                // 2 at some point, or hears from the other survivor that it vanished.
                let x = ArithShares::zeros(8);
                let z = session.mul(&x, &x)?;
                session.reveal_all(&z).map(|_| ())
            })
        })
        .collect();
    drop(ready_tx);
    assert_eq!(ready_rx.iter().count(), 3, "key agreement failed");
    let outcomes: Vec<_> = parties
        .into_iter()
        .map(|p| p.join().expect("party thread"))
        .collect();
    let took = started.elapsed();
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
    let gone = cluster.name(2);
    for (i, outcome) in outcomes.iter().take(2).enumerate() {
        let err = outcome
            .as_ref()
            .expect_err("a survivor finished without party 2");
        assert!(
            err.to_string().contains(&gone),
            "party {i} does not name {gone}: {err}"
        );
    }
    assert!(
        took < timeout / 2,
        "the survivors needed {took:?} (timeout {timeout:?}) to notice"
    );
}
