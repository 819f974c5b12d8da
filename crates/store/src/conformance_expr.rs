//! Row expressions in the conformance suite: every backend computes every kind of
//! expression exactly as the reference evaluator (`scalar_eval`) does, function by
//! function, over NULLs, negative numbers, integer division and remainders, division by
//! zero, `-0.0`, mixed-case and non-ASCII text, a leap day and year ends; and refuses,
//! as the reference does, an integer result outside 64 bits.

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use super::conformance::{col, date, load, same, ts};
use super::scalar_eval;
use super::DatasetStore;
use consort_model::local_query::{CmpOp, LocalAggregate, LocalAggregateQuery, LocalSelect};
use consort_model::scalar::{ArithOp, DatePart, Derived, MathFunc, ScalarExpr};
use consort_model::value::{ColumnType, Row, Schema, Value};

fn schema() -> Schema {
    Schema {
        columns: vec![
            col("i", ColumnType::Integer, true),
            col("j", ColumnType::Integer, true),
            col("f", ColumnType::Float, true),
            col("g", ColumnType::Float, true),
            col("t", ColumnType::Text, true),
            col("u", ColumnType::Text, true),
            col("d", ColumnType::Date, true),
            col("ts", ColumnType::Timestamp, true),
            col("b", ColumnType::Boolean, true),
        ],
    }
}

fn rows() -> Vec<(u64, Row)> {
    use Value::{Boolean as B, Float as F, Integer as I, Null as N};
    let t = |s: &str| Value::Text(s.into());
    let d = |y, m, dd| Value::Date(date(y, m, dd));
    let raw: Vec<Row> = vec![
        vec![
            I(7),
            I(2),
            F(2.5),
            F(0.5),
            t("apple"),
            t("Apple"),
            d(2024, 2, 29),
            ts(2024, 2, 29, 23, 59, 59, 999_999),
            B(true),
        ],
        vec![
            I(-7),
            I(2),
            F(-2.5),
            F(-0.0),
            t("Banana"),
            t("banana"),
            d(2023, 12, 31),
            ts(2023, 12, 31, 0, 0, 0, 0),
            B(false),
        ],
        vec![
            I(7),
            I(-2),
            F(0.1),
            F(0.2),
            t("ünï"),
            t("ünï"),
            d(2000, 1, 1),
            ts(1999, 12, 31, 12, 30, 0, 1),
            N,
        ],
        vec![
            I(-7),
            I(-2),
            F(1e300),
            F(-2.0),
            t(""),
            t("z"),
            d(1900, 1, 1),
            ts(1970, 1, 1, 0, 0, 0, 0),
            B(true),
        ],
        vec![
            I(5),
            I(0),
            F(3.0),
            F(0.0),
            t("a b"),
            t("a"),
            d(9999, 12, 31),
            ts(2021, 7, 4, 15, 0, 0, 0),
            B(false),
        ],
        vec![
            I(0),
            I(3),
            F(-0.0),
            F(2.0),
            t("Zebra"),
            t("apple"),
            d(2023, 3, 1),
            ts(2023, 3, 1, 6, 0, 0, 0),
            B(true),
        ],
        vec![N, I(4), N, F(1.0), N, t("x"), N, N, N],
        vec![
            I(12),
            N,
            F(4.0),
            N,
            t("x"),
            N,
            d(2024, 12, 30),
            ts(2024, 12, 30, 1, 2, 3, 4),
            B(false),
        ],
    ];
    raw.into_iter()
        .enumerate()
        .map(|(n, r)| (n as u64, r))
        .collect()
}

fn c(name: &str) -> Box<ScalarExpr> {
    Box::new(ScalarExpr::column(name))
}

fn lit(value: Value, ty: ColumnType) -> Box<ScalarExpr> {
    Box::new(ScalarExpr::Literal { value, ty })
}

fn arith(op: ArithOp, left: Box<ScalarExpr>, right: Box<ScalarExpr>) -> ScalarExpr {
    ScalarExpr::Arith { op, left, right }
}

fn cmp(op: CmpOp, left: Box<ScalarExpr>, right: Box<ScalarExpr>) -> ScalarExpr {
    ScalarExpr::Compare { op, left, right }
}

