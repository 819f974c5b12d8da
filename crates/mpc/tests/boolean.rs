//! Boolean sharing, A2B, B2A, bit injection and mux against plaintext.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use consort_mpc::{BitShares, XorShares};
use proptest::prelude::*;

fn edge_u64() -> Vec<u64> {
    let mut v: Vec<u64> = EDGES.iter().map(|&x| x as u64).collect();
    v.extend([
        u64::MAX,
        1 << 63,
        0x5555_5555_5555_5555,
        0xAAAA_AAAA_AAAA_AAAA,
    ]);
    v
}

fn bits_of(n: usize, seed: u64) -> Vec<bool> {
    (0..n as u64)
        .map(|i| (i.wrapping_mul(seed | 1).wrapping_add(seed) >> 3) & 1 == 1)
        .collect()
}

#[test]
fn bit_ops() {
    for n in [0usize, 1, 63, 64, 65, 200] {
        let x = bits_of(n, 11);
        let y = bits_of(n, 29);
        let out = run(|s| {
            let a = s.input_bits(0, (s.me() == 0).then_some(&x[..]), n)?;
            let b = s.input_bits(2, (s.me() == 2).then_some(&y[..]), n)?;
            let and = s.and_bits(&a, &b)?;
            let or = s.or_bits(&a, &b)?;
            let xor = a.xor(&b)?;
            let not = a.not(s.me());
            let p = BitShares::public(s.me(), &y);
            Ok([
                open_bits(s, &and)?,
                open_bits(s, &or)?,
                open_bits(s, &xor)?,
                open_bits(s, &not)?,
                open_bits(s, &p)?,
            ])
        });
        for i in 0..n {
            assert_eq!(out[0][i], x[i] & y[i]);
            assert_eq!(out[1][i], x[i] | y[i]);
            assert_eq!(out[2][i], x[i] ^ y[i]);
            assert_eq!(out[3][i], !x[i]);
            assert_eq!(out[4][i], y[i]);
        }
    }
}

#[test]
fn bit_slicing_helpers() {
    let out = run(|s| {
        let a = s.input_bits(1, (s.me() == 1).then_some(&[true, false, true][..]), 3)?;
        let b = s.input_bits(1, (s.me() == 1).then_some(&[false, true][..]), 2)?;
        let c = BitShares::concat(&[&a, &b]);
        let d = c.slice(1..4)?;
        Ok((open_bits(s, &c)?, open_bits(s, &d)?))
    });
    assert_eq!(out.0, vec![true, false, true, false, true]);
    assert_eq!(out.1, vec![false, true, false]);
}

#[test]
fn a2b_b2a_edges() {
    let v = edge_u64();
    let out = run(|s| {
        let x = share(s, &v)?;
        let b = s.a2b(&x)?;
        let opened = s.reveal_xor_all(&b)?;
        let back = s.b2a(&b)?;
        // AND on XOR-shared words is 64 independent bit ANDs.
        let m = s.and_xor(&b, &b.xor_const(s.me(), 0xFF00))?;
        Ok((opened, open(s, &back)?, s.reveal_xor_all(&m)?))
    });
    assert_eq!(out.0, v);
    assert_eq!(out.1, v);
    assert_eq!(
        out.2,
        v.iter().map(|x| x & (x ^ 0xFF00)).collect::<Vec<_>>()
    );
}

#[test]
fn bit2a_inject_mux_edges() {
    let v = edge_u64();
    let w: Vec<u64> = v.iter().rev().copied().collect();
    let c = bits_of(v.len(), 5);
    let out = run(|s| {
        let x = share(s, &v)?;
        let y = share_from(s, 1, &w)?;
        let b = s.input_bits(2, (s.me() == 2).then_some(&c[..]), c.len())?;
        let a = s.bit2a(&b)?;
        let inj = s.inject(&b, &x)?;
        let mx = s.mux(&b, &x, &y)?;
        Ok((open(s, &a)?, open(s, &inj)?, open(s, &mx)?))
    });
    for i in 0..v.len() {
        assert_eq!(out.0[i], c[i] as u64);
        assert_eq!(out.1[i], if c[i] { v[i] } else { 0 });
        assert_eq!(out.2[i], if c[i] { v[i] } else { w[i] });
    }
}

#[test]
fn conversions_of_empty_vectors() {
    let out = run(|s| {
        let x = share(s, &[])?;
        let b = s.a2b(&x)?;
        let a = s.b2a(&XorShares::zeros(0))?;
        let bits = s.bit2a(&BitShares::zeros(0))?;
        Ok((b.len(), a.len(), bits.len()))
    });
    assert_eq!(out, (0, 0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn prop_conversions(v in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<bool>()), 0..80)) {
        let xs: Vec<u64> = v.iter().map(|p| p.0).collect();
        let ys: Vec<u64> = v.iter().map(|p| p.1).collect();
        let cs: Vec<bool> = v.iter().map(|p| p.2).collect();
        let n = v.len();
        let out = run(|s| {
            let x = share(s, &xs)?;
            let y = share_from(s, 1, &ys)?;
            let c = s.input_bits(0, (s.me() == 0).then_some(&cs[..]), n)?;
            let b = s.a2b(&x)?;
            let bo = s.reveal_xor_all(&b)?;
            let a = s.b2a(&b)?;
            let m = s.mux(&c, &x, &y)?;
            Ok((bo, open(s, &a)?, open(s, &m)?))
        });
        prop_assert_eq!(&out.0, &xs);
        prop_assert_eq!(&out.1, &xs);
        let want: Vec<u64> = (0..n).map(|i| if cs[i] { xs[i] } else { ys[i] }).collect();
        prop_assert_eq!(out.2, want);
    }
}
