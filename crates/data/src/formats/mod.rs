//! Input and output formats: streaming record readers for CSV, JSON (a top-level array of
//! objects), NDJSON and Parquet, format detection, and row writers for export.
//!
//! Readers yield [`Item`]s one at a time: either a [`Record`] (field texts, positional for
//! CSV and Parquet, named for JSON and NDJSON) or a [`Reject`] for a record that cannot be
//! read (ragged, invalid UTF-8, not an object, ...). Rejects are never fatal; errors that
//! make the whole input unreadable are returned as [`DataError`].
//!
//! Record numbers: CSV and NDJSON use the 1-based physical line on which the record starts
//! (the CSV header is line 1); JSON uses the 0-based index of the element in the top-level
//! array; Parquet uses the 0-based row index in the file.
//!
//! Values travel as text (`None` is null) so every format goes through the same cleaning
//! and coercion; Parquet readers also declare the column types of the file, which win over
//! inference. [`value_to_text`] is the text form used for that and for CSV export.

pub mod csv;
pub mod json;
pub mod ndjson;
pub mod parquet;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::DataError;
use crate::value::{ColumnType, Row, Schema, Value};

/// Records longer than this (in bytes) are rejected rather than processed.
pub const MAX_RECORD_BYTES: usize = 32 << 20;
/// How much of a reject's original text is kept in the reject file.
pub const MAX_RAW_BYTES: usize = 1024;

/// An input/output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
    Parquet,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }

    /// The format named `s` (`csv`, `tsv`, `json`, `ndjson`/`jsonl`, `parquet`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Format::Csv,
            "json" => Format::Json,
            "ndjson" | "jsonl" | "jsonlines" => Format::Ndjson,
            "parquet" | "pq" => Format::Parquet,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Detects the format of `path`: Parquet magic bytes win, then the extension, then the
/// first non-blank byte (`[` JSON, `{` NDJSON), else CSV.
pub fn detect_format(path: &Path) -> Result<Format, DataError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
    let mut head = vec![0u8; 4096];
    let n = read_full(&mut file, &mut head)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    head.truncate(n);
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    if let Some(f) = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::parse)
    {
        return Ok(f);
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    Ok(
        match body.iter().find(|b| !b.is_ascii_whitespace()).copied() {
            Some(b'[') => Format::Json,
            Some(b'{') => Format::Ndjson,
            _ => Format::Csv,
        },
    )
}

/// The fields of one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Fields {
    /// In column order (Parquet, and records the sample pass has cleaned).
    Positional(Vec<Option<String>>),
    /// In column order, in a text block shared with the records read around it (CSV):
    /// no allocation per record or field, and the records the pipeline's workers read next
    /// lie next to each other in memory. No field is null here; null tokens are the
    /// recipe's.
    Packed(PackedFields),
    /// Key/value pairs in document order (JSON, NDJSON).
    Named(Vec<(String, Option<String>)>),
}

/// The fields of consecutive records, one text after the other.
#[derive(Debug, Default)]
pub struct PackedBlock {
    text: String,
    /// `ends[k]`: where field `k` of the block ends in `text` (it starts where field
    /// `k - 1` ends).
    ends: Vec<u32>,
}

impl PackedBlock {
    /// A block of fields: field `k` is `text[ends[k - 1]..ends[k]]` (from 0 for the first).
    pub fn new(text: String, ends: Vec<u32>) -> Self {
        Self { text, ends }
    }

    fn field(&self, k: usize) -> Option<&str> {
        let end = *self.ends.get(k)? as usize;
        let start = match k.checked_sub(1) {
            Some(before) => *self.ends.get(before)? as usize,
            None => 0,
        };
        self.text.get(start..end)
    }
}

/// One record's fields in a shared [`PackedBlock`].
#[derive(Clone)]
pub struct PackedFields {
    block: Arc<PackedBlock>,
    first: u32,
    len: u32,
}

