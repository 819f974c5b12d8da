//! The MySQL/MariaDB backend: InnoDB tables in the connection's database, `utf8mb4` text
//! with the binary collation (4-byte characters, exact comparisons), `DATETIME(6)` holding
//! UTC for timestamps, strict SQL mode on every connection so an out-of-range value is an
//! error, never a silent truncation. Values are bound in the binary protocol.
//!
//! A running load holds a named lock (`GET_LOCK`) derived from its staging table's name on
//! its own connection; [`DatasetStore::remove_staging_leftovers`] only drops staging tables
//! whose lock it can take, so it never disturbs a load running in another process. A
//! crashed load's session ends, which releases its lock.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use sqlx::mysql::{
    MySql, MySqlArguments, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow,
};
use sqlx::{Executor, Row as _};

use super::local_sql::{self, Flavor, Out, Statement};
use super::mysql_load::MySqlLoad;
use super::rules::{self, lock_name, Chunking, Rules, ROW_COLUMN, STAGING_PREFIX};
use super::sql::Dialect;
use super::{BoxFuture, DatasetStore, LocalAggregateQuery, LocalSelect, StoreError, TableLoad};
use consort_model::value::{ColumnType, Row, Schema, Value};

pub(super) const DIALECT: Dialect = Dialect {
    quote: rules::quote_backtick,
    numbered: false,
    row_column: "BIGINT NOT NULL PRIMARY KEY",
    type_name,
    table_options: " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
};

pub(super) const CHUNKING: Chunking = Chunking {
    max_params: 65535,
    max_rows: 4000,
    max_bytes: 4 << 20,
};

fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "BIGINT",
        ColumnType::Float => "DOUBLE",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Text => "LONGTEXT",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "DATETIME(6)",
    }
}

pub(super) fn db(context: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database(format!("mysql: {context}: {e}"))
}

/// A dataset store in a MySQL or MariaDB database.
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    /// Connects to the database a `mysql://` (or `mariadb://`) URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let unreachable = |reason: String| StoreError::Unreachable {
            url: rules::redact_url(url),
            reason,
        };
        let url_mysql = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_string(),
        };
        let opts =
            MySqlConnectOptions::from_str(&url_mysql).map_err(|e| unreachable(e.to_string()))?;
        rules::probe(&opts).await.map_err(unreachable)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, \
                         'STRICT_ALL_TABLES', 'NO_ENGINE_SUBSTITUTION')",
                    )
                    .await?;
                    Ok(())
                })
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The connection pool, for queries pushed down to the database.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    async fn exists(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ?",
        )
        .bind(table)
        .fetch_one(&self.pool)
        .await
        .map_err(db(format!("looking up table {table}")))?;
        Ok(n > 0)
    }

    async fn all_tables(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing tables"))?;
        names(&rows)
    }

    async fn require(&self, table: &str) -> Result<(), StoreError> {
        rules::validate_table_name(table)?;
        if self.exists(table).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(table.into()))
        }
    }

    async fn begin(&self, table: &str, schema: &Schema) -> Result<MySqlLoad, StoreError> {
        Rules::mysql().validate_schema(table, schema)?;
        if self.exists(table).await? {
            return Err(StoreError::Exists(table.into()));
        }
        let staging = rules::staging_name(table);
        let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 10)")
            .bind(lock_name(&staging))
            .fetch_one(&mut *conn)
            .await
            .map_err(db("locking the staging table"))?;
        if locked != Some(1) {
            return Err(StoreError::Database(format!(
                "mysql: cannot lock the staging table {staging}"
            )));
        }
        let mut load = MySqlLoad {
            pool: self.pool.clone(),
            conn: Some(conn),
            table: table.into(),
            staging: staging.clone(),
            schema: schema.clone(),
            insert_sql: HashMap::new(),
        };
        let sql = DIALECT.create_table(&staging, schema, "");
        let res = match load.conn.as_mut() {
            Some(c) => sqlx::query(&sql).execute(&mut **c).await,
            None => return Err(StoreError::LoadFailed(table.into())),
        };
        if let Err(e) = res {
            load.finish(true).await;
            return Err(db(format!("creating staging table for {table}"))(e));
        }
        Ok(load)
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
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db(format!("reading table {table}")))
    }
}

fn decode_row(r: &MySqlRow, schema: &Schema) -> Result<(u64, Row), sqlx::Error> {
    let n: i64 = r.try_get(0)?;
    let mut row = Vec::with_capacity(schema.columns.len());
    for (i, col) in schema.columns.iter().enumerate() {
        let i = i + 1;
        let v = match col.ty {
            ColumnType::Integer => r.try_get::<Option<i64>, _>(i)?.map(Value::Integer),
            ColumnType::Float => r.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            ColumnType::Boolean => r.try_get::<Option<bool>, _>(i)?.map(Value::Boolean),
            // utf8mb4_bin columns carry the BINARY flag, which sqlx's String check refuses.
            ColumnType::Text => r
                .try_get_unchecked::<Option<String>, _>(i)?
                .map(|s| Value::Text(s.into())),
            ColumnType::Date => r.try_get::<Option<NaiveDate>, _>(i)?.map(Value::Date),
            ColumnType::Timestamp => r
                .try_get::<Option<NaiveDateTime>, _>(i)?
                .map(|t| Value::Timestamp(t.and_utc())),
        };
        row.push(v.unwrap_or(Value::Null));
    }
    Ok((n as u64, row))
}

