//! The owner-local query checks of the conformance suite (see `conformance.rs`):
//! [`DatasetStore::aggregate`] and [`DatasetStore::select`] with every predicate kind,
//! three-valued logic, grouping, empty inputs, type errors and injection attempts. Every
//! expectation is written out by hand, so the memory store is checked too.

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::conformance::{col, date, load, ts};
use super::conformance_agg::{agg, aggregates, assert_table, c, check_agg};
use super::{CmpOp, DatasetStore, LocalAggregate as A, LocalSelect, Predicate as P, StoreError};
use consort_model::value::{ColumnType, Row, Schema, Value};

/// Runs the query checks.
pub(super) async fn run(store: &dyn DatasetStore, p: &str) {
    let t = format!("{p}people");
    let s = people_schema();
    load(store, &t, &s, &[&people_rows()])
        .await
        .expect("load people");
    predicates(store, &t, &s).await;
    aggregates(store, &t, &s).await;
    errors(store, &t, &s).await;
    store.drop_table(&t).await.expect("drop_table");
    empty_and_overflow(store, p).await;
    injection(store, p).await;
}

pub(super) fn people_schema() -> Schema {
    Schema {
        columns: vec![
            col("id", ColumnType::Integer, false),
            col("name", ColumnType::Text, true),
            col("score", ColumnType::Float, true),
            col("active", ColumnType::Boolean, true),
            col("born", ColumnType::Date, true),
            col("seen", ColumnType::Timestamp, true),
            col("n", ColumnType::Integer, true),
        ],
    }
}

pub(super) fn t(s: &str) -> Value {
    Value::Text(s.into())
}
pub(super) fn i(n: i64) -> Value {
    Value::Integer(n)
}
pub(super) fn f(x: f64) -> Value {
    Value::Float(x)
}
pub(super) fn b(x: bool) -> Value {
    Value::Boolean(x)
}
pub(super) fn d(y: i32, m: u32, dd: u32) -> Value {
    Value::Date(date(y, m, dd))
}
pub(super) const N: Value = Value::Null;

pub(super) fn people_rows() -> Vec<(u64, Row)> {
    let rows = vec![
        vec![
            i(1),
            t("alice"),
            f(1.5),
            b(true),
            d(1990, 1, 1),
            ts(2024, 1, 1, 0, 0, 0, 1),
            i(10),
        ],
        vec![
            i(2),
            t("Alice"),
            f(2.5),
            b(false),
            d(1985, 6, 15),
            ts(2024, 1, 1, 0, 0, 0, 0),
            i(20),
        ],
        vec![
            i(3),
            t("bob"),
            N,
            b(true),
            N,
            ts(2023, 12, 31, 23, 59, 59, 999_999),
            N,
        ],
        vec![i(4), N, f(-0.5), N, d(2000, 2, 29), N, i(5)],
        vec![
            i(5),
            t("a_b%c"),
            f(4.0),
            b(false),
            d(1990, 1, 1),
            ts(2024, 6, 1, 12, 0, 0, 0),
            i(-3),
        ],
        vec![
            i(6),
            t("alice "),
            f(0.25),
            b(true),
            d(1985, 6, 15),
            ts(2024, 1, 1, 0, 0, 0, 0),
            i(10),
        ],
        vec![
            i(7),
            t("ålice"),
            f(8.0),
            N,
            d(1000, 1, 1),
            ts(1000, 1, 1, 0, 0, 0, 0),
            i(7),
        ],
    ];
    // Row numbers out of id order, so row-number order is what is checked.
    rows.into_iter()
        .enumerate()
        .map(|(k, r)| ((k as u64) * 3 + 5, r))
        .collect()
}

pub(super) fn cmp(c: &str, op: CmpOp, v: Value) -> P {
    P::Compare {
        column: c.into(),
        op,
        value: v,
    }
}
pub(super) fn not(p: P) -> P {
    P::Not(Box::new(p))
}
pub(super) fn like(c: &str, pat: &str, negated: bool) -> P {
    P::Like {
        column: c.into(),
        pattern: pat.into(),
        negated,
    }
}
pub(super) fn in_(c: &str, values: Vec<Value>, negated: bool) -> P {
    P::In {
        column: c.into(),
        values,
        negated,
    }
}
pub(super) fn between(c: &str, low: Value, high: Value, negated: bool) -> P {
    P::Between {
        column: c.into(),
        low,
        high,
        negated,
    }
}

