//! The sealing stage of a salted-columns ingest: salts derive from row (group) numbers,
//! which exist only once the acceptor has removed duplicates, so the leaves are hashed
//! after it, on their own thread, over each batch's groups in parallel. The batch then
//! goes on to the sink unchanged.

use std::sync::mpsc::Receiver;

use crate::canonical::Commitment;
use crate::error::DataError;
use crate::hiding::{RowSalter, SaltedCommitment};
use crate::value::Row;

use super::accept::Sink;

/// Commits every batch from `batches` in row order, handing each to `sink`; returns the
/// commitment over all of them.
pub(super) fn run(
    salter: &RowSalter,
    batches: Receiver<Vec<Row>>,
    sink: Sink<'_>,
) -> Result<Commitment, DataError> {
    let mut commitment = SaltedCommitment::new(salter);
    for rows in batches {
        commitment.push(&rows);
        sink(rows)?;
    }
    Ok(commitment.finish())
}
