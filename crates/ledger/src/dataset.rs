//! Dataset records on the ledger: what a member holds, without any of its rows
//! (`docs/FORMAT.md` §3.2, payload tags 4 and 5).
//!
//! A `DatasetRegister` announces a new dataset under its owner's name; a `DatasetUpdate`
//! registers the next version, naming the record it supersedes (lineage). Each carries the
//! schema, the row (or file) count, the Merkle commitment to the content, and the hashes of
//! the input and of the preprocessing recipe. The rules (§8.2) keep names unique per owner,
//! versions consecutive, and updates schema-compatible.

use consort_crypto::encoding::{DecodeError, Reader, Writer};
use consort_crypto::{Hash, MemberId};
use serde::{Deserialize, Serialize};

/// The column types a schema may name.
pub const COLUMN_TYPES: [&str; 6] = ["integer", "float", "boolean", "text", "date", "timestamp"];

/// Longest dataset name.
pub const MAX_DATASET_NAME: usize = 48;

/// What a dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Rows with a schema, stored as a typed table.
    Table,
    /// A collection of files, content-addressed by BLAKE3.
    Files,
}

impl DatasetKind {
    fn code(self) -> u8 {
        match self {
            DatasetKind::Table => 0,
            DatasetKind::Files => 1,
        }
    }
}

/// How a table's rows are committed to (`docs/FORMAT.md` §14.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitmentScheme {
    /// Leaf = the whole row's canonical encoding. Anyone holding a leaf can test guesses
    /// of the row against it, so a column-subset fetch is refused for such datasets.
    /// The only scheme of files datasets, and of tables before rule version 3.
    #[default]
    RowHash,
    /// Leaf = the column count and each column's hash salted with a per-cell secret of
    /// the owner's: a value can be opened alone, and the others stay hidden. Rule
    /// version 3 and later.
    SaltedColumns,
}

impl CommitmentScheme {
    pub fn is_row_hash(&self) -> bool {
        *self == CommitmentScheme::RowHash
    }

    /// The name used in JSON and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            CommitmentScheme::RowHash => "row-hash",
            CommitmentScheme::SaltedColumns => "salted-columns",
        }
    }
}

/// One column of a registered schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    /// One of [`COLUMN_TYPES`].
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
}

/// The payload of `DatasetRegister` and `DatasetUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub name: String,
    pub kind: DatasetKind,
    /// Empty for a files dataset.
    pub columns: Vec<ColumnSpec>,
    /// Rows, or files for a files dataset.
    pub row_count: u64,
    /// Merkle root of the content (FORMAT.md §14).
    pub commitment: Hash,
    /// BLAKE3 of the input as read.
    pub input_hash: Hash,
    /// BLAKE3 of the preprocessing recipe file (of the empty string when there is none).
    pub recipe_hash: Hash,
    /// 1 for a registration; the previous version + 1 for an update.
    pub version: u32,
    /// For an update: the id of the transaction that registered the version it supersedes.
    pub parent: Option<Hash>,
    /// How `commitment` was computed. Carried in the kind byte of the encoding (§3.2):
    /// 0 a row-hash table, 1 files, 2 a salted-columns table.
    #[serde(default, skip_serializing_if = "CommitmentScheme::is_row_hash")]
    pub commitment_scheme: CommitmentScheme,
}

/// Kind byte of a table committed under [`CommitmentScheme::SaltedColumns`].
const KIND_SALTED_TABLE: u8 = 2;
/// Written only for a files record that claims salted columns, which no honest node
/// builds; no decoder accepts it.
const KIND_SALTED_FILES: u8 = 3;

