//! Three node cores wired over the in-memory transport: Raft ordering, forwarding, block
//! validation and durable storage, with no sockets. (The same paths over TLS and real
//! processes are tested in the CLI crate.)

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use consort_crypto::SecretKey;
use consort_ledger::conformance::{sample_genesis, sample_keys, sample_notarize};
use consort_ledger::{BlockStore, Genesis, InvalidCode, LedgerError};
use consort_node::block_store::RedbBlockStore;
use consort_node::core::{NodeCore, Refusal, Submitted};
use consort_node::transport::MemHub;

async fn start(
    hub: &Arc<MemHub>,
    key: &SecretKey,
    genesis: &Genesis,
    dir: &std::path::Path,
) -> NodeCore {
    let me = key.member_id();
    let core = NodeCore::start(
        &me.to_string(),
        Arc::new(key.clone()),
        zeroize::Zeroizing::new("t".repeat(40)),
        genesis,
        dir,
        Arc::new(hub.transport(me)),
        Box::new(|_| {}),
    )
    .await
    .expect("core starts");
    hub.register(me, core.peer_handler());
    core
}

async fn wait_for_leader(cores: &[&NodeCore]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cores
            .iter()
            .all(|c| c.shared.raft.metrics().borrow().current_leader.is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader elected");
}

async fn wait_converged(cores: &[&NodeCore]) -> (u64, consort_crypto::Hash) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let heads: Vec<_> = cores
            .iter()
            .map(|c| c.shared.chain.read(|s| (s.height(), s.head_hash())))
            .collect();
        if heads.iter().all(|h| *h == heads[0]) {
            return heads[0];
        }
        assert!(Instant::now() < deadline, "no convergence: {heads:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three members' cores on one hub, each with its own data directory.
struct Trio {
    keys: Vec<SecretKey>,
    genesis: Genesis,
    dirs: Vec<tempfile::TempDir>,
    hub: Arc<MemHub>,
    cores: Vec<Option<NodeCore>>,
}

async fn trio() -> Trio {
    let keys = sample_keys(3);
    let genesis = sample_genesis(&keys);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hub = MemHub::new();
    let mut cores = Vec::new();
    for (key, dir) in keys.iter().zip(&dirs) {
        cores.push(Some(start(&hub, key, &genesis, dir.path()).await));
    }
    wait_for_leader(&cores.iter().flatten().collect::<Vec<_>>()).await;
    Trio {
        keys,
        genesis,
        dirs,
        hub,
        cores,
    }
}

fn committed_valid(results: Vec<Result<Submitted, Refusal>>) -> usize {
    results
        .into_iter()
        .filter(|r| matches!(r, Ok(Submitted::Committed(c)) if c.valid))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_cores_order_forward_and_agree() {
    let Trio {
        keys,
        genesis,
        dirs,
        hub,
        cores,
    } = trio().await;
    let cores: Vec<NodeCore> = cores.into_iter().flatten().collect();
    let chain_id = genesis.chain_id();

    // Each member submits through its own node; followers forward to the leader.
    for (m, core) in cores.iter().enumerate() {
        let txs: Vec<_> = (0..40)
            .map(|i| sample_notarize(&keys[m], &chain_id, 1000 * m as u64 + i))
            .collect();
        let results = core
            .shared
            .submit(txs, true)
            .await
            .expect("a leader is reachable");
        assert_eq!(committed_valid(results), 40, "member {m}");
    }

    // A forged signature is refused whichever node takes it in, and nothing is recorded.
    for core in &cores {
        let mut forged = sample_notarize(&keys[0], &chain_id, 99_999);
        forged.signature.0[0] ^= 1;
        let mut results = core.shared.submit(vec![forged], true).await.unwrap();
        match results.pop().unwrap() {
            Err(Refusal::Rejected(LedgerError::Rejected(code, _))) => {
                assert_eq!(code, InvalidCode::BadSignature)
            }
            Err(Refusal::RefusedByLeader(refusal)) => {
                assert_eq!(
                    refusal.invalid_code(),
                    Some(InvalidCode::BadSignature),
                    "{refusal}"
                )
            }
            other => panic!("forged signature accepted: {other:?}"),
        }
    }

    let refs: Vec<_> = cores.iter().collect();
    let (height, head) = wait_converged(&refs).await;
    assert!(height >= 1);
    for (core, key) in cores.into_iter().zip(&keys) {
        // The hub holds the node's handler (and through it the chain): drop both.
        hub.unregister(&key.member_id());
        core.shutdown().await;
    }
    // Every node's durable store replays and verifies to the same head.
    for dir in &dirs {
        let store = RedbBlockStore::open(&dir.path().join("blocks.redb")).unwrap();
        let top = store.height().unwrap().unwrap();
        let report = consort_ledger::verify_chain(
            (0..=top).map(|h| Ok(store.raw_block(h).unwrap().unwrap())),
        )
        .unwrap();
        assert_eq!((report.height, report.head_hash), (height, head));
        assert_eq!(report.tx_count, 1 + 120);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_that_vanishes_and_restarts_catches_up() {
    let Trio {
        keys,
        genesis,
        dirs,
        hub,
        mut cores,
    } = trio().await;
    let chain_id = genesis.chain_id();

    // Take one node away: off the hub and shut down.
    let gone = 2;
    hub.unregister(&keys[gone].member_id());
    cores[gone].take().unwrap().shutdown().await;

    let survivors: Vec<&NodeCore> = cores.iter().flatten().collect();
    wait_for_leader(&survivors).await;
    for i in 0..30u64 {
        let results = survivors[(i % 2) as usize]
            .shared
            .submit(vec![sample_notarize(&keys[0], &chain_id, i)], true)
            .await
            .unwrap();
        assert_eq!(committed_valid(results), 1);
    }

    // It comes back from its own data directory and catches up through Raft.
    cores[gone] = Some(start(&hub, &keys[gone], &genesis, dirs[gone].path()).await);
    let all: Vec<&NodeCore> = cores.iter().flatten().collect();
    let (height, _) = wait_converged(&all).await;
    assert!(height >= 30, "height {height}");
    for core in cores.into_iter().flatten() {
        core.shutdown().await;
    }
}