/// The ids of the rows `filter` keeps, in row order.
pub(super) async fn ids(
    store: &dyn DatasetStore,
    table: &str,
    s: &Schema,
    filter: Option<P>,
) -> Vec<i64> {
    let q = LocalSelect {
        derived: Vec::new(),
        columns: vec!["id".into()],
        filter: filter.clone(),
        mask: None,
    };
    let rows = store
        .select(table, s, &q)
        .await
        .unwrap_or_else(|e| panic!("{}: select {filter:?}: {e}", store.backend()));
    let kept: Vec<i64> = rows
        .iter()
        .map(|r| match r.as_slice() {
            [Value::Integer(n)] => *n,
            other => panic!("{}: select returned {other:?}", store.backend()),
        })
        .collect();
    if let Some(p) = filter {
        // The same condition as a mask keeps every row (under an outer filter) and flags
        // exactly the rows the filter keeps.
        let outer = cmp("id", CmpOp::NotEq, i(2));
        let q = LocalSelect {
            derived: Vec::new(),
            columns: vec!["id".into()],
            filter: Some(outer),
            mask: Some(p.clone()),
        };
        let rows = store
            .select(table, s, &q)
            .await
            .unwrap_or_else(|e| panic!("{}: select with mask {p:?}: {e}", store.backend()));
        let all: Vec<i64> = rows
            .iter()
            .map(|r| match r.as_slice() {
                [Value::Integer(n), Value::Integer(m @ (0 | 1))] => *n * 2 + *m,
                other => panic!("{}: masked select returned {other:?}", store.backend()),
            })
            .collect();
        let ids_seen: Vec<i64> = all.iter().map(|v| v / 2).collect();
        assert!(!ids_seen.contains(&2), "{}: outer filter", store.backend());
        let flagged: Vec<i64> = all.iter().filter(|v| *v % 2 == 1).map(|v| v / 2).collect();
        let expected: Vec<i64> = kept.iter().copied().filter(|&n| n != 2).collect();
        assert_eq!(flagged, expected, "{}: mask {p:?}", store.backend());
    }
    kept
}

