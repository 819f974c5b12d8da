//! The aggregate checks of the conformance suite's owner-local queries (see
//! `conformance_query.rs`): every aggregate, grouping, NULL handling and filters under
//! aggregation, each expectation written out by hand.

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::conformance::{same, ts};
use super::conformance_query::*;
use super::{CmpOp, DatasetStore, LocalAggregate as A, LocalAggregateQuery, Predicate as P};
use consort_model::value::{Row, Schema};

pub(super) fn assert_table(be: &str, what: &str, got: &[Row], want: &[Row]) {
    assert_eq!(got.len(), want.len(), "{be}: {what}: rows {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same(a, b)),
            "{be}: {what}: got {got:?}, want {want:?}"
        );
    }
}

pub(super) fn agg(filter: Option<P>, group_by: &[&str], aggregates: Vec<A>) -> LocalAggregateQuery {
    LocalAggregateQuery {
        derived: Vec::new(),
        filter,
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        aggregates,
    }
}

pub(super) async fn check_agg(
    store: &dyn DatasetStore,
    tb: &str,
    s: &Schema,
    q: LocalAggregateQuery,
    want: Vec<Row>,
) {
    let be = store.backend();
    let got = store
        .aggregate(tb, s, &q)
        .await
        .unwrap_or_else(|e| panic!("{be}: aggregate {q:?}: {e}"));
    assert_table(be, &format!("aggregate {q:?}"), &got, &want);
}

pub(super) fn c(name: &str) -> String {
    name.into()
}

pub(super) async fn aggregates(store: &dyn DatasetStore, tb: &str, s: &Schema) {
    let everything = vec![
        A::CountRows,
        A::Count(c("n")),
        A::Sum(c("n")),
        A::SumSquares(c("n")),
        A::Min(c("n")),
        A::Max(c("n")),
        A::Sum(c("score")),
        A::SumSquares(c("score")),
        A::Min(c("name")),
        A::Max(c("name")),
        A::Min(c("born")),
        A::Max(c("seen")),
        A::Min(c("active")),
        A::Max(c("active")),
        A::Min(c("score")),
    ];
    check_agg(
        store,
        tb,
        s,
        agg(None, &[], everything.clone()),
        vec![vec![
            i(7),
            i(6),
            i(49),
            f(683.0),
            i(-3),
            i(20),
            f(15.75),
            f(2.25 + 6.25 + 0.25 + 16.0 + 0.0625 + 64.0),
            t("Alice"),
            t("ålice"),
            d(1000, 1, 1),
            ts(2024, 6, 1, 12, 0, 0, 0),
            b(false),
            b(true),
            f(-0.5),
        ]],
    )
    .await;
    // No group_by over no rows: one row, counts 0, the rest NULL.
    let none = cmp("id", CmpOp::Gt, i(100));
    let mut want = vec![i(0), i(0)];
    want.extend(std::iter::repeat_n(N, everything.len() - 2));
    check_agg(
        store,
        tb,
        s,
        agg(Some(none.clone()), &[], everything.clone()),
        vec![want],
    )
    .await;
    // Grouped over no rows: no rows.
    check_agg(store, tb, s, agg(Some(none), &["name"], everything), vec![]).await;
    // All-NULL inputs: COUNT(col) 0, SUM/MIN/MAX NULL.
    check_agg(
        store,
        tb,
        s,
        agg(
            Some(cmp("id", CmpOp::Eq, i(3))),
            &[],
            vec![
                A::Count(c("score")),
                A::Sum(c("score")),
                A::Sum(c("n")),
                A::Min(c("born")),
                A::Max(c("n")),
                A::SumSquares(c("n")),
            ],
        ),
        vec![vec![i(0), N, N, N, N, N]],
    )
    .await;
    // Boolean groups with a NULL group first.
    check_agg(
        store,
        tb,
        s,
        agg(
            None,
            &["active"],
            vec![A::CountRows, A::Sum(c("n")), A::Count(c("n"))],
        ),
        vec![
            vec![N, i(2), i(12), i(2)],
            vec![b(false), i(2), i(17), i(2)],
            vec![b(true), i(3), i(20), i(2)],
        ],
    )
    .await;
    // Text groups: code-point order, 'alice' and 'alice ' distinct, NULL first.
    check_agg(
        store,
        tb,
        s,
        agg(None, &["name"], vec![A::CountRows]),
        vec![
            vec![N, i(1)],
            vec![t("Alice"), i(1)],
            vec![t("a_b%c"), i(1)],
            vec![t("alice"), i(1)],
            vec![t("alice "), i(1)],
            vec![t("bob"), i(1)],
            vec![t("ålice"), i(1)],
        ],
    )
    .await;
    // Date groups.
    check_agg(
        store,
        tb,
        s,
        agg(
            None,
            &["born"],
            vec![A::CountRows, A::Max(c("seen")), A::Min(c("name"))],
        ),
        vec![
            vec![N, i(1), ts(2023, 12, 31, 23, 59, 59, 999_999), t("bob")],
            vec![d(1000, 1, 1), i(1), ts(1000, 1, 1, 0, 0, 0, 0), t("ålice")],
            vec![d(1985, 6, 15), i(2), ts(2024, 1, 1, 0, 0, 0, 0), t("Alice")],
            vec![d(1990, 1, 1), i(2), ts(2024, 6, 1, 12, 0, 0, 0), t("a_b%c")],
            vec![d(2000, 2, 29), i(1), N, N],
        ],
    )
    .await;
    // Integer groups with a filter, and two grouping columns.
    check_agg(
        store,
        tb,
        s,
        agg(
            Some(cmp("id", CmpOp::NotEq, i(2))),
            &["n"],
            vec![A::CountRows, A::Sum(c("score")), A::Min(c("id"))],
        ),
        vec![
            vec![N, i(1), N, i(3)],
            vec![i(-3), i(1), f(4.0), i(5)],
            vec![i(5), i(1), f(-0.5), i(4)],
            vec![i(7), i(1), f(8.0), i(7)],
            vec![i(10), i(2), f(1.75), i(1)],
        ],
    )
    .await;
    check_agg(
        store,
        tb,
        s,
        agg(None, &["active", "born"], vec![A::CountRows]),
        vec![
            vec![N, d(1000, 1, 1), i(1)],
            vec![N, d(2000, 2, 29), i(1)],
            vec![b(false), d(1985, 6, 15), i(1)],
            vec![b(false), d(1990, 1, 1), i(1)],
            vec![b(true), N, i(1)],
            vec![b(true), d(1985, 6, 15), i(1)],
            vec![b(true), d(1990, 1, 1), i(1)],
        ],
    )
    .await;
    // Timestamp groups, group columns only.
    check_agg(
        store,
        tb,
        s,
        agg(
            Some(cmp("seen", CmpOp::GtEq, ts(2024, 1, 1, 0, 0, 0, 0))),
            &["seen"],
            vec![],
        ),
        vec![
            vec![ts(2024, 1, 1, 0, 0, 0, 0)],
            vec![ts(2024, 1, 1, 0, 0, 0, 1)],
            vec![ts(2024, 6, 1, 12, 0, 0, 0)],
        ],
    )
    .await;
    // Neither groups nor aggregates: one empty row.
    check_agg(store, tb, s, agg(None, &[], vec![]), vec![vec![]]).await;
}
