//! An in-memory [`DatasetStore`] for unit tests of the layers above. It follows the
//! SQLite backend's rules (names compared ASCII-case-insensitively for uniqueness, dates
//! `0001-01-01 ..= 9999-12-31`, no NUL in text, …) and passes the same conformance suite.
//! Values are kept exactly as given (`-0.0` stays `-0.0`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::rules::{self, Rules};
use super::{local_check, local_eval};
use super::{BoxFuture, DatasetStore, LocalAggregateQuery, LocalSelect, StoreError, TableLoad};
use consort_model::value::{Row, Schema};

#[derive(Default)]
struct Table {
    rows: BTreeMap<u64, Row>,
}

#[derive(Default)]
struct State {
    tables: BTreeMap<String, Table>,
    staging: BTreeMap<String, Table>,
    /// Staging tables of running loads.
    live: BTreeSet<String>,
}

/// A dataset store held in memory; clones share the same data.
#[derive(Clone, Default)]
pub struct MemStore {
    state: Arc<Mutex<State>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// SQLite resolves table names case-insensitively; so does the memory store.
fn find<'s>(tables: &'s BTreeMap<String, Table>, name: &str) -> Option<&'s String> {
    tables.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The table named `table`, whose stored rows must have the schema's width.
fn table_for<'s>(st: &'s State, table: &str, schema: &Schema) -> Result<&'s Table, StoreError> {
    let key = find(&st.tables, table).ok_or_else(|| StoreError::NotFound(table.into()))?;
    let t = &st.tables[key];
    if let Some(row) = t.rows.values().find(|r| r.len() != schema.columns.len()) {
        return Err(StoreError::Database(format!(
            "memory: table {table}: stored rows have {} columns, the schema {}",
            row.len(),
            schema.columns.len()
        )));
    }
    Ok(t)
}

impl DatasetStore for MemStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn begin_load<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
    ) -> BoxFuture<'a, Result<Box<dyn TableLoad + 'a>, StoreError>> {
        Box::pin(async move {
            Rules::sqlite().validate_schema(table, schema)?;
            let mut st = self.lock();
            if find(&st.tables, table).is_some() {
                return Err(StoreError::Exists(table.into()));
            }
            let staging = rules::staging_name(table);
            st.staging.insert(staging.clone(), Table::default());
            st.live.insert(staging.clone());
            Ok(Box::new(MemLoad {
                state: self.state.clone(),
                table: table.into(),
                staging,
                schema: schema.clone(),
                open: true,
            }) as Box<dyn TableLoad + 'a>)
        })
    }

    fn read_rows<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        after_row: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(u64, Row)>, StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            let st = self.lock();
            let key = find(&st.tables, table).ok_or_else(|| StoreError::NotFound(table.into()))?;
            let t = &st.tables[key];
            let start = match after_row {
                Some(a) => match a.checked_add(1) {
                    Some(s) => s,
                    None => return Ok(Vec::new()),
                },
                None => 0,
            };
            let mut out = Vec::new();
            for (n, row) in t.rows.range(start..).take(limit) {
                if row.len() != schema.columns.len() {
                    return Err(StoreError::Database(format!(
                        "memory: reading table {table}: stored rows have {} columns, the \
                         schema {}",
                        row.len(),
                        schema.columns.len()
                    )));
                }
                out.push((*n, row.clone()));
            }
            Ok(out)
        })
    }

    fn aggregate<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        query: &'a LocalAggregateQuery,
    ) -> BoxFuture<'a, Result<Vec<Row>, StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            let q = local_check::check_aggregate(table, schema, query)?;
            let st = self.lock();
            let t = table_for(&st, table, schema)?;
            if q.derived.is_empty() {
                return local_eval::aggregate_rows(table, &q, t.rows.values());
            }
            let rows = extended(table, schema, &q.derived, t.rows.values())?;
            local_eval::aggregate_rows(table, &q, rows.iter())
        })
    }

    fn select<'a>(
        &'a self,
        table: &'a str,
        schema: &'a Schema,
        query: &'a LocalSelect,
    ) -> BoxFuture<'a, Result<Vec<Row>, StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            let q = local_check::check_select(table, schema, query)?;
            let st = self.lock();
            let t = table_for(&st, table, schema)?;
            if q.derived.is_empty() {
                return Ok(local_eval::select_rows(&q, t.rows.values()));
            }
            let rows = extended(table, schema, &q.derived, t.rows.values())?;
            Ok(local_eval::select_rows(&q, rows.iter()))
        })
    }

    fn row_count<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            let st = self.lock();
            let key = find(&st.tables, table).ok_or_else(|| StoreError::NotFound(table.into()))?;
            Ok(st.tables[key].rows.len() as u64)
        })
    }

    fn table_exists<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            Ok(find(&self.lock().tables, table).is_some())
        })
    }

    fn drop_table<'a>(&'a self, table: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            rules::validate_table_name(table)?;
            let mut st = self.lock();
            let key = find(&st.tables, table)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(table.into()))?;
            st.tables.remove(&key);
            Ok(())
        })
    }

    fn list_tables<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move { Ok(self.lock().tables.keys().cloned().collect()) })
    }

    fn list_staging_tables<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move { Ok(self.lock().staging.keys().cloned().collect()) })
    }

    fn remove_staging_leftovers<'a>(&'a self) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut st = self.lock();
            let State { staging, live, .. } = &mut *st;
            let before = staging.len();
            staging.retain(|name, _| live.contains(name));
            Ok((before - staging.len()) as u64)
        })
    }
}

