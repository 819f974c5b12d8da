//! Division of two secrets against i128 arithmetic.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use proptest::prelude::*;

/// x·2^f / y truncated toward zero, or None when y = 0 or the quotient reaches 2^62.
fn reference(x: i64, y: i64, f: u32) -> Option<i64> {
    if y == 0 {
        return None;
    }
    let q = ((x as i128) << f) / y as i128;
    (q.unsigned_abs() < 1 << 62).then_some(q as i64)
}

fn check(xs: &[i64], ys: &[i64], f: u32) {
    let out = run(|s| {
        let x = share_i64(s, xs)?;
        let y = share_i64(s, ys)?;
        let q = s.div_fixed(&x, &y, f)?;
        Ok((
            open_i64(s, &q.value)?,
            open_bits(s, &q.by_zero)?,
            open_bits(s, &q.overflow)?,
        ))
    });
    for i in 0..xs.len() {
        let want = reference(xs[i], ys[i], f);
        let ctx = format!("{} / {} (f = {f})", xs[i], ys[i]);
        assert_eq!(out.1[i], ys[i] == 0, "by_zero of {ctx}");
        match want {
            Some(q) => {
                assert!(!out.2[i], "overflow of {ctx}");
                assert_eq!(out.0[i], q, "{ctx}");
            }
            None if ys[i] != 0 => {
                assert!(out.2[i], "{ctx} should overflow");
                assert_eq!(out.0[i], 0, "{ctx}");
            }
            None => assert_eq!(out.0[i], 0, "{ctx}"),
        }
    }
}

#[test]
fn division_edges() {
    let big = (1i64 << 62) - 1;
    let xs = [
        0,
        1,
        -1,
        7,
        -7,
        7,
        -7,
        big,
        -big,
        big,
        1 << 40,
        5,
        3,
        1,
        1 << 47,
    ];
    let ys = [1, 3, 3, 2, 2, -2, -2, 1, 7, big, 0, 0, 1 << 20, big, 1];
    check(&xs, &ys, 16);
    check(&xs, &ys, 0);
    check(&[], &[], 16);
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let x = share_i64(s, &[1, 2])?;
        let y = share_i64(s, &[1])?;
        s.div_fixed(&x, &y, 16).map(|_| ())
    });
    assert!(rs.iter().all(|r| r.is_err()), "lengths must agree");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn prop_division_matches_i128(
        pairs in proptest::collection::vec(
            (-(1i64 << 50)..(1i64 << 50), prop_oneof![-(1i64 << 40)..(1i64 << 40), -40i64..40]),
            1..40,
        ),
    ) {
        let (xs, ys): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
        check(&xs, &ys, 16);
    }
}

#[test]
fn exact_shift_floors_every_value() {
    let xs: Vec<i64> = vec![
        0,
        1,
        -1,
        65535,
        65536,
        -65536,
        -65537,
        i64::MAX,
        i64::MIN,
        3 << 20,
        -(5 << 16),
    ];
    for d in [1u32, 16, 63] {
        let out = run(|s| {
            let x = share_i64(s, &xs)?;
            let y = s.shr_exact(&x, d)?;
            open_i64(s, &y)
        });
        let want: Vec<i64> = xs.iter().map(|x| x >> d).collect();
        assert_eq!(out, want, "d = {d}");
    }
}
