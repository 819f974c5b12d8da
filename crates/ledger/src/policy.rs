//! Column grants and joint-query records on the ledger (`docs/FORMAT.md` §3.3–§3.4,
//! payload tags 6 to 11): who may use which columns of a dataset and how (DESIGN §6), and
//! the life of a joint query: request, each owner's decision, and the attested result.
//!
//! A grant's id is the id of the `Grant` transaction; a query's id is the id of its
//! `QueryRequest` transaction.

use consort_crypto::encoding::{DecodeError, Reader, Writer};
use consort_crypto::{Hash, MemberId};
use serde::{Deserialize, Serialize};

/// The one column a grant on a files dataset names: files datasets have no schema on the
/// ledger, so the whole dataset is granted as a unit, and only with `plain`.
pub const FILES_GRANT_COLUMN: &str = "*";

/// Longest SQL text a `QueryRequest` may carry, in bytes.
pub const MAX_QUERY_SQL: usize = 65536;

/// How many compute nodes a query names (the MPC engine runs three parties).
pub const COMPUTE_PARTIES: usize = 3;

/// What a grantee's queries may do with a column (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// See the values as they are (select, export, fetch).
    Plain,
    /// Group by it; group keys are revealed with the results.
    Group,
    /// Use it in WHERE; evaluated by the owner, never revealed.
    Filter,
    /// Use it inside aggregates whose results are revealed.
    Aggregate,
    /// Join on it with another member's dataset.
    Join,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Plain,
        Permission::Group,
        Permission::Filter,
        Permission::Aggregate,
        Permission::Join,
    ];

    /// The wire code (FORMAT.md §3.3).
    pub fn code(self) -> u8 {
        match self {
            Permission::Plain => 0,
            Permission::Group => 1,
            Permission::Filter => 2,
            Permission::Aggregate => 3,
            Permission::Join => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Permission> {
        Permission::ALL.get(usize::from(code)).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Plain => "plain",
            Permission::Group => "group",
            Permission::Filter => "filter",
            Permission::Aggregate => "aggregate",
            Permission::Join => "join",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whom a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grantee {
    /// One member.
    Member(MemberId),
    /// Every member (`'*'` on the command line).
    Anyone,
}

impl Grantee {
    pub fn covers(&self, member: &MemberId) -> bool {
        match self {
            Grantee::Member(id) => id == member,
            Grantee::Anyone => true,
        }
    }
}

/// The permissions granted on one column. Permissions are sorted and distinct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnGrant {
    pub column: String,
    pub permissions: Vec<Permission>,
}

/// Default minimum group size (DESIGN §6).
pub const DEFAULT_MIN_GROUP_SIZE: u32 = 3;

/// The payload of `Grant` (tag 6); the owner is the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The signer's dataset name.
    pub dataset: String,
    pub grantee: Grantee,
    /// Sorted by column name, distinct.
    pub columns: Vec<ColumnGrant>,
    /// Groups or results built from fewer rows are suppressed (≥ 1).
    pub min_group_size: u32,
    /// Unix milliseconds after which the grant no longer applies.
    pub expires_ms: Option<u64>,
}

impl Grant {
    /// The permissions this grant gives on `column` (empty if none).
    pub fn permissions_on(&self, column: &str) -> &[Permission] {
        self.columns
            .iter()
            .find(|c| c.column == column)
            .map(|c| c.permissions.as_slice())
            .unwrap_or(&[])
    }
}

/// The payload of `Revoke` (tag 7): ends a grant; only the grant's owner may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    pub grant: Hash,
}

/// One dataset a query reads, at the version the request saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub owner: MemberId,
    pub name: String,
    /// Id of the `DatasetRegister`/`DatasetUpdate` transaction of that version.
    pub version_tx: Hash,
}

/// The payload of `QueryRequest` (tag 8); the requester is the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    pub sql: String,
    /// Hash of the canonical plan every owner checks.
    pub plan_hash: Hash,
    /// Sorted by (owner, name), distinct; at least one.
    pub datasets: Vec<DatasetRef>,
    /// The three compute nodes, distinct current members, in party order.
    pub compute: Vec<MemberId>,
}

impl QueryRequest {
    /// The distinct owners, sorted.
    pub fn owners(&self) -> Vec<MemberId> {
        let mut owners: Vec<MemberId> = self.datasets.iter().map(|d| d.owner).collect();
        owners.sort();
        owners.dedup();
        owners
    }
}

/// The payload of `QueryDecision` (tag 9): one owner approves or refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryDecision {
    pub query: Hash,
    pub approve: bool,
    /// Why (for a refusal, names the column and the missing permission).
    pub reason: String,
    /// The minimum group size this owner's grants demand (0 for a refusal).
    pub min_group_size: u32,
}

