//! The second set of scalar functions in the conformance suite: every backend computes
//! `ROUND`, `POWER`, `GREATEST`/`LEAST`, `LOWER`/`UPPER`, `SUBSTR`, `TRIM`, `REPLACE`,
//! ISO weeks, `DATE_TRUNC`, interval arithmetic, date differences and the further casts
//! exactly as the reference evaluator does, over NULLs, negative numbers, rounding ties,
//! `-0.0`, non-ASCII text, leap days and month ends; and refuses what the reference
//! refuses (a float beyond the integer range, an integer or float overflow).

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Datelike;

use super::conformance::{col, date, load, same, ts};
use super::scalar_eval;
use super::DatasetStore;
use consort_model::local_query::LocalSelect;
use consort_model::scalar::{Derived, IntervalUnit, ScalarExpr, TrimSide, TruncUnit};
use consort_model::value::{ColumnType, Row, Schema, Value};

fn schema() -> Schema {
    Schema {
        columns: vec![
            col("i", ColumnType::Integer, true),
            col("f", ColumnType::Float, true),
            col("g", ColumnType::Float, true),
            col("t", ColumnType::Text, true),
            col("u", ColumnType::Text, true),
            col("d", ColumnType::Date, true),
            col("e", ColumnType::Date, true),
            col("ts", ColumnType::Timestamp, true),
            col("b", ColumnType::Boolean, true),
            col("s", ColumnType::Text, true),
        ],
    }
}

/// Whether a row holds a date before 1000.
fn early(row: &Row) -> bool {
    row.iter().any(|v| match v {
        Value::Date(d) => d.year() < 1000,
        Value::Timestamp(t) => t.year() < 1000,
        _ => false,
    })
}

