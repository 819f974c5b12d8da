//! Shared helpers of the CLI's integration tests: real node processes on 127.0.0.1.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use consort_cli::cluster::LocalCluster;
use consort_ledger::{Notarization, NotarizedFile, Transaction, TxPayload};

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
pub fn assert_refused(err: &consort_node::client::ClientError, status: u16, needle: &str) {
    match err {
        consort_node::client::ClientError::Api {
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
