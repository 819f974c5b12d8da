//! Property test: random filters, groupings and aggregates over random small tables give
//! the same answers on SQLite, PostgreSQL and MariaDB/MySQL as on the in-memory
//! reference store. The server test fails (it does not skip) when a server cannot be
//! reached: PostgreSQL at `postgres://postgres@127.0.0.1:5432/test` (or
//! `CONSORT_TEST_POSTGRES_URL`), MariaDB at `mysql://root@127.0.0.1:3306/test` (or
//! `CONSORT_TEST_MYSQL_URL`).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use consort_model::{Column, ColumnType, Row, Schema, Value};
use consort_store::{
    open_store, CmpOp, DatasetStore, LocalAggregate, LocalAggregateQuery, LocalSelect, Predicate,
};
use proptest::prelude::*;

const COLS: [(&str, ColumnType); 5] = [
    ("i", ColumnType::Integer),
    ("f", ColumnType::Float),
    ("b", ColumnType::Boolean),
    ("s", ColumnType::Text),
    ("d", ColumnType::Date),
];

const TEXTS: [&str; 9] = ["a", "A", "ab", "b", "a ", "_", "%", "é", ""];
const PATTERNS: [&str; 10] = ["a", "A%", "a%", "%", "_", "%b", "_b", "a_", "%a%", "é"];

fn schema() -> Schema {
    Schema {
        columns: COLS
            .iter()
            .map(|(n, ty)| Column {
                name: n.to_string(),
                ty: *ty,
                nullable: true,
            })
            .collect(),
    }
}

fn value_of(ty: ColumnType) -> BoxedStrategy<Value> {
    match ty {
        ColumnType::Integer => (-3i64..4).prop_map(Value::Integer).boxed(),
        ColumnType::Float => (-8i32..9)
            .prop_map(|q| Value::Float(f64::from(q) * 0.25))
            .boxed(),
        ColumnType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ColumnType::Text => (0..TEXTS.len())
            .prop_map(|k| Value::Text(TEXTS[k].into()))
            .boxed(),
        _ => (0u32..5)
            .prop_map(|k| {
                Value::Date(NaiveDate::from_ymd_opt(1999 + k as i32 % 3, 1 + k, 1).unwrap())
            })
            .boxed(),
    }
}

fn cell(ty: ColumnType) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 4 => value_of(ty)].boxed()
}

fn row() -> impl Strategy<Value = Row> {
    COLS.iter().map(|(_, ty)| cell(*ty)).collect::<Vec<_>>()
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::NotEq),
        Just(CmpOp::Lt),
        Just(CmpOp::LtEq),
        Just(CmpOp::Gt),
        Just(CmpOp::GtEq)
    ]
}

fn leaf() -> BoxedStrategy<Predicate> {
    let col = 0..COLS.len();
    col.prop_flat_map(|k| {
        let (name, ty) = COLS[k];
        let name = name.to_string();
        let lit = if ty == ColumnType::Float {
            // Integer literals are accepted for float columns.
            prop_oneof![value_of(ty), (-3i64..4).prop_map(Value::Integer)].boxed()
        } else {
            value_of(ty)
        };
        let n1 = name.clone();
        let n2 = name.clone();
        let n3 = name.clone();
        let n4 = name;
        let mut options: Vec<BoxedStrategy<Predicate>> = vec![
            (op(), lit.clone())
                .prop_map(move |(op, value)| Predicate::Compare {
                    column: n1.clone(),
                    op,
                    value,
                })
                .boxed(),
            (proptest::collection::vec(lit.clone(), 1..4), any::<bool>())
                .prop_map(move |(values, negated)| Predicate::In {
                    column: n2.clone(),
                    values,
                    negated,
                })
                .boxed(),
            (lit.clone(), lit, any::<bool>())
                .prop_map(move |(low, high, negated)| Predicate::Between {
                    column: n3.clone(),
                    low,
                    high,
                    negated,
                })
                .boxed(),
            any::<bool>()
                .prop_map(move |negated| Predicate::IsNull {
                    column: n4.clone(),
                    negated,
                })
                .boxed(),
        ];
        if ty == ColumnType::Text {
            options.push(like_leaf());
        }
        proptest::strategy::Union::new(options)
    })
    .boxed()
}

fn like_leaf() -> BoxedStrategy<Predicate> {
    (0..PATTERNS.len(), any::<bool>())
        .prop_map(|(p, negated)| Predicate::Like {
            column: "s".into(),
            pattern: PATTERNS[p].to_string(),
            negated,
        })
        .boxed()
}

fn predicate() -> impl Strategy<Value = Predicate> {
    prop_oneof![3 => leaf(), 1 => like_leaf()].prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Predicate::And),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Predicate::Or),
            inner.prop_map(|p| Predicate::Not(Box::new(p))),
        ]
    })
}

