//! Ledger export files: a self-contained copy of the chain's raw blocks.
//!
//! Format: magic `CNSRTEX1` (8 bytes), u64 BE block count, then for each block in height
//! order a u32 BE length and the `Block::encode` bytes. Nothing may follow the last block.

use std::io::Write;

use consort_crypto::encoding::Reader;

use crate::error::LedgerError;

pub const EXPORT_MAGIC: &[u8; 8] = b"CNSRTEX1";

/// Writes an export of `blocks` (raw block bytes from height 0) and returns the number of
/// blocks written. If the iterator reports an exact size it is streamed; otherwise it is
/// collected first, because the count precedes the blocks.
pub fn write_export(
    w: &mut impl Write,
    blocks: impl Iterator<Item = Result<Vec<u8>, LedgerError>>,
) -> Result<u64, LedgerError> {
    match blocks.size_hint() {
        (lower, Some(upper)) if lower == upper => write_counted(w, lower as u64, blocks),
        _ => {
            let collected = blocks.collect::<Result<Vec<_>, _>>()?;
            let count = collected.len() as u64;
            write_counted(w, count, collected.into_iter().map(Ok))
        }
    }
}

fn write_counted(
    w: &mut impl Write,
    announced: u64,
    blocks: impl Iterator<Item = Result<Vec<u8>, LedgerError>>,
) -> Result<u64, LedgerError> {
    w.write_all(EXPORT_MAGIC)?;
    w.write_all(&announced.to_be_bytes())?;
    let mut written = 0u64;
    for block in blocks {
        let block = block?;
        let len = u32::try_from(block.len())
            .map_err(|_| LedgerError::Export(format!("block {written} is larger than 4 GiB")))?;
        w.write_all(&len.to_be_bytes())?;
        w.write_all(&block)?;
        written += 1;
    }
    if written != announced {
        return Err(LedgerError::Export(format!(
            "the block source announced {announced} blocks but yielded {written}"
        )));
    }
    w.flush()?;
    Ok(written)
}

/// Parses an export file into raw blocks. Only the framing is checked here; pass the result
/// to `verify_chain` to check the blocks themselves.
pub fn read_export(bytes: &[u8]) -> Result<Vec<Vec<u8>>, LedgerError> {
    let Some(rest) = bytes.strip_prefix(EXPORT_MAGIC.as_slice()) else {
        return Err(LedgerError::Export(
            "not a consort ledger export (missing CNSRTEX1 header)".into(),
        ));
    };
    let mut r = Reader::new(rest);
    let count = r
        .u64()
        .map_err(|_| LedgerError::Export("truncated header: missing block count".into()))?;
    // Every block takes at least its 4-byte length, so a count beyond that is a lie.
    if count > (r.remaining() / 4) as u64 {
        return Err(LedgerError::Export(format!(
            "header announces {count} blocks but the file has room for at most {}",
            r.remaining() / 4
        )));
    }
    let mut blocks = Vec::with_capacity(count as usize);
    for height in 0..count {
        let block = r.bytes().map_err(|e| {
            LedgerError::Export(format!("block {height} is truncated ({})", e.reason))
        })?;
        blocks.push(block.to_vec());
    }
    if r.remaining() != 0 {
        return Err(LedgerError::Export(format!(
            "{} unexpected bytes after the last block",
            r.remaining()
        )));
    }
    Ok(blocks)
}
