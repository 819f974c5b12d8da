//! Shared helpers of the CLI's integration tests: real node processes on 127.0.0.1.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use consort_demo::cluster::LocalCluster;
use consort_ledger::{Notarization, NotarizedFile, Transaction, TxPayload};
use serde_json::{json, Value};

/// Clusters compete for two cores; running them one at a time keeps Raft timing sane.
static CLUSTER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER_LOCK.lock().await
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_consort"))
}

pub async fn cluster(root: &Path, n: usize) -> LocalCluster {
    let mut cluster = LocalCluster::create(root, n, &binary()).expect("create cluster");
    cluster.start_all().expect("start nodes");
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .expect("nodes ready");
    cluster
}

/// [`cluster`] with the benchmark endpoints on (they are off by default).
pub async fn bench_cluster(root: &Path, n: usize) -> LocalCluster {
    let mut cluster = LocalCluster::create(root, n, &binary()).expect("create cluster");
    cluster
        .enable_bench_endpoints()
        .expect("enable bench endpoints");
    cluster.start_all().expect("start nodes");
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .expect("nodes ready");
    cluster
}

pub fn notarization(i: u64) -> TxPayload {
    TxPayload::Notarize(Notarization {
        files: vec![NotarizedFile {
            name: format!("file-{i}.txt"),
            size: i,
            blake3: consort_crypto::hash_domain("test-file", &[&i.to_be_bytes()]),
        }],
        note: Some(format!("note {i}")),
    })
}

/// A notarisation signed by member `m` of the cluster.
pub fn signed(cluster: &LocalCluster, m: usize, i: u64) -> Transaction {
    let key = cluster.members[m].dir.load_key().expect("key");
    let genesis = consort_node::config::read_genesis(&cluster.genesis_path).expect("genesis");
    Transaction::sign(
        notarization(i),
        &key,
        &genesis.chain_id(),
        rand::random(),
        1_700_000_000_000 + i,
    )
}

/// Runs the consort binary and returns (exit code, stdout, stderr).
pub fn consort(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run consort");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that an API call was refused with `status` and a message containing `needle`.
pub fn assert_refused(err: &consort_node::error::NodeError, status: u16, needle: &str) {
    match err {
        consort_node::error::NodeError::Api {
            status: got,
            message,
        } => {
            assert_eq!(*got, status, "{message}");
            assert!(
                message.to_lowercase().contains(needle),
                "{needle:?} not in {message}"
            );
        }
        other => panic!("expected an HTTP {status} refusal, got {other}"),
    }
}

pub fn dir_arg(cluster: &LocalCluster, m: usize) -> String {
    cluster.members[m].dir.root.display().to_string()
}

/// Runs a joint query from member `m` through its API (60 s query timeout).
pub async fn ask(cluster: &LocalCluster, m: usize, sql: &str) -> Result<Value, String> {
    cluster.members[m]
        .client
        .post_json_waiting(
            "/api/query",
            &json!({ "sql": sql, "timeout_secs": 60 }),
            Duration::from_secs(90),
        )
        .await
        .map_err(|e| e.to_string())
}

/// The rows of `sql` in SQLite, as JSON values.
pub fn reference(db: &rusqlite::Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut statement = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = statement.column_count();
    statement
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(v) => json!(v),
                    rusqlite::types::ValueRef::Real(v) => json!(v),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(_) => Value::Null,
                })
                .collect())
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Checks a query answer against SQLite's rows: integers and text exactly, floats within
/// `abs_tol` plus a 10^-9 relative error.
pub fn assert_rows_match(sql: &str, got: &Value, want: &[Vec<Value>], abs_tol: f64) {
    let rows = got["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{sql}: {got}"));
    assert_eq!(rows.len(), want.len(), "{sql}: got {got}, want {want:?}");
    for (g, w) in rows.iter().zip(want) {
        let g = g.as_array().unwrap();
        assert_eq!(g.len(), w.len(), "{sql}");
        for (a, b) in g.iter().zip(w) {
            match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) if !(a.is_i64() && b.is_i64()) => assert!(
                    (x - y).abs() <= abs_tol + 1e-9 * y.abs(),
                    "{sql}: {x} vs {y} (row {g:?} vs {w:?})"
                ),
                _ => assert_eq!(a, b, "{sql}: row {g:?} vs {w:?}"),
            }
        }
    }
}
