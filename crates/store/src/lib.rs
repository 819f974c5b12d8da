//! Dataset storage backends: one object-safe trait, [`DatasetStore`], with four
//! implementations that pass the same conformance suite ([`conformance::run_all`]):
//! SQLite ([`SqliteStore`], the embedded default), PostgreSQL ([`PgStore`]),
//! MySQL/MariaDB ([`MySqlStore`]) and an in-memory store ([`MemStore`]) for unit tests of
//! the layers above.
//!
//! # Tables
//!
//! Every dataset is a real table with one typed column per schema column plus a hidden
//! `_consort_row` primary-key column holding the row number. Rows are read back ordered by
//! it; that order defines the dataset commitment. Table names are `[A-Za-z0-9_]{1,63}`, may
//! not start with `_consort_` (reserved) or `sqlite_`. Column names are arbitrary UTF-8
//! (keywords, quotes, semicolons, spaces): they are always quoted, never spliced raw, and
//! values are always bound, never spliced.
//!
//! | column type | SQLite                       | PostgreSQL         | MySQL/MariaDB          |
//! |-------------|------------------------------|--------------------|------------------------|
//! | row number  | `INTEGER PRIMARY KEY` (rowid)| `BIGINT PRIMARY KEY` | `BIGINT PRIMARY KEY` |
//! | integer     | `BIGINT`                     | `BIGINT`           | `BIGINT`               |
//! | float       | `DOUBLE PRECISION` (REAL)    | `DOUBLE PRECISION` | `DOUBLE`               |
//! | boolean     | `BOOLEAN` (0/1)              | `BOOLEAN`          | `BOOLEAN` (TINYINT(1)) |
//! | text        | `TEXT`                       | `TEXT`             | `LONGTEXT` utf8mb4_bin |
//! | date        | `DATE`: text `YYYY-MM-DD`    | `DATE`             | `DATE`                 |
//! | timestamp   | `TIMESTAMP`: text `YYYY-MM-DDTHH:MM:SS.ffffffZ` | `TIMESTAMPTZ` | `DATETIME(6)` (UTC) |
//!
//! Non-nullable schema columns are `NOT NULL`. SQLite stores dates and timestamps as
//! fixed-width RFC 3339 text (always six fractional digits and `Z`), which sorts
//! chronologically and is understood by SQLite's date functions.
//!
//! # Value limits (checked before anything reaches the database)
//!
//! - Integers: the whole `i64` range. Row numbers: `0..=i64::MAX`.
//! - Floats: every finite `f64` round-trips bit-exactly, except that `-0.0` may come back
//!   as `0.0` (SQLite and MariaDB normalise it). NaN and infinities are refused.
//! - Text: any UTF-8 except NUL (`\0`), which PostgreSQL cannot store; it is refused on
//!   every backend so all backends hold the same data.
//! - Dates and timestamps: `0001-01-01 ..= 9999-12-31` (MySQL/MariaDB: from `1000-01-01`,
//!   the documented range of `DATE`/`DATETIME`). Timestamps are UTC with microsecond
//!   precision; a value with sub-microsecond nanoseconds is refused rather than truncated.
//! - Column names: non-empty, no NUL, not `_consort_row`, unique (case-insensitively on
//!   SQLite, MySQL and the memory store); PostgreSQL at most 63 bytes; MySQL at most 64
//!   characters, Basic Multilingual Plane only, no trailing space.
//!
//! A refused value is a [`StoreError::UnsupportedValue`] naming the table, column and row.
//!
//! # Loads
//!
//! [`DatasetStore::begin_load`] creates a staging table `_consort_staging_<random>_<table>`;
//! each [`TableLoad::insert`] call is written by prepared multi-row `INSERT`s (respecting
//! the backends' bind-parameter limits) in one transaction, or for SQLite in transactions
//! of up to about 1,000,000 rows that span calls; [`TableLoad::commit`] renames the
//! staging table to its final name in one statement, failing with [`StoreError::Exists`] if
//! the final table exists. Any failed insert removes the staging table at once, so a failed
//! load leaves nothing behind; [`TableLoad::abort`] does the same, and dropping a load
//! without committing removes it in the background (best effort). Staging tables left by a
//! crash are removed by [`DatasetStore::remove_staging_leftovers`]; it never touches a load
//! that is still running (PostgreSQL advisory locks and MySQL named locks held by the
//! load's connection; for SQLite and memory, a registry of this process's live loads).
//!
//! # Owner-local queries
//!
//! [`DatasetStore::aggregate`] and [`DatasetStore::select`] run a joint query's local part
//! ([`LocalAggregateQuery`], [`LocalSelect`]) in the owner's database. The query is
//! checked against the schema first (`local_check.rs`: unknown column →
//! [`StoreError::InvalidName`], misfit literal or aggregate → [`StoreError::InvalidQuery`]);
//! the SQL backends then render it (`local_sql.rs`) with quoted identifiers and bound
//! literals only. All backends agree with the memory store's plain evaluator: SQL
//! three-valued logic, code-point text order and exact text equality (no PAD SPACE),
//! case-sensitive `LIKE` without an escape character, group rows sorted NULL first.

