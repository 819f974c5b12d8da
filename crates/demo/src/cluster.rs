//! A consortium of nodes on loopback, each a separate `consort node run` process: used by
//! `consort demo`, `consort bench` and the integration tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use consort_ledger::Genesis;
use consort_node::client::ApiClient;
use consort_node::config::MemberDir;
use serde_json::Value;

pub struct LocalMember {
    pub name: String,
    pub dir: MemberDir,
    pub api_addr: String,
    pub peer_addr: String,
    pub client: ApiClient,
    child: Option<Child>,
}

pub struct LocalCluster {
    pub root: PathBuf,
    pub genesis_path: PathBuf,
    pub members: Vec<LocalMember>,
    binary: PathBuf,
    log_dir: PathBuf,
}

/// A loopback address with a port that was free a moment ago. Ports come from below the
/// kernel's ephemeral range (32768 and up on Linux), so an outgoing connection elsewhere on
/// the machine cannot take the port before the node binds it.
pub fn free_addr() -> Result<String> {
    for _ in 0..200 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?.to_string());
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

impl LocalCluster {
    /// Creates `n` members in a fresh temporary directory named from `prefix`, starts
    /// them (this binary's `node run`) and waits until all are ready. The directory must
    /// outlive the cluster: bind it first, `let (_temp, cluster) = …`.
    pub async fn start_temp(prefix: &str, n: usize) -> Result<(tempfile::TempDir, Self)> {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let binary = std::env::current_exe().context("locating the consort binary")?;
        let mut cluster = Self::create(temp.path(), n, &binary)?;
        cluster.enable_bench_endpoints()?;
        cluster.start_all()?;
        cluster.wait_all_ready(Duration::from_secs(30)).await?;
        Ok((temp, cluster))
    }

    /// Turns on every member's benchmark endpoints (`bench_endpoints` in its config), for
    /// `consort bench`; takes effect when a node starts.
    pub fn enable_bench_endpoints(&self) -> Result<()> {
        for member in &self.members {
            let mut config = member.dir.load_config()?;
            config.bench_endpoints = true;
            member.dir.save_config(&config)?;
        }
        Ok(())
    }

    /// Creates `n` members under `root` and their genesis; starts nothing.
    pub fn create(root: &Path, n: usize, binary: &Path) -> Result<Self> {
        let names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
        Self::create_named(root, &names, n, binary)
    }