/// Only the record's own fields, not the whole block.
impl std::fmt::Debug for PackedFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for PackedFields {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl PackedFields {
    /// The `len` fields from field `first` of `block`.
    pub fn new(block: Arc<PackedBlock>, first: u32, len: u32) -> Self {
        Self { block, first, len }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Field `i` of the record.
    pub fn get(&self, i: usize) -> Option<&str> {
        if i >= self.len() {
            return None;
        }
        self.block.field(self.first as usize + i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// One record read from an input.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Line or record number (see the module documentation).
    pub number: u64,
    pub fields: Fields,
    /// The original text when the reader has it cheaply (NDJSON lines).
    pub raw: Option<String>,
}

impl Record {
    /// The original text of the record, or a rendering of its fields, truncated to
    /// [`MAX_RAW_BYTES`].
    pub fn raw_text(&self) -> String {
        if let Some(raw) = &self.raw {
            return truncate_raw(raw);
        }
        let mut out = String::new();
        match &self.fields {
            Fields::Positional(fields) => {
                render_positional(&mut out, fields.iter().map(|f| f.as_deref().unwrap_or("")))
            }
            Fields::Packed(fields) => render_positional(&mut out, fields.iter()),
            Fields::Named(pairs) => {
                let map: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(k, v)| {
                        let v = v
                            .as_ref()
                            .map_or(serde_json::Value::Null, |s| s.clone().into());
                        (k.clone(), v)
                    })
                    .collect();
                out = serde_json::Value::Object(map).to_string();
            }
        }
        truncate_raw(&out)
    }
}

/// Fields as one CSV line, quoted where needed, stopping once past [`MAX_RAW_BYTES`].
fn render_positional<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
        if out.len() > MAX_RAW_BYTES {
            break;
        }
    }
}

/// A record that could not be read, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    pub number: u64,
    /// Short reason without values, used to count rejects by reason.
    pub kind: String,
    /// Full reason, written to the reject file.
    pub reason: String,
    /// Original text, truncated to [`MAX_RAW_BYTES`].
    pub raw: String,
}

/// What a reader yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Record(Record),
    Reject(Reject),
}

/// A streaming reader over one input file.
pub trait RecordReader: Send {
    /// Column names, when the format fixes them up front (CSV, Parquet).
    fn columns(&self) -> Option<&[String]>;
    /// Column types the file declares (Parquet).
    fn declared_types(&self) -> Option<&[ColumnType]> {
        None
    }
    /// The next record or reject, `None` at the end.
    fn next_item(&mut self) -> Result<Option<Item>, DataError>;
    /// Bytes of the file consumed so far.
    fn bytes_read(&self) -> u64;
}

/// Opens `path` as `format`. `tally` receives every byte read (for the input hash and
/// progress) for the text formats; Parquet reads at random and leaves it untouched.
pub fn open_reader(
    path: &Path,
    format: Format,
    tally: Tally,
) -> Result<Box<dyn RecordReader>, DataError> {
    Ok(match format {
        Format::Csv => Box::new(csv::CsvReader::open(path, tally)?),
        Format::Json => Box::new(json::JsonReader::open(path, tally)?),
        Format::Ndjson => Box::new(ndjson::NdjsonReader::open(path, tally)?),
        Format::Parquet => Box::new(parquet::ParquetReader::open(path)?),
    })
}

/// Shared count and BLAKE3 hash of the bytes a [`TeeReader`] has read.
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<TallyState>>);

#[derive(Default)]
struct TallyState {
    bytes: u64,
    hasher: Option<blake3::Hasher>,
}

impl Tally {
    /// A tally that also feeds the bytes into `hasher`.
    pub fn hashing(hasher: blake3::Hasher) -> Self {
        Tally(Arc::new(Mutex::new(TallyState {
            bytes: 0,
            hasher: Some(hasher),
        })))
    }

    pub fn bytes(&self) -> u64 {
        self.0.lock().map(|s| s.bytes).unwrap_or(0)
    }

    fn add(&self, data: &[u8]) {
        if let Ok(mut s) = self.0.lock() {
            s.bytes += data.len() as u64;
            if let Some(h) = s.hasher.as_mut() {
                h.update(data);
            }
        }
    }

    /// Takes the hasher back out.
    pub fn take_hasher(&self) -> Option<blake3::Hasher> {
        self.0.lock().ok().and_then(|mut s| s.hasher.take())
    }
}

/// A reader that reports every byte it reads to a [`Tally`].
pub struct TeeReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> TeeReader<R> {
    pub fn new(inner: R, tally: Tally) -> Self {
        Self { inner, tally }
    }
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.add(&buf[..n]);
        Ok(n)
    }
}

