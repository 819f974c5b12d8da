//! NDJSON: one JSON object per line (blank lines skipped), read line by line; and the
//! NDJSON export writer (one object per row, keys in schema order).
//!
//! A line that is not valid JSON, is not an object, or is not valid UTF-8 is a reject
//! naming its 1-based line number.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::json::{element_item, Element};
use super::{
    truncate_raw, value_to_json, Item, RecordReader, Reject, RowWriter, Tally, TeeReader,
    MAX_RECORD_BYTES,
};
use crate::error::DataError;
use crate::value::{Row, Schema};

/// Streaming NDJSON reader.
pub struct NdjsonReader {
    path: PathBuf,
    reader: BufReader<TeeReader<File>>,
    line: u64,
    buf: Vec<u8>,
    tally: Tally,
}

impl NdjsonReader {
    pub fn open(path: &Path, tally: Tally) -> Result<Self, DataError> {
        let file = File::open(path)
            .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 16, TeeReader::new(file, tally.clone())),
            line: 0,
            buf: Vec::new(),
            tally,
        })
    }
}

impl RecordReader for NdjsonReader {
    fn columns(&self) -> Option<&[String]> {
        None
    }

    fn next_item(&mut self) -> Result<Option<Item>, DataError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| DataError::io(format!("reading {}", self.path.display()), e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = self.line;
            let mut bytes = self.buf.as_slice();
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let reject = |kind: &str, reason: String| {
                Ok(Some(Item::Reject(Reject {
                    number: line,
                    kind: kind.into(),
                    reason,
                    raw: truncate_raw(&String::from_utf8_lossy(bytes)),
                })))
            };
            if bytes.len() > MAX_RECORD_BYTES {
                return reject(
                    "record too large",
                    format!(
                        "line {line}: {} bytes exceeds the {MAX_RECORD_BYTES} byte limit",
                        bytes.len()
                    ),
                );
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    return reject(
                        "invalid UTF-8",
                        format!("line {line}: invalid UTF-8 at byte {}", e.valid_up_to()),
                    );
                }
            };
            return match serde_json::from_str::<Element>(text) {
                Ok(el) => Ok(Some(element_item(line, el, "line", Some(text.to_string())))),
                Err(e) => reject("invalid JSON", format!("line {line}: invalid JSON: {e}")),
            };
        }
    }

    fn bytes_read(&self) -> u64 {
        self.tally.bytes()
    }
}

/// NDJSON export writer.
pub struct NdjsonWriter {
    out: BufWriter<File>,
    names: Vec<String>,
    path: PathBuf,
}

impl NdjsonWriter {
    pub fn create(path: &Path, schema: &Schema) -> Result<Self, DataError> {
        let file = File::create(path)
            .map_err(|e| DataError::io(format!("creating {}", path.display()), e))?;
        Ok(Self {
            out: BufWriter::new(file),
            names: schema
                .columns
                .iter()
                .map(|c| serde_json::Value::from(c.name.clone()).to_string())
                .collect(),
            path: path.to_path_buf(),
        })
    }
}

impl RowWriter for NdjsonWriter {
    fn write_rows(&mut self, rows: &[Row]) -> Result<(), DataError> {
        let mut line = String::new();
        for row in rows {
            line.clear();
            line.push('{');
            for (i, (name, v)) in self.names.iter().zip(row).enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(name);
                line.push(':');
                line.push_str(&value_to_json(v).to_string());
            }
            line.push_str("}\n");
            self.out
                .write_all(line.as_bytes())
                .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), DataError> {
        let ctx = format!("writing {}", self.path.display());
        let file = self
            .out
            .into_inner()
            .map_err(|e| DataError::io(ctx.clone(), e.into_error()))?;
        file.sync_all().map_err(|e| DataError::io(ctx, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{Fields, Record};

    #[test]
    fn lines_blank_and_bad() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ndjson");
        std::fs::write(
            &p,
            b"{\"a\":1}\n\n  \n{bad\n[1]\n{\"a\":\"\xff\"}\r\n{\"a\":2}",
        )
        .unwrap();
        let mut r = NdjsonReader::open(&p, Tally::default()).unwrap();
        let mut items = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            items.push(i);
        }
        assert_eq!(items.len(), 5);
        assert!(
            matches!(&items[0], Item::Record(Record { number: 1, fields: Fields::Named(f), .. }) if f.len() == 1)
        );
        assert!(matches!(&items[1], Item::Reject(r) if r.number == 4 && r.kind == "invalid JSON"));
        assert!(matches!(&items[2], Item::Reject(r) if r.number == 5 && r.kind == "not an object"));
        assert!(matches!(&items[3], Item::Reject(r) if r.number == 6 && r.kind == "invalid UTF-8"));
        assert!(matches!(&items[4], Item::Record(Record { number: 7, .. })));
    }
}
