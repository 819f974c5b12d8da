//! JOIN queries end to end: owners with random tables align by PSI (or locally when one
//! member holds both sides), every party runs on its own thread over the in-memory MPC
//! network, and the requester's table must equal SQLite's answer over the plaintext
//! tables, with groups below K suppressed and counted.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use consort_crypto::MemberId;
use consort_data::{Row, Value};
use consort_query::{plan, run_party, Catalog, LocalInput, PartyOutcome, Plan, QueryError, Roles};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::*;

const VISITS: [(&str, &str, bool); 4] = [
    ("patient", "integer", true),
    ("ward", "text", false),
    ("cost", "float", false),
    ("age", "integer", true),
];
const CLAIMS: [(&str, &str, bool); 3] = [
    ("patient", "integer", true),
    ("insurer", "text", false),
    ("amount", "float", true),
];

/// `visits` held by m0 and m1, `claims` by m0 and m2.
fn join_catalog() -> Catalog {
    Catalog {
        members: (0..8).map(|i| (member(i), format!("m{i}"))).collect(),
        datasets: vec![
            entry(member(0), "visits", &VISITS),
            entry(member(1), "visits", &VISITS),
            entry(member(0), "claims", &CLAIMS),
            entry(member(2), "claims", &CLAIMS),
        ],
    }
}

/// Table data: (owner, dataset) → rows.
type Data = Vec<(MemberId, &'static str, Vec<Row>)>;

fn patient(rng: &mut StdRng) -> Value {
    if rng.gen_bool(0.1) {
        Value::Null
    } else {
        Value::Integer(rng.gen_range(0..10))
    }
}

fn random_data(rng: &mut StdRng) -> Data {
    let mut data = Vec::new();
    for m in [0, 1] {
        let n = rng.gen_range(0..18);
        let rows = (0..n)
            .map(|_| {
                vec![
                    patient(rng),
                    Value::Text(["icu", "er", "ward"][rng.gen_range(0..3)].into()),
                    Value::Float(rng.gen_range(0..800) as f64 / 8.0),
                    if rng.gen_bool(0.2) {
                        Value::Null
                    } else {
                        Value::Integer(rng.gen_range(1..90))
                    },
                ]
            })
            .collect();
        data.push((member(m), "visits", rows));
    }
    for m in [0, 2] {
        let n = rng.gen_range(0..18);
        let rows = (0..n)
            .map(|_| {
                vec![
                    patient(rng),
                    Value::Text(["acme", "zeta"][rng.gen_range(0..2)].into()),
                    if rng.gen_bool(0.2) {
                        Value::Null
                    } else {
                        Value::Float(rng.gen_range(-80..400) as f64 / 8.0)
                    },
                ]
            })
            .collect();
        data.push((member(m), "claims", rows));
    }
    data
}

struct Case {
    /// Ours and the SQLite reference's FROM for the left side (alias v).
    left: (&'static str, &'static str),
    /// The same for the right side (alias c).
    right: (&'static str, &'static str),
    select: &'static str,
    filter: Option<&'static str>,
    group: Option<&'static str>,
    having: Option<&'static str>,
    order: Option<&'static str>,
    limit: Option<u64>,
    sqrt_cols: &'static [usize],
}

const M0_VISITS: (&str, &str) = ("\"m0\".visits", "visits_m0");
const M1_VISITS: (&str, &str) = ("\"m1\".visits", "visits_m1");
const ALL_VISITS: (&str, &str) = ("visits", "visits_all");
const M0_CLAIMS: (&str, &str) = ("\"m0\".claims", "claims_m0");
const M2_CLAIMS: (&str, &str) = ("\"m2\".claims", "claims_m2");
const ALL_CLAIMS: (&str, &str) = ("claims", "claims_all");

const fn case(select: &'static str) -> Case {
    Case {
        left: M0_VISITS,
        right: M2_CLAIMS,
        select,
        filter: None,
        group: None,
        having: None,
        order: None,
        limit: None,
        sqrt_cols: &[],
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("COUNT(*)"),
        Case {
            group: Some("v.ward"),
            ..case("v.ward, COUNT(*), SUM(c.amount), COUNT(c.amount)")
        },
        Case {
            filter: Some("v.age > 30 AND c.amount >= 0"),
            group: Some("c.insurer, v.ward"),
            ..case("c.insurer, v.ward, COUNT(*), AVG(v.cost), MIN(c.amount), MAX(v.age)")
        },
        Case {
            group: Some("insurer"),
            sqrt_cols: &[2],
            ..case("insurer, VAR_POP(cost), STDDEV_POP(amount), SUM(age)")
        },
        Case {
            group: Some("v.ward"),
            having: Some("SUM(c.amount) > 10"),
            order: Some("v.ward DESC"),
            limit: Some(2),
            ..case("v.ward, COUNT(*)")
        },
        Case {
            left: ALL_VISITS,
            filter: Some("v.ward IN ('icu', 'er') OR v.age IS NULL"),
            group: Some("v.ward"),
            ..case("v.ward, COUNT(*), MIN(c.amount)")
        },
        Case {
            right: M0_CLAIMS,
            group: Some("c.insurer"),
            ..case("c.insurer, COUNT(*), SUM(v.cost)")
        },
        Case {
            left: ALL_VISITS,
            right: ALL_CLAIMS,
            group: Some("c.insurer"),
            ..case("c.insurer, COUNT(*), MAX(c.amount), AVG(v.age)")
        },
        Case {
            right: M1_VISITS,
            ..case("COUNT(*), SUM(v.cost), MAX(c.cost)")
        },
    ]
}

fn sql_of(c: &Case, reference: Option<u32>) -> String {
    let mut sel = c.select.to_string();
    let (l, r) = if reference.is_some() {
        for col in ["cost", "amount", "age"] {
            let var = format!("(AVG({col}*{col}) - AVG({col})*AVG({col}))");
            sel = sel.replace(&format!("VAR_POP({col})"), &var);
            sel = sel.replace(&format!("STDDEV_POP({col})"), &var);
        }
        (c.left.1, c.right.1)
    } else {
        (c.left.0, c.right.0)
    };
    let mut s = format!("SELECT {sel} FROM {l} v JOIN {r} c ON v.patient = c.patient");
    if let Some(f) = c.filter {
        s += &format!(" WHERE {f}");
    }
    if let Some(g) = c.group {
        s += &format!(" GROUP BY {g}");
    }
    match (c.having, reference) {
        (Some(h), Some(k)) => s += &format!(" HAVING COUNT(*) >= {k} AND ({h})"),
        (None, Some(k)) => s += &format!(" HAVING COUNT(*) >= {k}"),
        (Some(h), None) => s += &format!(" HAVING {h}"),
        _ => {}
    }
    if let Some(o) = c.order {
        s += &format!(" ORDER BY {o}");
    }
    if let Some(l) = c.limit {
        s += &format!(" LIMIT {l}");
    }
    s
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(i) => rusqlite::types::Value::Integer(*i),
        Value::Float(f) => rusqlite::types::Value::Real(*f),
        Value::Text(t) => rusqlite::types::Value::Text(t.to_string()),
        other => panic!("{other:?}"),
    }
}

