//! A compute node killed while a joint query is in flight: the requester fails promptly
//! with an error naming it, nothing is revealed, and the ledger records the failure.
//! (Its own binary: it sets an environment variable the node processes inherit.)

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{binary, consort};
use consort_demo::cluster::LocalCluster;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compute_node_killed_mid_query_fails_it_and_the_failure_is_recorded() {
    // Every node waits this long before its query session, which opens the window.
    std::env::set_var("CONSORT_TEST_SESSION_DELAY_MS", "3000");
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::create(dir.path(), 4, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .unwrap();
    for i in 0..3 {
        let path = dir.path().join(format!("v{i}.csv"));
        consort_demo::visits::write_csv(&path, i, 30, 3, false).unwrap();
        consort_node::datasets::add(
            &cluster.members[i].dir,
            consort_node::datasets::AddRequest {
                name: "visits".into(),
                inputs: vec![path],
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .await
        .unwrap();
        let d = cluster.members[i].dir.root.display().to_string();
        let (code, _, err) = consort(&[
            "--dir",
            &d,
            "grant",
            "visits",
            "--to",
            "*",
            "--columns",
            "region:group,amount:aggregate",
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let client = cluster.members[0].client.clone();
    let asking = tokio::spawn(async move {
        client
            .post_json_waiting(
                "/api/query",
                &json!({ "sql": "SELECT region, SUM(amount) FROM visits GROUP BY region", "timeout_secs": 90 }),
                Duration::from_secs(100),
            )
            .await
    });
    // Wait until every owner approved (the sessions are being held back), then kill a
    // compute node that is not the requester and not the Raft leader.
    let leader = cluster.leader().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (query_id, compute) = loop {
        assert!(
            Instant::now() < deadline,
            "the query never reached the running state"
        );
        let listed = cluster.members[0]
            .client
            .get_json("/api/queries")
            .await
            .unwrap();
        if let Some(q) = listed.as_array().and_then(|l| l.first()) {
            if q["status"] == "running" {
                let id = q["query_id"].as_str().unwrap().to_string();
                let record = cluster.members[0]
                    .client
                    .get_json(&format!("/api/queries/{id}"))
                    .await
                    .unwrap();
                let compute: Vec<String> = record["compute"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                break (id, compute);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim = (1..4)
        .find(|i| *i != leader && compute.contains(&cluster.members[*i].name))
        .expect("a compute node other than the requester and the leader");
    let victim_name = cluster.members[victim].name.clone();
    let killed_at = Instant::now();
    cluster.kill(victim).unwrap();

    let answer = asking.await.unwrap();
    let err = answer.expect_err("the query must fail").to_string();
    assert!(err.contains(&victim_name), "{err}");
    assert!(
        killed_at.elapsed() < Duration::from_secs(60),
        "{:?}",
        killed_at.elapsed()
    );
    let record: Value = cluster.members[0]
        .client
        .get_json(&format!("/api/queries/{query_id}"))
        .await
        .unwrap();
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["result"]["status"], "failed", "{record}");
    assert!(record["result"].get("result_hash").is_none(), "{record}");
}
