//! A load into a MySQL/MariaDB staging table ([`MySqlLoad`]): multi-row inserts in one
//! transaction per batch, under the staging table's named lock; the commit renames the
//! table to the dataset's name.

use std::collections::HashMap;

use sqlx::mysql::{MySql, MySqlPool};
use sqlx::pool::PoolConnection;
use sqlx::Connection;

use super::mysql::{bind_value, db, CHUNKING, DIALECT};
use super::rules::{self, lock_name, plan_chunks, Rules};
use super::{BoxFuture, StoreError, TableLoad};
use consort_model::value::{Row, Schema};

/// A load into a MySQL staging table. Holds one pooled connection and the staging
/// table's named lock.
pub(super) struct MySqlLoad {
    pub(super) pool: MySqlPool,
    /// `None` once the load is over.
    pub(super) conn: Option<PoolConnection<MySql>>,
    pub(super) table: String,
    pub(super) staging: String,
    pub(super) schema: Schema,
    pub(super) insert_sql: HashMap<usize, String>,
}

impl MySqlLoad {
    async fn try_insert(&mut self, rows: &[(u64, Row)]) -> Result<(), StoreError> {
        Rules::mysql().check_rows(&self.table, &self.schema, rows)?;
        let plan = plan_chunks(rows, self.schema.columns.len(), CHUNKING)
            .map_err(|e| StoreError::Database(format!("mysql: table {}: {e}", self.table)))?;
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
    pub(super) async fn finish(&mut self, drop: bool) -> Option<StoreError> {
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
            let unlocked = sqlx::query("DO RELEASE_LOCK(?)")
                .bind(lock_name(&self.staging))
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
            "RENAME TABLE {} TO {}",
            rules::quote_backtick(&self.staging),
            rules::quote_backtick(&self.table)
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
                    .is_some_and(|c| c == "42S01");
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

impl TableLoad for MySqlLoad {
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

impl Drop for MySqlLoad {
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
                    let _ = sqlx::query("DO RELEASE_LOCK(?)")
                        .bind(lock_name(&staging))
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
