//! The planner on the second set of functions (docs/QUERY.md §1.1): `ROUND`, `POWER`,
//! `GREATEST`/`LEAST`, text functions, dates and the further casts.

use super::*;

/// `sales` plus `visits` (m0): a date, a timestamp and a boolean.
fn visit_catalog() -> consort_query::Catalog {
    let mut c = catalog();
    c.datasets.push(entry(
        member(0),
        "visits",
        &[
            ("day", "date", true),
            ("at", "timestamp", true),
            ("ok", "boolean", true),
            ("n", "integer", true),
            ("label", "text", true),
        ],
    ));
    c
}

fn visits(sql: &str) -> Plan {
    plan(sql, &visit_catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn visits_err(sql: &str) -> String {
    match plan(sql, &visit_catalog()) {
        Ok(p) => panic!("{sql} planned: {:?}", p.local),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "multi-line error {s}");
            s
        }
    }
}

fn types(p: &Plan) -> Vec<ColumnType> {
    derived(p)
        .iter()
        .map(|e| e.result_type(&p.schema).unwrap())
        .collect()
}

#[test]
fn round_power_greatest_and_least_are_typed_and_bounded() {
    let p = planned(
        "SELECT SUM(ROUND(amount)), SUM(ROUND(amount, 2)), SUM(ROUND(qty, -1)), \
                SUM(POWER(qty, 2)), MAX(GREATEST(qty, amount, NULL)), \
                COUNT(LEAST(region, note)) FROM sales",
    );
    let d = derived(&p);
    assert_eq!(
        d[1],
        ScalarExpr::Round {
            arg: col("amount"),
            digits: 2
        }
    );
    assert_eq!(
        d[3],
        ScalarExpr::Power(
            Box::new(ScalarExpr::ToFloat(col("qty"))),
            Box::new(ScalarExpr::Literal {
                value: Value::Float(2.0),
                ty: ColumnType::Float
            })
        )
    );
    assert_eq!(
        types(&p),
        [
            ColumnType::Float,
            ColumnType::Float,
            // ROUND keeps an integer an integer.
            ColumnType::Integer,
            ColumnType::Float,
            // Integers widen beside floats; the NULL takes the type.
            ColumnType::Float,
            ColumnType::Text
        ]
    );
    for (sql, needle) in [
        (
            "SELECT SUM(ROUND(amount, qty)) FROM sales",
            "integer constant",
        ),
        ("SELECT SUM(ROUND(amount, 19)) FROM sales", "-18 to 18"),
        (
            "SELECT SUM(ROUND(amount, 99999999999999999999)) FROM sales",
            "-18 to 18",
        ),
        ("SELECT COUNT(ROUND(region)) FROM sales", "ROUND of a text"),
        ("SELECT SUM(POWER(region, 2)) FROM sales", "POWER of a text"),
        ("SELECT SUM(POWER(qty)) FROM sales", "POWER takes 2"),
        ("SELECT COUNT(GREATEST(region, qty)) FROM sales", "mix"),
        (
            "SELECT COUNT(GREATEST()) FROM sales",
            "GREATEST takes 1 to 16",
        ),
    ] {
        let e = err(sql);
        assert!(e.contains(needle), "{sql}: {e}");
    }
    let many: Vec<String> = (0..17).map(|i| format!("qty + {i}")).collect();
    let e = err(&format!(
        "SELECT MAX(LEAST({})) FROM sales",
        many.join(", ")
    ));
    assert!(e.contains("1 to 16"), "{e}");
}

