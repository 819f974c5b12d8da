//! Signs and submits a `QueryRequest` whose SQL is a 65 KB `1+1+…+1` chain, as a member
//! would that wants to crash the other owners' nodes (issue 15). It made the fixture chain
//! `crates/cli/tests/data/hostile-v1/`, recorded under rule version 1, which every later
//! build must still verify and start on.
//!
//! `cargo run --example hostile_query -- MEMBER_DIR` (the member's node must be running and
//! some member's table dataset registered).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{anyhow, Context, Result};
use consort_crypto::{Hash, MemberId};
use consort_ledger::policy::{DatasetRef, QueryRequest};
use consort_ledger::TxPayload;
use consort_node::client::ApiClient;
use consort_node::config::MemberDir;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow!("usage: hostile_query MEMBER_DIR"))?;
    let dir = MemberDir::new(dir);
    let client = ApiClient::for_dir(&dir)?;
    let catalog = client.catalog().await?;
    let dataset = catalog
        .first()
        .ok_or_else(|| anyhow!("no dataset is registered"))?;
    let field = |name: &str| {
        dataset[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("catalog entry has no {name}"))
    };
    let owner: MemberId = field("owner")?.parse().map_err(|_| anyhow!("bad owner"))?;
    let version_tx: Hash = field("tx_id")?.parse().map_err(|_| anyhow!("bad tx id"))?;
    let name = field("name")?;
    let status = client.status().await?;
    let mut compute: Vec<MemberId> = status["members"]
        .as_array()
        .context("status has no members")?
        .iter()
        .filter_map(|m| m["member_id"].as_str()?.parse().ok())
        .collect();
    compute.truncate(3);
    let head = format!("SELECT COUNT(*) FROM {name} WHERE age > 1");
    let sql = head.clone() + &"+1".repeat((65_536 - head.len()) / 2);
    let request = QueryRequest {
        sql,
        plan_hash: Hash::ZERO,
        datasets: vec![DatasetRef {
            owner,
            name,
            version_tx,
        }],
        compute,
    };
    let tx = consort_demo::ledger::sign_for(&dir, TxPayload::QueryRequest(request))?;
    let answer = client.submit(&tx, true).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
