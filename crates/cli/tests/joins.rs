//! JOIN queries between real node processes over TLS: two hospitals hold visits, an
//! insurer holds claims about some of the same patients. Answers over the joined rows
//! match plain SQLite over the three tables; a join on a column without `join`
//! permission is refused by its owner and recorded; a join of two datasets of one owner
//! runs without a PSI.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{ask, assert_rows_match, binary, consort, dir_arg, reference, serial};
use consort_demo::cluster::LocalCluster;
use serde_json::Value;

/// The insurer's claims: a third of the patients of each hospital, plus its own.
fn write_claims(path: &Path, rows: usize) {
    let mut out = String::from("patient,insurer,claim\n");
    for p in 0..rows {
        let patient = match p % 3 {
            0 => format!("h0-{}", (p * 7) % 120),
            1 => format!("h1-{}", (p * 5) % 130),
            _ => format!("x-{p}"),
        };
        let insurer = ["acme", "zeta", "omega"][(p / 2) % 3];
        out += &format!(
            "{patient},{insurer},{}.{:02}\n",
            100 + (p * 37) % 900,
            p % 100
        );
    }
    std::fs::write(path, out).unwrap();
}

async fn add(cluster: &LocalCluster, m: usize, name: &str, path: &Path) {
    consort_node::datasets::add(
        &cluster.members[m].dir,
        consort_node::datasets::AddRequest {
            name: name.into(),
            inputs: vec![path.to_path_buf()],
            ..Default::default()
        },
        Box::new(|_| {}),
    )
    .await
    .expect("dataset add");
}

fn grant(cluster: &LocalCluster, owner: usize, dataset: &str, columns: &str) {
    let dir = dir_arg(cluster, owner);
    let (code, _, err) = consort(&[
        "--dir",
        &dir,
        "grant",
        dataset,
        "--to",
        "*",
        "--columns",
        columns,
        "--json",
    ]);
    assert_eq!(code, 0, "grant failed: {err}");
}

