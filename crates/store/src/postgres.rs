//! The PostgreSQL backend: tables in the connection's current schema, `TIMESTAMPTZ` for
//! timestamps, values bound in the binary protocol (exact floats, microsecond timestamps).
//!
//! A running load holds a session-level advisory lock keyed by its staging table's name on
//! its own connection; [`DatasetStore::remove_staging_leftovers`] only drops staging tables
//! whose lock it can take, so it never disturbs a load running in another process. A
//! crashed load's session ends, which releases its lock.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::{Connection, Row as _};

use super::local_sql::{self, Flavor, Out, Statement};
use super::rules::{self, lock_key, plan_chunks, Chunking, Rules, ROW_COLUMN, STAGING_PREFIX};
use super::sql::Dialect;
use super::{BoxFuture, DatasetStore, LocalAggregateQuery, LocalSelect, StoreError, TableLoad};
use consort_model::value::{ColumnType, Row, Schema, Value};

const DIALECT: Dialect = Dialect {
    quote: rules::quote_double,
    numbered: true,
    row_column: "BIGINT NOT NULL",
    type_name,
    table_options: "",
};

const CHUNKING: Chunking = Chunking {
    max_params: 65535,
    max_rows: 4000,
    max_bytes: 16 << 20,
};

fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "BIGINT",
        ColumnType::Float => "DOUBLE PRECISION",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Text => "TEXT",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "TIMESTAMPTZ",
    }
}

fn db(context: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database(format!("postgres: {context}: {e}"))
}

/// A dataset store in a PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
}

/// Functions of row expressions that PostgreSQL would otherwise answer with an error where
/// the other backends give NULL (`sqrt` of a negative number, `ln` of zero or less). They
/// live in the session's own `pg_temp` schema: created on every new connection, gone with
/// it, nothing left in the member's database.
const SESSION_FUNCTIONS: [&str; 3] = [
    "CREATE FUNCTION pg_temp.consort_sqrt(x double precision) RETURNS double precision \
        LANGUAGE sql IMMUTABLE AS 'SELECT CASE WHEN x < 0 THEN NULL ELSE sqrt(x) END'",
    "CREATE FUNCTION pg_temp.consort_ln(x double precision) RETURNS double precision \
        LANGUAGE sql IMMUTABLE AS 'SELECT CASE WHEN x <= 0 THEN NULL ELSE ln(x) END'",
    // POWER: NULL out of the domain; a result too small for a float is 0 (PostgreSQL
    // raises "underflow" where MySQL and the reference give 0); overflow stays an error.
    "CREATE FUNCTION pg_temp.consort_power(x double precision, y double precision) \
        RETURNS double precision LANGUAGE plpgsql IMMUTABLE STRICT AS $$ \
        BEGIN \
          IF (x = 0 AND y < 0) OR (x < 0 AND y <> floor(y)) THEN RETURN NULL; END IF; \
          RETURN power(x, y); \
        EXCEPTION WHEN numeric_value_out_of_range THEN \
          IF (abs(x) < 1) = (y > 0) THEN RETURN 0; END IF; \
          RAISE; \
        END $$",
];

