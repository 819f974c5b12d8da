//! Comparisons, equality, min/max against plaintext.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use proptest::prelude::*;

fn pairs(vals: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &a in vals {
        for &b in vals {
            xs.push(a);
            ys.push(b);
        }
    }
    (xs, ys)
}

fn cmp_all(xs: &[i64], ys: &[i64]) -> [Vec<bool>; 7] {
    run(|s| {
        let x = share_i64(s, xs)?;
        let y = share_i64(s, ys)?;
        let lt = s.lt(&x, &y)?;
        let le = s.le(&x, &y)?;
        let gt = s.gt(&x, &y)?;
        let ge = s.ge(&x, &y)?;
        let eq = s.eq(&x, &y)?;
        let full = s.lt_full(&x, &y)?;
        let msb = s.msb(&x)?;
        Ok([
            open_bits(s, &lt)?,
            open_bits(s, &le)?,
            open_bits(s, &gt)?,
            open_bits(s, &ge)?,
            open_bits(s, &eq)?,
            open_bits(s, &full)?,
            open_bits(s, &msb)?,
        ])
    })
}

fn check(xs: &[i64], ys: &[i64], restricted_ok: bool) {
    let out = cmp_all(xs, ys);
    for i in 0..xs.len() {
        let (a, b) = (xs[i], ys[i]);
        let ctx = format!("a={a} b={b}");
        let in_range = (a as i128 - b as i128).abs() < (1i128 << 63);
        if restricted_ok || in_range {
            assert_eq!(out[0][i], a < b, "lt {ctx}");
            assert_eq!(out[1][i], a <= b, "le {ctx}");
            assert_eq!(out[2][i], a > b, "gt {ctx}");
            assert_eq!(out[3][i], a >= b, "ge {ctx}");
        }
        assert_eq!(out[4][i], a == b, "eq {ctx}");
        assert_eq!(out[5][i], a < b, "lt_full {ctx}");
        assert_eq!(out[6][i], a < 0, "msb {ctx}");
    }
}

#[test]
fn edge_values_all_pairs() {
    let (xs, ys) = pairs(&EDGES_HALF);
    check(&xs, &ys, true);
    // Full-range edges: lt is only promised within range; lt_full and eq always.
    let (xs, ys) = pairs(&EDGES);
    check(&xs, &ys, false);
}

#[test]
fn empty_length_one_and_block_boundaries() {
    for n in [0usize, 1, 63, 64, 65, 129] {
        let xs: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 101 - 50).collect();
        let ys: Vec<i64> = (0..n as i64).map(|i| (i * 104_729) % 97 - 48).collect();
        check(&xs, &ys, true);
    }
}

#[test]
fn lt_costs() {
    let n = 640;
    let v: Vec<u64> = (0..n as u64).collect();
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let x = share(s, &v)?;
        let y = share(s, &v)?;
        let (r0, b0) = (s.rounds(), s.bytes_sent());
        s.lt(&x, &y)?;
        Ok((s.rounds() - r0, s.bytes_sent() - b0))
    });
    let words = n as u64 / 64;
    for (i, r) in rs.into_iter().enumerate() {
        let (rounds, bytes) = r.unwrap();
        assert_eq!(rounds, 8);
        // 63 generate ANDs + at most 2 per tree node, plus party 1's 64 input planes.
        let input = if i == 1 { 64 } else { 0 };
        assert!(
            bytes <= words * (input + 63 + 124) * 8,
            "party {i}: {bytes}"
        );
        assert!(
            bytes >= words * (input + 63 + 100) * 8,
            "party {i}: {bytes}"
        );
    }
}

#[test]
fn lt_narrow_and_public() {
    let xs: Vec<i64> = vec![0, 5, -5, 1000, -1000, 32767, -32768, 7];
    let ys: Vec<i64> = vec![0, -5, 5, -1000, 1000, -32768, 32767, 7];
    let (n, p, k) = run(|s| {
        let x = share_i64(s, &xs)?;
        let y = share_i64(s, &ys)?;
        let n = s.lt_narrow(&x, &y, 17)?;
        let p = s.lt_public(&x, 6)?;
        let k = s.count_at_least(&x, 5)?;
        Ok((open_bits(s, &n)?, open_bits(s, &p)?, open_bits(s, &k)?))
    });
    for i in 0..xs.len() {
        assert_eq!(n[i], xs[i] < ys[i]);
        assert_eq!(p[i], xs[i] < 6);
        assert_eq!(k[i], xs[i] >= 5);
    }
}

#[test]
fn min_max_vectors() {
    let cases: Vec<Vec<i64>> = vec![
        vec![5],
        vec![3, 3, 3, 3, 3],
        vec![(1 << 62) - 1, -(1 << 62), 0, 1, -1],
        (0..100).map(|i| (i * 37 % 101) - 50).collect(),
    ];
    for v in cases {
        let out = run(|s| {
            let x = share_i64(s, &v)?;
            let mn = s.min_of(&x)?;
            let mx = s.max_of(&x)?;
            let y = share_i64(s, &v.iter().rev().copied().collect::<Vec<_>>())?;
            let pmin = s.min_pairwise(&x, &y)?;
            let pmax = s.max_pairwise(&x, &y)?;
            Ok((
                open_i64(s, &mn)?,
                open_i64(s, &mx)?,
                open_i64(s, &pmin)?,
                open_i64(s, &pmax)?,
            ))
        });
        assert_eq!(out.0, vec![*v.iter().min().unwrap()]);
        assert_eq!(out.1, vec![*v.iter().max().unwrap()]);
        let r: Vec<i64> = v.iter().rev().copied().collect();
        assert_eq!(
            out.2,
            v.iter().zip(&r).map(|(a, b)| *a.min(b)).collect::<Vec<_>>()
        );
        assert_eq!(
            out.3,
            v.iter().zip(&r).map(|(a, b)| *a.max(b)).collect::<Vec<_>>()
        );
    }
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        s.min_of(&consort_mpc::ArithShares::zeros(0))
    });
    assert!(rs.iter().all(|r| r.is_err()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn prop_compare_in_range(v in proptest::collection::vec((-(1i64 << 62)..(1i64 << 62), -(1i64 << 62)..(1i64 << 62)), 0..70)) {
        let xs: Vec<i64> = v.iter().map(|p| p.0).collect();
        let ys: Vec<i64> = v.iter().map(|p| p.1).collect();
        check(&xs, &ys, true);
    }

    #[test]
    fn prop_compare_full_range(v in proptest::collection::vec((any::<i64>(), any::<i64>()), 0..70)) {
        let xs: Vec<i64> = v.iter().map(|p| p.0).collect();
        let mut ys: Vec<i64> = v.iter().map(|p| p.1).collect();
        // Make a few equal so equality is exercised.
        for i in (0..ys.len()).step_by(3) { ys[i] = xs[i]; }
        check(&xs, &ys, false);
    }

    #[test]
    fn prop_min_max(v in proptest::collection::vec(-(1i64 << 62)..(1i64 << 62), 1..40)) {
        let out = run(|s| {
            let x = share_i64(s, &v)?;
            let a = s.min_of(&x)?;
            let b = s.max_of(&x)?;
            Ok((open_i64(s, &a)?, open_i64(s, &b)?))
        });
        prop_assert_eq!(out.0, vec![*v.iter().min().unwrap()]);
        prop_assert_eq!(out.1, vec![*v.iter().max().unwrap()]);
    }
}
