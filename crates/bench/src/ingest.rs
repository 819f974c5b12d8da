//! `consort bench ingest`: a generated CSV ingested into SQLite by the real pipeline
//! (clean, dedup, commit), against `sqlite3 .import` of the same file.
//!
//! The machines this runs on share their cores with neighbours, so a single timing varies
//! by tens of percent from one minute to the next. Each side therefore runs several times,
//! interleaved so that both meet the same conditions, and the medians are compared.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::json;

use consort_demo::output::print_json;

/// What `consort bench ingest` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows to generate.
    pub rows: u64,
    /// Also time the pipeline alone (no database).
    pub stages: bool,
    /// Runs of each side, interleaved; medians are reported.
    pub runs: usize,
    /// Also run consort with the row-hash commitment, to show what hiding costs.
    pub row_hash: bool,
    pub json: bool,
}

/// Writes `rows` CSV rows of mixed types: about 5% repeat an earlier row, about 1% are
/// malformed (a missing field).
fn generate_csv(path: &Path, rows: u64) -> Result<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "id,name,score,active,joined,updated,note")?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..rows {
        let r = next();
        let id = if r % 100 < 5 && i > 0 { r % i } else { i };
        let h = id.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if r % 100 == 99 {
            writeln!(out, "{id},broken row")?;
            continue;
        }
        writeln!(
            out,
            "{id},name-{},{}.{:02},{},20{:02}-{:02}-{:02},2024-{:02}-{:02} {:02}:{:02}:{:02},\"note {} with, a comma\"",
            h % 100_000,
            h % 1000,
            h % 100,
            h % 2 == 0,
            10 + h % 15,
            1 + h % 12,
            1 + h % 28,
            1 + h % 12,
            1 + h % 28,
            h % 24,
            h % 60,
            (h >> 8) % 60,
            h % 997
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The commitment of a run: salted columns (what `dataset add` does under rule version 3)
/// or the old row hash (to show what hiding costs).
fn ingest_options(
    reject_path: std::path::PathBuf,
    salted: bool,
) -> consort_data::pipeline::IngestOptions {
    use consort_data::hiding::{RowCommitment, RowSalter};
    consort_data::pipeline::IngestOptions {
        dedup: Some(consort_data::recipe::Dedup::All),
        reject_path,
        commitment: if salted {
            RowCommitment::SaltedColumns(std::sync::Arc::new(RowSalter::new(
                &rand::random(),
                "bench",
                1,
            )))
        } else {
            RowCommitment::RowHash
        },
        ..Default::default()
    }
}

/// The pipeline alone: the same work, rows dropped instead of written.
async fn pipeline_alone(csv: &Path, dir: &Path) -> Result<f64> {
    let inputs = vec![csv.to_path_buf()];
    let options = ingest_options(dir.join("rejects-pipeline.ndjson"), true);
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        consort_data::pipeline::ingest(&inputs, &options, &mut |_rows| Ok(()), &mut |_| {})
    })
    .await??;
    Ok(started.elapsed().as_secs_f64())
}

/// CPU seconds (user and system) this process has used so far, over all its threads.
/// Less noisy than wall time on shared machines, where a neighbour slows every stage.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given, which lives on this stack.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One end-to-end ingest into a fresh SQLite store, as `dataset add` does it; returns the
/// wall and CPU seconds it took.
async fn consort_run(
    csv: &Path,
    dir: &Path,
    salted: bool,
) -> Result<(f64, f64, consort_data::pipeline::IngestReport)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let db = dir.join("consort.sqlite");
    let store = consort_store::open_store(&format!("sqlite://{}?mode=rwc", db.display())).await?;
    let options = ingest_options(dir.join("rejects.ndjson"), salted);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let report = consort_node::datasets::stream_into_table(
        store.as_ref(),
        "ds_bench_v1",
        vec![csv.to_path_buf()],
        options,
        Box::new(|_| {}),
        |_| Ok(()),
    )
    .await?;
    Ok((
        started.elapsed().as_secs_f64(),
        process_cpu_seconds() - cpu_before,
        report,
    ))
}

/// sqlite3's own CSV import of the same file into a fresh database, with no cleaning.
fn import_run(csv: &Path, db: &Path) -> Result<Option<f64>> {
    let _ = std::fs::remove_file(db);
    let mut import = std::process::Command::new("sqlite3");
    import
        .arg(db)
        .arg(format!(".import --csv {} t", csv.display()))
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    match import.status() {
        Ok(status) if status.success() => Ok(Some(started.elapsed().as_secs_f64())),
        Ok(status) => bail!("sqlite3 .import failed: {status}"),
        Err(_) => Ok(None),
    }
}

