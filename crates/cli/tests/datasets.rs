//! Datasets end to end on real nodes: ingest into the member's own database, registration
//! on the ledger, the catalog on other members (no rows), verification against the ledger,
//! tampering, versions, atomic failure, files datasets, and a PostgreSQL backend.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{cluster, consort, serial};

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn json_of(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_register_verify_version_and_fail_atomically() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let alpha = cluster.members[0].dir.root.to_str().unwrap().to_string();
    let beta = cluster.members[1].dir.root.to_str().unwrap().to_string();

    let csv = write(
        &root.path().join("visits.csv"),
        "patient,age,ward,admitted\r\np1,34,A,2024-01-05\r\np2,,B,2024-02-01\r\np2,,B,2024-02-01\r\np3,x,A,2024-03-09\r\np4,51,\"C, east\",2024-04-30\r\n",
    );
    let recipe = write(
        &root.path().join("recipe.toml"),
        "[columns.age]\ntype = \"integer\"\nmode = \"strict\"\n",
    );
    let (code, out, err) = consort(&[
        "--dir", &alpha, "dataset", "add", "visits", &csv, "--recipe", &recipe, "--dedup", "all",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let summary = json_of(&out);
    assert_eq!(summary["rows_read"], 5);
    assert_eq!(summary["duplicates_removed"], 1);
    assert_eq!(
        summary["rows_rejected"], 1,
        "p3's age is not an integer: {summary}"
    );
    assert_eq!(summary["rows_kept"], 3);
    let reject_file = summary["reject_file"].as_str().expect("reject file named");
    assert!(std::fs::read_to_string(reject_file).unwrap().contains("p3"));

    // Every member sees the registration in the catalog, and no rows.
    let (code, out, _) = consort(&["--dir", &beta, "catalog", "--json"]);
    assert_eq!(code, 0);
    let catalog = json_of(&out);
    let entry = &catalog["datasets"][0];
    assert_eq!(entry["name"], "visits");
    assert_eq!(entry["owner_name"], "alpha");
    assert_eq!(entry["row_count"], 3);
    assert_eq!(entry["commitment"], summary["commitment"]);
    assert!(
        !out.contains("p1") && !out.contains("2024-01-05"),
        "rows leaked into the catalog: {out}"
    );

    let (code, out, err) = consort(&["--dir", &alpha, "dataset", "verify", "visits"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = consort(&["--dir", &alpha, "dataset", "show", "visits", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["stored"], true);

    // Export round trips through every format.
    for format in ["csv", "ndjson", "parquet"] {
        let out_path = root.path().join(format!("visits.{format}"));
        let (code, out, err) = consort(&[
            "--dir",
            &alpha,
            "dataset",
            "export",
            "visits",
            "--format",
            format,
            "--out",
            out_path.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("wrote 3 rows"), "{out}");
    }

    // The same name again is refused; nothing changes.
    let (code, _, err) = consort(&["--dir", &alpha, "dataset", "add", "visits", &csv]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    // An update that drops a column is refused before anything is registered.
    let narrower = write(&root.path().join("narrow.csv"), "patient,age\np9,40\n");
    let (code, _, err) = consort(&[
        "--dir", &alpha, "dataset", "update", "visits", &narrower, "--recipe", &recipe,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("incompatibly") && err.contains("ward"),
        "{err}"
    );
    // A compatible update becomes version 2 with lineage.
    let more = write(
        &root.path().join("more.csv"),
        "patient,age,ward,admitted\np7,29,A,2024-05-01\np8,44,B,2024-05-02\n",
    );
    let (code, out, err) = consort(&[
        "--dir", &alpha, "dataset", "update", "visits", &more, "--recipe", &recipe, "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_of(&out)["version"], 2);
    let (_, out, _) = consort(&["--dir", &alpha, "dataset", "show", "visits", "--json"]);
    let shown = json_of(&out);
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["parent"], entry["tx_id"]);

    // Tampering with a stored row is caught.
    let db = cluster.members[0].dir.data_dir().join("datasets.sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE ds_visits_v2 SET ward = 'Z' WHERE _consort_row = 0")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (code, _, err) = consort(&["--dir", &alpha, "dataset", "verify", "visits"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does NOT match"), "{err}");

    // A failing run leaves nothing behind: no table, no ledger record.
    let garbage = root.path().join("garbage.csv");
    std::fs::write(
        &garbage,
        [0u8, 159, 146, 150, 0, 1, 2, 3, 255, 254].repeat(100),
    )
    .unwrap();
    let (code, _, err) = consort(&[
        "--dir",
        &alpha,
        "dataset",
        "add",
        "broken",
        garbage.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (_, out, _) = consort(&["--dir", &beta, "catalog", "--json"]);
    assert!(!out.contains("broken"), "{out}");
    let store = consort_store::open_store(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let tables = store.list_tables().await.unwrap();
    assert!(!tables.iter().any(|t| t.contains("broken")), "{tables:?}");
    assert!(store.list_staging_tables().await.unwrap().is_empty());

    // Bad names and recipes are refused with one line.
    let (code, _, err) = consort(&["--dir", &alpha, "dataset", "add", "bad name", &csv]);
    assert_eq!((code, err.trim().lines().count()), (1, 1), "{err}");
    let bad_recipe = write(
        &root.path().join("bad.toml"),
        "trim = true\nfrobnicate = 1\n",
    );
    let (code, _, err) = consort(&[
        "--dir",
        &alpha,
        "dataset",
        "add",
        "other",
        &csv,
        "--recipe",
        &bad_recipe,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("frobnicate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_datasets_are_content_addressed_and_verified() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let gamma = cluster.members[2].dir.root.to_str().unwrap().to_string();
    let docs = root.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("note.txt"), "caf\u{65}\u{301}\n").unwrap();
    std::fs::write(docs.join("sub/copy.txt"), "caf\u{65}\u{301}\n").unwrap();
    // A PNG named .txt: the type comes from the bytes.
    let png: Vec<u8> = [
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..],
        &[
            0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0, 0, 0, 0,
        ][..],
    ]
    .concat();
    std::fs::write(docs.join("picture.txt"), &png).unwrap();
    let (code, out, err) = consort(&[
        "--dir",
        &gamma,
        "dataset",
        "add",
        "scans",
        docs.to_str().unwrap(),
        "--format",
        "files",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let summary = json_of(&out);
    assert_eq!(summary["rows_kept"], 3);
    assert_eq!(summary["duplicates_removed"], 1, "{summary}");
    let (code, out, err) = consort(&["--dir", &gamma, "dataset", "verify", "scans"]);
    assert_eq!(code, 0, "{out}{err}");

    // The catalog records a files dataset.
    let (_, out, _) = consort(&["--dir", &gamma, "catalog", "--json"]);
    let entry = json_of(&out)["datasets"][0].clone();
    assert_eq!(entry["kind"], "files");
    assert_eq!(entry["row_count"], 3);

    // Corrupting a stored blob is caught.
    let files_dir = cluster.members[2].dir.files_dir();
    let blob = walk(&files_dir)
        .into_iter()
        .find(|p| {
            std::fs::read(p)
                .map(|b| b.starts_with(&[0x89, b'P']))
                .unwrap_or(false)
        })
        .expect("png blob");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let (code, _, err) = consort(&["--dir", &gamma, "dataset", "verify", "scans"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("picture.txt"), "{err}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The same flow with the member's datasets in PostgreSQL, then MySQL/MariaDB (the servers
/// on this machine; the test fails, not skips, when one is down).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_can_keep_its_datasets_in_postgres_or_mysql() {
    let _guard = serial().await;
    let pg = std::env::var("CONSORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let my = std::env::var("CONSORT_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let root = tempfile::tempdir().unwrap();
    let mut cluster =
        consort_demo::cluster::LocalCluster::create(root.path(), 3, &common::binary()).unwrap();
    // alpha keeps its datasets in PostgreSQL, beta in MySQL/MariaDB.
    for (i, url) in [(0, &pg), (1, &my)] {
        let config_path = cluster.members[i].dir.config_path();
        let config = std::fs::read_to_string(&config_path).unwrap();
        std::fs::write(&config_path, format!("{config}database_url = \"{url}\"\n")).unwrap();
    }
    cluster.start_all().unwrap();
    cluster
        .wait_all_ready(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    for (i, url) in [(0, &pg), (1, &my)] {
        let dir = cluster.members[i].dir.root.to_str().unwrap().to_string();
        let name = format!("db_{}", rand::random::<u32>());
        let csv = write(
            &root.path().join(format!("t{i}.csv")),
            "k,v,when\n1,a,2024-01-01\n2,ü,2024-02-29\n",
        );
        let (code, out, err) = consort(&["--dir", &dir, "dataset", "add", &name, &csv, "--json"]);
        assert_eq!(code, 0, "the database must be running at {url}: {out}{err}");
        let (code, out, err) = consort(&["--dir", &dir, "dataset", "verify", &name]);
        assert_eq!(code, 0, "{out}{err}");
        let store = consort_store::open_store(url).await.unwrap();
        let table = consort_node::datasets::table_name(&name, 1);
        assert_eq!(store.row_count(&table).await.unwrap(), 2);
        store.drop_table(&table).await.unwrap();
    }
}

#[test]
fn init_refuses_an_unknown_database_url() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    let (code, _, err) = consort(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        "m",
        "--database-url",
        "oracle://x",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--database-url"), "{err}");
    assert!(
        !dir.join("member.key").exists(),
        "nothing is created on a refusal"
    );
}

/// The ingest benchmark on a small input: every generated row is accounted for, both runs
/// are reported, and a bad `--runs` is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_ingest_accounts_for_every_row() {
    let _guard = serial().await;
    let (code, out, err) = consort(&["bench", "ingest", "--rows", "3000", "--runs", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json_of(&out);
    let c = &v["consort"];
    let total = ["rows_kept", "duplicates_removed", "rows_rejected"]
        .iter()
        .map(|k| c[*k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")))
        .sum::<u64>();
    assert_eq!(total, 3000, "{v}");
    assert!(c["duplicates_removed"].as_u64() > Some(0), "{v}");
    assert!(c["rows_rejected"].as_u64() > Some(0), "{v}");
    assert_eq!(c["all_seconds"].as_array().map(Vec::len), Some(2), "{v}");
    let (code, _, err) = consort(&["bench", "ingest", "--runs", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--runs"), "{err}");
}