async fn predicates(store: &dyn DatasetStore, tb: &str, s: &Schema) {
    use CmpOp::*;
    let be = store.backend();
    let cases: Vec<(P, Vec<i64>)> = vec![
        (cmp("id", Eq, i(3)), vec![3]),
        (cmp("id", NotEq, i(3)), vec![1, 2, 4, 5, 6, 7]),
        (cmp("n", Lt, i(10)), vec![4, 5, 7]),
        (cmp("n", LtEq, i(10)), vec![1, 4, 5, 6, 7]),
        (cmp("n", Gt, i(10)), vec![2]),
        (cmp("n", GtEq, i(10)), vec![1, 2, 6]),
        // Three-valued logic: NULL never passes a comparison or its negation.
        (not(cmp("n", Eq, i(10))), vec![2, 4, 5, 7]),
        (not(cmp("n", NotEq, i(10))), vec![1, 6]),
        (not(not(cmp("n", Eq, i(10)))), vec![1, 6]),
        (in_("n", vec![i(10), i(5)], false), vec![1, 4, 6]),
        (in_("n", vec![i(10), i(5)], true), vec![2, 5, 7]),
        (not(in_("n", vec![i(10), i(5)], false)), vec![2, 5, 7]),
        (between("n", i(5), i(10), false), vec![1, 4, 6, 7]),
        (between("n", i(5), i(10), true), vec![2, 5]),
        (between("n", i(10), i(5), false), vec![]),
        (
            P::IsNull {
                column: "n".into(),
                negated: false,
            },
            vec![3],
        ),
        (
            P::IsNull {
                column: "name".into(),
                negated: true,
            },
            vec![1, 2, 3, 5, 6, 7],
        ),
        (
            P::Or(vec![cmp("n", Eq, i(10)), cmp("name", Eq, t("bob"))]),
            vec![1, 3, 6],
        ),
        (
            not(P::Or(vec![cmp("n", Eq, i(10)), cmp("name", Eq, t("zzz"))])),
            vec![2, 5, 7],
        ),
        (
            P::And(vec![cmp("n", GtEq, i(5)), cmp("active", Eq, b(true))]),
            vec![1, 6],
        ),
        (
            not(P::And(vec![
                cmp("n", GtEq, i(5)),
                cmp("active", Eq, b(true)),
            ])),
            vec![2, 5],
        ),
        (P::And(vec![]), vec![1, 2, 3, 4, 5, 6, 7]),
        (P::Or(vec![]), vec![]),
        // Floats, with integer literals too.
        (cmp("score", Gt, i(1)), vec![1, 2, 5, 7]),
        (cmp("score", Eq, i(2)), vec![]),
        (cmp("score", Eq, i(4)), vec![5]),
        (cmp("score", Lt, f(0.0)), vec![4]),
        (between("score", i(0), f(2.0), false), vec![1, 6]),
        (in_("score", vec![f(0.25), i(8)], false), vec![6, 7]),
        // Booleans.
        (cmp("active", Eq, b(true)), vec![1, 3, 6]),
        (cmp("active", Eq, b(false)), vec![2, 5]),
        (not(cmp("active", Eq, b(true))), vec![2, 5]),
        (cmp("active", Lt, b(true)), vec![2, 5]),
        // Dates and timestamps.
        (cmp("born", Lt, d(1990, 1, 1)), vec![2, 6, 7]),
        (cmp("born", Eq, d(1990, 1, 1)), vec![1, 5]),
        (
            between("born", d(1985, 6, 15), d(1990, 1, 1), false),
            vec![1, 2, 5, 6],
        ),
        (cmp("born", Gt, d(2000, 1, 1)), vec![4]),
        (cmp("born", Gt, d(500, 1, 1)), vec![1, 2, 4, 5, 6, 7]),
        (cmp("seen", Gt, ts(2024, 1, 1, 0, 0, 0, 0)), vec![1, 5]),
        (
            cmp("seen", GtEq, ts(2024, 1, 1, 0, 0, 0, 0)),
            vec![1, 2, 5, 6],
        ),
        (cmp("seen", Lt, ts(2024, 1, 1, 0, 0, 0, 0)), vec![3, 7]),
        (cmp("seen", Eq, ts(2024, 1, 1, 0, 0, 0, 1)), vec![1]),
        (
            in_(
                "seen",
                vec![ts(1000, 1, 1, 0, 0, 0, 0), ts(2024, 6, 1, 12, 0, 0, 0)],
                true,
            ),
            vec![1, 2, 3, 6],
        ),
        // Text: code-point order, exact equality (trailing spaces count).
        (cmp("name", Eq, t("alice")), vec![1]),
        (cmp("name", Eq, t("alice ")), vec![6]),
        (cmp("name", Lt, t("b")), vec![1, 2, 5, 6]),
        (cmp("name", Gt, t("alice")), vec![3, 6, 7]),
        (in_("name", vec![t("bob"), t("ALICE")], false), vec![3]),
        (between("name", t("a"), t("b"), false), vec![1, 5, 6]),
        (between("name", t("a"), t("b"), true), vec![2, 3, 7]),
        // LIKE: % and _, case-sensitive, _ is one character, no escape character.
        (like("name", "alice", false), vec![1]),
        (like("name", "ALICE", false), vec![]),
        (like("name", "A%", false), vec![2]),
        (like("name", "a%", false), vec![1, 5, 6]),
        (like("name", "%e", false), vec![1, 2, 7]),
        (like("name", "_lice", false), vec![1, 2, 7]),
        (like("name", "alice_", false), vec![6]),
        (like("name", "a_b%c", false), vec![5]),
        (like("name", "a\\_b%", false), vec![]),
        (like("name", "a%", true), vec![2, 3, 7]),
        (like("name", "%", false), vec![1, 2, 3, 5, 6, 7]),
        (not(like("name", "%LIC%", false)), vec![1, 2, 3, 5, 6, 7]),
        // Values that look like SQL are data.
        (cmp("name", Eq, t("' OR 1=1 --")), vec![]),
        (
            cmp("name", NotEq, t("x\"; DROP TABLE t; --")),
            vec![1, 2, 3, 5, 6, 7],
        ),
        (like("name", "%' OR '1'='1", false), vec![]),
    ];
    for (filter, want) in cases {
        let got = ids(store, tb, s, Some(filter.clone())).await;
        assert_eq!(got, want, "{be}: filter {filter:?}");
    }
    // No filter: every row, in row-number order, all columns typed.
    let all = LocalSelect {
        derived: Vec::new(),
        columns: s.names().iter().map(|n| n.to_string()).collect(),
        filter: None,
        mask: None,
    };
    let got = store.select(tb, s, &all).await.expect("select all");
    let want: Vec<Row> = people_rows().into_iter().map(|(_, r)| r).collect();
    assert_table(be, "select all", &got, &want);
    // Chosen columns, repeated and reordered, and no columns at all.
    let q = LocalSelect {
        derived: Vec::new(),
        columns: vec!["born".into(), "id".into(), "born".into()],
        filter: Some(cmp("id", LtEq, i(2))),
        mask: None,
    };
    let got = store.select(tb, s, &q).await.expect("select columns");
    assert_table(
        be,
        "select columns",
        &got,
        &[
            vec![d(1990, 1, 1), i(1), d(1990, 1, 1)],
            vec![d(1985, 6, 15), i(2), d(1985, 6, 15)],
        ],
    );
    let q = LocalSelect {
        derived: Vec::new(),
        columns: vec![],
        filter: Some(cmp("id", LtEq, i(2))),
        mask: None,
    };
    let got = store.select(tb, s, &q).await.expect("select no columns");
    assert_eq!(got, vec![Vec::<Value>::new(); 2], "{be}: select no columns");
}

