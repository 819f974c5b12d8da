//! Submissions survive a leader's death: a follower that cannot reach the leader it knows
//! waits for the next one and forwards there, within the submission's timeout.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{cluster, consort, dir_arg, serial};
use consort_demo::ledger::verify_export_bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notarize_through_a_follower_right_after_the_leader_is_killed() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    let started = Instant::now();
    let mut committed = Vec::new();
    for round in 0..10usize {
        let leader = cluster.leader().await.expect("a leader");
        let via = (leader + 1 + round % 2) % 3;
        let file = root.path().join(format!("round-{round}.txt"));
        std::fs::write(&file, format!("round {round}")).unwrap();
        let args = [
            "--dir".to_string(),
            dir_arg(&cluster, via),
            "notarize".to_string(),
            file.display().to_string(),
            "--json".to_string(),
        ];
        cluster.kill(leader).expect("kill -9 the leader");
        let submitted = Instant::now();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            consort(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let took = submitted.elapsed();
        assert_eq!(
            code, 0,
            "round {round}: notarize through {} after killing {} failed after {took:?}: {out}{err}",
            cluster.members[via].name, cluster.members[leader].name
        );
        let answer: serde_json::Value = serde_json::from_str(&out).expect("JSON answer");
        assert_eq!(answer["status"], "committed", "round {round}: {answer}");
        assert_eq!(answer["valid"], true, "round {round}: {answer}");
        committed.push(answer["tx_id"].as_str().unwrap().to_string());
        eprintln!(
            "round {round}: killed {}, committed through {} in {took:?}",
            cluster.members[leader].name, cluster.members[via].name
        );
        cluster.start(leader).expect("restart");
        cluster
            .wait_ready(leader, Duration::from_secs(30))
            .await
            .expect("the restarted node rejoins");
        cluster
            .wait_converged(Duration::from_secs(30))
            .await
            .expect("all three agree again");
    }

    // Each notarisation is in the chain once, valid, on every node; the chains verify.
    for m in &cluster.members {
        let export = m.client.export().await.unwrap();
        verify_export_bytes(&export).expect("ledger verify passes");
        let mut seen: HashMap<String, Vec<bool>> = HashMap::new();
        for raw in consort_ledger::read_export(&export).expect("export") {
            let block = consort_ledger::Block::decode(&raw).expect("block");
            for (tx, outcome) in block.txs.iter().zip(&block.outcomes) {
                seen.entry(tx.id().to_string())
                    .or_default()
                    .push(matches!(outcome, consort_ledger::TxOutcome::Valid));
            }
        }
        for id in &committed {
            assert_eq!(
                seen.get(id),
                Some(&vec![true]),
                "{id} must be in {}'s chain exactly once, valid",
                m.name
            );
        }
    }
    eprintln!("10 failovers in {:?}", started.elapsed());
}
