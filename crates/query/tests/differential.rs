//! A grammar-driven differential test of the joint-query engine (issue 18).
//!
//! A proptest strategy generates random aggregate queries over the catalog's `sales`
//! table from a small grammar, and random tables split over the three owners m0..m2:
//!
//! - SELECT: the group keys, then 1–4 items: `COUNT(*)`, `COUNT`, `SUM`, `AVG`, `MIN`,
//!   `MAX`, `VAR_POP`, `VAR_SAMP`, `STDDEV_SAMP`, `COUNT(DISTINCT x)` (x may be text),
//!   `SUM(DISTINCT x)`, `MEDIAN`, `PERCENTILE_CONT/DISC(p) WITHIN GROUP (ORDER BY x)`, each
//!   with an optional `FILTER (WHERE …)`, and arithmetic over aggregates; `x` is a column
//!   or a row expression (`qty * 2`, `amount - qty`, `CASE …`, `COALESCE`, `NULLIF`,
//!   `ABS`, `ROUND`, `GREATEST`/`LEAST`, `CAST`);
//! - WHERE: comparisons, `AND`/`OR`/`NOT`, `IS NULL`, `BETWEEN`, `IN`, `LIKE`, over
//!   expressions (`LIKE` only here: in a FILTER consort refuses it as an expression);
//! - GROUP BY: nothing, one or two keys (columns, a float column, or expressions), each
//!   written as itself, by position or (expressions) by its select alias;
//! - HAVING: comparisons of COUNT/SUM/AVG/MIN/MAX/COUNT(DISTINCT)/SUM(DISTINCT)/MEDIAN/
//!   PERCENTILE_DISC/`COUNT(*) FILTER (…)` with a number, combined by `AND`/`OR`/`NOT`;
//! - ORDER BY: every group key (so the order is total), possibly with an output alias of an
//!   exactly computed aggregate among them, then maybe `LIMIT`.
//!
//! The data: 1–3 of the owners hold rows (the others none), drawn from small domains so
//! that ties, duplicates across owners, negative numbers, zero, NULLs in `qty`/`note`,
//! the empty string, all-NULL groups and groups emptied by FILTER are common; a few
//! values are wide (|amount| up to 2·10^4, |qty| up to 10^3).
//!
//! Every party runs on its own thread over the in-memory network (in a random role
//! layout) and the requester's table is compared with SQLite over the union of the rows,
//! where the query gets `HAVING COUNT(*) >= k` for the small-group suppression (k is 1 or
//! 2) and the suppressed groups are counted separately. SQLite lacks the ordered-set and
//! sample aggregates, so the reference uses the registered ones of `support`
//! (`median`, `pct_cont`, `pct_disc`, `var_samp`, `stddev_samp`), `var_pop` and
//! `greatest`/`least` with PostgreSQL's NULL rule below. Values compare by `support::same`:
//! integers and text exactly, floats within 10^-3 relative (at least 10^-3 absolute);
//! variances of non-dyadic values within the fixed-point bound of [`var_abs`], standard
//! deviations through their squares. Without ORDER BY the rows compare as multisets.
//! The grammar keeps to SQL on which SQLite and consort agree: dyadic float data (sums are exact on both sides), integer division and
//! `%` truncating toward zero, division by zero giving NULL, only dyadic percentile
//! fractions, and no division by or product of inexact aggregates (AVG, MEDIAN, sums of
//! `ROUND`), whose documented absolute error a quotient or product would magnify.
//!
//! 768 cases run in about 10 s in debug (set `PROPTEST_CASES` for more: 9,500
//! passed).
//!
//! `real_stores_*` run ten fixed generated cases with each owner's local input computed by
//! the local PostgreSQL or MariaDB server instead of the in-memory store; they fail (they
//! do not skip) when the server is missing (see `crates/store/tests/store_conformance.rs`).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use consort_crypto::MemberId;
use consort_data::{Row, Value};
use consort_query::{plan, run_party, LocalInput, LocalWork, PartyOutcome, Plan, Roles};
use consort_store::DatasetStore;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rusqlite::types::Value as S;
use support::*;

// ---------------------------------------------------------------------------------------
// The grammar.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    Int,
    Float,
    Text,
}

/// An aggregate argument: a column or a row expression.
#[derive(Clone, Copy, Debug)]
struct X {
    sql: &'static str,
    ty: Ty,
    /// Every value is a multiple of 1/8 (so sums are exact in fixed point and in f64).
    dyadic: bool,
}

const fn x(sql: &'static str, ty: Ty, dyadic: bool) -> X {
    X { sql, ty, dyadic }
}

