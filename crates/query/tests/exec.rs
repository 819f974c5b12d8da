//! End to end: three owners with random tables, every party on its own thread over the
//! in-memory MPC network; the requester's table must equal an SQLite reference over the
//! union of the rows (exact for COUNT/SUM/MIN/MAX, within the documented fixed-point
//! bound for AVG/VAR_POP/STDDEV_POP), with groups below K suppressed and counted.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use consort_crypto::MemberId;
use consort_data::{Row, Value};
use consort_query::{plan, PartyOutcome, Roles};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::*;

fn random_rows(rng: &mut StdRng) -> Vec<Row> {
    let n = rng.gen_range(0..12);
    (0..n)
        .map(|_| {
            let region = ["a", "b", "c", "d"][rng.gen_range(0..4)];
            let year = rng.gen_range(2020..2023);
            // Multiples of 1/8: exact in binary, so sums are exact on both sides.
            let amount = rng.gen_range(-400..1600) as f64 / 8.0;
            let qty = if rng.gen_bool(0.3) {
                Value::Null
            } else {
                Value::Integer(rng.gen_range(-5..30))
            };
            let note = match rng.gen_range(0..4) {
                0 => Value::Null,
                1 => Value::Text("x1".into()),
                2 => Value::Text("y2".into()),
                _ => Value::Text("xx".into()),
            };
            vec![
                Value::Text(region.into()),
                Value::Integer(year),
                Value::Float(amount),
                qty,
                note,
            ]
        })
        .collect()
}

struct Case {
    select: &'static str,
    filter: Option<&'static str>,
    group: Option<&'static str>,
    having: Option<&'static str>,
    order: Option<&'static str>,
    limit: Option<u64>,
    /// Output columns that are STDDEV_POP (the reference gets the variance; sqrt here).
    sqrt_cols: &'static [usize],
    /// Output columns compared within 0.05 (products of rounded means: docs/QUERY.md §7).
    loose_cols: &'static [usize],
    raw: bool,
}

