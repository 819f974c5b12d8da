//! Membership changes: a proposal file travels between members, each adding its approval,
//! until a majority has signed; then any of them submits it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use consort_crypto::MemberId;
use consort_demo::ledger::sign_for;
use consort_demo::output::print_json;
use consort_ledger::{Transaction, TxPayload};
use consort_node::client::ApiClient;
use consort_node::config::{read_genesis, MemberCard, MemberDir};
use serde_json::json;

use crate::args::MemberCommand;

fn write_proposal(path: &Path, tx: &Transaction) -> Result<()> {
    let doc = json!({ "kind": tx.kind_name(), "tx_id": tx.id().to_string(), "tx": hex::encode(tx.encode()) });
    std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

fn read_proposal(path: &Path) -> Result<Transaction> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not a proposal file: {e}", path.display()))?;
    let hex_tx = doc["tx"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no \"tx\" field", path.display()))?;
    let bytes =
        hex::decode(hex_tx).map_err(|e| anyhow!("{}: tx is not hex: {e}", path.display()))?;
    Ok(Transaction::decode(&bytes)?)
}

pub async fn run(dir: &MemberDir, cmd: MemberCommand) -> Result<i32> {
    match cmd {
        MemberCommand::ProposeAdd { card, out } => {
            let card = MemberCard::read(&card)?;
            let tx = sign_for(dir, TxPayload::MemberAdd(card.info))?;
            write_proposal(&out, &tx)?;
            println!(
                "wrote proposal {} to add {}; collect approvals with `consort member approve`",
                tx.id(),
                card.member_id
            );
            Ok(0)
        }
        MemberCommand::ProposeRemove { member_id, out } => {
            let member: MemberId = member_id
                .parse()
                .map_err(|_| anyhow!("{member_id:?} is not a member id (32 hex characters)"))?;
            let tx = sign_for(dir, TxPayload::MemberRemove { member })?;
            write_proposal(&out, &tx)?;
            println!("wrote proposal {} to remove {member}", tx.id());
            Ok(0)
        }
        MemberCommand::ProposeRules { version, out } => {
            let tx = sign_for(dir, TxPayload::RulesUpgrade { version })?;
            write_proposal(&out, &tx)?;
            println!(
                "wrote proposal {} to move the ledger to rule version {version}; collect approvals with `consort member approve`",
                tx.id()
            );
            Ok(0)
        }
        MemberCommand::Approve { proposal } => {
            let mut tx = read_proposal(&proposal)?;
            let key = dir.load_key()?;
            let me = key.member_id();
            if tx.signer == me || tx.approvals.iter().any(|a| a.member == me) {
                bail!("member {me} has already signed this proposal");
            }
            let genesis = read_genesis(&dir.genesis_path())?;
            tx.add_approval(&key, &genesis.chain_id());
            write_proposal(&proposal, &tx)?;
            println!(
                "approved; the proposal now has {} signatures",
                tx.approvals.len() + 1
            );
            Ok(0)
        }
        MemberCommand::Submit { proposal, json } => {
            let tx = read_proposal(&proposal)?;
            let answer = ApiClient::for_dir(dir)?.submit(&tx, true).await?;
            if json {
                print_json(&answer);
            } else if answer["valid"] == true {
                println!(
                    "{} {} committed in block {}",
                    tx.kind_name(),
                    tx.id(),
                    answer["height"]
                );
            } else {
                println!(
                    "{} {} recorded INVALID: {}",
                    tx.kind_name(),
                    tx.id(),
                    answer["reason"]
                );
            }
            Ok(if answer["valid"] == true { 0 } else { 1 })
        }
    }
}