    /// [`Self::create`] with the members named from `names` (then `member<i>`).
    pub fn create_named(root: &Path, names: &[&str], n: usize, binary: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let mut members = Vec::with_capacity(n);
        let mut cards = Vec::with_capacity(n);
        for i in 0..n {
            let name = names
                .get(i)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("member{i}"));
            let dir = MemberDir::new(root.join(&name));
            let (peer_addr, api_addr) = (free_addr()?, free_addr()?);
            let card = dir.init(&name, &peer_addr, &api_addr)?;
            cards.push(card.info);
            let client = ApiClient::new(&api_addr, &dir.load_token()?);
            members.push(LocalMember {
                name,
                dir,
                api_addr,
                peer_addr,
                client,
                child: None,
            });
        }
        let genesis = Genesis {
            consortium: "demo".into(),
            created_ms: consort_node::clock::now_ms(),
            members: cards,
            rules_version: consort_ledger::rules_limits::LATEST_RULES,
        };
        genesis.validate()?;
        let genesis_path = root.join("genesis.json");
        std::fs::write(&genesis_path, serde_json::to_string_pretty(&genesis)?)?;
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir)?;
        Ok(Self {
            root: root.to_path_buf(),
            genesis_path,
            members,
            binary: binary.to_path_buf(),
            log_dir,
        })
    }

    /// Adopts member directories that already exist under `root` (one per name, each with
    /// its `config.toml`), with `root/genesis.json`; starts nothing. For nodes restarted on
    /// a chain some earlier build left behind.
    pub fn open(root: &Path, names: &[&str], binary: &Path) -> Result<Self> {
        let mut members = Vec::with_capacity(names.len());
        for name in names {
            let dir = MemberDir::new(root.join(name));
            let config = dir.load_config()?;
            let client = ApiClient::new(&config.api_addr, &dir.load_token()?);
            members.push(LocalMember {
                name: name.to_string(),
                dir,
                api_addr: config.api_addr,
                peer_addr: config.peer_addr,
                client,
                child: None,
            });
        }
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir)?;
        Ok(Self {
            root: root.to_path_buf(),
            genesis_path: root.join("genesis.json"),
            members,
            binary: binary.to_path_buf(),
            log_dir,
        })
    }

    /// Creates one more member directory (not in the genesis) and returns its index; it
    /// joins the consortium only once a `MemberAdd` for it commits.
    pub fn add_member(&mut self, name: &str) -> Result<usize> {
        let dir = MemberDir::new(self.root.join(name));
        let (peer_addr, api_addr) = (free_addr()?, free_addr()?);
        dir.init(name, &peer_addr, &api_addr)?;
        let client = ApiClient::new(&api_addr, &dir.load_token()?);
        self.members.push(LocalMember {
            name: name.to_string(),
            dir,
            api_addr,
            peer_addr,
            client,
            child: None,
        });
        Ok(self.members.len() - 1)
    }

    /// Starts member `i`'s node process (its log goes to `root/logs/NAME.log`).
    pub fn start(&mut self, i: usize) -> Result<()> {
        let member = self
            .members
            .get_mut(i)
            .ok_or_else(|| anyhow!("no member {i}"))?;
        if member.child.is_some() {
            bail!("{} is already running", member.name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", member.name)))?;
        let child = Command::new(&self.binary)
            .arg("--dir")
            .arg(&member.dir.root)
            .args(["node", "run", "--genesis"])
            .arg(&self.genesis_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        member.child = Some(child);
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.signal(i, libc::SIGKILL)
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        self.signal(i, libc::SIGTERM)
    }

    /// SIGINT (Ctrl-C) and wait for a clean exit.
    pub fn interrupt(&mut self, i: usize) -> Result<()> {
        self.signal(i, libc::SIGINT)
    }

    fn signal(&mut self, i: usize, signal: i32) -> Result<()> {
        let member = self
            .members
            .get_mut(i)
            .ok_or_else(|| anyhow!("no member {i}"))?;
        let Some(mut child) = member.child.take() else {
            return Ok(());
        };
        let pid = child.id() as i32;
        // SAFETY: kill(2) on a child we spawned and have not reaped, so the pid is still ours.
        unsafe {
            libc::kill(pid, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                if signal != libc::SIGKILL && !status.success() {
                    bail!("{} exited with {status} after SIGTERM", member.name);
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not exit within 20 s of signal {signal}",
                    member.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of member `i`'s node, if it was started here.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members.get(i)?.child.as_ref().map(|c| c.id())
    }

    /// Whether member `i`'s process is still alive (reaping it if it exited).
    pub fn is_alive(&mut self, i: usize) -> bool {
        match self.members.get_mut(i).and_then(|m| m.child.as_mut()) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members.get(i).is_some_and(|m| m.child.is_some())
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.members[i].name))
    }

    /// Waits until member `i` answers and knows a leader.
    pub async fn wait_ready(&self, i: usize, timeout: Duration) -> Result<Value> {
        let member = &self.members[i];
        let deadline = Instant::now() + timeout;
        loop {
            match member.client.status().await {
                Ok(status) if !status["leader"].is_null() => return Ok(status),
                Ok(_) | Err(_) if Instant::now() < deadline => {}
                Ok(_) => bail!("{} has no leader after {timeout:?}", member.name),
                Err(e) => bail!("{} is not ready after {timeout:?}: {e}", member.name),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_all_ready(&self, timeout: Duration) -> Result<()> {
        for i in 0..self.members.len() {
            if self.is_running(i) {
                self.wait_ready(i, timeout).await?;
            }
        }
        Ok(())
    }

    /// Waits until every running member reports the same height and head hash.
    pub async fn wait_converged(&self, timeout: Duration) -> Result<(u64, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for (i, m) in self.members.iter().enumerate() {
                if !self.is_running(i) {
                    continue;
                }
                if let Ok(s) = m.client.status().await {
                    seen.push((
                        s["height"].as_u64().unwrap_or(0),
                        s["head_hash"].as_str().unwrap_or("").to_string(),
                    ));
                } else {
                    seen.push((u64::MAX, String::new()));
                }
            }
            if let Some(first) = seen.first() {
                if seen.iter().all(|s| s == first) && first.0 != u64::MAX {
                    return Ok(first.clone());
                }
            }
            if Instant::now() > deadline {
                bail!("nodes did not converge within {timeout:?}: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the member that currently leads, by asking a running member.
    pub async fn leader(&self) -> Result<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if !self.is_running(i) {
                continue;
            }
            if let Ok(s) = m.client.status().await {
                if let Some(leader) = s["leader"].as_str() {
                    if let Some(j) = self.members.iter().position(|m| {
                        m.dir
                            .load_card()
                            .map(|c| c.member_id.to_string())
                            .ok()
                            .as_deref()
                            == Some(leader)
                    }) {
                        return Ok(j);
                    }
                }
            }
        }
        bail!("no running member knows a leader")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