/// One output of a local query. Aggregates and casts change the result's SQL type
/// (`MIN` of a `BOOLEAN` is a `TINYINT`, `CAST(… AS BINARY)` a blob), so values are
/// decoded without sqlx's type check and converted here.
fn decode_out(r: &MySqlRow, i: usize, out: Out) -> Result<Value, sqlx::Error> {
    let ty = match out {
        Out::Typed(ty) => ty,
        Out::Count => ColumnType::Integer,
        Out::Float => ColumnType::Float,
        Out::IntSum => {
            let s = r.try_get_unchecked::<Option<String>, _>(i)?;
            return local_sql::parse_int_sum(s).map_err(|e| sqlx::Error::Decode(e.into()));
        }
    };
    let v = match ty {
        ColumnType::Integer => r
            .try_get_unchecked::<Option<i64>, _>(i)?
            .map(Value::Integer),
        ColumnType::Float => r.try_get_unchecked::<Option<f64>, _>(i)?.map(Value::Float),
        ColumnType::Boolean => r
            .try_get_unchecked::<Option<i64>, _>(i)?
            .map(|b| Value::Boolean(b != 0)),
        ColumnType::Text => r
            .try_get_unchecked::<Option<String>, _>(i)?
            .map(|s| Value::Text(s.into())),
        ColumnType::Date => r
            .try_get_unchecked::<Option<NaiveDate>, _>(i)?
            .map(Value::Date),
        ColumnType::Timestamp => r
            .try_get_unchecked::<Option<NaiveDateTime>, _>(i)?
            .map(|t| Value::Timestamp(t.and_utc())),
    };
    Ok(v.unwrap_or(Value::Null))
}

impl MySqlStore {
    async fn run(&self, table: &str, st: &Statement, skip: usize) -> Result<Vec<Row>, StoreError> {
        let mut q = sqlx::query(&st.sql);
        for p in &st.params {
            let ty = p.column_type().unwrap_or(ColumnType::Integer);
            q = bind_value(q, ty, p);
        }
        let context = || format!("querying table {table}");
        let rows = q.fetch_all(&self.pool).await.map_err(db(context()))?;
        rows.iter()
            .map(|r| {
                st.outputs
                    .iter()
                    .enumerate()
                    .map(|(i, o)| decode_out(r, i + skip, *o))
                    .collect::<Result<Row, sqlx::Error>>()
            })
            .collect::<Result<Vec<Row>, sqlx::Error>>()
            .map_err(db(context()))
    }

    async fn local_aggregate(
        &self,
        table: &str,
        schema: &Schema,
        query: &LocalAggregateQuery,
    ) -> Result<Vec<Row>, StoreError> {
        let (st, groups) = local_sql::prepare_aggregate(Flavor::Mysql, table, schema, query)?;
        self.require(table).await?;
        local_sql::finish_aggregate(table, self.run(table, &st, 0).await?, groups)
    }

    async fn local_select(
        &self,
        table: &str,
        schema: &Schema,
        query: &LocalSelect,
    ) -> Result<Vec<Row>, StoreError> {
        let st = local_sql::prepare_select(Flavor::Mysql, table, schema, query)?;
        self.require(table).await?;
        self.run(table, &st, 1).await
    }
}

pub(super) type MyQuery<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

pub(super) fn bind_value<'q>(q: MyQuery<'q>, ty: ColumnType, v: &'q Value) -> MyQuery<'q> {
    match v {
        Value::Null => match ty {
            ColumnType::Integer => q.bind(None::<i64>),
            ColumnType::Float => q.bind(None::<f64>),
            ColumnType::Boolean => q.bind(None::<bool>),
            ColumnType::Text => q.bind(None::<&str>),
            ColumnType::Date => q.bind(None::<NaiveDate>),
            ColumnType::Timestamp => q.bind(None::<NaiveDateTime>),
        },
        Value::Integer(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Boolean(b) => q.bind(*b),
        Value::Text(s) => q.bind(s.as_str()),
        Value::Date(d) => q.bind(*d),
        Value::Timestamp(t) => q.bind(t.naive_utc()),
    }
}

impl DatasetStore for MySqlStore {
    fn backend(&self) -> &'static str {
        "mysql"
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
            let rows = sqlx::query(
                "SELECT table_name FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND column_name = ?",
            )
            .bind(ROW_COLUMN)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing tables"))?;
            Ok(names(&rows)?
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
            let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
            let mut removed = 0;
            for name in self.all_tables().await? {
                if !name.starts_with(STAGING_PREFIX) {
                    continue;
                }
                let key = lock_name(&name);
                let free: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
                    .bind(&key)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db("locking a staging table"))?;
                if free != Some(1) {
                    continue; // a running load
                }
                let res = sqlx::query(&DIALECT.drop_table(&name))
                    .execute(&mut *conn)
                    .await;
                let _ = sqlx::query("DO RELEASE_LOCK(?)")
                    .bind(&key)
                    .execute(&mut *conn)
                    .await;
                res.map_err(db(format!("dropping staging table {name}")))?;
                removed += 1;
            }
            Ok(removed)
        })
    }
}

fn names(rows: &[MySqlRow]) -> Result<Vec<String>, StoreError> {
    let mut out = rows
        .iter()
        .map(|r| r.try_get_unchecked::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db("listing tables"))?;
    out.sort();
    Ok(out)
}