impl PgStore {
    /// Connects to the database a `postgres://` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let unreachable = |reason: String| StoreError::Unreachable {
            url: rules::redact_url(url),
            reason,
        };
        let opts = PgConnectOptions::from_str(url).map_err(|e| unreachable(e.to_string()))?;
        rules::probe(&opts).await.map_err(unreachable)?;
        let pool = PgPoolOptions::new()
            .after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    for function in SESSION_FUNCTIONS {
                        conn.execute(function).await?;
                    }
                    Ok(())
                })
            })
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The connection pool, for queries pushed down to the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn exists(&self, table: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() AND tablename = $1)",
        )
        .bind(table)
        .fetch_one(&self.pool)
        .await
        .map_err(db(format!("looking up table {table}")))
    }

    async fn all_tables(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT tablename::text FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() ORDER BY 1",
        )
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

    async fn begin(&self, table: &str, schema: &Schema) -> Result<PgLoad, StoreError> {
        Rules::postgres().validate_schema(table, schema)?;
        if self.exists(table).await? {
            return Err(StoreError::Exists(table.into()));
        }
        let staging = rules::staging_name(table);
        let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(lock_key(&staging))
            .execute(&mut *conn)
            .await
            .map_err(db("locking the staging table"))?;
        let mut load = PgLoad {
            pool: self.pool.clone(),
            conn: Some(conn),
            table: table.into(),
            staging: staging.clone(),
            schema: schema.clone(),
            insert_sql: HashMap::new(),
        };
        let pk = format!(
            ", CONSTRAINT {} PRIMARY KEY ({})",
            rules::quote_double(&format!("_consort_pk_{}", rules::random_hex(16))),
            rules::quote_double(ROW_COLUMN)
        );
        let sql = DIALECT.create_table(&staging, schema, &pk);
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

fn decode_row(r: &PgRow, schema: &Schema) -> Result<(u64, Row), sqlx::Error> {
    let n: i64 = r.try_get(0)?;
    let mut row = Vec::with_capacity(schema.columns.len());
    for (i, col) in schema.columns.iter().enumerate() {
        row.push(decode_value(r, i + 1, col.ty)?);
    }
    Ok((n as u64, row))
}

fn decode_value(r: &PgRow, i: usize, ty: ColumnType) -> Result<Value, sqlx::Error> {
    let v = match ty {
        ColumnType::Integer => r.try_get::<Option<i64>, _>(i)?.map(Value::Integer),
        ColumnType::Float => r.try_get::<Option<f64>, _>(i)?.map(Value::Float),
        ColumnType::Boolean => r.try_get::<Option<bool>, _>(i)?.map(Value::Boolean),
        ColumnType::Text => r
            .try_get::<Option<String>, _>(i)?
            .map(|s| Value::Text(s.into())),
        ColumnType::Date => r.try_get::<Option<NaiveDate>, _>(i)?.map(Value::Date),
        ColumnType::Timestamp => r
            .try_get::<Option<DateTime<Utc>>, _>(i)?
            .map(Value::Timestamp),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// One output of a local query.
fn decode_out(r: &PgRow, i: usize, out: Out) -> Result<Value, String> {
    match out {
        Out::Typed(ty) => decode_value(r, i, ty).map_err(|e| e.to_string()),
        Out::Count => decode_value(r, i, ColumnType::Integer).map_err(|e| e.to_string()),
        Out::Float => decode_value(r, i, ColumnType::Float).map_err(|e| e.to_string()),
        Out::IntSum => local_sql::parse_int_sum(
            r.try_get::<Option<String>, _>(i)
                .map_err(|e| e.to_string())?,
        ),
    }
}

impl PgStore {
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
                    .collect::<Result<Row, String>>()
            })
            .collect::<Result<Vec<Row>, String>>()
            .map_err(|e| StoreError::Database(format!("postgres: {}: {e}", context())))
    }

    async fn local_aggregate(
        &self,
        table: &str,
        schema: &Schema,
        query: &LocalAggregateQuery,
    ) -> Result<Vec<Row>, StoreError> {
        let (st, groups) = local_sql::prepare_aggregate(Flavor::Postgres, table, schema, query)?;
        self.require(table).await?;
        local_sql::finish_aggregate(table, self.run(table, &st, 0).await?, groups)
    }

    async fn local_select(
        &self,
        table: &str,
        schema: &Schema,
        query: &LocalSelect,
    ) -> Result<Vec<Row>, StoreError> {
        let st = local_sql::prepare_select(Flavor::Postgres, table, schema, query)?;
        self.require(table).await?;
        self.run(table, &st, 1).await
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind_value<'q>(q: PgQuery<'q>, ty: ColumnType, v: &'q Value) -> PgQuery<'q> {
    match v {
        Value::Null => match ty {
            ColumnType::Integer => q.bind(None::<i64>),
            ColumnType::Float => q.bind(None::<f64>),
            ColumnType::Boolean => q.bind(None::<bool>),
            ColumnType::Text => q.bind(None::<&str>),
            ColumnType::Date => q.bind(None::<NaiveDate>),
            ColumnType::Timestamp => q.bind(None::<DateTime<Utc>>),
        },
        Value::Integer(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Boolean(b) => q.bind(*b),
        Value::Text(s) => q.bind(s.as_str()),
        Value::Date(d) => q.bind(*d),
        Value::Timestamp(t) => q.bind(*t),
    }
}

impl DatasetStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                 WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace \
                                         WHERE nspname = current_schema()) \
                 AND c.relkind IN ('r', 'p') AND a.attname = $1 AND NOT a.attisdropped \
                 ORDER BY 1",
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
            let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
            let mut removed = 0;
            for name in self.all_tables().await? {
                if !name.starts_with(STAGING_PREFIX) {
                    continue;
                }
                let key = lock_key(&name);
                let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db("locking a staging table"))?;
                if !free {
                    continue; // a running load
                }
                let res = sqlx::query(&DIALECT.drop_table(&name))
                    .execute(&mut *conn)
                    .await;
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut *conn)
                    .await;
                res.map_err(db(format!("dropping staging table {name}")))?;
                removed += 1;
            }
            Ok(removed)
        })
    }
}

