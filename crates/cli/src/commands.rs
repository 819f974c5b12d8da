//! The commands: each parses its inputs, talks to the node's API (or reads files), and
//! prints a readable summary or, with `--json`, one JSON document.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use consort_demo::ledger::{sign_for, verify_export_bytes};
use consort_demo::output::print_json;
use consort_ledger::{Genesis, InclusionProof, Notarization, NotarizedFile, TxPayload};
use consort_node::client::ApiClient;
use consort_node::config::{read_genesis, MemberCard, MemberDir};
use serde_json::{json, Value};

use crate::args::{BenchCommand, Cli, Command, ConsortiumCommand, LedgerCommand, NodeCommand};

pub async fn dispatch(cli: Cli) -> Result<i32> {
    let dir = cli.dir.clone();
    match cli.command {
        Command::Init {
            name,
            peer_addr,
            api_addr,
            database_url,
            json,
        } => init(
            &need_dir(dir)?,
            &name,
            (&peer_addr, &api_addr),
            database_url.as_deref(),
            json,
        ),
        Command::Catalog { json } => catalog(&need_dir(dir)?, json).await,
        Command::Consortium(ConsortiumCommand::Create { out, name, cards }) => {
            consortium_create(&out, &name, &cards)
        }
        Command::Node(NodeCommand::Run { genesis }) => node_run(&need_dir(dir)?, &genesis).await,
        Command::Notarize { files, note, json } => {
            notarize(&need_dir(dir)?, &files, note, json).await
        }
        Command::Ledger(cmd) => ledger(dir, cmd).await,
        Command::Member(cmd) => crate::member::run(&need_dir(dir)?, cmd).await,
        Command::Dataset(cmd) => crate::dataset::run(&need_dir(dir)?, cmd).await,
        Command::Grant {
            dataset,
            to,
            columns,
            min_group_size,
            expires,
            json,
        } => {
            crate::query::grant(
                &need_dir(dir)?,
                crate::query::GrantArgs {
                    dataset: &dataset,
                    to: &to,
                    columns: &columns,
                    min_group_size,
                    expires: expires.as_deref(),
                    json,
                },
            )
            .await
        }
        Command::Revoke { grant_id, json } => {
            crate::query::revoke(&need_dir(dir)?, &grant_id, json).await
        }
        Command::Grants { json } => crate::query::grants(&need_dir(dir)?, json).await,
        Command::Query {
            sql,
            json,
            out,
            timeout_secs,
        } => crate::query::query(&need_dir(dir)?, &sql, json, out.as_deref(), timeout_secs).await,
        Command::Queries { json } => crate::query::queries(&need_dir(dir)?, json).await,
        Command::QueryShow { id, json } => {
            crate::query::query_show(&need_dir(dir)?, &id, json).await
        }
        Command::Demo { json, keep_running } => {
            let options = consort_demo::DemoOptions {
                dir,
                json,
                keep_running,
            };
            consort_demo::run(options, shutdown_signal()).await
        }
        Command::Bench(BenchCommand::Ledger(args)) => consort_bench::ledger::run(args.into()).await,
        Command::Bench(BenchCommand::Ingest(args)) => consort_bench::ingest::run(args.into()).await,
        Command::Bench(BenchCommand::Mpc(args)) => consort_bench::mpc::run(args.into()).await,
        Command::Bench(BenchCommand::Psi(args)) => consort_bench::psi::run(args.into()).await,
        Command::Bench(BenchCommand::Plan(args)) => consort_bench::plan::run(args.into()),
        Command::Bench(BenchCommand::Query(args))
            if matches!(args.query.as_str(), "distinct" | "median") =>
        {
            let which = if args.query == "distinct" {
                consort_bench::ordered::Ordered::Distinct
            } else {
                consort_bench::ordered::Ordered::Median
            };
            consort_bench::ordered::run(args.rows, args.runs, which, args.json).await
        }
        Command::Bench(BenchCommand::Query(args)) => consort_bench::query::run(args.into()).await,
    }
}

fn need_dir(dir: Option<PathBuf>) -> Result<MemberDir> {
    dir.map(MemberDir::new)
        .ok_or_else(|| anyhow!("no member directory: pass --dir DIR or set CONSORT_DIR"))
}

