//! Membership changes on real nodes: a proposal signed by a majority adds a fourth member,
//! whose node catches up, joins Raft and is trusted by TLS; a removal takes a member out.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{cluster, consort, notarization, serial, signed};
use consort_ledger::{Block, Transaction};
use serde_json::{json, Value};

fn dir_of(cluster: &consort_demo::cluster::LocalCluster, i: usize) -> String {
    cluster.members[i].dir.root.to_str().unwrap().to_string()
}

async fn wait_for_members(cluster: &consort_demo::cluster::LocalCluster, i: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = cluster.members[i].client.status().await {
            if s["members"].as_array().map(|m| m.len()) == Some(n) && !s["leader"].is_null() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "member {i} never saw {n} members"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn majority_signed_member_add_and_remove() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    let delta = cluster.add_member("delta").unwrap();
    let proposal = root.path().join("add-delta.json");
    let proposal_s = proposal.to_str().unwrap().to_string();
    let card = cluster.members[delta].dir.card_path();

    // One signature of three is not a majority: refused at submission.
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "member",
        "propose-add",
        card.to_str().unwrap(),
        "--out",
        &proposal_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "member",
        "submit",
        &proposal_s,
    ]);
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("approv"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Signing twice does not count twice.
    let (code, _, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "member",
        "approve",
        &proposal_s,
    ]);
    assert_eq!(code, 1, "{err}");

    // A second member approves: two of three.
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 1),
        "member",
        "approve",
        &proposal_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 2),
        "member",
        "submit",
        &proposal_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("committed"), "{out}");

    // The new member's node starts from the genesis, catches up, and joins.
    std::fs::copy(
        &cluster.genesis_path,
        cluster.members[delta].dir.genesis_path(),
    )
    .unwrap();
    cluster.start(delta).unwrap();
    wait_for_members(&cluster, delta, 4).await;
    let r = cluster.members[delta]
        .client
        .submit(&signed(&cluster, delta, 1), true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed", "{r}");
    assert_eq!(r["valid"], true, "{r}");
    cluster
        .wait_converged(Duration::from_secs(30))
        .await
        .unwrap();

    // With four voters, Raft still commits with one of the founders down: the new member
    // counts toward the quorum.
    let leader = cluster.leader().await.unwrap();
    let down = (0..3).find(|i| *i != leader).unwrap();
    cluster.kill(down).unwrap();
    let r = cluster.members[delta]
        .client
        .submit(&signed(&cluster, delta, 2), true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed", "{r}");
    cluster.start(down).unwrap();
    cluster
        .wait_all_ready(Duration::from_secs(30))
        .await
        .unwrap();

    // A transaction of gamma's, to prove after gamma is gone.
    let gamma_tx = signed(&cluster, 2, 2);
    let r = cluster.members[2]
        .client
        .submit(&gamma_tx, true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed", "{r}");

    // Remove gamma: three of four must sign.
    let gamma_id = cluster.members[2]
        .dir
        .load_card()
        .unwrap()
        .member_id
        .to_string();
    let removal = root.path().join("remove-gamma.json");
    let removal_s = removal.to_str().unwrap().to_string();
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "member",
        "propose-remove",
        &gamma_id,
        "--out",
        &removal_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for signer in [1, delta] {
        let (code, out, err) = consort(&[
            "--dir",
            &dir_of(&cluster, signer),
            "member",
            "approve",
            &removal_s,
        ]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 1),
        "member",
        "submit",
        &removal_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for_members(&cluster, 0, 3).await;

    // Gamma's transactions are now refused, and the rest keep committing.
    let err = cluster.members[0]
        .client
        .submit(&signed(&cluster, 2, 3), true)
        .await
        .unwrap_err();
    common::assert_refused(&err, 403, "signer");
    let r = cluster.members[1]
        .client
        .submit(&signed(&cluster, 1, 4), true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed", "{r}");
    let export = cluster.members[delta].client.export().await.unwrap();
    consort_demo::ledger::verify_export_bytes(&export)
        .expect("chain with membership changes verifies");

    // Every transaction stays provable: gamma's, made before its removal, and the genesis
    // transaction at height 0 (whose id `ledger show 0` gives).
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "ledger",
        "show",
        "0",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let block0: serde_json::Value = serde_json::from_str(&out).unwrap();
    let genesis_tx = block0["txs"][0]["tx_id"]
        .as_str()
        .unwrap_or_else(|| panic!("block 0 lists its transaction: {block0}"))
        .to_string();
    for (what, txid) in [
        ("gamma's", gamma_tx.id().to_string()),
        ("the genesis", genesis_tx),
    ] {
        let proof = root.path().join("proof.json");
        let proof_s = proof.to_str().unwrap();
        let (code, out, err) = consort(&[
            "--dir",
            &dir_of(&cluster, 0),
            "ledger",
            "proof",
            &txid,
            "--out",
            proof_s,
        ]);
        assert_eq!(code, 0, "proof of {what} transaction: {out}{err}");
        let (code, out, err) = consort(&["ledger", "verify-proof", proof_s]);
        assert_eq!(code, 0, "verify-proof of {what} transaction: {out}{err}");
        // The chain started under rule version 3: its blocks name the chain.
        assert!(out.contains("rule version 3"), "{out}");
        if what == "gamma's" {
            assert!(out.contains("a member when it was recorded"), "{out}");
            assert!(out.contains("block signature names the chain id"), "{out}");
        }
    }

    // An invalid outcome: two transactions of beta's with one nonce in one batch; both pass
    // intake, and the block records the later one as a replay.
    let beta_key = cluster.members[1].dir.load_key().unwrap();
    let genesis = consort_node::config::read_genesis(&cluster.genesis_path).unwrap();
    let chain_id = genesis.chain_id();
    let nonce = rand::random();
    let twins: Vec<Transaction> = [900u64, 901]
        .iter()
        .map(|&i| {
            Transaction::sign(
                notarization(i),
                &beta_key,
                &chain_id,
                nonce,
                1_700_000_000_000 + i,
            )
        })
        .collect();
    let results = cluster.members[1]
        .client
        .submit_many(&twins, true)
        .await
        .unwrap();
    let replayed = results
        .iter()
        .find(|r| r["valid"] == false)
        .unwrap_or_else(|| panic!("one of the pair is recorded invalid: {results:?}"));
    let replayed_id = replayed["tx_id"].as_str().unwrap().to_string();
    let invalid_proof = root.path().join("invalid-proof.json");
    let invalid_s = invalid_proof.to_str().unwrap().to_string();
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "ledger",
        "proof",
        &replayed_id,
        "--out",
        &invalid_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = consort(&["ledger", "verify-proof", &invalid_s]);
    assert_eq!(
        code, 0,
        "verify-proof of an invalid transaction: {out}{err}"
    );
    assert!(out.contains("ReplayedNonce"), "{out}");

    // Crafted proofs, each refused by verify-proof with its reason on one line.
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(&invalid_proof).unwrap()).unwrap();
    let crafted = root.path().join("crafted.json");
    let refuses = |proof: &str, needles: &[&str]| {
        std::fs::write(&crafted, proof).unwrap();
        let (code, out, err) = consort(&["ledger", "verify-proof", crafted.to_str().unwrap()]);
        assert_eq!(code, 1, "a crafted proof verified: {out}{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    };
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        v.to_string()
    };
    // Another chain id on the invalid-outcome transaction; also with a twin consortium's
    // genesis (same members, another name) in place of this one's.
    refuses(
        &edited(&|v| v["chain_id"] = json!("11".repeat(32))),
        &["genesis"],
    );
    let mut twin = genesis.clone();
    twin.consortium.push_str("-twin");
    let twin_genesis = hex::encode(twin.block().txs[0].encode());
    refuses(
        &edited(&|v| {
            v["chain_id"] = json!(twin.chain_id().to_string());
            v["genesis"] = json!(twin_genesis.clone());
        }),
        &["governance entry 0"],
    );
    // The recorded outcome code changed.
    refuses(
        &edited(&|v| v["outcome"] = json!("Valid")),
        &["outcome code 3 (ReplayedNonce)"],
    );
    // A membership change left out of the history (delta's admission).
    refuses(
        &edited(&|v| {
            v["governance"].as_array_mut().unwrap().remove(0);
        }),
        &["state root"],
    );
    // Uppercase hex, an unknown field, a version-1 proof.
    refuses(
        &edited(&|v| v["block_hash"] = json!(v["block_hash"].as_str().unwrap().to_uppercase())),
        &["lowercase"],
    );
    refuses(
        &edited(&|v| v["note"] = json!("trust me")),
        &["unknown field"],
    );
    refuses(
        &edited(&|v| {
            v.as_object_mut().unwrap().remove("version");
        }),
        &["version-1", "consort ledger proof"],
    );
    // An outsider seals a block around gamma's genuine transaction, signing the message that
    // names this chain.
    let outsider = consort_crypto::SecretKey::from_seed(&[0x5a; 32]);
    let (code, out, err) = consort(&[
        "--dir",
        &dir_of(&cluster, 0),
        "ledger",
        "proof",
        &gamma_tx.id().to_string(),
        "--out",
        &invalid_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let mut forged = consort_ledger::InclusionProof::from_json(
        &std::fs::read_to_string(&invalid_proof).unwrap(),
    )
    .unwrap();
    forged.header.proposer = outsider.member_id();
    forged.block_hash = forged.header.hash();
    forged.block_signature = outsider.sign(&forged.header.signing_message(3, &chain_id));
    forged.proposer_key = Some(outsider.public_key());
    refuses(
        &serde_json::to_string(&forged).unwrap(),
        &["was not a member before block"],
    );

    // `ledger verify` refuses a block of this version-3 chain signed over the old message.
    let blocks: Vec<Block> = consort_ledger::read_export(&export)
        .unwrap()
        .iter()
        .map(|raw| Block::decode(raw).unwrap())
        .collect();
    let mut blocks = blocks;
    let height = 2;
    let proposer = blocks[height].header.proposer;
    let key = (0..cluster.members.len())
        .map(|i| cluster.members[i].dir.load_key().unwrap())
        .find(|k| k.member_id() == proposer)
        .unwrap();
    let hash = blocks[height].hash();
    blocks[height].signature = key.sign(&consort_ledger::block::block_signing_message_v1(&hash));
    let mut bytes = Vec::new();
    consort_ledger::write_export(&mut bytes, blocks.iter().map(|b| Ok(b.encode()))).unwrap();
    let resigned = root.path().join("resigned.export");
    std::fs::write(&resigned, &bytes).unwrap();
    let (code, out, err) = consort(&["ledger", "verify", "--export", resigned.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("height 2")
            && err.contains("block signature")
            && err.contains("rule version 3"),
        "{err}"
    );
}
