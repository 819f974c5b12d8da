//! Shared test fixtures: a catalog, a plaintext owner-local evaluator (what each owner's
//! database computes for `Plan::local`), an SQLite reference and an in-process runner of
//! every party over `consort_mpc::mem_network`.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::time::Duration;

use consort_crypto::{Hash, MemberId};
use consort_data::{ColumnType, Row, Schema, Value};
use consort_ledger::dataset::{ColumnSpec, DatasetEntry, DatasetKind, DatasetRecord};
use consort_query::{
    run_party, Catalog, LocalInput, LocalWork, PartyOutcome, Plan, QueryError, Roles,
};
use consort_store::{CmpOp, LocalAggregate, Predicate};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub fn member(i: u8) -> MemberId {
    MemberId([i + 1; 16])
}

pub const SALES: [(&str, &str, bool); 5] = [
    ("region", "text", false),
    ("year", "integer", false),
    ("amount", "float", false),
    ("qty", "integer", true),
    ("note", "text", true),
];

pub fn entry(owner: MemberId, name: &str, cols: &[(&str, &str, bool)]) -> DatasetEntry {
    DatasetEntry {
        owner,
        record: DatasetRecord {
            name: name.to_string(),
            kind: DatasetKind::Table,
            columns: cols
                .iter()
                .map(|(n, t, nullable)| ColumnSpec {
                    name: n.to_string(),
                    ty: t.to_string(),
                    nullable: *nullable,
                })
                .collect(),
            row_count: 0,
            commitment: Hash::ZERO,
            input_hash: Hash::ZERO,
            recipe_hash: Hash::ZERO,
            version: 1,
            parent: None,
            commitment_scheme: Default::default(),
        },
        tx_id: Hash([owner.0[0]; 32]),
    }
}

/// Members m0..m7; `sales` owned by m0, m1, m2.
pub fn catalog() -> Catalog {
    Catalog {
        members: (0..8).map(|i| (member(i), format!("m{i}"))).collect(),
        datasets: (0..3).map(|i| entry(member(i), "sales", &SALES)).collect(),
    }
}

