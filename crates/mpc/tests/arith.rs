//! Input, reveal, linear operations, multiplication and dot products against plaintext.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::time::Duration;

use consort_mpc::sim::{run_parties, Party};
use consort_mpc::{provide_input, receive_output, receive_output_bits, ArithShares};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn edge_vec() -> Vec<u64> {
    let mut v: Vec<u64> = EDGES.iter().map(|&x| x as u64).collect();
    v.extend([u64::MAX, 1 << 63, 0xDEAD_BEEF, 12345]);
    v
}

#[test]
fn input_reveal_from_every_compute_party() {
    let v = edge_vec();
    for owner in 0..3 {
        let out = run(|s| {
            let x = share_from(s, owner, &v)?;
            open(s, &x)
        });
        assert_eq!(out, v);
    }
}

#[test]
fn empty_and_single_vectors() {
    let out = run(|s| {
        let e = share(s, &[])?;
        let one = share(s, &[42])?;
        let p = s.mul(&e, &e)?;
        let q = s.mul(&one, &one)?;
        let d = s.dot(&e, &e)?;
        Ok((open(s, &p)?, open(s, &q)?, open(s, &d)?))
    });
    assert_eq!(out, (vec![], vec![1764], vec![0]));
}

#[test]
fn reveal_to_one_party_only() {
    let v = edge_vec();
    for to in 0..3 {
        let rs = consort_mpc::sim::run3(TIMEOUT, 3, |s| {
            let x = share(s, &v)?;
            s.reveal_to(&x, to)
        });
        for (i, r) in rs.into_iter().enumerate() {
            let r = r.unwrap();
            if i == to {
                assert_eq!(r.as_deref(), Some(&v[..]));
            } else {
                assert_eq!(r, None);
            }
        }
    }
}

#[test]
fn external_owner_and_external_result_party() {
    let v = edge_vec();
    let w: Vec<u64> = (0..v.len() as u64).map(|i| i * 1000).collect();
    let bits = vec![true, false, true, true];
    let rs = run_parties(5, Duration::from_secs(20), 7, |p| match p {
        Party::Compute(s) => {
            let x = s.input_external(3, v.len())?;
            let y = s.input_external(3, w.len())?;
            let z = s.mul(&x, &y)?;
            s.reveal_to(&z.add(&x)?, 4)?;
            let b = s.input_bits(1, (s.me() == 1).then_some(&bits[..]), bits.len())?;
            s.reveal_bits_to(&b, &[4, 0])?;
            Ok(vec![])
        }
        Party::External(3, t) => {
            let mut rng = StdRng::seed_from_u64(3);
            provide_input(t, &v, &mut rng)?;
            provide_input(t, &w, &mut rng)?;
            Ok(vec![])
        }
        Party::External(_, t) => {
            let out = receive_output(t)?;
            let b = receive_output_bits(t, 4)?;
            assert_eq!(b, bits);
            Ok(out)
        }
    });
    let want: Vec<u64> = v
        .iter()
        .zip(&w)
        .map(|(a, b)| a.wrapping_mul(*b).wrapping_add(*a))
        .collect();
    let rs: Vec<Vec<u64>> = rs.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(rs[4], want);
}

#[test]
fn edge_products_wrap_around() {
    let v = edge_vec();
    let n = v.len();
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..n {
        for j in 0..n {
            xs.push(v[i]);
            ys.push(v[j]);
        }
    }
    let out = run(|s| {
        let x = share(s, &xs)?;
        let y = share_from(s, 1, &ys)?;
        let p = s.mul(&x, &y)?;
        let sum = x.add(&y)?;
        let diff = x.sub(&y)?;
        let neg = x.neg();
        let sc = x.mul_public(0xFFFF_0000_0000_0003);
        let ac = x.add_const(s.me(), u64::MAX);
        let mut out = Vec::new();
        for z in [p, sum, diff, neg, sc, ac] {
            out.push(open(s, &z)?);
        }
        Ok(out)
    });
    let w = |f: &dyn Fn(u64, u64) -> u64| {
        xs.iter()
            .zip(&ys)
            .map(|(a, b)| f(*a, *b))
            .collect::<Vec<_>>()
    };
    assert_eq!(out[0], w(&|a, b| a.wrapping_mul(b)));
    assert_eq!(out[1], w(&|a, b| a.wrapping_add(b)));
    assert_eq!(out[2], w(&|a, b| a.wrapping_sub(b)));
    assert_eq!(out[3], w(&|a, _| a.wrapping_neg()));
    assert_eq!(out[4], w(&|a, _| a.wrapping_mul(0xFFFF_0000_0000_0003)));
    assert_eq!(out[5], w(&|a, _| a.wrapping_add(u64::MAX)));
}

