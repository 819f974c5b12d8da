//! Joint queries between real node processes over TLS: answers match plain SQLite over the
//! union of the owners' rows (with small groups suppressed), refusals name the column and
//! the missing permission and are recorded, revoked and expired grants stop later queries,
//! bad SQL is rejected before anything is recorded, and an offline owner fails the query
//! within a bounded time with the failure on the ledger.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{ask, assert_rows_match, binary, consort, dir_arg, reference, serial};
use consort_demo::cluster::LocalCluster;
use serde_json::{json, Value};

const GRANT_ALL: &str =
    "region:group+filter,ward:group+filter,age:filter,admitted:filter,amount:aggregate";

/// `members` node processes; the first `owners` take in generated visits.
async fn setup(
    root: &std::path::Path,
    members: usize,
    owners: usize,
    rows: usize,
) -> (LocalCluster, Vec<PathBuf>) {
    let mut cluster = LocalCluster::create(root, members, &binary()).expect("create cluster");
    cluster.start_all().expect("start nodes");
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .expect("nodes ready");
    let mut csvs = Vec::new();
    for i in 0..owners {
        let path = root.join(format!("visits-{i}.csv"));
        consort_demo::visits::write_csv(&path, i, rows + 10 * i, 99, i == 0).unwrap();
        consort_node::datasets::add(
            &cluster.members[i].dir,
            consort_node::datasets::AddRequest {
                name: "visits".into(),
                inputs: vec![path.clone()],
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .await
        .expect("dataset add");
        csvs.push(path);
    }
    (cluster, csvs)
}

fn grant(cluster: &LocalCluster, owner: usize, to: &str, columns: &str, extra: &[&str]) -> String {
    let dir = dir_arg(cluster, owner);
    let mut args = vec![
        "--dir",
        &dir,
        "grant",
        "visits",
        "--to",
        to,
        "--columns",
        columns,
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = consort(&args);
    assert_eq!(code, 0, "grant failed: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joint_queries_match_plain_sqlite_over_the_union() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, csvs) = setup(dir.path(), 3, 3, 120).await;
    for m in 0..3 {
        grant(&cluster, m, "*", GRANT_ALL, &[]);
        // For the row expressions below (each column with its clause's permission).
        grant(
            &cluster,
            m,
            "*",
            "age:group+aggregate+filter,admitted:group+filter",
            &[],
        );
    }
    let db = rusqlite::Connection::open_in_memory().unwrap();
    consort_bench::query::load_reference(&db, &csvs).unwrap();
    let cases = [
        // Row expressions (docs/QUERY.md §1.1), computed by each owner's database.
        (
            "SELECT region, SUM(CASE WHEN age >= 65 THEN 1 ELSE 0 END) AS seniors, AVG(amount / 1000.0) AS k FROM visits GROUP BY region ORDER BY region",
            "SELECT region, SUM(CASE WHEN age >= 65 THEN 1 ELSE 0 END) AS seniors, AVG(amount / 1000.0) AS k FROM visits GROUP BY region HAVING COUNT(*) >= 3 ORDER BY region",
            0,
        ),
        (
            "SELECT EXTRACT(MONTH FROM admitted) AS month, COUNT(*), SUM(amount) FROM visits WHERE age - 18 > 0 GROUP BY 1 ORDER BY 1",
            "SELECT CAST(strftime('%m', admitted) AS INTEGER) AS month, COUNT(*), SUM(amount) FROM visits WHERE age - 18 > 0 GROUP BY 1 HAVING COUNT(*) >= 3 ORDER BY 1",
            0,
        ),
        (
            "SELECT ward, COUNT(*) FROM visits WHERE COALESCE(age, 0) >= 0 AND region <> ward GROUP BY ward ORDER BY 2 DESC, 1",
            "SELECT ward, COUNT(*) FROM visits WHERE COALESCE(age, 0) >= 0 AND region <> ward GROUP BY ward HAVING COUNT(*) >= 3 ORDER BY 2 DESC, 1",
            1,
        ),
        (
            "SELECT CASE WHEN age < 40 THEN 'young' ELSE 'older' END AS band, COUNT(*), MAX(amount) FROM visits GROUP BY band ORDER BY band",
            "SELECT CASE WHEN age < 40 THEN 'young' ELSE 'older' END AS band, COUNT(*), MAX(amount) FROM visits GROUP BY band HAVING COUNT(*) >= 3 ORDER BY band",
            0,
        ),
        ("SELECT COUNT(*) FROM visits", "SELECT COUNT(*) FROM visits", 0),
        (
            "SELECT region, COUNT(*), SUM(amount), AVG(amount), MIN(amount), MAX(amount) FROM visits WHERE age > 30 GROUP BY region ORDER BY region",
            "SELECT region, COUNT(*), SUM(amount), AVG(amount), MIN(amount), MAX(amount) FROM visits WHERE age > 30 GROUP BY region HAVING COUNT(*) >= 3 ORDER BY region",
            0,
        ),
        (
            "SELECT ward, COUNT(*) FROM visits WHERE admitted BETWEEN '2024-03-01' AND '2024-09-30' AND age NOT IN (40, 41) GROUP BY ward HAVING COUNT(*) > 20 ORDER BY ward",
            "SELECT ward, COUNT(*) FROM visits WHERE admitted BETWEEN '2024-03-01' AND '2024-09-30' AND age NOT IN (40, 41) GROUP BY ward HAVING COUNT(*) > 20 AND COUNT(*) >= 3 ORDER BY ward",
            0,
        ),
        (
            "SELECT ward, COUNT(*), MAX(amount) FROM visits GROUP BY ward ORDER BY ward",
            "SELECT ward, COUNT(*), MAX(amount) FROM visits GROUP BY ward HAVING COUNT(*) >= 3 ORDER BY ward",
            1,
        ),
        (
            "SELECT COUNT(*) FROM visits WHERE region = 'north''; DROP TABLE visits; --'",
            "SELECT COUNT(*) FROM visits WHERE region = 'north''; DROP TABLE visits; --'",
            1,
        ),
        (
            "SELECT COUNT(*) AS n FROM \"alpha\".visits WHERE ward LIKE 'ortho%'",
            "SELECT COUNT(*) FROM visits WHERE patient LIKE 'h0-%' AND ward LIKE 'ortho%'",
            0,
        ),
    ];
    for (sql, reference_sql, suppressed) in cases {
        let answer = ask(&cluster, 1, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let want = reference(&db, reference_sql);
        let want: Vec<Vec<Value>> =
            if suppressed == 1 && want.len() == 1 && want[0] == vec![json!(0)] {
                // A count over zero rows is a result built from fewer than k rows.
                Vec::new()
            } else {
                want
            };
        assert_rows_match(sql, &answer, &want, 1e-4);
        assert_eq!(answer["suppressed_groups"], suppressed, "{sql}: {answer}");
        let query_id = answer["query_id"].as_str().unwrap();
        // The requester's node answers once the attested result is committed there; the
        // other nodes may apply that block a moment later.
        let record = cluster.members[1]
            .client
            .get_json(&format!("/api/queries/{query_id}"))
            .await
            .unwrap();
        assert_eq!(record["status"], "answered", "{record}");
        assert_eq!(
            record["decisions"].as_array().unwrap().len(),
            record["datasets"].as_array().unwrap().len(),
            "{record}"
        );
        assert_eq!(record["result"]["status"], "revealed", "{record}");
    }
    // EXPLAIN describes the plan and records nothing.
    let explained = ask(
        &cluster,
        1,
        "EXPLAIN SELECT region, COUNT(*) FROM visits WHERE age > 30 GROUP BY region",
    )
    .await
    .unwrap();
    let text = explained["rows"].to_string();
    assert!(text.contains("keeps the rows where age > 30"), "{text}");
    assert!(text.contains("revealed to the requester"), "{text}");
    // The injection attempt was data: every owner's table is still there.
    let answer = ask(&cluster, 0, "SELECT COUNT(*) FROM visits")
        .await
        .unwrap();
    assert_rows_match(
        "count",
        &answer,
        &reference(&db, "SELECT COUNT(*) FROM visits"),
        1e-4,
    );

    let (code, out, err) = consort(&["--dir", &dir_arg(&cluster, 1), "queries", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), cases.len() + 1);
    let (code, _, err) = consort(&["--dir", &dir_arg(&cluster, 2), "ledger", "verify"]);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_refuse_by_their_own_grants_and_refusals_are_recorded() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _) = setup(dir.path(), 3, 3, 30).await;
    // alpha lets beta group by region and filter on age only; the others allow everything.
    grant(&cluster, 0, "beta", "region:group,age:filter", &[]);
    let gamma_grant = grant(&cluster, 2, "*", GRANT_ALL, &[]);
    grant(&cluster, 1, "*", GRANT_ALL, &[]);

    let refused = ask(
        &cluster,
        1,
        "SELECT region, SUM(amount) FROM visits GROUP BY region",
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("alpha") && refused.contains("amount") && refused.contains("aggregate"),
        "{refused}"
    );
    let refused = ask(&cluster, 1, "SELECT age, COUNT(*) FROM visits GROUP BY age")
        .await
        .unwrap_err();
    assert!(
        refused.contains("age") && refused.contains("group"),
        "{refused}"
    );
    let allowed = "SELECT region, COUNT(*) FROM visits WHERE age > 20 GROUP BY region";
    ask(&cluster, 1, allowed).await.expect("allowed query");

    // Bad SQL is rejected before anything is recorded.
    let before = cluster.members[1]
        .client
        .get_json("/api/queries")
        .await
        .unwrap();
    for (sql, needle) in [
        ("SELECT COUNT(*) FROM nosuch", "nosuch"),
        (
            "SELECT region, COUNT(*) FROM visits GROUP BY colour",
            "colour",
        ),
        ("SELECT COUNT(*) FROM visits WHERE age > 'old'", "age"),
        (
            "SELECT region FROM visits a JOIN visits b ON a.region = b.region",
            "join",
        ),
        ("DELETE FROM visits", "delete"),
    ] {
        let e = ask(&cluster, 1, sql).await.unwrap_err();
        assert!(e.to_lowercase().contains(needle), "{sql}: {e}");
    }
    let after = cluster.members[1]
        .client
        .get_json("/api/queries")
        .await
        .unwrap();
    assert_eq!(before, after);

    // Revoked: gamma's grant no longer counts.
    let (code, _, err) = consort(&["--dir", &dir_arg(&cluster, 2), "revoke", &gamma_grant]);
    assert_eq!(code, 0, "{err}");
    let refused = ask(&cluster, 1, allowed).await.unwrap_err();
    assert!(refused.contains("gamma"), "{refused}");
    // Only the owner may revoke.
    let (code, _, err) = consort(&["--dir", &dir_arg(&cluster, 1), "revoke", &gamma_grant]);
    assert_eq!(code, 1);
    assert!(
        err.contains("NotOwner") && !err.trim().contains('\n'),
        "{err}"
    );

    // Expired: a grant that lapses refuses later queries.
    grant(
        &cluster,
        2,
        "beta",
        "region:group,age:filter",
        &["--expires", "8s"],
    );
    ask(&cluster, 1, allowed).await.expect("before expiry");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let refused = ask(&cluster, 1, allowed).await.unwrap_err();
    assert!(refused.contains("gamma"), "{refused}");

    let (code, out, _) = consort(&["--dir", &dir_arg(&cluster, 1), "queries", "--json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let statuses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "refused").count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "answered").count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offline_owner_fails_the_query_in_bounded_time() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _) = setup(dir.path(), 4, 4, 20).await;
    for m in 0..4 {
        grant(&cluster, m, "*", GRANT_ALL, &[]);
    }
    // An owner other than the requester and the leader goes away.
    let leader = cluster.leader().await.unwrap();
    let victim = (1..4).find(|m| *m != leader).unwrap();
    let victim_name = cluster.members[victim].name.clone();
    cluster.kill(victim).unwrap();
    let started = Instant::now();
    let e = ask(&cluster, 0, "SELECT COUNT(*) FROM visits")
        .await
        .unwrap_err();
    assert!(e.contains(&victim_name) && e.contains("no decision"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let listed = cluster.members[0]
        .client
        .get_json("/api/queries")
        .await
        .unwrap();
    assert_eq!(listed[0]["status"], "failed", "{listed}");
    let id = listed[0]["query_id"].as_str().unwrap();
    let record = cluster.members[0]
        .client
        .get_json(&format!("/api/queries/{id}"))
        .await
        .unwrap();
    assert!(
        record["result"]["reason"]
            .as_str()
            .unwrap()
            .contains(&victim_name),
        "{record}"
    );
}