const NUM_X: &[X] = &[
    x("qty", Ty::Int, true),
    x("year", Ty::Int, true),
    x("qty * 2", Ty::Int, true),
    x("CASE WHEN qty > 3 THEN 1 ELSE 0 END", Ty::Int, true),
    x("COALESCE(qty, 0)", Ty::Int, true),
    x("qty % 3", Ty::Int, true),
    x("qty / 2", Ty::Int, true),
    x("amount", Ty::Float, true),
    x("amount - qty", Ty::Float, true),
    x("ABS(amount)", Ty::Float, true),
    x("ROUND(amount, 1)", Ty::Float, false),
    x("ROUND(amount)", Ty::Float, true),
    x("amount * 2", Ty::Float, true),
    x("CASE WHEN qty > 3 THEN amount END", Ty::Float, true),
    x("NULLIF(qty, 0)", Ty::Int, true),
    x("-qty", Ty::Int, true),
    x("qty + year", Ty::Int, true),
    x("GREATEST(qty, 1)", Ty::Int, true),
    x("LEAST(amount, qty)", Ty::Float, true),
    x("CAST(qty AS DOUBLE)", Ty::Float, true),
];

const TEXT_X: &[X] = &[
    x("region", Ty::Text, true),
    x("note", Ty::Text, true),
    x("COALESCE(note, 'none')", Ty::Text, true),
];

fn num_x() -> impl Strategy<Value = X> {
    prop::sample::select(NUM_X.to_vec())
}

fn dyadic_x() -> impl Strategy<Value = X> {
    prop::sample::select(
        NUM_X
            .iter()
            .copied()
            .filter(|x| x.dyadic)
            .collect::<Vec<_>>(),
    )
}

fn any_x() -> impl Strategy<Value = X> {
    prop::sample::select(NUM_X.iter().chain(TEXT_X).copied().collect::<Vec<_>>())
}

/// A row condition (WHERE and FILTER): atoms over columns and expressions, combined by
/// AND / OR / NOT up to two levels deep. `LIKE` only in WHERE (`where_clause`): inside
/// an aggregate's FILTER it is refused as an expression.
fn cond() -> impl Strategy<Value = String> {
    cond_of(false)
}

fn where_clause() -> impl Strategy<Value = String> {
    cond_of(true)
}

fn cond_of(like: bool) -> impl Strategy<Value = String> {
    let mut atoms = vec![
        "qty > 3",
        "qty <= 0",
        "qty IS NULL",
        "qty IS NOT NULL",
        "note IS NULL",
        "note <> 'xx'",
        "amount BETWEEN -10 AND 50",
        "qty NOT BETWEEN 0 AND 5",
        "amount - qty > 10",
        "qty * 2 < year - 2018",
        "year IN (2020, 2022)",
        "year = 2021",
        "region IN ('a', 'c')",
        "region = 'b'",
        "region > 'a'",
        "COALESCE(qty, 0) >= 2",
        "ABS(amount) < 20",
        "year % 2 = 0",
        "qty % 3 = -1",
        "qty / 2 = 1",
        "amount / qty > 2",
        "CASE WHEN qty > 3 THEN amount ELSE -amount END > 0",
        "ROUND(amount, 1) <> amount",
        "qty IN (0, 1, 4)",
    ];
    if like {
        atoms.extend(["note LIKE 'x%'", "note NOT LIKE '%2'"]);
    }
    let atom = prop::sample::select(atoms).prop_map(str::to_string);
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

/// How a value is compared with the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tol {
    /// `support::same`: integers and text exact, floats within 10^-3 relative.
    Same,
    /// A variance of x (dyadic or not, see [`var_abs`]).
    Var(bool),
    /// A standard deviation of x: compared through its square, as a variance.
    Sqrt(bool),
}

/// The absolute error allowed a variance of values that are not dyadic
/// (`ROUND(amount, 1)`): it carries the owners' rounding of each value to 2^-16 and of Σx²
/// into the exact formula, about (|mean| + 1)·2^-15 (QUERY.md §7), doubled by VAR_SAMP at
/// n = 2; `max` bounds the data's |x|.
fn var_abs(max: f64) -> f64 {
    2.0 * (max + 2.0) / 32768.0
}

/// One select item, in consort's SQL and in the reference's.
#[derive(Clone, Debug)]
struct Item {
    ours: String,
    reference: String,
    tol: Tol,
    /// Computed exactly (so it may order rows: its ties are SQLite's ties).
    exact: bool,
}

fn item(ours: String, reference: String, tol: Tol, exact: bool) -> Item {
    Item {
        ours,
        reference,
        tol,
        exact,
    }
}

fn with_filter(i: Item, filter: Option<String>) -> Item {
    match filter {
        None => i,
        Some(c) => Item {
            ours: format!("{} FILTER (WHERE {c})", i.ours),
            reference: format!("{} FILTER (WHERE {c})", i.reference),
            ..i
        },
    }
}

