//! The one order on values (`consort_model::value::compare_values`) is a total order, and
//! it agrees with SQLite's `ORDER BY` on every column type as the SQLite store lays values
//! out (NULL first; booleans as 0/1; dates and timestamps as fixed-width text). `-0.0` and
//! `0.0` are equal in both, so they fall in one group.

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
