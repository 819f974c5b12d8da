//! The planner on row expressions (docs/QUERY.md §1.1): each expression becomes one
//! derived column with SQL's conversions made explicit, its columns are used with the
//! permission of its clause, and what the subset refuses is named in one line.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use consort_ledger::policy::Permission;
use consort_model::scalar::{ArithOp, ScalarExpr};
use consort_model::{ColumnType, Value};
use consort_query::{plan, LocalWork, OutputExpr, Plan};
use consort_store::{CmpOp, LocalAggregate, Predicate};
use support::*;

fn planned(sql: &str) -> Plan {
    plan(sql, &catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn err(sql: &str) -> String {
    match plan(sql, &catalog()) {
        Ok(p) => panic!("{sql} planned: {:?}", p.local),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "multi-line error {s}");
            s
        }
    }
}

fn derived(p: &Plan) -> Vec<ScalarExpr> {
    match &p.local {
        LocalWork::Aggregate(q) => q.derived.iter().map(|d| d.expr.clone()).collect(),
        LocalWork::Select(s) => s.derived.iter().map(|d| d.expr.clone()).collect(),
    }
}

fn col(name: &str) -> Box<ScalarExpr> {
    Box::new(ScalarExpr::column(name))
}

#[test]
fn an_aggregate_of_an_expression_aggregates_a_derived_column() {
    let p = planned("SELECT region, AVG(amount - qty) FROM sales GROUP BY region");
    assert_eq!(
        derived(&p),
        [ScalarExpr::Arith {
            op: ArithOp::Sub,
            left: col("amount"),
            // The integer column is widened to float, as SQL does implicitly.
            right: Box::new(ScalarExpr::ToFloat(col("qty"))),
        }]
    );
    let LocalWork::Aggregate(q) = &p.local else {
        panic!()
    };
    assert!(q
        .aggregates
        .contains(&LocalAggregate::Sum("_consort_e0".into())));
    assert_eq!(p.columns()[1], "AVG(amount - qty)");
    // Both columns are used as aggregate inputs, the derived name never.
    let uses: Vec<(String, Vec<Permission>)> = p
        .uses
        .iter()
        .map(|(c, ps)| (c.clone(), ps.iter().copied().collect()))
        .collect();
    assert!(uses.contains(&("amount".into(), vec![Permission::Aggregate])));
    assert!(uses.contains(&("qty".into(), vec![Permission::Aggregate])));
    assert!(!p.uses.keys().any(|c| c.starts_with("_consort")));
}

#[test]
fn a_never_null_expression_needs_no_count_of_its_own() {
    // amount and year are NOT NULL in the catalog, qty is nullable.
    let p = planned(
        "SELECT AVG(amount * 2 + year), AVG(amount + qty), MIN(NULLIF(year, 0)) FROM sales",
    );
    let LocalWork::Aggregate(q) = &p.local else {
        panic!()
    };
    assert!(!q
        .aggregates
        .contains(&LocalAggregate::Count("_consort_e0".into())));
    assert!(q
        .aggregates
        .contains(&LocalAggregate::Count("_consort_e1".into())));
    assert!(q
        .aggregates
        .contains(&LocalAggregate::Count("_consort_e2".into())));
}

#[test]
fn group_by_expression_alias_and_position_share_one_derived_column() {
    for sql in [
        "SELECT year % 2, COUNT(*) FROM sales GROUP BY year % 2",
        "SELECT year % 2 AS parity, COUNT(*) FROM sales GROUP BY parity",
        "SELECT year % 2 AS parity, COUNT(*) FROM sales GROUP BY 1",
    ] {
        let p = planned(sql);
        assert_eq!(derived(&p).len(), 1, "{sql}");
        assert_eq!(p.output[0].expr, OutputExpr::Key(0), "{sql}");
        assert_eq!(
            p.uses
                .get("year")
                .map(|s| s.iter().copied().collect::<Vec<_>>()),
            Some(vec![Permission::Group]),
            "{sql}"
        );
    }
    assert!(err("SELECT COUNT(*) FROM sales GROUP BY 2").contains("SELECT list has 1"));
    assert!(err("SELECT COUNT(*) AS n FROM sales GROUP BY 1").contains("aggregate"));
    assert!(err("SELECT qty + 1, COUNT(*) FROM sales GROUP BY qty").contains("GROUP BY"));
    assert!(err("SELECT region FROM sales ORDER BY 5").contains("SELECT list has 1"));
}