/// A plain aggregate of x (the same SQL for consort and the reference); `f` may be
/// `COUNT(DISTINCT` or `SUM(DISTINCT`.
fn simple(f: &str, x: X) -> Item {
    let s = match f.strip_suffix("(DISTINCT") {
        Some(g) => format!("{g}(DISTINCT {})", x.sql),
        None => format!("{f}({})", x.sql),
    };
    let exact = match f {
        "COUNT" | "COUNT(DISTINCT" => true,
        "SUM" | "MIN" | "MAX" | "SUM(DISTINCT" => x.ty == Ty::Int,
        _ => false,
    };
    item(s.clone(), s, Tol::Same, exact)
}

/// A single aggregate with an optional FILTER.
fn agg_call() -> impl Strategy<Value = Item> {
    let p = prop::sample::select(vec!["0", "0.25", "0.5", "0.75", "1.0", "0.125", "0.875"]);
    let base = prop_oneof![
        Just(item("COUNT(*)".into(), "COUNT(*)".into(), Tol::Same, true)),
        (
            prop::sample::select(vec!["COUNT", "SUM", "AVG", "MIN", "MAX"]),
            num_x()
        )
            .prop_map(|(f, x)| simple(f, x)),
        any_x().prop_map(|x| simple("COUNT", x)),
        (
            prop::sample::select(vec!["VAR_POP", "VAR_SAMP", "STDDEV_SAMP"]),
            num_x()
        )
            .prop_map(|(f, x)| {
                let mut i = simple(f, x);
                i.tol = if f == "STDDEV_SAMP" {
                    Tol::Sqrt(x.dyadic)
                } else {
                    Tol::Var(x.dyadic)
                };
                i
            }),
        any_x().prop_map(|x| simple("COUNT(DISTINCT", x)),
        num_x().prop_map(|x| simple("SUM(DISTINCT", x)),
        num_x().prop_map(|x| simple("MEDIAN", x)),
        (prop::bool::ANY, p, num_x()).prop_map(|(cont, p, x)| {
            let (f, r) = if cont {
                ("PERCENTILE_CONT", "pct_cont")
            } else {
                ("PERCENTILE_DISC", "pct_disc")
            };
            item(
                format!("{f}({p}) WITHIN GROUP (ORDER BY {})", x.sql),
                format!("{r}({p}, {})", x.sql),
                Tol::Same,
                !cont && x.ty == Ty::Int,
            )
        }),
    ];
    (base, prop::option::weighted(0.25, cond())).prop_map(|(i, f)| with_filter(i, f))
}

/// An aggregate computed exactly (counts, and sums and extremes of dyadic values): the
/// operands of products and quotients.
fn exact_operand() -> impl Strategy<Value = Item> {
    let base = prop_oneof![
        Just(simple("COUNT", x("*", Ty::Int, true))),
        (
            prop::sample::select(vec!["COUNT", "SUM", "MIN", "MAX"]),
            dyadic_x()
        )
            .prop_map(|(f, x)| simple(f, x)),
    ];
    (base, prop::option::weighted(0.2, cond())).prop_map(|(i, f)| with_filter(i, f))
}

/// An operand of sums and differences: an exact aggregate, AVG or MEDIAN (their absolute
/// error stays small under + and -).
fn additive_operand() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => exact_operand(),
        1 => (prop::sample::select(vec!["AVG", "MEDIAN"]), dyadic_x())
            .prop_map(|(f, x)| simple(f, x)),
    ]
}

fn combine(a: &Item, op: &str, b: &Item, exact: bool) -> Item {
    item(
        format!("{} {op} {}", a.ours, b.ours),
        format!("{} {op} {}", a.reference, b.reference),
        Tol::Same,
        exact,
    )
}

/// Arithmetic over aggregates.
fn arithmetic() -> impl Strategy<Value = Item> {
    prop_oneof![
        // SUM(qty) / COUNT(*): integer division for integer x.
        num_x().prop_map(|x| {
            let s = format!("SUM({}) / COUNT(*)", x.sql);
            item(s.clone(), s, Tol::Same, x.ty == Ty::Int)
        }),
        (exact_operand(), exact_operand()).prop_map(|(a, b)| {
            let s = format!("1.0 * {} / {}", a.ours, b.ours);
            let r = format!("1.0 * {} / {}", a.reference, b.reference);
            item(s, r, Tol::Same, false)
        }),
        (dyadic_x(), dyadic_x()).prop_map(|(a, b)| {
            let s = format!("MAX({}) - MIN({})", a.sql, b.sql);
            item(s.clone(), s, Tol::Same, a.ty == Ty::Int && b.ty == Ty::Int)
        }),
        cond().prop_map(|c| {
            let s = format!("100.0 * COUNT(*) FILTER (WHERE {c}) / COUNT(*)");
            item(s.clone(), s, Tol::Same, false)
        }),
        (
            exact_operand(),
            prop::sample::select(vec!["*", "/"]),
            exact_operand()
        )
            .prop_map(|(a, op, b)| combine(&a, op, &b, false)),
        (
            additive_operand(),
            prop::sample::select(vec!["+", "-"]),
            additive_operand()
        )
            .prop_map(|(a, op, b)| combine(&a, op, &b, false)),
        dyadic_x().prop_map(|x| {
            let s = format!("COUNT(*) - COUNT({})", x.sql);
            item(s.clone(), s, Tol::Same, true)
        }),
    ]
}

