//! Hostile SQL against real nodes (issue 15): a member's signed `QueryRequest` or an API call
//! with SQL built to overflow a stack never takes a node down. The request is refused with
//! its reason, on the ledger where it was recorded, and the nodes stay up.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{binary, consort, serial};
use consort_crypto::{Hash, MemberId};
use consort_demo::cluster::LocalCluster;
use consort_ledger::policy::{DatasetRef, QueryRequest};
use consort_ledger::{Transaction, TxPayload};
use consort_node::client::ApiClient;
use consort_node::error::NodeError as ClientError;
use serde_json::{json, Value};

/// The 65 KB `1+1+…` chain of the original finding.
fn plus_chain(dataset: &str) -> String {
    let head = format!("SELECT COUNT(*) FROM {dataset} WHERE age > 1");
    head.clone() + &"+1".repeat((65_536 - head.len()) / 2)
}

/// 10,000 `age > 1 AND` terms.
fn and_chain(dataset: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM {dataset} WHERE {}",
        vec!["age > 1"; 10_000].join(" AND ")
    )
}

fn extract_fixture(root: &Path) {
    let archive = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hostile-v1.tar.gz");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(archive)
        .arg("-C")
        .arg(root)
        .status()
        .expect("run tar");
    assert!(status.success(), "extracting {archive}");
}

async fn query_view(client: &ApiClient, id: &str) -> Value {
    client
        .get_json(&format!("/api/queries/{id}"))
        .await
        .unwrap_or(Value::Null)
}

