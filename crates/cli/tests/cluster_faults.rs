//! Fault tests on real node processes talking TLS over 127.0.0.1: a leader killed with
//! SIGKILL mid-load, a follower catching up, quorum loss.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{cluster, serial, signed};
use consort_crypto::Hash;
use consort_demo::ledger::verify_export_bytes;

/// Counts, per transaction id, how many times it is in the chain as a valid transaction.
fn valid_occurrences(export: &[u8]) -> HashMap<Hash, usize> {
    let mut seen = HashMap::new();
    for raw in consort_ledger::read_export(export).expect("export") {
        let block = consort_ledger::Block::decode(&raw).expect("block");
        for (tx, outcome) in block.txs.iter().zip(&block.outcomes) {
            if matches!(outcome, consort_ledger::TxOutcome::Valid) {
                *seen.entry(tx.id()).or_insert(0) += 1;
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_mid_load_loses_no_acknowledged_transaction() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    let total = 2000u64;
    let batch = 20u64;
    let mut acknowledged: Vec<Hash> = Vec::new();
    let mut killed = None;
    let mut i = 0u64;
    while i < total {
        // Submit through each node in turn; a batch to a dead node simply fails.
        let target = ((i / batch) % 3) as usize;
        if cluster.is_running(target) {
            let txs: Vec<_> = (i..i + batch)
                .map(|k| signed(&cluster, (k % 3) as usize, k))
                .collect();
            if let Ok(results) = cluster.members[target].client.submit_many(&txs, true).await {
                for (tx, r) in txs.iter().zip(results) {
                    if r["status"] == "committed" {
                        assert_eq!(r["valid"], true, "{r}");
                        acknowledged.push(tx.id());
                    }
                }
            }
        }
        i += batch;
        if i == total / 2 && killed.is_none() {
            let leader = cluster.leader().await.expect("leader");
            cluster.kill(leader).expect("kill -9 the leader");
            killed = Some(leader);
        }
        if i == total * 3 / 4 {
            if let Some(k) = killed {
                cluster.start(k).expect("restart");
            }
        }
    }
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .unwrap();
    // More load after the restart, through the restarted node.
    let restarted = killed.unwrap();
    let txs: Vec<_> = (total..total + 100)
        .map(|k| signed(&cluster, 0, k))
        .collect();
    for (tx, r) in txs.iter().zip(
        cluster.members[restarted]
            .client
            .submit_many(&txs, true)
            .await
            .unwrap(),
    ) {
        assert_eq!(r["status"], "committed", "{r}");
        acknowledged.push(tx.id());
    }
    assert!(
        acknowledged.len() >= 1500,
        "too few acknowledged: {}",
        acknowledged.len()
    );

    let (height, head) = cluster
        .wait_converged(Duration::from_secs(30))
        .await
        .unwrap();
    for m in &cluster.members {
        let status = m.client.status().await.unwrap();
        assert_eq!(status["height"], height);
        assert_eq!(status["head_hash"], head.as_str());
        let export = m.client.export().await.unwrap();
        let report = verify_export_bytes(&export).expect("ledger verify passes");
        assert_eq!(report.head_hash.to_string(), head);
        let seen = valid_occurrences(&export);
        for id in &acknowledged {
            assert_eq!(
                seen.get(id),
                Some(&1),
                "acknowledged tx {id} must be in {}'s chain exactly once",
                m.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_down_for_1000_blocks_catches_up() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    let leader = cluster.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(follower).unwrap();
    let start_height = cluster.members[leader].client.status().await.unwrap()["height"]
        .as_u64()
        .unwrap();
    // One transaction per request, awaited, gives one block each.
    let mut k = 0u64;
    loop {
        let h = cluster.members[leader]
            .client
            .submit(&signed(&cluster, leader, k), true)
            .await
            .unwrap();
        k += 1;
        if h["height"].as_u64().unwrap() >= start_height + 1000 {
            break;
        }
    }
    cluster.start(follower).unwrap();
    let (height, _) = cluster
        .wait_converged(Duration::from_secs(120))
        .await
        .unwrap();
    assert!(height >= start_height + 1000);
    let export = cluster.members[follower].client.export().await.unwrap();
    verify_export_bytes(&export).expect("the caught-up follower's chain verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_down_keeps_committing_two_down_fails_cleanly() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    let leader = cluster.leader().await.unwrap();
    let first = (leader + 1) % 3;
    cluster.kill(first).unwrap();
    let r = cluster.members[leader]
        .client
        .submit(&signed(&cluster, leader, 1), true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed");

    let second = (leader + 2) % 3;
    cluster.kill(second).unwrap();
    let started = Instant::now();
    let err = cluster.members[leader]
        .client
        .submit(&signed(&cluster, leader, 2), true)
        .await
        .expect_err("no quorum: the submission must fail");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded: took {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("not committed") || text.contains("leader") || text.contains("quorum"),
        "clear error, got: {text}"
    );
    // The survivor still answers reads.
    cluster.members[leader].client.status().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_and_sigterm_stop_nodes_cleanly_and_they_resume() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    cluster.members[0]
        .client
        .submit(&signed(&cluster, 0, 1), true)
        .await
        .unwrap();
    cluster
        .interrupt(0)
        .expect("SIGINT: clean exit with status 0");
    cluster.stop(1).expect("SIGTERM: clean exit with status 0");
    cluster.start(0).unwrap();
    cluster.start(1).unwrap();
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .unwrap();
    let r = cluster.members[1]
        .client
        .submit(&signed(&cluster, 1, 2), true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed", "{r}");
    let (height, _) = cluster
        .wait_converged(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(height >= 2);
    let log = std::fs::read_to_string(cluster.log_path(0)).unwrap();
    assert!(log.contains("shutting down"), "{log}");
}
