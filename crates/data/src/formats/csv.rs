//! CSV: dialect sniffing, header detection, streaming reading and writing.
//!
//! Sniffing looks at the first 64 KiB: NUL bytes or mostly non-text bytes make the input
//! "not a text CSV file"; the delimiter is the one of `,` `;` TAB `|` giving the most
//! consistent field count greater than one (ties go to that order); the first row is a
//! header when none of its fields looks typed (number, boolean, date, timestamp),
//! otherwise names `col1..colN` are generated. A UTF-8 BOM is skipped, CRLF and quoted
//! fields spanning lines are handled by the `csv` crate.
//!
//! Per record: a field count other than the header's, invalid UTF-8, a record over
//! [`MAX_RECORD_BYTES`] or a quote left open at the end of the file is a reject, not an
//! error.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::ByteRecord;

use super::{
    read_full, truncate_raw, value_to_text, Fields, Item, PackedBlock, PackedFields, Record,
    RecordReader, Reject, RowWriter, Tally, TeeReader, MAX_RECORD_BYTES,
};
use crate::error::DataError;
use crate::infer::classify;
use crate::value::{ColumnType, Row, Schema};

const SAMPLE_BYTES: usize = 64 << 10;
/// The reader's buffer: large reads hash faster (BLAKE3 hashes many 1 KiB chunks at once
/// with SIMD) and cost fewer system calls than the csv crate's 8 KiB default.
const READ_BUFFER_BYTES: usize = 256 << 10;
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
const BOM: &[u8] = b"\xEF\xBB\xBF";

type Inner = std::io::Chain<Cursor<Vec<u8>>, TeeReader<File>>;

/// What sniffing decided about a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub has_header: bool,
    /// Field count of the sample's rows (the most common one).
    pub fields: usize,
}

/// Streaming CSV reader.
pub struct CsvReader {
    path: PathBuf,
    reader: csv::Reader<Inner>,
    columns: Vec<String>,
    current: ByteRecord,
    lookahead: ByteRecord,
    /// Items read ahead, in order, whose records share one [`PackedBlock`].
    ready: VecDeque<Item>,
    has_current: bool,
    started: bool,
    bom: u64,
    delimiter: u8,
    tally: Tally,
}

fn not_text(path: &Path, why: &str) -> DataError {
    DataError::Format(format!("not a text CSV file: {}: {why}", path.display()))
}

/// Checks the sample is text and picks the dialect.
pub fn sniff(path: &Path, sample: &[u8], truncated: bool) -> Result<Dialect, DataError> {
    if sample.contains(&0) {
        return Err(not_text(path, "contains NUL bytes"));
    }
    let text = String::from_utf8_lossy(sample);
    let total = text.chars().count().max(1);
    let odd = text
        .chars()
        .filter(|&c| c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r')))
        .count();
    if odd * 10 > total * 3 {
        return Err(not_text(path, "mostly binary or control bytes"));
    }
    let mut best: Option<(f64, usize, u8, Vec<Vec<String>>)> = None; // score, mode, delimiter, rows
    for d in DELIMITERS {
        let rows = sample_rows(sample, d, truncated);
        if rows.is_empty() {
            continue;
        }
        let mut counts = std::collections::HashMap::new();
        for r in &rows {
            *counts.entry(r.len()).or_insert(0usize) += 1;
        }
        let (&mode, &freq) = counts
            .iter()
            .max_by_key(|(len, freq)| (**freq, **len))
            .unwrap_or((&1, &0));
        if mode < 2 {
            continue;
        }
        let score = freq as f64 / rows.len() as f64;
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, mode, d, rows));
        }
    }
    let (delimiter, fields, rows) = match best {
        Some((_, mode, d, rows)) => (d, mode, rows),
        None => (b',', 1, sample_rows(sample, b',', truncated)),
    };
    let has_header = match rows.first() {
        Some(first) => {
            first.iter().any(|f| !f.is_empty())
                && first
                    .iter()
                    .all(|f| f.is_empty() || classify(f.trim()) == ColumnType::Text)
        }
        None => false,
    };
    Ok(Dialect {
        delimiter,
        has_header,
        fields,
    })
}