/// Waits until `pred` holds for query `id` as `client`'s node sees it.
async fn wait_query(client: &ApiClient, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = query_view(client, id).await;
        if pred(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "query {id} never got there: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_all_running(cluster: &mut LocalCluster) {
    for i in 0..cluster.members.len() {
        assert!(
            cluster.is_alive(i),
            "{} died; its log: {}",
            cluster.members[i].name,
            std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default()
        );
    }
}

/// The fixture chain was made by the build before this fix: beta's hostile request is
/// committed valid under rule version 1, and alpha, its dataset's owner, crashed on it and
/// crashed again on every restart. This build starts on it, refuses the request on the
/// ledger, keeps running, and still verifies the whole chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_start_on_the_hostile_fixture_chain_and_refuse_the_old_request() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    extract_fixture(root.path());
    let mut cluster =
        LocalCluster::open(root.path(), &["alpha", "beta", "gamma"], &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .expect("the nodes come up on the fixture chain");
    let beta = cluster.members[1].client.clone();
    let queries = beta.get_json("/api/queries").await.unwrap();
    let hostile = queries
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["sql"].as_str().is_some_and(|s| s.len() > 60_000))
        .expect("the fixture holds the hostile request")["query_id"]
        .as_str()
        .unwrap()
        .to_string();
    let view = wait_query(&beta, &hostile, |v| v["status"] == "refused").await;
    let reason = view["decisions"][0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("too complex"), "{reason}");
    assert!(reason.len() <= consort_ledger::rules_limits::MAX_TEXT_BYTES);

    // Still up a while later, and every ledger verifies from genesis (the old request's
    // outcome as recorded under rule version 1 included).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_all_running(&mut cluster);
    cluster
        .wait_converged(Duration::from_secs(20))
        .await
        .unwrap();
    for member in &cluster.members {
        let report = member.client.verify().await.unwrap();
        assert_eq!(report["ok"], true, "{report}");
    }
    let status = beta.status().await.unwrap();
    assert_eq!(status["rules_version"], 1, "{status}");

    // A majority moves the chain to the newest rule version with the member proposal commands;
    // from then on the ledger itself refuses such a request.
    let proposal = root.path().join("rules.json");
    let dir = |i: usize| cluster.members[i].dir.root.display().to_string();
    let p = proposal.display().to_string();
    let (code, out, err) = consort(&["--dir", &dir(0), "member", "propose-rules", "--out", &p]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = consort(&["--dir", &dir(1), "member", "approve", &p]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = consort(&["--dir", &dir(2), "member", "submit", &p]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("RulesUpgrade"), "{out}");
    let status = beta.status().await.unwrap();
    assert_eq!(
        status["rules_version"],
        consort_ledger::rules_limits::LATEST_RULES,
        "{status}"
    );

    // A member that bypasses its own node's intake checks cannot get it recorded either:
    // the leader's intake refuses it, and so would block validation.
    let tx = hostile_request(&cluster, 1, &plus_chain("visits")).await;
    let err = beta.submit(&tx, true).await.unwrap_err();
    assert_bad_request(&err, "tokens");
    assert_all_running(&mut cluster);
}

/// A `QueryRequest` signed by member `signer` over the first catalog dataset.
async fn hostile_request(cluster: &LocalCluster, signer: usize, sql: &str) -> Transaction {
    let client = &cluster.members[signer].client;
    let catalog = client.catalog().await.unwrap();
    let dataset = &catalog[0];
    let owner: MemberId = dataset["owner"].as_str().unwrap().parse().unwrap();
    let version_tx: Hash = dataset["tx_id"].as_str().unwrap().parse().unwrap();
    let status = client.status().await.unwrap();
    let compute = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|m| m["member_id"].as_str().unwrap().parse().unwrap())
        .collect();
    let request = QueryRequest {
        sql: sql.to_string(),
        plan_hash: Hash::ZERO,
        datasets: vec![DatasetRef {
            owner,
            name: dataset["name"].as_str().unwrap().to_string(),
            version_tx,
        }],
        compute,
    };
    consort_demo::ledger::sign_for(
        &cluster.members[signer].dir,
        TxPayload::QueryRequest(request),
    )
    .unwrap()
}

fn assert_bad_request(err: &ClientError, needle: &str) {
    match err {
        ClientError::Api { status, message } => {
            assert!((400..500).contains(status), "status {status} for {message}");
            assert!(message.contains(needle), "{message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
        other => panic!("expected an API refusal, got {other}"),
    }
}

/// Through the API of a fresh consortium: hostile SQL is a 400 with its reason, at the
/// requester's node, and the node answers the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_refuses_hostile_sql_without_crashing() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = common::cluster(root.path(), 3).await;
    let csv = root.path().join("visits.csv");
    std::fs::write(&csv, "patient,age\nP1,30\nP2,40\nP3,50\n").unwrap();
    let dir0 = cluster.members[0].dir.root.display().to_string();
    let (code, out, err) = consort(&[
        "--dir",
        &dir0,
        "dataset",
        "add",
        "visits",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    let client = cluster.members[1].client.clone();
    let cases = [
        (plus_chain("visits"), "tokens"),
        (and_chain("visits"), "bytes"),
        (
            format!(
                "SELECT COUNT(*) FROM visits WHERE {}",
                vec!["age > 1"; 2_000].join(" AND ")
            ),
            "operators",
        ),
        (
            format!(
                "SELECT COUNT(*) FROM visits WHERE {}age > 1{}",
                "(".repeat(70),
                ")".repeat(70)
            ),
            "nests",
        ),
        (
            // Under the lexical limits but deeper than the planner walks.
            format!(
                "SELECT COUNT(*) FROM visits WHERE age > 1{}",
                " + 1".repeat(400)
            ),
            "nest more than",
        ),
    ];
    for (sql, needle) in &cases {
        let err = client
            .post_json("/api/query", &json!({ "sql": sql, "timeout_secs": 5 }))
            .await
            .unwrap_err();
        assert_bad_request(&err, needle);
        assert_eq!(status_code(&err), 400);
    }
    // A well-formed query that the owner's policy refuses (no grant) is a 403, not a
    // conflict.
    let err = client
        .post_json_waiting(
            "/api/query",
            &json!({ "sql": "SELECT COUNT(*) FROM visits", "timeout_secs": 30 }),
            Duration::from_secs(45),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 403, "{err}");
    assert!(err.to_string().contains("refused by"), "{err}");

    // A member's own signed request with such SQL is refused at intake (fresh chains start
    // under the latest rules, so validation would record it invalid too).
    let tx = hostile_request(&cluster, 1, &plus_chain("visits")).await;
    let err = client.submit(&tx, true).await.unwrap_err();
    assert_bad_request(&err, "tokens");
    let status = client.status().await.unwrap();
    assert_eq!(
        status["rules_version"],
        consort_ledger::rules_limits::LATEST_RULES
    );
    assert_all_running(&mut cluster);
}

fn status_code(err: &ClientError) -> u16 {
    match err {
        ClientError::Api { status, .. } => *status,
        _ => 0,
    }
}