/// A group key: (expression, is a plain column).
const KEYS: [(&str, bool); 12] = [
    ("region", true),
    ("year", true),
    ("note", true),
    ("qty", true),
    ("year % 2", false),
    ("CASE WHEN qty > 3 THEN 'big' ELSE 'small' END", false),
    ("COALESCE(note, 'none')", false),
    ("qty % 3", false),
    ("year - 2020", false),
    ("amount", true),
    ("ROUND(amount)", false),
    ("year / 2", false),
];

/// How a key is written in GROUP BY (and ORDER BY): as itself, by position, by alias.
#[derive(Clone, Copy, Debug)]
enum KeyRef {
    Itself,
    Position,
    Alias,
}

/// A HAVING clause, in consort's SQL and in the reference's.
fn having() -> impl Strategy<Value = (String, String)> {
    let lit = prop::sample::select(vec![
        "-3", "-1.5", "0", "1", "2", "3", "5", "10", "25.5", "2021",
    ]);
    let op = prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]);
    let same = |s: String| (s.clone(), s);
    let agg = prop_oneof![
        Just(same("COUNT(*)".to_string())),
        (
            prop::sample::select(vec!["COUNT", "SUM", "AVG", "MIN", "MAX", "MEDIAN"]),
            dyadic_x()
        )
            .prop_map(move |(f, x)| same(format!("{f}({})", x.sql))),
        any_x().prop_map(move |x| same(format!("COUNT(DISTINCT {})", x.sql))),
        dyadic_x().prop_map(move |x| same(format!("SUM(DISTINCT {})", x.sql))),
        cond().prop_map(move |c| same(format!("COUNT(*) FILTER (WHERE {c})"))),
        (prop::sample::select(vec!["0.25", "0.5", "1.0"]), dyadic_x()).prop_map(|(p, x)| (
            format!("PERCENTILE_DISC({p}) WITHIN GROUP (ORDER BY {})", x.sql),
            format!("pct_disc({p}, {})", x.sql)
        )),
    ];
    let atom =
        (agg, op, lit).prop_map(|((a, r), o, l)| (format!("{a} {o} {l}"), format!("{r} {o} {l}")));
    atom.prop_recursive(2, 4, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| (
                format!("({}) AND ({})", a.0, b.0),
                format!("({}) AND ({})", a.1, b.1)
            )),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| (
                format!("({}) OR ({})", a.0, b.0),
                format!("({}) OR ({})", a.1, b.1)
            )),
            inner.prop_map(|a| (format!("NOT ({})", a.0), format!("NOT ({})", a.1))),
        ]
    })
}

/// A generated query.
#[derive(Clone, Debug)]
struct Query {
    /// Indices into KEYS, and how each is written in GROUP BY.
    keys: Vec<(usize, KeyRef)>,
    items: Vec<Item>,
    filter: Option<String>,
    /// HAVING, in consort's SQL and in the reference's.
    having: Option<(String, String)>,
    /// ORDER BY: (select position, DESC); covers every key.
    order: Option<Vec<(usize, bool)>>,
    /// Write ORDER BY entries by position rather than by name.
    order_by_position: bool,
    limit: Option<u64>,
}

fn query() -> impl Strategy<Value = Query> {
    let key_ref = prop::sample::select(vec![KeyRef::Itself, KeyRef::Position, KeyRef::Alias]);
    let keys = prop::sample::subsequence((0..KEYS.len()).collect::<Vec<_>>(), 0..=2)
        .prop_shuffle()
        .prop_flat_map(move |ks| {
            let n = ks.len();
            (Just(ks), prop::collection::vec(key_ref.clone(), n))
        })
        .prop_map(|(ks, rs)| ks.into_iter().zip(rs).collect::<Vec<_>>());
    let items = prop::collection::vec(prop_oneof![3 => agg_call(), 1 => arithmetic()], 1..=4);
    (
        keys,
        items,
        prop::option::weighted(0.45, where_clause()),
        prop::option::weighted(0.35, having()),
        // ORDER BY: whether, the key permutation seed, directions, an aggregate's slot.
        (
            prop::bool::weighted(0.6),
            prop::collection::vec(prop::bool::ANY, 3),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop::bool::ANY,
            prop::bool::weighted(0.3),
        ),
        prop::option::weighted(0.5, 1u64..5),
    )
        .prop_map(|(keys, items, filter, having, o, limit)| {
            let (ordered, dirs, agg_pick, agg_slot, with_agg, by_pos) = o;
            let nk = keys.len();
            let order = (ordered && nk > 0).then(|| {
                let mut list: Vec<(usize, bool)> = (0..nk).map(|i| (i, dirs[i])).collect();
                if nk == 2 && dirs[2] {
                    list.swap(0, 1);
                }
                let exact: Vec<usize> = (0..items.len()).filter(|&i| items[i].exact).collect();
                if with_agg && !exact.is_empty() {
                    let at = agg_slot.index(nk + 1);
                    list.insert(at, (nk + exact[agg_pick.index(exact.len())], dirs[0]));
                }
                list
            });
            let limit = if order.is_some() { limit } else { None };
            Query {
                keys,
                items,
                filter,
                having,
                order,
                order_by_position: by_pos,
                limit,
            }
        })
}