fn rows() -> Vec<(u64, Row)> {
    use Value::{Boolean as B, Float as F, Integer as I, Null as N};
    let t = |s: &str| Value::Text(s.into());
    let d = |y, m, dd| Value::Date(date(y, m, dd));
    let raw: Vec<Row> = vec![
        vec![
            I(25),
            F(2.5),
            F(3.0),
            t("  Apple  "),
            t("apple"),
            d(2024, 2, 29),
            d(2023, 2, 28),
            ts(2024, 2, 29, 23, 59, 59, 999_999),
            B(true),
            t("42"),
        ],
        vec![
            I(-25),
            F(-2.5),
            F(0.5),
            t("xxhixx"),
            t("x"),
            d(2024, 1, 31),
            d(2024, 3, 1),
            ts(2023, 12, 31, 0, 0, 0, 0),
            B(false),
            t("-0012"),
        ],
        vec![
            I(15),
            F(0.5),
            F(-1.0),
            t("ünïcode ÄB"),
            t("ÜNÏCODE äb"),
            d(2021, 1, 1),
            d(2020, 12, 31),
            ts(2021, 1, 3, 12, 30, 0, 1),
            N,
            t("+7"),
        ],
        vec![
            I(-15),
            F(-0.5),
            F(-2.0),
            t(""),
            t("z"),
            d(2000, 3, 31),
            d(2000, 2, 29),
            ts(1970, 1, 1, 0, 0, 0, 0),
            B(true),
            t("9223372036854775807"),
        ],
        vec![
            I(0),
            F(1.005),
            F(0.0),
            t("a'b"),
            t("a'b"),
            d(9999, 12, 31),
            d(1900, 1, 1),
            ts(2024, 4, 1, 0, 0, 0, 0),
            B(false),
            t("9223372036854775808"),
        ],
        vec![
            I(12_345),
            F(2.675),
            F(-8.0),
            t("Zebra"),
            t("zebra"),
            d(2023, 12, 31),
            d(2024, 12, 30),
            ts(2024, 12, 30, 1, 2, 3, 4),
            B(true),
            t("12a"),
        ],
        vec![
            I(-12_345),
            F(0.499_999_999_999_999_94),
            F(1e-300),
            t("aaa"),
            t("aa"),
            d(2024, 5, 31),
            d(2024, 5, 1),
            ts(2024, 5, 31, 23, 0, 0, 0),
            B(false),
            t(""),
        ],
        vec![
            I(9_223_372_036_854_770_000),
            F(1e300),
            F(0.1),
            t("x"),
            N,
            d(1900, 1, 1),
            d(1900, 1, 1),
            ts(1999, 12, 31, 12, 0, 0, 0),
            B(true),
            t("1.5"),
        ],
        vec![
            I(-9_223_372_036_854_770_000),
            F(-0.0),
            F(2.0),
            t("  "),
            t(" "),
            d(2024, 12, 31),
            d(2025, 1, 1),
            ts(2025, 1, 1, 0, 0, 0, 0),
            B(false),
            t("12\n"),
        ],
        vec![
            I(-5),
            F(4_503_599_627_370_495.5),
            F(-3.0),
            N,
            t("q"),
            N,
            d(2024, 2, 29),
            N,
            N,
            t("-9223372036854775808"),
        ],
        vec![
            N,
            N,
            N,
            t("mixed Case 1"),
            t("MIXED case 1"),
            d(2024, 8, 31),
            N,
            ts(2024, 8, 31, 6, 0, 0, 0),
            B(true),
            N,
        ],
        vec![
            I(3),
            F(5e-324),
            F(0.25),
            t("early"),
            t("EARLY"),
            d(1000, 1, 1),
            d(1000, 3, 1),
            ts(1000, 1, 1, 0, 0, 0, 0),
            B(true),
            t("0"),
        ],
        // Dates before 1000 (MySQL stores none: `early` leaves this row out there).
        vec![
            I(4),
            F(-1.5),
            F(0.75),
            t("earliest"),
            t("EARLIEST"),
            d(1, 1, 1),
            d(44, 3, 15),
            ts(99, 12, 31, 23, 59, 59, 0),
            B(false),
            t("-0"),
        ],
        vec![
            I(-1),
            F(-123.4567),
            F(0.333),
            t("b"),
            t("ä"),
            d(2024, 3, 31),
            d(2024, 3, 31),
            ts(2024, 3, 31, 23, 59, 59, 0),
            B(false),
            t(" 1"),
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

fn text(s: &str) -> Box<ScalarExpr> {
    Box::new(ScalarExpr::Literal {
        value: Value::Text(s.into()),
        ty: ColumnType::Text,
    })
}

fn round(arg: Box<ScalarExpr>, digits: i32) -> ScalarExpr {
    ScalarExpr::Round { arg, digits }
}

fn to_float(e: Box<ScalarExpr>) -> Box<ScalarExpr> {
    Box::new(ScalarExpr::ToFloat(e))
}

fn extreme(greatest: bool, args: &[&str]) -> ScalarExpr {
    ScalarExpr::Extreme {
        greatest,
        args: args.iter().map(|a| ScalarExpr::column(a)).collect(),
    }
}

fn substr(start: i64, len: Option<i64>) -> ScalarExpr {
    ScalarExpr::Substr {
        arg: c("t"),
        start,
        len,
    }
}

fn trim(side: TrimSide, ch: char) -> ScalarExpr {
    ScalarExpr::Trim {
        arg: c("t"),
        side,
        ch,
    }
}

fn trunc(unit: TruncUnit, col: &str) -> ScalarExpr {
    ScalarExpr::DateTrunc { unit, arg: c(col) }
}

fn add(unit: IntervalUnit, amount: i64) -> ScalarExpr {
    ScalarExpr::AddInterval {
        arg: c("d"),
        unit,
        amount,
    }
}

fn cast(col: &str, to: ColumnType) -> ScalarExpr {
    ScalarExpr::Cast { arg: c(col), to }
}

/// The expressions checked, each with a label for failures.
fn cases() -> Vec<(String, ScalarExpr)> {
    use ColumnType as T;
    let mut out: Vec<(String, ScalarExpr)> = Vec::new();
    let mut case = |label: &str, e: ScalarExpr| out.push((label.to_string(), e));
    for digits in [0, 1, 2, 3, -1, -2, 15, 18, -18] {
        case(
            &format!("ROUND(f, {digits}) (ties away)"),
            round(c("f"), digits),
        );
    }
    for digits in [0, 2, -1, -2, -4, -18] {
        case(&format!("ROUND(i, {digits})"), round(c("i"), digits));
    }
    case(
        "POWER(f, g) (domain NULLs)",
        ScalarExpr::Power(c("f"), c("g")),
    );
    case("POWER(g, f)", ScalarExpr::Power(c("g"), c("f")));
    case(
        "POWER(g, 2) (negative base, integral power)",
        ScalarExpr::Power(
            c("g"),
            Box::new(ScalarExpr::Literal {
                value: Value::Float(3.0),
                ty: T::Float,
            }),
        ),
    );
    case(
        "POWER(0.5, |g| * 1000) (underflow is 0)",
        ScalarExpr::Power(
            Box::new(ScalarExpr::Literal {
                value: Value::Float(0.5),
                ty: T::Float,
            }),
            Box::new(ScalarExpr::Arith {
                op: consort_model::scalar::ArithOp::Mul,
                left: Box::new(ScalarExpr::Abs(c("g"))),
                right: Box::new(ScalarExpr::Literal {
                    value: Value::Float(1000.0),
                    ty: T::Float,
                }),
            }),
        ),
    );
    case("GREATEST(f, g)", extreme(true, &["f", "g"]));
    case("LEAST(f, g, f)", extreme(false, &["f", "g", "f"]));
    case("GREATEST(t, u) (code points)", extreme(true, &["t", "u"]));
    case("LEAST(t, u, s)", extreme(false, &["t", "u", "s"]));
    case("GREATEST(d, e) (NULLs ignored)", extreme(true, &["d", "e"]));
    case("LEAST(d, e)", extreme(false, &["d", "e"]));
    case("GREATEST(ts)", extreme(true, &["ts"]));
    case(
        "LEAST(i, ROUND(i, -1))",
        ScalarExpr::Extreme {
            greatest: false,
            args: vec![
                ScalarExpr::column("i"),
                ScalarExpr::Round {
                    arg: c("i"),
                    digits: -1,
                },
            ],
        },
    );
    case(
        "UPPER(t) (ASCII only)",
        ScalarExpr::CaseMap {
            upper: true,
            arg: c("t"),
        },
    );
    case(
        "LOWER(u) (ASCII only)",
        ScalarExpr::CaseMap {
            upper: false,
            arg: c("u"),
        },
    );
    case("SUBSTR(t, 2)", substr(2, None));
    case("SUBSTR(t, 0, 2)", substr(0, Some(2)));
    case("SUBSTR(t, -1, 3)", substr(-1, Some(3)));
    case("SUBSTR(t, 3, 100)", substr(3, Some(100)));
    case("SUBSTR(t, 2, 0)", substr(2, Some(0)));
    case("SUBSTR(t, -5)", substr(-5, None));
    case("SUBSTR(t, huge, huge)", substr(i64::MAX, Some(i64::MAX)));
    case("SUBSTR(t, -huge, huge)", substr(i64::MIN, Some(i64::MAX)));
    case("TRIM(t)", trim(TrimSide::Both, ' '));
    case("TRIM(LEADING 'x' FROM t)", trim(TrimSide::Leading, 'x'));
    case("TRIM(TRAILING 'x' FROM t)", trim(TrimSide::Trailing, 'x'));
    case(
        "TRIM(BOTH 'a' FROM t) (case-sensitive)",
        trim(TrimSide::Both, 'a'),
    );
    case("TRIM(BOTH 'ü' FROM t)", trim(TrimSide::Both, 'ü'));
    case(
        "REPLACE(t, 'x', 'yy')",
        ScalarExpr::Replace {
            arg: c("t"),
            from: text("x"),
            to: text("yy"),
        },
    );
    case(
        "REPLACE(t, '', 'z') (unchanged)",
        ScalarExpr::Replace {
            arg: c("t"),
            from: text(""),
            to: text("z"),
        },
    );
    case(
        "REPLACE(t, 'a', u) (case-sensitive)",
        ScalarExpr::Replace {
            arg: c("t"),
            from: text("a"),
            to: c("u"),
        },
    );
    case(
        "REPLACE(t, 'aa', '-') (left to right)",
        ScalarExpr::Replace {
            arg: c("t"),
            from: text("aa"),
            to: text("-"),
        },
    );
    // LIKE as a boolean expression (FILTER and CASE conditions): case-sensitive, `_` one
    // character, `\` ordinary, NULL for a NULL text.
    for (pattern, negated) in [
        ("%pp%", false),
        ("A%", false),
        ("a_p%", true),
        ("%\\%", false),
        ("%ü%", false),
    ] {
        case(
            &format!("t {}LIKE '{pattern}'", if negated { "NOT " } else { "" }),
            ScalarExpr::Like {
                expr: c("t"),
                pattern: pattern.to_string(),
                negated,
            },
        );
    }
    case(
        "CASE WHEN u LIKE 'app%' THEN 1 ELSE 0 END",
        ScalarExpr::Case {
            whens: vec![(
                ScalarExpr::Like {
                    expr: c("u"),
                    pattern: "app%".into(),
                    negated: false,
                },
                ScalarExpr::Literal {
                    value: Value::Integer(1),
                    ty: ColumnType::Integer,
                },
            )],
            otherwise: Some(Box::new(ScalarExpr::Literal {
                value: Value::Integer(0),
                ty: ColumnType::Integer,
            })),
        },
    );
    for col in ["d", "ts"] {
        case(
            &format!("EXTRACT(WEEK FROM {col}) (ISO)"),
            ScalarExpr::Extract {
                part: consort_model::scalar::DatePart::Week,
                expr: c(col),
            },
        );
        for unit in [
            TruncUnit::Year,
            TruncUnit::Quarter,
            TruncUnit::Month,
            TruncUnit::Week,
            TruncUnit::Day,
        ] {
            case(
                &format!("DATE_TRUNC('{}', {col})", unit.name()),
                trunc(unit, col),
            );
        }
    }
    for (unit, amount) in [
        (IntervalUnit::Day, 1),
        (IntervalUnit::Day, -1),
        (IntervalUnit::Day, 366),
        (IntervalUnit::Day, -36_500),
        (IntervalUnit::Day, 3_652_058),
        (IntervalUnit::Day, -3_652_058),
        (IntervalUnit::Month, 1),
        (IntervalUnit::Month, -1),
        (IntervalUnit::Month, 12),
        (IntervalUnit::Month, -13),
        (IntervalUnit::Month, 1200),
        (IntervalUnit::Month, -119_988),
    ] {
        case(
            &format!("d + INTERVAL '{amount}' {} (clamped)", unit.name()),
            add(unit, amount),
        );
    }
    case(
        "DATE_TRUNC('year', d - INTERVAL '400' DAY) (below year 1000)",
        ScalarExpr::DateTrunc {
            unit: TruncUnit::Year,
            arg: Box::new(add(IntervalUnit::Day, -400)),
        },
    );
    case(
        "EXTRACT(WEEK FROM d - INTERVAL '13' MONTH)",
        ScalarExpr::Extract {
            part: consort_model::scalar::DatePart::Week,
            expr: Box::new(add(IntervalUnit::Month, -13)),
        },
    );
    case("d - e (days)", ScalarExpr::DateDiff(c("d"), c("e")));
    case("e - d (days)", ScalarExpr::DateDiff(c("e"), c("d")));
    case(
        "CAST(f AS INTEGER) (ties away)",
        ScalarExpr::Cast {
            arg: Box::new(ScalarExpr::Case {
                whens: vec![(
                    ScalarExpr::Compare {
                        op: consort_model::local_query::CmpOp::Lt,
                        left: Box::new(ScalarExpr::Abs(c("f"))),
                        right: Box::new(ScalarExpr::Literal {
                            value: Value::Float(1e18),
                            ty: T::Float,
                        }),
                    },
                    ScalarExpr::column("f"),
                )],
                otherwise: None,
            }),
            to: T::Integer,
        },
    );
    case("CAST(s AS INTEGER) (bad text NULL)", cast("s", T::Integer));
    case("CAST(b AS INTEGER)", cast("b", T::Integer));
    case("CAST(i AS BOOLEAN)", cast("i", T::Boolean));
    case("CAST(b AS TEXT)", cast("b", T::Text));
    case("CAST(d AS TEXT)", cast("d", T::Text));
    case("CAST(ts AS TEXT)", cast("ts", T::Text));
    case("CAST(ts AS DATE)", cast("ts", T::Date));
    case("CAST(d AS TIMESTAMP)", cast("d", T::Timestamp));
    case(
        "ROUND(CAST(i AS DOUBLE) / 7, 3)",
        round(
            Box::new(ScalarExpr::Arith {
                op: consort_model::scalar::ArithOp::Div,
                left: to_float(c("i")),
                right: Box::new(ScalarExpr::Literal {
                    value: Value::Float(7.0),
                    ty: T::Float,
                }),
            }),
            3,
        ),
    );
    out
}

fn derived(expr: ScalarExpr) -> Vec<Derived> {
    vec![Derived {
        name: "_consort_e0".into(),
        expr,
    }]
}

fn select(expr: ScalarExpr) -> LocalSelect {
    LocalSelect {
        derived: derived(expr),
        columns: vec!["_consort_e0".into()],
        filter: None,
        mask: None,
    }
}

/// Every case equals the reference evaluator's value on every row.
pub(super) async fn run(store: &dyn DatasetStore, p: &str) {
    let table = format!("{p}funcs");
    let schema = schema();
    let mysql = store.backend() == "mysql";
    let rows: Vec<(u64, Row)> = rows()
        .into_iter()
        .filter(|(_, r)| !(mysql && early(r)))
        .collect();
    load(store, &table, &schema, &[&rows]).await.unwrap();
    for (label, expr) in cases() {
        let got = store
            .select(&table, &schema, &select(expr.clone()))
            .await
            .unwrap_or_else(|e| panic!("{}: {label}: {e}", store.backend()));
        assert_eq!(got.len(), rows.len(), "{}: {label}", store.backend());
        for ((_, row), out) in rows.iter().zip(&got) {
            let want = scalar_eval::eval(&expr, &schema, row)
                .unwrap_or_else(|e| panic!("reference: {label} on {row:?}: {e}"));
            assert!(
                same(&out[0], &want),
                "{}: {label} on {row:?}: got {:?}, want {want:?}",
                store.backend(),
                out[0]
            );
        }
    }
    grouped(store, &table, &schema, &rows).await;
    refused(store, p).await;
    store.drop_table(&table).await.unwrap();
}

/// `SELECT DATE_TRUNC('quarter', d), COUNT(*), SUM(ROUND(i, -1)), MAX(GREATEST(f, g))
/// … WHERE LOWER(t) <> 'x' GROUP BY 1`: the groups, filter and aggregates over the new
/// functions agree with the reference.
async fn grouped(store: &dyn DatasetStore, table: &str, schema: &Schema, rows: &[(u64, Row)]) {
    use consort_model::local_query::{CmpOp, LocalAggregate, LocalAggregateQuery, Predicate};
    let exprs = [
        trunc(TruncUnit::Quarter, "d"),
        round(c("i"), -1),
        extreme(true, &["f", "g"]),
        ScalarExpr::CaseMap {
            upper: false,
            arg: c("t"),
        },
    ];
    let q = LocalAggregateQuery {
        derived: exprs
            .iter()
            .enumerate()
            .map(|(i, e)| Derived {
                name: format!("_consort_e{i}"),
                expr: e.clone(),
            })
            .collect(),
        filter: Some(Predicate::Compare {
            column: "_consort_e3".into(),
            op: CmpOp::NotEq,
            value: Value::Text("x".into()),
        }),
        group_by: vec!["_consort_e0".into()],
        aggregates: vec![
            LocalAggregate::CountRows,
            LocalAggregate::Sum("_consort_e1".into()),
            LocalAggregate::Max("_consort_e2".into()),
        ],
    };
    let got = store.aggregate(table, schema, &q).await.unwrap();
    let eval = |e: &ScalarExpr, row: &Row| scalar_eval::eval(e, schema, row).unwrap();
    let mut want: std::collections::BTreeMap<
        Option<chrono::NaiveDate>,
        (i64, Option<i64>, Option<f64>),
    > = std::collections::BTreeMap::new();
    for (_, row) in rows {
        if !matches!(eval(&exprs[3], row), Value::Text(t) if t.as_str() != "x") {
            continue;
        }
        let key = match eval(&exprs[0], row) {
            Value::Date(d) => Some(d),
            _ => None,
        };
        let entry = want.entry(key).or_insert((0, None, None));
        entry.0 += 1;
        if let Value::Integer(v) = eval(&exprs[1], row) {
            entry.1 = Some(entry.1.unwrap_or(0) + v);
        }
        if let Value::Float(v) = eval(&exprs[2], row) {
            entry.2 = Some(entry.2.map_or(v, |m: f64| m.max(v)));
        }
    }
    let want: Vec<Row> = want
        .into_iter()
        .map(|(k, (n, s, m))| {
            vec![
                k.map_or(Value::Null, Value::Date),
                Value::Integer(n),
                s.map_or(Value::Null, Value::Integer),
                m.map_or(Value::Null, Value::Float),
            ]
        })
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{}: grouped by DATE_TRUNC",
        store.backend()
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g.iter().zip(w).all(|(a, b)| same(a, b)),
            "{}: grouped by DATE_TRUNC: got {g:?}, want {w:?}",
            store.backend()
        );
    }
}

/// What the reference refuses, every backend refuses.
async fn refused(store: &dyn DatasetStore, p: &str) {
    use ColumnType as T;
    let table = format!("{p}funcsbad");
    let schema = Schema {
        columns: vec![
            col("i", T::Integer, true),
            col("f", T::Float, true),
            col("g", T::Float, true),
        ],
    };
    let rows = vec![(
        0u64,
        vec![
            Value::Integer(i64::MAX),
            Value::Float(1e300),
            Value::Float(-9_223_372_036_854_775_808.0),
        ],
    )];
    load(store, &table, &schema, &[&rows]).await.unwrap();
    let big = |v: f64| {
        Box::new(ScalarExpr::Literal {
            value: Value::Float(v),
            ty: T::Float,
        })
    };
    let bad = [
        ("ROUND(i64::MAX, -1)", round(c("i"), -1)),
        ("CAST(1e300 AS INTEGER)", cast("f", T::Integer)),
        ("CAST(-2^63 AS INTEGER)", cast("g", T::Integer)),
        ("POWER(10, 400)", ScalarExpr::Power(big(10.0), big(400.0))),
        ("POWER(1e300, 2)", ScalarExpr::Power(c("f"), big(2.0))),
    ];
    for (label, expr) in bad {
        assert!(
            scalar_eval::eval(&expr, &schema, &rows[0].1).is_err(),
            "reference accepts {label}"
        );
        let got = store.select(&table, &schema, &select(expr)).await;
        assert!(
            got.is_err(),
            "{}: {label} gave {got:?} instead of an error",
            store.backend()
        );
    }
    store.drop_table(&table).await.unwrap();
}
