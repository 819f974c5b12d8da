//! Outsiders on the network against real node processes: a flood of anonymous peer
//! handshakes does not keep a restarting member out or fill the log, a slowloris flood on
//! the API neither grows the node's memory nor locks out callers with the token, and bad
//! SQL is the caller's error (400).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster, serial, signed};
use consort_demo::cluster::LocalCluster;
use consort_node::client::ApiClient;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// The start of a TLS ClientHello record that never gets finished.
const PARTIAL_CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00];
/// A request head that never gets finished.
const PARTIAL_HEAD: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: x\r\n";

/// Log lines a node writes about refused peer connections (one by one or summarised).
fn refusal_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("refused peer")
                || l.contains("dropped pending peer")
                || l.contains("peer connections in the last")
        })
        .count()
}

fn read_log_from(cluster: &LocalCluster, i: usize, offset: u64) -> String {
    let bytes = std::fs::read(cluster.log_path(i)).unwrap_or_default();
    String::from_utf8_lossy(&bytes[(offset as usize).min(bytes.len())..]).into_owned()
}

fn log_len(cluster: &LocalCluster, i: usize) -> u64 {
    std::fs::metadata(cluster.log_path(i)).map_or(0, |m| m.len())
}

/// Opens `conns` connections to `target` from 127.0.0.2 and up (three per source
/// address), each sending half a ClientHello and holding on until the server closes it,
/// then opening it again a second later; counts the attempts.
fn peer_flood(target: SocketAddr, conns: usize, stop: watch::Receiver<bool>) -> Arc<AtomicU64> {
    let attempts = Arc::new(AtomicU64::new(0));
    for i in 0..conns {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i / 3) as u8));
        let attempts = attempts.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                attempts.fetch_add(1, Ordering::Relaxed);
                let connect = async {
                    let socket = TcpSocket::new_v4()?;
                    socket.bind(SocketAddr::new(source, 0))?;
                    socket.connect(target).await
                };
                if let Ok(Ok(mut tcp)) = tokio::time::timeout(Duration::from_secs(2), connect).await
                {
                    let _ = tcp.write_all(PARTIAL_CLIENT_HELLO).await;
                    let mut buf = [0u8; 256];
                    let held =
                        async { while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {} };
                    tokio::select! {
                        _ = held => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handshake_flood_neither_keeps_a_restarting_member_out_nor_fills_the_log() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path(), 3).await;
    let leader = cluster.leader().await.unwrap();
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let flooded: Vec<usize> = (0..3).filter(|i| *i != victim).collect();

    let (stop, stopping) = watch::channel(false);
    let offsets: Vec<u64> = flooded.iter().map(|i| log_len(&cluster, *i)).collect();
    let started = Instant::now();
    let attempts: Vec<_> = flooded
        .iter()
        .map(|i| {
            let target = cluster.members[*i].peer_addr.parse().unwrap();
            peer_flood(target, 300, stopping.clone())
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The victim restarts into the flood: it must get its links back and commit through
    // the leader it forwards to.
    cluster.kill(victim).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start(victim).unwrap();
    cluster
        .wait_ready(victim, Duration::from_secs(20))
        .await
        .expect("the restarted member rejoins during the flood");
    let txs: Vec<_> = (0..20)
        .map(|k| signed(&cluster, victim, 9_000 + k))
        .collect();
    let results = tokio::time::timeout(
        Duration::from_secs(20),
        cluster.members[victim].client.submit_many(&txs, true),
    )
    .await
    .expect("notarisations through the restarted member commit in time")
    .expect("notarisations through the restarted member commit");
    for r in &results {
        assert_eq!(r["status"], "committed", "{r}");
        assert_eq!(r["valid"], true, "{r}");
    }
    cluster
        .wait_converged(Duration::from_secs(20))
        .await
        .expect("converged during the flood");

    // Long enough for at least one summary line.
    let held_for = Duration::from_secs(13);
    if let Some(rest) = held_for.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    stop.send(true).unwrap();
    for (k, i) in flooded.iter().enumerate() {
        let tried = attempts[k].load(Ordering::Relaxed);
        assert!(tried >= 600, "only {tried} flood connections to node {i}");
        let log = read_log_from(&cluster, *i, offsets[k]);
        let lines = refusal_lines(&log);
        // 3 lines in full and 1 summary per 10 s window, plus slack for window edges.
        let windows = started.elapsed().as_secs() / 10 + 2;
        let bound = windows * 4 + 5;
        assert!(
            lines as u64 <= bound,
            "{lines} refusal lines (at most {bound}) for {tried} refused connections:\n{log}"
        );
        assert!(
            log.contains("peer connections in the last"),
            "no refusal summary in node {i}'s log:\n{log}"
        );
    }
}

/// Holding thousands of sockets needs more than the 1,024 descriptors some machines give a
/// process by default; raise the soft limit towards the hard one, or fail saying why.
fn raise_open_file_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < needed {
            limit.rlim_cur = limit.rlim_max.min(needed.max(4_096));
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= needed,
        "this test holds {needed} sockets but the open-file limit is {}",
        limit.rlim_cur
    );
}

/// The node's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Whether the server closed `tcp` (read to its end, or reset).
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_answers_bad_sql_with_400_and_outlasts_a_slowloris_flood() {
    let _guard = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 3).await;
    let api_addr = cluster.members[0].api_addr.clone();
    let token = cluster.members[0].dir.load_token().unwrap();

    let http = reqwest::Client::new();
    for (sql, needle) in [
        ("SELEKT region FROM visits", "syntax"),
        ("SELECT COUNT(*) FROM nosuch", "nosuch"),
    ] {
        let response = http
            .post(format!("http://{api_addr}/api/query"))
            .bearer_auth(&token)
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{sql}");
        let text = response.text().await.unwrap();
        assert!(!text.contains('\n'), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        let message = body["error"].as_str().unwrap().to_lowercase();
        assert!(message.contains(needle), "{sql}: {message}");
    }

    raise_open_file_limit(2_500);
    let pid = cluster.pid(0).unwrap();
    let before = rss_kib(pid);
    let target: SocketAddr = api_addr.parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..2000 {
        if let Ok(Ok(mut tcp)) =
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(target)).await
        {
            if tcp.write_all(PARTIAL_HEAD).await.is_ok() {
                held.push(tcp);
            }
        }
    }
    assert!(held.len() >= 1900, "only {} connections opened", held.len());
    let flooded_at = Instant::now();

    // Callers with the token are still served, on fresh connections, during the flood.
    for _ in 0..3 {
        let client = ApiClient::new(&api_addr, &token);
        let status = tokio::time::timeout(Duration::from_secs(5), client.status())
            .await
            .expect("answered in time")
            .expect("served during the flood");
        assert!(status["height"].is_u64(), "{status}");
    }
    let during = rss_kib(pid);
    assert!(
        during < before + 100 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );

    // Every half-written connection is closed by the server: most at once to make room,
    // the rest once the header timeout passes.
    let wait = consort_node::node::HEADER_READ_TIMEOUT + Duration::from_secs(2);
    if let Some(rest) = wait.checked_sub(flooded_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let closed = futures::future::join_all(held.iter_mut().map(closed_by_server)).await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} of {} connections still open", held.len());
    let after = rss_kib(pid);
    assert!(
        after < before + 100 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
