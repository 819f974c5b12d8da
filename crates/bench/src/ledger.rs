//! `consort bench ledger`: real node processes on loopback, concurrent clients submitting
//! pre-signed transactions, committed transactions per second and commit latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use consort_ledger::{Notarization, NotarizedFile, Transaction, TxPayload};
use serde_json::json;
use tokio::sync::Mutex;

use consort_demo::cluster::LocalCluster;
use consort_demo::ledger::verify_export_bytes;
use consort_demo::output::print_json;

/// What `consort bench ledger` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Node processes in the consortium.
    pub nodes: usize,
    /// Transactions to commit.
    pub txs: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Transactions per client request.
    pub batch: usize,
    pub json: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn run(args: Options) -> Result<i32> {
    if args.nodes == 0 || args.txs == 0 || args.clients == 0 || args.batch == 0 {
        bail!("--nodes, --txs, --clients and --batch must all be at least 1");
    }
    let (_temp, mut cluster) = LocalCluster::start_temp("consort-bench-", args.nodes).await?;

    let genesis = consort_node::config::read_genesis(&cluster.genesis_path)?;
    let chain_id = genesis.chain_id();
    let keys = cluster
        .members
        .iter()
        .map(|m| m.dir.load_key())
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!("signing {} transactions...", args.txs);
    let now = consort_node::clock::now_ms();
    let txs: Vec<Transaction> = (0..args.txs)
        .map(|i| {
            let payload = TxPayload::Notarize(Notarization {
                files: vec![NotarizedFile {
                    name: format!("doc-{i}.pdf"),
                    size: i as u64,
                    blake3: consort_crypto::hash_domain("bench", &[&(i as u64).to_be_bytes()]),
                }],
                note: None,
            });
            Transaction::sign(
                payload,
                &keys[i % keys.len()],
                &chain_id,
                rand::random(),
                now,
            )
        })
        .collect();
    let batches: Vec<Vec<Transaction>> = txs.chunks(args.batch).map(|c| c.to_vec()).collect();
    let queue = Arc::new(Mutex::new(
        batches.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::with_capacity(args.txs)));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = cluster.members.iter().map(|m| m.client.clone()).collect();

    eprintln!(
        "submitting with {} clients, {} transactions per request...",
        args.clients, args.batch
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (queue, latencies, failures, clients) = (
            queue.clone(),
            latencies.clone(),
            failures.clone(),
            clients.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((index, batch)) = queue.lock().await.pop() else {
                    return;
                };
                let client = &clients[index % clients.len()];
                let sent = Instant::now();
                match client.submit_many(&batch, true).await {
                    Ok(results) => {
                        let ms = sent.elapsed().as_secs_f64() * 1000.0;
                        let mut lat = latencies.lock().await;
                        for r in results {
                            if r["status"] == "committed" && r["valid"] == true {
                                lat.push(ms);
                            } else {
                                failures.lock().await.push(r.to_string());
                            }
                        }
                    }
                    Err(e) => failures.lock().await.push(e.to_string()),
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().await.clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    let committed = lat.len();
    let failures = failures.lock().await.clone();

    let (height, _) = cluster.wait_converged(Duration::from_secs(60)).await?;
    let verify_started = Instant::now();
    let export = cluster.members[0].client.export().await?;
    let verified = verify_export_bytes(&export).is_ok();
    let verify_secs = verify_started.elapsed().as_secs_f64();
    for i in 0..cluster.members.len() {
        cluster.stop(i)?;
    }

    let report = json!({
        "nodes": args.nodes,
        "txs": args.txs,
        "clients": args.clients,
        "batch": args.batch,
        "committed": committed,
        "failed": failures.len(),
        "seconds": elapsed,
        "tx_per_sec": committed as f64 / elapsed,
        "latency_ms": { "p50": percentile(&lat, 50.0), "p99": percentile(&lat, 99.0), "max": lat.last().copied().unwrap_or(0.0) },
        "blocks": height,
        "avg_txs_per_block": if height > 0 { committed as f64 / height as f64 } else { 0.0 },
        "verify": { "ok": verified, "seconds": verify_secs },
    });
    if args.json {
        print_json(&report);
    } else {
        println!(
            "consort bench ledger: {} nodes, {} txs, {} clients x {} txs/request",
            args.nodes, args.txs, args.clients, args.batch
        );
        println!(
            "  committed     {committed} in {elapsed:.2} s ({} failed)",
            failures.len()
        );
        println!("  throughput    {:.0} tx/s", committed as f64 / elapsed);
        println!(
            "  commit latency p50 {:.1} ms, p99 {:.1} ms",
            percentile(&lat, 50.0),
            percentile(&lat, 99.0)
        );
        println!(
            "  blocks        {height} (avg {:.0} txs/block)",
            if height > 0 {
                committed as f64 / height as f64
            } else {
                0.0
            }
        );
        println!(
            "  full verify   {} in {verify_secs:.2} s",
            if verified { "sound" } else { "FAILED" }
        );
        if let Some(first) = failures.first() {
            println!("  first failure: {first}");
        }
    }
    Ok(if failures.is_empty() && verified {
        0
    } else {
        1
    })
}