impl Query {
    fn key_name(&self, i: usize) -> String {
        let (e, col) = KEYS[self.keys[i].0];
        if col {
            e.to_string()
        } else {
            format!("k{i}")
        }
    }

    /// The query; `reference` adds the suppression to HAVING and uses the reference's
    /// aggregates; `count_groups` selects, instead, every group's row count (unfiltered by
    /// HAVING, without ORDER BY and LIMIT).
    fn sql(&self, reference: Option<u32>, count_groups: bool) -> String {
        let mut sel: Vec<String> = Vec::new();
        for (i, &(k, _)) in self.keys.iter().enumerate() {
            let (e, col) = KEYS[k];
            sel.push(if col {
                e.to_string()
            } else {
                format!("{e} AS k{i}")
            });
        }
        for (i, it) in self.items.iter().enumerate() {
            let s = if reference.is_some() {
                &it.reference
            } else {
                &it.ours
            };
            sel.push(format!("{s} AS a{i}"));
        }
        if count_groups {
            sel.push("COUNT(*) AS consort_c".into());
        }
        let mut s = format!("SELECT {} FROM sales", sel.join(", "));
        if let Some(f) = &self.filter {
            s += &format!(" WHERE {f}");
        }
        if !self.keys.is_empty() {
            let g: Vec<String> = self
                .keys
                .iter()
                .enumerate()
                .map(|(i, &(k, r))| match (r, KEYS[k].1) {
                    (KeyRef::Position, _) => (i + 1).to_string(),
                    (KeyRef::Alias, false) => format!("k{i}"),
                    _ => KEYS[k].0.to_string(),
                })
                .collect();
            s += &format!(" GROUP BY {}", g.join(", "));
        }
        if count_groups {
            return s;
        }
        match (&self.having, reference) {
            (Some((_, h)), Some(k)) => s += &format!(" HAVING COUNT(*) >= {k} AND ({h})"),
            (None, Some(k)) => s += &format!(" HAVING COUNT(*) >= {k}"),
            (Some((h, _)), None) => s += &format!(" HAVING {h}"),
            (None, None) => {}
        }
        if let Some(o) = &self.order {
            let nk = self.keys.len();
            let parts: Vec<String> = o
                .iter()
                .map(|&(pos, desc)| {
                    let name = if self.order_by_position {
                        (pos + 1).to_string()
                    } else if pos < nk {
                        self.key_name(pos)
                    } else {
                        format!("a{}", pos - nk)
                    };
                    format!("{name}{}", if desc { " DESC" } else { "" })
                })
                .collect();
            s += &format!(" ORDER BY {}", parts.join(", "));
        }
        if let Some(l) = self.limit {
            s += &format!(" LIMIT {l}");
        }
        s
    }
}

// ---------------------------------------------------------------------------------------
// The data.

/// The rows of each owner m0, m1, m2.
#[derive(Clone, Debug)]
struct Data {
    owners: [Vec<Row>; 3],
}

fn row() -> impl Strategy<Value = Row> {
    let amount = prop_oneof![
        4 => prop::sample::select(vec![
            -12.5, -0.125, 0.0, 0.25, 0.75, 1.0, 2.5, 7.375, 40.5, 99.875, 150.0
        ]),
        4 => (-400i32..1600).prop_map(|a| f64::from(a) / 8.0),
        1 => (-160_000i32..160_000).prop_map(|a| f64::from(a) / 8.0),
    ];
    let qty = prop_oneof![
        1 => Just(None),
        3 => prop::sample::select(vec![-5i64, -1, 0, 1, 2, 3, 4, 7, 25]).prop_map(Some),
        1 => (-1000i64..1000).prop_map(Some),
    ];
    let note = prop::sample::select(vec![None, Some("x1"), Some("y2"), Some("xx"), Some("")]);
    (
        prop::sample::select(vec!["a", "b", "c", "B"]),
        2020i64..2024,
        amount,
        qty,
        note,
    )
        .prop_map(|(r, y, a, q, n)| {
            vec![
                Value::Text(r.into()),
                Value::Integer(y),
                Value::Float(a),
                q.map_or(Value::Null, Value::Integer),
                n.map_or(Value::Null, |n| Value::Text(n.into())),
            ]
        })
}

