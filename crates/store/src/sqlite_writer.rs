//! The SQLite bulk writer: one thread that owns its own connection to the database file
//! and inserts a load's rows with a single prepared statement inside large transactions.
//!
//! sqlx suits the store's other queries, but a bulk load is bound by per-row overhead,
//! and the fastest way to fill an SQLite table is the one its own `.import` uses: prepare
//! `INSERT … VALUES (?, …)` once, bind and step each row, and commit rarely. The binding
//! goes through SQLite's C API without copying texts ([`super::sqlite_insert`]), and the
//! rows about to be bound are prefetched ([`super::prefetch`]). Running that
//! on a dedicated thread keeps blocking calls off the async runtime, while the ingest
//! pipeline parses the next batch on the other core.
//!
//! Batches go into transactions of up to about [`COMMIT_ROWS`] rows; a transaction also
//! ends when no batch comes for [`IDLE_COMMIT`], so the write lock is held only while rows
//! flow and a concurrent load into the same file gets it in between. A batch is
//! acknowledged once inserted, and [`BulkWriter::commit`] commits the rest. The staging
//! table is never visible as a dataset until the load renames it, so these intermediate
//! commits are not a partial dataset, and a load that stops part-way rolls back its open
//! transaction when the thread closes its connection. The caller does not wait for one
//! batch before handing over the next (up to [`IN_FLIGHT`] batches are queued), so the
//! thread never idles while the caller checks the next batch; an error (of an insert or a
//! commit) is reported by the next call or by [`BulkWriter::commit`].
//!
//! Rows whose number follows the previous row's are inserted by a statement that leaves
//! the rowid to SQLite, which appends without first searching the B-tree for the number:
//! SQLite gives `max(rowid) + 1`, which is that number, as only this thread writes the
//! staging table. Runs of such rows go [`MAX_RUN_ROWS`] at a time through one multi-row
//! `INSERT`, so the per-execution cost (cursor, VM start and halt) is shared.

use crate::StoreError;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::prefetch::prefetch_rows;
use super::rules::{quote_double, ROW_COLUMN};
use super::sqlite_insert::RawInsert;
use consort_model::value::{Row, Schema};

/// Batches handed to the thread and not yet acknowledged, at most.
const IN_FLIGHT: usize = 2;

type Reply = tokio::sync::oneshot::Receiver<Result<(), String>>;

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
    pending: VecDeque<Reply>,
    /// Batches the thread has written, dropped by the caller: freeing a batch's rows is
    /// a tenth of a second per ten million rows that the writer, the load's busiest
    /// thread, need not spend.
    spent: mpsc::Receiver<Vec<(u64, Row)>>,
}

impl BulkWriter {
    /// Starts the writer thread for `staging` (which must exist) in the database at `path`.
    pub fn start(path: PathBuf, staging: &str, schema: &Schema) -> Self {
        Self::start_committing_every(path, staging, schema, COMMIT_ROWS)
    }

    /// [`BulkWriter::start`], committing every `commit_rows` rows.
    fn start_committing_every(
        path: PathBuf,
        staging: &str,
        schema: &Schema,
        commit_rows: usize,
    ) -> Self {
        let statements = Statements::new(staging, schema);
        let commit_rows = commit_rows.max(1);
        let (jobs, inbox) = mpsc::sync_channel::<Job>(IN_FLIGHT);
        // Unbounded, but it holds at most the batches in flight: each `write` empties it.
        let (spent_tx, spent) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("consort-sqlite-writer".into())
            .spawn(move || run(path, statements, commit_rows, inbox, spent_tx))
            .ok();
        Self {
            jobs: Some(jobs),
            thread,
            pending: VecDeque::new(),
            spent,
        }
    }

    /// Queues `rows` to be written (see the module docs for transactions). Returns once at most
    /// [`IN_FLIGHT`] batches are unacknowledged, with the error of any batch that failed.
    pub async fn write(&mut self, rows: Vec<(u64, Row)>) -> Result<(), StoreError> {
        self.queue(rows).await.map_err(StoreError::Database)
    }

