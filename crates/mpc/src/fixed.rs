//! Fixed-point encoding and truncation / division by a public constant.
//!
//! A real r is encoded as round(r · 2^f) in two's complement (default f = 16). The product
//! of two encodings carries 2f fractional bits and is truncated by f bits.
//!
//! **`div_public` / `trunc` (default, deterministic).** Add a bias B so x + B is a
//! non-negative integer below 2^64, split it as u + v (u = x_0 at parties 0 and 2,
//! v = x_1 + x_2 at party 1), and compute ⌊u/c⌋ + ⌊v/c⌋ − w·⌊2^64/c⌋ − B/c, where the wrap
//! bit w = [u + v ≥ 2^64] comes from a carry circuit and is converted to arithmetic.
//! Result: ⌊x/c⌋ − δ with δ ∈ {0, 1} for c = 2^d (for any x ∈ [−2^63, 2^63)), and
//! δ ∈ {−1, 0, 1} for other c (for |x| ≤ 2^62). The error never exceeds one unit; there
//! is no failure probability. 10 rounds.
//!
//! **`trunc_prob` (1 round, ABY3/SecureML style).** After re-randomising the split with
//! common randomness, u' ≫ d and −((−v') ≫ d) are added. The result is within ±1 of
//! ⌊x/2^d⌋ except with probability at most |x| / 2^63 per element, in which case it is
//! off by about 2^(64−d). Use only when |x| is known to be tiny relative to 2^63.

use crate::error::{MpcError, Result};
use crate::session::Session;
use crate::share::ArithShares;

/// Default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;

/// Encodes a real as a fixed-point ring element with `f` fractional bits (round to
/// nearest). Fails on NaN/infinite values or values outside [−2^(63−f), 2^(63−f)).
pub fn encode_fixed(r: f64, f: u32) -> Result<u64> {
    if f > 62 {
        return Err(MpcError::arg(format!("{f} fractional bits")));
    }
    let scaled = (r * (1u64 << f) as f64).round();
    if !scaled.is_finite() || scaled < -(2f64.powi(63)) || scaled >= 2f64.powi(63) {
        return Err(MpcError::arg(format!(
            "{r} does not fit a fixed-point value with {f} fractional bits"
        )));
    }
    Ok(scaled as i64 as u64)
}

/// Decodes a fixed-point ring element with `f` fractional bits.
pub fn decode_fixed(x: u64, f: u32) -> f64 {
    x as i64 as f64 / (1u64 << f.min(62)) as f64
}

impl Session {
    /// ⌊x / c⌋ up to one unit (see the module docs), for a public divisor c ≥ 1.
    pub fn div_public(&mut self, x: &ArithShares, c: u64) -> Result<ArithShares> {
        if c == 0 {
            return Err(MpcError::arg("division by zero"));
        }
        if c == 1 {
            return Ok(x.clone());
        }
        if c >= 1 << 63 {
            return Err(MpcError::arg("divisor must be below 2^63"));
        }
        let me = self.me();
        let bias: u64 = if c.is_power_of_two() {
            1 << 63
        } else {
            ((1u128 << 62).div_ceil(c as u128) * c as u128) as u64
        };
        let xb = x.add_const(me, bias);
        let r = (me == 1).then(|| {
            xb.a.iter()
                .zip(&xb.b)
                .map(|(p, q)| p.wrapping_add(*q) / c)
                .collect::<Vec<u64>>()
        });
        let (splits, r_sh) = self.split_with_extra(
            &[(&xb, crate::circuits::SplitMode::Sum)],
            r.as_deref(),
            x.len(),
        )?;
        let w = self.wrap_of_splits(&[&splits[0]])?;
        let w =
            crate::share::BitShares::from_words(w.into_iter().next().unwrap_or_default(), x.len());
        let wa = self.bit2a(&w)?;
        let q = ArithShares {
            a: if me == 0 {
                xb.a.iter().map(|u| u / c).collect()
            } else {
                vec![0; x.len()]
            },
            b: if me == 2 {
                xb.b.iter().map(|u| u / c).collect()
            } else {
                vec![0; x.len()]
            },
        };
        let m = (u64::MAX / c) + u64::from(u64::MAX % c == c - 1);
        Ok(q.add(&r_sh)?
            .sub(&wa.mul_public(m))?
            .add_const(me, (bias / c).wrapping_neg()))
    }

    /// Arithmetic shift right by `d` bits: ⌊x / 2^d⌋ or one less, for every x (10 rounds).
    pub fn trunc(&mut self, x: &ArithShares, d: u32) -> Result<ArithShares> {
        if d == 0 {
            return Ok(x.clone());
        }
        if d > 62 {
            return Err(MpcError::arg(format!("truncation by {d} bits")));
        }
        self.div_public(x, 1u64 << d)
    }

    /// Probabilistic truncation by `d` bits in one round (see the module docs for the
    /// failure probability).
    pub fn trunc_prob(&mut self, x: &ArithShares, d: u32) -> Result<ArithShares> {
        if d == 0 {
            return Ok(x.clone());
        }
        if d > 62 {
            return Err(MpcError::arg(format!("truncation by {d} bits")));
        }
        let me = self.me();
        let n = x.len();
        let r = self.keys().common.gen(n);
        let tb = (me == 1).then(|| {
            x.a.iter()
                .zip(&x.b)
                .zip(&r)
                .map(|((p, q), r)| {
                    let v = p.wrapping_add(*q).wrapping_sub(*r);
                    (v.wrapping_neg() >> d).wrapping_neg()
                })
                .collect::<Vec<u64>>()
        });
        let t = self.input(1, tb.as_deref(), n)?;
        let ta = ArithShares {
            a: if me == 0 {
                x.a.iter()
                    .zip(&r)
                    .map(|(u, r)| u.wrapping_add(*r) >> d)
                    .collect()
            } else {
                vec![0; n]
            },
            b: if me == 2 {
                x.b.iter()
                    .zip(&r)
                    .map(|(u, r)| u.wrapping_add(*r) >> d)
                    .collect()
            } else {
                vec![0; n]
            },
        };
        ta.add(&t)
    }

    /// Fixed-point product: x · y truncated by `f` bits (1 + 10 rounds).
    pub fn mul_fixed(&mut self, x: &ArithShares, y: &ArithShares, f: u32) -> Result<ArithShares> {
        let p = self.mul(x, y)?;
        self.trunc(&p, f)
    }
}
