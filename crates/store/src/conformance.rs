//! The conformance suite every [`DatasetStore`] passes: [`run_all`] runs it against one
//! store and panics with a message on the first failure. Table names carry a random
//! per-run prefix so runs against a shared server do not collide, and every check drops
//! what it created. The data-heavy checks are in `conformance_data.rs`.

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{NaiveDate, NaiveDateTime};

use super::conformance_data as data;
use super::{DatasetStore, StoreError};
use consort_model::value::{Column, ColumnType, Row, Schema, Value};

/// Runs the whole suite against `store`.
pub async fn run_all(store: &dyn DatasetStore) {
    let p = format!("ct{}_", super::rules::random_hex(10));
    missing_and_invalid_names(store, &p).await;
    column_names(store, &p).await;
    data::round_trip(store, &p).await;
    data::value_errors(store, &p).await;
    data::odd_columns(store, &p).await;
    data::bulk(store, &p).await;
    numbering(store, &p).await;
    super::conformance_query::run(store, &p).await;
    super::conformance_expr::run(store, &p).await;
    super::conformance_funcs::run(store, &p).await;
    atomic_failure(store, &p).await;
    exists(store, &p).await;
    staging(store, &p).await;
    dropping(store, &p).await;
}

pub(super) fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
    Column {
        name: name.into(),
        ty,
        nullable,
    }
}

pub(super) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

pub(super) fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> Value {
    let t: NaiveDateTime = date(y, mo, d)
        .and_hms_micro_opt(h, mi, s, us)
        .expect("valid test time");
    Value::Timestamp(t.and_utc())
}

/// A simple schema: `id` integer (not null), `name` text.
pub(super) fn simple() -> Schema {
    Schema {
        columns: vec![
            col("id", ColumnType::Integer, false),
            col("name", ColumnType::Text, true),
        ],
    }
}

pub(super) fn simple_rows(range: std::ops::Range<u64>) -> Vec<(u64, Row)> {
    range
        .map(|i| {
            (
                i,
                vec![
                    Value::Integer(i as i64),
                    Value::Text(format!("row {i}").into()),
                ],
            )
        })
        .collect()
}

/// Loads `batches` into `table` and commits.
pub(super) async fn load(
    store: &dyn DatasetStore,
    table: &str,
    schema: &Schema,
    batches: &[&[(u64, Row)]],
) -> Result<(), StoreError> {
    let mut l = store.begin_load(table, schema).await?;
    for b in batches {
        l.insert(b.to_vec()).await?;
    }
    l.commit().await
}

/// Reads a whole table in pages of `page` rows.
pub(super) async fn read_all(
    store: &dyn DatasetStore,
    table: &str,
    schema: &Schema,
    page: usize,
) -> Vec<(u64, Row)> {
    let mut out: Vec<(u64, Row)> = Vec::new();
    loop {
        let after = out.last().map(|(n, _)| *n);
        let got = store
            .read_rows(table, schema, after, page)
            .await
            .unwrap_or_else(|e| panic!("read_rows {table}: {e}"));
        assert!(got.len() <= page, "{table}: page larger than the limit");
        let done = got.len() < page;
        out.extend(got);
        if done {
            return out;
        }
    }
}

/// Equal values; floats bit-exact except that `-0.0` may come back as `0.0`.
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) if *x == 0.0 && *y == 0.0 => true,
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

pub(super) fn assert_rows(what: &str, got: &[(u64, Row)], want: &[(u64, Row)]) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for ((gn, g), (wn, w)) in got.iter().zip(want) {
        assert_eq!(gn, wn, "{what}: row numbers out of order");
        assert_eq!(g.len(), w.len(), "{what}: row {wn} width");
        for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
            assert!(
                same(gv, wv),
                "{what}: row {wn} column {i}: stored {wv:?}, read back {gv:?}"
            );
        }
    }
}

/// Asserts that neither `table` nor the staging table `staging` exists.
pub(super) async fn assert_gone(store: &dyn DatasetStore, table: &str, staging: &str) {
    assert!(
        !store.table_exists(table).await.expect("table_exists"),
        "{table} exists after a failed or aborted load"
    );
    let staged = store
        .list_staging_tables()
        .await
        .expect("list_staging_tables");
    assert!(
        !staged.iter().any(|s| s == staging),
        "staging table {staging} of {table} was left behind"
    );
}

