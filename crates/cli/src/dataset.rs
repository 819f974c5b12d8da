//! `consort dataset …`: the member's datasets, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Result;
use consort_demo::output::print_json;
use consort_node::config::MemberDir;
use consort_node::datasets::{self, AddRequest, AddSummary, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::args::{DatasetCommand, DatasetInput};

/// A bar over the input bytes that appears only on a terminal, and only once the work has
/// taken more than a moment.
fn progress_bar(input: &DatasetInput) -> (ProgressBar, Progress) {
    let total: u64 = input
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::with_draw_target(Some(total.max(1)), ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {bytes_per_sec} [{bar:30}] {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let show = !input.json && std::io::stderr().is_terminal();
    let started = Instant::now();
    let handle = bar.clone();
    let mut shown = false;
    let progress: Progress = Box::new(move |bytes| {
        if show && !shown && started.elapsed() > Duration::from_millis(500) {
            handle.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        handle.set_position(bytes);
    });
    (bar, progress)
}

fn request(input: DatasetInput, update: bool) -> AddRequest {
    AddRequest {
        name: input.name,
        inputs: input.inputs,
        format: input.format,
        recipe: input.recipe,
        key: input.key,
        dedup: input.dedup,
        update,
    }
}

fn print_summary(s: &AddSummary) {
    if s.restored {
        println!(
            "{} version {} was registered already (tx {} in block {}); its missing table was rebuilt from the same input",
            s.name, s.version, s.tx_id, s.height
        );
    } else {
        println!(
            "{} version {} registered: tx {} in block {}",
            s.name, s.version, s.tx_id, s.height
        );
    }
    println!(
        "  rows read {}, kept {}, duplicates removed {}, rejected {}",
        s.rows_read, s.rows_kept, s.duplicates_removed, s.rows_rejected
    );
    for (reason, count) in &s.rejects_by_reason {
        println!("    {count} rejected: {reason}");
    }
    if let Some(file) = &s.reject_file {
        println!("  rejected rows are in {}", file.display());
    }
    println!("  stored in table {}; commitment {}", s.table, s.commitment);
}

fn print_dataset(d: &Value) {
    println!(
        "{}  version {}  {}  {} rows  table {}{}",
        d["name"].as_str().unwrap_or(""),
        d["version"],
        d["kind"].as_str().unwrap_or(""),
        d["row_count"],
        d["table"].as_str().unwrap_or(""),
        if d["stored"] == true {
            ""
        } else {
            " (MISSING locally: `dataset add` with the original input rebuilds it)"
        }
    );
    println!("  commitment {}", d["commitment"].as_str().unwrap_or(""));
    println!("  ledger tx  {}", d["tx_id"].as_str().unwrap_or(""));
    if let Some(parent) = d["parent"].as_str() {
        println!("  parent     {parent}");
    }
    for c in d["columns"].as_array().into_iter().flatten() {
        println!(
            "    {:<24} {}{}",
            c["name"].as_str().unwrap_or(""),
            c["type"].as_str().unwrap_or(""),
            if c["nullable"] == true {
                ""
            } else {
                " not null"
            }
        );
    }
}

pub async fn run(dir: &MemberDir, cmd: DatasetCommand) -> Result<i32> {
    match cmd {
        DatasetCommand::Add(input) | DatasetCommand::Update(input) if input.inputs.is_empty() => {
            anyhow::bail!("no input files for dataset {}", input.name)
        }
        DatasetCommand::Add(input) => add(dir, input, false).await,
        DatasetCommand::Update(input) => add(dir, input, true).await,
        DatasetCommand::List { json } => {
            let list = datasets::list(dir).await?;
            if json {
                print_json(&json!({ "datasets": list }));
            } else if list.is_empty() {
                println!("this member has no datasets yet");
            } else {
                list.iter().for_each(print_dataset);
            }
            Ok(0)
        }
        DatasetCommand::Show { name, json } => {
            let d = datasets::show(dir, &name).await?;
            if json {
                print_json(&d);
            } else {
                print_dataset(&d);
            }
            Ok(0)
        }
        DatasetCommand::Fetch {
            source,
            columns,
            out,
            json,
        } => {
            let (owner, name) = source.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("{source:?} is not OWNER/NAME (e.g. hospital-a/visits)")
            })?;
            let summary = datasets::fetch::fetch(dir, owner, name, &columns, &out).await?;
            if json {
                print_json(&serde_json::to_value(&summary)?);
            } else {
                println!(
                    "fetched {} rows of {owner}/{name} v{} ({}) into {}; verified by {}; transfer recorded as {}",
                    summary.rows,
                    summary.version,
                    summary.columns.join(", "),
                    out.display(),
                    summary.verified_by,
                    summary.transfer_tx
                );
            }
            Ok(0)
        }
        DatasetCommand::Export { name, format, out } => {
            let rows = datasets::export(dir, &name, &format, &out).await?;
            println!("wrote {rows} rows of {name} to {}", out.display());
            Ok(0)
        }
        DatasetCommand::Verify { name, json } => {
            let outcome = datasets::verify(dir, &name).await?;
            if json {
                print_json(&serde_json::to_value(&outcome)?);
            } else if outcome.matches {
                println!(
                    "{} version {}: {} rows match the ledger commitment {}",
                    outcome.name, outcome.version, outcome.rows, outcome.ledger_commitment
                );
            } else {
                eprintln!(
                    "{} version {} does NOT match the ledger: stored rows give {} ({} rows), the ledger has {}{}",
                    outcome.name,
                    outcome.version,
                    outcome.recomputed_commitment,
                    outcome.rows,
                    outcome.ledger_commitment,
                    if outcome.bad_files.is_empty() {
                        String::new()
                    } else {
                        format!("; missing or changed files: {}", outcome.bad_files.join(", "))
                    }
                );
            }
            Ok(if outcome.matches { 0 } else { 1 })
        }
    }
}

async fn add(dir: &MemberDir, input: DatasetInput, update: bool) -> Result<i32> {
    let json_out = input.json;
    let (bar, progress) = progress_bar(&input);
    let result = datasets::add(dir, request(input, update), progress).await;
    bar.finish_and_clear();
    let summary = result?;
    if json_out {
        print_json(&serde_json::to_value(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(0)
}