/// The expressions checked, each with a label for failures.
fn cases() -> Vec<(&'static str, ScalarExpr)> {
    use ArithOp::*;
    use ColumnType::{Float, Integer, Text};
    let extract = |part, e: Box<ScalarExpr>| ScalarExpr::Extract { part, expr: e };
    vec![
        ("i + j", arith(Add, c("i"), c("j"))),
        ("i - j", arith(Sub, c("i"), c("j"))),
        ("i * j", arith(Mul, c("i"), c("j"))),
        (
            "i / j (truncates, by zero NULL)",
            arith(Div, c("i"), c("j")),
        ),
        (
            "i % j (sign of i, by zero NULL)",
            arith(Rem, c("i"), c("j")),
        ),
        ("f + g", arith(Add, c("f"), c("g"))),
        ("f * g", arith(Mul, c("f"), c("g"))),
        ("f / g (by zero NULL)", arith(Div, c("f"), c("g"))),
        (
            "i as float + f",
            arith(Add, Box::new(ScalarExpr::ToFloat(c("i"))), c("f")),
        ),
        ("-i", ScalarExpr::Negate(c("i"))),
        ("-f", ScalarExpr::Negate(c("f"))),
        ("ABS(i)", ScalarExpr::Abs(c("i"))),
        ("ABS(f)", ScalarExpr::Abs(c("f"))),
        ("t || u", ScalarExpr::Concat(c("t"), c("u"))),
        ("t < u (code points)", cmp(CmpOp::Lt, c("t"), c("u"))),
        ("t = u (case-sensitive)", cmp(CmpOp::Eq, c("t"), c("u"))),
        ("i >= j", cmp(CmpOp::GtEq, c("i"), c("j"))),
        (
            "d < DATE 2023-06-01",
            cmp(
                CmpOp::Lt,
                c("d"),
                lit(Value::Date(date(2023, 6, 1)), ColumnType::Date),
            ),
        ),
        (
            "b = TRUE",
            cmp(
                CmpOp::Eq,
                c("b"),
                lit(Value::Boolean(true), ColumnType::Boolean),
            ),
        ),
        (
            "i > 0 AND b (three-valued)",
            ScalarExpr::And(vec![
                cmp(CmpOp::Gt, c("i"), lit(Value::Integer(0), Integer)),
                ScalarExpr::column("b"),
            ]),
        ),
        (
            "i > 0 OR t IS NULL",
            ScalarExpr::Or(vec![
                cmp(CmpOp::Gt, c("i"), lit(Value::Integer(0), Integer)),
                ScalarExpr::IsNull {
                    expr: c("t"),
                    negated: false,
                },
            ]),
        ),
        ("NOT b", ScalarExpr::Not(c("b"))),
        (
            "CASE WHEN f > 1 THEN 'big' WHEN f IS NULL THEN 'none' END",
            ScalarExpr::Case {
                whens: vec![
                    (
                        cmp(CmpOp::Gt, c("f"), lit(Value::Float(1.0), Float)),
                        ScalarExpr::Literal {
                            value: Value::Text("big".into()),
                            ty: Text,
                        },
                    ),
                    (
                        ScalarExpr::IsNull {
                            expr: c("f"),
                            negated: false,
                        },
                        ScalarExpr::Literal {
                            value: Value::Text("none".into()),
                            ty: Text,
                        },
                    ),
                ],
                otherwise: None,
            },
        ),
        (
            "CASE WHEN b THEN i ELSE NULL END",
            ScalarExpr::Case {
                whens: vec![(ScalarExpr::column("b"), ScalarExpr::column("i"))],
                otherwise: Some(lit(Value::Null, Integer)),
            },
        ),
        (
            "COALESCE(i, j, 0)",
            ScalarExpr::Coalesce(vec![
                ScalarExpr::column("i"),
                ScalarExpr::column("j"),
                ScalarExpr::Literal {
                    value: Value::Integer(0),
                    ty: Integer,
                },
            ]),
        ),
        (
            "NULLIF(t, u) (case-sensitive)",
            ScalarExpr::NullIf(c("t"), c("u")),
        ),
        (
            "NULLIF(i, 7)",
            ScalarExpr::NullIf(c("i"), lit(Value::Integer(7), Integer)),
        ),
        ("CAST(i AS TEXT)", ScalarExpr::IntegerToText(c("i"))),
        ("YEAR(d)", extract(DatePart::Year, c("d"))),
        ("QUARTER(d)", extract(DatePart::Quarter, c("d"))),
        ("MONTH(d)", extract(DatePart::Month, c("d"))),
        ("DAY(d)", extract(DatePart::Day, c("d"))),
        ("DOW(d)", extract(DatePart::DayOfWeek, c("d"))),
        ("DOY(d)", extract(DatePart::DayOfYear, c("d"))),
        ("YEAR(ts)", extract(DatePart::Year, c("ts"))),
        ("DOW(ts)", extract(DatePart::DayOfWeek, c("ts"))),
        ("HOUR(ts)", extract(DatePart::Hour, c("ts"))),
        ("SQRT(f) (negative: NULL)", math(MathFunc::Sqrt, c("f"))),
        ("LN(f) (zero or negative: NULL)", math(MathFunc::Ln, c("f"))),
        ("EXP(g)", math(MathFunc::Exp, c("g"))),
        ("FLOOR(f)", math(MathFunc::Floor, c("f"))),
        ("CEIL(f)", math(MathFunc::Ceil, c("f"))),
        ("SIGN(i)", ScalarExpr::Sign(c("i"))),
        ("SIGN(f) (-0.0 is 0)", ScalarExpr::Sign(c("f"))),
        ("LENGTH(t) (characters)", ScalarExpr::Length(c("t"))),
    ]
}