async fn missing_and_invalid_names(store: &dyn DatasetStore, p: &str) {
    let t = format!("{p}missing");
    assert!(!store.table_exists(&t).await.expect("table_exists"));
    let s = simple();
    assert!(matches!(
        store.read_rows(&t, &s, None, 10).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.row_count(&t).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.drop_table(&t).await,
        Err(StoreError::NotFound(_))
    ));
    let long = "a".repeat(64);
    for bad in [
        "",
        "bad-name",
        long.as_str(),
        "_consort_staging_x",
        "sqlite_x",
        "x; drop table y",
        "ünï",
        "a\"b",
    ] {
        let invalid = |r: Result<(), StoreError>, op: &str| {
            assert!(
                matches!(r, Err(StoreError::InvalidName(_))),
                "{op} accepted table name {bad:?}"
            )
        };
        invalid(store.begin_load(bad, &s).await.map(|_| ()), "begin_load");
        invalid(store.table_exists(bad).await.map(|_| ()), "table_exists");
        invalid(store.drop_table(bad).await, "drop_table");
        invalid(store.row_count(bad).await.map(|_| ()), "row_count");
        invalid(
            store.read_rows(bad, &s, None, 1).await.map(|_| ()),
            "read_rows",
        );
    }
    // The longest valid name works.
    let t63 = format!("{p}{}", "n".repeat(63 - p.len()));
    load(store, &t63, &s, &[&simple_rows(0..3)])
        .await
        .expect("63-character table name");
    assert_eq!(store.row_count(&t63).await.expect("row_count"), 3);
    store.drop_table(&t63).await.expect("drop_table");
}

/// Column names the backend must refuse, or must accept.
async fn column_names(store: &dyn DatasetStore, p: &str) {
    let backend = store.backend();
    let t = format!("{p}colnames");
    let try_schema = |names: Vec<String>| {
        let schema = Schema {
            columns: names
                .into_iter()
                .map(|n| col(&n, ColumnType::Integer, true))
                .collect(),
        };
        let t = t.clone();
        async move {
            let mut l = store.begin_load(&t, &schema).await?;
            let row = vec![Value::Integer(7); schema.columns.len()];
            l.insert(vec![(1, row)]).await?;
            l.abort().await
        }
    };
    let refuse = |r: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(r, Err(StoreError::InvalidName(_))),
            "{backend}: column names {what} accepted: {r:?}"
        )
    };
    refuse(try_schema(vec!["".into()]).await, "empty");
    refuse(try_schema(vec!["a\0b".into()]).await, "with NUL");
    refuse(
        try_schema(vec!["_consort_row".into()]).await,
        "_consort_row",
    );
    refuse(try_schema(vec!["a".into(), "a".into()]).await, "duplicate");
    let case = try_schema(vec!["Name".into(), "name".into()]).await;
    if backend == "postgres" {
        case.expect("postgres: names differing in case are distinct");
    } else {
        refuse(case, "differing only in case");
    }
    let n63 = "x".repeat(63);
    try_schema(vec![n63]).await.expect("63-byte column name");
    let n64 = "x".repeat(64);
    let r = try_schema(vec![n64]).await;
    match backend {
        "postgres" => refuse(r, "of 64 bytes"),
        _ => r.expect("64-character column name"),
    }
    let n65 = "x".repeat(65);
    let r = try_schema(vec![n65]).await;
    match backend {
        "postgres" | "mysql" => refuse(r, "of 65 characters"),
        _ => r.expect("65-character column name"),
    }
    let wide = "ü".repeat(32); // 32 characters, 64 bytes
    let r = try_schema(vec![wide]).await;
    match backend {
        "postgres" => refuse(r, "of 64 bytes"),
        _ => r.expect("32 two-byte characters"),
    }
    for odd in ["emoji 😀", "trailing "] {
        let r = try_schema(vec![odd.into()]).await;
        match backend {
            "mysql" => refuse(r, odd),
            _ => r.unwrap_or_else(|e| panic!("{backend}: column name {odd:?}: {e}")),
        }
    }
    assert!(!store.table_exists(&t).await.expect("table_exists"));
}

