//! `consort bench query --query distinct|median`: three member processes each hold a
//! `readings` dataset (`person` text, `x` an integer below 2^40), drawn from one shared
//! pool so that many values are held by several members, and answer `COUNT(DISTINCT x)`
//! (and, recorded once, `COUNT(DISTINCT person)`) or `MEDIAN(x)` end to end: value lists
//! shared by every owner, sorted within groups in MPC. Plain SQLite answers the same over
//! all the rows together; the answers must agree.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use consort_demo::cluster::LocalCluster;
use consort_demo::output::print_json;

use crate::query::{ingest_each, timed_runs};

/// Which value-list aggregate to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordered {
    Distinct,
    Median,
}

/// The timed query of each kind.
pub fn sql_of(which: Ordered) -> &'static str {
    match which {
        Ordered::Distinct => "SELECT COUNT(DISTINCT x) FROM readings",
        Ordered::Median => "SELECT MEDIAN(x) FROM readings",
    }
}

/// Distinct text values, timed once and recorded beside `COUNT(DISTINCT x)`.
pub const TEXT_SQL: &str = "SELECT COUNT(DISTINCT person) FROM readings";

const VALUE_MASK: u64 = (1 << 40) - 1;

/// SplitMix64: a fixed, well-spread map from pool index to value.
fn spread(j: u64) -> u64 {
    let mut z = j.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One member's readings: `rows` draws from a pool of 2·`rows` (person, x) pairs shared
/// by every member.
fn write_csv(path: &Path, member: usize, rows: usize) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = StdRng::seed_from_u64(0x5eed ^ member as u64);
    writeln!(out, "person,x")?;
    let pool = 2 * rows.max(1) as u64;
    for _ in 0..rows {
        let j = rng.gen_range(0..pool);
        writeln!(out, "p{j},{}", spread(j) & VALUE_MASK)?;
    }
    out.flush()?;
    Ok(())
}

fn load_reference(db: &rusqlite::Connection, csvs: &[PathBuf]) -> Result<()> {
    db.execute_batch(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
         CREATE TABLE readings (person TEXT, x INTEGER);",
    )?;
    let tx = db.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO readings VALUES (?1, ?2)")?;
        for path in csvs {
            for line in std::fs::read_to_string(path)?.lines().skip(1) {
                let Some((person, x)) = line.split_once(',') else {
                    bail!("unexpected line in {}: {line}", path.display());
                };
                insert.execute(rusqlite::params![person, x.parse::<i64>()?])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// SQLite's answer and time: COUNT(DISTINCT) natively; the median (which SQLite lacks)
/// from the one or two middle values of `ORDER BY x`.
fn reference(db: &rusqlite::Connection, sql: &str, which: Ordered) -> Result<(f64, f64)> {
    let started = Instant::now();
    let value = match which {
        Ordered::Distinct => db.query_row(sql, [], |r| r.get::<_, i64>(0))? as f64,
        Ordered::Median => {
            let n: i64 = db.query_row("SELECT COUNT(x) FROM readings", [], |r| r.get(0))?;
            let mut st = db.prepare("SELECT x FROM readings ORDER BY x LIMIT 2 OFFSET ?1")?;
            let mid: Vec<i64> = st
                .query_map([(n - 1) / 2], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            match (n % 2, mid.as_slice()) {
                (1, [a, ..]) => *a as f64,
                (0, [a, b]) => (*a as f64 + *b as f64) / 2.0,
                _ => bail!("no readings"),
            }
        }
    };
    Ok((started.elapsed().as_secs_f64(), value))
}

fn answer_value(answer: &serde_json::Value) -> Result<f64> {
    answer["rows"][0][0]
        .as_f64()
        .with_context(|| format!("no value in the answer {answer}"))
}

pub async fn run(rows: usize, runs: usize, which: Ordered, json_out: bool) -> Result<i32> {
    let (temp, mut cluster) = LocalCluster::start_temp("consort-bench-ordered-", 3).await?;
    let note = |s: String| {
        if !json_out {
            eprintln!("{s}");
        }
    };
    let csvs = ingest_each(&cluster, temp.path(), "readings", rows, &note, |path, i| {
        write_csv(path, i, rows)
    })
    .await?;
    for member in &cluster.members {
        consort_demo::queries::grant(member, "readings", "person:aggregate,x:aggregate", &|s| {
            note(s)
        })
        .await?;
    }
    let result = measure(&cluster, temp.path(), &csvs, rows, runs, which, json_out).await;
    for i in 0..cluster.members.len() {
        cluster.stop(i)?;
    }
    result
}

async fn measure(
    cluster: &LocalCluster,
    dir: &Path,
    csvs: &[PathBuf],
    rows: usize,
    runs: usize,
    which: Ordered,
    json_out: bool,
) -> Result<i32> {
    let sql = sql_of(which);
    let requester = &cluster.members[0];
    let (seconds, answer) = timed_runs(requester, sql, runs, 600).await?;
    let got = answer_value(&answer)?;
    let text = if which == Ordered::Distinct {
        let (t, a) = timed_runs(requester, TEXT_SQL, 1, 600).await?;
        Some((t[0], answer_value(&a)?))
    } else {
        None
    };
    let db = rusqlite::Connection::open(dir.join("reference.sqlite"))?;
    load_reference(&db, csvs)?;
    let (sqlite_seconds, want) = reference(&db, sql, which)?;
    // Integers are exact; a median of two is within the 2^-16 fixed point.
    if (got - want).abs() > 1e-3 {
        bail!("consort answered {got} to {sql}, SQLite {want}");
    }
    let text_check = match text {
        Some((t, got_text)) => {
            let (sqlite_t, want_text) = reference(&db, TEXT_SQL, Ordered::Distinct)?;
            if got_text != want_text {
                bail!("consort answered {got_text} to {TEXT_SQL}, SQLite {want_text}");
            }
            Some((t, sqlite_t, got_text))
        }
        None => None,
    };
    let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio = best / sqlite_seconds.max(1e-9);
    if json_out {
        print_json(&json!({
            "rows_per_member": rows, "members": 3, "sql": sql,
            "answer": got, "consort_seconds": best, "consort_runs": seconds,
            "sqlite_seconds": sqlite_seconds, "ratio": ratio, "verified": true,
            "text_sql": text_check.map(|_| TEXT_SQL),
            "text_consort_seconds": text_check.map(|t| t.0),
            "text_sqlite_seconds": text_check.map(|t| t.1),
            "text_answer": text_check.map(|t| t.2),
        }));
    } else {
        println!("query: {sql}");
        println!(
            "consort (3 members x {rows} rows, MPC over TLS, end to end): {best:.3} s (best of {}: {}); answer {got}",
            seconds.len(),
            seconds.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
        );
        println!(
            "plain SQLite over all {} rows: {sqlite_seconds:.3} s",
            3 * rows
        );
        println!("price of privacy: {ratio:.2}x; the answers agree");
        if let Some((t, s, v)) = text_check {
            println!("{TEXT_SQL}: consort {t:.3} s, SQLite {s:.3} s; both {v}");
        }
    }
    Ok(0)
}
