//! MPC between three real node processes over their TLS peer links: every benchmarked
//! operation verifies against the plaintext answer, a session with a stranger or a bad
//! request is refused, and a party that vanishes mid-protocol makes the others fail
//! promptly with an error naming it.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_refused, bench_cluster, cluster, serial};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_verifies_between_three_processes_over_tls() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = bench_cluster(dir.path(), 3).await;
    for op in consort_node::mpc::bench::OPS {
        for n in [1usize, 1000] {
            let reports = consort_bench::mpc::run_session(&cluster, op, n, 30)
                .await
                .unwrap_or_else(|e| panic!("{op} n={n}: {e}"));
            assert_eq!(reports.len(), 3);
            for (party, report) in reports.iter().enumerate() {
                assert_eq!(report["verified"], true, "{op} n={n}: {report}");
                assert_eq!(report["party"], party, "{report}");
                if op != "sum" && n > 1 {
                    assert!(report["rounds"].as_u64().unwrap() >= 1, "{report}");
                    assert!(report["bytes_sent"].as_u64().unwrap() > 0, "{report}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_with_strangers_or_bad_requests_are_refused() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = bench_cluster(dir.path(), 3).await;
    let ids: Vec<String> = cluster
        .members
        .iter()
        .map(|m| m.dir.load_key().unwrap().member_id().to_string())
        .collect();
    let stranger = consort_crypto::SecretKey::generate()
        .member_id()
        .to_string();
    let client = &cluster.members[0].client;
    let request = |parties: Vec<String>, op: &str, n: usize| {
        json!({
            "session": consort_node::mpc::SessionId::random().to_string(),
            "parties": parties, "op": op, "n": n, "seed": 1, "timeout_secs": 5,
        })
    };
    let cases = [
        (
            request(vec![ids[0].clone(), ids[1].clone(), stranger], "mul", 10),
            409,
            "not a current member",
        ),
        (
            request(vec![ids[0].clone(), ids[1].clone()], "mul", 10),
            409,
            "3 compute parties",
        ),
        (
            request(
                vec![ids[0].clone(), ids[0].clone(), ids[1].clone()],
                "mul",
                10,
            ),
            409,
            "distinct",
        ),
        (
            request(
                vec![ids[1].clone(), ids[2].clone(), ids[1].clone()],
                "mul",
                10,
            ),
            409,
            "distinct",
        ),
        (
            request(ids.clone(), "divide", 10),
            400,
            "unknown mpc operation",
        ),
        (request(ids.clone(), "mul", 0), 400, "n must be"),
        (
            json!({ "session": "xyz", "parties": ids, "op": "mul", "n": 1, "seed": 1 }),
            400,
            "32 hex",
        ),
        (json!({ "op": "mul" }), 400, "invalid mpc benchmark request"),
    ];
    for (body, status, needle) in cases {
        let err = client
            .post_json("/api/mpc/bench", &body)
            .await
            .expect_err("refused");
        assert_refused(&err, status, needle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_vanishing_mid_protocol_fails_the_others_naming_it() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = bench_cluster(dir.path(), 3).await;
    let victim = cluster.members[2].name.clone();
    let pid = cluster.pid(2).expect("node 2 runs");
    let started = Instant::now();
    let session = consort_bench::mpc::party_results(&cluster, "sort", 2_000_000, 20);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    };
    let (results, ()) = tokio::join!(session, kill);
    let results = results.expect("parties asked");
    assert!(results[2].1.is_err(), "the killed node answered");
    // Each survivor fails on its own, with an error that names the vanished party.
    for (name, result) in &results[..2] {
        let err = result
            .as_ref()
            .expect_err("a survivor reported success")
            .to_string();
        assert!(
            err.contains(&victim) && err.contains("MPC session"),
            "{name}'s error does not name {victim}: {err}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the survivors took {:?} to give up",
        started.elapsed()
    );
}

/// The benchmark endpoints start sessions with made-up data for anyone holding the API
/// token, so a node serves them only when its config says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_endpoints_are_off_by_default() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 3).await;
    for path in ["/api/mpc/bench", "/api/psi/bench"] {
        let err = cluster.members[0]
            .client
            .post_json(path, &serde_json::json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("benchmark endpoints are off"), "{path}: {err}");
    }
}