/// Runs of consecutive row numbers mixed with gaps and with batches below earlier ones:
/// every row keeps the number it was given (SQLite numbers consecutive rows itself).
async fn numbering(store: &dyn DatasetStore, p: &str) {
    let s = simple();
    let t = format!("{p}numbering");
    let batches = [
        simple_rows(100..200),
        simple_rows(0..50),
        simple_rows(50..60),
        simple_rows(200..210),
        simple_rows(300..301),
        simple_rows(60..61),
        simple_rows(301..305),
    ];
    let refs: Vec<&[(u64, Row)]> = batches.iter().map(Vec::as_slice).collect();
    load(store, &t, &s, &refs).await.expect("numbering load");
    let mut want: Vec<(u64, Row)> = batches.concat();
    want.sort_by_key(|(n, _)| *n);
    let got = read_all(store, &t, &s, 64).await;
    assert_rows("numbering", &got, &want);
    store.drop_table(&t).await.expect("drop_table");
}

async fn atomic_failure(store: &dyn DatasetStore, p: &str) {
    let s = simple();
    // Abort after inserts.
    let t = format!("{p}aborted");
    let mut l = store.begin_load(&t, &s).await.expect("begin_load");
    let staging = l.staging_table().to_string();
    assert!(staging.starts_with(super::STAGING_PREFIX));
    l.insert(simple_rows(0..500)).await.expect("insert");
    assert!(store
        .list_staging_tables()
        .await
        .expect("list_staging_tables")
        .contains(&staging));
    l.abort().await.expect("abort");
    assert_gone(store, &t, &staging).await;

    // The database refuses a row mid-load: a row number already stored.
    let t = format!("{p}midload");
    let mut l = store.begin_load(&t, &s).await.expect("begin_load");
    let staging = l.staging_table().to_string();
    l.insert(simple_rows(0..1000)).await.expect("insert");
    l.insert(simple_rows(1000..2000)).await.expect("insert");
    // A backend may report a batch's failure from a later call (see `TableLoad::insert`),
    // but by the commit at the latest, and the commit then fails.
    if l.insert(simple_rows(1990..3000)).await.is_err() {
        assert_gone(store, &t, &staging).await;
        assert!(matches!(
            l.insert(simple_rows(5000..5001)).await,
            Err(StoreError::LoadFailed(_))
        ));
    }
    assert!(
        l.commit().await.is_err(),
        "a duplicate row number was accepted"
    );
    assert_gone(store, &t, &staging).await;

    // The same past the point where a backend may have committed part of the load in
    // the staging table (SQLite commits every 1,000,000 rows, and when no batch comes for
    // 50 ms, which the pause forces): nothing is left behind.
    let mut l = store.begin_load(&t, &s).await.expect("begin_load");
    let staging = l.staging_table().to_string();
    for start in (0..120_000).step_by(10_000) {
        l.insert(simple_rows(start..start + 10_000))
            .await
            .expect("insert");
        if start == 60_000 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let _ = l.insert(simple_rows(5..6)).await;
    assert!(
        l.commit().await.is_err(),
        "a duplicate row number was accepted after 120,000 rows"
    );
    assert_gone(store, &t, &staging).await;

    // A duplicate inside one batch, in the first insert.
    let mut l = store.begin_load(&t, &s).await.expect("begin_load");
    let staging = l.staging_table().to_string();
    let mut rows = simple_rows(0..10);
    rows.push(rows[3].clone());
    if l.insert(rows).await.is_ok() {
        let _ = l.insert(simple_rows(20..30)).await;
        assert!(l.commit().await.is_err(), "duplicate in one batch accepted");
        assert_gone(store, &t, &staging).await;
        let mut l = store.begin_load(&t, &s).await.expect("begin_load");
        let staging = l.staging_table().to_string();
        let mut rows = simple_rows(0..10);
        rows.push(rows[3].clone());
        let _ = l.insert(rows).await;
        assert!(l.abort().await.is_ok(), "abort after a failed insert");
        assert_gone(store, &t, &staging).await;
    } else {
        assert!(l.abort().await.is_ok(), "abort after a failed insert");
        assert_gone(store, &t, &staging).await;
    }

    // Dropping a load without committing removes it (in the background).
    let mut l = store.begin_load(&t, &s).await.expect("begin_load");
    let staging = l.staging_table().to_string();
    l.insert(simple_rows(0..10)).await.expect("insert");
    drop(l);
    let mut waited = 0;
    loop {
        let staged = store
            .list_staging_tables()
            .await
            .expect("list_staging_tables");
        if !staged.contains(&staging) {
            break;
        }
        waited += 1;
        assert!(waited < 100, "dropped load left {staging} behind");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_gone(store, &t, &staging).await;
}

async fn exists(store: &dyn DatasetStore, p: &str) {
    let s = simple();
    let t = format!("{p}exists");
    load(store, &t, &s, &[&simple_rows(0..5)])
        .await
        .expect("load");
    assert!(matches!(
        store.begin_load(&t, &s).await.map(|_| ()),
        Err(StoreError::Exists(_))
    ));
    // Two loads race for one name: the second commit fails and leaves nothing.
    let u = format!("{p}race");
    let mut a = store.begin_load(&u, &s).await.expect("begin_load a");
    let mut b = store.begin_load(&u, &s).await.expect("begin_load b");
    let b_staging = b.staging_table().to_string();
    a.insert(simple_rows(0..3)).await.expect("insert a");
    b.insert(simple_rows(0..7)).await.expect("insert b");
    a.commit().await.expect("commit a");
    assert!(matches!(b.commit().await, Err(StoreError::Exists(_))));
    assert_eq!(store.row_count(&u).await.expect("row_count"), 3);
    let staged = store
        .list_staging_tables()
        .await
        .expect("list_staging_tables");
    assert!(
        !staged.contains(&b_staging),
        "losing load left its staging table"
    );
    for x in [&t, &u] {
        store.drop_table(x).await.expect("drop_table");
    }
}

async fn staging(store: &dyn DatasetStore, p: &str) {
    let s = simple();
    let crashed = format!("{p}crashed");
    let mut l = store.begin_load(&crashed, &s).await.expect("begin_load");
    let staging = l.staging_table().to_string();
    l.insert(simple_rows(0..100)).await.expect("insert");
    l.abandon().await.expect("abandon");

    let running = format!("{p}running");
    let mut live = store.begin_load(&running, &s).await.expect("begin_load");
    let live_staging = live.staging_table().to_string();
    live.insert(simple_rows(0..100)).await.expect("insert");

    let tables = store.list_tables().await.expect("list_tables");
    assert!(tables.iter().all(|t| !t.starts_with(super::STAGING_PREFIX)));
    assert!(!tables.contains(&crashed) && !tables.contains(&running));
    let staged = store
        .list_staging_tables()
        .await
        .expect("list_staging_tables");
    assert!(staged.contains(&staging) && staged.contains(&live_staging));

    let removed = store
        .remove_staging_leftovers()
        .await
        .expect("remove_staging_leftovers");
    assert!(removed >= 1, "no leftovers removed");
    let staged = store
        .list_staging_tables()
        .await
        .expect("list_staging_tables");
    assert!(!staged.contains(&staging), "leftover {staging} not removed");
    assert!(
        staged.contains(&live_staging),
        "a running load's staging table was removed"
    );

    live.insert(simple_rows(100..200))
        .await
        .expect("insert after cleanup");
    live.commit().await.expect("commit after cleanup");
    assert!(store
        .list_tables()
        .await
        .expect("list_tables")
        .contains(&running));
    assert!(!store.table_exists(&crashed).await.expect("table_exists"));
    assert_eq!(store.row_count(&running).await.expect("row_count"), 200);
    store.drop_table(&running).await.expect("drop_table");
}

async fn dropping(store: &dyn DatasetStore, p: &str) {
    let s = simple();
    let t = format!("{p}dropped");
    load(store, &t, &s, &[&simple_rows(0..10)])
        .await
        .expect("load");
    assert!(store.table_exists(&t).await.expect("table_exists"));
    assert!(store.list_tables().await.expect("list_tables").contains(&t));
    store.drop_table(&t).await.expect("drop_table");
    assert!(!store.table_exists(&t).await.expect("table_exists"));
    assert!(!store.list_tables().await.expect("list_tables").contains(&t));
    assert!(matches!(
        store.drop_table(&t).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.read_rows(&t, &s, None, 5).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.row_count(&t).await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again.
    load(store, &t, &s, &[&simple_rows(0..2)])
        .await
        .expect("reload");
    assert_eq!(read_all(store, &t, &s, 10).await.len(), 2);
    store.drop_table(&t).await.expect("drop_table");
}
