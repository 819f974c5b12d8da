//! The one order on values (`consort_model::value::compare_values`) is a total order, and
//! it agrees with SQLite's `ORDER BY` on every column type as the SQLite store lays values
//! out (NULL first; booleans as 0/1; dates and timestamps as fixed-width text). `-0.0` and
//! `0.0` are equal in both, so they fall in one group. The canonical encoding agrees with
//! the order on equality, and PostgreSQL and MariaDB sort alike on the machine's servers.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use consort_model::value::{compare_values, Value};
use proptest::prelude::*;

fn date(days: i32) -> NaiveDate {
    // Years 1000–9999: the stores' text form is then fixed-width.
    NaiveDate::from_ymd_opt(1000, 1, 1).unwrap() + chrono::Duration::days(i64::from(days))
}

fn timestamp(micros: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap()
}

/// Values of one column type (or NULL), as a column holds them.
fn column(ty: u8) -> BoxedStrategy<Vec<Value>> {
    let value = match ty {
        0 => any::<i64>().prop_map(Value::Integer).boxed(),
        1 => prop_oneof![
            (-1e12f64..1e12).prop_map(Value::Float),
            Just(Value::Float(0.0)),
            Just(Value::Float(-0.0)),
            Just(Value::Float(f64::MAX)),
            Just(Value::Float(f64::MIN_POSITIVE)),
        ]
        .boxed(),
        2 => any::<bool>().prop_map(Value::Boolean).boxed(),
        3 => "[a-zA-Z0-9 éß中]{0,6}"
            .prop_map(|s| Value::Text(s.as_str().into()))
            .boxed(),
        4 => (0..3_000_000i32).prop_map(|d| Value::Date(date(d))).boxed(),
        _ => (-30_000_000_000_000_000i64..200_000_000_000_000_000)
            .prop_map(|us| Value::Timestamp(timestamp(us)))
            .boxed(),
    };
    proptest::collection::vec(prop_oneof![1 => Just(Value::Null), 6 => value], 0..40).boxed()
}

fn encoding(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    consort_model::canonical::encode_value(v, &mut out);
    out
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Integer(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        Value::Boolean(b) => S::Integer(i64::from(*b)),
        Value::Text(t) => S::Text(t.to_string()),
        Value::Date(d) => S::Text(d.format("%Y-%m-%d").to_string()),
        Value::Timestamp(t) => S::Text(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    }
}

proptest! {
    #[test]
    fn the_value_order_is_total_and_sqlite_sorts_alike(values in (0u8..6).prop_flat_map(column)) {
        // Total order laws on the sample.
        for a in &values {
            prop_assert_eq!(compare_values(a, a), Ordering::Equal);
            for b in &values {
                prop_assert_eq!(compare_values(a, b), compare_values(b, a).reverse());
                for c in &values {
                    if compare_values(a, b).is_le() && compare_values(b, c).is_le() {
                        prop_assert!(compare_values(a, c).is_le());
                    }
                }
            }
        }
        // SQLite's ORDER BY over the same column.
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute("CREATE TABLE t (i INTEGER, c)", []).unwrap();
        for (i, v) in values.iter().enumerate() {
            db.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![i as i64, to_sql(v)]).unwrap();
        }
        let mut stmt = db.prepare("SELECT i FROM t ORDER BY c").unwrap();
        let by_sqlite: Vec<&Value> = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|i| &values[i.unwrap() as usize])
            .collect();
        // The one canonical encoding (consort_model::canonical) agrees with the order on
        // equality: two values encode alike exactly when the order calls them equal, and a
        // value reads back as one equal to it. (Its bytes do not sort as the values do:
        // FORMAT.md fixes two's-complement integers and IEEE floats for the commitments.)
        for a in &values {
            let ea = encoding(a);
            let mut r = consort_crypto::encoding::Reader::new(&ea);
            let back = consort_model::canonical::read_value(&mut r).unwrap();
            prop_assert_eq!(compare_values(&back, a), Ordering::Equal);
            for b in &values {
                prop_assert_eq!(ea == encoding(b), compare_values(a, b).is_eq(), "{:?} vs {:?}", a, b);
            }
        }
        let mut by_model: Vec<&Value> = values.iter().collect();
        by_model.sort_by(|a, b| compare_values(a, b));
        prop_assert_eq!(by_sqlite.len(), by_model.len());
        for (s, m) in by_sqlite.iter().zip(&by_model) {
            prop_assert_eq!(compare_values(s, m), Ordering::Equal, "{:?} vs {:?}", s, m);
        }
    }
}

#[test]
fn negative_zero_equals_zero_and_types_rank_in_a_fixed_order() {
    assert_eq!(
        compare_values(&Value::Float(-0.0), &Value::Float(0.0)),
        Ordering::Equal
    );
    assert_eq!(
        compare_values(&Value::Integer(0), &Value::Float(-0.0)),
        Ordering::Equal
    );
    let ranked = [
        Value::Null,
        Value::Integer(5),
        Value::Boolean(false),
        Value::Text("a".into()),
        Value::Date(date(0)),
        Value::Timestamp(timestamp(0)),
    ];
    for pair in ranked.windows(2) {
        assert_eq!(compare_values(&pair[0], &pair[1]), Ordering::Less);
    }
}

