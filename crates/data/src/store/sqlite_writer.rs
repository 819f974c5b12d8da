//! The SQLite bulk writer: one thread that owns its own connection to the database file
//! and inserts a load's rows with a single prepared statement inside large transactions.
//!
//! sqlx suits the store's other queries, but a bulk load is bound by per-row overhead,
//! and the fastest way to fill an SQLite table is the one its own `.import` uses: prepare
//! `INSERT … VALUES (?, …)` once, bind and step each row, and commit rarely. Running that
//! on a dedicated thread keeps blocking calls off the async runtime, while the ingest
//! pipeline parses the next batch on the other core.
//!
//! Each batch is one transaction, acknowledged once committed, so an error belongs to the
//! batch that caused it and a concurrent load into the same file gets the write lock in
//! between batches. The staging table is never visible as a dataset until the load renames
//! it, so these intermediate commits are not a partial dataset.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use rusqlite::types::Null;
use rusqlite::{Connection, OpenFlags};

use super::rules::{quote_double, ROW_COLUMN};
use crate::value::{Row, Schema, Value};

enum Job {
    Rows(
        Vec<(u64, Row)>,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    ),
    Commit(tokio::sync::oneshot::Sender<Result<(), String>>),
}

/// A running writer for one staging table.
pub(crate) struct BulkWriter {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl BulkWriter {
    /// Starts the writer thread for `staging` (which must exist) in the database at `path`.
    pub fn start(path: PathBuf, staging: &str, schema: &Schema) -> Self {
        let sql = insert_statement(staging, schema);
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let thread = std::thread::Builder::new()
            .name("consort-sqlite-writer".into())
            .spawn(move || run(path, sql, inbox))
            .ok();
        Self {
            jobs: Some(jobs),
            thread,
        }
    }

    /// Writes `rows` in one transaction, returning once it is committed.
    pub async fn write(&mut self, rows: Vec<(u64, Row)>) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Rows(rows, reply))?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Stops the thread once every batch is written. Each batch already committed; this
    /// still asks the thread, so a failure to open the database is reported even when no
    /// batch came (a load whose rows were all rejected).
    pub async fn commit(mut self) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Commit(reply))?;
        let result = answer.await.unwrap_or_else(|_| Err(stopped()));
        self.stop().await;
        result
    }

    /// Waits for the thread to end (rolling back a batch in progress), so the caller may
    /// drop the staging table without waiting for this connection's lock.
    pub async fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn send(&self, job: Job) -> Result<(), String> {
        match (&self.jobs, &self.thread) {
            (Some(jobs), Some(_)) => jobs.send(job).map_err(|_| stopped()),
            _ => Err(stopped()),
        }
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        // Closing the channel makes the thread roll back and exit on its own.
        self.jobs = None;
    }
}

fn stopped() -> String {
    "the SQLite writer stopped".into()
}

fn insert_statement(staging: &str, schema: &Schema) -> String {
    let mut columns = quote_double(ROW_COLUMN);
    let mut params = String::from("?");
    for c in &schema.columns {
        columns.push_str(", ");
        columns.push_str(&quote_double(&c.name));
        params.push_str(", ?");
    }
    format!(
        "INSERT INTO {} ({columns}) VALUES ({params})",
        quote_double(staging)
    )
}

