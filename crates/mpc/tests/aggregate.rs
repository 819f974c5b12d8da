//! Aggregates over shared columns against plaintext.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use consort_mpc::{decode_fixed, encode_fixed, SENTINEL};
use proptest::prelude::*;

const F: u32 = 16;

fn enc(v: &[f64]) -> Vec<i64> {
    v.iter()
        .map(|x| encode_fixed(*x, F).unwrap() as i64)
        .collect()
}

struct Agg {
    sum: i64,
    count: u64,
    msum: i64,
    mean: f64,
    var: f64,
    min: i64,
    max: i64,
    k3: bool,
}

fn aggregates(vals: &[i64], mask: &[u64]) -> Agg {
    let r = run(|s| {
        let x = share_i64(s, vals)?;
        let m = share_from(s, 2, mask)?;
        let sum = open_i64(s, &s.sum(&x))?;
        let cnt = s.count(&m);
        let count = open(s, &cnt)?;
        let msum = s.masked_sum(&x, &m)?;
        let msum = open_i64(s, &msum)?;
        let mo = s.variance(&x, Some(&m), F)?;
        let mean = open(s, &mo.mean)?;
        let var = open(s, mo.variance.as_ref().unwrap())?;
        let mn = s.min_masked(&x, Some(&m))?;
        let mx = s.max_masked(&x, Some(&m))?;
        let k3 = s.count_at_least(&cnt, 3)?;
        Ok((
            sum,
            count,
            msum,
            mo.count,
            mean,
            var,
            open_i64(s, &mn)?,
            open_i64(s, &mx)?,
            open_bits(s, &k3)?,
        ))
    });
    assert_eq!(r.1[0], r.3, "revealed count");
    Agg {
        sum: r.0[0],
        count: r.1[0],
        msum: r.2[0],
        mean: decode_fixed(r.4[0], F),
        var: decode_fixed(r.5[0], F),
        min: r.6[0],
        max: r.7[0],
        k3: r.8[0],
    }
}

fn check(vals: &[f64], mask: &[u64]) {
    let e = enc(vals);
    let a = aggregates(&e, mask);
    let sel: Vec<f64> = vals
        .iter()
        .zip(mask)
        .filter(|p| *p.1 == 1)
        .map(|p| *p.0)
        .collect();
    let esel: Vec<i64> = e
        .iter()
        .zip(mask)
        .filter(|p| *p.1 == 1)
        .map(|p| *p.0)
        .collect();
    assert_eq!(a.sum, e.iter().fold(0i64, |s, x| s.wrapping_add(*x)));
    assert_eq!(a.count, sel.len() as u64);
    assert_eq!(a.msum, esel.iter().sum::<i64>());
    assert_eq!(a.k3, sel.len() >= 3);
    let ulp = 1.0 / 65536.0;
    if sel.is_empty() {
        assert_eq!(a.mean, 0.0);
        assert_eq!(a.min, SENTINEL as i64);
        assert_eq!(a.max, -(SENTINEL as i64));
        return;
    }
    let n = sel.len() as f64;
    let mean = esel.iter().map(|x| *x as f64 * ulp).sum::<f64>() / n;
    let var = esel
        .iter()
        .map(|x| (*x as f64 * ulp - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(
        (a.mean - mean).abs() <= 2.0 * ulp,
        "mean {} vs {mean}",
        a.mean
    );
    // Each selected row's square is floored and truncated (within 2 units below), the
    // final division adds up to 2 more; the rounded mean adds (mean error)², far below a
    // unit. The relative term covers f64 rounding in this reference.
    let tol = 4.0 * ulp + 1e-9 * var.abs();
    assert!((a.var - var).abs() <= tol, "var {} vs {var}", a.var);
    assert_eq!(a.min, *esel.iter().min().unwrap());
    assert_eq!(a.max, *esel.iter().max().unwrap());
}

#[test]
fn aggregate_edges() {
    check(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 1, 1]);
    check(&[1.0, 2.0, 3.0, 4.0], &[0, 0, 0, 0]);
    check(&[-7.5], &[1]);
    check(&[5.25; 10], &[1, 0, 1, 0, 1, 0, 1, 0, 1, 1]);
    check(&[1e6, -1e6, 3.0, 1e6], &[1, 1, 0, 1]);
    check(&[1e9, -1e9, 3.0, 1e9], &[0, 0, 1, 0]);
    check(&[-1e-5, 1e-5, 0.0], &[1, 1, 1]);
    // One selected row among many masked-out ones: the variance must be (near) zero.
    let mut lone = vec![-9e5, 9e5, 7.0, 1e6, -1e6, 5.5, 4e5, 3.25];
    lone.extend([1e9; 24]);
    let mut lone_mask = vec![0u64; lone.len()];
    lone_mask[2] = 1;
    check(&lone, &lone_mask);
}

#[test]
fn unmasked_mean_and_empty_column() {
    let e = enc(&[1.0, 2.0, 4.0]);
    let (mean, count) = run(|s| {
        let x = share_i64(s, &e)?;
        let m = s.mean(&x, None)?;
        Ok((open(s, &m.mean)?, m.count))
    });
    assert_eq!(count, 3);
    assert!((decode_fixed(mean[0], F) - 7.0 / 3.0).abs() <= 1.0 / 65536.0);
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let x = share_i64(s, &[])?;
        let m = s.mean(&x, None)?;
        assert_eq!(m.count, 0);
        s.min_masked(&x, None)
    });
    assert!(rs.iter().all(|r| r.is_err()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_aggregates(v in proptest::collection::vec((-1e6f64..1e6, 0u64..2), 1..40)) {
        let vals: Vec<f64> = v.iter().map(|p| p.0).collect();
        let mask: Vec<u64> = v.iter().map(|p| p.1).collect();
        check(&vals, &mask);
    }
}
