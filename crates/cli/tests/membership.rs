//! Membership changes on real nodes: a proposal signed by a majority adds a fourth member,
//! whose node catches up, joins Raft and is trusted by TLS; a removal takes a member out.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, consort, serial, signed};

fn dir_of(cluster: &consort_cli::cluster::LocalCluster, i: usize) -> String {
    cluster.members[i].dir.root.to_str().unwrap().to_string()
}

async fn wait_for_members(cluster: &consort_cli::cluster::LocalCluster, i: usize, n: usize) {
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
    consort_cli::commands::verify_export_bytes(&export)
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
    }
}
