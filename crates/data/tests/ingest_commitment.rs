//! Commitment properties: the incremental root equals the naive RFC 6962 root over the row
//! encodings, depends on order, and is recomputed from rows read back.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{NaiveDate, TimeZone, Utc};
use consort_crypto::merkle;
use consort_data::canonical::{commitment_of, encode_row, Commitment};
use consort_data::pipeline::{ingest, IngestOptions};
use consort_data::{Row, Value};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        (-1e12f64..1e12).prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,40}".prop_map(|s: String| Value::Text(s.into())),
        (-100_000i32..100_000)
            .prop_map(|d| Value::Date(NaiveDate::from_num_days_from_ce_opt(d + 719_163).unwrap())),
        (-10_000_000_000_000i64..10_000_000_000_000)
            .prop_map(|us| Value::Timestamp(Utc.timestamp_micros(us).unwrap())),
    ]
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(prop::collection::vec(value(), 0..5), 0..40)
}

proptest! {
    #[test]
    fn root_equals_naive_merkle_root(rows in rows()) {
        let encodings: Vec<Vec<u8>> = rows.iter().map(encode_row).collect();
        let mut c = Commitment::new();
        for e in &encodings {
            c.push(e);
        }
        prop_assert_eq!(c.root(), merkle::root(&encodings));
        prop_assert_eq!(commitment_of(&rows), merkle::root(&encodings));
    }

    #[test]
    fn root_is_order_sensitive(rows in rows(), i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
        prop_assume!(rows.len() >= 2);
        let (i, j) = (i.index(rows.len()), j.index(rows.len()));
        prop_assume!(encode_row(&rows[i]) != encode_row(&rows[j]));
        let mut swapped = rows.clone();
        swapped.swap(i, j);
        prop_assert_ne!(commitment_of(&rows), commitment_of(&swapped));
    }
}

#[test]
fn rows_read_back_recompute_the_root() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.csv");
    let mut body = String::from("id,name,when,score\n");
    for i in 0..25_000 {
        body.push_str(&format!(
            "{i},n{},2024-01-{:02} 10:00:00,{}.5\n",
            i % 7,
            i % 28 + 1,
            i % 100
        ));
        if i % 10 == 0 {
            body.push_str(&format!("{i},dup,2024-01-01 00:00:00,1.0\n"));
        }
    }
    std::fs::write(&p, body).unwrap();
    let options = IngestOptions {
        key: Some(vec!["id".into()]),
        reject_path: d.path().join("r.ndjson"),
        ..Default::default()
    };
    let mut stored: Vec<(u64, Row)> = Vec::new();
    let mut batches = 0;
    let report = ingest(
        &[p],
        &options,
        &mut |batch| {
            batches += 1;
            for row in batch {
                stored.push((stored.len() as u64, row));
            }
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.rows_kept, 25_000);
    assert_eq!(report.duplicates_removed, 2_500);
    assert!(batches >= 3);
    // A store returns rows in any order; ordered by row number they give the same root.
    stored.reverse();
    stored.sort_by_key(|(n, _)| *n);
    let encodings: Vec<Vec<u8>> = stored.iter().map(|(_, r)| encode_row(r)).collect();
    assert_eq!(report.commitment, merkle::root(&encodings));
    assert_eq!(stored[0].1[0], Value::Integer(0));
}

/// Salted leaves are hashed after the acceptor, in parallel per batch, with the row
/// numbers the sink sees: recomputing them from the stored rows gives the same root, with
/// and without dedup (duplicates get no number), and each dataset version has its own
/// salts.
#[test]
fn salted_leaves_use_the_row_numbers_the_sink_sees() {
    use consort_data::hiding::{salted_root, RowCommitment, RowSalter};
    use consort_data::recipe::Dedup;
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.csv");
    let mut body = String::from("id,region,age\n");
    for i in 0..12_000 {
        body.push_str(&format!("{},r{},{}\n", i % 9_000, i % 5, i % 9_000 % 97));
        if i % 1000 == 0 {
            body.push_str("too,few\n");
        }
    }
    std::fs::write(&p, body).unwrap();
    let secret = [5u8; 32];
    let mut roots = Vec::new();
    for (dedup, version) in [(Dedup::All, 1), (Dedup::None, 1), (Dedup::All, 2)] {
        let salter = Arc::new(RowSalter::new(&secret, "visits", version));
        let options = IngestOptions {
            dedup: Some(dedup),
            reject_path: d.path().join("r.ndjson"),
            commitment: RowCommitment::SaltedColumns(salter.clone()),
            ..Default::default()
        };
        let mut stored: Vec<Row> = Vec::new();
        let report = ingest(
            std::slice::from_ref(&p),
            &options,
            &mut |batch| {
                stored.extend(batch);
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap();
        let expected_rows = if dedup == Dedup::All { 9_000 } else { 12_000 };
        assert_eq!(report.rows_kept, expected_rows);
        assert_eq!(report.commitment, salted_root(&salter, &stored));
        // Not the row-hash root.
        let encodings: Vec<Vec<u8>> = stored.iter().map(encode_row).collect();
        assert_ne!(report.commitment, merkle::root(&encodings));
        roots.push(report.commitment);
    }
    assert_ne!(roots[0], roots[2], "versions share salts");
}