/// How a query ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum QueryOutcome {
    /// The answer was revealed to the requester.
    Revealed {
        /// Hash of the revealed table (docs/QUERY.md §8).
        result_hash: Hash,
        columns: Vec<String>,
        rows: u64,
        suppressed_groups: u64,
        /// For each compute node in party order, the hash of the output shares it sent.
        share_digests: Vec<Hash>,
    },
    /// The query did not complete; nothing was revealed.
    Failed { reason: String },
}

/// The payload of `QueryResult` (tag 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResult {
    pub query: Hash,
    pub outcome: QueryOutcome,
}

/// The payload of `DataTransfer` (tag 11): the owner (signer) sent plain rows or files of
/// one of its datasets to a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataTransfer {
    pub recipient: MemberId,
    pub dataset: String,
    pub version_tx: Hash,
    /// The columns sent (empty for a files dataset).
    pub columns: Vec<String>,
    pub rows: u64,
    /// BLAKE3 of the canonical encoding of what was sent.
    pub content_hash: Hash,
}

/// A grant as recorded in the ledger state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    pub id: Hash,
    pub owner: MemberId,
    pub grant: Grant,
    /// Timestamp of the granting transaction.
    pub granted_ms: u64,
    /// Id of the `Revoke` transaction, once revoked.
    pub revoked_by: Option<Hash>,
}

impl GrantEntry {
    /// Whether the grant applies to `member` at time `at_ms`.
    pub fn applies_to(&self, member: &MemberId, at_ms: u64) -> bool {
        self.revoked_by.is_none()
            && self.grant.grantee.covers(member)
            && self.grant.expires_ms.is_none_or(|t| at_ms < t)
    }
}

/// A query as recorded in the ledger state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryEntry {
    pub id: Hash,
    pub requester: MemberId,
    pub request: QueryRequest,
    pub requested_ms: u64,
    /// Each owner's decision with its transaction id, by owner.
    pub decisions: Vec<(MemberId, QueryDecision, Hash)>,
    /// The result with its transaction id, once recorded.
    pub result: Option<(QueryResult, Hash)>,
}

// ---------------------------------------------------------------------------------------
// Canonical encoding (docs/FORMAT.md §3.2). Every list whose order carries no meaning must
// be strictly ascending, so that each payload has exactly one encoding and hence one tx id;
// the same checks run as a rule (§8.2) for payloads built in memory or read from JSON.

/// Whether each item's key is greater than the one before it (sorted and distinct).
fn strictly_ascending<T>(items: &[T], less: impl Fn(&T, &T) -> bool) -> bool {
    items.windows(2).all(|pair| match pair {
        [a, b] => less(a, b),
        _ => true,
    })
}

/// Turns a canonical-form complaint into a decode error at the payload's start.
fn canonical(at: usize, complaint: Option<String>) -> Result<(), DecodeError> {
    match complaint {
        None => Ok(()),
        Some(reason) => Err(DecodeError { offset: at, reason }),
    }
}

fn write_strings(w: &mut Writer, items: &[String]) {
    w.list(items, |w, s| {
        w.string(s);
    });
}

fn read_strings(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    // A string is at least its 4-byte length.
    r.list(4, |r| r.string())
}

impl Grantee {
    const TAG_MEMBER: u8 = 0;
    const TAG_ANYONE: u8 = 1;

