//! A member's directory: identity key, API token, config and public member card.
//!
//! Layout of `DIR`:
//! - `member.key`   the Ed25519 secret seed (hex), mode 0600;
//! - `api.token`    the HTTP API bearer token, mode 0600;
//! - `config.toml`  name and listen addresses;
//! - `member.json`  the public member card (name, member id, public key, addresses);
//! - `genesis.json` a copy of the consortium genesis, written by the first `node run`;
//! - `data/`        the node's redb files (`raft.redb`, `blocks.redb`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use consort_crypto::{MemberId, SecretKey};
use consort_ledger::MemberInfo;
use serde::{Deserialize, Serialize};

use crate::error::NodeError;

pub const DEFAULT_PEER_ADDR: &str = "127.0.0.1:7400";
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7401";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    pub peer_addr: String,
    pub api_addr: String,
    /// Where the member's datasets live (sqlx URL: sqlite://, postgres://, mysql://).
    /// Absent: SQLite in `DIR/data/datasets.sqlite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Serve the benchmark endpoints (`POST /api/mpc/bench`, `/api/psi/bench`), which let
    /// any holder of the API token start MPC and PSI sessions with made-up data. Off unless
    /// set (`consort bench` sets it on the clusters it creates).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bench_endpoints: bool,
}

/// The public member card written to `DIR/member.json`: a [`MemberInfo`], whose JSON also
/// carries the member id (checked against the key when read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberCard {
    pub member_id: MemberId,
    pub info: MemberInfo,
}

impl Serialize for MemberCard {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.info.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MemberCard {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let info = MemberInfo::deserialize(deserializer)?;
        Ok(Self {
            member_id: info.id(),
            info,
        })
    }
}

impl MemberCard {
    /// Reads a card; a member id that does not match the key is refused.
    pub fn read(path: &Path) -> Result<Self, NodeError> {
        let text = fs::read_to_string(path)
            .map_err(|e| NodeError::io(format!("reading member card {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| {
            NodeError::Config(format!(
                "{} is not a valid member card: {e}",
                path.display()
            ))
        })
    }
}

/// Paths inside a member directory.
#[derive(Clone, Debug)]
pub struct MemberDir {
    pub root: PathBuf,
}

impl MemberDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("member.key")
    }
    pub fn token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn card_path(&self) -> PathBuf {
        self.root.join("member.json")
    }
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.json")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn pseudonym_key_path(&self) -> PathBuf {
        self.root.join("pseudonym.key")
    }
    /// The secret the salts of hiding dataset commitments derive from (FORMAT.md §14.1).
    pub fn commitment_key_path(&self) -> PathBuf {
        self.root.join("commitment.key")
    }
    /// Where ingestion writes rejected rows.
    pub fn rejects_dir(&self) -> PathBuf {
        self.root.join("rejects")
    }
    /// The content-addressed store of files datasets.
    pub fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }

    /// The database URL of the member's datasets.
    pub fn database_url(&self, config: &NodeConfig) -> String {
        config.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir().join("datasets.sqlite").display()
            )
        })
    }

    /// The member's secret for keyed-hash pseudonymisation (created on first use, 0600).
    pub fn pseudonym_key(&self) -> Result<zeroize::Zeroizing<[u8; 32]>, NodeError> {
        Self::secret_at(&self.pseudonym_key_path())
    }

    /// The member's secret for the salts of its hiding dataset commitments (created on
    /// first use, 0600). Losing it makes the member's salted datasets unopenable: a
    /// column-subset fetch of them fails until they are registered again. Back it up with
    /// `member.key`.
    pub fn commitment_key(&self) -> Result<zeroize::Zeroizing<[u8; 32]>, NodeError> {
        Self::secret_at(&self.commitment_key_path())
    }

    fn secret_at(path: &Path) -> Result<zeroize::Zeroizing<[u8; 32]>, NodeError> {
        if !path.exists() {
            let fresh: [u8; 32] = rand::random();
            write_private(path, format!("{}\n", hex::encode(fresh)).as_bytes())?;
        }
        let text = fs::read_to_string(path)
            .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut_slice()).map_err(|_| {
            NodeError::Config(format!(
                "{} does not hold a 32-byte hex key",
                path.display()
            ))
        })?;
        Ok(key)
    }

    /// Creates a new member: key, token, config and card. Refuses to overwrite an
    /// existing member.
    pub fn init(
        &self,
        name: &str,
        peer_addr: &str,
        api_addr: &str,
    ) -> Result<MemberCard, NodeError> {
        self.init_with_database(name, peer_addr, api_addr, None)
    }

    /// [`MemberDir::init`] with the datasets' database chosen (None: SQLite in the directory).
    pub fn init_with_database(
        &self,
        name: &str,
        peer_addr: &str,
        api_addr: &str,
        database_url: Option<&str>,
    ) -> Result<MemberCard, NodeError> {
        if let Some(url) = database_url {
            if ![
                "sqlite:",
                "postgres://",
                "postgresql://",
                "mysql://",
                "mariadb://",
            ]
            .iter()
            .any(|p| url.starts_with(p))
            {
                return Err(NodeError::Config(format!(
                    "--database-url must start with sqlite:, postgres:// or mysql://, got {url:?}"
                )));
            }
        }
        if name.trim().is_empty() {
            return Err(NodeError::Config(
                "the member name must not be empty".into(),
            ));
        }
        for (what, addr) in [("peer", peer_addr), ("api", api_addr)] {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                NodeError::Config(format!(
                    "--{what}-addr {addr:?} is not HOST:PORT (an IP address and port)"
                ))
            })?;
        }
        if self.key_path().exists() {
            return Err(NodeError::Config(format!(
                "{} already holds a member (member.key exists); refusing to overwrite it",
                self.root.display()
            )));
        }
        fs::create_dir_all(&self.root)
            .map_err(|e| NodeError::io(format!("creating {}", self.root.display()), e))?;
        let key = SecretKey::generate();
        write_key_file(&key, &self.key_path())?;
        let token: [u8; 32] = rand::random();
        write_private(
            &self.token_path(),
            format!("{}\n", hex::encode(token)).as_bytes(),
        )?;
        self.pseudonym_key()?;
        self.commitment_key()?;
        let config = NodeConfig {
            name: name.to_string(),
            peer_addr: peer_addr.to_string(),
            api_addr: api_addr.to_string(),
            database_url: database_url.map(str::to_string),
            bench_endpoints: false,
        };
        let toml = toml::to_string(&config).map_err(|e| NodeError::Internal(e.to_string()))?;
        fs::write(self.config_path(), toml)
            .map_err(|e| NodeError::io(format!("writing {}", self.config_path().display()), e))?;
        let card = MemberCard {
            member_id: key.member_id(),
            info: MemberInfo {
                name: name.to_string(),
                public_key: key.public_key(),
                peer_addr: peer_addr.to_string(),
                api_addr: api_addr.to_string(),
            },
        };
        let json =
            serde_json::to_string_pretty(&card).map_err(|e| NodeError::Internal(e.to_string()))?;
        fs::write(self.card_path(), json + "\n")
            .map_err(|e| NodeError::io(format!("writing {}", self.card_path().display()), e))?;
        Ok(card)
    }

    /// Rewrites `config.toml`.
    pub fn save_config(&self, config: &NodeConfig) -> Result<(), NodeError> {
        let toml = toml::to_string(config).map_err(|e| NodeError::Internal(e.to_string()))?;
        fs::write(self.config_path(), toml)
            .map_err(|e| NodeError::io(format!("writing {}", self.config_path().display()), e))
    }

    pub fn load_config(&self) -> Result<NodeConfig, NodeError> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).map_err(|e| {
            NodeError::io(
                format!(
                    "reading {} (is {} a member directory? run `consort init`)",
                    path.display(),
                    self.root.display()
                ),
                e,
            )
        })?;
        toml::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {}", path.display(), e.message())))
    }

    pub fn load_key(&self) -> Result<SecretKey, NodeError> {
        read_key_file(&self.key_path())
    }

    pub fn load_token(&self) -> Result<String, NodeError> {
        let path = self.token_path();
        let text = fs::read_to_string(&path)
            .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
        let token = text.trim().to_string();
        if token.len() < 32 {
            return Err(NodeError::Config(format!(
                "{} holds no usable token",
                path.display()
            )));
        }
        Ok(token)
    }

    pub fn load_card(&self) -> Result<MemberCard, NodeError> {
        MemberCard::read(&self.card_path())
    }
}

