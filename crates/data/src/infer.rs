//! Schema inference from a sample of text records, and the value parsers it shares with
//! type coercion.
//!
//! Each column gets the narrowest type that fits every non-null value of the sample:
//! `integer` (decimal `i64`, optional `-`, no leading zeros so `007` stays text), then
//! `float` (decimal or exponent notation; `NaN`/`inf` parse as floats and are rejected
//! later as non-finite), `boolean` (`true`/`false`/`yes`/`no`, any case; `1`/`0` stay
//! integers), `date` (`YYYY-MM-DD`), `timestamp` (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]`
//! / `YYYY-MM-DDTHH:MM:SS[.f]` taken as UTC; a column mixing dates and timestamps is a
//! timestamp column), else `text`. A column is nullable if any sampled value is null. A
//! column with only nulls is nullable text.
//!
//! Column names are kept verbatim (SQL keywords, quotes and semicolons included; the
//! stores quote identifiers); an empty name becomes `colN` (1-based position) and a
//! duplicate name is an error naming it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::DataError;
use crate::value::{Column, ColumnType, Schema, Value};

/// Records sampled for inference.
pub const SAMPLE_ROWS: usize = 10_000;

fn leading_zero(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let int_part: &str = digits
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    int_part.len() > 1 && int_part.starts_with('0')
}

/// A decimal `i64` without `+` or leading zeros.
pub fn parse_integer(s: &str) -> Option<i64> {
    if s.starts_with('+') || leading_zero(s) {
        return None;
    }
    s.parse().ok()
}

/// A float in decimal or exponent notation (also `NaN`, `inf`, `-inf`).
pub fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with('+') || leading_zero(s) {
        return None;
    }
    s.parse().ok()
}

/// `true`/`false`/`yes`/`no`, any case.
pub fn parse_boolean(s: &str) -> Option<bool> {
    let is = |word: &str| s.eq_ignore_ascii_case(word);
    if is("true") || is("yes") {
        Some(true)
    } else if is("false") || is("no") {
        Some(false)
    } else {
        None
    }
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    match iso_date(s.as_bytes()) {
        Some(d) => Some(d),
        // Not plain digits: let chrono decide (signs, spaces), so the fast path above never
        // changes what is accepted.
        None => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
    }
}

/// `n` ASCII digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD` with digits only; `None` for anything else (including invalid dates, which
/// chrono then refuses too).
fn iso_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    NaiveDate::from_ymd_opt(year as i32, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.fraction]` with no offset, digits only and seconds below 60,
/// truncated to microseconds; `None` for any other form.
fn iso_naive_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = iso_date(&b[..10])?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if second > 59 {
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let time = chrono::NaiveTime::from_hms_micro_opt(hour, minute, second, nanos / 1000)?;
    Some(date.and_time(time).and_utc())
}

/// RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[.fraction]` as UTC; truncated to microseconds.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if s.len() < 19 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if let Some(t) = iso_naive_timestamp(s) {
        return Some(t);
    }
    let ts = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else {
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
            .ok()?;
        naive.and_utc()
    };
    DateTime::from_timestamp_micros(ts.timestamp_micros())
}

/// A timestamp, or a date as its midnight (UTC): what a timestamp column accepts.
fn parse_timestamp_or_date(s: &str) -> Option<DateTime<Utc>> {
    parse_timestamp(s)
        .or_else(|| parse_date(s).map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()))
}

/// Appends `s` parsed as a finite value of `ty` to `row`; false, leaving `row` alone, if
/// it is not one ([`parse_value`] then says why). The same values as [`parse_value`],
/// built in place: returning a value to move into the row made the processor wait for
/// its own stores of it, a fifth of the typing time.
pub fn push_parsed(row: &mut Vec<Value>, s: &str, ty: ColumnType) -> bool {
    match ty {
        ColumnType::Text => row.push(Value::Text(s.into())),
        ColumnType::Integer => match parse_integer(s) {
            Some(v) => row.push(Value::Integer(v)),
            None => return false,
        },
        ColumnType::Float => match parse_float(s) {
            Some(v) if v.is_finite() => row.push(Value::Float(v)),
            _ => return false,
        },
        ColumnType::Boolean => match parse_boolean(s) {
            Some(v) => row.push(Value::Boolean(v)),
            None => return false,
        },
        ColumnType::Date => match parse_date(s) {
            Some(v) => row.push(Value::Date(v)),
            None => return false,
        },
        ColumnType::Timestamp => match parse_timestamp_or_date(s) {
            Some(v) => row.push(Value::Timestamp(v)),
            None => return false,
        },
    }
    true
}

/// Parses `s` as a value of `ty`, or says why it is not one.
pub fn parse_value(s: &str, ty: ColumnType) -> Result<Value, String> {
    let v = match ty {
        ColumnType::Text => return Ok(Value::Text(s.into())),
        ColumnType::Integer => parse_integer(s).map(Value::Integer),
        ColumnType::Float => parse_float(s).map(Value::Float),
        ColumnType::Boolean => parse_boolean(s).map(Value::Boolean),
        ColumnType::Date => parse_date(s).map(Value::Date),
        ColumnType::Timestamp => parse_timestamp_or_date(s).map(Value::Timestamp),
    };
    v.ok_or_else(|| format!("{} is not a valid {ty}", quote_short(s)))
}