    fn encode_into(&self, w: &mut Writer) {
        match self {
            Grantee::Member(id) => w.u8(Self::TAG_MEMBER).member_id(id),
            Grantee::Anyone => w.u8(Self::TAG_ANYONE),
        };
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Grantee, DecodeError> {
        let at = r.position();
        match r.u8()? {
            Self::TAG_MEMBER => Ok(Grantee::Member(r.member_id()?)),
            Self::TAG_ANYONE => Ok(Grantee::Anyone),
            other => Err(DecodeError {
                offset: at,
                reason: format!("unknown grantee tag {other}"),
            }),
        }
    }
}

impl Grant {
    /// Why the grant is not in canonical form, if it is not: columns strictly ascending by
    /// name, and each column's permissions strictly ascending by code.
    pub fn non_canonical(&self) -> Option<String> {
        // These texts are outcome details, part of the format (docs/FORMAT.md §8.2).
        if !strictly_ascending(&self.columns, |a, b| a.column < b.column) {
            return Some("grant columns are not strictly ascending by name".into());
        }
        self.columns
            .iter()
            .find(|c| !strictly_ascending(&c.permissions, |a, b| a.code() < b.code()))
            .map(|c| {
                format!(
                    "permissions of column {} are not strictly ascending",
                    c.column
                )
            })
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.string(&self.dataset);
        self.grantee.encode_into(w);
        w.list(&self.columns, |w, c| {
            w.string(&c.column);
            w.list(&c.permissions, |w, p| {
                w.u8(p.code());
            });
        });
        w.u32(self.min_group_size);
        w.option(self.expires_ms.as_ref(), |w, t| {
            w.u64(*t);
        });
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Grant, DecodeError> {
        let at = r.position();
        let dataset = r.string()?;
        let grantee = Grantee::decode_from(r)?;
        // A column grant is at least a name length (4) and a permission count (4).
        let columns = r.list(8, |r| {
            let column = r.string()?;
            let permissions = r.list(1, |r| {
                let at = r.position();
                let code = r.u8()?;
                Permission::from_code(code).ok_or_else(|| DecodeError {
                    offset: at,
                    reason: format!("unknown permission code {code}"),
                })
            })?;
            Ok(ColumnGrant {
                column,
                permissions,
            })
        })?;
        let grant = Grant {
            dataset,
            grantee,
            columns,
            min_group_size: r.u32()?,
            expires_ms: r.option(|r| r.u64())?,
        };
        canonical(at, grant.non_canonical())?;
        Ok(grant)
    }
}

impl Revoke {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.hash(&self.grant);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Revoke, DecodeError> {
        Ok(Revoke { grant: r.hash()? })
    }
}

/// Size of an encoded [`DatasetRef`] with an empty name: owner (16) + length (4) + hash (32).
const DATASET_REF_MIN: usize = 52;

impl QueryRequest {
    /// Why the request is not in canonical form, if it is not: datasets strictly ascending
    /// by (owner, name). (The compute list is in party order, which is meaningful.)
    pub fn non_canonical(&self) -> Option<String> {
        // An outcome detail, part of the format (docs/FORMAT.md §8.2).
        (!strictly_ascending(&self.datasets, |a, b| {
            (a.owner, &a.name) < (b.owner, &b.name)
        }))
        .then(|| "datasets are not strictly ascending by (owner, name)".into())
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.string(&self.sql).hash(&self.plan_hash);
        w.list(&self.datasets, |w, d| {
            w.member_id(&d.owner).string(&d.name).hash(&d.version_tx);
        });
        w.list(&self.compute, |w, m| {
            w.member_id(m);
        });
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<QueryRequest, DecodeError> {
        let at = r.position();
        let request = QueryRequest {
            sql: r.string()?,
            plan_hash: r.hash()?,
            datasets: r.list(DATASET_REF_MIN, |r| {
                Ok(DatasetRef {
                    owner: r.member_id()?,
                    name: r.string()?,
                    version_tx: r.hash()?,
                })
            })?,
            compute: r.list(16, |r| r.member_id())?,
        };
        canonical(at, request.non_canonical())?;
        Ok(request)
    }
}

impl QueryDecision {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.hash(&self.query)
            .bool(self.approve)
            .string(&self.reason)
            .u32(self.min_group_size);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<QueryDecision, DecodeError> {
        Ok(QueryDecision {
            query: r.hash()?,
            approve: r.bool()?,
            reason: r.string()?,
            min_group_size: r.u32()?,
        })
    }
}

impl QueryOutcome {
    const TAG_REVEALED: u8 = 0;
    const TAG_FAILED: u8 = 1;

    fn encode_into(&self, w: &mut Writer) {
        match self {
            QueryOutcome::Revealed {
                result_hash,
                columns,
                rows,
                suppressed_groups,
                share_digests,
            } => {
                w.u8(Self::TAG_REVEALED).hash(result_hash);
                write_strings(w, columns);
                w.u64(*rows).u64(*suppressed_groups);
                w.list(share_digests, |w, h| {
                    w.hash(h);
                });
            }
            QueryOutcome::Failed { reason } => {
                w.u8(Self::TAG_FAILED).string(reason);
            }
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<QueryOutcome, DecodeError> {
        let at = r.position();
        match r.u8()? {
            Self::TAG_REVEALED => Ok(QueryOutcome::Revealed {
                result_hash: r.hash()?,
                columns: read_strings(r)?,
                rows: r.u64()?,
                suppressed_groups: r.u64()?,
                share_digests: r.list(32, |r| r.hash())?,
            }),
            Self::TAG_FAILED => Ok(QueryOutcome::Failed {
                reason: r.string()?,
            }),
            other => Err(DecodeError {
                offset: at,
                reason: format!("unknown query outcome tag {other}"),
            }),
        }
    }
}

impl QueryResult {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.hash(&self.query);
        self.outcome.encode_into(w);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<QueryResult, DecodeError> {
        Ok(QueryResult {
            query: r.hash()?,
            outcome: QueryOutcome::decode_from(r)?,
        })
    }
}

impl DataTransfer {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.member_id(&self.recipient)
            .string(&self.dataset)
            .hash(&self.version_tx);
        write_strings(w, &self.columns);
        w.u64(self.rows).hash(&self.content_hash);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<DataTransfer, DecodeError> {
        Ok(DataTransfer {
            recipient: r.member_id()?,
            dataset: r.string()?,
            version_tx: r.hash()?,
            columns: read_strings(r)?,
            rows: r.u64()?,
            content_hash: r.hash()?,
        })
    }
}
