//! The `consort` binary end to end: init, consortium creation, notarisation, the ledger
//! commands, the demo, and one-line errors for bad input.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cluster, consort, serial};
use std::os::unix::fs::PermissionsExt;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assert_one_line_error(code: i32, err: &str, needle: &str) {
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(
        err.to_lowercase().contains(needle),
        "{needle:?} not in {err}"
    );
}

#[test]
fn init_writes_private_key_and_token_and_a_card() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m1");
    let dir_s = dir.to_str().unwrap();
    let (code, out, err) = consort(&[
        "init",
        "--dir",
        dir_s,
        "--name",
        "m1",
        "--peer-addr",
        "127.0.0.1:17400",
        "--api-addr",
        "127.0.0.1:17401",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(mode(&dir.join("member.key")), 0o600);
    assert_eq!(mode(&dir.join("api.token")), 0o600);
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("member.json")).unwrap()).unwrap();
    assert_eq!(card["name"], "m1");
    assert_eq!(card["peer_addr"], "127.0.0.1:17400");
    assert_eq!(card["member_id"].as_str().unwrap().len(), 32);
    assert_eq!(card["public_key"].as_str().unwrap().len(), 64);
    let key_text = std::fs::read_to_string(dir.join("member.key")).unwrap();
    assert!(!std::fs::read_to_string(dir.join("member.json"))
        .unwrap()
        .contains(key_text.trim()));

    // A second init refuses to overwrite the member.
    let (code, _, err) = consort(&["init", "--dir", dir_s, "--name", "m1"]);
    assert_one_line_error(code, &err, "already");

    // Defaults differ only by address: two members on one host with distinct addresses.
    let (code, out, err) = consort(&[
        "init",
        "--dir",
        root.path().join("m2").to_str().unwrap(),
        "--name",
        "m2",
        "--peer-addr",
        "127.0.0.1:17410",
        "--api-addr",
        "127.0.0.1:17411",
    ]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, _, err) = consort(&[
        "init",
        "--dir",
        root.path().join("m3").to_str().unwrap(),
        "--name",
        "m3",
        "--peer-addr",
        "nowhere",
    ]);
    assert_one_line_error(code, &err, "host:port");

    // Genesis from two cards.
    let genesis = root.path().join("genesis.json");
    let (code, out, err) = consort(&[
        "consortium",
        "create",
        "--out",
        genesis.to_str().unwrap(),
        dir.join("member.json").to_str().unwrap(),
        root.path().join("m2/member.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("chain id"), "{out}");
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&genesis).unwrap()).unwrap();
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_files_and_arguments_get_one_line_errors() {
    let root = tempfile::tempdir().unwrap();
    let p = |name: &str| root.path().join(name).to_str().unwrap().to_string();
    std::fs::write(p("garbage.json"), "{not json").unwrap();
    let (code, _, err) = consort(&[
        "consortium",
        "create",
        "--out",
        &p("g.json"),
        &p("garbage.json"),
    ]);
    assert_one_line_error(code, &err, "member card");
    let (code, _, err) = consort(&[
        "consortium",
        "create",
        "--out",
        &p("g.json"),
        &p("missing.json"),
    ]);
    assert_one_line_error(code, &err, "missing.json");

    // A card whose member id does not match its key.
    let (code, _, _) = consort(&["init", "--dir", &p("m"), "--name", "m"]);
    assert_eq!(code, 0);
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("m/member.json")).unwrap()).unwrap();
    card["member_id"] = serde_json::json!("00000000000000000000000000000000");
    std::fs::write(p("forged-card.json"), card.to_string()).unwrap();
    let (code, _, err) = consort(&[
        "consortium",
        "create",
        "--out",
        &p("g.json"),
        &p("forged-card.json"),
    ]);
    assert_one_line_error(code, &err, "member_id");

    // A node with a garbage genesis.
    let (code, _, err) = consort(&[
        "--dir",
        &p("m"),
        "node",
        "run",
        "--genesis",
        &p("garbage.json"),
    ]);
    assert_one_line_error(code, &err, "genesis");

    // Commands that need a member directory, without one.
    let out = std::process::Command::new(common::binary())
        .args(["ledger", "status"])
        .env_remove("CONSORT_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_one_line_error(out.status.code().unwrap(), &err, "--dir");

    // The node is not running.
    let (code, _, err) = consort(&["--dir", &p("m"), "ledger", "status"]);
    assert_one_line_error(code, &err, "cannot reach");

    // A garbage proof file.
    let (code, _, err) = consort(&["ledger", "verify-proof", &p("garbage.json")]);
    assert_one_line_error(code, &err, "inclusion proof");

    // Usage errors exit 2.
    let (code, _, _) = consort(&["ledger", "frobnicate"]);
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notarize_and_every_ledger_command() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let dir = cluster.members[0].dir.root.to_str().unwrap().to_string();
    let file = root.path().join("contract.pdf");
    std::fs::write(&file, b"%PDF-1.7 a contract").unwrap();
    let (code, out, err) = consort(&[
        "--dir",
        &dir,
        "notarize",
        file.to_str().unwrap(),
        "--note",
        "signed copy",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let txid = out
        .lines()
        .find_map(|l| l.strip_prefix("transaction "))
        .unwrap()
        .trim()
        .to_string();
    assert!(out.contains("committed in block"), "{out}");
    let expected_hash = blake3::hash(b"%PDF-1.7 a contract").to_hex().to_string();
    assert!(out.contains(&expected_hash), "{out}");

    // --json forms parse and agree.
    let (code, out, _) = consort(&["--dir", &dir, "ledger", "tx", &txid, "--json"]);
    assert_eq!(code, 0);
    let tx: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tx["payload"]["files"][0]["blake3"], expected_hash.as_str());
    assert_eq!(tx["payload"]["note"], "signed copy");
    let height = tx["height"].as_u64().unwrap();
    let (code, out, _) = consort(&[
        "--dir",
        &dir,
        "ledger",
        "show",
        &height.to_string(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let block: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        block["txs"][tx["index"].as_u64().unwrap() as usize]["tx_id"],
        txid.as_str()
    );
    let (code, out, _) = consort(&["--dir", &dir, "ledger", "status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(status["height"].as_u64().unwrap() >= height);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    assert!(["leader", "follower"].contains(&status["role"].as_str().unwrap()));
    let (code, out, _) = consort(&["--dir", &dir, "ledger", "status"]);
    assert_eq!(code, 0);
    assert!(out.contains("leader"));

    // The environment variable finds the directory too.
    let out = std::process::Command::new(common::binary())
        .args(["ledger", "verify"])
        .env("CONSORT_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Export, verify the export, prove and check the proof.
    let export = root.path().join("chain.export");
    let (code, _, err) = consort(&[
        "--dir",
        &dir,
        "ledger",
        "export",
        "--out",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = consort(&[
        "ledger",
        "verify",
        "--export",
        export.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["ok"],
        true
    );
    let proof = root.path().join("proof.json");
    let (code, _, err) = consort(&[
        "--dir",
        &dir,
        "ledger",
        "proof",
        &txid,
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = consort(&["ledger", "verify-proof", proof.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    // A proof whose transaction was altered fails.
    let mut p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let tx_hex = p["tx"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        &tx_hex[..tx_hex.len() - 1],
        if tx_hex.ends_with('0') { "1" } else { "0" }
    );
    p["tx"] = serde_json::json!(flipped);
    std::fs::write(&proof, p.to_string()).unwrap();
    let (code, _, err) = consort(&["ledger", "verify-proof", proof.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");

    // Unknown transaction and height.
    let (code, _, err) = consort(&["--dir", &dir, "ledger", "tx", &"ab".repeat(32)]);
    assert_one_line_error(code, &err, "no committed transaction");
    let (code, _, err) = consort(&["--dir", &dir, "ledger", "show", "999999"]);
    assert_one_line_error(code, &err, "no block");
    // A file that does not exist is named.
    let (code, _, err) = consort(&["--dir", &dir, "notarize", "/nonexistent/file.txt"]);
    assert_one_line_error(code, &err, "/nonexistent/file.txt");
}

#[test]
fn demo_runs_and_reports_json() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.block_on(serial());
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("demo");
    let (code, out, err) = consort(&["demo", "--json", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["proof_verified"], true);
    let nodes = summary["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let head = &summary["head_hash"];
    assert!(nodes
        .iter()
        .all(|n| &n["head_hash"] == head && n["verified"] == true));
    assert_eq!(summary["notarised"].as_array().unwrap().len(), 3);
    let datasets = summary["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 4);
    let rows: Vec<u64> = datasets
        .iter()
        .map(|d| d["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [302, 350, 400, 160], "{datasets:?}");
    assert!(
        datasets.iter().all(|d| d["verified"] == true),
        "{datasets:?}"
    );
    assert_eq!(summary["grants"].as_array().unwrap().len(), 4);
    // Five answered queries and one refusal, each recorded on the verified ledger.
    let queries = summary["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 6);
    // The private join: three clinics, 120 follow-ups of st-mary's patients in all.
    let joined = queries[5]["answer"]["rows"].as_array().unwrap();
    assert_eq!(joined.len(), 3, "{queries:?}");
    let matched: i64 = joined.iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(matched, 120, "{queries:?}");
    assert_eq!(
        queries[0]["answer"]["rows"],
        serde_json::json!([[1052]]),
        "{queries:?}"
    );
    assert_eq!(queries[3]["answer"]["suppressed_groups"], 1, "{queries:?}");
    assert!(queries[4]["refused"]
        .as_str()
        .unwrap()
        .contains("\"diagnosis\" lacks permission"));
    // The nodes stopped cleanly on SIGTERM (the demo fails otherwise) and left their data.
    assert!(dir.join("st-mary/data/blocks.redb").exists());
}

/// A reader that stops early closes the pipe: the command ends quietly with status 141
/// (128 + SIGPIPE) once its work is done, never with a panic.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let member = dir.path().join("m");
    let mut child = Command::new(common::binary())
        .args(["init", "--dir", member.to_str().unwrap(), "--name", "m1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    // The work was done before the output: the member exists.
    assert!(member.join("member.json").exists());
}
