//! Runs the storage conformance suite against every backend: SQLite on a temporary file,
//! the in-memory store, and the PostgreSQL and MariaDB servers of the machine. The server
//! tests fail (they do not skip) when a server cannot be reached.
//!
//! - PostgreSQL: `postgres://postgres@127.0.0.1:5432/test`, or `CONSORT_TEST_POSTGRES_URL`.
//! - MariaDB/MySQL: `mysql://root@127.0.0.1:3306/test`, or `CONSORT_TEST_MYSQL_URL`.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_store::{conformance, open_store, DatasetStore};

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";

async fn server(env: &str, default: &str, how: &str) -> std::sync::Arc<dyn DatasetStore> {
    let url = std::env::var(env).unwrap_or_else(|_| default.to_string());
    match open_store(&url).await {
        Ok(store) => store,
        Err(e) => panic!(
            "{e}\n\nThis test needs the server running (it does not skip).\n\
             Start it with:\n    {how}\n\
             or point {env} at a reachable database."
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("store.db").display()
    );
    let store = open_store(&url).await.expect("open sqlite store");
    assert_eq!(store.backend(), "sqlite");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_passes_the_conformance_suite() {
    let store = open_store("memory:").await.expect("open memory store");
    assert_eq!(store.backend(), "memory");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let store = server(
        "CONSORT_TEST_POSTGRES_URL",
        PG_DEFAULT,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    )
    .await;
    assert_eq!(store.backend(), "postgres");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_passes_the_conformance_suite() {
    let store = server(
        "CONSORT_TEST_MYSQL_URL",
        MYSQL_DEFAULT,
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    )
    .await;
    assert_eq!(store.backend(), "mysql");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn unreachable_servers_and_bad_urls_are_clear_errors() {
    let err = open_store("postgres://u:secret@127.0.0.1:1/none")
        .await
        .err()
        .expect("nothing listens on port 1");
    let msg = err.to_string();
    assert!(msg.contains("cannot reach"), "{msg}");
    assert!(!msg.contains("secret"), "password leaked: {msg}");
    let err = open_store("oracle://x")
        .await
        .err()
        .expect("unsupported scheme");
    assert!(err.to_string().contains("unsupported"), "{err}");
}
