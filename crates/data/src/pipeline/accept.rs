//! The sequential half of the per-record work: prepared records are accepted in input
//! order into the dedup set, the commitment, the reject file and the sink's batches.
//!
//! [`Accept::chunk`] takes one prepared chunk at a time, so the pipeline can accept chunk
//! `k` while chunk `k + 1` is prepared and chunk `k + 2` read: the three run on the cores
//! at once instead of the serial parts leaving the other core idle.

use std::path::{Path, PathBuf};

use crate::canonical::Commitment;
use crate::error::DataError;
use crate::value::Row;

use super::fingerprints::FingerprintSet;
use super::stage::{Prepared, Rejects, NULL_MASK_COLUMNS};
use super::BATCH_ROWS;

/// Where the rows go: batches of about [`BATCH_ROWS`] rows in row-number order.
pub type Sink<'a> = &'a mut (dyn FnMut(Vec<Row>) -> Result<(), DataError> + Send);
/// Told the input bytes read so far, after each batch.
pub type ProgressFn<'a> = &'a mut (dyn FnMut(u64) + Send);

/// The state of the sequential half.
pub(super) struct Accept {
    pub(super) paths: Vec<PathBuf>,
    pub(super) rejects: Rejects,
    pub(super) seen: FingerprintSet,
    /// Row-hash leaves only: salted leaves are pushed by the sealing stage (`seal`).
    pub(super) commitment: Commitment,
    /// Per column: some kept row has a NULL there (the first [`NULL_MASK_COLUMNS`] are
    /// in `null_mask` until [`Accept::nulls`] merges them).
    pub(super) nulls: Vec<bool>,
    pub(super) null_mask: u64,
    /// Per-chunk scratch: the fingerprints, then whether each row is a duplicate.
    pub(super) fingerprints: Vec<Option<u128>>,
    pub(super) duplicate: Vec<bool>,
    pub(super) read: u64,
    pub(super) kept: u64,
    pub(super) dups: u64,
    pub(super) batch: Vec<Row>,
}

impl Accept {
    /// Accepts one prepared chunk; `bytes` is how far the input had been read when it was.
    pub(super) fn chunk(
        &mut self,
        prepared: Vec<(usize, Prepared)>,
        bytes: u64,
        sink: Sink<'_>,
        progress: ProgressFn<'_>,
    ) -> Result<(), DataError> {
        self.fingerprints.clear();
        self.fingerprints
            .extend(prepared.iter().map(|(_, item)| match item {
                Prepared::Row { fingerprint, .. } => *fingerprint,
                Prepared::Reject { .. } => None,
            }));
        self.duplicate.clear();
        self.duplicate.resize(prepared.len(), false);
        let duplicate = &mut self.duplicate;
        self.seen
            .insert_all(&self.fingerprints, |i, new| duplicate[i] = !new);
        for ((src, item), duplicate) in prepared.into_iter().zip(&self.duplicate) {
            self.read += 1;
            let (row, leaf, nulls) = match item {
                Prepared::Reject {
                    number,
                    kind,
                    reason,
                    raw,
                } => {
                    let source = self.paths.get(src).map_or(Path::new(""), |p| p.as_path());
                    self.rejects.add(source, number, &kind, &reason, &raw)?;
                    continue;
                }
                Prepared::Row {
                    row, leaf, nulls, ..
                } => (row, leaf, nulls),
            };
            if *duplicate {
                self.dups += 1;
                continue;
            }
            self.null_mask |= nulls;
            if let (Some(nulls), Some(wide)) = (
                self.nulls.get_mut(NULL_MASK_COLUMNS..),
                row.get(NULL_MASK_COLUMNS..),
            ) {
                for (n, v) in nulls.iter_mut().zip(wide) {
                    *n |= v.is_null();
                }
            }
            if let Some(leaf) = leaf {
                self.commitment.push_leaf_hash(leaf);
            }
            self.kept += 1;
            self.batch.push(row);
            if self.batch.len() >= BATCH_ROWS {
                sink(std::mem::replace(
                    &mut self.batch,
                    Vec::with_capacity(BATCH_ROWS),
                ))?;
                progress(bytes);
            }
        }
        Ok(())
    }

    /// Per column: whether some kept row has a NULL there.
    pub(super) fn nulls(&self) -> Vec<bool> {
        let mut nulls = self.nulls.clone();
        for (i, n) in nulls.iter_mut().take(NULL_MASK_COLUMNS).enumerate() {
            *n |= self.null_mask & (1 << i) != 0;
        }
        nulls
    }

    /// Hands the last, partial batch to the sink.
    pub(super) fn flush(&mut self, sink: Sink<'_>) -> Result<(), DataError> {
        if !self.batch.is_empty() {
            sink(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }
}
