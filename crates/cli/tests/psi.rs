//! PSI between two real node processes over their TLS link: the intersection verifies
//! against the plaintext answer on both sides, and a session with the wrong number of
//! parties or a stranger is refused.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_refused, bench_cluster, serial};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn psi_between_two_processes_over_tls_verifies() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = bench_cluster(dir.path(), 3).await;
    for n in [1usize, 2, 1000] {
        let reports = consort_bench::psi::run_session(&cluster, n, 30)
            .await
            .unwrap_or_else(|e| panic!("n={n}: {e}"));
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert_eq!(r["verified"], true, "{r}");
            assert_eq!(r["cardinality"], n / 2, "{r}");
        }
    }
    let ids: Vec<String> = cluster
        .members
        .iter()
        .map(|m| m.dir.load_key().unwrap().member_id().to_string())
        .collect();
    let stranger = consort_crypto::SecretKey::generate()
        .member_id()
        .to_string();
    let client = &cluster.members[0].client;
    let request = |parties: Vec<String>| {
        json!({
            "session": consort_node::mpc::SessionId::random().to_string(),
            "parties": parties, "n": 10, "seed": 1, "timeout_secs": 5,
        })
    };
    let e = client
        .post_json("/api/psi/bench", &request(ids.clone()))
        .await
        .unwrap_err();
    assert_refused(&e, 409, "exactly 2 parties");
    let e = client
        .post_json("/api/psi/bench", &request(vec![ids[0].clone(), stranger]))
        .await
        .unwrap_err();
    assert_refused(&e, 409, "not a current member");
}