fn data() -> impl Strategy<Value = Data> {
    (
        // Which owners hold rows (a non-empty subset).
        1u8..8,
        // Each row with the holder it goes to and whether another holder has it too.
        prop::collection::vec((row(), 0usize..3, prop::bool::weighted(0.25)), 0..24),
        // Region c's qty all NULL (an all-NULL group).
        prop::bool::weighted(0.3),
    )
        .prop_map(|(mask, rows, null_c)| {
            let holders: Vec<usize> = (0..3).filter(|i| mask & (1 << i) != 0).collect();
            let mut owners: [Vec<Row>; 3] = Default::default();
            for (mut r, pick, dup) in rows {
                if null_c && r[0] == Value::Text("c".into()) {
                    r[3] = Value::Null;
                }
                let h = holders.len();
                owners[holders[pick % h]].push(r.clone());
                if dup && h > 1 {
                    owners[holders[(pick + 1) % h]].push(r);
                }
            }
            Data { owners }
        })
}

// ---------------------------------------------------------------------------------------
// The reference and the comparison.

fn sqlite_with(d: &Data) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    register_reference_aggregates(&db);
    register_var_pop(&db);
    register_greatest_least(&db);
    db.execute_batch(
        "CREATE TABLE sales (region TEXT, year INTEGER, amount REAL, qty INTEGER, note TEXT)",
    )
    .unwrap();
    for r in d.owners.iter().flatten() {
        let p: Vec<S> = r
            .iter()
            .map(|v| match v {
                Value::Null => S::Null,
                Value::Integer(i) => S::Integer(*i),
                Value::Float(f) => S::Real(*f),
                Value::Text(t) => S::Text(t.to_string()),
                other => panic!("{other:?}"),
            })
            .collect();
        db.execute(
            "INSERT INTO sales VALUES (?, ?, ?, ?, ?)",
            rusqlite::params_from_iter(p),
        )
        .unwrap();
    }
    db
}

/// `var_pop(x)` for the reference (NULLs skipped; no value: NULL).
fn register_var_pop(db: &rusqlite::Connection) {
    use rusqlite::functions::{Aggregate, Context, FunctionFlags};
    struct VarPop;
    impl Aggregate<Vec<f64>, Option<f64>> for VarPop {
        fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Vec<f64>> {
            Ok(Vec::new())
        }
        fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<f64>) -> rusqlite::Result<()> {
            if let Some(v) = ctx.get::<Option<f64>>(0)? {
                acc.push(v);
            }
            Ok(())
        }
        fn finalize(
            &self,
            _: &mut Context<'_>,
            acc: Option<Vec<f64>>,
        ) -> rusqlite::Result<Option<f64>> {
            let xs = acc.unwrap_or_default();
            if xs.is_empty() {
                return Ok(None);
            }
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            Ok(Some(
                xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n,
            ))
        }
    }
    let flags =
        rusqlite::functions::FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    db.create_aggregate_function("var_pop", 1, flags, VarPop)
        .unwrap();
}

/// PostgreSQL's `GREATEST`/`LEAST` of numbers for the reference: NULL arguments are
/// ignored (SQLite's multi-argument `max`/`min` would give NULL); an integer result stays
/// an integer, and a float argument makes the result a float.
fn register_greatest_least(db: &rusqlite::Connection) {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for (name, greatest) in [("greatest", true), ("least", false)] {
        db.create_scalar_function(name, -1, flags, move |ctx| {
            let vals: Vec<S> = (0..ctx.len())
                .map(|i| ctx.get::<S>(i))
                .collect::<rusqlite::Result<_>>()?;
            let float = vals.iter().any(|v| matches!(v, S::Real(_)));
            let nums = vals.iter().filter_map(|v| match v {
                S::Integer(i) => Some(*i as f64),
                S::Real(f) => Some(*f),
                _ => None,
            });
            let pick = if greatest {
                nums.reduce(f64::max)
            } else {
                nums.reduce(f64::min)
            };
            Ok(match pick {
                None => S::Null,
                Some(v) if float => S::Real(v),
                Some(v) => S::Integer(v as i64),
            })
        })
        .unwrap();
    }
}