mod local_check;
mod local_eval;
mod local_sql;
mod memory;
mod mysql;
mod mysql_load;
mod postgres;
mod prefetch;
mod rules;
mod scalar_eval;
mod scalar_funcs;
mod scalar_sql;
mod scalar_sql_funcs;
mod sql;
mod sqlite;
mod sqlite_functions;
mod sqlite_insert;
mod sqlite_load;
mod sqlite_text;
mod sqlite_values;
mod sqlite_writer;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
mod conformance_agg;
#[cfg(any(test, feature = "testing"))]
mod conformance_data;
#[cfg(any(test, feature = "testing"))]
mod conformance_expr;
#[cfg(any(test, feature = "testing"))]
mod conformance_funcs;
#[cfg(any(test, feature = "testing"))]
mod conformance_query;
#[cfg(any(test, feature = "testing"))]
pub mod reference;

use std::sync::Arc;

pub use futures::future::BoxFuture;

pub use consort_model::local_query::{
    CmpOp, LocalAggregate, LocalAggregateQuery, LocalSelect, Predicate,
};
pub use memory::MemStore;
pub use mysql::MySqlStore;
pub use postgres::PgStore;
pub use rules::{quote_backtick, quote_double, validate_table_name, ROW_COLUMN, STAGING_PREFIX};
pub use sqlite::SqliteStore;

/// Errors of the storage backends.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused an operation; the message says which and why.
    #[error("database: {0}")]
    Database(String),
    /// A table or column name that cannot be used (also a query naming a column that
    /// is not in the schema).
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A local query that does not fit the schema: a literal of the wrong type, `SUM` of
    /// a text column, `LIKE` on a non-text column, … The message names the column.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The dataset table already exists.
    #[error("dataset table {0} already exists")]
    Exists(String),
    /// The dataset table does not exist.
    #[error("dataset table {0} does not exist")]
    NotFound(String),
    /// A value the backend cannot store exactly.
    #[error("table {table}, column {column:?}, row {row}: {reason}")]
    UnsupportedValue {
        table: String,
        column: String,
        row: u64,
        reason: String,
    },
    /// A row that does not fit the schema (wrong number of values, bad row number).
    #[error("table {table}, row {row}: {reason}")]
    InvalidRow {
        table: String,
        row: u64,
        reason: String,
    },
    /// The load cannot go on: an earlier step failed and the staging table was removed.
    #[error("load of table {0} already failed or finished; its staging table was removed")]
    LoadFailed(String),
    /// The database cannot be reached (the URL is shown without its password).
    #[error("cannot reach the database at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A database URL with a scheme no backend serves.
    #[error(
        "unsupported database URL {0:?}: expected sqlite://, postgres://, mysql:// or memory:"
    )]
    UnsupportedUrl(String),
}

impl StoreError {
    /// The same error, its message prefixed with what was being done (database errors
    /// only; the others already name their table).
    pub(crate) fn in_context(self, doing: &str) -> Self {
        match self {
            StoreError::Database(reason) => StoreError::Database(format!("{doing}: {reason}")),
            other => other,
        }
    }
}

/// A member's dataset store. Object-safe: the node holds an `Arc<dyn DatasetStore>`.
pub trait DatasetStore: Send + Sync {
    /// `"sqlite"`, `"postgres"`, `"mysql"` or `"memory"`.
    fn backend(&self) -> &'static str;

