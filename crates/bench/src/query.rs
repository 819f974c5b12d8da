//! `consort bench query`: three member processes with generated visits each (1,000,000
//! rows by default) answer one grouped joint query end to end — request, decisions, local
//! pushdown, MPC, reveal and attestation — and the same query runs in plain SQLite over
//! all the rows together. Prints both times and their ratio (the price of privacy), and
//! fails if the two answers differ.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use consort_demo::cluster::{LocalCluster, LocalMember};
use consort_demo::output::print_json;

/// What `consort bench query` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Visits per member (with `join`: visits of the first member and as many follow-ups
    /// of the second).
    pub rows: usize,
    /// Time the JOIN of two members' datasets ([`crate::join`]) instead of the grouped
    /// query over the union.
    pub join: bool,
    /// Timed runs of the joint query (the best is reported; with `expressions`, the
    /// median of interleaved runs).
    pub runs: usize,
    /// Time [`EXPR_SQL`] against [`BENCH_SQL`] (the same query without expressions),
    /// interleaved, instead of the grouped query alone.
    pub expressions: bool,
    pub json: bool,
}

/// The benchmark's query (issue 5).
pub const BENCH_SQL: &str = "SELECT region, COUNT(*), SUM(amount), AVG(amount), MAX(amount) FROM visits WHERE age > 30 GROUP BY region";

/// [`BENCH_SQL`] with three row expressions pushed down to the owners (issue 18).
pub const EXPR_SQL: &str = "SELECT region, COUNT(*), SUM(amount * 1.1 - 5.0), AVG(CASE WHEN amount > 100.0 THEN amount ELSE 0.0 END), MAX(ABS(amount - 100.0)) FROM visits WHERE age > 30 GROUP BY region";

pub async fn run(args: Options) -> Result<i32> {
    if args.join {
        return crate::join::run(args.rows, args.runs, args.json).await;
    }
    let (temp, mut cluster) = LocalCluster::start_temp("consort-bench-query-", 3).await?;
    let note = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    let csvs = ingest_each(
        &cluster,
        temp.path(),
        "visits",
        args.rows,
        &note,
        |path, i| consort_demo::visits::write_csv(path, i, args.rows, 7, false),
    )
    .await?;
    // Only the visits: the follow-ups exist in the join bench alone.
    consort_demo::queries::grant_visits(&cluster, &|s| note(s)).await?;

    if args.expressions {
        let result = expressions(&cluster, temp.path(), &csvs, &args).await;
        for i in 0..cluster.members.len() {
            cluster.stop(i)?;
        }
        return result;
    }
    let (runs, answer) = timed_runs(&cluster.members[0], BENCH_SQL, args.runs, 300).await?;
    let consort_seconds = runs.iter().copied().fold(f64::INFINITY, f64::min);

    let db = rusqlite::Connection::open(temp.path().join("reference.sqlite"))?;
    load_reference(&db, &csvs)?;
    let (sqlite_seconds, reference) = plain_sqlite(&db, BENCH_SQL)?;
    check_same(&answer, &reference)?;
    let ratio = consort_seconds / sqlite_seconds.max(1e-9);
    if args.json {
        print_json(&json!({
            "rows_per_member": args.rows, "members": 3, "sql": BENCH_SQL,
            "consort_seconds": consort_seconds, "consort_runs": runs,
            "sqlite_seconds": sqlite_seconds, "ratio": ratio, "verified": true,
            "answer": answer,
        }));
    } else {
        println!("query: {BENCH_SQL}");
        println!(
            "consort (3 members x {} rows, MPC over TLS, end to end): {consort_seconds:.3} s (best of {}: {})",
            args.rows,
            runs.len(),
            runs.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
        );
        println!(
            "plain SQLite over all {} rows: {sqlite_seconds:.3} s",
            3 * args.rows
        );
        println!("price of privacy: {ratio:.2}x; the answers agree");
    }
    for i in 0..cluster.members.len() {
        cluster.stop(i)?;
    }
    Ok(0)
}

