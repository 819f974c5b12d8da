//! The SQLite backend, the embedded default: one pool (64 KiB pages, rollback journal,
//! `synchronous=FULL`, a busy timeout) for queries, and a bulk writer thread with its own connection for loads
//! ([`super::sqlite_writer`]). Dates and timestamps are fixed-width RFC 3339 text, booleans
//! 0/1, and the row number is the rowid (`INTEGER PRIMARY KEY`). The database must be a
//! file: an in-memory SQLite database is private to one connection.
//!
//! Liveness of loads is tracked in a process-wide registry, so
//! [`DatasetStore::remove_staging_leftovers`] never drops the staging table of a load
//! running in this process. (An SQLite file belongs to one member's node process.)

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row as _;

use super::local_sql::{self, Flavor, Out, Statement};
use super::rules::{self, Rules, ROW_COLUMN, STAGING_PREFIX};
use super::sql::Dialect;
use super::sqlite_load::SqliteLoad;
use super::sqlite_writer::BulkWriter;
use super::{BoxFuture, DatasetStore, LocalAggregateQuery, LocalSelect, StoreError, TableLoad};
use consort_model::value::{ColumnType, Row, Schema, Value};

pub(super) const DIALECT: Dialect = Dialect {
    quote: rules::quote_double,
    numbered: false,
    row_column: "INTEGER PRIMARY KEY",
    type_name,
    table_options: "",
};

/// Column type names. Dates and timestamps are declared with TEXT affinity (SQLite takes
/// the affinity from the words of the name): with the NUMERIC affinity of a bare `DATE`,
/// SQLite tried to read every stored date as a number first. Both compare and sort the
/// stored text the same way, also against bound text.
fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "BIGINT",
        ColumnType::Float => "DOUBLE PRECISION",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Text => "TEXT",
        ColumnType::Date => "DATE TEXT",
        ColumnType::Timestamp => "TIMESTAMP TEXT",
    }
}

/// Staging tables of loads running in this process.
static LIVE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

pub(super) fn live_set(f: impl FnOnce(&mut HashSet<String>) -> bool) -> bool {
    let mut g = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashSet::new))
}

pub(super) fn db(context: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database(format!("sqlite: {context}: {e}"))
}

/// How long opening the database retries while another connection holds it locked.
const OPEN_RETRY_LIMIT: Duration = Duration::from_secs(30);

/// SQLITE_BUSY and its extended codes (the low byte is the primary result code).
fn is_locked(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5 || c & 0xff == 6),
        _ => false,
    }
}