fn math(func: MathFunc, arg: Box<ScalarExpr>) -> ScalarExpr {
    ScalarExpr::Math { func, arg }
}

fn derived(expr: ScalarExpr) -> Vec<Derived> {
    vec![Derived {
        name: "_consort_e0".into(),
        expr,
    }]
}

/// Every case, as a selection of the derived column, equals the reference evaluator's
/// value on every row; a filter and a grouped aggregate over derived columns agree too.
pub(super) async fn run(store: &dyn DatasetStore, p: &str) {
    let table = format!("{p}expr");
    let schema = schema();
    let rows = rows();
    load(store, &table, &schema, &[&rows]).await.unwrap();
    for (label, expr) in cases() {
        let q = LocalSelect {
            derived: derived(expr.clone()),
            columns: vec!["_consort_e0".into()],
            filter: None,
            mask: None,
        };
        let got = store
            .select(&table, &schema, &q)
            .await
            .unwrap_or_else(|e| panic!("{}: {label}: {e}", store.backend()));
        assert_eq!(got.len(), rows.len(), "{}: {label}", store.backend());
        for ((_, row), out) in rows.iter().zip(&got) {
            let want = scalar_eval::eval(&expr, &schema, row)
                .unwrap_or_else(|e| panic!("reference: {label}: {e}"));
            assert!(
                same(&out[0], &want),
                "{}: {label} on {row:?}: got {:?}, want {want:?}",
                store.backend(),
                out[0]
            );
        }
    }
    grouped(store, &table, &schema, &rows).await;
    overflow(store, p).await;
    store.drop_table(&table).await.unwrap();
}