fn sqlite_with(data: &Data) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    for m in ["m0", "m1"] {
        db.execute_batch(&format!(
            "CREATE TABLE visits_{m} (patient INTEGER, ward TEXT, cost REAL, age INTEGER)"
        ))
        .unwrap();
    }
    for m in ["m0", "m2"] {
        db.execute_batch(&format!(
            "CREATE TABLE claims_{m} (patient INTEGER, insurer TEXT, amount REAL)"
        ))
        .unwrap();
    }
    db.execute_batch(
        "CREATE VIEW visits_all AS SELECT * FROM visits_m0 UNION ALL SELECT * FROM visits_m1;
         CREATE VIEW claims_all AS SELECT * FROM claims_m0 UNION ALL SELECT * FROM claims_m2;",
    )
    .unwrap();
    for (m, name, rows) in data {
        let owner = (0..8).find(|&i| member(i) == *m).unwrap();
        for r in rows {
            let marks = vec!["?"; r.len()].join(", ");
            db.execute(
                &format!("INSERT INTO {name}_m{owner} VALUES ({marks})"),
                rusqlite::params_from_iter(r.iter().map(to_sqlite)),
            )
            .unwrap();
        }
    }
    db
}

fn reference(c: &Case, data: &Data, k: u32) -> (Vec<Vec<rusqlite::types::Value>>, u64) {
    let db = sqlite_with(data);
    let sql = sql_of(c, Some(k));
    let mut st = db.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = st.column_count();
    let rows = st
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, rusqlite::types::Value>(i))
                .collect()
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut inner = format!(
        "SELECT COUNT(*) AS n FROM {} v JOIN {} c ON v.patient = c.patient",
        c.left.1, c.right.1
    );
    if let Some(f) = c.filter {
        inner += &format!(" WHERE {f}");
    }
    if let Some(g) = c.group {
        inner += &format!(" GROUP BY {g}");
    }
    // Without GROUP BY the single row always exists (COUNT(*) may be 0); with GROUP BY
    // only groups that hold rows exist.
    let suppressed = db
        .query_row(
            &format!("SELECT COUNT(*) FROM ({inner}) WHERE n < {k}"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64;
    (rows, suppressed)
}

/// What an owner's database returns for `JoinSide::local_select`.
fn side_rows(plan: &Plan, side: usize, rows: &[Row]) -> Vec<Row> {
    let j = plan.join.as_ref().expect("join plan");
    let s = j.sides()[side];
    let sel = s.local_select();
    rows.iter()
        .map(|r| {
            let mut out: Row = sel
                .columns
                .iter()
                .map(|c| r[s.schema.index_of(c).unwrap()].clone())
                .collect();
            if let Some(m) = &sel.mask {
                out.push(Value::Integer(i64::from(
                    eval(m, &s.schema, r) == Some(true),
                )));
            }
            out
        })
        .collect()
}

fn local_input(plan: &Plan, data: &Data, m: MemberId) -> Option<LocalInput> {
    let j = plan.join.as_ref()?;
    let mut sides: [Option<Vec<Row>>; 2] = [None, None];
    for (i, s) in j.sides().into_iter().enumerate() {
        if s.owners.contains(&m) {
            let rows = data
                .iter()
                .find(|(o, n, _)| *o == m && *n == s.dataset)
                .map(|(_, _, r)| r.clone())
                .unwrap_or_default();
            sides[i] = Some(side_rows(plan, i, &rows));
        }
    }
    let [left, right] = sides;
    if left.is_none() && right.is_none() {
        return None;
    }
    Some(LocalInput::Join { left, right })
}

/// Runs every party on its own thread; `vanish` names a party that drops its link at
/// once.
fn run_join(
    plan: &Plan,
    roles: &Roles,
    data: &Data,
    k: u32,
    seed: u64,
    vanish: Option<usize>,
) -> Vec<(MemberId, Option<Result<PartyOutcome, QueryError>>)> {
    let parties = roles.parties();
    let nets = consort_mpc::mem_network(parties.len(), std::time::Duration::from_secs(20));
    std::thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip(parties.iter().copied())
            .enumerate()
            .map(|(i, (t, m))| {
                s.spawn(move || {
                    if vanish == Some(i) {
                        drop(t);
                        return (m, None);
                    }
                    let mut t: Box<dyn consort_mpc::Transport> = Box::new(t);
                    let local = local_input(plan, data, m);
                    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 * 7919));
                    let r = run_party(&mut t, plan, roles, &m, local, k, &mut rng);
                    (m, Some(r))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("party")).collect()
    })
}