/// `'s'` shortened to 64 characters for messages.
pub fn quote_short(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("'{out}'")
}

/// The narrowest type of a single non-null value.
pub fn classify(s: &str) -> ColumnType {
    let mut c = Candidates::ALL;
    c.observe(s);
    c.best()
}

#[derive(Clone, Copy, Debug)]
struct Candidates {
    integer: bool,
    float: bool,
    boolean: bool,
    date: bool,
    timestamp: bool,
}

impl Candidates {
    const ALL: Candidates = Candidates {
        integer: true,
        float: true,
        boolean: true,
        date: true,
        timestamp: true,
    };

    fn observe(&mut self, s: &str) {
        if self.integer && parse_integer(s).is_none() {
            self.integer = false;
        }
        if self.float && !self.integer && parse_float(s).is_none() {
            self.float = false;
        }
        if self.boolean && parse_boolean(s).is_none() {
            self.boolean = false;
        }
        let is_date = (self.date || self.timestamp) && parse_date(s).is_some();
        if self.date && !is_date {
            self.date = false;
        }
        if self.timestamp && !is_date && parse_timestamp(s).is_none() {
            self.timestamp = false;
        }
    }

    fn best(&self) -> ColumnType {
        if self.integer {
            ColumnType::Integer
        } else if self.float {
            ColumnType::Float
        } else if self.boolean {
            ColumnType::Boolean
        } else if self.date {
            ColumnType::Date
        } else if self.timestamp {
            ColumnType::Timestamp
        } else {
            ColumnType::Text
        }
    }
}

/// Accumulates per-column type evidence over sampled records.
#[derive(Clone, Debug)]
pub struct Inference {
    columns: Vec<(Candidates, bool, bool)>, // candidates, seen a value, seen a null
}

impl Inference {
    pub fn new(columns: usize) -> Self {
        Self {
            columns: vec![(Candidates::ALL, false, false); columns],
        }
    }

    /// Takes one record's (cleaned) fields in column order; missing fields count as null.
    pub fn observe(&mut self, fields: &[Option<String>]) {
        for (i, (cand, seen, null)) in self.columns.iter_mut().enumerate() {
            match fields.get(i).and_then(|f| f.as_deref()) {
                Some(s) => {
                    cand.observe(s);
                    *seen = true;
                }
                None => *null = true,
            }
        }
    }

    /// The schema for `names` (already final, see [`finalize_names`]). `fixed[i]` is a type
    /// that wins over inference (recipe override or a type the file declares).
    pub fn finish(&self, names: &[String], fixed: &[Option<ColumnType>]) -> Schema {
        let columns = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (cand, seen, null) =
                    self.columns
                        .get(i)
                        .copied()
                        .unwrap_or((Candidates::ALL, false, true));
                let inferred = if seen { cand.best() } else { ColumnType::Text };
                Column {
                    name: name.clone(),
                    ty: fixed.get(i).copied().flatten().unwrap_or(inferred),
                    nullable: null || !seen,
                }
            })
            .collect();
        Schema { columns }
    }
}

/// The longest column name, in bytes: the ledger refuses longer ones (rule version 2), so
/// an input with one is refused here, before anything is loaded.
pub const MAX_COLUMN_NAME_BYTES: usize = 128;
/// The most columns a dataset may have, for the same reason.
pub const MAX_COLUMNS: usize = 1024;

