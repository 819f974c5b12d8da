//! `dataset add` stays atomic when the node it talks to dies between taking the
//! registration in and answering: afterwards the dataset is on the ledger and its table is
//! in the member's database, or neither. The node exits at that moment through its
//! fault-injection hook (`CONSORT_TEST_EXIT_AFTER_SUBMIT`), as a crash would.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, consort, serial};
use consort_demo::cluster::LocalCluster;
use serde_json::Value;

const HOOK: &str = "CONSORT_TEST_EXIT_AFTER_SUBMIT";
/// The hook's exit status.
const HOOK_EXIT: i32 = 70;

/// Node processes started here (so each can carry its own hook); killed on drop.
struct Nodes<'a> {
    cluster: &'a LocalCluster,
    children: Vec<Option<Child>>,
}

impl<'a> Nodes<'a> {
    fn start(cluster: &'a LocalCluster, hook: Option<&str>) -> Self {
        let mut nodes = Self {
            cluster,
            children: (0..cluster.members.len()).map(|_| None).collect(),
        };
        for i in 0..cluster.members.len() {
            nodes.spawn(i, hook);
        }
        nodes
    }

    fn spawn(&mut self, i: usize, hook: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cluster.log_path(i))
            .unwrap();
        let mut command = Command::new(binary());
        command
            .arg("--dir")
            .arg(&self.cluster.members[i].dir.root)
            .args(["node", "run", "--genesis"])
            .arg(&self.cluster.genesis_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        match hook {
            Some(stage) => command.env(HOOK, stage),
            None => command.env_remove(HOOK),
        };
        self.children[i] = Some(command.spawn().expect("start a node"));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for node `i` to exit by itself and returns its status code.
    fn wait_exit(&mut self, i: usize, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        let child = self.children[i].as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.children[i] = None;
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "node {i} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn ready(&self) {
        for i in 0..self.children.len() {
            self.cluster
                .wait_ready(i, Duration::from_secs(30))
                .await
                .expect("node ready");
        }
    }

    /// The index of the member every node names as leader, once they agree and share a head.
    async fn settled_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for m in &self.cluster.members {
                if let Ok(s) = m.client.status().await {
                    seen.push((
                        s["leader"].clone(),
                        s["height"].clone(),
                        s["head_hash"].clone(),
                    ));
                }
            }
            if seen.len() == self.children.len()
                && seen.iter().all(|s| *s == seen[0])
                && seen[0].0.is_string()
            {
                let leader = seen[0].0.as_str().unwrap().to_string();
                return (0..self.cluster.members.len())
                    .find(|&i| member_id(self.cluster, i) == leader)
                    .expect("the leader is a member");
            }
            assert!(Instant::now() < deadline, "no agreement: {seen:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Nodes<'_> {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn member_id(cluster: &LocalCluster, i: usize) -> String {
    cluster.members[i]
        .dir
        .load_card()
        .unwrap()
        .member_id
        .to_string()
}

fn table_exists(cluster: &LocalCluster, i: usize, table: &str) -> bool {
    let path = cluster.members[i].dir.data_dir().join("datasets.sqlite");
    if !path.exists() {
        return false;
    }
    let db = rusqlite::Connection::open(path).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

/// Whether the ledger (as member `reader` sees it) records member `owner`'s dataset `name`.
async fn on_ledger(cluster: &LocalCluster, reader: usize, owner: usize, name: &str) -> bool {
    let owner = member_id(cluster, owner);
    cluster.members[reader]
        .client
        .catalog()
        .await
        .unwrap()
        .iter()
        .any(|d| d["owner"] == owner.as_str() && d["name"] == name)
}

fn add_args(cluster: &LocalCluster, i: usize, name: &str, csv: &str) -> Vec<String> {
    let dir = cluster.members[i].dir.root.display().to_string();
    ["--dir", &dir, "dataset", "add", name, csv, "--json"]
        .map(String::from)
        .to_vec()
}

/// Runs `dataset add` through member `via`, whose node was started with the hook at
/// `stage`; restarts the node (without the hook) once it has exited; checks that the
/// dataset ended up on the ledger with its table, or neither.
async fn crash_while_registering(nodes: &mut Nodes<'_>, via: usize, name: &str, csv: &str) {
    let cluster = nodes.cluster;
    let cli = Command::new(binary())
        .args(add_args(cluster, via, name, csv))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = nodes.wait_exit(via, Duration::from_secs(30));
    assert_eq!(code, HOOK_EXIT, "the node exits through the hook");
    nodes.spawn(via, None);
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    nodes.ready().await;
    nodes.settled_leader().await;
    let table = consort_node::datasets::table_name(name, 1);
    let registered = on_ledger(cluster, (via + 1) % 3, via, name).await;
    let stored = table_exists(cluster, via, &table);
    eprintln!(
        "{name} through {}: exit {:?}, registered {registered}, table {stored}: {stdout}{stderr}",
        cluster.members[via].name,
        out.status.code()
    );
    assert_eq!(
        registered, stored,
        "ledger and table must agree: {stdout}{stderr}"
    );
    if registered {
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        let dir = cluster.members[via].dir.root.display().to_string();
        let (code, out, err) = consort(&["--dir", &dir, "dataset", "verify", name]);
        assert_eq!(code, 0, "verify passes: {out}{err}");
    } else {
        assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dataset_add_survives_its_node_dying_between_submit_and_answer() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::create(root.path(), 3, &binary()).unwrap();
    let csv = root.path().join("rows.csv");
    std::fs::write(&csv, "k,v\n1,a\n2,b\n3,c\n").unwrap();
    let csv = csv.display().to_string();
    // Every node exits once a dataset record it took in reaches a leader's queue.
    let mut nodes = Nodes::start(&cluster, Some("routed"));
    nodes.ready().await;

    // The leader itself dies with the record in its queue (or just proposed).
    let first = nodes.settled_leader().await;
    crash_while_registering(&mut nodes, first, "on_leader", &csv).await;

    // A follower dies right after the leader accepted the forwarded record. (The node
    // restarted above runs without the hook; both others still have it.)
    let leader = nodes.settled_leader().await;
    let follower = (0..3).find(|&i| i != leader && i != first).unwrap();
    crash_while_registering(&mut nodes, follower, "on_follower", &csv).await;

    // A node dies once the record is committed, before it answers.
    let leader = nodes.settled_leader().await;
    let via = (leader + 1) % 3;
    nodes.kill(via);
    nodes.spawn(via, Some("committed"));
    nodes.ready().await;
    crash_while_registering(&mut nodes, via, "after_commit", &csv).await;

    // A registered dataset whose table went missing is rebuilt by adding the same input
    // again; a different input rebuilds nothing.
    let dir = cluster.members[via].dir.root.display().to_string();
    let db =
        rusqlite::Connection::open(cluster.members[via].dir.data_dir().join("datasets.sqlite"))
            .unwrap();
    db.execute_batch("DROP TABLE ds_after_commit_v1").unwrap();
    drop(db);
    let other = root.path().join("other.csv");
    std::fs::write(&other, "k,v\n1,a\n2,b\n").unwrap();
    let (code, _, err) = consort(&[
        "--dir",
        &dir,
        "dataset",
        "add",
        "after_commit",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing was restored"), "{err}");
    assert!(!table_exists(&cluster, via, "ds_after_commit_v1"));
    let (code, out, err) = consort(&[
        "--dir",
        &dir,
        "dataset",
        "add",
        "after_commit",
        &csv,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["restored"], true, "{summary}");
    let (code, out, err) = consort(&["--dir", &dir, "dataset", "verify", "after_commit"]);
    assert_eq!(code, 0, "{out}{err}");
    // With the table present, adding it again is refused as before.
    let (code, _, err) = consort(&["--dir", &dir, "dataset", "add", "after_commit", &csv]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
}