/// `SELECT YEAR(d), COUNT(*), SUM(i * j) … WHERE i + j > 0 GROUP BY YEAR(d)`.
async fn grouped(store: &dyn DatasetStore, table: &str, schema: &Schema, rows: &[(u64, Row)]) {
    use ArithOp::*;
    let year = ScalarExpr::Extract {
        part: DatePart::Year,
        expr: c("d"),
    };
    let product = arith(Mul, c("i"), c("j"));
    let positive = arith(Add, c("i"), c("j"));
    let q = LocalAggregateQuery {
        derived: vec![
            Derived {
                name: "_consort_e0".into(),
                expr: year.clone(),
            },
            Derived {
                name: "_consort_e1".into(),
                expr: product.clone(),
            },
            Derived {
                name: "_consort_e2".into(),
                expr: positive.clone(),
            },
        ],
        filter: Some(consort_model::local_query::Predicate::Compare {
            column: "_consort_e2".into(),
            op: CmpOp::Gt,
            value: Value::Integer(0),
        }),
        group_by: vec!["_consort_e0".into()],
        aggregates: vec![
            LocalAggregate::CountRows,
            LocalAggregate::Sum("_consort_e1".into()),
        ],
    };
    let got = store.aggregate(table, schema, &q).await.unwrap();
    let mut want: BTreeMap<Option<i64>, (i64, Option<i64>)> = BTreeMap::new();
    for (_, row) in rows {
        let keep = scalar_eval::eval(&positive, schema, row).unwrap();
        if !matches!(keep, Value::Integer(s) if s > 0) {
            continue;
        }
        let key = match scalar_eval::eval(&year, schema, row).unwrap() {
            Value::Integer(y) => Some(y),
            _ => None,
        };
        let entry = want.entry(key).or_insert((0, None));
        entry.0 += 1;
        if let Value::Integer(v) = scalar_eval::eval(&product, schema, row).unwrap() {
            entry.1 = Some(entry.1.unwrap_or(0) + v);
        }
    }
    let want: Vec<Row> = want
        .into_iter()
        .map(|(k, (n, s))| {
            vec![
                k.map_or(Value::Null, Value::Integer),
                Value::Integer(n),
                s.map_or(Value::Null, Value::Integer),
            ]
        })
        .collect();
    assert_eq!(got, want, "{}: grouped by an expression", store.backend());
}

/// An integer result outside 64 bits is refused by every backend, never wrapped or
/// turned into a float.
async fn overflow(store: &dyn DatasetStore, p: &str) {
    use ArithOp::*;
    let table = format!("{p}exprbig");
    let schema = Schema {
        columns: vec![
            col("i", ColumnType::Integer, true),
            col("j", ColumnType::Integer, true),
        ],
    };
    let rows = vec![(0u64, vec![Value::Integer(i64::MIN), Value::Integer(-1)])];
    load(store, &table, &schema, &[&rows]).await.unwrap();
    let refused = [
        ("i * i", arith(Mul, c("i"), c("i"))),
        ("i + i", arith(Add, c("i"), c("i"))),
        (
            "i - 1",
            arith(Sub, c("i"), lit(Value::Integer(1), ColumnType::Integer)),
        ),
        ("i / j", arith(Div, c("i"), c("j"))),
        ("-i", ScalarExpr::Negate(c("i"))),
        ("ABS(i)", ScalarExpr::Abs(c("i"))),
    ];
    for (label, expr) in refused {
        assert!(
            scalar_eval::eval(&expr, &schema, &rows[0].1).is_err(),
            "reference accepts {label}"
        );
        let q = LocalSelect {
            derived: derived(expr),
            columns: vec!["_consort_e0".into()],
            filter: None,
            mask: None,
        };
        let got = store.select(&table, &schema, &q).await;
        assert!(
            got.is_err(),
            "{}: {label} on i64::MIN gave {got:?} instead of an error",
            store.backend()
        );
    }
    // EXP beyond a float's range is refused too.
    let q = LocalSelect {
        derived: derived(ScalarExpr::Math {
            func: MathFunc::Exp,
            arg: Box::new(ScalarExpr::ToFloat(c("j"))),
        }),
        columns: vec!["_consort_e0".into()],
        filter: None,
        mask: None,
    };
    assert_eq!(
        store.select(&table, &schema, &q).await.unwrap(),
        vec![vec![Value::Float((-1.0f64).exp())]],
        "{}",
        store.backend()
    );
    let q = LocalSelect {
        derived: derived(ScalarExpr::Math {
            func: MathFunc::Exp,
            arg: Box::new(ScalarExpr::Negate(Box::new(ScalarExpr::ToFloat(c("i"))))),
        }),
        columns: vec!["_consort_e0".into()],
        filter: None,
        mask: None,
    };
    assert!(
        store.select(&table, &schema, &q).await.is_err(),
        "{}: EXP(9.2e18) was not refused",
        store.backend()
    );
    // i64::MIN % -1 is 0 everywhere.
    let q = LocalSelect {
        derived: derived(arith(Rem, c("i"), c("j"))),
        columns: vec!["_consort_e0".into()],
        filter: None,
        mask: None,
    };
    let got = store.select(&table, &schema, &q).await.unwrap();
    assert_eq!(got, vec![vec![Value::Integer(0)]], "{}", store.backend());
    store.drop_table(&table).await.unwrap();
}