fn init(
    dir: &MemberDir,
    name: &str,
    (peer_addr, api_addr): (&str, &str),
    database_url: Option<&str>,
    json: bool,
) -> Result<i32> {
    let card = dir.init_with_database(name, peer_addr, api_addr, database_url)?;
    if json {
        print_json(&json!({ "dir": dir.root, "card": card }));
    } else {
        println!("created member {} ({})", card.info.name, card.member_id);
        println!("  member card: {}", dir.card_path().display());
        println!(
            "  peer address: {}   API address: {}",
            card.info.peer_addr, card.info.api_addr
        );
        println!("share member.json with the other members; keep member.key and api.token private");
    }
    Ok(0)
}

fn consortium_create(out: &Path, name: &str, cards: &[PathBuf]) -> Result<i32> {
    let members = cards
        .iter()
        .map(|path| MemberCard::read(path).map(|c| c.info))
        .collect::<Result<Vec<_>, _>>()?;
    let genesis = Genesis {
        consortium: name.to_string(),
        created_ms: consort_node::clock::now_ms(),
        members,
        rules_version: consort_ledger::rules_limits::LATEST_RULES,
    };
    genesis.validate()?;
    let chain_id = genesis.chain_id();
    let text = serde_json::to_string_pretty(&genesis)? + "\n";
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} for consortium {name:?} with {} members",
        out.display(),
        genesis.members.len()
    );
    println!("chain id {chain_id}");
    Ok(0)
}

async fn node_run(dir: &MemberDir, genesis_path: &Path) -> Result<i32> {
    let genesis = read_genesis(genesis_path)?;
    let config = dir.load_config()?;
    let listeners =
        consort_node::node::Listeners::bind(&config.peer_addr, &config.api_addr).await?;
    consort_node::node::run(dir, genesis, listeners, shutdown_signal()).await?;
    Ok(0)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn notarize(
    dir: &MemberDir,
    files: &[PathBuf],
    note: Option<String>,
    json: bool,
) -> Result<i32> {
    let mut notarized = Vec::with_capacity(files.len());
    for path in files {
        let (hash, size) = consort_data::files::blake3_file(path)
            .with_context(|| format!("hashing {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        notarized.push(NotarizedFile {
            name,
            size,
            blake3: hash,
        });
    }
    let tx = sign_for(
        dir,
        TxPayload::Notarize(Notarization {
            files: notarized.clone(),
            note,
        }),
    )?;
    let client = ApiClient::for_dir(dir)?;
    let answer = client.submit(&tx, true).await?;
    if json {
        print_json(&answer);
    } else {
        println!("transaction {}", tx.id());
        for f in &notarized {
            println!("  {}  {} bytes  blake3 {}", f.name, f.size, f.blake3);
        }
        match answer["height"].as_u64() {
            Some(h) if answer["valid"].as_bool() == Some(true) => {
                println!("committed in block {h}")
            }
            Some(h) => println!(
                "recorded INVALID in block {h}: {}",
                answer["reason"].as_str().unwrap_or("unknown reason")
            ),
            None => println!("submitted; not yet committed"),
        }
    }
    Ok(if answer["valid"].as_bool() == Some(false) {
        1
    } else {
        0
    })
}

/// Prints `value` as JSON or through `human`.
fn show(value: &Value, json: bool, human: fn(&Value)) -> Result<i32> {
    if json {
        print_json(value);
    } else {
        human(value);
    }
    Ok(0)
}

async fn ledger(dir: Option<PathBuf>, cmd: LedgerCommand) -> Result<i32> {
    // Commands on files need no node; the rest reach the member's node through its API.
    let node = || -> Result<(MemberDir, ApiClient)> {
        let dir = need_dir(dir.clone())?;
        let client = ApiClient::for_dir(&dir)?;
        Ok((dir, client))
    };
    match cmd {
        LedgerCommand::Verify {
            export: Some(path),
            json,
        } => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            report_verify(verify_export_bytes(&bytes), json)
        }
        LedgerCommand::VerifyProof { file, json } => verify_proof(&file, json),
        LedgerCommand::Status { json } => show(&node()?.1.status().await?, json, print_status),
        LedgerCommand::Show { height, json } => {
            show(&node()?.1.block(height).await?, json, print_block)
        }
        LedgerCommand::Tx { txid, json } => show(&node()?.1.tx(&txid).await?, json, print_tx),
        LedgerCommand::Export { out } => {
            let bytes = node()?.1.export().await?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
            Ok(0)
        }
        LedgerCommand::Verify { export: None, json } => {
            let (dir, client) = node()?;
            // Verify here, from the bytes, rather than trusting the node's own verdict.
            match client.export().await {
                Ok(bytes) => report_verify(verify_export_bytes(&bytes), json),
                // The node is down: read its block store directly.
                Err(consort_node::error::NodeError::Unreachable { .. }) => {
                    report_verify(verify_offline(&dir)?, json)
                }
                Err(e) => Err(e.into()),
            }
        }
        LedgerCommand::Proof { txid, out } => {
            let proof = node()?.1.proof(&txid).await?;
            let text = serde_json::to_string_pretty(&proof)? + "\n";
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote inclusion proof of {txid} to {}", out.display());
            Ok(0)
        }
    }
}