pub async fn run(args: Options) -> Result<i32> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let temp = tempfile::Builder::new()
        .prefix("consort-bench-ingest-")
        .tempdir()?;
    let csv = temp.path().join("input.csv");
    eprintln!("generating {} rows...", args.rows);
    let bytes = generate_csv(&csv, args.rows)?;
    let mb = bytes as f64 / 1_000_000.0;

    let mut pipeline = Vec::new();
    let mut ours = Vec::new();
    let mut ours_cpu = Vec::new();
    let mut imports = Vec::new();
    let mut row_hash = Vec::new();
    let mut row_hash_cpu = Vec::new();
    let mut report = None;
    for run in 0..args.runs {
        if args.stages {
            pipeline.push(pipeline_alone(&csv, temp.path()).await?);
        }
        let (secs, cpu, r) = consort_run(&csv, &temp.path().join("store"), true).await?;
        ours.push(secs);
        ours_cpu.push(cpu);
        report = Some(r);
        if let Some(secs) = import_run(&csv, &temp.path().join("import.sqlite"))? {
            imports.push(secs);
        }
        if args.row_hash {
            let (secs, cpu, _) = consort_run(&csv, &temp.path().join("store"), false).await?;
            row_hash.push(secs);
            row_hash_cpu.push(cpu);
        }
        eprintln!(
            "run {}: consort {:.2} s ({cpu:.2} CPU s), .import {}, row-hash commitment {}",
            run + 1,
            secs,
            imports.last().map_or("-".into(), |s| format!("{s:.2} s")),
            row_hash.last().map_or("-".into(), |s| format!("{s:.2} s"))
        );
    }
    let Some(report) = report else {
        bail!("no run");
    };
    let ours_median = median(&ours);
    let import_median = (!imports.is_empty()).then(|| median(&imports));
    let pipeline_median = (!pipeline.is_empty()).then(|| median(&pipeline));
    let value = json!({
        "rows": args.rows,
        "bytes": bytes,
        "runs": args.runs,
        "consort": {
            "seconds": ours_median, "all_seconds": ours,
            "cpu_seconds": median(&ours_cpu), "all_cpu_seconds": ours_cpu,
            "mb_per_s": mb / ours_median, "rows_per_s": args.rows as f64 / ours_median,
            "rows_kept": report.rows_kept, "duplicates_removed": report.duplicates_removed,
            "rows_rejected": report.rows_rejected, "commitment": report.commitment.to_string(),
        },
        "pipeline_only": pipeline_median.map(|s| json!({ "seconds": s, "all_seconds": pipeline, "mb_per_s": mb / s })),
        "sqlite3_import": import_median.map(|s| json!({ "seconds": s, "all_seconds": imports, "mb_per_s": mb / s })),
        "speedup_vs_import": import_median.map(|s| s / ours_median),
        "consort_row_hash": (!row_hash.is_empty()).then(|| json!({
            "seconds": median(&row_hash), "all_seconds": row_hash,
            "cpu_seconds": median(&row_hash_cpu), "all_cpu_seconds": row_hash_cpu,
            "hiding_cost": ours_median / median(&row_hash),
        })),
    });
    if args.json {
        print_json(&value);
        return Ok(0);
    }
    println!(
        "consort bench ingest: {} rows, {mb:.1} MB of CSV, median of {} runs",
        args.rows, args.runs
    );
    println!(
        "  consort (parse, infer, clean, dedup, salted commitment, SQLite): {ours_median:.2} s, {:.1} MB/s, {:.0} rows/s, {:.2} CPU s",
        mb / ours_median,
        args.rows as f64 / ours_median,
        median(&ours_cpu)
    );
    if let Some(s) = pipeline_median {
        println!(
            "  pipeline alone (no database): {s:.2} s, {:.1} MB/s",
            mb / s
        );
    }
    println!(
        "  kept {}, duplicates removed {}, rejected {}",
        report.rows_kept, report.duplicates_removed, report.rows_rejected
    );
    if !row_hash.is_empty() {
        let r = median(&row_hash);
        println!(
            "  consort with the old row-hash commitment: {r:.2} s, {:.2} CPU s; hiding costs {:+.0}% wall, {:+.0}% CPU",
            median(&row_hash_cpu),
            (ours_median / r - 1.0) * 100.0,
            (median(&ours_cpu) / median(&row_hash_cpu) - 1.0) * 100.0
        );
    }
    match import_median {
        Some(s) => println!(
            "  sqlite3 .import (no cleaning): {s:.2} s, {:.1} MB/s; consort is {:.2}x its speed",
            mb / s,
            s / ours_median
        ),
        None => {
            println!("  sqlite3 not found: install it (apt-get install sqlite3) for the comparison")
        }
    }
    Ok(0)
}
