//! Bad input against real nodes: forged and replayed transactions, malformed API requests,
//! missing tokens, strangers and garbage on the peer port, tampered ledgers.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{cluster, consort, serial, signed};
use consort_crypto::SecretKey;
use consort_ledger::Transaction;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_transactions_and_requests_are_refused_clearly() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let client = &cluster.members[1].client;

    // A good one commits.
    let good = signed(&cluster, 1, 1);
    let r = client.submit(&good, true).await.unwrap();
    assert_eq!(r["status"], "committed");
    assert_eq!(r["valid"], true);

    // Replaying it is refused at submission.
    let err = client.submit(&good, true).await.unwrap_err();
    common::assert_refused(&err, 409, "nonce");

    // A stranger's transaction and a bad signature, through the leader and the followers
    // alike (a follower leaves the signature check to the leader).
    let genesis = consort_node::config::read_genesis(&cluster.genesis_path).unwrap();
    let stranger = SecretKey::generate();
    for (i, member) in cluster.members.iter().enumerate() {
        let tx = Transaction::sign(
            common::notarization(2),
            &stranger,
            &genesis.chain_id(),
            7 + i as u64,
            1,
        );
        let err = member.client.submit(&tx, true).await.unwrap_err();
        common::assert_refused(&err, 403, "signer");

        let mut forged = signed(&cluster, i, 3 + i as u64);
        forged.signature.0[5] ^= 0x40;
        let err = member.client.submit(&forged, true).await.unwrap_err();
        common::assert_refused(&err, 400, "signature");
        // In a batch, the bad one is refused and the good one commits.
        let good = signed(&cluster, i, 50 + i as u64);
        let results = member
            .client
            .submit_many(&[forged.clone(), good], true)
            .await
            .unwrap();
        assert_eq!(results[0]["status"], "rejected", "{}", results[0]);
        assert_eq!(results[1]["status"], "committed", "{}", results[1]);
    }

    // Malformed API requests: 4xx with a JSON error, never 5xx.
    let http = reqwest::Client::new();
    let base = format!("http://{}", cluster.members[1].api_addr);
    let token = cluster.members[1].dir.load_token().unwrap();
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("POST", "/api/tx", Some("this is not json")),
        ("POST", "/api/tx", Some("{\"tx\": \"zz\"}")),
        ("POST", "/api/tx", Some("{\"tx\": \"00ff\"}")),
        ("POST", "/api/txs", Some("{\"txs\": 5}")),
        ("POST", "/api/tx", Some("{}")),
        ("GET", "/api/ledger/blocks/abc", None),
        ("GET", "/api/ledger/blocks/99999999", None),
        ("GET", "/api/ledger/txs/nothex", None),
        (
            "GET",
            "/api/ledger/txs/0000000000000000000000000000000000000000000000000000000000000000",
            None,
        ),
        ("GET", "/api/no/such/route", None),
    ];
    for (method, path, body) in cases {
        let mut req = if method == "GET" {
            http.get(format!("{base}{path}"))
        } else {
            http.post(format!("{base}{path}"))
        };
        req = req.bearer_auth(&token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let json: serde_json::Value = resp
            .json()
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: body is not JSON"));
        assert!(
            (400..500).contains(&status),
            "{method} {path} gave {status}"
        );
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: {json}"
        );
    }

    // An oversized body and a wrong method: 4xx with a JSON error as well.
    // A declared length over the limit is refused before any of the body is read.
    let head = format!(
        "POST /api/tx HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        40 * 1024 * 1024
    );
    let mut raw = std::net::TcpStream::connect(&cluster.members[1].api_addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    raw.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut raw, &mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains("\"error\""), "{answer}");
    let resp = http
        .get(format!("{base}/api/tx"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    // Health and the OpenAPI document need no token; everything else does.
    let resp = http.get(format!("{base}/api/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: serde_json::Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/tx"].is_object(), "{doc}");

    // Missing and wrong tokens: 401.
    let resp = http
        .get(format!("{base}/api/ledger/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .get(format!("{base}/api/ledger/status"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .post(format!("{base}/api/tx"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // Garbage on the peer port closes that link; the node stays up and keeps committing.
    for garbage in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xffu8; 4096],
        vec![0x16, 0x03, 0x01, 0xff, 0xff],
    ] {
        let mut s = std::net::TcpStream::connect(&cluster.members[1].peer_addr).unwrap();
        let _ = s.write_all(&garbage);
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client.submit(&signed(&cluster, 1, 4), true).await.unwrap();
    assert_eq!(r["status"], "committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_is_detected_and_named_by_height() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let mut cluster = cluster(root.path(), 3).await;
    let client = cluster.members[0].client.clone();
    for k in 0..6 {
        client
            .submit(&signed(&cluster, 0, 100 + k), true)
            .await
            .unwrap();
    }
    let export = client.export().await.unwrap();
    let export_path = root.path().join("good.export");
    std::fs::write(&export_path, &export).unwrap();
    let (code, out, err) = consort(&[
        "ledger",
        "verify",
        "--export",
        export_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    let blocks = consort_ledger::read_export(&export).unwrap();
    let write = |name: &str, blocks: &[Vec<u8>]| {
        let mut bytes = Vec::new();
        consort_ledger::write_export(&mut bytes, blocks.iter().cloned().map(Ok)).unwrap();
        let path = root.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let expect_bad = |path: &std::path::Path, height: u64| {
        let (code, out, err) = consort(&["ledger", "verify", "--export", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{}: {out}{err}", path.display());
        assert!(
            err.contains(&format!("height {height}")),
            "{}: {err}",
            path.display()
        );
    };

    // A flipped byte inside block 3.
    let mut flipped = blocks.clone();
    let mid = flipped[3].len() / 2;
    flipped[3][mid] ^= 0x01;
    expect_bad(&write("flipped.export", &flipped), 3);

    // The transaction removed from block 2 (re-encoded with its header unchanged).
    let mut block = consort_ledger::Block::decode(&blocks[2]).unwrap();
    block.txs.clear();
    block.outcomes.clear();
    let mut removed = blocks.clone();
    removed[2] = block.encode();
    expect_bad(&write("removed.export", &removed), 2);

    // Two blocks swapped.
    let mut swapped = blocks.clone();
    swapped.swap(4, 5);
    expect_bad(&write("swapped.export", &swapped), 4);

    // A forged block signature.
    let mut forged_block = consort_ledger::Block::decode(&blocks[5]).unwrap();
    forged_block.signature.0[0] ^= 0x80;
    let mut forged = blocks.clone();
    forged[5] = forged_block.encode();
    expect_bad(&write("forged.export", &forged), 5);

    // A garbage file is refused with a one-line reason.
    let junk = root.path().join("junk.export");
    std::fs::write(&junk, b"not an export at all").unwrap();
    let (code, _, err) = consort(&["ledger", "verify", "--export", junk.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A flipped byte in a stored block: stop the node, corrupt its redb file where block 4's
    // notarised file name lives, verify offline.
    cluster.stop(0).unwrap();
    let db_path = cluster.members[0].dir.data_dir().join("blocks.redb");
    let mut db = std::fs::read(&db_path).unwrap();
    let needle = b"file-103.txt";
    let pos = db
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("block bytes in the store");
    db[pos] ^= 0x20;
    std::fs::write(&db_path, db).unwrap();
    let dir = cluster.members[0].dir.root.to_str().unwrap().to_string();
    let (code, out, err) = consort(&["--dir", &dir, "ledger", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("height 4"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_port_refuses_strangers_wrong_genesis_and_oversized_frames() {
    use consort_node::peer::{connect_authenticated, PeerContext, PeerError, TrustSet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 3).await;
    let genesis = consort_node::config::read_genesis(&cluster.genesis_path).unwrap();
    let chain_id = genesis.chain_id();
    let member_keys: Vec<_> = genesis.members.iter().map(|m| m.public_key).collect();
    let target = &cluster.members[1].peer_addr;

    // A key that is not a member is refused at the TLS handshake.
    let stranger = SecretKey::generate();
    let ctx = PeerContext::new(&stranger, TrustSet::new(member_keys.clone()), chain_id).unwrap();
    let err = connect_authenticated(&ctx, target, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            PeerError::RefusedByPeer { .. } | PeerError::Tls(_) | PeerError::Disconnected { .. }
        ),
        "stranger must be refused at the handshake, got {err}"
    );

    // A member's key announcing another genesis is refused at the hello.
    let alpha = cluster.members[0].dir.load_key().unwrap();
    let other_chain = consort_crypto::hash_domain("another consortium", &[]);
    let ctx = PeerContext::new(&alpha, TrustSet::new(member_keys.clone()), other_chain).unwrap();
    let err = connect_authenticated(&ctx, target, None).await.unwrap_err();
    assert!(matches!(err, PeerError::WrongGenesis { .. }), "got {err}");

    // An authenticated member sending an oversized frame: that link closes, the node stays up.
    let ctx = PeerContext::new(&alpha, TrustSet::new(member_keys.clone()), chain_id).unwrap();
    let mut link = connect_authenticated(&ctx, target, None).await.unwrap();
    link.stream
        .write_all(&u32::MAX.to_be_bytes())
        .await
        .unwrap();
    link.stream.flush().await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), link.stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the link must be closed, got {read:?}"
    );

    // And a garbage frame of a plausible size.
    let mut link = connect_authenticated(&ctx, target, None).await.unwrap();
    link.stream.write_all(&64u32.to_be_bytes()).await.unwrap();
    link.stream.write_all(&[0xAB; 64]).await.unwrap();
    link.stream.flush().await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), link.stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the link must be closed, got {read:?}"
    );

    let r = cluster.members[1]
        .client
        .submit(&signed(&cluster, 1, 9), true)
        .await
        .unwrap();
    assert_eq!(r["status"], "committed");
    let log = std::fs::read_to_string(cluster.log_path(1)).unwrap();
    assert!(
        log.contains("frame"),
        "the refusal is logged with its reason:\n{log}"
    );
}