fn roles_for(plan: &Plan, config: usize) -> (Roles, MemberId) {
    let (compute, requester) = match config {
        0 => ([member(0), member(1), member(2)], member(0)),
        1 => ([member(3), member(4), member(5)], member(6)),
        _ => ([member(4), member(2), member(0)], member(1)),
    };
    (
        Roles {
            compute,
            owners: plan.owners(),
            requester,
        },
        requester,
    )
}

fn check_run(c: &Case, config: usize, seed: u64) -> (usize, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_data(&mut rng);
    let k = rng.gen_range(1..4u32);
    let sql = sql_of(c, None);
    let p = plan(&sql, &join_catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let (roles, requester) = roles_for(&p, config);
    let ctx = format!("{sql} (config {config}, seed {seed}, K {k})");
    let outs = run_join(&p, &roles, &data, k, seed, None);
    let by: Vec<(MemberId, PartyOutcome)> = outs
        .into_iter()
        .map(|(m, r)| {
            let r = r.expect("ran");
            (m, r.unwrap_or_else(|e| panic!("{ctx}: party {m}: {e}")))
        })
        .collect();
    let get = |m: &MemberId| &by.iter().find(|(x, _)| x == m).unwrap().1;
    let table = get(&requester).table.clone().expect("requester table");
    let (want, suppressed) = reference(c, &data, k);
    assert_eq!(table.suppressed_groups, suppressed, "{ctx}: suppressed");
    assert_eq!(
        table.rows.len(),
        want.len(),
        "{ctx}: rows {:?} vs {want:?}",
        table.rows
    );
    let mut got_rows = table.rows.clone();
    let mut want_rows = want;
    if c.order.is_none() {
        let key = |r: &Vec<String>| r.clone();
        let mut g: Vec<(Vec<String>, Row)> = got_rows
            .drain(..)
            .map(|r| (r.iter().map(|v| format!("{v:?}")).collect(), r))
            .collect();
        g.sort_by_key(|a| key(&a.0));
        got_rows = g.into_iter().map(|x| x.1).collect();
        want_rows.sort_by_key(|r| {
            r.iter()
                .map(|v| match v {
                    rusqlite::types::Value::Text(t) => format!("Text({t:?})"),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
        });
    }
    for (i, (g, w)) in got_rows.iter().zip(&want_rows).enumerate() {
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            same(
                a,
                b,
                c.sqrt_cols.contains(&j),
                &format!("{ctx}: row {i} col {j}"),
            );
        }
    }
    let h = table.hash();
    for m in roles.compute {
        let o = get(&m);
        assert_eq!(o.result_hash, Some(h), "{ctx}");
        assert_eq!(o.share_digests, get(&requester).share_digests, "{ctx}");
    }
    (table.rows.len(), table.suppressed_groups)
}

fn check_config(config: usize) {
    let (mut rows, mut suppressed) = (0, 0);
    for (ci, c) in cases().iter().enumerate() {
        for seed in 0..3 {
            let (r, s) = check_run(c, config, 1000 * config as u64 + 100 * ci as u64 + seed);
            rows += r;
            suppressed += s;
        }
    }
    assert!(
        rows > 20 && suppressed > 3,
        "weak test data: {rows} rows, {suppressed} suppressed"
    );
}

#[test]
fn joins_match_sqlite_compute_parties_are_owners() {
    check_config(0);
}

#[test]
fn joins_match_sqlite_external_compute_and_requester() {
    check_config(1);
}

#[test]
fn joins_match_sqlite_mixed_roles() {
    check_config(2);
}

#[test]
fn join_plans_split_where_per_side_and_need_join_on_both_keys() {
    let p = plan(
        "SELECT c.insurer, COUNT(*) FROM \"m0\".visits v JOIN \"m2\".claims c \
         ON v.patient = c.patient WHERE v.age > 30 AND c.amount > 0 GROUP BY c.insurer",
        &join_catalog(),
    )
    .unwrap();
    let j = p.join.as_ref().unwrap();
    assert_eq!(
        (j.left.key.as_str(), j.right.key.as_str()),
        ("patient", "patient")
    );
    assert_eq!(j.left.owners, vec![member(0)]);
    assert_eq!(j.right.owners, vec![member(2)]);
    assert!(j.left.filter.is_some() && j.right.filter.is_some());
    assert_eq!(j.right.columns, vec!["insurer".to_string()]);
    assert!(j.left.columns.is_empty());
    let join = consort_ledger::policy::Permission::Join;
    assert!(p.uses["v.patient"].contains(&join));
    assert!(p.uses["c.patient"].contains(&join));
    assert_eq!(p.owners(), vec![member(0), member(2)]);
}

#[test]
fn join_errors_name_the_construct() {
    let cat = join_catalog();
    let err = |sql: &str| plan(sql, &cat).unwrap_err().to_string();
    let base = "FROM \"m0\".visits v JOIN \"m2\".claims c ON v.patient = c.patient";
    for (sql, want) in [
        (
            "SELECT COUNT(*) FROM \"m0\".visits v LEFT JOIN \"m2\".claims c ON v.patient = c.patient".to_string(),
            "LEFT JOIN",
        ),
        (
            "SELECT COUNT(*) FROM \"m0\".visits v JOIN \"m2\".claims c ON v.patient < c.patient".to_string(),
            "JOIN condition",
        ),
        (
            "SELECT COUNT(*) FROM \"m0\".visits v JOIN \"m2\".claims c ON v.ward = c.patient".to_string(),
            "different types",
        ),
        (format!("SELECT COUNT(*) {base} WHERE v.age > 3 OR c.amount > 1"), "mixes columns"),
        (format!("SELECT v.ward, c.insurer {base}"), "raw columns over a JOIN"),
        (format!("SELECT COUNT(patient) {base}"), "both sides"),
        (format!("SELECT COUNT(x.age) {base}"), "unknown table"),
        (
            "SELECT COUNT(*) FROM \"m0\".visits JOIN \"m1\".visits ON visits.patient = visits.patient".to_string(),
            "different aliases",
        ),
        (
            format!("SELECT COUNT(*) {base} JOIN \"m0\".claims d ON d.patient = v.patient"),
            "more than one JOIN",
        ),
    ] {
        let e = err(&sql);
        assert!(e.contains(want), "{sql}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn a_vanished_owner_mid_join_fails_every_waiting_party_naming_it() {
    let mut rng = StdRng::seed_from_u64(9);
    let data = random_data(&mut rng);
    let p = plan(
        "SELECT v.ward, COUNT(*) FROM \"m1\".visits v JOIN \"m2\".claims c \
         ON v.patient = c.patient GROUP BY v.ward",
        &join_catalog(),
    )
    .unwrap();
    let (roles, requester) = roles_for(&p, 1);
    let parties = roles.parties();
    // Party 4 is owner m2: it vanishes before the PSI with m1.
    assert_eq!(parties[4], member(2));
    let outs = run_join(&p, &roles, &data, 1, 3, Some(4));
    for (i, (m, r)) in outs.into_iter().enumerate() {
        let Some(r) = r else { continue };
        if i < 3 || m == requester || m == member(1) {
            let e = r.expect_err("must fail").to_string();
            assert!(e.contains("p4"), "party {i}: {e}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random data, case and role configuration: always SQLite's answer.
    #[test]
    fn random_joins_match_sqlite(seed in 0u64..1_000_000, ci in 0usize..9, config in 0usize..3) {
        let cs = cases();
        check_run(&cs[ci % cs.len()], config, seed);
    }
}

fn grant_on(
    owner: MemberId,
    dataset: &str,
    cols: &[(&str, &[consort_ledger::policy::Permission])],
) -> consort_ledger::policy::GrantEntry {
    use consort_ledger::policy::{ColumnGrant, Grant, GrantEntry, Grantee};
    let mut columns: Vec<ColumnGrant> = cols
        .iter()
        .map(|(c, ps)| ColumnGrant {
            column: c.to_string(),
            permissions: ps.to_vec(),
        })
        .collect();
    columns.sort_by(|a, b| a.column.cmp(&b.column));
    GrantEntry {
        id: consort_crypto::Hash([7; 32]),
        owner,
        grant: Grant {
            dataset: dataset.into(),
            grantee: Grantee::Anyone,
            columns,
            min_group_size: 2,
            expires_ms: None,
        },
        granted_ms: 0,
        revoked_by: None,
    }
}

#[test]
fn each_owner_checks_only_its_side_and_the_key_needs_join() {
    use consort_ledger::policy::Permission::{Aggregate, Group, Join};
    use consort_query::check_policy;
    let p = plan(
        "SELECT v.ward, SUM(c.amount) FROM \"m0\".visits v JOIN \"m2\".claims c \
         ON v.patient = c.patient GROUP BY v.ward",
        &join_catalog(),
    )
    .unwrap();
    let requester = member(5);
    let visits_ok = grant_on(
        member(0),
        "visits",
        &[("patient", &[Join]), ("ward", &[Group])],
    );
    let claims_ok = grant_on(
        member(2),
        "claims",
        &[("patient", &[Join]), ("amount", &[Aggregate])],
    );
    let d = check_policy(&p, &member(0), "visits", &requester, &[&visits_ok], 0);
    assert!(d.approve, "{}", d.reason);
    assert_eq!(d.min_group_size, 2);
    let d = check_policy(&p, &member(2), "claims", &requester, &[&claims_ok], 0);
    assert!(d.approve, "{}", d.reason);
    // The key without `join` (even with every other permission): refused, naming it.
    let no_join = grant_on(
        member(2),
        "claims",
        &[("patient", &[Group, Aggregate]), ("amount", &[Aggregate])],
    );
    let d = check_policy(&p, &member(2), "claims", &requester, &[&no_join], 0);
    assert!(!d.approve);
    assert!(
        d.reason.contains("\"patient\"") && d.reason.contains("join"),
        "{}",
        d.reason
    );
    // `plain` does not imply `join`.
    let plain = grant_on(
        member(0),
        "visits",
        &[
            ("patient", &[consort_ledger::policy::Permission::Plain]),
            ("ward", &[Group]),
        ],
    );
    let d = check_policy(&p, &member(0), "visits", &requester, &[&plain], 0);
    assert!(!d.approve, "{}", d.reason);
}