fn cmp(x: &Value, y: &Value) -> Option<Ordering> {
    match (x, y) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        (Value::Integer(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Value::Integer(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn like(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some(c) => s.first() == Some(c) && go(&s[1..], &p[1..]),
        }
    }
    go(&s, &p)
}

/// Three-valued evaluation of a predicate.
pub fn eval(p: &Predicate, schema: &Schema, row: &Row) -> Option<bool> {
    let col = |c: &str| &row[schema.index_of(c).expect("column")];
    match p {
        Predicate::Compare { column, op, value } => {
            let o = cmp(col(column), value)?;
            Some(match op {
                CmpOp::Eq => o.is_eq(),
                CmpOp::NotEq => o.is_ne(),
                CmpOp::Lt => o.is_lt(),
                CmpOp::LtEq => o.is_le(),
                CmpOp::Gt => o.is_gt(),
                CmpOp::GtEq => o.is_ge(),
            })
        }
        Predicate::And(ps) => {
            let vs: Vec<Option<bool>> = ps.iter().map(|q| eval(q, schema, row)).collect();
            if vs.contains(&Some(false)) {
                Some(false)
            } else if vs.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Predicate::Or(ps) => {
            let vs: Vec<Option<bool>> = ps.iter().map(|q| eval(q, schema, row)).collect();
            if vs.contains(&Some(true)) {
                Some(true)
            } else if vs.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
        Predicate::Not(q) => eval(q, schema, row).map(|b| !b),
        Predicate::In {
            column,
            values,
            negated,
        } => {
            let v = col(column);
            if v.is_null() {
                return None;
            }
            let hit = values.iter().any(|x| cmp(v, x) == Some(Ordering::Equal));
            Some(hit != *negated)
        }
        Predicate::Between {
            column,
            low,
            high,
            negated,
        } => {
            let v = col(column);
            let r = cmp(v, low)?.is_ge() && cmp(v, high)?.is_le();
            Some(r != *negated)
        }
        Predicate::Like {
            column,
            pattern,
            negated,
        } => match col(column) {
            Value::Text(s) => Some(like(s, pattern) != *negated),
            _ => None,
        },
        Predicate::IsNull { column, negated } => Some(col(column).is_null() != *negated),
    }
}

fn sort_key(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => cmp(a, b).unwrap_or(Ordering::Equal),
    }
}

pub fn cmp_row(a: &Row, b: &Row) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| sort_key(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// What an owner's database returns for the plan's local part (the DatasetStore contract
/// of `LocalAggregateQuery` / `LocalSelect`).
pub fn local_eval(plan: &Plan, rows: &[Row]) -> Vec<Row> {
    let derived = match &plan.local {
        LocalWork::Select(s) => !s.derived.is_empty(),
        LocalWork::Aggregate(q) => !q.derived.is_empty(),
    };
    if derived {
        return store_eval(plan, rows);
    }
    let schema = &plan.schema;
    match &plan.local {
        LocalWork::Select(s) => rows
            .iter()
            .filter(|r| {
                s.filter
                    .as_ref()
                    .is_none_or(|p| eval(p, schema, r) == Some(true))
            })
            .map(|r| {
                s.columns
                    .iter()
                    .map(|c| r[schema.index_of(c).unwrap()].clone())
                    .collect()
            })
            .collect(),
        LocalWork::Aggregate(q) => {
            let kept: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    q.filter
                        .as_ref()
                        .is_none_or(|p| eval(p, schema, r) == Some(true))
                })
                .collect();
            let key = |r: &Row| -> Row {
                q.group_by
                    .iter()
                    .map(|c| r[schema.index_of(c).unwrap()].clone())
                    .collect()
            };
            let mut keys: Vec<Row> = kept.iter().map(|r| key(r)).collect();
            keys.sort_by(cmp_row);
            keys.dedup_by(|a, b| cmp_row(a, b).is_eq());
            if q.group_by.is_empty() {
                keys = vec![vec![]];
            }
            keys.into_iter()
                .map(|k| {
                    let grp: Vec<&&Row> = kept
                        .iter()
                        .filter(|r| cmp_row(&key(r), &k).is_eq())
                        .collect();
                    let mut out = k.clone();
                    for a in &q.aggregates {
                        let vals = |c: &str| -> Vec<Value> {
                            let i = schema.index_of(c).unwrap();
                            grp.iter()
                                .map(|r| r[i].clone())
                                .filter(|v| !v.is_null())
                                .collect()
                        };
                        let ty = |c: &str| schema.columns[schema.index_of(c).unwrap()].ty;
                        out.push(match a {
                            LocalAggregate::CountRows => Value::Integer(grp.len() as i64),
                            LocalAggregate::Count(c) => Value::Integer(vals(c).len() as i64),
                            LocalAggregate::Sum(c) => {
                                let v = vals(c);
                                if v.is_empty() {
                                    Value::Null
                                } else if ty(c) == ColumnType::Integer {
                                    Value::Integer(v.iter().map(num).sum::<f64>() as i64)
                                } else {
                                    Value::Float(v.iter().map(num).sum())
                                }
                            }
                            LocalAggregate::SumSquares(c) => {
                                let v = vals(c);
                                if v.is_empty() {
                                    Value::Null
                                } else {
                                    Value::Float(v.iter().map(|x| num(x) * num(x)).sum())
                                }
                            }
                            LocalAggregate::Min(c) | LocalAggregate::Max(c) => {
                                let mut v = vals(c);
                                v.sort_by(sort_key);
                                let pick = if matches!(a, LocalAggregate::Min(_)) {
                                    v.first()
                                } else {
                                    v.last()
                                };
                                pick.cloned().unwrap_or(Value::Null)
                            }
                        });
                    }
                    out
                })
                .collect()
        }
    }
}

pub fn num(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

/// Runs every party of `roles` on its own thread; returns the outcomes by party id.
pub fn run_all(
    plan: &Plan,
    roles: &Roles,
    data: &[(MemberId, Vec<Row>)],
    k: u32,
    seed: u64,
) -> Vec<(MemberId, Result<PartyOutcome, QueryError>)> {
    let parties = roles.parties();
    let nets = consort_mpc::mem_network(parties.len(), Duration::from_secs(20));
    std::thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip(parties.iter().copied())
            .enumerate()
            .map(|(i, (t, m))| {
                s.spawn(move || {
                    let mut t: Box<dyn consort_mpc::Transport> = Box::new(t);
                    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 * 7919));
                    let local = data
                        .iter()
                        .find(|(o, _)| *o == m)
                        .map(|(_, rows)| local_input(plan, rows));
                    let r = run_party(&mut t, plan, roles, &m, local, k, &mut rng);
                    assert_eq!(t.me(), i, "transport handed back");
                    (m, r)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("party thread"))
            .collect()
    })
}

/// Compares a revealed value with SQLite's: exact for integers and text, within 10^-3
/// (relative) for floats, or 10^-2 after a square root for STDDEV_POP columns.
pub fn same(got: &Value, want: &rusqlite::types::Value, sqrt: bool, what: &str) {
    use rusqlite::types::Value as S;
    match (got, want) {
        (Value::Null, S::Null) => {}
        (Value::Integer(a), S::Integer(b)) => assert_eq!(a, b, "{what}"),
        (Value::Text(a), S::Text(b)) => assert_eq!(a, b, "{what}"),
        (Value::Float(a), S::Real(_) | S::Integer(_)) => {
            let b = match want {
                S::Real(b) => *b,
                S::Integer(i) => *i as f64,
                _ => f64::NAN,
            };
            let (b, tol) = if sqrt {
                (b.max(0.0).sqrt(), 1e-2)
            } else {
                (b, 1e-3 * b.abs().max(1.0))
            };
            assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
        }
        _ => panic!("{what}: {got:?} vs {want:?}"),
    }
}

/// An owner's whole local input: its partials and, when the plan has value lists, the
/// rows of each list (from the in-memory store).
pub fn local_input(plan: &Plan, rows: &[Row]) -> LocalInput {
    let lists = plan.value_lists();
    let partials = local_eval(plan, rows);
    if lists.is_empty() {
        return LocalInput::Rows(partials);
    }
    let lists = lists
        .iter()
        .map(|l| store_select(plan, rows, &plan.value_list_select(l)))
        .collect();
    LocalInput::Aggregate { partials, lists }
}

/// `select` over `rows` in the in-memory store.
pub fn store_select(plan: &Plan, rows: &[Row], select: &consort_store::LocalSelect) -> Vec<Row> {
    use consort_store::DatasetStore;
    let store = consort_store::MemStore::new();
    futures::executor::block_on(async {
        let mut load = store.begin_load("t", &plan.schema).await.unwrap();
        let numbered: Vec<(u64, Row)> = rows
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (i as u64, r))
            .collect();
        load.insert(numbered).await.unwrap();
        load.commit().await.unwrap();
        store.select("t", &plan.schema, select).await.unwrap()
    })
}

/// The plan's local part run by the in-memory store (the reference backend), for plans
/// with derived columns (row expressions), which the plain evaluator above does not know.
pub fn store_eval(plan: &Plan, rows: &[Row]) -> Vec<Row> {
    use consort_store::DatasetStore;
    let store = consort_store::MemStore::new();
    futures::executor::block_on(async {
        let mut load = store.begin_load("t", &plan.schema).await.unwrap();
        let numbered: Vec<(u64, Row)> = rows
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (i as u64, r))
            .collect();
        load.insert(numbered).await.unwrap();
        load.commit().await.unwrap();
        match &plan.local {
            LocalWork::Select(s) => store.select("t", &plan.schema, s).await.unwrap(),
            LocalWork::Aggregate(q) => store.aggregate("t", &plan.schema, q).await.unwrap(),
        }
    })
}

/// PostgreSQL's ordered-set and sample aggregates for the SQLite reference
/// (`consort_store::reference`).
pub fn register_reference_aggregates(db: &rusqlite::Connection) {
    consort_store::reference::register_aggregates(db).unwrap();
}

/// `PERCENTILE_x(p) WITHIN GROUP (ORDER BY x)` in the reference's spelling.
pub fn reference_percentiles(sql: &str) -> String {
    consort_store::reference::percentiles(sql)
}
