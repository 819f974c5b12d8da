//! Canonical byte encoding of rows and the dataset commitment built from it.
//!
//! # Row encoding
//!
//! A row is encoded as `u32 BE column count` followed by each value in schema order. Each
//! value is one tag byte and a payload:
//!
//! | tag | value     | payload                                                        |
//! |-----|-----------|----------------------------------------------------------------|
//! | 0   | null      | none                                                           |
//! | 1   | integer   | `i64` big-endian (two's complement)                            |
//! | 2   | float     | IEEE 754 `f64` bits big-endian; `-0.0` is encoded as `0.0`     |
//! | 3   | boolean   | one byte, `0` false / `1` true                                 |
//! | 4   | text      | `u32 BE` byte length, then the UTF-8 bytes (no normalisation)  |
//! | 5   | date      | `i32 BE` days since 1970-01-01 (proleptic Gregorian)           |
//! | 6   | timestamp | `i64 BE` microseconds since 1970-01-01T00:00:00Z               |
//!
//! Non-finite floats never reach a dataset (ingestion rejects them), so their encoding is
//! not part of the format.
//!
//! # Commitment
//!
//! The dataset commitment is the RFC 6962 Merkle tree hash (`consort_crypto::merkle`,
//! SHA-256 based) whose leaves are the row encodings in row-number order: leaf `i` is the
//! row whose hidden row number `_consort_row` is `i`. An empty dataset commits to
//! `SHA-256("")`. [`Commitment`] computes the root incrementally, keeping one 32-byte hash
//! per set bit of the row count (`O(log n)` memory), and gives exactly
//! `merkle::root(&encodings)`.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use consort_crypto::encoding::{Reader, Writer};
use consort_crypto::merkle::{empty_root, leaf_hash, node_hash};
use consort_crypto::{DecodeError, Hash};

use crate::value::{Row, Value};

pub const TAG_NULL: u8 = 0;
pub const TAG_INTEGER: u8 = 1;
pub const TAG_FLOAT: u8 = 2;
pub const TAG_BOOLEAN: u8 = 3;
pub const TAG_TEXT: u8 = 4;
pub const TAG_DATE: u8 = 5;
pub const TAG_TIMESTAMP: u8 = 6;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Days since 1970-01-01 of `date`.
pub fn date_to_days(date: NaiveDate) -> i32 {
    // The whole chrono date range (about ±262,000 years) fits in i32 days; counting from
    // the common era is a field read where a date difference was a calculation.
    date.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// Microseconds since the Unix epoch of `ts`.
pub fn timestamp_to_micros(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros()
}

/// Appends the canonical encoding of one value to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Integer(v) => {
            out.push(TAG_INTEGER);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Float(v) => {
            out.push(TAG_FLOAT);
            let v = if *v == 0.0 { 0.0f64 } else { *v };
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        Value::Boolean(v) => {
            out.push(TAG_BOOLEAN);
            out.push(u8::from(*v));
        }
        Value::Text(s) => {
            out.push(TAG_TEXT);
            // Texts longer than 4 GiB cannot be ingested (records are capped far below).
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Date(d) => {
            out.push(TAG_DATE);
            out.extend_from_slice(&date_to_days(*d).to_be_bytes());
        }
        Value::Timestamp(t) => {
            out.push(TAG_TIMESTAMP);
            out.extend_from_slice(&timestamp_to_micros(*t).to_be_bytes());
        }
    }
}

/// Writes the canonical encoding of `value` through a crypto [`Writer`] (the plan hash, the
/// result hash and the query protocol's public messages); the same bytes as
/// [`encode_value`].
pub fn write_value(w: &mut Writer, value: &Value) {
    match value {
        // Texts go straight through the writer; every other value is at most 9 bytes.
        Value::Text(s) => {
            w.u8(TAG_TEXT).string(s);
        }
        other => {
            let mut small = Vec::with_capacity(9);
            encode_value(other, &mut small);
            w.fixed(&small);
        }
    }
}

/// Reads one canonically encoded value (the inverse of [`encode_value`]). Dates and
/// timestamps outside chrono's range and unknown tags are refused; a float's `-0.0` reads
/// as `0.0`, the value it encodes.
pub fn read_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    Ok(match r.u8()? {
        TAG_NULL => Value::Null,
        TAG_INTEGER => Value::Integer(r.u64()? as i64),
        TAG_FLOAT => {
            let f = f64::from_bits(r.u64()?);
            Value::Float(if f == 0.0 { 0.0 } else { f })
        }
        TAG_BOOLEAN => Value::Boolean(r.bool()?),
        TAG_TEXT => Value::Text(r.string()?.into()),
        TAG_DATE => {
            let days = r.u32()? as i32;
            let date = days
                .checked_add(EPOCH_DAYS_FROM_CE)
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| r.error("date out of range"))?;
            Value::Date(date)
        }
        TAG_TIMESTAMP => {
            let t = DateTime::from_timestamp_micros(r.u64()? as i64)
                .ok_or_else(|| r.error("timestamp out of range"))?;
            Value::Timestamp(t)
        }
        tag => return Err(r.error(format!("unknown value tag {tag}"))),
    })
}

/// Appends the canonical encoding of `row` to `out` (see the module documentation).
pub fn encode_row_into(row: &[Value], out: &mut Vec<u8>) {
    out.extend_from_slice(&(row.len() as u32).to_be_bytes());
    for value in row {
        encode_value(value, out);
    }
}

