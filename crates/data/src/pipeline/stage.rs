//! The two halves of the per-record work. [`prepare`] is everything that depends on one
//! record alone (clean, type, filter, dedup fingerprint, pseudonymise, canonical encoding
//! and leaf hash) and runs in parallel over a chunk of records; the caller then accepts the
//! prepared records in input order (dedup set, commitment, batches, reject file), which is
//! what must be sequential.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use consort_crypto::Hash;

use crate::clean::{position_named, Cleaner, RowReject, Typer};
use crate::error::DataError;
use crate::formats::{truncate_raw, Fields, Item, Record};
use crate::value::Row;

/// One record after [`prepare`].
pub(super) enum Prepared {
    Reject {
        number: u64,
        kind: String,
        reason: String,
        raw: String,
    },
    Row {
        row: Row,
        fingerprint: Option<u128>,
        /// The row-hash leaf; `None` when leaves are salted (hashed once the row has its
        /// number, see `Accept`).
        leaf: Option<Hash>,
        /// Bit `i` set: column `i` is NULL, for the first [`NULL_MASK_COLUMNS`] columns.
        /// Computed here, where the row is in cache, so the sequential half need not
        /// read the row's values at all (for most schemas).
        nulls: u64,
    },
}

/// Columns whose NULLs [`Prepared::Row`] flags in its mask.
pub(super) const NULL_MASK_COLUMNS: usize = 64;

/// The recipe's compiled steps [`prepare`] applies, shared by every worker.
pub(super) struct Steps<'a> {
    pub cleaner: &'a Cleaner,
    pub typer: &'a Typer,
    pub named_index: &'a HashMap<String, usize>,
    /// Whether the commitment's leaves are row hashes (else they are salted, and hashed
    /// once rows have their numbers).
    pub commit_row_leaves: bool,
    /// [`Typer::fingerprint_is_leaf`]: take the fingerprint from the row-hash leaf (SHA-256
    /// on the SHA extensions beats a BLAKE3 of the same bytes at this size), computed for
    /// that alone when leaves are salted.
    pub leaf_is_fingerprint: bool,
}

/// Scratch space one worker reuses across records.
#[derive(Default)]
pub(super) struct Scratch {
    key: Vec<u8>,
    encoding: Vec<u8>,
}

/// Prepares one item; `cleaned` says the sample pass already cleaned its fields.
pub(super) fn prepare(
    steps: &Steps<'_>,
    scratch: &mut Scratch,
    item: &Item,
    cleaned: bool,
) -> Prepared {
    let record = match item {
        Item::Reject(r) => {
            return Prepared::Reject {
                number: r.number,
                kind: r.kind.clone(),
                reason: r.reason.clone(),
                raw: r.raw.clone(),
            }
        }
        Item::Record(r) => r,
    };
    match typed_row(steps, record, cleaned) {
        Err((rej, number, raw)) => Prepared::Reject {
            number,
            kind: rej.kind,
            reason: rej.reason,
            raw,
        },
        Ok(mut row) => {
            // The fingerprint is of the values as read, before pseudonymisation.
            let fingerprint = if steps.leaf_is_fingerprint {
                None
            } else {
                steps.typer.dedup_key(&row, &mut scratch.key)
            };
            steps.typer.pseudonymise(&mut row);
            let row_leaf = (steps.commit_row_leaves || steps.leaf_is_fingerprint).then(|| {
                scratch.encoding.clear();
                crate::canonical::encode_row_into(&row, &mut scratch.encoding);
                consort_crypto::merkle::leaf_hash(&scratch.encoding)
            });
            let fingerprint = match row_leaf {
                Some(leaf) if steps.leaf_is_fingerprint => {
                    let mut head = [0u8; 16];
                    head.copy_from_slice(&leaf.0[..16]);
                    Some(u128::from_be_bytes(head))
                }
                _ => fingerprint,
            };
            let leaf = row_leaf.filter(|_| steps.commit_row_leaves);
            let nulls = row
                .iter()
                .take(NULL_MASK_COLUMNS)
                .enumerate()
                .filter(|(_, v)| v.is_null())
                .fold(0u64, |mask, (i, _)| mask | 1 << i);
            Prepared::Row {
                row,
                fingerprint,
                leaf,
                nulls,
            }
        }
    }
}

/// Cleans, types and filters one record.
fn typed_row(
    steps: &Steps<'_>,
    record: &Record,
    cleaned: bool,
) -> Result<Row, (RowReject, u64, String)> {
    let number = record.number;
    let fail = |rej: RowReject, record: &Record| (rej, number, record.raw_text());
    let positioned;
    let fields: &[Option<String>] = match &record.fields {
        Fields::Positional(f) => f,
        Fields::Packed(packed) => {
            let row = if cleaned {
                typed_and_filtered(steps, packed.iter().map(|f| Some(Cow::Borrowed(f))))
            } else {
                typed_and_filtered(steps, steps.cleaner.clean_iter(|i| packed.get(i)))
            };
            return row.map_err(|r| fail(r, record));
        }
        Fields::Named(p) => match position_named(p.clone(), steps.named_index) {
            Ok(f) => {
                positioned = f;
                &positioned
            }
            Err(rej) => return Err(fail(rej, record)),
        },
    };
    let cleaned_fields = if cleaned {
        fields
            .iter()
            .map(|f| f.as_deref().map(Cow::Borrowed))
            .collect()
    } else {
        steps.cleaner.clean_fields(fields)
    };
    typed_and_filtered(steps, cleaned_fields).map_err(|r| fail(r, record))
}

/// Types cleaned fields into a row and applies the recipe's filters.
fn typed_and_filtered<'a>(
    steps: &Steps<'_>,
    cleaned_fields: impl IntoIterator<Item = Option<Cow<'a, str>>>,
) -> Result<Row, RowReject> {
    let row = steps.typer.to_row(cleaned_fields)?;
    steps.typer.check_filters(&row)?;
    Ok(row)
}

pub(super) struct Rejects {
    pub(super) path: PathBuf,
    pub(super) out: Option<BufWriter<File>>,
    pub(super) count: u64,
    pub(super) by_reason: BTreeMap<String, u64>,
}

impl Rejects {
    pub(super) fn add(
        &mut self,
        source: &Path,
        number: u64,
        kind: &str,
        reason: &str,
        raw: &str,
    ) -> Result<(), DataError> {
        if self.out.is_none() {
            let f = File::create(&self.path).map_err(|e| {
                DataError::io(format!("creating reject file {}", self.path.display()), e)
            })?;
            self.out = Some(BufWriter::new(f));
        }
        let line = serde_json::json!({
            "source": source.display().to_string(),
            "record": number,
            "reason": reason,
            "raw": truncate_raw(raw),
        });
        if let Some(out) = self.out.as_mut() {
            writeln!(out, "{line}")
                .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))?;
        }
        self.count += 1;
        *self.by_reason.entry(kind.to_string()).or_insert(0) += 1;
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<Option<PathBuf>, DataError> {
        match self.out.take() {
            None => Ok(None),
            Some(out) => {
                let f = out.into_inner().map_err(|e| {
                    DataError::io(format!("writing {}", self.path.display()), e.into_error())
                })?;
                f.sync_all()
                    .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))?;
                Ok(Some(self.path.clone()))
            }
        }
    }
}
