//! The sequential half of the per-record work: prepared records are accepted in input
//! order into the dedup set, the commitment, the reject file and the sink's batches.
//!
//! [`Accept::chunk`] takes one prepared chunk at a time, so the pipeline can accept chunk
//! `k` while chunk `k + 1` is prepared and chunk `k + 2` read: the three run on the cores
//! at once instead of the serial parts leaving the other core idle.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};

use crate::canonical::Commitment;
use crate::error::DataError;
use crate::value::Row;

use super::stage::{FingerprintHasher, Prepared, Rejects};
use super::BATCH_ROWS;

/// Where the rows go: batches of about [`BATCH_ROWS`] rows in row-number order.
pub type Sink<'a> = &'a mut (dyn FnMut(Vec<Row>) -> Result<(), DataError> + Send);
/// Told the input bytes read so far, after each batch.
pub type ProgressFn<'a> = &'a mut (dyn FnMut(u64) + Send);

/// The state of the sequential half.
pub(super) struct Accept {
    pub(super) paths: Vec<PathBuf>,
    pub(super) rejects: Rejects,
    pub(super) seen: HashSet<u128, BuildHasherDefault<FingerprintHasher>>,
    pub(super) commitment: Commitment,
    /// Per column: some kept row has a NULL there.
    pub(super) nulls: Vec<bool>,
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
        for (src, item) in prepared {
            self.read += 1;
            let (row, fingerprint, leaf) = match item {
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
                    row,
                    fingerprint,
                    leaf,
                } => (row, fingerprint, leaf),
            };
            if let Some(f) = fingerprint {
                if !self.seen.insert(f) {
                    self.dups += 1;
                    continue;
                }
            }
            for (n, v) in self.nulls.iter_mut().zip(&row) {
                *n |= v.is_null();
            }
            self.commitment.push_leaf_hash(leaf);
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

    /// Hands the last, partial batch to the sink.
    pub(super) fn flush(&mut self, sink: Sink<'_>) -> Result<(), DataError> {
        if !self.batch.is_empty() {
            sink(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }
}
