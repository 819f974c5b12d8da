//! One prepared `INSERT` of the SQLite bulk writer, bound through SQLite's C API.
//!
//! rusqlite binds every text with `SQLITE_TRANSIENT`: SQLite copies the text into the
//! statement at bind time and copies it again into the record it builds. Rows here are
//! bound and executed within one call, [`RawInsert::insert`], which borrows them (and the
//! date and timestamp text it formats) for the whole call, so the texts can be bound with
//! `SQLITE_STATIC`: SQLite reads them in place when the statement runs. That, and no
//! per-parameter conversions or checks in between, took about a tenth of the writer's time.
//!
//! Soundness rests on two rules, both kept inside this module: the statement runs only in
//! [`RawInsert::insert`], after it has bound every parameter from data that call borrows;
//! and the statement is finalized before the connection it borrows can close.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use rusqlite::{ffi, Connection};

use super::sqlite_text::{put_date, put_timestamp, DATE_LEN, TIMESTAMP_LEN};
use consort_model::value::{Row, Value};

/// A prepared insert with `rows × width` parameters (plus a leading row number when
/// `numbered`), for rows of `width` values.
pub(super) struct RawInsert<'c> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// Held so the connection outlives the statement.
    _conn: &'c Connection,
    rows: usize,
    width: usize,
    numbered: bool,
    /// Date and timestamp text of one execution, one slot per parameter: sized before
    /// binding and never reallocated while bound.
    text: Vec<u8>,
}

/// Bytes of one parameter's slot in [`RawInsert::text`]: the longest fixed-width text.
const SLOT: usize = if TIMESTAMP_LEN > DATE_LEN {
    TIMESTAMP_LEN
} else {
    DATE_LEN
};

impl<'c> RawInsert<'c> {
    /// Prepares `sql`, an insert of `rows` rows of `width` values each (after the row
    /// number when `numbered`, then only one row).
    pub(super) fn prepare(
        conn: &'c Connection,
        sql: &str,
        rows: usize,
        width: usize,
        numbered: bool,
    ) -> Result<Self, String> {
        let len = c_int::try_from(sql.len()).map_err(|_| "insert statement too long")?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: the handle is the open connection `conn` borrows for 'c; `sql` is valid
        // for `len` bytes; SQLite writes the new statement (or null) into `stmt`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        let Some(stmt) = NonNull::new(stmt).filter(|_| rc == ffi::SQLITE_OK) else {
            // SAFETY: as above; the message is read before anything else runs on `conn`.
            return Err(unsafe { last_error(conn.handle()) });
        };
        let parameters = rows * width + usize::from(numbered);
        let insert = Self {
            stmt,
            _conn: conn,
            rows,
            width,
            numbered,
            text: vec![0; rows * width * SLOT],
        };
        // SAFETY: `stmt` is the statement just prepared.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(insert.stmt.as_ptr()) };
        if usize::try_from(expected).ok() != Some(parameters) {
            return Err(format!(
                "insert statement has {expected} parameters, expected {parameters}"
            ));
        }
        Ok(insert)
    }

    /// Rows this statement inserts per execution.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Inserts `rows` (exactly [`RawInsert::rows`] of them, each of the statement's width)
    /// with row number `number` bound first when the statement is numbered.
    pub(super) fn insert<'r>(
        &mut self,
        number: Option<i64>,
        rows: impl ExactSizeIterator<Item = &'r Row>,
    ) -> Result<(), String> {
        if rows.len() != self.rows || number.is_some() != self.numbered {
            return Err("insert called with the wrong shape of rows".into());
        }
        let stmt = self.stmt.as_ptr();
        let mut parameter: c_int = 1;
        if let Some(number) = number {
            // SAFETY: `stmt` is live; parameter 1 exists (the count was checked).
            check(stmt, unsafe { ffi::sqlite3_bind_int64(stmt, 1, number) })?;
            parameter += 1;
        }
        let mut slots = self.text.chunks_exact_mut(SLOT);
        for row in rows {
            if row.len() != self.width {
                return Err(format!("a row of {} values for {}", row.len(), self.width));
            }
            for (value, slot) in row.iter().zip(slots.by_ref()) {
                // SAFETY: `stmt` is live and `parameter` is within its count (rows × width
                // values, checked above). Text is bound SQLITE_STATIC: it lives in `rows`
                // or in `self.text`, both borrowed until the statement has run below, and
                // every parameter is bound again before any later run.
                let rc = unsafe {
                    match value {
                        Value::Null => ffi::sqlite3_bind_null(stmt, parameter),
                        Value::Integer(v) => ffi::sqlite3_bind_int64(stmt, parameter, *v),
                        Value::Float(v) => ffi::sqlite3_bind_double(stmt, parameter, *v),
                        Value::Boolean(v) => {
                            ffi::sqlite3_bind_int64(stmt, parameter, i64::from(*v))
                        }
                        Value::Text(s) => bind_static_text(stmt, parameter, s.as_bytes()),
                        Value::Date(d) => {
                            let text = &mut slot[..DATE_LEN];
                            put_date(text, *d);
                            bind_static_text(stmt, parameter, text)
                        }
                        Value::Timestamp(t) => {
                            let text = &mut slot[..TIMESTAMP_LEN];
                            put_timestamp(text, t);
                            bind_static_text(stmt, parameter, text)
                        }
                    }
                };
                check(stmt, rc)?;
                parameter += 1;
            }
        }
        // SAFETY: every parameter was bound above from data still borrowed here.
        let stepped = unsafe { ffi::sqlite3_step(stmt) };
        let result = if stepped == ffi::SQLITE_DONE {
            Ok(())
        } else {
            // SAFETY: the statement's connection is live; read before the reset below.
            Err(unsafe { last_error(ffi::sqlite3_db_handle(stmt)) })
        };
        // SAFETY: `stmt` is live. The reset's code repeats the step's error, if any.
        unsafe { ffi::sqlite3_reset(stmt) };
        result
    }
}

