//! Planner: accepted shapes, unsupported constructs named, unknown names, type errors,
//! column uses, hash stability.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use consort_data::Value;
use consort_ledger::policy::Permission;
use consort_query::{plan, AggFunc, LocalWork, OutputExpr, QueryError};
use consort_store::{CmpOp, LocalAggregate, Predicate};
use support::*;

fn err(sql: &str) -> String {
    match plan(sql, &catalog()) {
        Ok(p) => panic!("{sql} planned: {p:?}"),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "multi-line error {s}");
            s
        }
    }
}

fn uses(sql: &str) -> Vec<(String, Vec<Permission>)> {
    plan(sql, &catalog())
        .unwrap()
        .uses
        .into_iter()
        .map(|(c, p)| (c, p.into_iter().collect()))
        .collect()
}

#[test]
fn aggregate_shape() {
    let p = plan(
        "SELECT region, COUNT(*), AVG(amount) AS avg_amount, SUM(qty) FROM sales \
         WHERE year >= 2021 AND note IS NOT NULL GROUP BY region \
         HAVING COUNT(*) > 2 ORDER BY region DESC LIMIT 5",
        &catalog(),
    )
    .unwrap();
    assert_eq!(
        p.columns(),
        ["region", "COUNT(*)", "avg_amount", "SUM(qty)"]
    );
    assert_eq!(p.datasets.len(), 3);
    assert!(p.datasets.windows(2).all(|w| w[0].owner < w[1].owner));
    assert_eq!(p.limit, Some(5));
    assert!(p.order_by[0].descending);
    let LocalWork::Aggregate(q) = &p.local else {
        panic!()
    };
    assert_eq!(q.group_by, ["region"]);
    assert_eq!(q.aggregates[0], LocalAggregate::CountRows);
    assert!(q.aggregates.contains(&LocalAggregate::Sum("amount".into())));
    assert!(q.aggregates.contains(&LocalAggregate::Count("qty".into())));
    assert_eq!(p.aggregates[1].func, AggFunc::Avg);
    assert!(matches!(
        q.filter,
        Some(Predicate::And(ref v)) if v.len() == 2
    ));
}

#[test]
fn select_shape_and_literals_either_side() {
    let p = plan(
        "SELECT region AS r, amount FROM sales WHERE 2020 < year ORDER BY amount LIMIT 3",
        &catalog(),
    )
    .unwrap();
    let LocalWork::Select(s) = &p.local else {
        panic!()
    };
    assert_eq!(s.columns, ["region", "amount"]);
    assert_eq!(p.columns(), ["r", "amount"]);
    assert_eq!(
        s.filter,
        Some(Predicate::Compare {
            column: "year".into(),
            op: CmpOp::Gt,
            value: Value::Integer(2020)
        })
    );
    assert_eq!(p.order_by[0].target, OutputExpr::Column(1));
}

#[test]
fn where_forms() {
    let p = plan(
        "SELECT COUNT(*) FROM sales WHERE region IN ('a', 'b') AND year BETWEEN 2020 AND 2022 \
         AND NOT note LIKE 'x%' OR qty IS NULL",
        &catalog(),
    )
    .unwrap();
    assert!(
        matches!(p.local, LocalWork::Aggregate(ref q) if matches!(q.filter, Some(Predicate::Or(_))))
    );
}

