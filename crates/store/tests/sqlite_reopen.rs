//! Opening one SQLite file again and again, from several pools at once, as a member's
//! commands do (`dataset add` then `dataset verify`, while the node reads the catalog).
//! A pool that is still closing checkpoints the WAL under an exclusive lock, and a new
//! pool must wait for it rather than fail with "database is locked".

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_model::value::{Column, ColumnType, Schema, Value};
use consort_store::open_store;

#[test]
fn a_file_reopened_from_racing_pools_never_reports_locked() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("datasets.sqlite").display()
    );
    let workers: Vec<_> = (0..3)
        .map(|worker| {
            let url = url.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    for round in 0..40 {
                        let store = open_store(&url)
                            .await
                            .unwrap_or_else(|e| panic!("worker {worker} round {round}: {e}"));
                        // Writing leaves a WAL behind, which the last closing
                        // connection checkpoints under an exclusive lock.
                        let schema = Schema {
                            columns: vec![Column {
                                name: "n".into(),
                                ty: ColumnType::Integer,
                                nullable: true,
                            }],
                        };
                        let table = format!("t_{worker}_{round}");
                        let mut load =
                            store.begin_load(&table, &schema).await.unwrap_or_else(|e| {
                                panic!("worker {worker} round {round}: loading: {e}")
                            });
                        let rows: Vec<_> = (0..200u64)
                            .map(|n| (n, vec![Value::Integer(n as i64)]))
                            .collect();
                        load.insert(rows).await.unwrap_or_else(|e| {
                            panic!("worker {worker} round {round}: inserting: {e}")
                        });
                        load.commit().await.unwrap_or_else(|e| {
                            panic!("worker {worker} round {round}: committing: {e}")
                        });
                        assert_eq!(store.row_count(&table).await.unwrap(), 200);
                        drop(store);
                    }
                });
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker failed");
    }
}

#[tokio::test]
async fn opening_waits_out_an_exclusive_lock_held_by_another_connection() {
    use sqlx::{ConnectOptions, Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datasets.sqlite");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    drop(open_store(&url).await.unwrap());
    let mut holder = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .connect()
        .await
        .unwrap();
    holder.execute("BEGIN EXCLUSIVE").await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        holder.execute("COMMIT").await.unwrap();
        holder.close().await.unwrap();
    });
    let store = open_store(&url).await.expect("open waits for the lock");
    assert!(store.list_tables().await.unwrap().is_empty());
    release.await.unwrap();
}