    async fn queue(&mut self, rows: Vec<(u64, Row)>) -> Result<(), String> {
        self.spent.try_iter().for_each(drop);
        while let Some(done) = self.pending.front_mut().map(Reply::try_recv) {
            match done {
                Ok(result) => {
                    self.pending.pop_front();
                    result?;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Err(stopped()),
            }
        }
        while self.pending.len() >= IN_FLIGHT {
            self.wait_oldest().await?;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Rows(rows, reply))?;
        self.pending.push_back(answer);
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<(), String> {
        match self.pending.pop_front() {
            Some(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
            None => Ok(()),
        }
    }

    /// Stops the thread once every batch is written, with the first error of any batch.
    /// This still asks the thread, so a failure to open the database is reported even when
    /// no batch came (a load whose rows were all rejected).
    pub async fn commit(self) -> Result<(), StoreError> {
        self.finish_writing().await.map_err(StoreError::Database)
    }

    async fn finish_writing(mut self) -> Result<(), String> {
        while !self.pending.is_empty() {
            if let Err(e) = self.wait_oldest().await {
                self.stop().await;
                return Err(e);
            }
        }
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

/// The insert statements: with the row number bound first, without it, and without it
/// for [`Statements::run`] rows at once.
struct Statements {
    numbered: String,
    next: String,
    /// `None` for a dataset without columns (nothing to bind; rows go one by one).
    next_run: Option<String>,
    run: usize,
    /// Values per row.
    width: usize,
}

impl Statements {
    fn new(staging: &str, schema: &Schema) -> Self {
        let width = schema.columns.len();
        let run = (MAX_RUN_PARAMETERS / width.max(1)).clamp(1, MAX_RUN_ROWS);
        Self {
            numbered: insert_statement(staging, schema, true, 1),
            next: insert_statement(staging, schema, false, 1),
            next_run: (width > 0).then(|| insert_statement(staging, schema, false, run)),
            run,
            width,
        }
    }
}

/// Rows per multi-row insert: each execution of a statement opens and closes a cursor on
/// the table and starts and halts the VM, which one row alone pays in full.
const MAX_RUN_ROWS: usize = 32;
/// Bound parameters per multi-row insert, well below SQLite's limit (32,766).
const MAX_RUN_PARAMETERS: usize = 4096;

fn insert_statement(staging: &str, schema: &Schema, numbered: bool, rows: usize) -> String {
    let mut columns = Vec::new();
    if numbered {
        columns.push(quote_double(ROW_COLUMN));
    }
    columns.extend(schema.columns.iter().map(|c| quote_double(&c.name)));
    if columns.is_empty() {
        // A dataset without columns: each row is just its (automatic) number.
        return format!("INSERT INTO {} DEFAULT VALUES", quote_double(staging));
    }
    let params = format!("({})", vec!["?"; columns.len()].join(", "));
    let values = vec![params; rows.max(1)].join(", ");
    let columns = columns.join(", ");
    format!(
        "INSERT INTO {} ({columns}) VALUES {values}",
        quote_double(staging)
    )
}

fn run(
    path: PathBuf,
    statements: Statements,
    commit_rows: usize,
    inbox: mpsc::Receiver<Job>,
    spent: mpsc::Sender<Vec<(u64, Row)>>,
) {
    let conn = match open(&path) {
        Ok(c) => c,
        Err(e) => return answer_all(inbox, e),
    };
    let mut session = match Session::new(&conn, &statements, commit_rows) {
        Ok(s) => s,
        Err(e) => return answer_all(inbox, e),
    };
    let mut next = inbox.recv().ok();
    while let Some(job) = next.take() {
        match job {
            Job::Rows(rows, reply) => {
                let result = session.write(&rows);
                // Hand the rows back before answering, so memory stays bounded (the
                // caller empties `spent` before it queues the next batch).
                let _ = spent.send(rows);
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    return;
                }
                // Hold the write lock only while rows flow: when no batch comes for a
                // moment, commit, so another connection (a concurrent load, or its
                // rename) is not locked out while this load waits for more rows.
                next = match inbox.recv_timeout(IDLE_COMMIT) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => match session.commit() {
                        Ok(()) => inbox.recv().ok(),
                        Err(e) => return answer_all(inbox, e),
                    },
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                };
            }
            Job::Commit(reply) => {
                let _ = reply.send(session.commit());
                return;
            }
        }
    }
}

/// Answers every job still to come with `error`, so no caller waits forever.
fn answer_all(inbox: mpsc::Receiver<Job>, error: String) {
    for job in inbox {
        let reply = match job {
            Job::Rows(_, r) | Job::Commit(r) => r,
        };
        let _ = reply.send(Err(error.clone()));
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
    // The journal mode is the pool's (a rollback journal, see `SqliteStore::open`); each
    // commit syncs, as anything less risks the whole file on power loss in that mode. An
    // append touches only the B-tree's right edge and new pages, which need no journal:
    // when 16 MB of cache fills, SQLite writes the new pages out (syncing the journal only
    // at the first such spill of a transaction), so a transaction of `COMMIT_ROWS` rows
    // (about 100 MB) needs no larger cache; a larger one was only fresh memory to fault in
    // (64 MB cost the writer about 15,000 page faults per load).
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA cache_size = -16384;")
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

struct Session<'c> {
    conn: &'c Connection,
    /// One row, its number bound first.
    numbered: RawInsert<'c>,
    /// One row, numbered by SQLite.
    following: RawInsert<'c>,
    /// [`Statements::run`] rows, numbered by SQLite.
    following_run: Option<RawInsert<'c>>,
    /// The largest row number written: SQLite numbers a row `max(rowid) + 1`.
    max_row: Option<i64>,
    /// Rows written in the open transaction.
    uncommitted: usize,
    /// Rows per transaction ([`COMMIT_ROWS`] outside tests).
    commit_rows: usize,
}

/// Rows per transaction while batches keep coming: each commit creates, syncs and deletes
/// the rollback journal, syncs the directory and syncs the database, and the writer waits
/// for all of it. At one commit per 10,000-row batch that cost a tenth of the load's time,
/// and at one per 100,000 rows still about 0.3 s of waiting per ten million rows. A
/// concurrent load into the same file gets the write lock within a second.
const COMMIT_ROWS: usize = 1_000_000;

/// How long the writer waits for the next batch before it commits and releases the lock:
/// far longer than a busy pipeline takes per batch, short for another connection to wait.
const IDLE_COMMIT: Duration = Duration::from_millis(50);

impl<'c> Session<'c> {
    fn new(
        conn: &'c Connection,
        statements: &Statements,
        commit_rows: usize,
    ) -> Result<Self, String> {
        let width = statements.width;
        Ok(Self {
            conn,
            numbered: RawInsert::prepare(conn, &statements.numbered, 1, width, true)?,
            following: RawInsert::prepare(conn, &statements.next, 1, width, false)?,
            following_run: match &statements.next_run {
                Some(sql) => Some(RawInsert::prepare(conn, sql, statements.run, width, false)?),
                None => None,
            },
            max_row: None,
            uncommitted: 0,
            commit_rows,
        })
    }

    /// Inserts `rows`, inside the open transaction or a new one, and commits once the
    /// transaction holds [`COMMIT_ROWS`] rows.
    fn write(&mut self, rows: &[(u64, Row)]) -> Result<(), String> {
        if self.conn.is_autocommit() {
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| e.to_string())?;
        }
        let mut at = 0;
        while let Some((n, row)) = rows.get(at) {
            let n = i64::try_from(*n).map_err(|_| format!("row number {n} is too large"))?;
            let follows = self.max_row.and_then(|m| m.checked_add(1)) == Some(n);
            if let Some(insert) = self.following_run.as_mut().filter(|_| follows) {
                let run = insert.rows();
                if let Some(block) = consecutive_run(rows, at, run) {
                    prefetch_rows(rows, at, run);
                    insert
                        .insert(None, block.iter().map(|(_, row)| row))
                        .map_err(|e| format!("rows {n}..: {e}"))?;
                    self.max_row = Some(n + run as i64 - 1);
                    at += run;
                    continue;
                }
            }
            prefetch_rows(rows, at, PREFETCH_SINGLE);
            let result = if follows {
                self.following.insert(None, std::iter::once(row))
            } else {
                self.numbered.insert(Some(n), std::iter::once(row))
            };
            result.map_err(|e| format!("row {n}: {e}"))?;
            self.max_row = Some(self.max_row.map_or(n, |m| m.max(n)));
            at += 1;
        }
        self.uncommitted += rows.len();
        if self.uncommitted >= self.commit_rows {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the open transaction, if any.
    fn commit(&mut self) -> Result<(), String> {
        if !self.conn.is_autocommit() {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| e.to_string())?;
        }
        self.uncommitted = 0;
        Ok(())
    }
}

/// The `len` rows from `at` if there are that many and their numbers are consecutive.
fn consecutive_run(rows: &[(u64, Row)], at: usize, len: usize) -> Option<&[(u64, Row)]> {
    let block = rows.get(at..at.checked_add(len)?)?;
    let first = block.first()?.0;
    block
        .iter()
        .zip(first..)
        .all(|((n, _), expected)| *n == expected)
        .then_some(block)
}

/// Rows ahead fetched when rows go one at a time.
const PREFETCH_SINGLE: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use consort_model::value::{Column, ColumnType, Value};

    fn table(dir: &std::path::Path) -> (PathBuf, Schema) {
        let path = dir.join("load.sqlite");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(&format!(
            "CREATE TABLE t ({} INTEGER PRIMARY KEY, x INTEGER)",
            quote_double(ROW_COLUMN)
        ))
        .expect("create");
        let schema = Schema {
            columns: vec![Column {
                name: "x".into(),
                ty: ColumnType::Integer,
                nullable: true,
            }],
        };
        (path, schema)
    }

    fn rows(numbers: std::ops::Range<u64>) -> Vec<(u64, Row)> {
        numbers
            .map(|n| (n, vec![Value::Integer(n as i64 * 3)]))
            .collect()
    }

    /// A writer committing every `commit_rows` rows, after `batches` batches of 10,000
    /// consecutive rows from 0.
    async fn writer_after(
        dir: &std::path::Path,
        commit_rows: usize,
        batches: u64,
    ) -> (PathBuf, BulkWriter) {
        let (path, schema) = table(dir);
        let mut writer =
            BulkWriter::start_committing_every(path.clone(), "t", &schema, commit_rows);
        for start in (0..batches * 10_000).step_by(10_000) {
            writer
                .write(rows(start..start + 10_000))
                .await
                .expect("write");
        }
        (path, writer)
    }

    fn count_and_sum(path: &std::path::Path) -> (i64, i64) {
        let conn = Connection::open(path).expect("open");
        conn.query_row(
            &format!(
                "SELECT count(*), coalesce(sum(x - 3 * {}), 0) FROM t",
                quote_double(ROW_COLUMN)
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count")
    }

    /// Rows spread over several transactions all arrive, each under its own number.
    #[tokio::test]
    async fn loads_across_several_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut writer) = writer_after(dir.path(), 25_000, 6).await;
        writer.write(rows(60_000..60_007)).await.expect("write");
        writer.commit().await.expect("commit");
        assert_eq!(count_and_sum(&path), (60_007, 0));
    }

    /// A failure after some transactions were committed is reported, and the open
    /// transaction is rolled back: the committed rows stay for the load to drop.
    #[tokio::test]
    async fn a_failure_after_commits_rolls_back_only_the_open_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut writer) = writer_after(dir.path(), 20_000, 4).await;
        // One batch, so no idle commit can come between its good rows and the bad one.
        let mut batch = rows(40_000..40_010);
        batch.extend(rows(5..6));
        let error = match writer.write(batch).await.err() {
            Some(e) => e,
            None => writer
                .commit()
                .await
                .expect_err("a duplicate row number was accepted"),
        };
        assert!(error.to_string().contains("row 5"), "{error}");
        assert_eq!(count_and_sum(&path), (40_000, 0));
    }
}
