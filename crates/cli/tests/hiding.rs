//! Hiding commitments on real node processes (issue 16): a `plain` grant on one column
//! reveals that column and nothing else.
//!
//! Under row-hash commitments (rule versions 1 and 2) a column-subset fetch used to send
//! each row's leaf hash, SHA-256(0x00 || whole row), and hashing every combination of the
//! other columns' few values recovered them all. Here the same attack runs against:
//! - a dataset registered under rule version 2: the subset fetch is refused;
//! - the same data registered again after the chain moved to rule version 3 (salted
//!   columns, committed in groups of 16 rows): the attack recovers nothing, while the same
//!   search with the owner's real salts recovers every row (so the search itself works);
//! - a value tampered in the owner's database: the recipient's check catches it.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{binary, consort, serial};
use consort_crypto::{merkle, Hash};
use consort_data::canonical::encode_row;
use consort_data::hiding::{cell_hash, RowSalter};
use consort_data::Value;
use consort_demo::cluster::LocalCluster;
use serde_json::{json, Value as Json};

const DIAGNOSES: [&str; 7] = [
    "flu", "asthma", "diabetes", "fracture", "migraine", "covid", "anemia",
];

fn patients_csv(path: &std::path::Path) -> Vec<(String, i64, String)> {
    let mut rows = Vec::new();
    let mut body = String::from("region,age,diagnosis\n");
    for i in 0..20i64 {
        let row = (
            format!("r{}", i % 3),
            (i * 37 + 11) % 121,
            DIAGNOSES[(i * 5 % 7) as usize].to_string(),
        );
        body.push_str(&format!("{},{},{}\n", row.0, row.1, row.2));
        rows.push(row);
    }
    std::fs::write(path, body).unwrap();
    rows
}

fn dir_arg(cluster: &LocalCluster, m: usize) -> String {
    cluster.members[m].dir.root.display().to_string()
}

