//! The inputs of an ingest, read in order as one stream of items, with the BLAKE3 input
//! hash (`u64 BE length || bytes` per file) computed as they are read.

use std::path::PathBuf;

use crate::error::DataError;
use crate::formats::{detect_format, hash_rest, open_reader, Format, Item, RecordReader, Tally};
use crate::value::ColumnType;

pub(super) struct Inputs {
    pub(super) paths: Vec<PathBuf>,
    pub(super) next: usize,
    pub(super) current: Option<(usize, Box<dyn RecordReader>, Tally, u64)>,
    pub(super) format: Option<Format>,
    pub(super) hasher: Option<blake3::Hasher>,
    pub(super) done_bytes: u64,
    /// Column names and declared types of the first file that fixes them.
    pub(super) columns: Option<(Vec<String>, Option<Vec<ColumnType>>, usize)>,
}

impl Inputs {
    pub(super) fn bytes(&self) -> u64 {
        self.done_bytes
            + self
                .current
                .as_ref()
                .map_or(0, |(_, r, _, _)| r.bytes_read())
    }

    pub(super) fn finish_current(&mut self) -> Result<(), DataError> {
        if let Some((i, _reader, tally, len)) = self.current.take() {
            let mut hasher = tally
                .take_hasher()
                .or_else(|| self.hasher.take())
                .unwrap_or_default();
            let hashed = tally.bytes();
            if hashed < len {
                hash_rest(&self.paths[i], hashed, &mut hasher)?;
            }
            self.hasher = Some(hasher);
            self.done_bytes += len;
        }
        Ok(())
    }

    pub(super) fn open_next(&mut self) -> Result<bool, DataError> {
        self.finish_current()?;
        let Some(path) = self.paths.get(self.next).cloned() else {
            return Ok(false);
        };
        let i = self.next;
        self.next += 1;
        let len = std::fs::metadata(&path)
            .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?
            .len();
        let format = match self.format {
            Some(f) => f,
            None => detect_format(&path)?,
        };
        let mut hasher = self.hasher.take().unwrap_or_default();
        hasher.update(&len.to_be_bytes());
        let tally = Tally::hashing(hasher);
        let reader = open_reader(&path, format, tally.clone())?;
        if let Some(cols) = reader.columns() {
            let cols = cols.to_vec();
            let types = reader.declared_types().map(<[_]>::to_vec);
            match &self.columns {
                None => self.columns = Some((cols, types, i)),
                Some((first, first_types, j)) => {
                    if *first != cols
                        || (types.is_some() && first_types.is_some() && *first_types != types)
                    {
                        return Err(DataError::Invalid(format!(
                            "{} has a different schema ({}) from {} ({}); all inputs must share one schema",
                            path.display(),
                            cols.join(", "),
                            self.paths[*j].display(),
                            first.join(", ")
                        )));
                    }
                }
            }
        }
        self.current = Some((i, reader, tally, len));
        Ok(true)
    }

    /// The next item with its input index.
    pub(super) fn next_item(&mut self) -> Result<Option<(usize, Item)>, DataError> {
        loop {
            if let Some((i, reader, _, _)) = self.current.as_mut() {
                if let Some(item) = reader.next_item()? {
                    return Ok(Some((*i, item)));
                }
            }
            if !self.open_next()? {
                return Ok(None);
            }
        }
    }
}