/// Names with empty ones replaced by `colN`; an error naming the first duplicate, the first
/// name over [`MAX_COLUMN_NAME_BYTES`] or with a control character, or too many columns.
pub fn finalize_names(names: Vec<String>) -> Result<Vec<String>, DataError> {
    if names.len() > MAX_COLUMNS {
        return Err(DataError::Invalid(format!(
            "{} columns; at most {MAX_COLUMNS} are allowed",
            names.len()
        )));
    }
    for (i, n) in names.iter().enumerate() {
        if n.len() > MAX_COLUMN_NAME_BYTES {
            return Err(DataError::Invalid(format!(
                "column {} has a name of {} bytes; at most {MAX_COLUMN_NAME_BYTES} are allowed",
                i + 1,
                n.len()
            )));
        }
        if n.chars().any(char::is_control) {
            return Err(DataError::Invalid(format!(
                "column {} has a control character in its name",
                i + 1
            )));
        }
    }
    let names: Vec<String> = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            if n.is_empty() {
                format!("col{}", i + 1)
            } else {
                n
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        if !seen.insert(n.as_str()) {
            return Err(DataError::Invalid(format!(
                "duplicate column name {}",
                quote_short(n)
            )));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What chrono alone accepts: the behaviour the fast paths must keep.
    fn chrono_timestamp(s: &str) -> Option<DateTime<Utc>> {
        if s.len() < 19 || !s.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        let ts = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            t.with_timezone(&Utc)
        } else {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .ok()?
                .and_utc()
        };
        DateTime::from_timestamp_micros(ts.timestamp_micros())
    }

    proptest! {
        /// `push_parsed` appends exactly the finite values `parse_value` gives.
        #[test]
        fn push_parsed_agrees_with_parse_value(
            s in "[-+]?[0-9]{0,4}(\\.[0-9]{0,3})?(e[0-9]{1,3})?|(?i)(true|no|inf|nan)|[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?Z?)?|.{0,12}",
            ty in proptest::sample::select(vec![
                ColumnType::Text, ColumnType::Integer, ColumnType::Float,
                ColumnType::Boolean, ColumnType::Date, ColumnType::Timestamp,
            ]),
        ) {
            let mut row = vec![Value::Null];
            let pushed = push_parsed(&mut row, &s, ty);
            let expected = match parse_value(&s, ty) {
                Ok(Value::Float(f)) if !f.is_finite() => None,
                Ok(v) => Some(v),
                Err(_) => None,
            };
            match expected {
                Some(v) => prop_assert_eq!(row, vec![Value::Null, v], "{}", s),
                None => {
                    prop_assert!(!pushed, "{}", s);
                    prop_assert_eq!(row, vec![Value::Null], "{}", s);
                }
            }
        }

        /// The same words as a lowercase comparison, in any case, and nothing else.
        #[test]
        fn booleans_are_the_four_words_in_any_case(s in "(?i)(true|false|yes|no)|.{0,7}") {
            let expected = match s.to_lowercase().as_str() {
                "true" | "yes" => Some(true),
                "false" | "no" => Some(false),
                _ => None,
            };
            prop_assert_eq!(parse_boolean(&s), expected, "{}", s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fast_date_and_timestamp_parsing_agrees_with_chrono(
            s in "[0-9]{4}-[0-1][0-9]-[0-3][0-9]([ Tt][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,11})?(Z|[+-]0[0-9]:00)?)?"
        ) {
            prop_assert_eq!(parse_timestamp(&s), chrono_timestamp(&s), "{}", s);
            prop_assert_eq!(
                parse_date(&s),
                if s.len() == 10 { NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok() } else { None },
                "{}", s
            );
        }
    }

    fn infer(values: &[&[Option<&str>]]) -> Vec<(ColumnType, bool)> {
        let n = values[0].len();
        let mut inf = Inference::new(n);
        for r in values {
            let r: Vec<Option<String>> = r.iter().map(|v| v.map(String::from)).collect();
            inf.observe(&r);
        }
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        inf.finish(&names, &[])
            .columns
            .into_iter()
            .map(|c| (c.ty, c.nullable))
            .collect()
    }

    #[test]
    fn narrowest_types() {
        use ColumnType::*;
        let got = infer(&[
            &[
                Some("1"),
                Some("1"),
                Some("yes"),
                Some("2024-01-02"),
                Some("2024-01-02 03:04:05"),
                Some("x"),
                None,
            ],
            &[
                Some("-7"),
                Some("2.5"),
                Some("FALSE"),
                Some("1999-12-31"),
                Some("2024-01-02T03:04:05.5+02:00"),
                Some("1"),
                None,
            ],
            &[
                Some("0"),
                Some("1e3"),
                Some("no"),
                None,
                Some("2024-01-02"),
                Some("2"),
                None,
            ],
        ]);
        assert_eq!(
            got,
            vec![
                (Integer, false),
                (Float, false),
                (Boolean, false),
                (Date, true),
                (Timestamp, false),
                (Text, false),
                (Text, true)
            ]
        );
        assert_eq!(classify("1"), Integer);
        assert_eq!(classify("0"), Integer);
        assert_eq!(classify("007"), Text);
        assert_eq!(classify("+5"), Text);
        assert_eq!(classify("NaN"), Float);
        assert_eq!(classify("2024-13-01"), Text);
        assert_eq!(classify("9223372036854775808"), Float);
    }

    #[test]
    fn parses_timestamps_as_utc_micros() {
        let t = parse_timestamp("2024-01-02T03:04:05.1234567+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-02T02:04:05.123456+00:00");
        assert!(parse_timestamp("2024-01-02").is_none());
        assert!(parse_value("x", ColumnType::Integer)
            .unwrap_err()
            .contains("'x' is not a valid integer"));
    }

    #[test]
    fn names() {
        let n = finalize_names(vec!["select".into(), "".into(), "a\";drop".into()]).unwrap();
        assert_eq!(n, vec!["select", "col2", "a\";drop"]);
        let e = finalize_names(vec!["a".into(), "b".into(), "a".into()]).unwrap_err();
        assert!(e.to_string().contains("duplicate column name 'a'"), "{e}");
        let long = finalize_names(vec!["x".repeat(MAX_COLUMN_NAME_BYTES + 1)]).unwrap_err();
        assert!(long.to_string().contains("at most 128"), "{long}");
        let control = finalize_names(vec!["a\tb".into()]).unwrap_err();
        assert!(
            control.to_string().contains("control character"),
            "{control}"
        );
        assert!(finalize_names(vec!["é".repeat(64)]).is_ok());
    }
}
