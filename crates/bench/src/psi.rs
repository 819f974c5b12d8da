//! `consort bench psi`: two node processes of a fresh local consortium intersect their key
//! sets over their TLS peer link (ECDH-PSI over ristretto255, `consort_mpc::psi`); each set
//! has `n` keys, half of them shared. Each party checks the intersection against the
//! plaintext answer; this command reports the slower party's time, elements per second per
//! core per party, and the bytes each party sent.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use consort_demo::cluster::LocalCluster;
use consort_demo::output::print_json;

/// What `consort bench psi` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keys per member (half of them shared).
    pub n: usize,
    /// Seconds either party may wait on the other before the session fails.
    pub timeout: u64,
    pub json: bool,
}

pub async fn run(args: Options) -> Result<i32> {
    if args.n == 0 || args.n > consort_node::api::MAX_MPC_BENCH_N {
        bail!(
            "--n must be between 1 and {}",
            consort_node::api::MAX_MPC_BENCH_N
        );
    }
    let (_temp, mut cluster) = LocalCluster::start_temp("consort-bench-psi-", 2).await?;
    let reports = run_session(&cluster, args.n, args.timeout).await?;
    let seconds = reports
        .iter()
        .filter_map(|r| r["seconds"].as_f64())
        .fold(0.0, f64::max);
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    // Both parties run on this machine at once, so each has cores / 2 of it: a party's n
    // elements over its share of the cores (as `psi_bench` in `consort-mpc` counts).
    let cores_per_party = (cores as f64 / 2.0).max(1.0);
    let per_core = args.n as f64 / seconds.max(1e-9) / cores_per_party;
    let bytes: Vec<u64> = reports
        .iter()
        .map(|r| r["bytes_sent"].as_u64().unwrap_or(0))
        .collect();
    if args.json {
        print_json(&json!({
            "n": args.n, "seconds": seconds, "cores": cores,
            "elements_per_second_per_core_per_party": per_core,
            "bytes_sent_per_party": bytes, "cardinality": reports[0]["cardinality"],
            "verified": true,
        }));
    } else {
        println!(
            "consort bench psi: {} x {} keys (half shared), 2 node processes over TLS on loopback",
            args.n, args.n
        );
        println!(
            "  time {seconds:.3} s (slower party), {per_core:.0} elements/s per core per party ({cores} cores shared by 2 parties)"
        );
        println!(
            "  intersection {} keys; bytes sent per party {bytes:?}; both parties verified it",
            reports[0]["cardinality"]
        );
    }
    for i in 0..cluster.members.len() {
        cluster.stop(i)?;
    }
    Ok(0)
}

/// Asks the first two nodes of `cluster` to run one PSI together; fails if either failed
/// or did not verify.
pub async fn run_session(
    cluster: &LocalCluster,
    n: usize,
    timeout_secs: u64,
) -> Result<Vec<Value>> {
    let parties: Vec<String> = cluster
        .members
        .iter()
        .take(2)
        .map(|m| Ok(m.dir.load_key()?.member_id().to_string()))
        .collect::<Result<_>>()?;
    let body = json!({
        "session": consort_node::mpc::SessionId::random().to_string(),
        "parties": parties,
        "n": n,
        "seed": rand::random::<u64>(),
        "timeout_secs": timeout_secs,
    });
    let wait = Duration::from_secs(timeout_secs.saturating_mul(2).max(60));
    let calls = cluster.members.iter().take(2).map(|m| {
        let (client, body) = (m.client.clone(), body.clone());
        async move {
            client
                .post_json_waiting("/api/psi/bench", &body, wait)
                .await
        }
    });
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (m, result) in cluster
        .members
        .iter()
        .zip(futures::future::join_all(calls).await)
    {
        match result {
            Ok(r) if r["verified"] == true => reports.push(r),
            Ok(r) => failures.push(format!("{}: the intersection did not verify: {r}", m.name)),
            Err(e) => failures.push(format!("{}: {e}", m.name)),
        }
    }
    if !failures.is_empty() {
        bail!("PSI session failed: {}", failures.join("; "));
    }
    Ok(reports)
}
