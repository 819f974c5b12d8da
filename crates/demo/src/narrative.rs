//! `consort demo`: three members on loopback, notarised files, a converged and verified
//! ledger, and an inclusion proof checked — the whole backbone in one command.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use consort_ledger::{InclusionProof, Notarization, NotarizedFile, TxPayload};
use serde_json::{json, Value};

use crate::cluster::LocalCluster;
use crate::ledger::{sign_for, verify_export_bytes};
use crate::output::print_json;

/// What `consort demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Where the members' directories go (default: a fresh temporary directory).
    pub dir: Option<PathBuf>,
    /// One JSON summary instead of the narrative.
    pub json: bool,
    /// Leave the nodes running until `stop` completes.
    pub keep_running: bool,
}

/// Runs the demo from the running `consort` executable; with `keep_running`, waits for
/// `stop` (the CLI passes SIGINT or SIGTERM) before stopping the nodes. Returns the exit
/// status.
pub async fn run(options: DemoOptions, stop: impl Future<Output = ()>) -> Result<i32> {
    let DemoOptions {
        dir,
        json: json_out,
        keep_running,
    } = options;
    let started = Instant::now();
    let temp;
    let root = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new().prefix("consort-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let say = |line: String| {
        if !json_out {
            println!("{line}");
        }
    };
    let binary = std::env::current_exe().context("locating the consort binary")?;
    let hospitals = ["st-mary", "riverside", "northgate"];
    let mut cluster = LocalCluster::create_named(&root, &hospitals, 3, &binary)?;
    say(format!(
        "created 3 hospitals ({}) in {}",
        hospitals.join(", "),
        root.display()
    ));
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(30)).await?;
    let leader = cluster.leader().await?;
    say(format!("nodes up; {} leads", cluster.members[leader].name));

    // Each member notarises one document of its own.
    let docs_dir = root.join("documents");
    std::fs::create_dir_all(&docs_dir)?;
    let mut notarised = Vec::new();
    for (i, member) in cluster.members.iter().enumerate() {
        let path = docs_dir.join(format!("{}-report.txt", member.name));
        std::fs::write(
            &path,
            format!("Quarterly report of {}, version {i}\n", member.name),
        )?;
        let (hash, size) = consort_data::files::blake3_file(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tx = sign_for(
            &member.dir,
            TxPayload::Notarize(Notarization {
                files: vec![NotarizedFile {
                    name: name.clone(),
                    size,
                    blake3: hash,
                }],
                note: Some(format!("notarised by {} in the demo", member.name)),
            }),
        )?;
        let answer = member.client.submit(&tx, true).await?;
        let height = answer["height"].as_u64().unwrap_or(0);
        say(format!(
            "{} notarised {name} ({size} bytes) -> tx {} in block {height}",
            member.name,
            tx.id()
        ));
        notarised.push(json!({ "member": member.name, "file": name, "blake3": hash.to_string(), "tx_id": tx.id().to_string(), "height": height }));
    }

    // Each member takes in its own table of visits; the ledger learns schema, counts and
    // commitment only, and every member sees them in the catalog.
    let mut datasets = Vec::new();
    for (i, member) in cluster.members.iter().enumerate() {
        let path = docs_dir.join(format!("{}-visits.csv", member.name));
        // Only the first hospital treats burns, and only twice: too few to reveal.
        crate::visits::write_csv(&path, i, 300 + 50 * i, 2024, i == 0)?;
        // A record entered twice, which deduplication on the patient key removes.
        let first = std::fs::read_to_string(&path)?
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)?
            .write_all(format!("{first}\n").as_bytes())?;
        let summary = consort_node::datasets::add(
            &member.dir,
            consort_node::datasets::AddRequest {
                name: "visits".into(),
                inputs: vec![path],
                key: Some(vec!["patient".into()]),
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .await?;
        say(format!(
            "{} registered dataset visits: {} rows kept of {} read ({} duplicate removed), commitment {}",
            member.name, summary.rows_kept, summary.rows_read, summary.duplicates_removed, summary.commitment
        ));
        let verified = consort_node::datasets::verify(&member.dir, "visits").await?;
        if !verified.matches {
            bail!(
                "{}'s dataset does not match its ledger commitment",
                member.name
            );
        }
        datasets.push(json!({ "member": member.name, "rows": summary.rows_kept, "commitment": summary.commitment, "verified": true }));
    }
    // The second hospital also follows up some of the first one's patients.
    if let Some(riverside) = cluster.members.get(1) {
        let path = docs_dir.join(format!("{}-followups.csv", riverside.name));
        crate::queries::write_followups(&path, 160, 300)?;
        let summary = consort_node::datasets::add(
            &riverside.dir,
            consort_node::datasets::AddRequest {
                name: "followups".into(),
                inputs: vec![path],
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .await?;
        say(format!(
            "{} registered dataset followups: {} rows, commitment {}",
            riverside.name, summary.rows_kept, summary.commitment
        ));
        datasets.push(json!({ "member": riverside.name, "dataset": "followups", "rows": summary.rows_kept, "commitment": summary.commitment, "verified": true }));
    }
    let catalog = cluster.members[0].client.catalog().await?;
    say(format!(
        "the catalog lists {} datasets from {} members (schemas and commitments, no rows)",
        catalog.len(),
        cluster.members.len()
    ));

    say("\nEach hospital decides what others may do with its visits:".into());
    let grants = crate::queries::grant_all(&cluster, &say).await?;
    let queries = crate::queries::run_all(&cluster, &say).await?;
    say(String::new());

    let (height, head) = cluster.wait_converged(Duration::from_secs(20)).await?;
    say(format!("all 3 nodes at height {height}, head {head}"));

    let mut nodes = Vec::new();
    for member in &cluster.members {
        let export = member.client.export().await?;
        let report = match verify_export_bytes(&export) {
            Ok(r) => r,
            Err(f) => bail!(
                "{}'s ledger failed verification at height {}: {}",
                member.name,
                f.height,
                f.reason
            ),
        };
        if report.head_hash.to_string() != head {
            bail!(
                "{}'s verified head {} differs from the converged head {head}",
                member.name,
                report.head_hash
            );
        }
        say(format!(
            "{}: ledger verified from genesis ({} blocks, {} transactions)",
            member.name,
            report.height + 1,
            report.tx_count
        ));
        nodes.push(json!({ "name": member.name, "api_addr": member.api_addr, "height": report.height, "head_hash": report.head_hash.to_string(), "verified": true }));
    }

    let first_tx = notarised[0]["tx_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let proof_json: Value = cluster.members[2].client.proof(&first_tx).await?;
    let proof: InclusionProof = serde_json::from_value(proof_json)?;
    proof
        .verify()
        .context("the demo's inclusion proof did not verify")?;
    say(format!(
        "inclusion proof of {first_tx} verified against block {}",
        proof.height
    ));

    let summary = json!({
        "ok": true,
        "dir": root,
        "height": height,
        "head_hash": head,
        "notarised": notarised,
        "datasets": datasets,
        "grants": grants,
        "queries": queries,
        "nodes": nodes,
        "proof_verified": true,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if json_out {
        print_json(&summary);
    } else {
        println!("demo finished in {:.1}s", started.elapsed().as_secs_f64());
    }
    if keep_running {
        for m in &cluster.members {
            println!(
                "{} API http://{}  (token in {})",
                m.name,
                m.api_addr,
                m.dir.token_path().display()
            );
        }
        println!("nodes keep running; press Ctrl-C to stop them");
        stop.await;
        if let Some(temp_root) = dir_is_temp(&root) {
            println!("removing {temp_root}");
        }
    }
    for i in 0..cluster.members.len() {
        cluster.stop(i)?;
    }
    Ok(0)
}

fn dir_is_temp(root: &std::path::Path) -> Option<String> {
    root.to_str()
        .filter(|s| s.contains("consort-demo-"))
        .map(str::to_string)
}
