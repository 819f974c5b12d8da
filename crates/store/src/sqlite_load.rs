//! A load into an SQLite staging table ([`SqliteLoad`]): rows go to the bulk writer
//! thread, and the commit renames the staging table to the dataset's name.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqlitePool};

use super::rules::{self, Rules};
use super::sqlite::{db, live_set, DIALECT};
use super::sqlite_writer::BulkWriter;
use super::{BoxFuture, StoreError, TableLoad};
use consort_model::value::{Row, Schema};

/// A load into an SQLite staging table. Holds one pooled connection (to create, rename or
/// drop the table) and the bulk writer that fills it.
pub(super) struct SqliteLoad {
    pub(super) pool: SqlitePool,
    /// `None` once the load is over.
    pub(super) conn: Option<PoolConnection<Sqlite>>,
    pub(super) writer: Option<BulkWriter>,
    pub(super) table: String,
    pub(super) staging: String,
    pub(super) schema: Schema,
}

impl SqliteLoad {
    async fn try_insert(&mut self, rows: Vec<(u64, Row)>) -> Result<(), StoreError> {
        Rules::sqlite().check_rows(&self.table, &self.schema, &rows)?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| StoreError::LoadFailed(self.table.clone()))?;
        writer
            .write(rows)
            .await
            .map_err(|e| e.in_context(&format!("sqlite: inserting into table {}", self.table)))
    }

    /// Ends the load: drops the staging table when `drop`, always releases liveness.
    pub(super) async fn finish(&mut self, drop: bool) -> Option<StoreError> {
        // The writer's open transaction holds the write lock the drop needs.
        if let Some(mut writer) = self.writer.take() {
            writer.stop().await;
        }
        let conn = self.conn.take();
        let mut err = None;
        if drop {
            let sql = DIALECT.drop_table(&self.staging);
            let res = match conn {
                Some(mut c) => sqlx::query(&sql).execute(&mut *c).await,
                None => sqlx::query(&sql).execute(&self.pool).await,
            };
            if let Err(e) = res {
                err = Some(db(format!("dropping staging table {}", self.staging))(e));
            }
        }
        live_set(|s| s.remove(&self.staging));
        err
    }

    async fn do_commit(mut self) -> Result<(), StoreError> {
        let Some(writer) = self.writer.take() else {
            return Err(StoreError::LoadFailed(self.table.clone()));
        };
        if let Err(e) = writer.commit().await {
            self.finish(true).await;
            return Err(e.in_context(&format!("sqlite: committing rows of table {}", self.table)));
        }
        let Some(mut conn) = self.conn.take() else {
            return Err(StoreError::LoadFailed(self.table.clone()));
        };
        let sql = format!(
            "ALTER TABLE {} RENAME TO {}",
            rules::quote_double(&self.staging),
            rules::quote_double(&self.table)
        );
        let res = sqlx::query(&sql).execute(&mut *conn).await;
        self.conn = Some(conn);
        match res {
            Ok(_) => {
                self.conn = None;
                live_set(|s| s.remove(&self.staging));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                let err = if msg.contains("already another table") || msg.contains("already exists")
                {
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

impl TableLoad for SqliteLoad {
    fn insert(&mut self, rows: Vec<(u64, Row)>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.conn.is_none() {
                return Err(StoreError::LoadFailed(self.table.clone()));
            }
            let res = self.try_insert(rows).await;
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

impl Drop for SqliteLoad {
    fn drop(&mut self) {
        // Dropping the writer rolls back its transaction; the drop below waits for that.
        self.writer = None;
        let Some(conn) = self.conn.take() else {
            return;
        };
        let staging = std::mem::take(&mut self.staging);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let mut conn = conn;
                    let _ = sqlx::query(&DIALECT.drop_table(&staging))
                        .execute(&mut *conn)
                        .await;
                    live_set(|s| s.remove(&staging));
                });
            }
            Err(_) => {
                // No runtime to drop it on: leave it to remove_staging_leftovers.
                live_set(|s| s.remove(&staging));
            }
        }
    }
}
