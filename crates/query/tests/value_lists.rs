//! The planner on the aggregates computed from value lists (COUNT/SUM(DISTINCT), MEDIAN,
//! PERCENTILE_CONT/DISC) and the sample aggregates: what the owners are asked for, and
//! what is refused in one line.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use consort_model::ColumnType;
use consort_query::{plan, AggFunc, Plan, ValueList};
use consort_store::Predicate;
use support::*;

fn planned(sql: &str) -> Plan {
    plan(sql, &catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn err(sql: &str) -> String {
    match plan(sql, &catalog()) {
        Ok(p) => panic!("{sql} planned: {:?}", p.aggregates),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "multi-line error {s}");
            s
        }
    }
}

#[test]
fn distinct_and_percentiles_ask_each_owner_for_one_list_per_column_and_kind() {
    let p = planned(
        "SELECT region, COUNT(DISTINCT qty), SUM(DISTINCT qty), MEDIAN(amount), \
         PERCENTILE_DISC(0.9) WITHIN GROUP (ORDER BY amount) FROM sales WHERE year > 2020 \
         GROUP BY region",
    );
    let funcs: Vec<AggFunc> = p.aggregates.iter().map(|a| a.func).collect();
    assert_eq!(
        funcs,
        [
            AggFunc::CountDistinct,
            AggFunc::SumDistinct,
            AggFunc::PercentileCont,
            AggFunc::PercentileDisc
        ]
    );
    assert_eq!(p.aggregates[2].fraction.map(|f| f.get()), Some(0.5));
    assert_eq!(p.aggregates[3].fraction.map(|f| f.get()), Some(0.9));
    // COUNT and SUM(DISTINCT qty) share one distinct list; both percentiles one list.
    assert_eq!(
        p.value_lists(),
        [
            ValueList {
                column: "qty".into(),
                column_type: ColumnType::Integer,
                distinct: true
            },
            ValueList {
                column: "amount".into(),
                column_type: ColumnType::Float,
                distinct: false
            },
        ]
    );
    // Each list: the group keys and the value, under WHERE, NULLs left out.
    let s = p.value_list_select(&p.value_lists()[0]);
    assert_eq!(s.columns, ["region", "qty"]);
    let Some(Predicate::And(parts)) = &s.filter else {
        panic!("{:?}", s.filter)
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[1],
        Predicate::IsNull {
            column: "qty".into(),
            negated: true
        }
    );
    // The plain plan has no list, and the fractions are part of the plan's hash.
    assert!(planned("SELECT COUNT(qty) FROM sales")
        .value_lists()
        .is_empty());
    let a = planned("SELECT PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY qty) FROM sales");
    let b = planned("SELECT PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY qty) FROM sales");
    let c = planned("SELECT PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY qty) FROM sales");
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn sample_aggregates_and_aliases_plan() {
    let p = planned(
        "SELECT VAR_SAMP(amount), STDDEV_SAMP(qty), VARIANCE(qty), STDDEV(amount) FROM sales",
    );
    let funcs: Vec<AggFunc> = p.aggregates.iter().map(|a| a.func).collect();
    assert_eq!(
        funcs,
        [
            AggFunc::VarSamp,
            AggFunc::StddevSamp,
            AggFunc::VarSamp,
            AggFunc::StddevSamp
        ]
    );
    assert!(p.value_lists().is_empty());
}

#[test]
fn refusals_name_the_construct() {
    for (sql, want) in [
        (
            "SELECT PERCENTILE_CONT(1.5) WITHIN GROUP (ORDER BY qty) FROM sales",
            "must be in [0, 1]",
        ),
        (
            "SELECT PERCENTILE_CONT(0.5) FROM sales",
            "WITHIN GROUP (ORDER BY one value)",
        ),
        (
            "SELECT PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY qty DESC) FROM sales",
            "DESC",
        ),
        ("SELECT MEDIAN(region) FROM sales", "numeric only"),
        ("SELECT SUM(DISTINCT region) FROM sales", "numbers only"),
        ("SELECT AVG(DISTINCT qty) FROM sales", "AVG(DISTINCT"),
        (
            "SELECT region FROM sales GROUP BY region HAVING VAR_SAMP(qty) > 1",
            "VAR_SAMP in HAVING",
        ),
        ("SELECT MODE(qty) FROM sales", "MODE"),
    ] {
        let e = err(sql);
        assert!(e.contains(want), "{sql}: {e}");
    }
    // COUNT(DISTINCT) of text is fine: values are compared for equality only.
    planned("SELECT COUNT(DISTINCT note), COUNT(DISTINCT region) FROM sales");
}