const fn case(select: &'static str) -> Case {
    Case {
        select,
        filter: None,
        group: None,
        having: None,
        order: None,
        limit: None,
        sqrt_cols: &[],
        loose_cols: &[],
        raw: false,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            group: Some("region"),
            ..case("region, COUNT(*) AS n, SUM(amount) AS s, SUM(qty) AS sq, MIN(qty) AS mi, MAX(amount) AS ma, COUNT(note) AS cn")
        },
        Case {
            group: Some("region, year"),
            sqrt_cols: &[5],
            ..case("region, year, COUNT(qty) AS c, AVG(amount) AS a, VAR_POP(amount) AS v, STDDEV_POP(qty) AS sd, AVG(qty) AS aq")
        },
        Case {
            filter: Some("year >= 2021"),
            ..case("COUNT(*) AS n, SUM(qty) AS s, AVG(qty) AS a, MIN(amount) AS mi, MAX(qty) AS mq")
        },
        Case {
            filter: Some("note LIKE 'x%' OR qty IS NULL"),
            group: Some("region"),
            having: Some("SUM(amount) > 20 AND NOT MAX(qty) < 5"),
            ..case("region, SUM(amount) AS s")
        },
        Case {
            filter: Some("qty BETWEEN 0 AND 20 OR NOT year IN (2020, 2022)"),
            group: Some("region, year"),
            having: Some("AVG(amount) >= 40.5 OR COUNT(*) = 2 OR MIN(qty) <= -2"),
            order: Some("region DESC, year"),
            limit: Some(4),
            ..case("region, year, COUNT(*) AS n")
        },
        Case {
            group: Some("region"),
            order: Some("s DESC, region"),
            limit: Some(2),
            ..case("region, SUM(amount) AS s, COUNT(*) AS n")
        },
        Case {
            group: Some("region, year"),
            order: Some("sq, region, year"),
            limit: Some(3),
            ..case("region, year, SUM(qty) AS sq, COUNT(*) AS n")
        },
        Case {
            group: Some("region"),
            order: Some("MIN(qty) DESC, region"),
            limit: Some(2),
            ..case("region, COUNT(*) AS n")
        },
        Case {
            group: Some("region"),
            order: Some("region DESC, s"),
            limit: Some(3),
            ..case("region, SUM(amount) AS s")
        },
        Case {
            group: Some("year"),
            order: Some("n DESC, year"),
            ..case("year, COUNT(*) AS n")
        },
        Case {
            filter: Some("year = 2021 AND region IN ('a', 'b')"),
            raw: true,
            ..case("region, amount, qty")
        },
        // Row expressions (docs/QUERY.md §1.1), which SQLite evaluates with the same
        // semantics: inside aggregates, in WHERE, in GROUP BY by expression and position.
        Case {
            group: Some("region"),
            ..case("region, SUM(CASE WHEN qty > 0 THEN 1 ELSE 0 END) AS pos, AVG(amount * 2 - qty) AS e, SUM(qty / 3) AS t")
        },
        // Never-NULL expressions: their COUNT is COUNT(*), which the divisions and the
        // HAVING of AVG then use.
        Case {
            group: Some("region"),
            having: Some("AVG(year * 2 + amount) > 4100"),
            ..case("region, AVG(year * 2 + amount) AS a, MAX(ABS(amount)) AS m, VAR_POP(amount - 1) AS v")
        },
        // FILTER (WHERE …) on aggregates.
        Case {
            group: Some("region"),
            ..case("region, COUNT(*) FILTER (WHERE qty > 5) AS big, SUM(amount) FILTER (WHERE note IS NULL) AS s, AVG(qty) FILTER (WHERE year = 2021) AS a")
        },
        Case {
            group: Some("year % 2"),
            ..case("year % 2 AS parity, COUNT(*) AS n, SUM(COALESCE(qty, -1) * 2) AS s")
        },
        Case {
            filter: Some("amount - qty > 10 AND COALESCE(note, 'none') <> 'xx'"),
            ..case("COUNT(*) AS n, SUM(ABS(qty)) AS a, MAX(-amount) AS m")
        },
        Case {
            group: Some("1"),
            ..case("CASE WHEN amount >= 50 THEN 'high' WHEN amount < 0 THEN 'neg' ELSE 'low' END AS band, COUNT(*) AS n, MIN(qty % 4) AS m")
        },
        Case {
            group: Some("region"),
            order: Some("2 DESC, 1"),
            ..case("region, COUNT(NULLIF(note, 'x1')) AS n")
        },
        Case {
            filter: Some("NULLIF(qty, 0) IS NOT NULL AND year + qty > 2030"),
            raw: true,
            ..case("region || '-' || CAST(year AS TEXT) AS tag, qty * 2 AS dq, amount / 2")
        },
        // Arithmetic over aggregates, in MPC: integer division truncates as in SQL,
        // division by zero (or by a NULL) gives NULL.
        Case {
            group: Some("region"),
            ..case("region, SUM(qty) / COUNT(*) AS r, 1.0 * SUM(qty) / COUNT(qty) AS rate, MAX(amount) - MIN(amount) AS spread, 100.0 * COUNT(*) FILTER (WHERE qty > 5) / COUNT(*) AS pct, SUM(amount) / SUM(qty) AS ratio, -COUNT(*) * 2 + 1 AS neg")
        },
        Case {
            group: Some("region"),
            order: Some("m DESC, region"),
            limit: Some(2),
            ..case("region, SUM(amount) / COUNT(*) AS m, COUNT(*) AS n")
        },
        Case {
            filter: Some("year > 2020"),
            ..case("COUNT(*) - COUNT(qty) AS missing, SUM(qty) * 2 AS d, CAST(SUM(qty) AS DOUBLE) / COUNT(*) AS mean, AVG(amount) * AVG(qty) AS prod, MEDIAN(amount) / 2 AS half")
        },
        // Arithmetic over aggregates in HAVING, over every group in MPC (AVG divides by
        // the secret count there), also through an output alias.
        Case {
            group: Some("region"),
            having: Some("1.0 * SUM(qty) / COUNT(*) > 3 OR MAX(amount) - MIN(amount) < 50"),
            ..case("region, COUNT(*) AS n, AVG(amount) AS a, SUM(qty) % COUNT(*) AS r, -COUNT(qty) % 3 AS r3")
        },
        Case {
            group: Some("region, year"),
            having: Some("m > 40 AND AVG(amount) * 2 - 10 < 300"),
            ..case("region, year, SUM(amount) / COUNT(*) AS m")
        },
        // LIKE inside FILTER and CASE: a boolean expression the owners compute.
        Case {
            group: Some("region"),
            ..case("region, COUNT(*) FILTER (WHERE note LIKE 'x%') AS xs, SUM(CASE WHEN note NOT LIKE '_2' THEN qty ELSE 0 END) AS s")
        },
        // Two-argument statistics, over the rows where both values are present.
        Case {
            group: Some("region"),
            loose_cols: &[1, 2, 3, 4, 6],
            ..case("region, COVAR_POP(amount, qty) AS cp, COVAR_SAMP(qty, amount) AS cs, REGR_SLOPE(amount, qty) AS sl, REGR_INTERCEPT(amount, qty) AS ic, REGR_COUNT(amount, qty) AS rc, CORR(amount, qty) AS r")
        },
        // Value lists (DISTINCT and percentiles) and the sample aggregates.
        Case {
            group: Some("region"),
            ..case("region, COUNT(DISTINCT qty) AS dq, SUM(DISTINCT qty) AS sdq, COUNT(DISTINCT note) AS dn, MEDIAN(amount) AS med, PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY qty) AS p25")
        },
        Case {
            filter: Some("year >= 2021"),
            ..case("COUNT(DISTINCT region) AS r, MEDIAN(qty) AS mq, PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY amount) AS p90, VAR_SAMP(amount) AS vs, STDDEV_SAMP(qty) AS sd, SUM(DISTINCT amount) AS sa")
        },
        Case {
            group: Some("region, year"),
            having: Some("COUNT(DISTINCT qty) >= 2 OR MEDIAN(amount) > 60"),
            order: Some("m DESC, region, year"),
            limit: Some(3),
            ..case("region, year, MEDIAN(amount) AS m, COUNT(DISTINCT note) AS dn")
        },
        Case {
            group: Some("year"),
            ..case("year, COUNT(DISTINCT qty) FILTER (WHERE amount > 0) AS d, PERCENTILE_DISC(1.0) WITHIN GROUP (ORDER BY amount) AS top, PERCENTILE_CONT(0) WITHIN GROUP (ORDER BY qty * 2) AS low")
        },
        Case {
            filter: Some("note IS NOT NULL"),
            order: Some("amount DESC, region, qty"),
            limit: Some(5),
            raw: true,
            ..case("region, amount AS amt, qty")
        },
    ]
}

