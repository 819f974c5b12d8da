//! `consort bench mpc`: three node processes of a fresh local consortium run one MPC
//! operation over their TLS peer links, twice; each checks the revealed result against the
//! plaintext answer, and this command reports the slowest party's time for the second run
//! (and the first, cold one), the rounds and the bytes each party sent.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use consort_demo::cluster::LocalCluster;
use consort_demo::output::print_json;

/// What `consort bench mpc` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The operation: one of `consort_node::mpc::bench::OPS`.
    pub op: String,
    /// Number of elements.
    pub n: usize,
    /// Seconds any party may wait on a peer before the session fails.
    pub timeout: u64,
    pub json: bool,
}

pub async fn run(args: Options) -> Result<i32> {
    if !consort_node::mpc::bench::OPS.contains(&args.op.as_str()) {
        bail!(
            "unknown operation {:?}: use one of {}",
            args.op,
            consort_node::mpc::bench::OPS.join(", ")
        );
    }
    if args.n == 0 || args.n > consort_node::api::MAX_MPC_BENCH_N {
        bail!(
            "--n must be between 1 and {}",
            consort_node::api::MAX_MPC_BENCH_N
        );
    }
    let (_temp, cluster) = LocalCluster::start_temp("consort-bench-mpc-", 3).await?;
    let reports = run_session(&cluster, &args.op, args.n, args.timeout).await?;

    let slowest = |field: &str| {
        reports
            .iter()
            .filter_map(|r| r[field].as_f64())
            .fold(0.0, f64::max)
    };
    let (seconds, cold_seconds) = (slowest("seconds"), slowest("cold_seconds"));
    let field = |name: &str| -> Vec<u64> {
        reports
            .iter()
            .map(|r| r[name].as_u64().unwrap_or(0))
            .collect()
    };
    let (bytes, messages) = (field("bytes_sent"), field("messages_sent"));
    let rounds = reports[0]["rounds"].as_u64().unwrap_or(0);
    let per_second = args.n as f64 / seconds.max(1e-9);
    if args.json {
        print_json(&json!({
            "op": args.op, "n": args.n, "seconds": seconds, "cold_seconds": cold_seconds,
            "ops_per_second": per_second,
            "rounds": rounds, "bytes_sent_per_party": bytes, "messages_per_party": messages,
            "verified": true,
        }));
    } else {
        println!(
            "consort bench mpc: {} on {} elements, 3 node processes over TLS on loopback",
            args.op, args.n
        );
        println!(
            "  time {seconds:.3} s (slowest party), {per_second:.0} elements/s; first run in fresh processes {cold_seconds:.3} s"
        );
        println!(
            "  rounds {rounds}, bytes sent per party {bytes:?}, messages per party {messages:?}"
        );
        println!("  every party's revealed result matched the plaintext reference");
    }
    Ok(0)
}

/// Asks the three nodes of `cluster` to run one session together and returns their
/// reports, failing if any party failed or any result did not verify.
pub async fn run_session(
    cluster: &LocalCluster,
    op: &str,
    n: usize,
    timeout_secs: u64,
) -> Result<Vec<Value>> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (name, result) in party_results(cluster, op, n, timeout_secs).await? {
        match result {
            Ok(report) if report["verified"] == true => reports.push(report),
            Ok(report) => failures.push(format!("{name}: result did not verify: {report}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if !failures.is_empty() {
        bail!("MPC session failed: {}", failures.join("; "));
    }
    Ok(reports)
}

/// Each party's answer (by member name) to one session of the first three members.
pub async fn party_results(
    cluster: &LocalCluster,
    op: &str,
    n: usize,
    timeout_secs: u64,
) -> Result<Vec<(String, Result<Value, consort_node::error::NodeError>)>> {
    let parties: Vec<String> = cluster
        .members
        .iter()
        .take(3)
        .map(|m| Ok(m.dir.load_key()?.member_id().to_string()))
        .collect::<Result<_>>()?;
    let body = json!({
        "session": consort_node::mpc::SessionId::random().to_string(),
        "parties": parties,
        "op": op,
        "n": n,
        "seed": rand::random::<u64>(),
        "timeout_secs": timeout_secs,
    });
    let wait = Duration::from_secs(timeout_secs.saturating_mul(4).max(60));
    let calls = cluster.members.iter().take(3).map(|m| {
        let (client, body) = (m.client.clone(), body.clone());
        async move {
            client
                .post_json_waiting("/api/mpc/bench", &body, wait)
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    Ok(cluster
        .members
        .iter()
        .map(|m| m.name.clone())
        .zip(results)
        .collect())
}