impl DatasetRecord {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        let kind = match (self.kind, self.commitment_scheme) {
            (kind, CommitmentScheme::RowHash) => kind.code(),
            (DatasetKind::Table, CommitmentScheme::SaltedColumns) => KIND_SALTED_TABLE,
            (DatasetKind::Files, CommitmentScheme::SaltedColumns) => KIND_SALTED_FILES,
        };
        w.string(&self.name).u8(kind);
        w.list(&self.columns, |w, c| {
            w.string(&c.name).string(&c.ty).bool(c.nullable);
        });
        w.u64(self.row_count)
            .hash(&self.commitment)
            .hash(&self.input_hash)
            .hash(&self.recipe_hash)
            .u32(self.version);
        w.option(self.parent.as_ref(), |w, parent| {
            w.hash(parent);
        });
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name = r.string()?;
        let (kind, commitment_scheme) = match r.u8()? {
            0 => (DatasetKind::Table, CommitmentScheme::RowHash),
            1 => (DatasetKind::Files, CommitmentScheme::RowHash),
            KIND_SALTED_TABLE => (DatasetKind::Table, CommitmentScheme::SaltedColumns),
            other => return Err(r.error(format!("unknown dataset kind {other}"))),
        };
        // A column is at least: two empty strings (4 + 4) and a bool (1).
        let columns = r.list(9, |r| {
            Ok(ColumnSpec {
                name: r.string()?,
                ty: r.string()?,
                nullable: r.bool()?,
            })
        })?;
        Ok(DatasetRecord {
            name,
            kind,
            columns,
            row_count: r.u64()?,
            commitment: r.hash()?,
            input_hash: r.hash()?,
            recipe_hash: r.hash()?,
            version: r.u32()?,
            parent: r.option(|r| r.hash())?,
            commitment_scheme,
        })
    }

    /// The payload rules that need no state: a valid name, known column types, distinct
    /// column names, and the right shape for the kind.
    pub fn check_shape(&self) -> Result<(), String> {
        // These texts are outcome details, part of the format (docs/FORMAT.md §8.2).
        if !valid_dataset_name(&self.name) {
            return Err(format!(
                "dataset name is not 1 to {MAX_DATASET_NAME} characters of A-Z a-z 0-9 _, starting with a letter"
            ));
        }
        match self.kind {
            DatasetKind::Table if self.columns.is_empty() => {
                return Err("a table dataset needs at least one column".into())
            }
            DatasetKind::Files if !self.columns.is_empty() => {
                return Err("a files dataset has no columns".into())
            }
            DatasetKind::Files if !self.commitment_scheme.is_row_hash() => {
                return Err("a files dataset has no salted-columns commitment".into())
            }
            _ => {}
        }
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.is_empty() {
                return Err(format!("column {i} has an empty name"));
            }
            if !COLUMN_TYPES.contains(&c.ty.as_str()) {
                return Err(format!("column {i} has an unknown type"));
            }
            if self.columns[..i]
                .iter()
                .any(|earlier| earlier.name == c.name)
            {
                return Err(format!("column {i} repeats an earlier column name"));
            }
        }
        Ok(())
    }

    /// Why `self` cannot follow `previous` as its next version's schema, if it cannot:
    /// every existing column must remain with its type, and new columns must be nullable
    /// (old rows have no value for them).
    pub fn incompatibility_with(&self, previous: &DatasetRecord) -> Option<String> {
        if self.kind != previous.kind {
            return Some("the dataset kind changed".into());
        }
        for old in &previous.columns {
            match self.columns.iter().find(|c| c.name == old.name) {
                None => return Some(format!("column {} was removed", old.name)),
                Some(new) if new.ty != old.ty => {
                    return Some(format!(
                        "column {} changed type from {} to {}",
                        old.name, old.ty, new.ty
                    ))
                }
                Some(_) => {}
            }
        }
        for new in &self.columns {
            if !new.nullable && !previous.columns.iter().any(|c| c.name == new.name) {
                return Some(format!("new column {} must be nullable", new.name));
            }
        }
        None
    }
}

/// `[A-Za-z][A-Za-z0-9_]{0,47}`: safe as part of a table name on every backend.
pub fn valid_dataset_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= MAX_DATASET_NAME
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A dataset as the ledger state knows it: its latest record and where that was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub owner: MemberId,
    pub record: DatasetRecord,
    /// The id of the transaction that registered this version.
    pub tx_id: Hash,
}