/// Writes each member's CSV of `dataset` with `write(path, member index)` and takes it in
/// at that member (no deduplication); returns the CSVs, for the SQLite reference.
pub(crate) async fn ingest_each(
    cluster: &LocalCluster,
    dir: &std::path::Path,
    dataset: &str,
    rows: usize,
    note: &dyn Fn(String),
    write: impl Fn(&std::path::Path, usize) -> Result<()>,
) -> Result<Vec<std::path::PathBuf>> {
    let mut csvs = Vec::new();
    for (i, member) in cluster.members.iter().enumerate() {
        let path = dir.join(format!("{}-{dataset}.csv", member.name));
        write(&path, i)?;
        let started = Instant::now();
        consort_node::datasets::add(
            &member.dir,
            consort_node::datasets::AddRequest {
                name: dataset.into(),
                inputs: vec![path.clone()],
                dedup: Some("none".into()),
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .await?;
        note(format!(
            "{} took in {rows} {dataset} rows in {:.1}s",
            member.name,
            started.elapsed().as_secs_f64()
        ));
        csvs.push(path);
    }
    Ok(csvs)
}

/// Asks `sql` from `requester` `runs` times (at least once), each allowed `timeout_secs`;
/// returns every run's seconds, end to end, and the last answer.
pub(crate) async fn timed_runs(
    requester: &LocalMember,
    sql: &str,
    runs: usize,
    timeout_secs: u64,
) -> Result<(Vec<f64>, Value)> {
    let mut seconds = Vec::new();
    let mut answer = Value::Null;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        answer = requester
            .client
            .post_json_waiting(
                "/api/query",
                &json!({ "sql": sql, "timeout_secs": timeout_secs }),
                Duration::from_secs(timeout_secs + 20),
            )
            .await?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    Ok((seconds, answer))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `--query expr`: [`BENCH_SQL`] and [`EXPR_SQL`] asked in turn `runs` times each (so
/// drift hits both alike); reports the medians, their ratio, and SQLite's times for both.
async fn expressions(
    cluster: &LocalCluster,
    dir: &std::path::Path,
    csvs: &[std::path::PathBuf],
    args: &Options,
) -> Result<i32> {
    let requester = &cluster.members[0];
    let (mut plain_runs, mut expr_runs) = (Vec::new(), Vec::new());
    let (mut plain_answer, mut expr_answer) = (Value::Null, Value::Null);
    for _ in 0..args.runs.max(1) {
        let (t, a) = timed_runs(requester, BENCH_SQL, 1, 300).await?;
        plain_runs.extend(t);
        plain_answer = a;
        let (t, a) = timed_runs(requester, EXPR_SQL, 1, 300).await?;
        expr_runs.extend(t);
        expr_answer = a;
    }
    let db = rusqlite::Connection::open(dir.join("reference.sqlite"))?;
    load_reference(&db, csvs)?;
    let (sqlite_plain, reference) = plain_sqlite(&db, BENCH_SQL)?;
    check_same(&plain_answer, &reference)?;
    let (sqlite_expr, reference) = plain_sqlite(&db, EXPR_SQL)?;
    check_same(&expr_answer, &reference)?;
    let (plain, expr) = (median(&plain_runs), median(&expr_runs));
    let ratio = expr / plain.max(1e-9);
    if args.json {
        print_json(&json!({
            "rows_per_member": args.rows, "members": 3,
            "sql": BENCH_SQL, "expr_sql": EXPR_SQL,
            "consort_seconds": plain, "consort_runs": plain_runs,
            "consort_expr_seconds": expr, "consort_expr_runs": expr_runs,
            "expr_ratio": ratio,
            "sqlite_seconds": sqlite_plain, "sqlite_expr_seconds": sqlite_expr,
            "verified": true,
        }));
    } else {
        println!("query without expressions: {BENCH_SQL}");
        println!("query with three pushed-down expressions: {EXPR_SQL}");
        println!(
            "consort (3 members x {} rows, median of {} interleaved runs): {plain:.3} s without, {expr:.3} s with; ratio {ratio:.2}x",
            args.rows,
            plain_runs.len()
        );
        println!(
            "plain SQLite over all {} rows: {sqlite_plain:.3} s without, {sqlite_expr:.3} s with; the answers agree",
            3 * args.rows
        );
    }
    Ok(0)
}

/// Times `sql` (grouped by region) in the reference database. Returns the time and the
/// rows as (region, count, sum, avg, max).
fn plain_sqlite(db: &rusqlite::Connection, sql: &str) -> Result<(f64, Vec<Value>)> {
    let started = Instant::now();
    let mut statement = db.prepare(&format!("{sql} ORDER BY region"))?;
    let rows = statement
        .query_map([], |r| {
            Ok(json!([
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, f64>(3)?,
                r.get::<_, f64>(4)?
            ]))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((started.elapsed().as_secs_f64(), rows))
}

/// Creates table `visits` in `db` with the rows of the generated CSVs (the plaintext
/// reference for the benchmark and the tests).
pub fn load_reference(db: &rusqlite::Connection, csvs: &[std::path::PathBuf]) -> Result<()> {
    db.execute_batch(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
         CREATE TABLE visits (patient TEXT, age INTEGER, region TEXT, ward TEXT, diagnosis TEXT, amount DOUBLE PRECISION, admitted DATE);",
    )?;
    let tx = db.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO visits VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
        for path in csvs {
            let text = std::fs::read_to_string(path)?;
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(',').collect();
                if f.len() != 7 {
                    bail!("unexpected line in {}: {line}", path.display());
                }
                let age: i64 = f[1].parse()?;
                let amount: f64 = f[5].parse()?;
                insert.execute(rusqlite::params![f[0], age, f[2], f[3], f[4], amount, f[6]])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn check_same(answer: &Value, reference: &[Value]) -> Result<()> {
    let mut got: Vec<Value> = answer["rows"].as_array().cloned().unwrap_or_default();
    got.sort_by_key(|r| r[0].as_str().unwrap_or("").to_string());
    if got.len() != reference.len() {
        bail!(
            "consort returned {} groups, SQLite {}",
            got.len(),
            reference.len()
        );
    }
    for (g, r) in got.iter().zip(reference) {
        let close = |i: usize, tol: f64| {
            let (a, b) = (
                g[i].as_f64().unwrap_or(f64::NAN),
                r[i].as_f64().unwrap_or(f64::NAN),
            );
            (a - b).abs() <= 1e-4 + tol * b.abs()
        };
        // Fixed point with 16 fractional bits rounds each owner's partial by up to 2^-17.
        if g[0] != r[0] || g[1] != r[1] || !close(2, 1e-9) || !close(3, 1e-9) || !close(4, 0.0) {
            bail!("consort answered {g}, SQLite {r}");
        }
    }
    Ok(())
}
