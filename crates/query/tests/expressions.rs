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
            "SELECT SUM(amount) % COUNT(*) FROM sales",
            "% over aggregates takes integers",
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

/// The second set of functions: ROUND … CAST.
mod functions;