fn sample_rows(sample: &[u8], delimiter: u8, truncated: bool) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(sample);
    let mut rows = Vec::new();
    let mut rec = ByteRecord::new();
    while rows.len() < 100 {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => rows.push(
                rec.iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            ),
            _ => break,
        }
    }
    // The last row of a cut sample may be partial.
    if truncated && rows.len() > 1 {
        rows.pop();
    }
    rows
}

impl CsvReader {
    pub fn open(path: &Path, tally: Tally) -> Result<Self, DataError> {
        Self::open_with(path, tally, None)
    }

    /// Opens `path`, with the delimiter forced when `delimiter` is given.
    pub fn open_with(path: &Path, tally: Tally, delimiter: Option<u8>) -> Result<Self, DataError> {
        let file = File::open(path)
            .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
        let mut tee = TeeReader::new(file, tally.clone());
        let mut sample = vec![0u8; SAMPLE_BYTES];
        let n = read_full(&mut tee, &mut sample)
            .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
        sample.truncate(n);
        let bom = if sample.starts_with(BOM) { 3 } else { 0 };
        sample.drain(..bom);
        if sample.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(DataError::Invalid(format!(
                "{}: no rows (the file is empty)",
                path.display()
            )));
        }
        let mut dialect = sniff(path, &sample, n == SAMPLE_BYTES)?;
        if let Some(d) = delimiter {
            dialect.delimiter = d;
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(dialect.delimiter)
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(READ_BUFFER_BYTES)
            .from_reader(Cursor::new(sample).chain(tee));
        let columns = if dialect.has_header {
            let mut header = ByteRecord::new();
            let got = reader
                .read_byte_record(&mut header)
                .map_err(|e| DataError::Format(format!("{}: header: {e}", path.display())))?;
            if !got {
                return Err(DataError::Invalid(format!("{}: no rows", path.display())));
            }
            if header.as_slice().len() > MAX_RECORD_BYTES {
                return Err(DataError::Format(format!(
                    "{}: header line longer than {} bytes",
                    path.display(),
                    MAX_RECORD_BYTES
                )));
            }
            header
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    std::str::from_utf8(f).map(|s| s.to_string()).map_err(|_| {
                        DataError::Format(format!(
                            "{}: header field {} is not valid UTF-8",
                            path.display(),
                            i + 1
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            (1..=dialect.fields).map(|i| format!("col{i}")).collect()
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            columns,
            current: ByteRecord::new(),
            lookahead: ByteRecord::new(),
            ready: VecDeque::new(),
            has_current: false,
            started: false,
            bom: bom as u64,
            delimiter: dialect.delimiter,
            tally,
        })
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    fn read_into_lookahead(&mut self) -> Result<bool, DataError> {
        self.reader
            .read_byte_record(&mut self.lookahead)
            .map_err(|e| DataError::Format(format!("{}: {e}", self.path.display())))
    }

    fn raw(&self, rec: &ByteRecord) -> String {
        let mut out = Vec::new();
        for (i, f) in rec.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            out.extend_from_slice(f);
            if out.len() > super::MAX_RAW_BYTES {
                break;
            }
        }
        truncate_raw(&String::from_utf8_lossy(&out))
    }

    /// Whether the record starting at byte `start` (of the data after the BOM) ends inside
    /// an open quote at the end of the file.
    fn unterminated_from(&self, start: u64) -> Result<bool, DataError> {
        let ctx = || format!("reading {}", self.path.display());
        let mut f = File::open(&self.path).map_err(|e| DataError::io(ctx(), e))?;
        f.seek(SeekFrom::Start(start + self.bom))
            .map_err(|e| DataError::io(ctx(), e))?;
        let mut r = BufReader::new(f);
        let (mut in_quotes, mut field_start, mut after_quote) = (false, true, false);
        // On the heap: this runs once per file, and a 64 KiB array would sit in the frame
        // of every `next_item` call that inlines it (and be probed page by page each time).
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.read(&mut buf).map_err(|e| DataError::io(ctx(), e))?;
            if n == 0 {
                return Ok(in_quotes);
            }
            for &b in &buf[..n] {
                if in_quotes {
                    if b == b'"' {
                        in_quotes = false;
                        after_quote = true;
                    }
                } else if after_quote && b == b'"' {
                    in_quotes = true; // escaped "" inside a quoted field
                    after_quote = false;
                } else {
                    after_quote = false;
                    if b == self.delimiter || b == b'\n' || b == b'\r' {
                        field_start = true;
                    } else if b == b'"' && field_start {
                        in_quotes = true;
                        field_start = false;
                    } else {
                        field_start = false;
                    }
                }
            }
        }
    }

    /// Reads the next records (up to [`BLOCK_RECORDS`], or [`BLOCK_BYTES`] of text) into
    /// [`CsvReader::ready`], their fields in one new block.
    fn read_block(&mut self) -> Result<(), DataError> {
        let mut block = BlockBuilder::default();
        let mut read = Vec::new();
        while read.len() < BLOCK_RECORDS && block.text.len() < BLOCK_BYTES {
            if !self.started {
                self.started = true;
                self.has_current = self.read_into_lookahead()?;
                std::mem::swap(&mut self.current, &mut self.lookahead);
            }
            if !self.has_current {
                break;
            }
            let more = self.read_into_lookahead()?;
            read.push(self.convert(&self.current, !more, &mut block)?);
            std::mem::swap(&mut self.current, &mut self.lookahead);
            self.has_current = more;
        }
        let text = String::from_utf8(block.text).map_err(|_| {
            DataError::Format(format!(
                "{}: a record's text changed after its UTF-8 check",
                self.path.display()
            ))
        })?;
        let block = Arc::new(PackedBlock::new(text, block.ends));
        self.ready.extend(read.into_iter().map(|item| match item {
            Scanned::Item(item) => item,
            Scanned::Packed { number, first, len } => Item::Record(Record {
                number,
                fields: Fields::Packed(PackedFields::new(Arc::clone(&block), first, len)),
                raw: None,
            }),
        }));
        Ok(())
    }

    fn convert(
        &self,
        rec: &ByteRecord,
        last: bool,
        block: &mut BlockBuilder,
    ) -> Result<Scanned, DataError> {
        let line = rec.position().map_or(0, |p| p.line());
        let reject = |kind: &str, reason: String| {
            Ok(Scanned::Item(Item::Reject(Reject {
                number: line,
                kind: kind.to_string(),
                reason,
                raw: self.raw(rec),
            })))
        };
        if rec.as_slice().len() > MAX_RECORD_BYTES {
            return reject(
                "record too large",
                format!(
                    "line {line}: record of {} bytes exceeds the {} byte limit",
                    rec.as_slice().len(),
                    MAX_RECORD_BYTES
                ),
            );
        }
        if last {
            let start = rec.position().map_or(0, |p| p.byte());
            if self.unterminated_from(start)? {
                return reject(
                    "unterminated quote",
                    format!("line {line}: a quoted field is not closed before the end of the file"),
                );
            }
        }
        if rec.len() != self.columns.len() {
            return reject(
                "wrong number of fields",
                format!(
                    "line {line}: expected {} fields, found {}",
                    self.columns.len(),
                    rec.len()
                ),
            );
        }
        // Fields of an ASCII record are valid as they are; others are checked one by one,
        // as a character split over two fields is valid in neither.
        if !rec.as_slice().is_ascii() {
            for (i, field) in rec.iter().enumerate() {
                if let Err(e) = std::str::from_utf8(field) {
                    return reject(
                        "invalid UTF-8",
                        format!(
                            "line {line}, field {}: invalid UTF-8 at byte {}",
                            i + 1,
                            e.valid_up_to()
                        ),
                    );
                }
            }
        }
        match block.push(rec) {
            Some(first) => Ok(Scanned::Packed {
                number: line,
                first,
                len: rec.len() as u32,
            }),
            None => reject(
                "record too large",
                format!(
                    "line {line}: record of {} bytes does not fit a block",
                    rec.as_slice().len()
                ),
            ),
        }
    }
}

impl RecordReader for CsvReader {
    fn columns(&self) -> Option<&[String]> {
        Some(&self.columns)
    }

    fn next_item(&mut self) -> Result<Option<Item>, DataError> {
        if self.ready.is_empty() {
            self.read_block()?;
        }
        Ok(self.ready.pop_front())
    }

    fn bytes_read(&self) -> u64 {
        self.tally.bytes()
    }
}

/// Records read into one block at most, and text after which a block is closed: a few
/// blocks per pipeline chunk, so that a block is freed soon after its records are used.
const BLOCK_RECORDS: usize = 1024;
const BLOCK_BYTES: usize = 256 << 10;

/// A record as read: an item already (a reject), or fields in the block being built.
enum Scanned {
    Item(Item),
    Packed { number: u64, first: u32, len: u32 },
}

/// The fields of the records of one block, as they are read (checked UTF-8).
#[derive(Default)]
struct BlockBuilder {
    text: Vec<u8>,
    ends: Vec<u32>,
}

impl BlockBuilder {
    /// Appends `rec`'s fields; returns the index of the first, or `None` (appending
    /// nothing) if the block cannot address that much text.
    fn push(&mut self, rec: &ByteRecord) -> Option<u32> {
        let first = u32::try_from(self.ends.len()).ok()?;
        let base = u32::try_from(self.text.len()).ok()?;
        // The fields are `as_slice()`, one after the other: every end below is at most this.
        let total = u32::try_from(rec.as_slice().len()).ok()?;
        base.checked_add(total)?;
        self.text.extend_from_slice(rec.as_slice());
        let mut end = base;
        for field in rec {
            end += field.len() as u32;
            self.ends.push(end);
        }
        Some(first)
    }
}

/// CSV export: a header row, then one line per row; null is an empty field.
pub struct CsvWriter {
    writer: csv::Writer<BufWriter<File>>,
    path: PathBuf,
}

impl CsvWriter {
    pub fn create(path: &Path, schema: &Schema) -> Result<Self, DataError> {
        let file = File::create(path)
            .map_err(|e| DataError::io(format!("creating {}", path.display()), e))?;
        let mut writer = csv::Writer::from_writer(BufWriter::new(file));
        writer
            .write_record(schema.names())
            .map_err(|e| DataError::Format(format!("writing {}: {e}", path.display())))?;
        Ok(Self {
            writer,
            path: path.to_path_buf(),
        })
    }
}

impl RowWriter for CsvWriter {
    fn write_rows(&mut self, rows: &[Row]) -> Result<(), DataError> {
        for row in rows {
            let fields: Vec<String> = row
                .iter()
                .map(|v| value_to_text(v).unwrap_or_default())
                .collect();
            self.writer
                .write_record(&fields)
                .map_err(|e| DataError::Format(format!("writing {}: {e}", self.path.display())))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), DataError> {
        let path = self.path.clone();
        let inner = self
            .writer
            .into_inner()
            .map_err(|e| DataError::Format(format!("writing {}: {e}", path.display())))?;
        let file = inner
            .into_inner()
            .map_err(|e| DataError::io(format!("writing {}", path.display()), e.into_error()))?;
        file.sync_all()
            .map_err(|e| DataError::io(format!("writing {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(body: &[u8]) -> (Vec<String>, Vec<Item>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, body).unwrap();
        let mut r = CsvReader::open(&p, Tally::default()).unwrap();
        let mut out = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            out.push(i);
        }
        (r.columns().unwrap().to_vec(), out)
    }

    fn rec(i: &Item) -> Vec<Option<String>> {
        match i {
            Item::Record(Record {
                fields: Fields::Packed(f),
                ..
            }) => f.iter().map(|s| Some(s.to_string())).collect(),
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn sniffs_delimiters_and_headers() {
        let (cols, items) = read_all(b"\xEF\xBB\xBFa;b;c\r\n1;2;3\r\n4;5;6\r\n");
        assert_eq!(cols, ["a", "b", "c"]);
        assert_eq!(
            rec(&items[1]),
            [Some("4".into()), Some("5".into()), Some("6".into())]
        );
        let (cols, items) = read_all(b"1\tx\n2\ty\n");
        assert_eq!(cols, ["col1", "col2"]);
        assert_eq!(items.len(), 2);
        let (cols, _) = read_all(b"a|b\n1|2\n");
        assert_eq!(cols, ["a", "b"]);
    }

    #[test]
    fn quoted_newlines_and_unterminated_quote() {
        let (_, items) = read_all(b"a,b\n1,\"x\ny\"\n2,\"open\n");
        assert_eq!(rec(&items[0])[1].as_deref(), Some("x\ny"));
        match &items[1] {
            Item::Reject(r) => {
                assert_eq!(r.kind, "unterminated quote");
                assert_eq!(r.number, 4);
            }
            other => panic!("{other:?}"),
        }
        // A literal quote inside an unquoted field is not an open quote.
        let (_, items) = read_all(b"a,b\n1,ab\"c\n");
        assert_eq!(rec(&items[0])[1].as_deref(), Some("ab\"c"));
    }

    /// What `items` should be: per record its line and its fields, or `None` for a reject.
    fn assert_items(items: &[Item], expected: &[(u64, Option<Vec<String>>)]) {
        assert_eq!(items.len(), expected.len());
        for (item, (line, fields)) in items.iter().zip(expected) {
            match (item, fields) {
                (Item::Record(r), Some(fields)) => {
                    assert_eq!(r.number, *line);
                    let got: Vec<String> = rec(item).into_iter().flatten().collect();
                    assert_eq!(&got, fields, "line {line}");
                }
                (Item::Reject(r), None) => assert_eq!(r.number, *line),
                (other, _) => panic!("line {line}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn records_across_blocks_keep_their_order_fields_and_numbers() {
        let mut body = String::from("a,b,c\n");
        let mut expected = Vec::new();
        let mut line = 2;
        for i in 0..BLOCK_RECORDS * 2 + 37 {
            match i % 97 {
                0 => {
                    body += &format!("{i},ragged\n");
                    expected.push((line, None));
                }
                1 => {
                    body += &format!("{i},\"multi\nline\",é{i}\n");
                    let fields = vec![i.to_string(), "multi\nline".into(), format!("é{i}")];
                    expected.push((line, Some(fields)));
                    line += 1;
                }
                // Long fields: blocks also close on their text's size.
                2..=20 => {
                    let long = "x".repeat(5000 + i);
                    body += &format!("{i},{long},\n");
                    expected.push((line, Some(vec![i.to_string(), long, String::new()])));
                }
                _ => {
                    body += &format!("{i},x{i},y\n");
                    expected.push((line, Some(vec![i.to_string(), format!("x{i}"), "y".into()])));
                }
            }
            line += 1;
        }
        let (_, items) = read_all(body.as_bytes());
        assert_items(&items, &expected);
    }

    #[test]
    fn a_character_split_over_two_fields_is_invalid() {
        let (_, items) = read_all(b"a,b\n1,2\n\xC3,\xA9\n3,4\n");
        assert_eq!(rec(&items[0]), [Some("1".into()), Some("2".into())]);
        match &items[1] {
            Item::Reject(r) => {
                assert_eq!(r.kind, "invalid UTF-8");
                assert!(
                    r.reason
                        .contains("line 3, field 1: invalid UTF-8 at byte 0"),
                    "{}",
                    r.reason
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(rec(&items[2]), [Some("3".into()), Some("4".into())]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Whatever the fields (quotes, delimiters, newlines, non-ASCII, empty), the reader
        /// gives back exactly what a CSV writer wrote, record by record.
        #[test]
        fn reads_back_what_a_writer_wrote(
            records in proptest::collection::vec(
                proptest::collection::vec("[a-c,\"\n é€]{0,6}", 3),
                1..1500,
            )
        ) {
            let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
            writer.write_record(["h1", "h2", "h3"]).unwrap();
            for r in &records {
                writer.write_record(r).unwrap();
            }
            let body = writer.into_inner().unwrap();
            let (cols, items) = read_all(&body);
            proptest::prop_assert_eq!(cols, ["h1", "h2", "h3"]);
            let got: Vec<Vec<String>> = items
                .iter()
                .map(|i| rec(i).into_iter().flatten().collect())
                .collect();
            proptest::prop_assert_eq!(got, records);
        }
    }

    #[test]
    fn binary_is_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, [0x89, b'P', b'N', b'G', 0, 0, 1, 2, 3]).unwrap();
        let e = CsvReader::open(&p, Tally::default()).err().unwrap();
        assert!(e.to_string().starts_with("not a text CSV file"), "{e}");
    }
}
