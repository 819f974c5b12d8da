//! Division of two secret fixed-point values (`Session::div_fixed`), exact: the quotient
//! of |x|·2^f by |y| is computed bit by bit by restoring long division on XOR-shared
//! bit-planes, then signed.
//!
//! 1. Signs and magnitudes: s_x, s_y by one batched MSB; |x|, |y| by one mux; [y = 0].
//! 2. A2B of |x| and −|y| (one adder).
//! 3. For k = 63 + f − 1 down to 0: R ← 2R + bit k of |x|·2^f (local: the planes shift),
//!    D = R − |y| by the parallel-prefix adder, q_k = [D ≥ 0] (its sign plane), and
//!    R ← q_k ? D : R (one AND per plane). R < |y| < 2^62 throughout, so nothing wraps and
//!    the sign of D is the comparison. 8 rounds per bit.
//! 4. The quotient bits 0..63 are converted back (B2A); any bit at or above 62 means the
//!    quotient does not fit, and is reported as a secret `overflow` bit.
//! 5. The sign s_x ⊕ s_y is applied (one mux): the quotient is truncated toward zero, as
//!    SQL's integer division is.
//!
//! Leakage: sizes only. Cost: (63 + f)·8 + about 40 rounds; about 550 AND words per 64
//! elements per quotient bit.

use crate::boolean::{planes_of, unplanes};
use crate::error::{MpcError, Result};
use crate::session::Session;
use crate::share::{ArithShares, BitShares, XorShares};

/// The result of [`Session::div_fixed`].
#[derive(Clone, Debug, Default)]
pub struct Quotient {
    /// x/y in fixed point with f fractional bits, truncated toward zero (0 where y = 0 or
    /// where it overflows).
    pub value: ArithShares,
    /// [y = 0].
    pub by_zero: BitShares,
    /// [|x|·2^f / |y| ≥ 2^62]: the quotient does not fit.
    pub overflow: BitShares,
}

pub(crate) fn zero_plane(words: usize) -> XorShares {
    XorShares {
        a: vec![0; words],
        b: vec![0; words],
    }
}

/// Arithmetic shift right of one XOR-shared word: linear, because the sign copies are
/// the XOR of the components' own sign bits.
fn ashr_component(w: u64, d: u32) -> u64 {
    ((w as i64) >> d) as u64
}

impl Session {
    /// One step of restoring division or square root on 64 bit-planes: D = R + `neg`
    /// (R minus the subtrahend), and R ← D where D ≥ 0 (one AND per plane). Returns the
    /// plane of [D ≥ 0]; needs |R − subtrahend| < 2^63. 8 rounds.
    pub(crate) fn restoring_step(
        &mut self,
        rem: &mut [XorShares],
        neg: &[XorShares],
    ) -> Result<XorShares> {
        let me = self.me();
        let d = self.add_planes(&[(rem, neg)])?.pop().unwrap_or_default();
        let ge = d[63].xor_const(me, u64::MAX);
        // R ← R ⊕ (ge ∧ (D ⊕ R)).
        let diffs: Vec<XorShares> = d
            .iter()
            .zip(rem.iter())
            .map(|(dp, rp)| dp.xor(rp))
            .collect::<Result<_>>()?;
        let gates: Vec<&XorShares> = (0..64).map(|_| &ge).collect();
        let diff_refs: Vec<&XorShares> = diffs.iter().collect();
        let picked = self.and_pairs(&gates, &diff_refs)?;
        for (rp, p) in rem.iter_mut().zip(picked) {
            *rp = rp.xor(&p)?;
        }
        Ok(ge)
    }

    /// ⌊x / 2^d⌋ exactly for every x (A2B, a local shift, B2A: about 17 rounds), where
    /// `trunc` may be one less.
    pub fn shr_exact(&mut self, x: &ArithShares, d: u32) -> Result<ArithShares> {
        if d > 63 {
            return Err(MpcError::arg(format!("shift by {d} bits")));
        }
        if x.is_empty() || d == 0 {
            return Ok(x.clone());
        }
        let w = self.a2b(x)?;
        let shifted = XorShares {
            a: w.a.iter().map(|&c| ashr_component(c, d)).collect(),
            b: w.b.iter().map(|&c| ashr_component(c, d)).collect(),
        };
        self.b2a(&shifted)
    }

    /// x / y for fixed-point x and y with `f` fractional bits each (|x|, |y| < 2^62).
    pub fn div_fixed(&mut self, x: &ArithShares, y: &ArithShares, f: u32) -> Result<Quotient> {
        let n = x.len();
        if y.len() != n {
            return Err(MpcError::arg(format!(
                "div_fixed: {n} numerators, {} divisors",
                y.len()
            )));
        }
        if f > 32 {
            return Err(MpcError::arg(format!("div_fixed: {f} fractional bits")));
        }
        if n == 0 {
            return Ok(Quotient::default());
        }
        let me = self.me();
        let signs = self.msb_many(&[x, y])?;
        let (sx, sy) = (&signs[0], &signs[1]);
        let both = BitShares::concat(&[sx, sy]);
        let xy = ArithShares::concat(&[x, y]);
        let abs = self.mux(&both, &xy.neg(), &xy)?;
        let ax = abs.slice(0..n)?;
        let ay = abs.slice(n..2 * n)?;
        let by_zero = self.eq_zero(y)?;
        // −|y|, so that R − |y| is one addition.
        let words = self.a2b(&ArithShares::concat(&[&ax, &ay.neg()]))?;
        let xw = XorShares {
            a: words.a[..n].to_vec(),
            b: words.b[..n].to_vec(),
        };
        let yw = XorShares {
            a: words.a[n..].to_vec(),
            b: words.b[n..].to_vec(),
        };
        let x_planes = planes_of(&xw.a, &xw.b);
        let neg_y = planes_of(&yw.a, &yw.b);
        let nb = n.div_ceil(64);
        let bits = 63 + f as usize;
        let mut rem: Vec<XorShares> = (0..64).map(|_| zero_plane(nb)).collect();
        let mut q: Vec<XorShares> = vec![zero_plane(nb); bits];
        for k in (0..bits).rev() {
            // R ← 2R + bit k of |x|·2^f (bit k − f of |x|).
            rem.pop();
            let next = if k >= f as usize {
                x_planes[k - f as usize].clone()
            } else {
                zero_plane(nb)
            };
            rem.insert(0, next);
            q[k] = self.restoring_step(&mut rem, &neg_y)?;
        }
        // Overflow: any quotient bit at 62 or above.
        let high: Vec<XorShares> = q[62..].iter().map(|p| p.xor_const(me, u64::MAX)).collect();
        let none_high = self.and_all_planes(vec![high])?.pop().unwrap_or_default();
        let overflow = BitShares::from_words(none_high.xor_const(me, u64::MAX), n);
        let mut low: Vec<XorShares> = q[..62].to_vec();
        low.push(zero_plane(nb));
        low.push(zero_plane(nb));
        let magnitude = self.b2a(&unplanes(&low, n))?;
        // Zero where the divisor is 0 or the quotient overflowed: no garbage escapes.
        let bad = self.or_bits(&by_zero, &overflow)?;
        let sign = sx.xor(sy)?;
        let signed = self.mux(&sign, &magnitude.neg(), &magnitude)?;
        let value = self.mux(&bad, &ArithShares::zeros(n), &signed)?;
        Ok(Quotient {
            value,
            by_zero,
            overflow,
        })
    }
}