/// Values of column type `ty` (one in seven NULL, and the edge cases), deterministic.
fn sample(ty: u8, seed: u64) -> Vec<Value> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let texts = ["", "a", "a ", "A", "b", "ab", "é", "ß", "中", "z z", "Z"];
    let mut out: Vec<Value> = match ty {
        1 => vec![
            Value::Float(-0.0),
            Value::Float(0.0),
            Value::Float(f64::MAX),
        ],
        3 => texts.iter().map(|t| Value::Text((*t).into())).collect(),
        _ => Vec::new(),
    };
    for _ in 0..120 {
        out.push(if rng.gen_ratio(1, 7) {
            Value::Null
        } else {
            match ty {
                0 => Value::Integer(rng.gen()),
                1 => Value::Float(rng.gen_range(-1e12..1e12)),
                2 => Value::Boolean(rng.gen()),
                3 => Value::Text(texts[rng.gen_range(0..texts.len())].into()),
                4 => Value::Date(date(rng.gen_range(0..3_000_000))),
                _ => Value::Timestamp(timestamp(
                    rng.gen_range(-30_000_000_000_000_000i64..200_000_000_000_000_000),
                )),
            }
        });
    }
    out
}

/// The ORDER BY of a real server, as a permutation of `values`' indices. Each type gets
/// its own table name: sqlx caches prepared statements by their text, and a statement
/// prepared for one table's column types must not be reused for another's.
async fn server_order<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    ty: u8,
    column_type: &str,
    order_by: &str,
    values: &[Value],
) -> Vec<usize>
where
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB> + sqlx::Decode<'q, DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB>,
    for<'q> Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<bool>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<NaiveDate>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<chrono::NaiveDateTime>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
{
    use sqlx::Row;
    let table = format!("consort_value_order_{ty}");
    let mut conn = pool.acquire().await.unwrap();
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut *conn)
        .await;
    sqlx::query(&format!(
        "CREATE TEMPORARY TABLE {table} (i BIGINT, c {column_type})"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let postgres = std::any::type_name::<DB>().contains("Postgres");
    let insert = if postgres {
        format!("INSERT INTO {table} VALUES ($1, $2)")
    } else {
        format!("INSERT INTO {table} VALUES (?, ?)")
    };
    for (i, v) in values.iter().enumerate() {
        let q = sqlx::query(&insert).bind(i as i64);
        let q = match v {
            Value::Integer(x) => q.bind(Some(*x)),
            Value::Float(x) => q.bind(Some(*x)),
            Value::Boolean(x) => q.bind(Some(*x)),
            Value::Text(x) => q.bind(Some(x.to_string())),
            Value::Date(x) => q.bind(Some(*x)),
            // As the stores bind them: with the time zone on PostgreSQL (TIMESTAMPTZ), as
            // naive UTC on MariaDB (DATETIME has no zone).
            Value::Timestamp(x) if postgres => q.bind(Some(*x)),
            Value::Timestamp(x) => q.bind(Some(x.naive_utc())),
            Value::Null => match ty {
                0 => q.bind(None::<i64>),
                1 => q.bind(None::<f64>),
                2 => q.bind(None::<bool>),
                3 => q.bind(None::<String>),
                4 => q.bind(None::<NaiveDate>),
                _ if postgres => q.bind(None::<DateTime<Utc>>),
                _ => q.bind(None::<chrono::NaiveDateTime>),
            },
        };
        q.execute(&mut *conn).await.unwrap();
    }
    let rows = sqlx::query(&format!("SELECT i FROM {table} ORDER BY {order_by}, i"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<i64, usize>(0) as usize)
        .collect()
}

fn assert_same_order(server: &str, ty: u8, values: &[Value], order: &[usize]) {
    let by_server: Vec<&Value> = order.iter().map(|&i| &values[i]).collect();
    let mut by_model: Vec<&Value> = values.iter().collect();
    by_model.sort_by(|a, b| compare_values(a, b));
    assert_eq!(by_server.len(), by_model.len());
    for (k, (s, m)) in by_server.iter().zip(&by_model).enumerate() {
        assert_eq!(
            compare_values(s, m),
            Ordering::Equal,
            "{server}, type {ty}, position {k}: the server has {s:?} where the model has {m:?}"
        );
    }
}

/// PostgreSQL and MariaDB, on the machine's real servers (the test fails, not skips, when
/// they are down), sort every column type as the model does, given the collation and NULL
/// placement a pushdown would have to ask for: `COLLATE "C"` and `NULLS FIRST` on
/// PostgreSQL; `utf8mb4_nopad_bin` on MariaDB (its default collations ignore case, and its
/// `_bin` collations ignore trailing spaces, so `'a'` and `'a '` would tie).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_mariadb_sort_alike() {
    let pg_url = std::env::var("CONSORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let my_url = std::env::var("CONSORT_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg_url)
        .await
        .unwrap_or_else(|e| {
            panic!("{e}: this test needs PostgreSQL at {pg_url} (it does not skip)")
        });
    let my = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&my_url)
        .await
        .unwrap_or_else(|e| panic!("{e}: this test needs MariaDB at {my_url} (it does not skip)"));
    let pg_types = [
        "BIGINT",
        "DOUBLE PRECISION",
        "BOOLEAN",
        "TEXT",
        "DATE",
        "TIMESTAMPTZ",
    ];
    let my_types = [
        "BIGINT",
        "DOUBLE",
        "BOOLEAN",
        "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
        "DATE",
        "DATETIME(6)",
    ];
    for ty in 0u8..6 {
        let values = sample(ty, 17 + u64::from(ty));
        let pg_order_by = if ty == 3 {
            "c COLLATE \"C\" NULLS FIRST"
        } else {
            "c NULLS FIRST"
        };
        let order = server_order(&pg, ty, pg_types[ty as usize], pg_order_by, &values).await;
        assert_same_order("PostgreSQL", ty, &values, &order);
        let order = server_order(&my, ty, my_types[ty as usize], "c", &values).await;
        assert_same_order("MariaDB", ty, &values, &order);
    }
}