#[test]
fn mul_costs_one_round_and_one_word_per_element() {
    let n = 1000;
    let v: Vec<u64> = (0..n as u64).collect();
    let out = run(|s| {
        let x = share(s, &v)?;
        let (r0, b0) = (s.rounds(), s.bytes_sent());
        let _ = s.mul(&x, &x)?;
        let (r1, b1) = (s.rounds(), s.bytes_sent());
        let _ = s.dot(&x, &x)?;
        let _ = s.mul_many(&[(&x, &x), (&x, &x)])?;
        Ok((r1 - r0, b1 - b0, s.rounds() - r1, s.bytes_sent() - b1))
    });
    // Plus one frame-tag byte per message.
    assert_eq!(out, (1, 8 * n as u64 + 1, 2, 9 + 16 * n as u64 + 1));
}

#[test]
fn dot_many_and_public_vectors() {
    let x: Vec<u64> = vec![1, 2, 3, u64::MAX];
    let y: Vec<u64> = vec![4, 5, 6, 7];
    let out = run(|s| {
        let a = share(s, &x)?;
        let b = share_from(s, 2, &y)?;
        let d = s.dot_many(&[(&a, &b), (&b, &b), (&a.slice(0..0)?, &b.slice(0..0)?)])?;
        let p = ArithShares::public(s.me(), &y);
        let q = a.mul_public_vec(&y)?.add_public(s.me(), &x)?;
        Ok((open(s, &d)?, open(s, &p)?, open(s, &q)?, open(s, &a.sum())?))
    });
    assert_eq!(
        out.0,
        vec![
            32u64.wrapping_add(7u64.wrapping_mul(u64::MAX)),
            16 + 25 + 36 + 49,
            0
        ]
    );
    assert_eq!(out.1, y);
    assert_eq!(out.2, vec![5, 12, 21, u64::MAX.wrapping_mul(8)]);
    assert_eq!(out.3, vec![5]);
}

#[test]
fn length_mismatch_is_an_error_not_a_panic() {
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let a = share(s, &[1, 2])?;
        let b = share(s, &[1])?;
        assert!(a.add(&b).is_err());
        assert!(s.dot(&a, &b).is_err());
        assert!(a.gather(&[2]).is_err());
        s.mul(&a, &b).map(|_| ())
    });
    for r in rs {
        assert!(matches!(r, Err(consort_mpc::MpcError::InvalidArgument(_))));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_mul_add_dot(v in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..40), c in any::<u64>()) {
        let xs: Vec<u64> = v.iter().map(|p| p.0).collect();
        let ys: Vec<u64> = v.iter().map(|p| p.1).collect();
        let out = run_seeded(c, |s| {
            let x = share(s, &xs)?;
            let y = share_from(s, 2, &ys)?;
            let p = s.mul(&x, &y)?;
            let l = x.mul_public(c).sub(&y)?.add_const(s.me(), c);
            let d = s.dot(&x, &y)?;
            Ok((open(s, &p)?, open(s, &l)?, open(s, &d)?))
        });
        let want_p: Vec<u64> = xs.iter().zip(&ys).map(|(a, b)| a.wrapping_mul(*b)).collect();
        let want_l: Vec<u64> = xs.iter().zip(&ys).map(|(a, b)| a.wrapping_mul(c).wrapping_sub(*b).wrapping_add(c)).collect();
        let want_d = xs.iter().zip(&ys).fold(0u64, |s, (a, b)| s.wrapping_add(a.wrapping_mul(*b)));
        prop_assert_eq!(out.0, want_p);
        prop_assert_eq!(out.1, want_l);
        prop_assert_eq!(out.2, vec![want_d]);
    }
}

#[test]
fn external_input_with_wrong_announced_size_is_malformed() {
    let rs = run_parties(4, Duration::from_secs(2), 9, |p| match p {
        Party::Compute(s) => s.input_external(3, 5).map(|_| ()),
        Party::External(_, t) => {
            let mut rng = StdRng::seed_from_u64(1);
            provide_input(t, &[1, 2, 3], &mut rng)
        }
    });
    for r in &rs[..3] {
        assert!(
            matches!(r, Err(consort_mpc::MpcError::Malformed { peer, .. }) if peer == "p3"),
            "{r:?}"
        );
    }
}
