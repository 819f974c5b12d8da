//! Square roots of secrets against integer arithmetic.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use proptest::prelude::*;

/// ⌊√(x·2^f)⌋ for x ≥ 0; 0 for x < 0.
fn reference(x: i64, f: u32) -> i64 {
    if x <= 0 {
        return 0;
    }
    let n = (x as u128) << f;
    let mut r = (n as f64).sqrt() as u128;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r as i64
}

fn check(xs: &[i64], f: u32) {
    let out = run(|s| {
        let x = share_i64(s, xs)?;
        let y = s.sqrt_fixed(&x, f)?;
        open_i64(s, &y)
    });
    for (i, &x) in xs.iter().enumerate() {
        assert_eq!(out[i], reference(x, f), "sqrt of {x} (f = {f})");
    }
}

#[test]
fn square_root_edges() {
    let big = (1i64 << 62) - 1;
    let xs = [
        0,
        1,
        2,
        3,
        4,
        65536,
        65535,
        1 << 32,
        big,
        -1,
        -big,
        10_000 << 16,
        2 << 16,
    ];
    check(&xs, 16);
    check(&xs, 0);
    check(&[], 16);
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let x = share_i64(s, &[1])?;
        s.sqrt_fixed(&x, 15).map(|_| ())
    });
    assert!(rs.iter().all(|r| r.is_err()), "an odd f is refused");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn prop_square_root_matches_integers(xs in proptest::collection::vec(0i64..(1i64 << 62), 1..30)) {
        check(&xs, 16);
    }
}