/// Verifies a stopped node's block store, reading raw stored bytes.
fn verify_offline(
    dir: &MemberDir,
) -> Result<Result<consort_ledger::VerifyReport, consort_ledger::VerifyFailure>> {
    use consort_ledger::BlockStore;
    let path = dir.data_dir().join("blocks.redb");
    if !path.exists() {
        bail!(
            "the node is not running and {} does not exist",
            path.display()
        );
    }
    let store = consort_node::block_store::RedbBlockStore::open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let top = store.height()?.unwrap_or(0);
    Ok(consort_ledger::verify_chain((0..=top).map(|h| {
        store.raw_block(h).and_then(|b| {
            b.ok_or_else(|| consort_ledger::LedgerError::Store(format!("block {h} is missing")))
        })
    })))
}

fn report_verify(
    result: Result<consort_ledger::VerifyReport, consort_ledger::VerifyFailure>,
    json: bool,
) -> Result<i32> {
    let ok = result.is_ok();
    let value = consort_node::chain::verify_json(result);
    if json {
        print_json(&value);
    } else if ok {
        println!(
            "ledger sound: {} blocks (height {}), {} transactions, head {}",
            value["height"].as_u64().unwrap_or(0) + 1,
            value["height"],
            value["tx_count"],
            value["head_hash"].as_str().unwrap_or("")
        );
    } else {
        eprintln!(
            "ledger INVALID at height {}: {}",
            value["height"],
            value["reason"].as_str().unwrap_or("")
        );
    }
    Ok(if ok { 0 } else { 1 })
}