impl Drop for RawInsert<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and is not used again; its connection outlives it.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// Binds `text` (valid UTF-8) without copying it.
///
/// # Safety
/// `stmt` is live, `parameter` is within its count, and `text` stays valid and unchanged
/// until the statement has run.
unsafe fn bind_static_text(stmt: *mut ffi::sqlite3_stmt, parameter: c_int, text: &[u8]) -> c_int {
    let Ok(len) = c_int::try_from(text.len()) else {
        return ffi::SQLITE_TOOBIG;
    };
    ffi::sqlite3_bind_text(
        stmt,
        parameter,
        text.as_ptr().cast::<c_char>(),
        len,
        ffi::SQLITE_STATIC(),
    )
}

fn check(stmt: *mut ffi::sqlite3_stmt, rc: c_int) -> Result<(), String> {
    if rc == ffi::SQLITE_OK {
        return Ok(());
    }
    // SAFETY: `stmt` is live, so is its connection.
    Err(unsafe { last_error(ffi::sqlite3_db_handle(stmt)) })
}

/// The connection's last error message.
///
/// # Safety
/// `db` is a live connection.
unsafe fn last_error(db: *mut ffi::sqlite3) -> String {
    let message = ffi::sqlite3_errmsg(db);
    if message.is_null() {
        return "unknown SQLite error".into();
    }
    CStr::from_ptr(message).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (n INTEGER PRIMARY KEY, i BIGINT, f DOUBLE PRECISION, b BOOLEAN, \
             s TEXT, d DATE TEXT, ts TIMESTAMP TEXT)",
        )
        .unwrap();
        conn
    }

    /// A row as read back: n, i, f, b, s (as bytes), d, ts.
    type StoredRow = (i64, i64, f64, i64, Option<Vec<u8>>, String, String);

    fn row(i: i64, s: &str) -> Row {
        let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        vec![
            Value::Integer(i),
            Value::Float(i as f64 / 4.0),
            Value::Boolean(i % 2 == 0),
            Value::Text(s.into()),
            Value::Date(day),
            Value::Timestamp(day.and_hms_micro_opt(23, 59, 58, 7).unwrap().and_utc()),
        ]
    }

    #[test]
    fn inserts_every_type_and_reads_back_the_same() {
        let conn = table();
        let sql = "INSERT INTO t (i, f, b, s, d, ts) VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)";
        let mut run = RawInsert::prepare(&conn, sql, 2, 6, false).unwrap();
        let rows = [row(1, "één"), row(i64::MIN, "nul\0inside")];
        run.insert(None, rows.iter()).unwrap();
        let mut numbered = RawInsert::prepare(
            &conn,
            "INSERT INTO t (n, i, f, b, s, d, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            1,
            6,
            true,
        )
        .unwrap();
        let mut nulls = row(3, "");
        nulls[3] = Value::Null;
        numbered.insert(Some(10), std::iter::once(&nulls)).unwrap();
        drop((run, numbered));
        let got: Vec<StoredRow> = conn
            .prepare("SELECT n, i, f, b, CAST(s AS BLOB), d, ts FROM t ORDER BY n")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ts = "2024-02-29T23:59:58.000007Z".to_string();
        assert_eq!(
            got,
            [
                (
                    1,
                    1,
                    0.25,
                    0,
                    Some("één".as_bytes().to_vec()),
                    "2024-02-29".into(),
                    ts.clone()
                ),
                (
                    2,
                    i64::MIN,
                    i64::MIN as f64 / 4.0,
                    1,
                    Some(b"nul\0inside".to_vec()),
                    "2024-02-29".into(),
                    ts.clone()
                ),
                (10, 3, 0.75, 0, None, "2024-02-29".into(), ts),
            ]
        );
        let types: Vec<String> = conn
            .prepare("SELECT typeof(d) || typeof(ts) FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(types.iter().all(|t| t == "texttext"), "{types:?}");
    }

    #[test]
    fn errors_name_the_problem() {
        let conn = table();
        let sql = "INSERT INTO t (n, i, f, b, s, d, ts) VALUES (?, ?, ?, ?, ?, ?, ?)";
        let mut insert = RawInsert::prepare(&conn, sql, 1, 6, true).unwrap();
        insert
            .insert(Some(1), std::iter::once(&row(1, "a")))
            .unwrap();
        let duplicate = insert
            .insert(Some(1), std::iter::once(&row(2, "b")))
            .unwrap_err();
        assert!(
            duplicate.contains("UNIQUE constraint failed"),
            "{duplicate}"
        );
        // The statement still works after a failure.
        insert
            .insert(Some(2), std::iter::once(&row(2, "b")))
            .unwrap();
        let short = insert
            .insert(Some(3), std::iter::once(&row(3, "c")[..5].to_vec()))
            .unwrap_err();
        assert!(short.contains("5 values for 6"), "{short}");
        let shape = insert
            .insert(None, std::iter::once(&row(3, "c")))
            .unwrap_err();
        assert!(shape.contains("wrong shape"), "{shape}");
        let wrong_count = RawInsert::prepare(&conn, sql, 2, 6, true).err().unwrap();
        assert!(
            wrong_count.contains("has 7 parameters, expected 13"),
            "{wrong_count}"
        );
        let bad_sql = RawInsert::prepare(&conn, "INSERT INTO missing VALUES (?)", 1, 1, false)
            .err()
            .unwrap();
        assert!(bad_sql.contains("no such table: missing"), "{bad_sql}");
    }
}
