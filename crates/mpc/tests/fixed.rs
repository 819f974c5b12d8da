//! Fixed-point encoding, truncation and division by a public constant.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use consort_mpc::{decode_fixed, encode_fixed};
use proptest::prelude::*;

const F: u32 = 16;

fn floor_div(x: i64, c: i64) -> i64 {
    x.div_euclid(c)
}

#[test]
fn encode_decode() {
    assert_eq!(encode_fixed(1.0, F).unwrap(), 1 << 16);
    assert_eq!(encode_fixed(-1.5, F).unwrap() as i64, -(3 << 15));
    assert_eq!(decode_fixed(encode_fixed(-123.25, F).unwrap(), F), -123.25);
    assert!(encode_fixed(f64::NAN, F).is_err());
    assert!(encode_fixed(2f64.powi(47), F).is_err());
    assert!(encode_fixed(-(2f64.powi(47)), F).is_ok());
    assert!(encode_fixed(1.0, 63).is_err());
}

fn trunc_check(xs: &[i64], d: u32) {
    let out = run(|s| {
        let x = share_i64(s, xs)?;
        let t = s.trunc(&x, d)?;
        open_i64(s, &t)
    });
    for (x, got) in xs.iter().zip(out) {
        let want = x >> d;
        assert!(
            got == want || got == want - 1,
            "trunc({x}, {d}) = {got}, want {want} or one less"
        );
    }
}

#[test]
fn trunc_edges_full_range() {
    let mut xs: Vec<i64> = EDGES.to_vec();
    xs.extend([
        1 << 16,
        -(1 << 16),
        (1 << 16) - 1,
        3 << 40,
        -(3 << 40),
        65535,
        -65535,
    ]);
    for d in [1, 16, 32, 62] {
        trunc_check(&xs, d);
    }
    trunc_check(&[], 16);
    let out = run(|s| {
        let x = share_i64(s, &[5])?;
        let t = s.trunc(&x, 0)?;
        open_i64(s, &t)
    });
    assert_eq!(out, vec![5]);
}

#[test]
fn div_public_general_divisors() {
    let xs: Vec<i64> = vec![
        0,
        1,
        -1,
        7,
        -7,
        1_000_000,
        -1_000_000,
        (1 << 62) - 1,
        -(1 << 62),
        12345678901234,
    ];
    for c in [2u64, 3, 7, 10, 1000, 65537, (1 << 40) + 1, 1] {
        let out = run(|s| {
            let x = share_i64(s, &xs)?;
            let t = s.div_public(&x, c)?;
            open_i64(s, &t)
        });
        for (x, got) in xs.iter().zip(out) {
            let want = floor_div(*x, c as i64);
            assert!((got - want).abs() <= 1, "{x}/{c} = {got}, want {want}±1");
        }
    }
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let x = share_i64(s, &[1])?;
        s.div_public(&x, 0)
    });
    assert!(rs.iter().all(|r| r.is_err()));
}

#[test]
fn mul_fixed_values() {
    let a = [1.5, -2.25, 0.0, 1000.125, -0.0001, 30000.0, -30000.0];
    let b = [2.0, 4.0, 7.5, -3.5, 12.0, 30000.0, 30000.0];
    let ea: Vec<i64> = a
        .iter()
        .map(|x| encode_fixed(*x, F).unwrap() as i64)
        .collect();
    let eb: Vec<i64> = b
        .iter()
        .map(|x| encode_fixed(*x, F).unwrap() as i64)
        .collect();
    let out = run(|s| {
        let x = share_i64(s, &ea)?;
        let y = share_i64(s, &eb)?;
        let p = s.mul_fixed(&x, &y, F)?;
        open(s, &p)
    });
    for i in 0..a.len() {
        let exact = (ea[i] as i128 * eb[i] as i128) >> F;
        let got = out[i] as i64 as i128;
        assert!(
            got == exact || got == exact - 1,
            "{} * {}: {got} vs {exact}",
            a[i],
            b[i]
        );
        assert!((decode_fixed(out[i], F) - a[i] * b[i]).abs() < 1e-3 * (1.0 + (a[i] * b[i]).abs()));
    }
}

#[test]
fn trunc_prob_small_values() {
    let xs: Vec<i64> = (-500..500).map(|i| i * 1_003).collect();
    let out = run(|s| {
        let x = share_i64(s, &xs)?;
        let p = s.mul(&x, &x)?; // fresh random components
        let t = s.trunc_prob(&x, 16)?;
        let t2 = s.trunc_prob(&p, 16)?;
        Ok((open_i64(s, &t)?, open_i64(s, &t2)?))
    });
    for (i, x) in xs.iter().enumerate() {
        assert!((out.0[i] - (x >> 16)).abs() <= 1, "{x}");
        assert!((out.1[i] - ((x * x) >> 16)).abs() <= 1, "{x}^2");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn prop_trunc_any(v in proptest::collection::vec(any::<i64>(), 0..50), d in 1u32..62) {
        trunc_check(&v, d);
    }

    #[test]
    fn prop_div(v in proptest::collection::vec(-(1i64 << 62)..(1i64 << 62), 1..30), c in 2u64..1_000_000) {
        let out = run(|s| {
            let x = share_i64(s, &v)?;
            let t = s.div_public(&x, c)?;
            open_i64(s, &t)
        });
        for (x, got) in v.iter().zip(out) {
            let want = floor_div(*x, c as i64);
            prop_assert!((got - want).abs() <= 1, "{}/{} = {}, want {}", x, c, got, want);
        }
    }

    #[test]
    fn prop_mul_fixed(v in proptest::collection::vec((-1e6f64..1e6, -1e3f64..1e3), 1..30)) {
        let ea: Vec<i64> = v.iter().map(|p| encode_fixed(p.0, F).unwrap() as i64).collect();
        let eb: Vec<i64> = v.iter().map(|p| encode_fixed(p.1, F).unwrap() as i64).collect();
        let out = run(|s| {
            let x = share_i64(s, &ea)?;
            let y = share_i64(s, &eb)?;
            let p = s.mul_fixed(&x, &y, F)?;
            open_i64(s, &p)
        });
        for i in 0..v.len() {
            let exact = ((ea[i] as i128 * eb[i] as i128) >> F) as i64;
            prop_assert!(out[i] == exact || out[i] == exact - 1);
        }
    }
}