/// Reads until `buf` is full or the end of input; returns the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hashes the rest of `path` from byte `offset` into `hasher`; returns the bytes hashed.
pub(crate) fn hash_rest(
    path: &Path,
    offset: u64,
    hasher: &mut blake3::Hasher,
) -> Result<u64, DataError> {
    let ctx = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(ctx(), e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| DataError::io(ctx(), e))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| DataError::io(ctx(), e))?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// `s` cut to at most [`MAX_RAW_BYTES`] bytes on a character boundary.
pub fn truncate_raw(s: &str) -> String {
    if s.len() <= MAX_RAW_BYTES {
        return s.to_string();
    }
    let mut end = MAX_RAW_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The text form of a value: integers in decimal, floats in Rust's shortest round-trip
/// form (`1.0`, `1e300`), booleans `true`/`false`, dates `YYYY-MM-DD`, timestamps RFC 3339
/// UTC with microseconds (`2024-01-02T03:04:05.000006Z`). `None` for null.
pub fn value_to_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Integer(v) => v.to_string(),
        Value::Float(v) => format!("{v:?}"),
        Value::Boolean(v) => v.to_string(),
        Value::Text(s) => s.to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Timestamp(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    })
}

/// The JSON form of a value (dates and timestamps as their text form).
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(v) => (*v).into(),
        Value::Float(v) => serde_json::Number::from_f64(*v)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Boolean(v) => (*v).into(),
        Value::Text(s) => s.as_str().into(),
        other => value_to_text(other).map_or(serde_json::Value::Null, Into::into),
    }
}

/// A sink for exported rows.
pub trait RowWriter {
    fn write_rows(&mut self, rows: &[Row]) -> Result<(), DataError>;
    /// Flushes and closes the output.
    fn finish(self: Box<Self>) -> Result<(), DataError>;
}

/// Creates a writer of `format` at `path` for rows of `schema` (JSON arrays are not an
/// export format; use NDJSON).
pub fn create_writer(
    format: Format,
    path: &Path,
    schema: &Schema,
) -> Result<Box<dyn RowWriter>, DataError> {
    Ok(match format {
        Format::Csv => Box::new(csv::CsvWriter::create(path, schema)?),
        Format::Ndjson => Box::new(ndjson::NdjsonWriter::create(path, schema)?),
        Format::Parquet => Box::new(parquet::ParquetWriter::create(path, schema)?),
        Format::Json => {
            return Err(DataError::Invalid(
                "export to a JSON array is not supported; use ndjson".into(),
            ));
        }
    })
}

/// Writes all `rows` to `path` in `format`; returns the number of rows written.
pub fn export<I>(format: Format, path: &Path, schema: &Schema, rows: I) -> Result<u64, DataError>
where
    I: IntoIterator<Item = Result<Row, DataError>>,
{
    let mut w = create_writer(format, path, schema)?;
    let mut batch = Vec::with_capacity(8192);
    let mut n = 0u64;
    for row in rows {
        batch.push(row?);
        n += 1;
        if batch.len() == 8192 {
            w.write_rows(&batch)?;
            batch.clear();
        }
    }
    w.write_rows(&batch)?;
    w.finish()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], Format); 5] = [
            ("a.csv", b"a,b\n1,2\n", Format::Csv),
            ("a.dat", b"  [{\"a\":1}]", Format::Json),
            ("a.dat2", b"{\"a\":1}\n", Format::Ndjson),
            ("a.csv2", b"PAR1xxxx", Format::Parquet),
            ("noext", b"a;b\n", Format::Csv),
        ];
        for (name, body, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            assert_eq!(detect_format(&p).unwrap(), want, "{name}");
        }
        assert!(detect_format(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn value_text_forms() {
        use chrono::TimeZone;
        assert_eq!(value_to_text(&Value::Float(1.0)).unwrap(), "1.0");
        assert_eq!(value_to_text(&Value::Float(1e300)).unwrap(), "1e300");
        let ts = chrono::Utc.timestamp_opt(0, 6000).unwrap();
        assert_eq!(
            value_to_text(&Value::Timestamp(ts)).unwrap(),
            "1970-01-01T00:00:00.000006Z"
        );
        assert_eq!(value_to_text(&Value::Null), None);
        assert_eq!(truncate_raw(&"é".repeat(1000)).len(), 1024);
    }
}