/// The canonical encoding of `row` (see the module documentation).
pub fn encode_row(row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + row.len() * 9);
    encode_row_into(row, &mut out);
    out
}

/// Incremental RFC 6962 Merkle root over row encodings pushed in row-number order.
///
/// Keeps the roots of the perfect subtrees that make up the rows so far (one per set bit
/// of the count), so memory is `O(log n)` whatever the number of rows.
#[derive(Clone, Debug, Default)]
pub struct Commitment {
    /// `(height, hash)` of perfect subtrees, largest (leftmost) first.
    peaks: Vec<(u32, Hash)>,
    count: u64,
}

impl Commitment {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next row's canonical encoding (see [`encode_row`]).
    pub fn push(&mut self, row_encoding: &[u8]) {
        self.push_leaf_hash(leaf_hash(row_encoding));
    }

    /// Adds the next row.
    pub fn push_row(&mut self, row: &[Value]) {
        let mut buf = Vec::with_capacity(4 + row.len() * 9);
        encode_row_into(row, &mut buf);
        self.push(&buf);
    }

    /// Adds an already computed leaf hash (`merkle::leaf_hash(encoding)`).
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut height = 0u32;
        let mut hash = leaf;
        while let Some(&(h, left)) = self.peaks.last() {
            if h != height {
                break;
            }
            self.peaks.pop();
            hash = node_hash(&left, &hash);
            height += 1;
        }
        self.peaks.push((height, hash));
        self.count += 1;
    }

    /// Number of rows pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The Merkle root over all rows pushed so far (equal to `merkle::root` over them).
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        let Some(&(_, last)) = iter.next() else {
            return empty_root();
        };
        iter.fold(last, |acc, (_, left)| node_hash(left, &acc))
    }
}

/// The commitment over `rows` in the given order.
pub fn commitment_of<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Hash {
    let mut c = Commitment::new();
    for row in rows {
        c.push_row(row);
    }
    c.root()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Value> {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).map(Value::Date);
        [
            Some(Value::Null),
            Some(Value::Integer(i64::MIN)),
            Some(Value::Integer(-1)),
            Some(Value::Float(-0.0)),
            Some(Value::Float(2.5e-300)),
            Some(Value::Boolean(true)),
            Some(Value::Text("".into())),
            Some(Value::Text("ünï".into())),
            date(1, 1, 1),
            date(1969, 12, 31),
            date(262_000, 6, 30),
            DateTime::from_timestamp_micros(-1).map(Value::Timestamp),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    #[test]
    fn the_writer_and_the_reader_use_the_one_encoding() {
        for value in samples() {
            let mut direct = Vec::new();
            encode_value(&value, &mut direct);
            let mut w = Writer::new();
            write_value(&mut w, &value);
            assert_eq!(w.as_bytes(), direct.as_slice(), "{value:?}");
            let mut r = Reader::new(&direct);
            let back = read_value(&mut r).map_err(|e| e.to_string());
            assert_eq!(r.remaining(), 0);
            // -0.0 is written as 0.0, and reads back as the value it encodes.
            assert_eq!(
                back.map(|v| crate::value::compare_values(&v, &value)),
                Ok(std::cmp::Ordering::Equal),
                "{value:?}"
            );
        }
    }

    #[test]
    fn unknown_tags_and_out_of_range_dates_are_refused() {
        assert!(read_value(&mut Reader::new(&[9])).is_err());
        let mut far = vec![TAG_DATE];
        far.extend_from_slice(&i32::MAX.to_be_bytes());
        let err = read_value(&mut Reader::new(&far))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("date out of range")));
    }
    use chrono::TimeZone;
    use consort_crypto::merkle;

    #[test]
    fn days_count_from_the_unix_epoch() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let dates = [
            NaiveDate::MIN,
            NaiveDate::from_ymd_opt(1, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(1969, 12, 31).unwrap(),
            epoch,
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            NaiveDate::MAX,
        ];
        for d in dates {
            assert_eq!(i64::from(date_to_days(d)), (d - epoch).num_days(), "{d}");
        }
        assert_eq!(date_to_days(epoch), 0);
    }

    #[test]
    fn encodes_each_tag() {
        let row = vec![
            Value::Null,
            Value::Integer(-2),
            Value::Float(-0.0),
            Value::Boolean(true),
            Value::Text("hé".into()),
            Value::Date(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()),
            Value::Timestamp(Utc.timestamp_opt(1, 5000).unwrap()),
        ];
        let enc = encode_row(&row);
        let mut expect = vec![0, 0, 0, 7, 0];
        expect.extend([1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        expect.extend([2, 0, 0, 0, 0, 0, 0, 0, 0]);
        expect.extend([3, 1]);
        expect.extend([4, 0, 0, 0, 3, b'h', 0xc3, 0xa9]);
        expect.extend([5, 0, 0, 0, 1]);
        expect.push(6);
        expect.extend(1_000_005i64.to_be_bytes());
        assert_eq!(enc, expect);
        assert_eq!(
            encode_row(&vec![Value::Float(0.0)]),
            encode_row(&vec![Value::Float(-0.0)])
        );
        assert_eq!(
            date_to_days(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            -1
        );
    }

    #[test]
    fn incremental_root_matches_merkle_root() {
        for n in 0..70usize {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i % 5]).collect();
            let mut c = Commitment::new();
            for l in &leaves {
                c.push(l);
            }
            assert_eq!(c.root(), merkle::root(&leaves), "n = {n}");
            assert_eq!(c.len(), n as u64);
        }
    }
}