fn sql_of(c: &Case, reference: Option<u32>) -> String {
    let mut sel = c.select.to_string();
    if reference.is_some() {
        for col in ["amount", "qty", "amount - 1"] {
            let var = format!("(AVG(({col})*({col})) - AVG({col})*AVG({col}))");
            sel = sel.replace(&format!("VAR_POP({col})"), &var);
            sel = sel.replace(&format!("STDDEV_POP({col})"), &var);
        }
    }
    if reference.is_some() {
        sel = reference_percentiles(&sel);
    }
    let mut s = format!("SELECT {sel} FROM sales");
    if let Some(f) = c.filter {
        s += &format!(" WHERE {f}");
    }
    if let Some(g) = c.group {
        s += &format!(" GROUP BY {g}");
    }
    match (c.having, reference) {
        (Some(h), Some(k)) if !c.raw => s += &format!(" HAVING COUNT(*) >= {k} AND ({h})"),
        (None, Some(k)) if !c.raw => s += &format!(" HAVING COUNT(*) >= {k}"),
        (Some(h), _) => s += &format!(" HAVING {h}"),
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

fn sqlite_with(data: &[(MemberId, Vec<Row>)]) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    register_reference_aggregates(&db);
    db.execute_batch(
        "CREATE TABLE sales (region TEXT, year INTEGER, amount REAL, qty INTEGER, note TEXT)",
    )
    .unwrap();
    for (_, rows) in data {
        for r in rows {
            let p: Vec<rusqlite::types::Value> = r
                .iter()
                .map(|v| match v {
                    Value::Null => rusqlite::types::Value::Null,
                    Value::Integer(i) => rusqlite::types::Value::Integer(*i),
                    Value::Float(f) => rusqlite::types::Value::Real(*f),
                    Value::Text(t) => rusqlite::types::Value::Text(t.to_string()),
                    other => panic!("{other:?}"),
                })
                .collect();
            db.execute(
                "INSERT INTO sales VALUES (?, ?, ?, ?, ?)",
                rusqlite::params_from_iter(p),
            )
            .unwrap();
        }
    }
    db
}

fn reference(
    c: &Case,
    data: &[(MemberId, Vec<Row>)],
    k: u32,
) -> (Vec<Vec<rusqlite::types::Value>>, u64) {
    let db = sqlite_with(data);
    let sql = sql_of(c, Some(k));
    let mut st = db.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = st.column_count();
    let rows: Vec<Vec<rusqlite::types::Value>> = st
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, rusqlite::types::Value>(i))
                .collect()
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let suppressed = if c.raw {
        0
    } else {
        // The select list first, so GROUP BY positions and aliases mean what they mean
        // in the query itself.
        let mut sel = reference_percentiles(c.select);
        for col in ["amount", "qty", "amount - 1"] {
            let var = format!("(AVG(({col})*({col})) - AVG({col})*AVG({col}))");
            sel = sel.replace(&format!("VAR_POP({col})"), &var);
            sel = sel.replace(&format!("STDDEV_POP({col})"), &var);
        }
        let mut inner = format!("SELECT {sel}, COUNT(*) AS consort_c FROM sales");
        if let Some(f) = c.filter {
            inner += &format!(" WHERE {f}");
        }
        if let Some(g) = c.group {
            inner += &format!(" GROUP BY {g}");
        }
        db.query_row(
            &format!("SELECT COUNT(*) FROM ({inner}) WHERE consort_c < {k}"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    };
    (rows, suppressed)
}

fn roles_for(config: usize, requester: MemberId) -> Roles {
    let owners = vec![member(0), member(1), member(2)];
    let compute = match config {
        0 => [member(0), member(1), member(2)],
        1 => [member(3), member(4), member(5)],
        _ => [member(4), member(0), member(3)],
    };
    Roles {
        compute,
        owners,
        requester,
    }
}

fn check_run(c: &Case, config: usize, seed: u64) -> (usize, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let data: Vec<(MemberId, Vec<Row>)> =
        (0..3).map(|i| (member(i), random_rows(&mut rng))).collect();
    let k = rng.gen_range(1..4u32);
    let requester = match config {
        0 => member(0),
        1 => member(6),
        _ => member(1),
    };
    let roles = roles_for(config, requester);
    let sql = sql_of(c, None);
    let p = plan(&sql, &catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let outs = run_all(&p, &roles, &data, k, seed);
    let ctx = format!("{sql} (config {config}, seed {seed}, K {k})");
    let mut by: Vec<(MemberId, PartyOutcome)> = Vec::new();
    for (m, r) in outs {
        by.push((m, r.unwrap_or_else(|e| panic!("{ctx}: party {m}: {e}"))));
    }
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
    if c.order.is_none() && !c.raw {
        want_rows.sort_by(|a, b| {
            let fa: Vec<String> = a.iter().map(key_str).collect();
            let fb: Vec<String> = b.iter().map(key_str).collect();
            fa.cmp(&fb)
        });
        got_rows.sort_by(|a, b| {
            let fa: Vec<String> = a.iter().map(key_str_ours).collect();
            let fb: Vec<String> = b.iter().map(key_str_ours).collect();
            fa.cmp(&fb)
        });
    }
    for (i, (g, w)) in got_rows.iter().zip(&want_rows).enumerate() {
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            if c.loose_cols.contains(&j) {
                let (x, y) = (
                    num(a),
                    match b {
                        rusqlite::types::Value::Real(f) => *f,
                        rusqlite::types::Value::Integer(i) => *i as f64,
                        _ => f64::NAN,
                    },
                );
                let both_null = *a == Value::Null && *b == rusqlite::types::Value::Null;
                assert!(
                    both_null || (x - y).abs() <= 0.05 * y.abs().max(1.0),
                    "{ctx}: row {i} col {j}: {a:?} vs {b:?}"
                );
                continue;
            }
            same(
                a,
                b,
                c.sqrt_cols.contains(&j),
                &format!("{ctx}: row {i} col {j}"),
            );
        }
    }
    // Attestation: everyone agrees on the result hash and the share digests.
    let h = table.hash();
    for m in roles.compute {
        let o = get(&m);
        assert_eq!(o.result_hash, Some(h), "{ctx}");
        assert_eq!(o.rows, table.rows.len() as u64, "{ctx}");
        assert_eq!(o.suppressed_groups, table.suppressed_groups, "{ctx}");
        if !c.raw {
            assert_eq!(o.share_digests, get(&requester).share_digests, "{ctx}");
            let id = roles.parties().iter().position(|x| *x == m).unwrap();
            assert_eq!(Some(o.share_digests[id]), o.share_digest, "{ctx}");
        }
    }
    assert_eq!(get(&requester).result_hash, Some(h));
    (table.rows.len(), table.suppressed_groups)
}

/// Runs every case with several seeds in one role configuration; the random data must
/// exercise both revealed rows and suppressed groups.
fn check_config(config: usize) {
    let (mut rows, mut suppressed) = (0, 0);
    for (ci, c) in cases().iter().enumerate() {
        for seed in 0..4 {
            let (r, s) = check_run(c, config, 1000 * config as u64 + 100 * ci as u64 + seed);
            rows += r;
            suppressed += s;
        }
    }
    assert!(
        rows > 20 && suppressed > 5,
        "weak test data: {rows} rows, {suppressed} suppressed"
    );
}

/// Group-key-only sort strings (the key columns are text/integer and exact).
fn key_str(v: &rusqlite::types::Value) -> String {
    match v {
        rusqlite::types::Value::Text(t) => format!("t{t}"),
        rusqlite::types::Value::Integer(i) => format!("i{i:020}"),
        _ => String::new(),
    }
}

fn key_str_ours(v: &Value) -> String {
    match v {
        Value::Text(t) => format!("t{t}"),
        Value::Integer(i) => format!("i{i:020}"),
        _ => String::new(),
    }
}

#[test]
fn aggregates_match_sqlite_compute_parties_are_owners() {
    check_config(0);
}

#[test]
fn aggregates_match_sqlite_external_owners_and_requester() {
    check_config(1);
}

#[test]
fn aggregates_match_sqlite_mixed_roles() {
    check_config(2);
}

#[test]
fn small_groups_are_suppressed() {
    // Region a: 3 rows, region b: 1 row; K = 2 keeps a only.
    let row = |r: &str, amt: f64| {
        vec![
            Value::Text(r.into()),
            Value::Integer(2020),
            Value::Float(amt),
            Value::Integer(1),
            Value::Null,
        ]
    };
    let data = vec![
        (member(0), vec![row("a", 1.0), row("b", 5.0)]),
        (member(1), vec![row("a", 2.0)]),
        (member(2), vec![row("a", 3.5)]),
    ];
    let p = plan(
        "SELECT region, SUM(amount) AS s, MAX(amount) AS m FROM sales GROUP BY region",
        &catalog(),
    )
    .unwrap();
    let roles = roles_for(1, member(6));
    let outs = run_all(&p, &roles, &data, 2, 7);
    let t = outs
        .iter()
        .find(|(m, _)| *m == member(6))
        .unwrap()
        .1
        .as_ref()
        .unwrap()
        .table
        .clone()
        .unwrap();
    assert_eq!(t.suppressed_groups, 1);
    assert_eq!(
        t.rows,
        vec![vec![
            Value::Text("a".into()),
            Value::Float(6.5),
            Value::Float(3.5)
        ]]
    );
    // Without GROUP BY: one row, or none if the total is below K.
    let p = plan(
        "SELECT COUNT(*) AS n FROM sales WHERE region = 'b'",
        &catalog(),
    )
    .unwrap();
    let outs = run_all(&p, &roles, &data, 2, 8);
    let t = outs
        .iter()
        .find(|(m, _)| *m == member(6))
        .unwrap()
        .1
        .as_ref()
        .unwrap()
        .table
        .clone()
        .unwrap();
    assert_eq!((t.rows.len(), t.suppressed_groups), (0, 1));
}

#[test]
fn vanished_party_is_an_error_naming_it() {
    let mut rng = StdRng::seed_from_u64(5);
    let data: Vec<(MemberId, Vec<Row>)> =
        (0..3).map(|i| (member(i), random_rows(&mut rng))).collect();
    let p = plan(
        "SELECT region, SUM(amount) FROM sales GROUP BY region",
        &catalog(),
    )
    .unwrap();
    let roles = roles_for(1, member(6));
    let parties = roles.parties();
    let nets = consort_mpc::mem_network(parties.len(), std::time::Duration::from_secs(5));
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip(parties.iter().copied())
            .enumerate()
            .map(|(i, (t, m))| {
                let (p, roles, data) = (&p, &roles, &data);
                s.spawn(move || {
                    if i == 4 {
                        // Owner m1 vanishes without a word.
                        drop(t);
                        return None;
                    }
                    let mut t: Box<dyn consort_mpc::Transport> = Box::new(t);
                    let local = data
                        .iter()
                        .find(|(o, _)| *o == m)
                        .map(|(_, r)| local_eval(p, r).into());
                    let mut rng = StdRng::seed_from_u64(i as u64);
                    Some(consort_query::run_party(
                        &mut t, p, roles, &m, local, 1, &mut rng,
                    ))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Owners that are neither compute parties nor the requester only send; everyone
    // who waits on the vanished owner fails with an error that names it (p4).
    for (i, r) in results.into_iter().enumerate() {
        if let Some(r) = r {
            if i < 3 || parties[i] == member(6) {
                let e = r.expect_err("must fail").to_string();
                assert!(e.contains("p4"), "party {i}: {e}");
            }
        }
    }
}

#[test]
fn result_table_serde_and_hash() {
    let t = consort_query::ResultTable {
        columns: vec!["a".into(), "b".into()],
        rows: vec![
            vec![
                Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
                Value::Timestamp(
                    chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
                ),
            ],
            vec![Value::Boolean(true), Value::Integer(-7)],
            vec![Value::Integer(1), Value::Null],
            vec![Value::Float(2.5), Value::Text("x".into())],
        ],
        suppressed_groups: 2,
    };
    let j = serde_json::to_string(&t).unwrap();
    let back: consort_query::ResultTable = serde_json::from_str(&j).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.hash(), t.hash());
    let mut u = t.clone();
    u.suppressed_groups = 3;
    assert_ne!(u.hash(), t.hash());
}

#[test]
fn date_and_boolean_keys_travel_and_order() {
    let mut cat = catalog();
    let cols = [
        ("day", "date", false),
        ("ok", "boolean", false),
        ("n", "integer", true),
    ];
    for i in 0..3 {
        cat.datasets.push(entry(member(i), "visits", &cols));
    }
    let d = |s: &str| Value::Date(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
    let row = |day: &str, ok: bool, n: Option<i64>| {
        vec![
            d(day),
            Value::Boolean(ok),
            n.map_or(Value::Null, Value::Integer),
        ]
    };
    let data = vec![
        (
            member(0),
            vec![
                row("2024-01-01", true, Some(1)),
                row("2024-01-03", false, Some(2)),
            ],
        ),
        (
            member(1),
            vec![
                row("2024-01-03", true, None),
                row("2024-01-02", true, Some(5)),
            ],
        ),
        (
            member(2),
            vec![
                row("2024-01-02", false, Some(7)),
                row("2024-01-03", true, Some(4)),
            ],
        ),
    ];
    let p = plan(
        "SELECT day, ok, COUNT(*) AS c, SUM(n) AS s FROM visits WHERE day >= '2024-01-02' \
         GROUP BY day, ok ORDER BY day DESC, ok",
        &cat,
    )
    .unwrap();
    for config in 0..3 {
        let requester = [member(0), member(6), member(1)][config];
        let roles = roles_for(config, requester);
        let outs = run_all(&p, &roles, &data, 1, 11);
        let t = outs
            .into_iter()
            .find(|(m, _)| *m == requester)
            .unwrap()
            .1
            .unwrap()
            .table
            .unwrap();
        assert_eq!(
            t.rows,
            vec![
                vec![
                    d("2024-01-03"),
                    Value::Boolean(false),
                    Value::Integer(1),
                    Value::Integer(2)
                ],
                vec![
                    d("2024-01-03"),
                    Value::Boolean(true),
                    Value::Integer(2),
                    Value::Integer(4)
                ],
                vec![
                    d("2024-01-02"),
                    Value::Boolean(false),
                    Value::Integer(1),
                    Value::Integer(7)
                ],
                vec![
                    d("2024-01-02"),
                    Value::Boolean(true),
                    Value::Integer(1),
                    Value::Integer(5)
                ],
            ],
            "config {config}"
        );
    }
}

/// A random WHERE clause over the test table: atoms on every column type, combined with
/// AND / OR / NOT up to two levels deep (including NULL-sensitive forms).
fn filter_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let atom = prop::sample::select(vec![
        "year >= 2021",
        "year = 2020",
        "year <> 2022",
        "qty < 10",
        "qty >= 0",
        "qty IS NULL",
        "qty IS NOT NULL",
        "qty IN (1, 2, 3, 25)",
        "amount BETWEEN 0 AND 100",
        "amount NOT BETWEEN -10 AND 10",
        "amount > 50.5",
        "region IN ('a', 'c')",
        "region = 'b'",
        "note LIKE 'x%'",
        "note NOT LIKE '%2'",
        "note IS NULL",
    ])
    .prop_map(str::to_string);
    atom.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random data, random groupings, random aggregates and random filters, on three
    /// owners in a random role layout, against SQLite.
    #[test]
    fn random_queries_match_sqlite(
        filter in proptest::option::of(filter_strategy()),
        group in proptest::sample::select(vec!["", "region", "year", "region, year"]),
        aggs in proptest::sample::subsequence(
            vec![
                "COUNT(*) AS n",
                "SUM(amount) AS s",
                "SUM(qty) AS sq",
                "MIN(qty) AS mi",
                "MAX(amount) AS ma",
                "COUNT(note) AS cn",
                "AVG(amount) AS av",
            ],
            1..4,
        ),
        config in 0usize..3,
        seed in proptest::prelude::any::<u64>(),
    ) {
        let mut select: Vec<&str> = group.split(", ").filter(|g| !g.is_empty()).collect();
        select.extend(aggs.iter().copied());
        // The cases are 'static in the fixed table above; a handful of leaked strings per
        // generated case is the simplest way to reuse the same checker.
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let c = Case {
            filter: filter.map(leak),
            group: (!group.is_empty()).then_some(group),
            ..case(leak(select.join(", ")))
        };
        check_run(&c, config, seed);
    }
}

/// Sums and variances of large values are right within QUERY.md §7's bounds, or refused
/// with an error naming the column: never wrapped. Region `a` holds values whose Σx
/// exceeds the exact variance formula's range (so the bounded formula answers), region
/// `b` small ones (exact formula); both are compared with SQLite.
#[test]
fn large_values_are_right_or_refused() {
    let row = |r: &str, amt: f64, qty: i64| {
        vec![
            Value::Text(r.into()),
            Value::Integer(2020),
            Value::Float(amt),
            Value::Integer(qty),
            Value::Null,
        ]
    };
    let mut rng = StdRng::seed_from_u64(18);
    let data: Vec<(MemberId, Vec<Row>)> = (0..3)
        .map(|i| {
            let rows = (0..12)
                .flat_map(|_| {
                    [
                        row(
                            "a",
                            rng.gen_range(3.0e5..9.0e5f64).round(),
                            rng.gen_range(0..1 << 19),
                        ),
                        row("b", rng.gen_range(0..64) as f64 / 8.0, rng.gen_range(-9..9)),
                    ]
                })
                .collect();
            (member(i), rows)
        })
        .collect();
    let sql = "SELECT region, SUM(qty) AS s, AVG(amount) AS a, VAR_POP(amount) AS v, \
               VAR_SAMP(qty) AS vq, STDDEV_SAMP(amount) AS sd FROM sales GROUP BY region";
    let p = plan(sql, &catalog()).unwrap();
    let roles = roles_for(0, member(0));
    let outs = run_all(&p, &roles, &data, 1, 5);
    let got = outs[0].1.as_ref().unwrap().table.clone().unwrap();
    let db = sqlite_with(&data);
    let mut st = db
        .prepare(
            "SELECT region, SUM(qty), AVG(amount), \
             AVG(amount * amount) - AVG(amount) * AVG(amount), var_samp(qty), \
             stddev_samp(amount) FROM sales GROUP BY region ORDER BY region",
        )
        .unwrap();
    let want: Vec<Vec<rusqlite::types::Value>> = st
        .query_map([], |r| (0..6).map(|i| r.get(i)).collect())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got.rows.len(), 2);
    for (g, w) in got.rows.iter().zip(&want) {
        assert_eq!(
            g[1],
            Value::Integer(match w[1] {
                rusqlite::types::Value::Integer(i) => i,
                _ => panic!(),
            })
        );
        for j in 2..6 {
            let (a, b) = (
                num(&g[j]),
                match &w[j] {
                    rusqlite::types::Value::Real(f) => *f,
                    rusqlite::types::Value::Integer(i) => *i as f64,
                    other => panic!("{other:?}"),
                },
            );
            // Relative 10^-6 of the value, or the bounded formula's absolute error for
            // a mean below 10^6 (about 10^6 · 2^-15).
            let tol = (1e-6 * b.abs()).max(if g[0] == Value::Text("a".into()) {
                4e3
            } else {
                1e-3
            });
            assert!((a - b).abs() <= tol, "{sql}: {g:?} vs {w:?} (column {j})");
        }
    }
    // Sums that three owners cannot add exactly are refused at the owner, by name.
    let huge: Vec<(MemberId, Vec<Row>)> = (0..3)
        .map(|i| (member(i), vec![row("a", 1.0, 1 << 44)]))
        .collect();
    let p = plan("SELECT SUM(qty) FROM sales", &catalog()).unwrap();
    let outs = run_all(&p, &roles, &huge, 1, 6);
    let e = outs[0].1.as_ref().unwrap_err().to_string();
    assert!(e.contains("column qty") && e.contains("owners"), "{e}");
    // Squares beyond the fixed-point range are refused naming the column too.
    let p = plan("SELECT VAR_POP(amount) FROM sales", &catalog()).unwrap();
    let wide: Vec<(MemberId, Vec<Row>)> = (0..3)
        .map(|i| (member(i), vec![row("a", 4.0e7, 1)]))
        .collect();
    let outs = run_all(&p, &roles, &wide, 1, 7);
    let e = outs[0].1.as_ref().unwrap_err().to_string();
    assert!(e.contains("column amount"), "{e}");
}