async fn errors(store: &dyn DatasetStore, tb: &str, s: &Schema) {
    let be = store.backend();
    let sel = |filter: P| LocalSelect {
        derived: Vec::new(),
        columns: vec!["id".into()],
        filter: Some(filter),
        mask: None,
    };
    let bad_names = [
        sel(cmp("nope", CmpOp::Eq, i(1))),
        sel(cmp("ID", CmpOp::Eq, i(1))),
        LocalSelect {
            derived: Vec::new(),
            columns: vec!["id".into(), "x\"; DROP TABLE t; --".into()],
            filter: None,
            mask: None,
        },
        sel(like("missing", "a", false)),
        sel(P::IsNull {
            column: "".into(),
            negated: false,
        }),
    ];
    for q in bad_names {
        let r = store.select(tb, s, &q).await;
        assert!(
            matches!(r, Err(StoreError::InvalidName(_))),
            "{be}: {q:?}: {r:?}"
        );
    }
    for q in [
        agg(None, &["nope"], vec![A::CountRows]),
        agg(None, &[], vec![A::Sum(c("nope"))]),
        agg(Some(cmp("nope", CmpOp::Eq, i(1))), &[], vec![A::CountRows]),
    ] {
        let r = store.aggregate(tb, s, &q).await;
        assert!(
            matches!(r, Err(StoreError::InvalidName(_))),
            "{be}: {q:?}: {r:?}"
        );
    }
    let bad_queries = [
        sel(cmp("id", CmpOp::Eq, t("1"))),
        sel(cmp("n", CmpOp::Eq, f(1.0))),
        sel(cmp("name", CmpOp::Eq, i(1))),
        sel(cmp("born", CmpOp::Eq, t("1990-01-01"))),
        sel(cmp("active", CmpOp::Eq, i(1))),
        sel(cmp("seen", CmpOp::Eq, d(2024, 1, 1))),
        sel(cmp("id", CmpOp::Eq, N)),
        sel(cmp("score", CmpOp::Eq, f(f64::NAN))),
        sel(cmp("name", CmpOp::Eq, t("a\0b"))),
        sel(in_("n", vec![], false)),
        sel(in_("n", vec![i(1), t("2")], false)),
        sel(between("n", i(1), t("2"), false)),
        sel(like("n", "1%", false)),
        sel(like("name", "a\0", false)),
    ];
    for q in bad_queries {
        let r = store.select(tb, s, &q).await;
        assert!(
            matches!(r, Err(StoreError::InvalidQuery(_))),
            "{be}: {q:?}: {r:?}"
        );
    }
    for q in [
        agg(None, &[], vec![A::Sum(c("name"))]),
        agg(None, &[], vec![A::SumSquares(c("born"))]),
        agg(None, &[], vec![A::Sum(c("active"))]),
        agg(Some(cmp("name", CmpOp::Lt, i(3))), &[], vec![A::CountRows]),
    ] {
        let r = store.aggregate(tb, s, &q).await;
        assert!(
            matches!(r, Err(StoreError::InvalidQuery(_))),
            "{be}: {q:?}: {r:?}"
        );
    }
    // Deep nesting is refused, not a stack overflow.
    let mut deep = cmp("id", CmpOp::Eq, i(1));
    for _ in 0..10_000 {
        deep = not(deep);
    }
    let r = store.select(tb, s, &sel(deep)).await;
    assert!(
        matches!(r, Err(StoreError::InvalidQuery(_))),
        "{be}: deep nesting: {r:?}"
    );
    // A missing table.
    let r = store
        .select(
            &format!("{tb}_missing"),
            s,
            &sel(cmp("id", CmpOp::Eq, i(1))),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{be}: {r:?}");
    assert_eq!(store.row_count(tb).await.expect("row_count"), 7);
}

async fn empty_and_overflow(store: &dyn DatasetStore, p: &str) {
    let be = store.backend();
    let s = people_schema();
    let empty = format!("{p}empty_q");
    load(store, &empty, &s, &[]).await.expect("load empty");
    check_agg(
        store,
        &empty,
        &s,
        agg(
            None,
            &[],
            vec![
                A::CountRows,
                A::Count(c("n")),
                A::Sum(c("n")),
                A::Max(c("name")),
            ],
        ),
        vec![vec![i(0), i(0), N, N]],
    )
    .await;
    check_agg(
        store,
        &empty,
        &s,
        agg(None, &["name"], vec![A::CountRows]),
        vec![],
    )
    .await;
    assert!(ids(store, &empty, &s, None).await.is_empty());
    store.drop_table(&empty).await.expect("drop_table");

    let big = format!("{p}overflow_q");
    let bs = Schema {
        columns: vec![
            col("v", ColumnType::Integer, true),
            col("x", ColumnType::Float, true),
        ],
    };
    let rows = vec![(0, vec![i(i64::MAX), f(1e200)]), (1, vec![i(1), f(1e200)])];
    load(store, &big, &bs, &[&rows])
        .await
        .expect("load overflow");
    let r = store
        .aggregate(&big, &bs, &agg(None, &[], vec![A::Sum(c("v"))]))
        .await;
    assert!(r.is_err(), "{be}: integer SUM overflow gave {r:?}");
    let r = store
        .aggregate(&big, &bs, &agg(None, &[], vec![A::SumSquares(c("x"))]))
        .await;
    assert!(r.is_err(), "{be}: float SUM of squares overflow gave {r:?}");
    // Without overflow the extremes are exact.
    check_agg(
        store,
        &big,
        &bs,
        agg(
            Some(cmp("v", CmpOp::Gt, i(1))),
            &[],
            vec![A::Sum(c("v")), A::Max(c("v"))],
        ),
        vec![vec![i(i64::MAX), i(i64::MAX)]],
    )
    .await;
    store.drop_table(&big).await.expect("drop_table");
}

/// Column names and literals that are SQL in disguise are data.
async fn injection(store: &dyn DatasetStore, p: &str) {
    let be = store.backend();
    let tb = format!("{p}inject_q");
    let names = ["x\"; DROP TABLE t; --", "' OR 1=1 --", "a`b", "it's \"q\""];
    let s = Schema {
        columns: vec![
            col(names[0], ColumnType::Text, true),
            col(names[1], ColumnType::Integer, true),
            col(names[2], ColumnType::Text, true),
            col(names[3], ColumnType::Boolean, true),
        ],
    };
    let evil = [
        "x\"; DROP TABLE t; --",
        "' OR 1=1 --",
        "`; DROP TABLE x; --",
        "\\",
        "a'b\"c`d",
    ];
    let rows: Vec<(u64, Row)> = evil
        .iter()
        .enumerate()
        .map(|(k, e)| {
            (
                k as u64,
                vec![t(e), i(k as i64), t(&e.to_uppercase()), b(k % 2 == 0)],
            )
        })
        .collect();
    load(store, &tb, &s, &[&rows])
        .await
        .expect("load injection table");
    for (k, e) in evil.iter().enumerate() {
        let q = LocalSelect {
            derived: Vec::new(),
            columns: vec![names[1].into(), names[0].into()],
            filter: Some(P::And(vec![
                cmp(names[0], CmpOp::Eq, t(e)),
                like(names[0], e, false),
                in_(names[2], vec![t(&e.to_uppercase()), t("' OR ''='")], false),
            ])),
            mask: None,
        };
        let got = store.select(&tb, &s, &q).await.expect("select injection");
        assert_eq!(got, vec![vec![i(k as i64), t(e)]], "{be}: literal {e:?}");
    }
    let got = store
        .aggregate(
            &tb,
            &s,
            &agg(
                Some(cmp(names[0], CmpOp::NotEq, t("' OR 1=1 --"))),
                &[names[3]],
                vec![A::CountRows, A::Sum(c(names[1])), A::Max(c(names[2]))],
            ),
        )
        .await
        .expect("aggregate injection");
    assert_table(
        be,
        "aggregate injection",
        &got,
        &[
            vec![b(false), i(1), i(3), t("\\")],
            vec![b(true), i(3), i(6), t("`; DROP TABLE X; --")],
        ],
    );
    assert!(store.table_exists(&tb).await.expect("table_exists"));
    assert_eq!(store.row_count(&tb).await.expect("row_count"), 5);
    store.drop_table(&tb).await.expect("drop_table");
}