/// beta's `dataset fetch alpha/patients --columns …`: (exit code, stdout, stderr).
fn fetch(cluster: &LocalCluster, columns: &str, out: &std::path::Path) -> (i32, String, String) {
    consort(&[
        "--dir",
        &dir_arg(cluster, 1),
        "dataset",
        "fetch",
        "alpha/patients",
        "--columns",
        columns,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
}

async fn add(cluster: &LocalCluster, csv: &std::path::Path, update: bool) {
    consort_node::datasets::add(
        &cluster.members[0].dir,
        consort_node::datasets::AddRequest {
            name: "patients".into(),
            inputs: vec![csv.to_path_buf()],
            update,
            ..Default::default()
        },
        Box::new(|_| {}),
    )
    .await
    .unwrap();
}

/// The catalog entry of alpha's `patients`, as beta's node sees it.
async fn catalog_entry(cluster: &LocalCluster) -> Json {
    for _ in 0..50 {
        let entries = cluster.members[1].client.catalog().await.unwrap();
        if let Some(e) = entries.into_iter().find(|e| e["name"] == "patients") {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("patients never reached beta's catalog");
}

/// Every (age, diagnosis) the attacker tries for one row.
fn guesses() -> impl Iterator<Item = (i64, &'static str)> {
    (0..=120).flat_map(|age| DIAGNOSES.iter().map(move |d| (age, *d)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_grant_on_one_column_reveals_only_that_column() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::create(root.path(), 3, &binary()).unwrap();
    // Start under rule version 2, as chains created before hiding commitments did.
    let mut genesis: Json =
        serde_json::from_str(&std::fs::read_to_string(&cluster.genesis_path).unwrap()).unwrap();
    genesis["rules_version"] = json!(2);
    std::fs::write(&cluster.genesis_path, genesis.to_string()).unwrap();
    cluster.start_all().unwrap();
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .unwrap();
    let csv = root.path().join("patients.csv");
    let rows = patients_csv(&csv);
    add(&cluster, &csv, false).await;
    let (code, _, err) = consort(&[
        "--dir",
        &dir_arg(&cluster, 0),
        "grant",
        "patients",
        "--to",
        "beta",
        "--columns",
        "region:plain",
    ]);
    assert_eq!(code, 0, "{err}");

    // Version 2: the dataset has row-hash leaves, and the subset fetch is refused in one
    // line, leaving no file.
    let entry = catalog_entry(&cluster).await;
    assert_eq!(entry["commitment_scheme"], "row-hash", "{entry}");
    let out = root.path().join("region.csv");
    let (code, _, err) = fetch(&cluster, "region", &out);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("committed with row hashes") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!out.exists());
    // The owner's node refuses it too (a recipient could skip its own check).
    let request = |version_tx: &str| {
        json!({
            "owner": entry["owner"],
            "request": {
                "dataset": "patients", "version_tx": version_tx,
                "columns": ["region"], "after_row": null,
            },
        })
    };
    let err = cluster.members[1]
        .client
        .post_json(
            "/api/datasets/fetch-page",
            &request(entry["tx_id"].as_str().unwrap()),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row hashes"), "{err}");

    // A whole fetch of a row-hash dataset still works, checked by recomputing the root
    // from whole rows (gamma is granted every column). The owner itself is pointed to
    // `dataset export`.
    let (code, _, err) = consort(&[
        "--dir",
        &dir_arg(&cluster, 0),
        "grant",
        "patients",
        "--to",
        "gamma",
        "--columns",
        "region:plain,age:plain,diagnosis:plain",
    ]);
    assert_eq!(code, 0, "{err}");
    let whole = root.path().join("whole.csv");
    let (code, _, err) = consort(&[
        "--dir",
        &dir_arg(&cluster, 0),
        "dataset",
        "fetch",
        "alpha/patients",
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("dataset export"), "{err}");
    let (code, stdout, err) = consort(&[
        "--dir",
        &dir_arg(&cluster, 2),
        "dataset",
        "fetch",
        "alpha/patients",
        "--out",
        whole.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["rows"], 20);
    assert_eq!(summary["verified_by"], "commitment");

    // A majority moves the chain to rule version 3; the owner registers the data again.
    let proposal = root.path().join("rules.json");
    let p = proposal.display().to_string();
    for (m, args) in [
        (0, vec!["member", "propose-rules", "--out", &p]),
        (1, vec!["member", "approve", &p]),
        (2, vec!["member", "submit", &p]),
    ] {
        let dir = dir_arg(&cluster, m);
        let mut all = vec!["--dir", dir.as_str()];
        all.extend(args);
        let (code, out, err) = consort(&all);
        assert_eq!(code, 0, "{out}{err}");
    }
    add(&cluster, &csv, true).await;
    let mut entry = catalog_entry(&cluster).await;
    for _ in 0..50 {
        if entry["version"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        entry = catalog_entry(&cluster).await;
    }
    assert_eq!(entry["commitment_scheme"], "salted-columns", "{entry}");

    // The fetch works and checks every row against the ledger's root.
    let (code, stdout, err) = fetch(&cluster, "region", &out);
    assert_eq!(code, 0, "{err}");
    let summary: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["rows"], 20);
    assert!(
        summary["verified_by"].as_str().unwrap().contains("salted"),
        "{summary}"
    );
    let fetched: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    let regions: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(fetched, regions);

    // The attack, on what the owner sends beta for that fetch.
    let page = cluster.members[1]
        .client
        .post_json(
            "/api/datasets/fetch-page",
            &request(entry["tx_id"].as_str().unwrap()),
        )
        .await
        .unwrap();
    let page_rows = page["rows"].as_array().unwrap();
    let openings = page["openings"].as_array().unwrap();
    assert_eq!(page_rows.len(), 20);
    // Rows are committed in groups of 16: rows 0-15 and 16-19.
    assert_eq!(openings.len(), 2);
    let salt_of = |s: &Json| -> [u8; 16] {
        let mut salt = [0u8; 16];
        hex::decode_to_slice(s.as_str().unwrap(), &mut salt).unwrap();
        salt
    };
    let hidden_of = |o: &Json| -> Vec<Hash> {
        o["hidden"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().parse().unwrap())
            .collect()
    };
    let groups: Vec<&[(String, i64, String)]> = rows.chunks(16).collect();
    let mut scratch = Vec::new();
    let mut recovered = 0;
    let mut tried = 0;
    for (g, opening) in openings.iter().enumerate() {
        let salts = opening["salts"].as_array().unwrap();
        assert_eq!(salts.len(), 1, "only the granted column's salt is sent");
        let region_salt = salt_of(&salts[0]);
        let hidden = hidden_of(opening);
        assert_eq!(hidden.len(), 2);
        let size = groups[g].len();
        for row in groups[g] {
            let region = Value::Text(row.0.as_str().into());
            for (age, diagnosis) in guesses() {
                tried += 1;
                let (age, diagnosis) = (Value::Integer(age), Value::Text(diagnosis.into()));
                // The old row leaf; cells as if the group shared the revealed salt; the
                // guess alone or repeated over the group, salted or not.
                let leaf = merkle::leaf_hash(&encode_row(&vec![
                    region.clone(),
                    age.clone(),
                    diagnosis.clone(),
                ]));
                let mut hit = hidden.contains(&leaf);
                for salt in [region_salt, [0; 16]] {
                    for n in [1, size] {
                        hit |= hidden[0] == cell_hash(&salt, n, vec![&age; n], &mut scratch);
                        hit |= hidden[1] == cell_hash(&salt, n, vec![&diagnosis; n], &mut scratch);
                    }
                }
                recovered += usize::from(hit);
            }
        }
    }
    assert_eq!(tried, 20 * 121 * 7);
    assert_eq!(recovered, 0, "the attack recovered hidden values");

    // Control: with the owner's real salts (and the rest of its group), the same search
    // finds each row's hidden values, so a zero above is the salts' doing, not a broken
    // search.
    let secret = *cluster.members[0].dir.commitment_key().unwrap();
    let salter = RowSalter::new(&secret, "patients", 2);
    let mut found = 0;
    for (g, opening) in openings.iter().enumerate() {
        let hidden = hidden_of(opening);
        let (age_salt, diagnosis_salt) = (salter.salt(g as u64, 1), salter.salt(g as u64, 2));
        let group = groups[g];
        for r in 0..group.len() {
            let ages_with = |age: i64| -> Vec<Value> {
                group
                    .iter()
                    .enumerate()
                    .map(|(k, row)| Value::Integer(if k == r { age } else { row.1 }))
                    .collect()
            };
            let diagnoses_with = |d: &str| -> Vec<Value> {
                group
                    .iter()
                    .enumerate()
                    .map(|(k, row)| Value::Text(if k == r { d } else { row.2.as_str() }.into()))
                    .collect()
            };
            let hits: Vec<(i64, &str)> = guesses()
                .filter(|(age, d)| {
                    hidden[0] == cell_hash(&age_salt, group.len(), &ages_with(*age), &mut scratch)
                        && hidden[1]
                            == cell_hash(
                                &diagnosis_salt,
                                group.len(),
                                &diagnoses_with(d),
                                &mut scratch,
                            )
                })
                .collect();
            if hits == [(group[r].1, group[r].2.as_str())] {
                found += 1;
            }
        }
    }
    assert_eq!(found, 20);

    // A value changed in the owner's database after registration: the owner's node opens
    // the stored row, and the recipient's recomputed root no longer matches the ledger.
    let db = cluster.members[0].dir.data_dir().join("datasets.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute(
            "UPDATE ds_patients_v2 SET region = 'r9' WHERE _consort_row = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let tampered = root.path().join("tampered.csv");
    let (code, _, err) = fetch(&cluster, "region", &tampered);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("do not match the ledger"), "{err}");
    assert!(!tampered.exists());

    // Several pages (4,992 rows each, whole groups) and a short last group.
    let big = root.path().join("big.csv");
    let mut body = String::from("id,secret\n");
    for i in 0..10_007 {
        body.push_str(&format!("{i},s{}\n", i * 7 % 1000));
    }
    std::fs::write(&big, body).unwrap();
    consort_node::datasets::add(
        &cluster.members[0].dir,
        consort_node::datasets::AddRequest {
            name: "big".into(),
            inputs: vec![big],
            ..Default::default()
        },
        Box::new(|_| {}),
    )
    .await
    .unwrap();
    let (code, _, err) = consort(&[
        "--dir",
        &dir_arg(&cluster, 0),
        "grant",
        "big",
        "--to",
        "beta",
        "--columns",
        "id:plain",
    ]);
    assert_eq!(code, 0, "{err}");
    let out = root.path().join("ids.csv");
    let (code, stdout, err) = consort(&[
        "--dir",
        &dir_arg(&cluster, 1),
        "dataset",
        "fetch",
        "alpha/big",
        "--columns",
        "id",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["rows"], 10_007);
    let ids: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 10_007);
    assert_eq!(ids[10_006], "10006");
    // A page asked to start inside a group is refused by the owner.
    let entry = cluster.members[1]
        .client
        .catalog()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e["name"] == "big")
        .unwrap();
    let err = cluster.members[1]
        .client
        .post_json(
            "/api/datasets/fetch-page",
            &json!({
                "owner": entry["owner"],
                "request": {
                    "dataset": "big", "version_tx": entry["tx_id"],
                    "columns": ["id"], "after_row": 7,
                },
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("multiple of 16"), "{err}");
}
