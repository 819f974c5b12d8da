//! The data-heavy checks of the conformance suite (see `conformance.rs`): typed round trips
//! of every column type with extremes, refused values, odd column names, bulk loads.

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::conformance::{assert_gone, assert_rows, col, date, load, read_all, ts};
use super::{DatasetStore, StoreError};
use consort_model::value::{ColumnType, Row, Schema, Value};

fn round_trip_schema() -> Schema {
    Schema {
        columns: vec![
            col("i", ColumnType::Integer, true),
            col("f", ColumnType::Float, true),
            col("b", ColumnType::Boolean, true),
            col("t", ColumnType::Text, true),
            col("d", ColumnType::Date, true),
            col("ts", ColumnType::Timestamp, true),
            col("i_req", ColumnType::Integer, false),
            col("t_req", ColumnType::Text, false),
        ],
    }
}

/// Every type, its extremes, NULLs, unicode, dates and timestamps.
pub(super) async fn round_trip(store: &dyn DatasetStore, p: &str) {
    let mysql = store.backend() == "mysql";
    let ints: Vec<Value> = [i64::MIN, i64::MAX, 0, -1, 1, i64::MIN + 1, 1 << 53]
        .into_iter()
        .map(Value::Integer)
        .collect();
    let floats: Vec<Value> = [
        f64::MIN,
        f64::MAX,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::EPSILON,
        0.0,
        -0.0,
        0.1,
        -1.5,
        1e-300,
        1e300,
        std::f64::consts::PI,
        9_007_199_254_740_992.0,
        4_503_599_627_370_497.0,
        f64::from_bits(1),
        123_456_789.0,
    ]
    .into_iter()
    .map(Value::Float)
    .collect();
    let bools = vec![Value::Boolean(true), Value::Boolean(false)];
    let texts: Vec<Value> = [
        "",
        " padded  ",
        "ünïcödé",
        "😀🎉 four-byte emoji 𝄞",
        "中文字符",
        "مرحبا",
        "line\nbreak\ttab\r\n",
        "quotes ' \" ` \\ ; -- /*",
        "Robert'); DROP TABLE students;--",
        "NULL",
    ]
    .into_iter()
    .map(|s| Value::Text(s.into()))
    .chain([Value::Text("long ✓ ".repeat(20_000).into())])
    .collect();
    let mut dates: Vec<Value> = vec![
        Value::Date(date(1970, 1, 1)),
        Value::Date(date(2000, 2, 29)),
        Value::Date(date(1969, 12, 31)),
        Value::Date(date(1000, 1, 1)),
        Value::Date(date(9999, 12, 31)),
    ];
    let mut stamps = vec![
        ts(1970, 1, 1, 0, 0, 0, 0),
        ts(2024, 2, 29, 23, 59, 59, 999_999),
        ts(1969, 12, 31, 23, 59, 59, 1),
        ts(1000, 1, 1, 0, 0, 0, 0),
        ts(9999, 12, 31, 23, 59, 59, 999_999),
        ts(2038, 1, 19, 3, 14, 8, 123_456),
    ];
    if !mysql {
        dates.push(Value::Date(date(1, 1, 1)));
        dates.push(Value::Date(date(999, 12, 31)));
        stamps.push(ts(1, 1, 1, 0, 0, 0, 0));
    }
    let lists = [ints, floats, bools, texts, dates, stamps];
    let len = lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut rows: Vec<(u64, Row)> = (0..len)
        .map(|k| {
            let mut row: Row = lists
                .iter()
                .map(|l| l.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            row.push(Value::Integer(k as i64));
            row.push(Value::Text(format!("required {k}").into()));
            (k as u64 * 1000, row)
        })
        .collect();
    let mut nulls = vec![Value::Null; 6];
    nulls.push(Value::Integer(-7));
    nulls.push(Value::Text(Default::default()));
    rows.push((i64::MAX as u64, nulls));

    let t = format!("{p}types");
    let schema = round_trip_schema();
    // Insert out of order: reading back is by row number.
    let (first, second) = rows.split_at(len / 2);
    load(store, &t, &schema, &[second, first])
        .await
        .expect("round-trip load");
    assert!(store.table_exists(&t).await.expect("table_exists"));
    assert!(store.list_tables().await.expect("list_tables").contains(&t));
    assert_eq!(
        store.row_count(&t).await.expect("row_count"),
        rows.len() as u64
    );
    let got = read_all(store, &t, &schema, 3).await;
    assert_rows(&format!("{} round trip", store.backend()), &got, &rows);
    store.drop_table(&t).await.expect("drop_table");
}

/// Values a store must refuse with a clear error, leaving nothing behind.
pub(super) async fn value_errors(store: &dyn DatasetStore, p: &str) {
    let schema = round_trip_schema();
    let good = || -> Row {
        vec![
            Value::Integer(1),
            Value::Float(1.0),
            Value::Boolean(true),
            Value::Text("x".into()),
            Value::Date(date(2020, 1, 1)),
            ts(2020, 1, 1, 0, 0, 0, 0),
            Value::Integer(1),
            Value::Text("x".into()),
        ]
    };
    let with = |i: usize, v: Value| {
        let mut r = good();
        r[i] = v;
        r
    };
    let sub_micro = match ts(2020, 1, 1, 0, 0, 0, 0) {
        Value::Timestamp(t) => Value::Timestamp(t + chrono::Duration::nanoseconds(1)),
        v => v,
    };
    let mut cases: Vec<(&str, u64, Row)> = vec![
        ("t", 1, with(3, Value::Text("nul\0inside".into()))),
        ("f", 1, with(1, Value::Float(f64::NAN))),
        ("f", 1, with(1, Value::Float(f64::INFINITY))),
        ("f", 1, with(1, Value::Float(f64::NEG_INFINITY))),
        ("i", 1, with(0, Value::Text("12".into()))),
        ("b", 1, with(2, Value::Integer(1))),
        ("t_req", 1, with(7, Value::Null)),
        ("i_req", 1, with(6, Value::Null)),
        ("d", 1, with(4, Value::Date(date(10000, 1, 1)))),
        ("ts", 1, with(5, ts(10000, 1, 1, 0, 0, 0, 0))),
        ("ts", 1, with(5, sub_micro)),
        ("", 1, good()[..7].to_vec()),
        ("", i64::MAX as u64 + 1, good()),
    ];
    if store.backend() == "mysql" {
        cases.push(("d", 1, with(4, Value::Date(date(999, 12, 31)))));
        cases.push(("ts", 1, with(5, ts(999, 12, 31, 23, 59, 59, 0))));
    }
    let t = format!("{p}refused");
    for (column, n, row) in cases {
        let mut l = store.begin_load(&t, &schema).await.expect("begin_load");
        let staging = l.staging_table().to_string();
        l.insert(vec![(0, good())])
            .await
            .expect("insert a good row");
        let err = l
            .insert(vec![(2, good()), (n, row.clone())])
            .await
            .expect_err(&format!("{}: accepted {row:?}", store.backend()));
        let msg = err.to_string();
        match &err {
            StoreError::UnsupportedValue { column: c, .. } => {
                assert_eq!(c, column, "{msg}");
                assert!(msg.contains(&format!("{column:?}")), "{msg}");
            }
            StoreError::InvalidRow { .. } => assert_eq!(column, "", "{msg}"),
            other => panic!("{}: unexpected error {other} for {row:?}", store.backend()),
        }
        assert!(msg.contains(&t), "error does not name the table: {msg}");
        assert!(matches!(
            l.insert(vec![(3, good())]).await,
            Err(StoreError::LoadFailed(_))
        ));
        assert!(l.commit().await.is_err());
        assert_gone(store, &t, &staging).await;
    }
}

/// Column names that are SQL keywords or carry quotes, semicolons, spaces, non-ASCII.
pub(super) async fn odd_columns(store: &dyn DatasetStore, p: &str) {
    let names = [
        "select",
        "\"quoted\"",
        "a;b",
        "drop table x;--",
        "spaces here",
        "ünï",
        "`backtick`",
        "it's",
        "Mixed Case",
        "from",
        "?",
        "$1",
        "[bracket]",
    ];
    let types = [
        ColumnType::Integer,
        ColumnType::Text,
        ColumnType::Float,
        ColumnType::Boolean,
        ColumnType::Date,
        ColumnType::Timestamp,
    ];
    let schema = Schema {
        columns: names
            .iter()
            .enumerate()
            .map(|(i, n)| col(n, types[i % types.len()], true))
            .collect(),
    };
    let value = |ty: ColumnType, k: u64| match ty {
        ColumnType::Integer => Value::Integer(k as i64),
        ColumnType::Text => Value::Text(format!("v{k}; DROP TABLE x;--").into()),
        ColumnType::Float => Value::Float(k as f64 / 3.0),
        ColumnType::Boolean => Value::Boolean(k.is_multiple_of(2)),
        ColumnType::Date => Value::Date(date(2001, 1, 1 + k as u32)),
        ColumnType::Timestamp => ts(2001, 1, 1, 1, 2, 3, k as u32),
    };
    let rows: Vec<(u64, Row)> = (0..5)
        .map(|k| {
            let row = schema.columns.iter().map(|c| value(c.ty, k)).collect();
            (k, row)
        })
        .collect();
    let t = format!("{p}odd");
    load(store, &t, &schema, &[&rows])
        .await
        .expect("odd column names");
    let got = read_all(store, &t, &schema, 100).await;
    assert_rows("odd column names", &got, &rows);
    store.drop_table(&t).await.expect("drop_table");
    // The table named in `drop table x;--` was not touched, nor created.
    assert!(!store.table_exists("x").await.expect("table_exists"));
}

/// 50,000 rows over several insert calls, read back in row-number order by pages.
pub(super) async fn bulk(store: &dyn DatasetStore, p: &str) {
    let schema = Schema {
        columns: vec![
            col("id", ColumnType::Integer, false),
            col("x", ColumnType::Float, true),
            col("name", ColumnType::Text, true),
            col("flag", ColumnType::Boolean, true),
            col("day", ColumnType::Date, true),
            col("at", ColumnType::Timestamp, true),
        ],
    };
    let base = date(2000, 1, 1)
        .and_hms_opt(0, 0, 0)
        .expect("time")
        .and_utc();
    let rows: Vec<(u64, Row)> = (0..50_000u64)
        .map(|i| {
            let row = vec![
                Value::Integer(i as i64 - 25_000),
                if i.is_multiple_of(13) {
                    Value::Null
                } else {
                    Value::Float(i as f64 * 1.25)
                },
                if i.is_multiple_of(17) {
                    Value::Null
                } else {
                    Value::Text(format!("name-{i}-ünï").into())
                },
                Value::Boolean(i.is_multiple_of(3)),
                Value::Date(date(2000, 1, 1) + chrono::Days::new(i % 3000)),
                Value::Timestamp(base + chrono::Duration::microseconds(i as i64 * 1_000_003)),
            ];
            (i * 3 + 1, row)
        })
        .collect();
    let t = format!("{p}bulk");
    let mut l = store.begin_load(&t, &schema).await.expect("begin_load");
    // Uneven batches, out of order.
    let cuts = [0, 7001, 20_000, 20_001, 40_001, 50_000];
    for k in [3, 0, 2, 1, 4] {
        l.insert(rows[cuts[k]..cuts[k + 1]].to_vec())
            .await
            .expect("bulk insert");
    }
    l.commit().await.expect("bulk commit");
    assert_eq!(store.row_count(&t).await.expect("row_count"), 50_000);
    let got = read_all(store, &t, &schema, 4096).await;
    assert_rows("bulk", &got, &rows);
    let empty = store
        .read_rows(&t, &schema, None, 0)
        .await
        .expect("read_rows");
    assert!(empty.is_empty(), "limit 0");
    let last = rows.last().map(|(n, _)| *n);
    let after_last = store
        .read_rows(&t, &schema, last, 10)
        .await
        .expect("read_rows");
    assert!(after_last.is_empty(), "rows after the last one");
    let mid = store
        .read_rows(&t, &schema, Some(2), 2)
        .await
        .expect("read_rows");
    assert_rows("page after a gap", &mid, &rows[1..3]);
    let far = store
        .read_rows(&t, &schema, Some(u64::MAX), 2)
        .await
        .expect("read_rows");
    assert!(far.is_empty(), "rows after u64::MAX");
    store.drop_table(&t).await.expect("drop_table");

    // The same values numbered 0, 1, 2, ... in order, as an ingest numbers them (a backend
    // may insert runs of consecutive rows differently), with batches that split runs.
    let t = format!("{p}bulk_consecutive");
    let consecutive: Vec<(u64, Row)> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, row))| (i as u64, row.clone()))
        .collect();
    let batches: Vec<&[(u64, Row)]> = cuts.windows(2).map(|w| &consecutive[w[0]..w[1]]).collect();
    load(store, &t, &schema, &batches)
        .await
        .expect("consecutive bulk load");
    let got = read_all(store, &t, &schema, 4096).await;
    assert_rows("bulk, consecutive numbers", &got, &consecutive);
    store.drop_table(&t).await.expect("drop_table");

    // A table without data columns.
    let t = format!("{p}bare");
    let bare = Schema::default();
    let rows: Vec<(u64, Row)> = (0..10).map(|i| (i, Vec::new())).collect();
    load(store, &t, &bare, &[&rows])
        .await
        .expect("schema without columns");
    assert_rows("no columns", &read_all(store, &t, &bare, 4).await, &rows);
    store.drop_table(&t).await.expect("drop_table");
}
