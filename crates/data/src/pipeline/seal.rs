//! The sealing stage of a salted-columns ingest: each row's salts derive from its row
//! number, which exists only once the acceptor has removed duplicates, so the leaves are
//! hashed after it, on their own thread, over each batch in parallel. The batch then goes
//! on to the sink unchanged.

use std::sync::mpsc::Receiver;

use consort_crypto::Hash;
use rayon::prelude::*;

use crate::canonical::Commitment;
use crate::error::DataError;
use crate::hiding::{LeafScratch, RowSalter};
use crate::value::Row;

use super::accept::Sink;

/// Hashes and commits every batch from `batches` in row order, handing each to `sink`;
/// returns the commitment over all of them.
pub(super) fn run(
    salter: &RowSalter,
    batches: Receiver<Vec<Row>>,
    sink: Sink<'_>,
) -> Result<Commitment, DataError> {
    let mut commitment = Commitment::new();
    let mut leaves: Vec<Hash> = Vec::new();
    for rows in batches {
        let first = commitment.len();
        rows.par_iter()
            .enumerate()
            .map_init(LeafScratch::default, |scratch, (k, row)| {
                salter.leaf(first + k as u64, row, scratch)
            })
            .collect_into_vec(&mut leaves);
        for leaf in &leaves {
            commitment.push_leaf_hash(*leaf);
        }
        sink(rows)?;
    }
    Ok(commitment)
}