/// A dataset store in an SQLite database file.
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (with `?mode=rwc`, creates) the database a `sqlite:` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let unreachable = |reason: String| StoreError::Unreachable {
            url: rules::redact_url(url),
            reason,
        };
        let opts = SqliteConnectOptions::from_str(url).map_err(|e| unreachable(e.to_string()))?;
        let path = opts.get_filename().to_path_buf();
        if path.as_os_str() == ":memory:" || url.contains("mode=memory") {
            return Err(StoreError::UnsupportedUrl(format!(
                "{} (an in-memory SQLite database is private to one connection; use memory: for an in-memory store)",
                rules::redact_url(url)
            )));
        }
        let opts = opts
            // Only takes effect when the file is created (SQLite fixes the page size then).
            // Large pages make bulk loads about a third cheaper (fewer pages to allocate,
            // link and balance per row) and suit the full scans queries push down.
            .page_size(65536)
            // A rollback journal, not WAL: a load appends pages to a new table, which a
            // rollback journal writes once, where WAL writes every page twice (into the
            // log, then into the file at each checkpoint, with syncs in between). On a
            // 1 GB load the disk, not the CPU, was the limit. The price is that a commit
            // briefly excludes readers (they wait, within the busy timeout). FULL, as
            // NORMAL is only safe against power loss with WAL.
            .journal_mode(SqliteJournalMode::Delete)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .pragma("temp_store", "memory")
            // Owner-local queries need a case-sensitive LIKE on every connection (see
            // local_sql.rs); SQLite's default LIKE folds ASCII case.
            .pragma("case_sensitive_like", "ON")
            .pragma("cache_size", "-32768");
        // Two processes opening one file can race to switch its journal mode (a file
        // made by an earlier version is in WAL mode), and SQLite answers the loser
        // SQLITE_BUSY without consulting the busy handler. The race is over within
        // milliseconds, so a bounded retry resolves it.
        let deadline = std::time::Instant::now() + OPEN_RETRY_LIMIT;
        let pool = loop {
            let attempt = SqlitePoolOptions::new()
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        let mut handle = conn.lock_handle().await?;
                        super::sqlite_functions::register(handle.as_raw_handle())
                            .map_err(|e| sqlx::Error::Configuration(e.into()))
                    })
                })
                .max_connections(4)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(opts.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if is_locked(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => return Err(unreachable(e.to_string())),
            }
        };
        Ok(Self { pool, path })
    }

    /// The connection pool, for queries pushed down to the database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn exists(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
        )
        .bind(table)
        .fetch_one(&self.pool)
        .await
        .map_err(db(format!("looking up table {table}")))?;
        Ok(n > 0)
    }

    async fn all_tables(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing tables"))
    }

    async fn require(&self, table: &str) -> Result<(), StoreError> {
        rules::validate_table_name(table)?;
        if self.exists(table).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(table.into()))
        }
    }

    async fn begin(&self, table: &str, schema: &Schema) -> Result<SqliteLoad, StoreError> {
        Rules::sqlite().validate_schema(table, schema)?;
        if self.exists(table).await? {
            return Err(StoreError::Exists(table.into()));
        }
        let staging = rules::staging_name(table);
        live_set(|s| s.insert(staging.clone()));
        let mut load = SqliteLoad {
            pool: self.pool.clone(),
            conn: None,
            writer: None,
            table: table.into(),
            staging: staging.clone(),
            schema: schema.clone(),
        };
        let created = async {
            let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
            sqlx::query(&DIALECT.create_table(&staging, schema, ""))
                .execute(&mut *conn)
                .await
                .map_err(db(format!("creating staging table for {table}")))?;
            Ok::<_, StoreError>(conn)
        }
        .await;
        match created {
            Ok(conn) => {
                load.conn = Some(conn);
                load.writer = Some(BulkWriter::start(self.path.clone(), &staging, schema));
                Ok(load)
            }
            Err(e) => {
                load.finish(true).await;
                Err(e)
            }
        }
    }

    async fn read(
        &self,
        table: &str,
        schema: &Schema,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Row)>, StoreError> {
        self.require(table).await?;
        let Some((after, limit)) = rules::page_bounds(after, limit) else {
            return Ok(Vec::new());
        };
        let sql = DIALECT.select_page(table, schema, after.is_some());
        let mut q = sqlx::query(&sql);
        if let Some(a) = after {
            q = q.bind(a);
        }
        let rows = q
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db(format!("reading table {table}")))?;
        rows.iter()
            .map(|r| decode_row(r, schema))
            .collect::<Result<_, String>>()
            .map_err(|e| StoreError::Database(format!("sqlite: reading table {table}: {e}")))
    }
}

fn decode_row(r: &SqliteRow, schema: &Schema) -> Result<(u64, Row), String> {
    let n: i64 = r.try_get_unchecked(0).map_err(|e| e.to_string())?;
    let mut row = Vec::with_capacity(schema.columns.len());
    for (i, col) in schema.columns.iter().enumerate() {
        row.push(
            decode_value(r, i + 1, col.ty).map_err(|e| format!("column {:?}: {e}", col.name))?,
        );
    }
    Ok((n as u64, row))
}

/// One value of a column type as SQLite returns it.
fn decode_value(r: &SqliteRow, i: usize, ty: ColumnType) -> Result<Value, String> {
    let err = |e: sqlx::Error| e.to_string();
    let bad = |what: &str| format!("bad stored {what}");
    let v = match ty {
        ColumnType::Integer => r
            .try_get_unchecked::<Option<i64>, _>(i)
            .map_err(err)?
            .map(Value::Integer),
        ColumnType::Float => r
            .try_get_unchecked::<Option<f64>, _>(i)
            .map_err(err)?
            .map(Value::Float),
        ColumnType::Boolean => match r.try_get_unchecked::<Option<i64>, _>(i).map_err(err)? {
            None => None,
            Some(0) => Some(Value::Boolean(false)),
            Some(1) => Some(Value::Boolean(true)),
            Some(_) => return Err(bad("boolean")),
        },
        ColumnType::Text => r
            .try_get_unchecked::<Option<String>, _>(i)
            .map_err(err)?
            .map(|s| Value::Text(s.into())),
        ColumnType::Date => match r.try_get_unchecked::<Option<String>, _>(i).map_err(err)? {
            None => None,
            Some(s) => Some(Value::Date(
                NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| bad("date"))?,
            )),
        },
        ColumnType::Timestamp => match r.try_get_unchecked::<Option<String>, _>(i).map_err(err)? {
            None => None,
            Some(s) => Some(Value::Timestamp(
                NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.fZ")
                    .map_err(|_| bad("timestamp"))?
                    .and_utc(),
            )),
        },
    };
    Ok(v.unwrap_or(Value::Null))
}

