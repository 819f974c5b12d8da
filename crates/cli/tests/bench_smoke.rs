//! Every `consort bench` command that docs/BENCHMARKS.md names, at a small size, so that a
//! documented benchmark cannot break unnoticed (`bench query` once failed on a grant for a
//! dataset only the join bench creates). Each checks its own answer against a reference
//! where it has one (MPC against plaintext, the query against SQLite), and that is what
//! these tests assert, not timings.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{consort, serial};
use serde_json::Value;

/// Runs `consort bench ARGS --json` and returns its JSON report.
fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, out, err) = consort(&all);
    assert_eq!(code, 0, "consort {}: {err}", all.join(" "));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_ledger_commits_every_transaction() {
    let _guard = serial().await;
    let report = bench(&[
        "ledger",
        "--nodes",
        "3",
        "--txs",
        "400",
        "--clients",
        "4",
        "--batch",
        "16",
    ]);
    assert_eq!(report["committed"], 400, "{report}");
}

#[test]
fn bench_plan_plans_both_ways() {
    let report = bench(&["plan", "--iterations", "20", "--runs", "1"]);
    assert!(report.is_object(), "{report}");
}

#[test]
fn bench_ingest_runs_both_commitments_and_the_pipeline_alone() {
    let report = bench(&[
        "ingest",
        "--rows",
        "3000",
        "--runs",
        "1",
        "--stages",
        "--row-hash",
    ]);
    assert_eq!(
        report["consort"]["rows_kept"].as_u64().unwrap()
            + report["consort"]["duplicates_removed"].as_u64().unwrap()
            + report["consort"]["rows_rejected"].as_u64().unwrap(),
        3000,
        "{report}"
    );
    assert!(
        report["consort_row_hash"]["seconds"].is_number(),
        "{report}"
    );
    assert!(report["pipeline_only"]["seconds"].is_number(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_mpc_checks_each_operation_against_plaintext() {
    let _guard = serial().await;
    for op in ["mul", "lt", "min", "sort", "sum"] {
        let report = bench(&["mpc", "--op", op, "--n", "500"]);
        assert_eq!(report["verified"], true, "{op}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_psi_finds_the_intersection() {
    let _guard = serial().await;
    let report = bench(&["psi", "--n", "500"]);
    assert_eq!(report["verified"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_query_over_the_union_matches_sqlite() {
    let _guard = serial().await;
    let report = bench(&["query", "--rows", "300", "--runs", "1"]);
    assert_eq!(report["verified"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_query_with_expressions_matches_sqlite() {
    let _guard = serial().await;
    let report = bench(&["query", "--query", "expr", "--rows", "300", "--runs", "1"]);
    assert_eq!(report["verified"], true, "{report}");
    assert!(report["expr_ratio"].as_f64().is_some(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_query_distinct_and_median_match_sqlite() {
    let _guard = serial().await;
    let report = bench(&[
        "query", "--query", "distinct", "--rows", "300", "--runs", "1",
    ]);
    assert_eq!(report["verified"], true, "{report}");
    // 900 draws from a pool of 600 shared by the three members: many values repeat.
    let distinct = report["answer"].as_f64().unwrap();
    assert!(distinct > 300.0 && distinct < 600.0, "{report}");
    assert_eq!(report["text_answer"], report["answer"], "{report}");
    let report = bench(&["query", "--query", "median", "--rows", "300", "--runs", "1"]);
    assert_eq!(report["verified"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_query_join_matches_sqlite() {
    let _guard = serial().await;
    let report = bench(&["query", "--join", "--rows", "300", "--runs", "1"]);
    assert_eq!(report["verified"], true, "{report}");
}