#[test]
fn single_owner_and_quoted_names() {
    let p = plan(r#"SELECT COUNT(*) FROM "m1".sales"#, &catalog()).unwrap();
    assert_eq!(p.datasets.len(), 1);
    assert_eq!(p.datasets[0].owner, member(1));
    assert_eq!(
        p.datasets[0].version_tx,
        consort_crypto::Hash([member(1).0[0]; 32])
    );
    assert!(err(r#"SELECT COUNT(*) FROM "m9".sales"#).contains("m9"));
    // Names match exactly: `Region` is not `region`.
    assert!(err("SELECT Region FROM sales").contains("Region"));
    plan(r#"SELECT "region" FROM sales"#, &catalog()).unwrap();
}

#[test]
fn unsupported_constructs_are_named() {
    let cases = [
        ("SELECT * FROM sales", "*"),
        ("SELECT DISTINCT region FROM sales", "DISTINCT"),
        ("SELECT s.region FROM sales s", "alias"),
        (
            "SELECT COUNT(*) FROM sales a FULL JOIN sales b ON a.region = b.region",
            "FULL JOIN",
        ),
        ("SELECT region FROM (SELECT region FROM sales)", "subquery"),
        (
            "SELECT region FROM sales WHERE year IN (SELECT year FROM sales)",
            "IN (subquery)",
        ),
        ("SELECT region FROM sales LIMIT 2 OFFSET 1", "OFFSET"),
        (
            "SELECT region FROM sales UNION SELECT region FROM sales",
            "UNION",
        ),
        ("SELECT INITCAP(region) FROM sales", "INITCAP"),
        ("SELECT COUNT(*) OVER () FROM sales", "window"),
        ("SELECT AVG(DISTINCT amount) FROM sales", "AVG(DISTINCT"),
        ("SELECT MEDIAN(region) FROM sales", "MEDIAN"),
        ("WITH x AS (SELECT 1) SELECT region FROM sales", "WITH"),
        ("DELETE FROM sales", "DELETE"),
        ("SELECT MIN(region) FROM sales", "MIN of text"),
        (
            "SELECT region, VAR_POP(amount) FROM sales GROUP BY region HAVING VAR_POP(amount) > 1",
            "VAR_POP in HAVING",
        ),
        ("SELECT region FROM sales, sales", "several tables"),
        (
            "SELECT region || COUNT(*) FROM sales GROUP BY region",
            "over aggregates",
        ),
        ("SELECT LPAD(region, 3) FROM sales", "LPAD"),
    ];
    for (sql, named) in cases {
        let e = plan(sql, &catalog()).expect_err(sql);
        assert!(matches!(e, QueryError::Unsupported(_)), "{sql}: {e}");
        assert!(
            e.to_string().contains(named),
            "{sql}: {e} should name {named}"
        );
    }
}

#[test]
fn unknown_names_and_types() {
    assert!(
        matches!(plan("SELECT a FROM nope", &catalog()), Err(QueryError::UnknownDataset(d)) if d == "nope")
    );
    let e = err("SELECT colour FROM sales");
    assert!(e.contains("colour") && e.contains("sales"), "{e}");
    assert!(err("SELECT COUNT(*) FROM sales WHERE year = 'x'").contains("year"));
    assert!(err("SELECT COUNT(*) FROM sales WHERE region = 3").contains("region"));
    assert!(err("SELECT COUNT(*) FROM sales WHERE year = 2.5").contains("2.5"));
    let e = err("SELECT SUM(region) FROM sales");
    assert!(e.contains("SUM") && e.contains("region"), "{e}");
    assert!(err("SELECT AVG(note) FROM sales").contains("note"));
    assert!(err("SELECT region, COUNT(*) FROM sales").contains("GROUP BY"));
    assert!(err("SELECT COUNT(*) FROM sales WHERE qty = NULL").contains("IS"));
    assert!(err("SELEC region FROM sales").contains("syntax"));
}

#[test]
fn schemas_must_agree() {
    let mut c = catalog();
    c.datasets.push(entry(
        member(3),
        "sales",
        &[("region", "text", false), ("year", "float", false)],
    ));
    let e = plan("SELECT COUNT(*) FROM sales", &c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("schemas"), "{e}");
    // One owner's copy alone is fine.
    plan(r#"SELECT COUNT(*) FROM "m3".sales"#, &c).unwrap();
}

#[test]
fn uses_map() {
    assert_eq!(
        uses("SELECT region, SUM(amount) FROM sales WHERE year > 2020 GROUP BY region"),
        vec![
            ("amount".into(), vec![Permission::Aggregate]),
            ("region".into(), vec![Permission::Group]),
            ("year".into(), vec![Permission::Filter]),
        ]
    );
    assert_eq!(uses("SELECT COUNT(*) FROM sales"), vec![]);
    assert_eq!(
        uses("SELECT region FROM sales WHERE region = 'a'"),
        vec![("region".into(), vec![Permission::Plain, Permission::Filter])]
    );
    assert_eq!(
        uses("SELECT region FROM sales GROUP BY region HAVING MAX(qty) > 3"),
        vec![
            ("qty".into(), vec![Permission::Aggregate]),
            ("region".into(), vec![Permission::Group]),
        ]
    );
}

#[test]
fn hash_is_stable_and_sensitive() {
    let sql = "SELECT region, AVG(amount) FROM sales WHERE year > 2020 GROUP BY region";
    let a = plan(sql, &catalog()).unwrap();
    let b = plan(sql, &catalog()).unwrap();
    assert_eq!(a.hash(), b.hash());
    let c = plan(&sql.replace("2020", "2021"), &catalog()).unwrap();
    assert_ne!(a.hash(), c.hash());
    let mut cat = catalog();
    cat.datasets[0].tx_id = consort_crypto::Hash([9; 32]);
    assert_ne!(a.hash(), plan(sql, &cat).unwrap().hash());
    // Keywords are case-insensitive, but the SQL text itself is part of the plan.
    let d = plan(&sql.to_lowercase().replace("avg", "AVG"), &catalog());
    assert!(d.is_ok());
}

#[test]
fn no_panic_on_odd_input() {
    for sql in [
        "",
        ";",
        "SELECT",
        "SELECT COUNT(*) FROM sales WHERE ((((((((year > 1))))))))",
        "SELECT COUNT(*) FROM sales LIMIT -1",
        "SELECT COUNT(*) FROM sales LIMIT 99999999999999999999999",
        "SELECT COUNT(*) FROM sales WHERE year > 99999999999999999999999",
        "SELECT COUNT(*) FROM sales HAVING COUNT(*) > 1e400",
        &"(".repeat(10000),
        "SELECT COUNT(*) FROM sales; SELECT 1",
    ] {
        let _ = plan(sql, &catalog());
    }
}
