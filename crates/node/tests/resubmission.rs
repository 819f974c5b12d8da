//! The same signed transaction delivered more than once — twice in a batch, or through two
//! nodes at the same time — commits once and every submitter whose copy was taken in is
//! told where; a transaction already in the chain is refused as a replay. A forward whose
//! answer is lost is retried, and the retry's "nonce already used" is recognised as the
//! first copy's commit.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consort_crypto::{Hash, SecretKey};
use consort_ledger::conformance::{sample_genesis, sample_keys, sample_notarize};
use consort_ledger::Genesis;
use consort_node::core::{NodeCore, Refusal, Submitted};
use consort_node::peer::PeerError;
use consort_node::raft::network::{decode, PeerRequest};
use consort_node::transport::{MemHub, Transport};

/// Delivers everything, but loses the answers to the first `lose` forwarded batches, as a
/// leader that crashed or a link that broke after taking them in would.
struct LosesForwardAnswers {
    inner: Arc<dyn Transport>,
    lose: Arc<AtomicUsize>,
}

impl Transport for LosesForwardAnswers {
    fn request(
        &self,
        to: consort_crypto::MemberId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let forward = matches!(decode::<PeerRequest>(&body), Ok(PeerRequest::Forward(_)));
        let lose = forward
            && self
                .lose
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let answer = self.inner.request(to, body, timeout);
        Box::pin(async move {
            let answer = answer.await;
            if lose {
                return Err(PeerError::Disconnected {
                    peer: to.to_string(),
                });
            }
            answer
        })
    }
}

async fn start(
    hub: &Arc<MemHub>,
    key: &SecretKey,
    genesis: &Genesis,
    dir: &std::path::Path,
    lose: Arc<AtomicUsize>,
) -> NodeCore {
    let me = key.member_id();
    let core = NodeCore::start(
        &me.to_string(),
        Arc::new(key.clone()),
        zeroize::Zeroizing::new("t".repeat(40)),
        genesis,
        dir,
        Arc::new(LosesForwardAnswers {
            inner: Arc::new(hub.transport(me)),
            lose,
        }),
        Box::new(|_| {}),
    )
    .await
    .expect("core starts");
    hub.register(me, core.peer_handler());
    core
}

/// The index of the core every core names as leader.
async fn leader(cores: &[NodeCore]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Vec<_> = cores
            .iter()
            .map(|c| c.shared.raft.metrics().borrow().current_leader)
            .collect();
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|s| *s == Some(*l)) {
                if let Some(i) = cores.iter().position(|c| c.shared.me.raft_node_id() == *l) {
                    return i;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times each core's chain holds transaction `id` (any outcome).
fn copies(core: &NodeCore, id: &Hash) -> usize {
    let store = core.shared.chain.store();
    let top = store.height().unwrap().unwrap();
    (0..=top)
        .map(|h| {
            let block = store.block(h).unwrap().unwrap();
            block.txs.iter().filter(|t| t.id() == *id).count()
        })
        .sum()
}

async fn wait_height(cores: &[NodeCore], height: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while cores.iter().any(|c| c.shared.chain.height() < height) {
        assert!(
            Instant::now() < deadline,
            "cores did not reach height {height}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_replay(result: &Result<Submitted, Refusal>) -> bool {
    let code = match result {
        Err(Refusal::Rejected(consort_ledger::LedgerError::Rejected(code, _))) => Some(*code),
        Err(Refusal::RefusedByLeader(refusal)) => refusal.invalid_code(),
        _ => None,
    };
    code == Some(consort_ledger::InvalidCode::ReplayedNonce)
}

fn location(result: &Result<Submitted, Refusal>) -> (u64, u32, bool) {
    match result {
        Ok(Submitted::Committed(c)) => (c.height, c.index, c.valid),
        other => panic!("expected a commit, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_transaction_commit_once() {
    let keys = sample_keys(3);
    let genesis = sample_genesis(&keys);
    let chain_id = genesis.chain_id();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hub = MemHub::new();
    let lose: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut cores = Vec::new();
    for ((key, dir), lose) in keys.iter().zip(&dirs).zip(&lose) {
        cores.push(start(&hub, key, &genesis, dir.path(), lose.clone()).await);
    }
    let lead = leader(&cores).await;
    let follower = (lead + 1) % 3;

    // Committed once; the same bytes again are a replay, through any node.
    let tx = sample_notarize(&keys[0], &chain_id, 1);
    let first = cores[follower]
        .shared
        .submit(vec![tx.clone()], true)
        .await
        .unwrap();
    let (height, _, valid) = location(&first[0]);
    assert!(valid);
    wait_height(&cores, height).await;
    for core in &cores {
        let again = core.shared.submit(vec![tx.clone()], true).await.unwrap();
        assert!(is_replay(&again[0]), "{:?}", again[0]);
    }

    // Twice in one batch, and at the same time through the leader and a follower: one
    // copy in the chain, and every submitter is told where it is.
    let twice = sample_notarize(&keys[1], &chain_id, 2);
    let both = cores[follower]
        .shared
        .submit(vec![twice.clone(), twice.clone()], true)
        .await
        .unwrap();
    assert_eq!(location(&both[0]), location(&both[1]));
    let racing = sample_notarize(&keys[2], &chain_id, 3);
    let (a, b) = tokio::join!(
        cores[lead].shared.submit(vec![racing.clone()], true),
        cores[follower].shared.submit(vec![racing.clone()], true),
    );
    // Whichever copy reaches the leader after the first committed is a replay.
    let (a, b) = (a.unwrap().remove(0), b.unwrap().remove(0));
    match (is_replay(&a), is_replay(&b)) {
        (false, false) => assert_eq!(location(&a), location(&b)),
        (true, false) => assert!(location(&b).2),
        (false, true) => assert!(location(&a).2),
        (true, true) => panic!("neither copy committed: {a:?} {b:?}"),
    }

    // The follower's forward reaches the leader but its answer is lost: the retry finds
    // the transaction taken in (or already committed) and reports its one commit.
    let mut lost = Vec::new();
    for (round, n) in [(4u64, 1usize), (5, 2)] {
        lose[follower].store(n, Ordering::SeqCst);
        let batch: Vec<_> = (0..3)
            .map(|k| sample_notarize(&keys[k], &chain_id, 10 * round + k as u64))
            .collect();
        let results = cores[follower]
            .shared
            .submit(batch.clone(), true)
            .await
            .unwrap();
        for r in &results {
            assert!(location(r).2, "{r:?}");
        }
        assert_eq!(
            lose[follower].load(Ordering::SeqCst),
            0,
            "answers were lost"
        );
        lost.extend(batch.iter().map(|t| t.id()));
    }

    let top = cores.iter().map(|c| c.shared.chain.height()).max().unwrap();
    wait_height(&cores, top).await;
    for core in &cores {
        for id in [tx.id(), twice.id(), racing.id()].iter().chain(&lost) {
            assert_eq!(copies(core, id), 1, "{id}");
        }
    }
    for (core, key) in cores.into_iter().zip(&keys) {
        hub.unregister(&key.member_id());
        core.shutdown().await;
    }
}