/// SQLite's rows for the query, and the number of groups below k.
fn reference(q: &Query, d: &Data, k: u32) -> (Vec<Vec<S>>, u64) {
    let db = sqlite_with(d);
    let sql = q.sql(Some(k), false);
    let mut st = db.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = st.column_count();
    let rows: Vec<Vec<S>> = st
        .query_map([], |r| (0..n).map(|i| r.get::<_, S>(i)).collect())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let inner = q.sql(Some(k), true);
    let suppressed = db
        .query_row(
            &format!("SELECT COUNT(*) FROM ({inner}) WHERE consort_c < {k}"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or_else(|e| panic!("{inner}: {e}")) as u64;
    (rows, suppressed)
}

fn roles_for(config: usize) -> Roles {
    let owners = vec![member(0), member(1), member(2)];
    let (compute, requester) = match config {
        0 => ([member(0), member(1), member(2)], member(0)),
        1 => ([member(3), member(4), member(5)], member(6)),
        _ => ([member(4), member(0), member(3)], member(1)),
    };
    Roles {
        compute,
        owners,
        requester,
    }
}

/// Runs every party of `roles` on its own thread with the given owners' local inputs.
fn run_with(
    p: &Plan,
    roles: &Roles,
    inputs: &[(MemberId, LocalInput)],
    k: u32,
    seed: u64,
) -> Result<Vec<(MemberId, PartyOutcome)>, String> {
    let parties = roles.parties();
    let nets = consort_mpc::mem_network(parties.len(), Duration::from_secs(20));
    std::thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip(parties.iter().copied())
            .enumerate()
            .map(|(i, (t, m))| {
                let local = inputs.iter().find(|(o, _)| *o == m).map(|(_, l)| l.clone());
                s.spawn(move || {
                    let mut t: Box<dyn consort_mpc::Transport> = Box::new(t);
                    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 * 7919));
                    (m, run_party(&mut t, p, roles, &m, local, k, &mut rng))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("party thread"))
            .map(|(m, r)| r.map(|o| (m, o)).map_err(|e| format!("party {m}: {e}")))
            .collect()
    })
}

fn sort_str(v: &S) -> String {
    match v {
        S::Real(f) => format!("f{f}"),
        S::Text(t) => format!("t{t}"),
        S::Integer(i) => format!("i{:020}", i.wrapping_add(1 << 40)),
        _ => String::new(),
    }
}

fn sort_str_ours(v: &Value) -> String {
    match v {
        Value::Float(f) => format!("f{f}"),
        Value::Text(t) => format!("t{t}"),
        Value::Integer(i) => format!("i{:020}", i.wrapping_add(1 << 40)),
        _ => String::new(),
    }
}

fn compare_value(got: &Value, want: &S, tol: Tol, max: f64, what: &str) {
    let var = |a: f64, b: f64, dyadic: bool| {
        let tol = if dyadic {
            1e-3 * b.abs().max(1.0)
        } else {
            (1e-3 * b.abs()).max(var_abs(max))
        };
        assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (variance)");
    };
    match (tol, got, want) {
        (Tol::Var(dyadic), Value::Float(a), S::Real(b)) => var(*a, *b, dyadic),
        (Tol::Sqrt(dyadic), Value::Float(a), S::Real(b)) => var(a * a, b * b, dyadic),
        _ => same(got, want, false, what),
    }
}

/// Each owner's local input.
type Inputs = Vec<(MemberId, LocalInput)>;

/// The local inputs of the in-memory store (the reference backend).
fn mem_inputs(p: &Plan, d: &Data) -> Inputs {
    (0..3)
        .map(|i| (member(i as u8), local_input(p, &d.owners[i])))
        .collect()
}

/// Plans, runs and compares one case; `inputs` computes the owners' local inputs.
fn check(
    q: &Query,
    d: &Data,
    k: u32,
    config: usize,
    seed: u64,
    inputs: &dyn Fn(&Plan, &Data) -> Inputs,
) {
    let sql = q.sql(None, false);
    let ctx = format!(
        "{sql}\n  reference: {}\n  K {k}, config {config}, seed {seed}\n  data {:?}",
        q.sql(Some(k), false),
        d.owners
    );
    let p = plan(&sql, &catalog()).unwrap_or_else(|e| panic!("{ctx}\n  plan: {e}"));
    let roles = roles_for(config);
    let local = inputs(&p, d);
    let outs =
        run_with(&p, &roles, &local, k, seed).unwrap_or_else(|e| panic!("{ctx}\n  run: {e}"));
    let get = |m: &MemberId| &outs.iter().find(|(x, _)| x == m).unwrap().1;
    let table = get(&roles.requester)
        .table
        .clone()
        .expect("requester table");
    let (want, suppressed) = reference(q, d, k);
    let got_show = format!("{:?}", table.rows);
    let ctx = format!("{ctx}\n  got  {got_show}\n  want {want:?}");
    assert_eq!(table.suppressed_groups, suppressed, "{ctx}\n  suppressed");
    assert_eq!(table.rows.len(), want.len(), "{ctx}\n  row count");
    let (mut got, mut want) = (table.rows.clone(), want);
    let nk = q.keys.len();
    // The largest |amount| or |qty| (bounds every |x| of the grammar up to a few units).
    let max = d
        .owners
        .iter()
        .flatten()
        .flat_map(|r| [num(&r[2]).abs(), num(&r[3]).abs()])
        .filter(|v| !v.is_nan())
        .fold(0.0, f64::max);
    if q.order.is_none() {
        want.sort_by_key(|r| r[..nk].iter().map(sort_str).collect::<Vec<_>>());
        got.sort_by_key(|r| r[..nk].iter().map(sort_str_ours).collect::<Vec<_>>());
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "{ctx}");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            let tol = if j < nk {
                Tol::Same
            } else {
                q.items[j - nk].tol
            };
            compare_value(a, b, tol, max, &format!("{ctx}\n  row {i} column {j}"));
        }
    }
    // The compute parties attest the requester's table.
    let h = table.hash();
    for m in roles.compute {
        assert_eq!(get(&m).result_hash, Some(h), "{ctx}\n  attestation");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 768,
        max_shrink_iters: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Random queries over random tables split over the owners, against SQLite.
    #[test]
    fn generated_queries_match_sqlite(
        q in query(),
        d in data(),
        k in 1u32..=2,
        config in 0usize..3,
        seed in any::<u64>(),
    ) {
        check(&q, &d, k, config, seed, &mem_inputs);
    }
}