#[test]
fn text_functions_take_constant_positions_and_one_trim_character() {
    let p = planned(
        "SELECT COUNT(LOWER(region)), COUNT(UPPER(note)), COUNT(SUBSTR(note, 2, 3)), \
                COUNT(SUBSTRING(note FROM 2 FOR 3)), COUNT(SUBSTRING(note, -1)), \
                COUNT(TRIM(note)), COUNT(TRIM(LEADING 'x' FROM note)), \
                COUNT(REPLACE(note, 'a', region)) FROM sales",
    );
    let d = derived(&p);
    // SUBSTR and SUBSTRING … FROM … FOR are one expression.
    assert_eq!(d.len(), 7, "{d:?}");
    assert_eq!(
        d[2],
        ScalarExpr::Substr {
            arg: col("note"),
            start: 2,
            len: Some(3)
        }
    );
    assert_eq!(
        d[4],
        ScalarExpr::Trim {
            arg: col("note"),
            side: consort_model::scalar::TrimSide::Both,
            ch: ' '
        }
    );
    assert!(types(&p).iter().all(|t| *t == ColumnType::Text));
    for (sql, needle) in [
        (
            "SELECT COUNT(SUBSTR(note, qty)) FROM sales",
            "integer constant",
        ),
        (
            "SELECT COUNT(SUBSTR(note, 1, -1)) FROM sales",
            "negative length",
        ),
        ("SELECT COUNT(LOWER(qty)) FROM sales", "LOWER of a integer"),
        (
            "SELECT COUNT(TRIM(BOTH 'ab' FROM note)) FROM sales",
            "one character only",
        ),
        (
            "SELECT COUNT(TRIM(BOTH note FROM note)) FROM sales",
            "text constant",
        ),
        ("SELECT COUNT(REPLACE(note, 1, 'a')) FROM sales", "not text"),
    ] {
        let e = err(sql);
        assert!(e.contains(needle), "{sql}: {e}");
    }
}

#[test]
fn dates_truncate_shift_and_subtract() {
    use consort_model::scalar::{DatePart, IntervalUnit, TruncUnit};
    let p = visits(
        "SELECT COUNT(EXTRACT(WEEK FROM day)), COUNT(DATE_TRUNC('month', day)), \
                COUNT(DATE_TRUNC('Week', at)), COUNT(day + INTERVAL '1' MONTH), \
                COUNT(day - INTERVAL '2 years'), COUNT(day + INTERVAL '3' WEEK), \
                SUM(day - DATE '2024-01-01'), SUM(DATE_DIFF('day', DATE '2024-01-01', day)) \
         FROM visits",
    );
    let d = derived(&p);
    assert_eq!(
        d[0],
        ScalarExpr::Extract {
            part: DatePart::Week,
            expr: col("day")
        }
    );
    assert_eq!(
        d[2],
        ScalarExpr::DateTrunc {
            unit: TruncUnit::Week,
            arg: col("at")
        }
    );
    let shift = |unit, amount| ScalarExpr::AddInterval {
        arg: col("day"),
        unit,
        amount,
    };
    assert_eq!(d[3], shift(IntervalUnit::Month, 1));
    assert_eq!(d[4], shift(IntervalUnit::Month, -24));
    assert_eq!(d[5], shift(IntervalUnit::Day, 21));
    // x - y and DATE_DIFF('day', y, x) are one expression.
    assert_eq!(d.len(), 7, "{d:?}");
    assert_eq!(
        types(&p),
        [
            ColumnType::Integer,
            ColumnType::Date,
            ColumnType::Timestamp,
            ColumnType::Date,
            ColumnType::Date,
            ColumnType::Date,
            ColumnType::Integer
        ]
    );
    for (sql, needle) in [
        (
            "SELECT COUNT(day + INTERVAL '1.5' DAY) FROM visits",
            "INTERVAL '<integer>'",
        ),
        (
            "SELECT COUNT(day + INTERVAL '99999999' DAY) FROM visits",
            "whole date range",
        ),
        (
            "SELECT COUNT(day - INTERVAL '9223372036854775807' YEAR) FROM visits",
            "whole date range",
        ),
        (
            "SELECT COUNT(at + INTERVAL '1' DAY) FROM visits",
            "dates only",
        ),
        (
            "SELECT COUNT(day + INTERVAL '1' HOUR) FROM visits",
            "INTERVAL in HOUR",
        ),
        (
            "SELECT COUNT(DATE_TRUNC('hour', day)) FROM visits",
            "DATE_TRUNC's unit",
        ),
        (
            "SELECT COUNT(DATE_TRUNC('day', n)) FROM visits",
            "DATE_TRUNC of a integer",
        ),
        (
            "SELECT SUM(DATE_DIFF('month', day, day)) FROM visits",
            "'day'",
        ),
        ("SELECT SUM(day - at) FROM visits", "arithmetic"),
    ] {
        let e = visits_err(sql);
        assert!(e.contains(needle), "{sql}: {e}");
    }
}