/// Writes a file readable by its owner only, whatever the umask.
/// Writes the member key file (`SecretKey::to_key_file_text`), mode 0600; an existing file
/// is reset to 0600 first, since `mode` only applies on creation.
pub fn write_key_file(key: &SecretKey, path: &Path) -> Result<(), NodeError> {
    use std::os::unix::fs::PermissionsExt;
    let io_err = |e| NodeError::io(format!("writing {}", path.display()), e);
    if path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(key.to_key_file_text().as_bytes())
        .map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Reads the member key file. Refuses a file that group or others may access: a key that
/// others could have read is not the member's alone.
pub fn read_key_file(path: &Path) -> Result<SecretKey, NodeError> {
    use std::os::unix::fs::PermissionsExt;
    let io_err = |e| NodeError::io(format!("reading {}", path.display()), e);
    let mode = fs::metadata(path).map_err(io_err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeError::Config(format!(
            "key file {} has mode {mode:o}, which lets group/others access it; run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let bytes = zeroize::Zeroizing::new(fs::read(path).map_err(io_err)?);
    SecretKey::from_key_file_text(&bytes)
        .map_err(|e| NodeError::Config(format!("key file {}: {e}", path.display())))
}

pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NodeError::io(format!("creating {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| NodeError::io(format!("writing {}", path.display()), e))
}

/// Reads and validates a genesis file.
pub fn read_genesis(path: &Path) -> Result<consort_ledger::Genesis, NodeError> {
    let text = fs::read_to_string(path)
        .map_err(|e| NodeError::io(format!("reading genesis {}", path.display()), e))?;
    let genesis: consort_ledger::Genesis = serde_json::from_str(&text)
        .map_err(|e| NodeError::Config(format!("{} is not a genesis file: {e}", path.display())))?;
    genesis
        .validate()
        .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
    Ok(genesis)
}

#[cfg(test)]
mod key_file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_file_round_trips_at_0600_and_refuses_wider_modes_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("member.key");
        let key = SecretKey::generate();
        write_key_file(&key, &path).unwrap();
        assert_eq!(read_key_file(&path).unwrap().public_key(), key.public_key());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        // Re-writing tightens the mode again.
        write_key_file(&key, &path).unwrap();
        assert!(read_key_file(&path).is_ok());
        fs::write(&path, "not a key\n").unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("not a key file"), "{err}");
    }
}