fn aggregate() -> impl Strategy<Value = LocalAggregate> {
    let any_col = (0..COLS.len()).prop_map(|k| COLS[k].0.to_string());
    let num_col = prop_oneof![Just("i".to_string()), Just("f".to_string())];
    prop_oneof![
        Just(LocalAggregate::CountRows),
        any_col.clone().prop_map(LocalAggregate::Count),
        num_col.clone().prop_map(LocalAggregate::Sum),
        num_col.prop_map(LocalAggregate::SumSquares),
        any_col.clone().prop_map(LocalAggregate::Min),
        any_col.prop_map(LocalAggregate::Max),
    ]
}

fn query() -> impl Strategy<Value = LocalAggregateQuery> {
    (
        proptest::option::of(predicate()),
        proptest::sample::subsequence(vec!["i", "f", "b", "s", "d"], 0..3),
        proptest::collection::vec(aggregate(), 0..4),
    )
        .prop_map(|(filter, group_by, aggregates)| LocalAggregateQuery {
            derived: Vec::new(),
            filter,
            group_by: group_by.into_iter().map(String::from).collect(),
            aggregates,
        })
}

fn same_rows(a: &[Row], b: &[Row]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(u, v)| match (u, v) {
                    (Value::Float(p), Value::Float(q)) => p == q,
                    _ => u == v,
                })
        })
}

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn compare(
    stores: &[&dyn DatasetStore],
    rows: Vec<Row>,
    queries: Vec<LocalAggregateQuery>,
) -> Result<(), TestCaseError> {
    let s = schema();
    let table = format!(
        "prop{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_007)
            .unwrap_or(0),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let numbered: Vec<(u64, Row)> = rows
        .into_iter()
        .enumerate()
        .map(|(k, r)| (k as u64 * 2 + 1, r))
        .collect();
    for st in stores {
        let mut l = st.begin_load(&table, &s).await.expect("begin_load");
        l.insert(numbered.clone()).await.expect("insert");
        l.commit().await.expect("commit");
    }
    let mut result = Ok(());
    'outer: for q in &queries {
        let sel = LocalSelect {
            derived: Vec::new(),
            columns: vec!["d".into(), "i".into(), "s".into(), "f".into(), "b".into()],
            filter: q.filter.clone(),
            mask: None,
        };
        let reference_sel = stores[0].select(&table, &s, &sel).await;
        let reference_agg = stores[0].aggregate(&table, &s, q).await;
        for st in &stores[1..] {
            let got_sel = st.select(&table, &s, &sel).await;
            let got_agg = st.aggregate(&table, &s, q).await;
            let ok = match (&reference_sel, &got_sel) {
                (Ok(a), Ok(b)) => same_rows(a, b),
                _ => false,
            } && match (&reference_agg, &got_agg) {
                (Ok(a), Ok(b)) => same_rows(a, b),
                _ => false,
            };
            if !ok {
                result = Err(TestCaseError::fail(format!(
                    "{} differs from {} on {q:?}\nselect: {reference_sel:?}\nvs      \
                     {got_sel:?}\naggregate: {reference_agg:?}\nvs         {got_agg:?}",
                    st.backend(),
                    stores[0].backend()
                )));
                break 'outer;
            }
        }
    }
    for st in stores {
        st.drop_table(&table).await.expect("drop_table");
    }
    result
}

#[test]
fn sqlite_matches_the_memory_store() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("prop.db").display());
    let (mem, sqlite) = rt.block_on(async {
        (
            open_store("memory:").await.expect("memory"),
            open_store(&url).await.expect("sqlite"),
        )
    });
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        rows in proptest::collection::vec(row(), 0..12),
        queries in proptest::collection::vec(query(), 1..6),
    )| {
        rt.block_on(compare(&[mem.as_ref(), sqlite.as_ref()], rows, queries))?;
    });
}

#[test]
fn postgres_and_mysql_match_the_memory_store() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = |env: &str, default: &str| {
        let url = std::env::var(env).unwrap_or_else(|_| default.to_string());
        rt.block_on(open_store(&url)).unwrap_or_else(|e| {
            panic!("{e}\nThis test needs the server running (it does not skip).")
        })
    };
    let pg = server(
        "CONSORT_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let my = server("CONSORT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    let mem = rt.block_on(open_store("memory:")).expect("memory");
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        rows in proptest::collection::vec(row(), 0..12),
        queries in proptest::collection::vec(query(), 1..6),
    )| {
        rt.block_on(compare(&[mem.as_ref(), pg.as_ref(), my.as_ref()], rows, queries))?;
    });
}