#[test]
fn the_further_casts_are_planned_and_the_rest_refused() {
    let p = visits(
        "SELECT SUM(CAST(CAST(n AS DOUBLE) AS INTEGER)), SUM(CAST(label AS BIGINT)), \
                SUM(CAST(ok AS INTEGER)), COUNT(CAST(n AS BOOLEAN)), COUNT(CAST(ok AS TEXT)), \
                COUNT(CAST(day AS TEXT)), COUNT(CAST(at AS TEXT)), COUNT(CAST(at AS DATE)), \
                COUNT(CAST(day AS TIMESTAMP)) FROM visits",
    );
    assert_eq!(
        derived(&p)[1],
        ScalarExpr::Cast {
            arg: col("label"),
            to: ColumnType::Integer
        }
    );
    use ColumnType::*;
    assert_eq!(
        types(&p),
        [Integer, Integer, Integer, Boolean, Text, Text, Text, Date, Timestamp]
    );
    for sql in [
        "SELECT COUNT(CAST(label AS DOUBLE)) FROM visits",
        "SELECT COUNT(CAST(label AS DATE)) FROM visits",
        "SELECT COUNT(CAST(day AS INTEGER)) FROM visits",
    ] {
        let e = visits_err(sql);
        assert!(e.contains("the databases disagree"), "{sql}: {e}");
    }
}

#[test]
fn each_new_function_has_its_own_hash_and_explain_text() {
    let sqls = [
        "SELECT SUM(ROUND(amount, 1)) FROM sales",
        "SELECT SUM(ROUND(amount, 2)) FROM sales",
        "SELECT SUM(POWER(amount, 2)) FROM sales",
        "SELECT MAX(GREATEST(amount, 2)) FROM sales",
        "SELECT MAX(LEAST(amount, 2)) FROM sales",
        "SELECT COUNT(LOWER(note)) FROM sales",
        "SELECT COUNT(UPPER(note)) FROM sales",
        "SELECT COUNT(SUBSTR(note, 2)) FROM sales",
        "SELECT COUNT(SUBSTR(note, 2, 1)) FROM sales",
        "SELECT COUNT(TRIM(note)) FROM sales",
        "SELECT COUNT(TRIM(TRAILING ' ' FROM note)) FROM sales",
        "SELECT COUNT(REPLACE(note, 'a', 'b')) FROM sales",
    ];
    let hashes: std::collections::BTreeSet<String> =
        sqls.iter().map(|s| planned(s).hash().to_string()).collect();
    assert_eq!(hashes.len(), sqls.len());
    let p = visits(
        "SELECT COUNT(DATE_TRUNC('quarter', day) + INTERVAL '-1' MONTH), \
                SUM(ROUND(CAST(n AS DOUBLE) / 3, 2)), COUNT(TRIM(LEADING 'x' FROM label)) \
         FROM visits",
    );
    let lines = consort_query::explain(&p).join("\n");
    for needle in [
        "(DATE_TRUNC('quarter', day) + INTERVAL '-1' MONTH)",
        "ROUND((CAST(n AS DOUBLE) / 3.0), 2)",
        "TRIM(LEADING 'x' FROM label)",
    ] {
        assert!(lines.contains(needle), "{needle}: {lines}");
    }
}

#[test]
fn expressions_of_the_first_set_keep_their_plan_hash() {
    // The hash this plan had at ab0f12f, before the second set of functions: new
    // functions only add tags.
    let p = planned(
        "SELECT region, AVG(SQRT(amount) + qty), COUNT(NULLIF(note, 'x')), \
                SUM(CASE WHEN qty > 0 THEN ABS(year - 2000) ELSE SIGN(amount) END) \
         FROM sales WHERE LENGTH(region) > 2 AND CAST(year AS TEXT) <> '1999' GROUP BY region",
    );
    assert_eq!(
        p.hash().to_string(),
        "05340f798ad33fee6c42a4ffc1199d5e436e653ad621274713a907c957a70619"
    );
}