// ---------------------------------------------------------------------------------------
// Real databases: each owner's local input from a PostgreSQL or MariaDB store.

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";

/// Opens a server store; fails (does not skip) when the server cannot be reached.
async fn server(env: &str, default: &str, how: &str) -> std::sync::Arc<dyn DatasetStore> {
    let url = std::env::var(env).unwrap_or_else(|_| default.to_string());
    match consort_store::open_store(&url).await {
        Ok(store) => store,
        Err(e) => panic!(
            "{e}\n\nThis test needs the server running (it does not skip).\n\
             Start it with:\n    {how}\n\
             or point {env} at a reachable database."
        ),
    }
}

/// Ten fixed generated cases (a fixed seed), each with at least one row in the result.
fn fixed_cases() -> Vec<(Query, Data, u32, usize, u64)> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[18; 32]),
    );
    let strategy = (query(), data(), 1u32..=2, 0usize..3, any::<u64>());
    let mut out = Vec::new();
    while out.len() < 10 {
        let (q, d, k, config, seed) = strategy.new_tree(&mut runner).unwrap().current();
        if !reference(&q, &d, k).0.is_empty() {
            out.push((q, d, k, config, seed));
        }
    }
    out
}

/// Each owner's local input computed by `store`, as `support::local_input` does with the
/// in-memory store: its rows loaded into a table of their own, then `Plan::local` and
/// each value list's selection run there.
async fn store_inputs(store: &dyn DatasetStore, p: &Plan, d: &Data) -> Inputs {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut out = Vec::new();
    for (i, rows) in d.owners.iter().enumerate() {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = format!("consort_diff_{}_{n}_m{i}", std::process::id());
        if store.table_exists(&table).await.unwrap() {
            store.drop_table(&table).await.unwrap();
        }
        let mut load = store.begin_load(&table, &p.schema).await.unwrap();
        if !rows.is_empty() {
            let numbered = rows.iter().cloned().enumerate();
            load.insert(numbered.map(|(j, r)| (j as u64, r)).collect())
                .await
                .unwrap();
        }
        load.commit().await.unwrap();
        let partials = match &p.local {
            LocalWork::Aggregate(q) => store.aggregate(&table, &p.schema, q).await,
            LocalWork::Select(s) => store.select(&table, &p.schema, s).await,
        }
        .unwrap_or_else(|e| panic!("{}: local part: {e}", store.backend()));
        let lists = p.value_lists();
        let input = if lists.is_empty() {
            LocalInput::Rows(partials)
        } else {
            let mut rows = Vec::new();
            for l in &lists {
                let select = p.value_list_select(l);
                rows.push(
                    store
                        .select(&table, &p.schema, &select)
                        .await
                        .unwrap_or_else(|e| panic!("{}: value list: {e}", store.backend())),
                );
            }
            LocalInput::Aggregate {
                partials,
                lists: rows,
            }
        };
        store.drop_table(&table).await.unwrap();
        out.push((member(i as u8), input));
    }
    out
}

fn check_store(env: &str, default: &str, how: &str, backend: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(server(env, default, how));
    assert_eq!(store.backend(), backend);
    for (q, d, k, config, seed) in fixed_cases() {
        let inputs = |p: &Plan, d: &Data| rt.block_on(store_inputs(store.as_ref(), p, d));
        check(&q, &d, k, config, seed, &inputs);
    }
}

#[test]
fn real_stores_postgres_owners_match_sqlite() {
    check_store(
        "CONSORT_TEST_POSTGRES_URL",
        PG_DEFAULT,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        "postgres",
    );
}

#[test]
fn real_stores_mariadb_owners_match_sqlite() {
    check_store(
        "CONSORT_TEST_MYSQL_URL",
        MYSQL_DEFAULT,
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
        "mysql",
    );
}
