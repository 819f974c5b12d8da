//! Plain data sharing between real node processes: `dataset fetch` copies exactly the
//! granted `plain` columns over TLS, verifies them against the ledger, records a
//! DataTransfer, and refuses (leaving no file) whatever the grants do not allow.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cluster, consort, serial};
use serde_json::Value;

fn dir_arg(cluster: &consort_demo::cluster::LocalCluster, m: usize) -> String {
    cluster.members[m].dir.root.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetch_copies_granted_plain_columns_and_records_the_transfer() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 3).await;
    let csv = dir.path().join("visits.csv");
    consort_demo::visits::write_csv(&csv, 0, 40, 5, true).unwrap();
    consort_node::datasets::add(
        &cluster.members[0].dir,
        consort_node::datasets::AddRequest {
            name: "visits".into(),
            inputs: vec![csv.clone()],
            ..Default::default()
        },
        Box::new(|_| {}),
    )
    .await
    .unwrap();
    let (alpha, beta, gamma) = (
        dir_arg(&cluster, 0),
        dir_arg(&cluster, 1),
        dir_arg(&cluster, 2),
    );
    let (code, _, err) = consort(&[
        "--dir",
        &alpha,
        "grant",
        "visits",
        "--to",
        "beta",
        "--columns",
        "region:plain,age:plain,amount:filter",
    ]);
    assert_eq!(code, 0, "{err}");

    // A granted subset: the values are the owner's, in row order.
    let out = dir.path().join("subset.csv");
    let (code, stdout, err) = consort(&[
        "--dir",
        &beta,
        "dataset",
        "fetch",
        "alpha/visits",
        "--columns",
        "region,age",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["rows"], 42);
    assert_eq!(
        summary["verified_by"],
        "commitment (salted-columns openings)"
    );
    let expected: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{}", f[2], f[1])
        })
        .collect();
    let got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(got, expected);
    let tx = summary["transfer_tx"].as_str().unwrap();
    let (code, stdout, err) = consort(&["--dir", &alpha, "ledger", "tx", tx, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("DataTransfer"), "{stdout}");

    // Not granted: every column, a filter-only column, or a member with no grant. Nothing
    // is left behind.
    for (who, columns, needle) in [
        (&beta, "", "lacks permission \"plain\""),
        (&beta, "amount", "\"amount\""),
        (&gamma, "region", "gamma"),
    ] {
        let out = dir.path().join("refused.csv");
        let mut args = vec![
            "--dir",
            who.as_str(),
            "dataset",
            "fetch",
            "alpha/visits",
            "--out",
        ];
        let out_s = out.to_str().unwrap().to_string();
        args.push(&out_s);
        if !columns.is_empty() {
            args.extend(["--columns", columns]);
        }
        let (code, _, err) = consort(&args);
        assert_eq!(code, 1, "{columns}: {err}");
        assert!(
            err.contains(needle) && err.trim().lines().count() == 1,
            "{err}"
        );
        assert!(!out.exists());
    }

    // Every column granted: the rows recompute the ledger commitment.
    let (code, _, err) = consort(&[
        "--dir", &alpha, "grant", "visits", "--to", "beta", "--columns",
        "patient:plain,age:plain,region:plain,ward:plain,diagnosis:plain,amount:plain,admitted:plain",
    ]);
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("all.ndjson");
    let (code, stdout, err) = consort(&[
        "--dir",
        &beta,
        "dataset",
        "fetch",
        "alpha/visits",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        summary["verified_by"],
        "commitment (salted-columns openings)"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 42);

    // Malformed requests get one-line errors.
    for (source, needle) in [
        ("alpha", "OWNER/NAME"),
        ("nobody/visits", "nobody"),
        ("alpha/none", "none"),
    ] {
        let (code, _, err) = consort(&[
            "--dir",
            &beta,
            "dataset",
            "fetch",
            source,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{source}");
        assert!(err.contains(needle), "{err}");
    }
}