/// A load into an in-memory staging table.
struct MemLoad {
    state: Arc<Mutex<State>>,
    table: String,
    staging: String,
    schema: Schema,
    open: bool,
}

impl MemLoad {
    /// Ends the load, removing the staging table when `drop`.
    fn finish(&mut self, drop: bool) {
        let mut st = lock(&self.state);
        st.live.remove(&self.staging);
        if drop {
            st.staging.remove(&self.staging);
        }
        self.open = false;
    }

    fn try_insert(&mut self, rows: &[(u64, Row)]) -> Result<(), StoreError> {
        Rules::sqlite().check_rows(&self.table, &self.schema, rows)?;
        let mut st = lock(&self.state);
        let t = st
            .staging
            .get_mut(&self.staging)
            .ok_or_else(|| StoreError::LoadFailed(self.table.clone()))?;
        // All or nothing, like a transaction.
        let mut seen = BTreeSet::new();
        for (n, _) in rows {
            if t.rows.contains_key(n) || !seen.insert(*n) {
                return Err(StoreError::Database(format!(
                    "memory: inserting into table {}: duplicate row number {n}",
                    self.table
                )));
            }
        }
        for (n, row) in rows {
            t.rows.insert(*n, row.clone());
        }
        Ok(())
    }
}

impl TableLoad for MemLoad {
    fn insert(&mut self, rows: Vec<(u64, Row)>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if !self.open {
                return Err(StoreError::LoadFailed(self.table.clone()));
            }
            let res = self.try_insert(&rows);
            if res.is_err() {
                self.finish(true);
            }
            res
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            if !self.open {
                return Err(StoreError::LoadFailed(self.table.clone()));
            }
            let res = {
                let mut st = lock(&self.state);
                if find(&st.tables, &self.table).is_some() {
                    Err(StoreError::Exists(self.table.clone()))
                } else if let Some(t) = st.staging.remove(&self.staging) {
                    st.tables.insert(self.table.clone(), t);
                    Ok(())
                } else {
                    Err(StoreError::LoadFailed(self.table.clone()))
                }
            };
            self.finish(true);
            res
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            self.finish(true);
            Ok(())
        })
    }

    fn staging_table(&self) -> &str {
        &self.staging
    }

    fn abandon(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            self.finish(false);
            Ok(())
        })
    }
}

impl Drop for MemLoad {
    fn drop(&mut self) {
        if self.open {
            self.finish(true);
        }
    }
}

/// The rows with the query's derived columns appended.
fn extended<'r>(
    table: &str,
    schema: &Schema,
    derived: &[consort_model::scalar::Derived],
    rows: impl Iterator<Item = &'r Row>,
) -> Result<Vec<Row>, StoreError> {
    rows.map(|r| super::scalar_eval::extend_row(table, schema, derived, r))
        .collect()
}
