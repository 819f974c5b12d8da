//! What the backends share: name validation and quoting, value checks against a
//! backend's limits, staging names, statement chunking and URL redaction.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{NaiveDate, Timelike};

use super::StoreError;
use consort_model::value::{ColumnType, Row, Schema, Value};

/// The hidden row-number column of every dataset table.
pub const ROW_COLUMN: &str = "_consort_row";
/// The prefix of staging tables.
pub const STAGING_PREFIX: &str = "_consort_staging_";
/// Longest table name accepted (PostgreSQL's identifier limit).
const MAX_TABLE_NAME: usize = 63;

/// Quotes an identifier for SQLite and PostgreSQL: `"…"`, doubling `"`.
pub fn quote_double(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an identifier for MySQL/MariaDB: `` `…` ``, doubling `` ` ``.
pub fn quote_backtick(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Checks a dataset table name: `[A-Za-z0-9_]{1,63}`, not reserved.
pub fn validate_table_name(table: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::InvalidName(format!(
            "table name {table:?}: {why}"
        )))
    };
    if table.is_empty() {
        return bad("empty");
    }
    if table.len() > MAX_TABLE_NAME {
        return bad("longer than 63 characters");
    }
    if !table
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return bad("only ASCII letters, digits and _ are allowed");
    }
    let lower = table.to_ascii_lowercase();
    if lower.starts_with("_consort_") || lower.starts_with("sqlite_") {
        return bad("the prefixes _consort_ and sqlite_ are reserved");
    }
    Ok(())
}

/// How a backend compares identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fold {
    /// Case-sensitive (quoted PostgreSQL identifiers).
    None,
    /// ASCII case-insensitive (SQLite).
    Ascii,
    /// Unicode case-insensitive (MySQL).
    Unicode,
}

/// A backend's limits on names and values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub max_name_bytes: Option<usize>,
    pub max_name_chars: Option<usize>,
    pub fold: Fold,
    /// Only Basic Multilingual Plane characters and no trailing space in names (MySQL).
    pub mysql_names: bool,
    pub min_date: NaiveDate,
    pub max_date: NaiveDate,
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// Rows [`Rules::check_rows`] prefetches at a time.
const PREFETCH_ROWS: usize = 32;

impl Rules {
    pub fn sqlite() -> Self {
        Self {
            max_name_bytes: None,
            max_name_chars: None,
            fold: Fold::Ascii,
            mysql_names: false,
            min_date: ymd(1, 1, 1),
            max_date: ymd(9999, 12, 31),
        }
    }
    pub fn postgres() -> Self {
        Self {
            max_name_bytes: Some(63),
            fold: Fold::None,
            ..Self::sqlite()
        }
    }
    pub fn mysql() -> Self {
        Self {
            max_name_bytes: None,
            max_name_chars: Some(64),
            fold: Fold::Unicode,
            mysql_names: true,
            min_date: ymd(1000, 1, 1),
            max_date: ymd(9999, 12, 31),
        }
    }

    fn fold(&self, name: &str) -> String {
        match self.fold {
            Fold::None => name.to_string(),
            Fold::Ascii => name.to_ascii_lowercase(),
            Fold::Unicode => name.to_lowercase(),
        }
    }

    /// Checks the table name and every column name of a schema.
    pub fn validate_schema(&self, table: &str, schema: &Schema) -> Result<(), StoreError> {
        validate_table_name(table)?;
        let mut seen = HashSet::new();
        seen.insert(self.fold(ROW_COLUMN));
        for col in &schema.columns {
            let name = &col.name;
            let bad = |why: String| {
                Err(StoreError::InvalidName(format!(
                    "column {name:?} of table {table}: {why}"
                )))
            };
            if name.is_empty() {
                return bad("empty".into());
            }
            if name.contains('\0') {
                return bad("contains NUL".into());
            }
            if let Some(max) = self.max_name_bytes {
                if name.len() > max {
                    return bad(format!("longer than the backend's limit of {max} bytes"));
                }
            }
            if let Some(max) = self.max_name_chars {
                if name.chars().count() > max {
                    return bad(format!(
                        "longer than the backend's limit of {max} characters"
                    ));
                }
            }
            if self.mysql_names {
                if name.chars().any(|c| c as u32 > 0xFFFF) {
                    return bad("MySQL names allow only Basic Multilingual Plane characters".into());
                }
                if name.ends_with(' ') {
                    return bad("MySQL names cannot end with a space".into());
                }
            }
            if !seen.insert(self.fold(name)) {
                return bad(if self.fold(name) == self.fold(ROW_COLUMN) {
                    "reserved for the row number".into()
                } else {
                    "duplicate column name".into()
                });
            }
        }
        Ok(())
    }

    /// Checks rows against the schema and the backend's value limits (prefetching the
    /// rows ahead, see [`super::prefetch`]).
    pub fn check_rows(
        &self,
        table: &str,
        schema: &Schema,
        rows: &[(u64, Row)],
    ) -> Result<(), StoreError> {
        for (i, (n, row)) in rows.iter().enumerate() {
            if i % PREFETCH_ROWS == 0 {
                super::prefetch::prefetch_rows(rows, i, PREFETCH_ROWS);
            }
            if *n > i64::MAX as u64 {
                return Err(StoreError::InvalidRow {
                    table: table.into(),
                    row: *n,
                    reason: "row number above the largest BIGINT".into(),
                });
            }
            if row.len() != schema.columns.len() {
                return Err(StoreError::InvalidRow {
                    table: table.into(),
                    row: *n,
                    reason: format!("{} values for {} columns", row.len(), schema.columns.len()),
                });
            }
            for (col, value) in schema.columns.iter().zip(row) {
                if let Err(reason) = self.check_value(col.ty, col.nullable, value) {
                    return Err(StoreError::UnsupportedValue {
                        table: table.into(),
                        column: col.name.clone(),
                        row: *n,
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    fn check_date(&self, d: NaiveDate) -> Result<(), String> {
        if d < self.min_date || d > self.max_date {
            return Err(format!(
                "date {d} outside the backend's range {} ..= {}",
                self.min_date, self.max_date
            ));
        }
        Ok(())
    }

    fn check_value(&self, ty: ColumnType, nullable: bool, value: &Value) -> Result<(), String> {
        let Some(vty) = value.column_type() else {
            return if nullable {
                Ok(())
            } else {
                Err("NULL in a non-nullable column".into())
            };
        };
        if vty != ty {
            return Err(format!("a {vty} value in a {ty} column"));
        }
        match value {
            Value::Float(f) if !f.is_finite() => Err(format!("non-finite float {f}")),
            Value::Text(s) if s.contains('\0') => Err("text contains NUL (\\0)".into()),
            Value::Date(d) => self.check_date(*d),
            Value::Timestamp(t) => {
                self.check_date(t.date_naive())?;
                let nanos = t.nanosecond();
                if nanos >= 1_000_000_000 || !nanos.is_multiple_of(1000) {
                    return Err(format!(
                        "timestamp {t} is not at microsecond precision (or is a leap second)"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A random lowercase hex string of `len` (≤ 64) characters, unique per call.
pub(crate) fn random_hex(len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let local = 0u8;
    h.update(&(&local as *const u8 as usize).to_le_bytes());
    let mut s = h.finalize().to_hex().to_string();
    s.truncate(len.min(64));
    s
}

/// A fresh staging table name for `table`, at most 63 characters.
pub(crate) fn staging_name(table: &str) -> String {
    let keep = &table[..table.len().min(MAX_TABLE_NAME - STAGING_PREFIX.len() - 13)];
    format!("{STAGING_PREFIX}{}_{keep}", random_hex(12))
}

/// A 64-bit key derived from a name (for PostgreSQL advisory locks).
pub(crate) fn lock_key(name: &str) -> i64 {
    let h = blake3::hash(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

/// A short lock name derived from a staging table name (for MySQL named locks).
pub(crate) fn lock_name(name: &str) -> String {
    format!("consort_{}", &blake3::hash(name.as_bytes()).to_hex()[..32])
}

/// How rows are split into multi-row statements.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunking {
    /// The backend's limit of bind parameters per statement.
    pub max_params: usize,
    /// Upper bound of rows per statement.
    pub max_rows: usize,
    /// Rough upper bound of the bound data per statement, in bytes.
    pub max_bytes: usize,
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Text(s) => s.len() + 4,
        _ => 9,
    }
}

/// Splits `rows` into statement-sized ranges. Sizes come from a short ladder
/// (`full`, `full/4`, `full/16`, …, 1) so few distinct statements are prepared.
pub(crate) fn plan_chunks(
    rows: &[(u64, Row)],
    columns: usize,
    c: Chunking,
) -> Result<Vec<Range<usize>>, String> {
    let per_row = columns + 1;
    let full = (c.max_params / per_row).min(c.max_rows);
    if full == 0 {
        return Err(format!(
            "{columns} columns exceed the backend's limit of {} bind parameters per statement",
            c.max_params
        ));
    }
    let mut prefix = Vec::with_capacity(rows.len() + 1);
    prefix.push(0usize);
    for (_, row) in rows {
        let b: usize = 9 + row.iter().map(value_bytes).sum::<usize>();
        prefix.push(prefix.last().copied().unwrap_or(0) + b);
    }
    let mut ladder = vec![full];
    while let Some(&last) = ladder.last() {
        if last == 1 {
            break;
        }
        ladder.push((last / 4).max(1));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let left = rows.len() - i;
        let size = ladder
            .iter()
            .copied()
            .find(|&s| s <= left && prefix[i + s] - prefix[i] <= c.max_bytes)
            .unwrap_or(1);
        out.push(i..i + size);
        i += size;
    }
    Ok(out)
}

/// The URL without its password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// Opens and closes one connection, so an unreachable server is reported with the real
/// reason (a pool only says it timed out).
pub(crate) async fn probe<O>(opts: &O) -> Result<(), String>
where
    O: sqlx::ConnectOptions,
    O::Connection: Sized,
{
    use sqlx::Connection as _;
    match tokio::time::timeout(std::time::Duration::from_secs(10), opts.connect()).await {
        Err(_) => Err("no answer within 10 s".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
    }
}

/// The bound values of a page query (`after`, `limit`), or `None` when the page is empty
/// for certain.
pub(crate) fn page_bounds(after: Option<u64>, limit: usize) -> Option<(Option<i64>, i64)> {
    let after = match after {
        Some(a) => Some(i64::try_from(a).ok().filter(|a| *a < i64::MAX)?),
        None => None,
    };
    (limit > 0).then(|| (after, i64::try_from(limit).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact_url("sqlite://a/b.db"), "sqlite://a/b.db");
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_double(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_backtick("a`b"), "`a``b`");
    }

    #[test]
    fn chunks_cover_everything() {
        let rows: Vec<(u64, Row)> = (0..10_007).map(|i| (i, vec![Value::Integer(1)])).collect();
        let c = Chunking {
            max_params: 32766,
            max_rows: 2000,
            max_bytes: 1 << 22,
        };
        let plan = plan_chunks(&rows, 1, c).unwrap();
        assert_eq!(plan.iter().map(|r| r.len()).sum::<usize>(), 10_007);
        assert!(plan.iter().all(|r| r.len() <= 2000));
    }
}
