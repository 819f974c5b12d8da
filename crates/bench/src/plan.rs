//! `consort bench plan`: what the hostile-SQL bounds cost an honest query. Times planning
//! of typical and large queries with `consort_query::plan` (lexical limits, depth bound, a
//! planning thread) against the unbounded planner of the build before (parse and walk on
//! the caller's stack), interleaved in one run, and reports medians.

use std::time::Instant;

use anyhow::{bail, Result};
use consort_crypto::{Hash, MemberId};
use consort_ledger::dataset::{ColumnSpec, DatasetEntry, DatasetKind, DatasetRecord};
use consort_query::plan::Catalog;
use serde_json::json;

use consort_demo::output::print_json;

/// What `consort bench plan` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Plans per timed run.
    pub iterations: u32,
    /// Timed runs of each side, interleaved; medians are reported.
    pub runs: u32,
    pub json: bool,
}

fn catalog() -> Catalog {
    let columns = [
        ("region", "text"),
        ("ward", "text"),
        ("age", "integer"),
        ("amount", "float"),
    ]
    .iter()
    .map(|(name, ty)| ColumnSpec {
        name: name.to_string(),
        ty: ty.to_string(),
        nullable: false,
    })
    .collect::<Vec<_>>();
    let datasets = (0..3u8)
        .map(|i| DatasetEntry {
            owner: MemberId([i; 16]),
            record: DatasetRecord {
                name: "visits".into(),
                kind: DatasetKind::Table,
                columns: columns.clone(),
                row_count: 1_000,
                commitment: Hash::ZERO,
                input_hash: Hash::ZERO,
                recipe_hash: Hash::ZERO,
                version: 1,
                parent: None,
                commitment_scheme: Default::default(),
            },
            tx_id: Hash::ZERO,
        })
        .collect();
    Catalog {
        members: (0..3u8)
            .map(|i| (MemberId([i; 16]), format!("m{i}")))
            .collect(),
        datasets,
    }
}

fn workloads() -> Vec<(&'static str, String)> {
    let typical = "SELECT region, COUNT(*), AVG(amount) FROM visits WHERE age >= 18 AND \
                   ward <> 'icu' GROUP BY region HAVING COUNT(*) > 5 ORDER BY region LIMIT 10"
        .to_string();
    let wards: Vec<String> = (0..1_000).map(|i| format!("'ward-{i}'")).collect();
    let large = format!(
        "SELECT region, SUM(amount) FROM visits WHERE ward IN ({}) AND age > 21 \
         GROUP BY region",
        wards.join(", ")
    );
    let terms: Vec<String> = (0..100).map(|i| format!("age <> {i}")).collect();
    let wide = format!("SELECT COUNT(*) FROM visits WHERE {}", terms.join(" AND "));
    vec![
        ("typical (1 line)", typical),
        ("IN list of 1,000", large),
        ("100 AND terms", wide),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: Options) -> Result<i32> {
    if args.iterations == 0 || args.runs == 0 {
        bail!("--iterations and --runs must be at least 1");
    }
    let catalog = catalog();
    let mut report = Vec::new();
    for (name, sql) in workloads() {
        let (mut bounded, mut unbounded) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let started = Instant::now();
            for _ in 0..args.iterations {
                consort_query::bounds::plan_unbounded_for_bench(&sql, &catalog)?;
            }
            unbounded.push(started.elapsed().as_secs_f64() * 1e6 / args.iterations as f64);
            let started = Instant::now();
            for _ in 0..args.iterations {
                consort_query::plan(&sql, &catalog)?;
            }
            bounded.push(started.elapsed().as_secs_f64() * 1e6 / args.iterations as f64);
        }
        let (b, u) = (median(bounded), median(unbounded));
        if !args.json {
            println!(
                "{name:<18} {:>6} bytes  bounded {b:>9.1} µs  unbounded (previous) {u:>9.1} µs  ratio {:.2}×",
                sql.len(),
                b / u
            );
        }
        report.push(json!({
            "workload": name, "sql_bytes": sql.len(),
            "bounded_us": b, "unbounded_us": u, "ratio": b / u,
        }));
    }
    // The hostile requests of issue 15 are refused. The unbounded planner overflowed a
    // node's stack on the first, so only the refusal is timed.
    let hostile = [
        ("65 KB 1+1+… chain", {
            let head = "SELECT COUNT(*) FROM visits WHERE age > 1";
            head.to_string() + &"+1".repeat((65_536 - head.len()) / 2)
        }),
        ("1,000-deep + chain", {
            format!(
                "SELECT COUNT(*) FROM visits WHERE age > 1{}",
                " + 1".repeat(1_000)
            )
        }),
    ];
    for (name, sql) in hostile {
        let mut refused = Vec::new();
        for _ in 0..args.runs {
            let started = Instant::now();
            for _ in 0..args.iterations.div_ceil(10) {
                if consort_query::plan(&sql, &catalog).is_ok() {
                    bail!("{name} was planned; it must be refused");
                }
            }
            refused
                .push(started.elapsed().as_secs_f64() * 1e6 / args.iterations.div_ceil(10) as f64);
        }
        let r = median(refused);
        if !args.json {
            println!(
                "{name:<18} {:>6} bytes  refused {r:>9.1} µs  (not given to the unbounded planner)",
                sql.len()
            );
        }
        report.push(json!({ "workload": name, "sql_bytes": sql.len(), "refused_us": r }));
    }
    if args.json {
        print_json(&json!({ "iterations": args.iterations, "runs": args.runs, "results": report }));
    }
    Ok(0)
}