/// A load into a PostgreSQL staging table. Holds one pooled connection and the staging
/// table's advisory lock.
struct PgLoad {
    pool: PgPool,
    /// `None` once the load is over.
    conn: Option<PoolConnection<Postgres>>,
    table: String,
    staging: String,
    schema: Schema,
    insert_sql: HashMap<usize, String>,
}

impl PgLoad {
    async fn try_insert(&mut self, rows: &[(u64, Row)]) -> Result<(), StoreError> {
        Rules::postgres().check_rows(&self.table, &self.schema, rows)?;
        let plan = plan_chunks(rows, self.schema.columns.len(), CHUNKING)
            .map_err(|e| StoreError::Database(format!("postgres: table {}: {e}", self.table)))?;
        let Self {
            conn,
            table,
            staging,
            schema,
            insert_sql,
            ..
        } = self;
        let conn = conn
            .as_mut()
            .ok_or_else(|| StoreError::LoadFailed(table.clone()))?;
        let context = || format!("inserting into table {table}");
        let mut tx = conn.begin().await.map_err(db(context()))?;
        for range in plan {
            let sql = insert_sql
                .entry(range.len())
                .or_insert_with(|| DIALECT.insert(staging, schema, range.len()));
            let mut q = sqlx::query(sql.as_str());
            for (n, row) in &rows[range] {
                q = q.bind(*n as i64);
                for (col, v) in schema.columns.iter().zip(row) {
                    q = bind_value(q, col.ty, v);
                }
            }
            q.execute(&mut *tx).await.map_err(db(context()))?;
        }
        tx.commit().await.map_err(db(context()))
    }

    /// Ends the load: drops the staging table when `drop`, always releases the lock and
    /// the connection.
    async fn finish(&mut self, drop: bool) -> Option<StoreError> {
        let mut err = None;
        if let Some(mut conn) = self.conn.take() {
            if drop {
                if let Err(e) = sqlx::query(&DIALECT.drop_table(&self.staging))
                    .execute(&mut *conn)
                    .await
                {
                    err = Some(db(format!("dropping staging table {}", self.staging))(e));
                }
            }
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(lock_key(&self.staging))
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                conn.close_on_drop();
            }
        } else if drop {
            let _ = sqlx::query(&DIALECT.drop_table(&self.staging))
                .execute(&self.pool)
                .await;
        }
        err
    }

    async fn do_commit(mut self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(StoreError::LoadFailed(self.table.clone()));
        };
        let sql = format!(
            "ALTER TABLE {} RENAME TO {}",
            rules::quote_double(&self.staging),
            rules::quote_double(&self.table)
        );
        match sqlx::query(&sql).execute(&mut **conn).await {
            Ok(_) => {
                self.finish(false).await;
                Ok(())
            }
            Err(e) => {
                let exists = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42P07");
                let err = if exists {
                    StoreError::Exists(self.table.clone())
                } else {
                    db(format!("renaming staging table to {}", self.table))(e)
                };
                self.finish(true).await;
                Err(err)
            }
        }
    }
}

impl TableLoad for PgLoad {
    fn insert(&mut self, rows: Vec<(u64, Row)>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.conn.is_none() {
                return Err(StoreError::LoadFailed(self.table.clone()));
            }
            let res = self.try_insert(&rows).await;
            if res.is_err() {
                self.finish(true).await;
            }
            res
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(self.do_commit())
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            match self.finish(true).await {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    fn staging_table(&self) -> &str {
        &self.staging
    }

    fn abandon(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            self.finish(false).await;
            Ok(())
        })
    }
}

impl Drop for PgLoad {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let staging = std::mem::take(&mut self.staging);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = sqlx::query(&DIALECT.drop_table(&staging))
                        .execute(&mut *conn)
                        .await;
                    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(lock_key(&staging))
                        .execute(&mut *conn)
                        .await;
                });
            }
            // No runtime: closing the session releases the lock; the staging table is
            // left to remove_staging_leftovers.
            Err(_) => conn.close_on_drop(),
        }
    }
}