fn verify_proof(file: &Path, json: bool) -> Result<i32> {
    use std::io::Read;
    let max = consort_ledger::proof::MAX_PROOF_BYTES;
    let handle =
        std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut text = String::new();
    handle
        .take(max as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", file.display()))?;
    if text.len() > max {
        bail!(
            "{} is not an inclusion proof: it is larger than {max} bytes",
            file.display()
        );
    }
    let proof = InclusionProof::from_json(&text).map_err(|e| {
        anyhow!(
            "{} is not an inclusion proof this build reads: {e}",
            file.display()
        )
    })?;
    match proof.verify() {
        Ok(report) => {
            if json {
                print_json(&json!({ "ok": true, "report": report }));
            } else {
                print_proof_report(&report);
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                print_json(&json!({ "ok": false, "reason": e.to_string() }));
            } else {
                eprintln!("proof INVALID: {e}");
            }
            Ok(1)
        }
    }
}

/// What a verified inclusion proof shows, for people.
fn print_proof_report(r: &consort_ledger::ProofReport) {
    use consort_ledger::Binding;
    let names = |members: &[consort_ledger::proof::ProvedMember]| {
        members
            .iter()
            .map(|m| format!("{} ({})", m.name, m.member_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "proof valid: transaction {} ({}) is transaction {} of block {} of chain {}",
        r.tx_id, r.kind, r.tx_index, r.height, r.chain_id
    );
    match &r.proposer {
        Some(p) => println!(
            "  block     {} sealed under rule version {} by {} ({}), a member before the block",
            r.block_hash, r.rules_version, p.name, p.member_id
        ),
        None => println!(
            "  block     {} is block 0, rebuilt from its genesis (rule version {})",
            r.block_hash, r.rules_version
        ),
    }
    println!(
        "  bound     {}",
        match r.binding {
            Binding::Genesis => "block 0 hashes to the chain id",
            Binding::BlockSignature => "the block signature names the chain id",
            Binding::TransactionSignature =>
                "the transaction's signature is valid for the chain id (the block signature of \
                 this rule version does not name the chain)",
        }
    );
    if r.height > 0 {
        let status = if r.signer_was_member {
            "a member when it was recorded".to_string()
        } else {
            match r.signer_key {
                Some(key) => format!("not a member when it was recorded (key as admitted: {key})"),
                None => "never admitted up to this block (no key to show)".to_string(),
            }
        };
        println!("  signer    {} — {status}", r.signer);
    }
    let detail = match &r.outcome {
        consort_ledger::TxOutcome::Valid => String::new(),
        consort_ledger::TxOutcome::Invalid { detail, .. } => {
            format!("; detail as stated, not proved: {detail:?}")
        }
    };
    let name = consort_ledger::InvalidCode::from_u8(r.outcome_code)
        .map(|c| c.name())
        .unwrap_or("Valid");
    println!(
        "  outcome   {name} (code {}, recorded in the block's state root){detail}",
        r.outcome_code
    );
    if r.height > 0 {
        println!("  members   before the block: {}", names(&r.members_before));
    }
    println!("  members   after the block: {}", names(&r.members_after));
}

fn print_status(s: &Value) {
    println!(
        "member    {} ({})",
        s["name"].as_str().unwrap_or(""),
        s["member_id"].as_str().unwrap_or("")
    );
    println!("role      {}", s["role"].as_str().unwrap_or(""));
    println!("leader    {}", s["leader"].as_str().unwrap_or("none"));
    println!("height    {}", s["height"]);
    println!("head      {}", s["head_hash"].as_str().unwrap_or(""));
    println!("chain id  {}", s["chain_id"].as_str().unwrap_or(""));
    println!("rules     version {}", s["rules_version"]);
    if let Some(reason) = s["halted"].as_str() {
        println!("HALTED    {reason}");
    }
    println!("members:");
    for m in s["members"].as_array().into_iter().flatten() {
        println!(
            "  {}  {}  peer {}",
            m["member_id"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or(""),
            m["peer_addr"].as_str().unwrap_or("")
        );
    }
}

fn print_block(b: &Value) {
    println!(
        "block {}  hash {}",
        b["height"],
        b["hash"].as_str().unwrap_or("")
    );
    println!("  prev       {}", b["prev_hash"].as_str().unwrap_or(""));
    println!("  tx root    {}", b["tx_root"].as_str().unwrap_or(""));
    println!("  state root {}", b["state_root"].as_str().unwrap_or(""));
    println!(
        "  proposer   {}   time {} ms",
        b["proposer"].as_str().unwrap_or(""),
        b["timestamp_ms"]
    );
    println!("  {} transactions", b["tx_count"]);
    for tx in b["txs"].as_array().into_iter().flatten() {
        let valid = tx["outcome"]["valid"].as_bool() == Some(true);
        println!(
            "    {}  {:<12} {}",
            tx["tx_id"].as_str().unwrap_or(""),
            tx["kind"].as_str().unwrap_or(""),
            if valid {
                "valid".to_string()
            } else {
                format!(
                    "INVALID: {}",
                    tx["outcome"]["reason"].as_str().unwrap_or("")
                )
            }
        );
    }
}

fn print_tx(tx: &Value) {
    println!("transaction {}", tx["tx_id"].as_str().unwrap_or(""));
    println!("  kind     {}", tx["kind"].as_str().unwrap_or(""));
    println!("  signer   {}", tx["signer"].as_str().unwrap_or(""));
    println!("  block    {} (index {})", tx["height"], tx["index"]);
    println!(
        "  outcome  {}",
        if tx["outcome"]["valid"].as_bool() == Some(true) {
            "valid".into()
        } else {
            format!("INVALID: {}", tx["outcome"]["reason"])
        }
    );
    println!("  payload  {}", tx["payload"]);
}

async fn catalog(dir: &MemberDir, json: bool) -> Result<i32> {
    let datasets = ApiClient::for_dir(dir)?.catalog().await?;
    if json {
        print_json(&json!({ "datasets": datasets }));
        return Ok(0);
    }
    if datasets.is_empty() {
        println!("no datasets registered yet");
        return Ok(0);
    }
    println!(
        "{:<20} {:<16} {:>3} {:<6} {:>12}  commitment",
        "dataset", "owner", "v", "kind", "rows"
    );
    for d in &datasets {
        println!(
            "{:<20} {:<16} {:>3} {:<6} {:>12}  {}",
            d["name"].as_str().unwrap_or(""),
            d["owner_name"]
                .as_str()
                .unwrap_or(d["owner"].as_str().unwrap_or("")),
            d["version"],
            d["kind"].as_str().unwrap_or(""),
            d["row_count"],
            d["commitment"].as_str().unwrap_or(""),
        );
        let columns: Vec<String> = d["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c["name"].as_str().unwrap_or(""),
                    c["type"].as_str().unwrap_or(""),
                    if c["nullable"] == true {
                        ""
                    } else {
                        " not null"
                    }
                )
            })
            .collect();
        if !columns.is_empty() {
            println!("    {}", columns.join(", "));
        }
    }
    Ok(0)
}