fn load_reference(db: &rusqlite::Connection, visits: &[(&str, PathBuf)], claims: &Path) {
    for (table, path) in visits {
        db.execute_batch(&format!(
            "CREATE TABLE {table} (patient TEXT, age INTEGER, region TEXT, ward TEXT, \
             diagnosis TEXT, amount DOUBLE PRECISION, admitted DATE)"
        ))
        .unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            db.execute(
                &format!("INSERT INTO {table} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                rusqlite::params![
                    f[0],
                    f[1].parse::<i64>().unwrap(),
                    f[2],
                    f[3],
                    f[4],
                    f[5].parse::<f64>().unwrap(),
                    f[6]
                ],
            )
            .unwrap();
        }
    }
    db.execute_batch("CREATE TABLE claims (patient TEXT, insurer TEXT, claim DOUBLE PRECISION)")
        .unwrap();
    let text = std::fs::read_to_string(claims).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        db.execute(
            "INSERT INTO claims VALUES (?1, ?2, ?3)",
            rusqlite::params![f[0], f[1], f[2].parse::<f64>().unwrap()],
        )
        .unwrap();
    }
    db.execute_batch(
        "CREATE VIEW visits_all AS SELECT * FROM visits_alpha UNION ALL SELECT * FROM visits_beta",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_across_members_match_sqlite_and_need_the_join_permission() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut cluster = LocalCluster::create(root, 3, &binary()).expect("create cluster");
    cluster.start_all().expect("start nodes");
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .expect("nodes ready");
    let mut visits = Vec::new();
    for (m, rows) in [(0, 120), (1, 130)] {
        let path = root.join(format!("visits-{m}.csv"));
        consort_demo::visits::write_csv(&path, m, rows, 7, false).unwrap();
        add(&cluster, m, "visits", &path).await;
        visits.push(path);
    }
    let claims = root.join("claims.csv");
    write_claims(&claims, 180);
    add(&cluster, 2, "claims", &claims).await;
    // alpha also holds claims of its own (for the one-owner join).
    add(&cluster, 0, "claims", &claims).await;
    for m in [0, 1] {
        grant(
            &cluster,
            m,
            "visits",
            "patient:join,ward:group,age:filter,amount:aggregate",
        );
    }
    for m in [0, 2] {
        grant(
            &cluster,
            m,
            "claims",
            "patient:join,insurer:group+filter,claim:aggregate",
        );
    }
    let db = rusqlite::Connection::open_in_memory().unwrap();
    load_reference(
        &db,
        &[
            ("visits_alpha", visits[0].clone()),
            ("visits_beta", visits[1].clone()),
        ],
        &claims,
    );
    let cases = [
        (
            "SELECT c.insurer, COUNT(*), SUM(c.claim), AVG(v.amount) FROM \"alpha\".visits v \
             JOIN \"gamma\".claims c ON v.patient = c.patient WHERE v.age > 30 \
             GROUP BY c.insurer ORDER BY c.insurer",
            "SELECT c.insurer, COUNT(*), SUM(c.claim), AVG(v.amount) FROM visits_alpha v \
             JOIN claims c ON v.patient = c.patient WHERE v.age > 30 \
             GROUP BY c.insurer HAVING COUNT(*) >= 3 ORDER BY c.insurer",
        ),
        (
            "SELECT v.ward, COUNT(*), MAX(c.claim) FROM visits v JOIN \"gamma\".claims c \
             ON v.patient = c.patient WHERE c.insurer <> 'omega' GROUP BY v.ward ORDER BY v.ward",
            "SELECT v.ward, COUNT(*), MAX(c.claim) FROM visits_all v JOIN claims c \
             ON v.patient = c.patient WHERE c.insurer <> 'omega' \
             GROUP BY v.ward HAVING COUNT(*) >= 3 ORDER BY v.ward",
        ),
        (
            "SELECT COUNT(*), SUM(v.amount) FROM \"alpha\".visits v JOIN \"alpha\".claims c \
             ON v.patient = c.patient",
            "SELECT COUNT(*), SUM(v.amount) FROM visits_alpha v JOIN claims c \
             ON v.patient = c.patient",
        ),
    ];
    for (sql, reference_sql) in cases {
        let answer = ask(&cluster, 1, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let want = reference(&db, reference_sql);
        assert!(!want.is_empty(), "{reference_sql}: weak test data");
        assert_rows_match(sql, &answer, &want, 1e-3);
        let query_id = answer["query_id"].as_str().unwrap();
        let record = cluster.members[1]
            .client
            .get_json(&format!("/api/queries/{query_id}"))
            .await
            .unwrap();
        assert_eq!(record["status"], "answered", "{record}");
        assert_eq!(record["result"]["status"], "revealed", "{record}");
    }

    // The join key needs `join`: ward and insurer have only `group`, so both owners refuse
    // and the answer names the first refusal on the ledger.
    let refused = ask(
        &cluster,
        1,
        "SELECT COUNT(*) FROM \"alpha\".visits v JOIN \"gamma\".claims c ON v.ward = c.insurer",
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("lacks permission \"join\"")
            && ((refused.contains("alpha") && refused.contains("ward"))
                || (refused.contains("gamma") && refused.contains("insurer"))),
        "{refused}"
    );
    let (code, out, err) = consort(&["--dir", &dir_arg(&cluster, 1), "queries", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let statuses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["status"].as_str())
        .collect();
    assert_eq!(statuses.len(), cases.len() + 1, "{listed}");
    assert!(statuses.contains(&"refused"), "{listed}");
    let (code, _, err) = consort(&["--dir", &dir_arg(&cluster, 2), "ledger", "verify"]);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_join_agrees_with_sqlite() {
    let _guard = serial().await;
    let (code, out, err) = consort(&[
        "bench", "query", "--join", "--rows", "400", "--runs", "1", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["joined_rows"], 300, "{v}");
    let (code, _, err) = consort(&["bench", "query", "--join", "--rows", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--rows"), "{err}");
}