#[test]
fn where_on_expressions_filters_on_derived_columns() {
    let p = planned("SELECT COUNT(*) FROM sales WHERE amount - qty > 10 AND year > qty");
    let LocalWork::Aggregate(q) = &p.local else {
        panic!()
    };
    let Some(Predicate::And(parts)) = &q.filter else {
        panic!("{:?}", q.filter)
    };
    assert_eq!(
        parts[0],
        Predicate::Compare {
            column: "_consort_e0".into(),
            op: CmpOp::Gt,
            value: Value::Float(10.0),
        }
    );
    // Two columns compared: the owner computes the comparison.
    assert_eq!(
        parts[1],
        Predicate::Compare {
            column: "_consort_e1".into(),
            op: CmpOp::Eq,
            value: Value::Boolean(true),
        }
    );
    assert_eq!(
        p.uses
            .get("qty")
            .map(|s| s.iter().copied().collect::<Vec<_>>()),
        Some(vec![Permission::Filter])
    );
}

#[test]
fn case_cast_coalesce_nullif_and_extract_are_typed() {
    let p = planned(
        "SELECT SUM(CASE WHEN qty > 0 THEN 1 ELSE 0 END), \
                COUNT(COALESCE(note, 'none')), \
                MAX(NULLIF(qty, 0)), \
                COUNT(CAST(year AS TEXT) || region) FROM sales",
    );
    let types: Vec<ColumnType> = derived(&p)
        .iter()
        .map(|e| e.result_type(&p.schema).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            ColumnType::Integer,
            ColumnType::Text,
            ColumnType::Integer,
            ColumnType::Text
        ]
    );
    // A NULL branch takes the CASE's type; integers widen beside floats.
    let p = planned("SELECT SUM(CASE WHEN qty > 0 THEN amount WHEN qty < 0 THEN 1 END) FROM sales");
    assert_eq!(derived(&p)[0].result_type(&p.schema), Ok(ColumnType::Float));
}

#[test]
fn math_functions_widen_integers_and_keep_integer_floors() {
    let p = planned(
        "SELECT SUM(SQRT(qty)), SUM(FLOOR(amount)), SUM(CEIL(qty)), SUM(SIGN(amount)), \
                SUM(LENGTH(note)), AVG(LN(amount) + EXP(0)) FROM sales",
    );
    let d = derived(&p);
    assert_eq!(
        d[0],
        ScalarExpr::Math {
            func: consort_model::scalar::MathFunc::Sqrt,
            arg: Box::new(ScalarExpr::ToFloat(col("qty"))),
        }
    );
    let types: Vec<ColumnType> = d
        .iter()
        .map(|e| e.result_type(&p.schema).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            ColumnType::Float,
            ColumnType::Float,
            // CEIL of an integer is the integer itself.
            ColumnType::Integer,
            ColumnType::Integer,
            ColumnType::Integer,
            ColumnType::Float
        ]
    );
    assert!(err("SELECT SUM(SQRT(region)) FROM sales").contains("SQRT of a text"));
    assert!(err("SELECT SUM(LENGTH(qty)) FROM sales").contains("LENGTH of a integer"));
}

#[test]
fn filter_clauses_are_case_expressions_with_filter_permission() {
    let p = planned(
        "SELECT region, COUNT(*) FILTER (WHERE qty > 5), SUM(amount) FILTER (WHERE note IS NULL) \
         FROM sales GROUP BY region",
    );
    assert_eq!(p.columns()[1], "COUNT(*) FILTER (WHERE qty > 5)");
    let d = derived(&p);
    assert!(
        matches!(
            &d[0],
            ScalarExpr::Case {
                otherwise: None,
                ..
            }
        ),
        "{d:?}"
    );
    let perms = |c: &str| p.uses.get(c).map(|s| s.iter().copied().collect::<Vec<_>>());
    assert_eq!(perms("qty"), Some(vec![Permission::Filter]));
    assert_eq!(perms("note"), Some(vec![Permission::Filter]));
    assert_eq!(perms("amount"), Some(vec![Permission::Aggregate]));
    assert!(err("SELECT SUM(region) FILTER (WHERE qty > 1) FROM sales").contains("numbers only"));
    assert!(err("SELECT COUNT(*) FILTER (WHERE COUNT(*) > 1) FROM sales").contains("FILTER"));
}