/// One output of a local query.
fn decode_out(r: &SqliteRow, i: usize, out: Out) -> Result<Value, String> {
    match out {
        Out::Typed(ty) => decode_value(r, i, ty),
        Out::Count | Out::IntSum => decode_value(r, i, ColumnType::Integer),
        Out::Float => decode_value(r, i, ColumnType::Float),
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds a query parameter: dates and timestamps as the fixed-width text stored.
fn bind_param<'q>(q: SqliteQuery<'q>, v: &'q Value) -> SqliteQuery<'q> {
    match v {
        Value::Null => q.bind(None::<i64>),
        Value::Integer(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Boolean(b) => q.bind(*b),
        Value::Text(s) => q.bind(s.as_str()),
        Value::Date(d) => q.bind(d.format("%Y-%m-%d").to_string()),
        Value::Timestamp(t) => q.bind(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    }
}

impl SqliteStore {
    async fn run(&self, table: &str, st: &Statement, skip: usize) -> Result<Vec<Row>, StoreError> {
        let mut q = sqlx::query(&st.sql);
        for p in &st.params {
            q = bind_param(q, p);
        }
        let context = || format!("querying table {table}");
        let rows = q.fetch_all(&self.pool).await.map_err(db(context()))?;
        rows.iter()
            .map(|r| {
                st.outputs
                    .iter()
                    .enumerate()
                    .map(|(i, o)| decode_out(r, i + skip, *o))
                    .collect::<Result<Row, String>>()
            })
            .collect::<Result<Vec<Row>, String>>()
            .map_err(|e| StoreError::Database(format!("sqlite: {}: {e}", context())))
    }

    async fn local_aggregate(
        &self,
        table: &str,
        schema: &Schema,
        query: &LocalAggregateQuery,
    ) -> Result<Vec<Row>, StoreError> {
        let (st, groups) = local_sql::prepare_aggregate(Flavor::Sqlite, table, schema, query)?;
        self.require(table).await?;
        local_sql::finish_aggregate(table, self.run(table, &st, 0).await?, groups)
    }

    async fn local_select(
        &self,
        table: &str,
        schema: &Schema,
        query: &LocalSelect,
    ) -> Result<Vec<Row>, StoreError> {
        let st = local_sql::prepare_select(Flavor::Sqlite, table, schema, query)?;
        self.require(table).await?;
        self.run(table, &st, 1).await
    }
}

impl DatasetStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn begin_load<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
    ) -> BoxFuture<'a, Result<Box<dyn TableLoad + 'a>, StoreError>> {
        Box::pin(async move {
            let load = self.begin(table, schema).await?;
            Ok(Box::new(load) as Box<dyn TableLoad + 'a>)
        })
    }

    fn read_rows<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        after_row: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(u64, Row)>, StoreError>> {
        Box::pin(self.read(table, schema, after_row, limit))
    }

    fn aggregate<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        query: &'a LocalAggregateQuery,
    ) -> BoxFuture<'a, Result<Vec<Row>, StoreError>> {
        Box::pin(self.local_aggregate(table, schema, query))
    }

    fn select<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        query: &'a LocalSelect,
    ) -> BoxFuture<'a, Result<Vec<Row>, StoreError>> {
        Box::pin(self.local_select(table, schema, query))
    }

    fn row_count<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.require(table).await?;
            let n: i64 = sqlx::query_scalar(&DIALECT.count(table))
                .fetch_one(&self.pool)
                .await
                .map_err(db(format!("counting rows of {table}")))?;
            Ok(n as u64)
        })
    }

    fn table_exists<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            self.exists(table).await
        })
    }

    fn drop_table<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.require(table).await?;
            sqlx::query(&DIALECT.drop_table(table))
                .execute(&self.pool)
                .await
                .map_err(db(format!("dropping table {table}")))?;
            Ok(())
        })
    }

    fn list_tables<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' AND EXISTS \
                 (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = ?1) ORDER BY m.name",
            )
            .bind(ROW_COLUMN)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing tables"))?;
            Ok(names
                .into_iter()
                .filter(|n| !n.starts_with(STAGING_PREFIX))
                .collect())
        })
    }

    fn list_staging_tables<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let all = self.all_tables().await?;
            Ok(all
                .into_iter()
                .filter(|n| n.starts_with(STAGING_PREFIX))
                .collect())
        })
    }

    fn remove_staging_leftovers<'a>(&'a self) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut removed = 0;
            for name in self.all_tables().await? {
                if !name.starts_with(STAGING_PREFIX) || live_set(|s| s.contains(&name)) {
                    continue;
                }
                sqlx::query(&DIALECT.drop_table(&name))
                    .execute(&self.pool)
                    .await
                    .map_err(db(format!("dropping staging table {name}")))?;
                removed += 1;
            }
            Ok(removed)
        })
    }
}