fn run(path: PathBuf, sql: String, inbox: mpsc::Receiver<Job>) {
    let mut conn = match open(&path) {
        Ok(c) => c,
        Err(e) => {
            // Answer every job with the reason, so no caller waits forever.
            for job in inbox {
                let reply = match job {
                    Job::Rows(_, r) | Job::Commit(r) => r,
                };
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let conn = &mut conn;
    let mut session = Session { conn, sql: &sql };
    for job in &inbox {
        match job {
            Job::Rows(rows, reply) => {
                let result = session.write(&rows);
                let failed = result.is_err();
                // Release the rows before answering, so memory stays bounded.
                drop(rows);
                let _ = reply.send(result);
                if failed {
                    break;
                }
            }
            Job::Commit(reply) => {
                let _ = reply.send(Ok(()));
                return;
            }
        }
    }
}

fn open(path: &std::path::Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("opening {} for the load: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    // The staging table only becomes a dataset when the load commits, so the load can
    // trade durability of its intermediate commits for speed: NORMAL syncs the WAL only
    // at checkpoints. A larger cache keeps the growing B-tree's right edge in memory.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;")
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

struct Session<'c> {
    conn: &'c mut Connection,
    sql: &'c str,
}

impl Session<'_> {
    fn write(&mut self, rows: &[(u64, Row)]) -> Result<(), String> {
        // Dropping the transaction unfinished rolls it back.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        {
            let mut stmt = tx.prepare_cached(self.sql).map_err(|e| e.to_string())?;
            let mut text = TextBuffers::default();
            for (n, row) in rows {
                let n = i64::try_from(*n).map_err(|_| format!("row number {n} is too large"))?;
                stmt.raw_bind_parameter(1, n).map_err(|e| e.to_string())?;
                for (i, v) in row.iter().enumerate() {
                    let at = i + 2;
                    let bound = match v {
                        Value::Null => stmt.raw_bind_parameter(at, Null),
                        Value::Integer(x) => stmt.raw_bind_parameter(at, *x),
                        Value::Float(x) => stmt.raw_bind_parameter(at, *x),
                        Value::Boolean(b) => stmt.raw_bind_parameter(at, i64::from(*b)),
                        Value::Text(s) => stmt.raw_bind_parameter(at, s.as_str()),
                        Value::Date(d) => stmt.raw_bind_parameter(at, text.date(*d)),
                        Value::Timestamp(t) => stmt.raw_bind_parameter(at, text.timestamp(t)),
                    };
                    bound.map_err(|e| e.to_string())?;
                }
                stmt.raw_execute().map_err(|e| format!("row {n}: {e}"))?;
            }
        }
        tx.commit().map_err(|e| e.to_string())
    }
}

/// Fixed-width date and timestamp text (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS.ffffffZ`),
/// formatted without allocating, for years 1 to 9999 (the only ones the SQLite rules
/// admit). Reading back parses the same forms.
#[derive(Default)]
struct TextBuffers {
    date: [u8; 10],
    timestamp: [u8; 27],
}

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn put_date(out: &mut [u8], d: NaiveDate) {
    put_digits(&mut out[0..4], d.year().clamp(0, 9999) as u32);
    out[4] = b'-';
    put_digits(&mut out[5..7], d.month());
    out[7] = b'-';
    put_digits(&mut out[8..10], d.day());
}

impl TextBuffers {
    fn date(&mut self, d: NaiveDate) -> &str {
        put_date(&mut self.date, d);
        std::str::from_utf8(&self.date).unwrap_or_default()
    }

    fn timestamp(&mut self, t: &DateTime<Utc>) -> &str {
        let out = &mut self.timestamp;
        put_date(&mut out[0..10], t.date_naive());
        let time = t.time();
        out[10] = b'T';
        put_digits(&mut out[11..13], time.hour());
        out[13] = b':';
        put_digits(&mut out[14..16], time.minute());
        out[16] = b':';
        // chrono keeps a leap second as nanoseconds past 10^9 and prints it as second 60.
        let leap = u32::from(time.nanosecond() >= 1_000_000_000);
        put_digits(&mut out[17..19], time.second() + leap);
        out[19] = b'.';
        put_digits(&mut out[20..26], (time.nanosecond() % 1_000_000_000) / 1000);
        out[26] = b'Z';
        std::str::from_utf8(&self.timestamp[..]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_text_matches_the_store_forms() {
        let mut buffers = TextBuffers::default();
        for (y, m, d) in [(1, 1, 1), (999, 12, 31), (2024, 2, 29), (9999, 12, 31)] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(buffers.date(date), date.format("%Y-%m-%d").to_string());
            for (h, mi, s, micro) in [(0, 0, 0, 0), (23, 59, 59, 999_999), (7, 5, 3, 120)] {
                let t = date.and_hms_micro_opt(h, mi, s, micro).unwrap().and_utc();
                let reference = t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                assert_eq!(buffers.timestamp(&t), reference);
            }
        }
    }
}