#[test]
fn raw_selection_and_order_by_position_or_expression() {
    let p = planned(
        "SELECT region || '-' || CAST(year AS TEXT) AS tag, qty * 2 FROM sales \
         WHERE NULLIF(qty, 0) IS NOT NULL ORDER BY 2 DESC, tag",
    );
    let LocalWork::Select(s) = &p.local else {
        panic!()
    };
    assert_eq!(s.columns, ["_consort_e1", "_consort_e2"]);
    assert_eq!(p.order_by.len(), 2);
    assert!(p.order_by[0].descending);
    assert_eq!(
        p.uses
            .get("region")
            .map(|s| s.iter().copied().collect::<Vec<_>>()),
        Some(vec![Permission::Plain])
    );
}

#[test]
fn a_plan_without_expressions_hashes_as_before() {
    // Tags 0/1 are kept for local work without derived columns (QUERY.md §2).
    let a = planned("SELECT region, COUNT(*) FROM sales GROUP BY region");
    let b = planned("SELECT region, COUNT(*) FROM sales GROUP BY region");
    assert_eq!(a.hash(), b.hash());
    let c = planned("SELECT region, COUNT(*) FROM sales WHERE qty + 0 > 1 GROUP BY region");
    assert_ne!(a.hash(), c.hash());
    let d = planned("SELECT region, COUNT(*) FROM sales WHERE qty + 1 > 1 GROUP BY region");
    assert_ne!(c.hash(), d.hash(), "the expression is part of the hash");
}

#[test]
fn an_expression_deeper_than_the_stores_accept_is_refused_when_planned() {
    let deep = format!("SELECT SUM(qty{}) FROM sales", " + 1".repeat(70));
    let e = plan(&deep, &catalog()).unwrap_err();
    assert!(matches!(e, consort_query::QueryError::TooComplex(_)), "{e}");
    let fine = format!("SELECT SUM(qty{}) FROM sales", " + 1".repeat(60));
    planned(&fine);
    let many: Vec<String> = (0..65).map(|i| format!("SUM(qty + {i})")).collect();
    let e = plan(
        &format!("SELECT {} FROM sales", many.join(", ")),
        &catalog(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("more than 64 distinct expressions"),
        "{e}"
    );
}

#[test]
fn explain_says_what_each_party_does_and_sees() {
    let sql = "EXPLAIN SELECT region, SUM(amount - 1) FROM sales WHERE qty > 2 GROUP BY region";
    let inner = consort_query::explain_target(sql).unwrap();
    let p = planned(inner);
    let lines = consort_query::explain(&p).join("\n");
    assert!(
        lines.contains("computes _consort_e0 = (amount - 1.0)"),
        "{lines}"
    );
    assert!(lines.contains("keeps the rows where qty > 2"), "{lines}");
    assert!(lines.contains("groups by region"), "{lines}");
    assert!(lines.contains("SUM(_consort_e0)"), "{lines}");
    assert!(
        lines.contains("revealed to the requester: region, SUM(amount - 1)"),
        "{lines}"
    );
    assert!(lines.contains(&p.hash().to_string()), "{lines}");
}

#[test]
fn what_the_subset_refuses_is_named() {
    for (sql, needle) in [
        ("SELECT SUM(region + 1) FROM sales", "arithmetic"),
        ("SELECT SUM(amount % 2) FROM sales", "% of floats"),
        (
            "SELECT COUNT(CAST(amount AS TEXT)) FROM sales",
            "CAST of a float value to text",
        ),
        (
            "SELECT SUM(qty) / COUNT(*) FROM sales",
            "arithmetic over aggregates",
        ),
        ("SELECT COUNT(*) FROM sales WHERE qty + 1 = NULL", "NULL"),
        (
            "SELECT SUM(CASE WHEN qty > 0 THEN 'a' ELSE 1 END) FROM sales",
            "CASE branches",
        ),
        ("SELECT COUNT(INITCAP(region)) FROM sales", "INITCAP"),
        (
            "SELECT COUNT(*) FROM sales WHERE qty + 1",
            "not a condition",
        ),
        ("SELECT SUM(SUM(qty)) FROM sales", "nested aggregate"),
    ] {
        let e = err(sql);
        assert!(e.contains(needle), "{sql}: {e}");
    }
}

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