    /// Starts loading a new table. Fails with [`StoreError::Exists`] if it already exists.
    fn begin_load<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
    ) -> BoxFuture<'a, Result<Box<dyn TableLoad + 'a>, StoreError>>;

    /// Up to `limit` rows with a row number greater than `after_row` (all rows when
    /// `None`), ordered by row number. Page with the last row number returned.
    fn read_rows<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        after_row: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(u64, Row)>, StoreError>>;

    /// Runs an owner-local aggregate query (see [`LocalAggregateQuery`]): group values
    /// then aggregates per row, sorted by the group values with NULL first; without
    /// `group_by` exactly one row, even over no rows. `COUNT` is an Integer; `SUM` an
    /// Integer for an integer column (an overflow of 64 bits is an error, never a
    /// wrap) or a Float; `SUM_SQUARES` a Float; `MIN`/`MAX` of the column's type; NULL
    /// where SQL gives NULL. The query is checked against `schema` before any SQL runs:
    /// an unknown column is [`StoreError::InvalidName`], a literal or aggregate that
    /// does not fit its column [`StoreError::InvalidQuery`].
    fn aggregate<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        query: &'a LocalAggregateQuery,
    ) -> BoxFuture<'a, Result<Vec<Row>, StoreError>>;

    /// Runs an owner-local selection (see [`LocalSelect`]): the chosen columns of the
    /// rows the filter keeps, in row-number order, typed as [`DatasetStore::read_rows`]
    /// returns them. Checked like [`DatasetStore::aggregate`].
    fn select<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        query: &'a LocalSelect,
    ) -> BoxFuture<'a, Result<Vec<Row>, StoreError>>;

    /// The number of rows of a table.
    fn row_count<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Whether a dataset table exists.
    fn table_exists<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Drops a dataset table; [`StoreError::NotFound`] if it does not exist.
    fn drop_table<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The dataset tables (those with a `_consort_row` column), sorted, without staging
    /// tables.
    fn list_tables<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// The staging tables present, of running loads and of crashed ones, sorted.
    fn list_staging_tables<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Drops the staging tables left by loads that crashed or were abandoned, never those
    /// of running loads; returns how many were dropped. Call it at start-up.
    fn remove_staging_leftovers<'a>(&'a self) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// A load in progress into a staging table.
pub trait TableLoad: Send {
    /// Inserts `(row number, row)` pairs, in one transaction or (SQLite) in transactions
    /// that span calls. On any error the staging table is removed and the load is over:
    /// later calls fail with [`StoreError::LoadFailed`]. A backend may return before the
    /// rows are written and report their failure from a later call or from
    /// [`TableLoad::commit`]. The rows are taken by value so a backend may hand them to a
    /// writer thread without copying.
    fn insert(&mut self, rows: Vec<(u64, Row)>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Makes the table appear atomically and complete under its final name; fails with
    /// [`StoreError::Exists`] (removing the staging table) if the name was taken meanwhile.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Removes the staging table: nothing remains.
    fn abort(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// The name of the staging table.
    fn staging_table(&self) -> &str;

    /// Test hook: ends the load as a crash would, releasing its connection and liveness
    /// marks but leaving its staging table for [`DatasetStore::remove_staging_leftovers`].
    #[doc(hidden)]
    fn abandon(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// Opens the store a URL names: `sqlite://PATH?mode=rwc` (a file; `sqlite::memory:` is refused),
/// `postgres://…` / `postgresql://…`, `mysql://…` / `mariadb://…`, or `memory:`.
/// A server that cannot be reached is [`StoreError::Unreachable`].
pub async fn open_store(url: &str) -> Result<Arc<dyn DatasetStore>, StoreError> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    Ok(match scheme.as_str() {
        "memory" => Arc::new(MemStore::new()),
        "sqlite" => Arc::new(SqliteStore::open(url).await?),
        "postgres" | "postgresql" => Arc::new(PgStore::open(url).await?),
        "mysql" | "mariadb" => Arc::new(MySqlStore::open(url).await?),
        _ => return Err(StoreError::UnsupportedUrl(rules::redact_url(url))),
    })
}

use consort_model::value::{Row, Schema};
