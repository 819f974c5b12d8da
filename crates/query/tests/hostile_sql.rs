//! Hostile SQL (issue 15): grammar-generated deep, wide and long queries never panic, never
//! overflow a stack and finish in bounded time, in the planner that the API and every
//! owner's `judge` run, and in the ledger's lexical check that validation runs. The planner
//! is called from a thread with a small stack, as a busy async worker would be.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use consort_ledger::sql_limits::{check, SQL_LIMITS};
use consort_query::{plan, QueryError};
use proptest::prelude::*;
use support::catalog;

/// A caller's stack far smaller than a tokio worker's 2 MiB.
const CALLER_STACK: usize = 256 << 10;

/// What one call may take at most, on a slow, shared CI machine.
const TIME_BOUND: Duration = Duration::from_secs(5);

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("year"),
        Just("amount"),
        Just("qty"),
        Just("region"),
        Just("note"),
        Just("1"),
        Just("2.5"),
        Just("'north'"),
        Just("NULL"),
        Just("nosuchcolumn"),
    ]
    .prop_map(String::from)
}

fn operator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("||"),
        Just("AND"),
        Just("OR"),
        Just("="),
        Just("<>"),
        Just("<"),
        Just(">="),
        Just("XOR"),
        Just("LIKE"),
    ]
}

/// Expressions from a recursive grammar: every construct that nests.
fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(48, 2_000, 6, |inner| {
        prop_oneof![
            (inner.clone(), operator(), inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("CASE WHEN {a} THEN {b} ELSE {c} END")),
            inner.clone().prop_map(|a| format!("SUM({a})")),
            inner.clone().prop_map(|a| format!("CAST({a} AS TEXT)")),
            prop::collection::vec(inner.clone(), 1..6)
                .prop_map(|v| format!("COALESCE({})", v.join(", "))),
            (inner.clone(), prop::collection::vec(inner, 1..6))
                .prop_map(|(a, v)| format!("{a} IN ({})", v.join(", "))),
        ]
    })
}

/// Degenerate shapes that a grammar rarely reaches: long chains and deep nests, well past
/// every limit as well as just under them.
fn degenerate() -> impl Strategy<Value = String> {
    let n = prop_oneof![1usize..200, 200usize..3_000, 3_000usize..40_000];
    (n, operator(), 0usize..7).prop_map(|(n, op, shape)| match shape {
        0 => format!("1{}", format!(" {op} 1").repeat(n)),
        1 => format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        2 => format!("{}1", "- ".repeat(n)),
        3 => format!("{}TRUE", "NOT ".repeat(n)),
        4 => format!("{}year{}", "SUM(".repeat(n % 2_000), ")".repeat(n % 2_000)),
        5 => format!(
            "{}1{}",
            "CASE WHEN TRUE THEN ".repeat(n % 2_000),
            " END".repeat(n % 2_000)
        ),
        _ => format!("year IN ({})", vec!["1"; n].join(", ")),
    })
}

fn query(e: String, shape: u8) -> String {
    match shape % 5 {
        0 => format!("SELECT COUNT(*) FROM sales WHERE {e}"),
        1 => format!("SELECT region, SUM({e}) FROM sales GROUP BY region HAVING {e}"),
        2 => format!("SELECT {e} FROM sales"),
        3 => format!("SELECT region FROM sales GROUP BY {e} ORDER BY {e}"),
        _ => format!("SELECT COUNT(*) FROM sales a JOIN sales b ON a.year = b.year WHERE {e}"),
    }
}

/// Plans `sql` from a small-stack thread; the thread dying (a panic or an overflow that
/// the runtime turned into one) fails the test, and so does taking too long.
fn plan_survives(sql: String) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let lexical = check(&sql, &SQL_LIMITS);
    let outcome = std::thread::Builder::new()
        .stack_size(CALLER_STACK)
        .spawn(move || plan(&sql, &catalog()).map(|_| ()))
        .unwrap()
        .join();
    let elapsed = started.elapsed();
    let planned = match outcome {
        Ok(result) => result,
        Err(_) => return Err(TestCaseError::fail("the planner's caller panicked")),
    };
    prop_assert!(elapsed < TIME_BOUND, "took {elapsed:?}");
    match (&lexical, &planned) {
        // The planner never accepts what the ledger's rule refuses.
        (Err(reason), Ok(())) => {
            return Err(TestCaseError::fail(format!(
                "planned SQL the ledger refuses: {reason}"
            )))
        }
        (Err(_), Err(e)) => prop_assert!(matches!(e, QueryError::TooComplex(_)), "{e}"),
        _ => {}
    }
    if let Err(e) = &planned {
        let text = e.to_string();
        prop_assert!(!text.contains('\n'), "multi-line error: {text}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn grammar_generated_sql_is_planned_or_refused(e in expression(), shape in any::<u8>()) {
        plan_survives(query(e, shape))?;
    }

    #[test]
    fn long_chains_and_deep_nests_are_refused_in_bounded_time(
        e in degenerate(),
        shape in any::<u8>(),
    ) {
        plan_survives(query(e, shape))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,2000}") {
        plan_survives(text)?;
    }
}

#[test]
fn the_worst_chain_the_limits_admit_is_refused_not_crashed() {
    // A chain just under the operator limit passes the lexical check but parses into a tree
    // deeper than the planner walks: the depth bound refuses it.
    let under = format!(
        "SELECT COUNT(*) FROM sales WHERE year > 1{}",
        " + 1".repeat(1_000)
    );
    assert!(check(&under, &SQL_LIMITS).is_ok());
    match std::thread::Builder::new()
        .stack_size(CALLER_STACK)
        .spawn(move || plan(&under, &catalog()))
        .unwrap()
        .join()
        .unwrap()
    {
        Err(QueryError::TooComplex(reason)) => assert!(reason.contains("nest"), "{reason}"),
        other => panic!("expected a depth refusal, got {other:?}"),
    }
}

#[test]
fn long_honest_conditions_still_plan() {
    let terms: Vec<String> = (0..250).map(|i| format!("year <> {i}")).collect();
    let sql = format!("SELECT COUNT(*) FROM sales WHERE {}", terms.join(" AND "));
    plan(&sql, &catalog()).unwrap();
    let list: Vec<String> = (0..2_000).map(|i| format!("'r{i}'")).collect();
    let sql = format!(
        "SELECT COUNT(*) FROM sales WHERE region IN ({})",
        list.join(", ")
    );
    plan(&sql, &catalog()).unwrap();
}
