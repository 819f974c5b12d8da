//! Aggregates over shared columns: sum, count under a shared 0/1 mask, mean, variance,
//! min, max, and the threshold test `count ≥ k` used for small-group suppression.
//!
//! Masks are additive sharings of 0/1 (1 = row selected). Mean and variance divide by
//! the count, which is REVEALED to the three compute parties (listed in the leakage table
//! of docs/MPC.md); the division is [`Session::div_public`] (error at most one unit in
//! the last place). Values for min/max must lie in [−2^62, 2^62) so that comparisons and
//! the sentinels used for masked-out rows stay in range.

use crate::error::{MpcError, Result};
use crate::session::Session;
use crate::share::{check_len, ArithShares, BitShares};

/// Sentinel for "no value" in masked min/max (outside the documented value range).
pub const SENTINEL: u64 = (1u64 << 62) - 1;

/// Result of [`Session::mean`] and [`Session::variance`].
#[derive(Clone, Debug)]
pub struct Moments {
    /// Number of selected rows (revealed).
    pub count: u64,
    /// Mean, fixed-point with the values' scale (zero when `count` is zero).
    pub mean: ArithShares,
    /// Population variance, same scale (only filled by `variance`).
    pub variance: Option<ArithShares>,
}

impl Session {
    /// Σ x (local, free).
    pub fn sum(&self, x: &ArithShares) -> ArithShares {
        x.sum()
    }

    /// Number of selected rows: Σ mask (local).
    pub fn count(&self, mask: &ArithShares) -> ArithShares {
        mask.sum()
    }

    /// Σ x·mask (one round, one word).
    pub fn masked_sum(&mut self, x: &ArithShares, mask: &ArithShares) -> Result<ArithShares> {
        self.dot(x, mask)
    }

    fn sum_and_count(
        &mut self,
        x: &ArithShares,
        mask: Option<&ArithShares>,
    ) -> Result<(ArithShares, u64)> {
        match mask {
            None => Ok((x.sum(), x.len() as u64)),
            Some(m) => {
                check_len("mask", x.len(), m.len())?;
                let s = self.dot(x, m)?;
                let c = self.reveal_all(&m.sum())?;
                Ok((s, c.first().copied().unwrap_or(0)))
            }
        }
    }

    /// Mean of fixed-point values over the selected rows; the count is revealed to the
    /// compute parties.
    pub fn mean(&mut self, x: &ArithShares, mask: Option<&ArithShares>) -> Result<Moments> {
        let (s, count) = self.sum_and_count(x, mask)?;
        let mean = self.divide_by_count(&s, count)?;
        Ok(Moments {
            count,
            mean,
            variance: None,
        })
    }

    fn divide_by_count(&mut self, s: &ArithShares, count: u64) -> Result<ArithShares> {
        match count {
            0 => Ok(ArithShares::zeros(1)),
            c if c >= 1 << 63 => Err(MpcError::arg("count too large")),
            c => self.div_public(s, c),
        }
    }

    /// Mean and population variance Σ(x − mean)²/count of fixed-point values with `f`
    /// fractional bits. On selected rows, deviations must satisfy |x − mean| < 2^((63−f)/2)
    /// in real units (≈ 1.2·10^7 for f = 16) and the sum of squares must stay below
    /// 2^(63−f); masked-out rows may hold anything. Each selected row's square is rounded
    /// down by less than two units and the division by the count adds at most two more, so
    /// the result is within four units in the last place.
    pub fn variance(
        &mut self,
        x: &ArithShares,
        mask: Option<&ArithShares>,
        f: u32,
    ) -> Result<Moments> {
        let mut m = self.mean(x, mask)?;
        let n = x.len();
        let mean_col = ArithShares {
            a: vec![m.mean.a.first().copied().unwrap_or(0); n],
            b: vec![m.mean.b.first().copied().unwrap_or(0); n],
        };
        let d = x.sub(&mean_col)?;
        let sq = self.square_fixed_wide(&d, f)?;
        // The mask is applied after squaring so that only selected rows carry truncation
        // error (masked-out rows become exactly zero) and their values need not be in range.
        let sum_sq = match mask {
            Some(mask) => self.dot(&sq, mask)?,
            None => sq.sum(),
        };
        let v = self.divide_by_count(&sum_sq, m.count)?;
        m.variance = Some(v);
        Ok(m)
    }

    /// d²/2^f without the 2^(63−2f) limit of a plain fixed-point product: split
    /// d = hi·2^h + lo with hi = trunc(d, h), lo ∈ [0, 2^(h+1)), h = ⌈f/2⌉; then
    /// d²/2^f = hi²·2^(2h−f) + (2^(h+1)·hi·lo + lo²)/2^f, where only the small second term
    /// is truncated (error at most one unit).
    fn square_fixed_wide(&mut self, d: &ArithShares, f: u32) -> Result<ArithShares> {
        let h = f.div_ceil(2);
        if h == 0 {
            return self.mul(d, d);
        }
        let hi = self.trunc(d, h)?;
        let lo = d.sub(&hi.mul_public(1u64 << h))?;
        let p = self.mul_many(&[(&hi, &hi), (&hi, &lo), (&lo, &lo)])?;
        let small = p[1].mul_public(1u64 << (h + 1)).add(&p[2])?;
        let small = self.trunc(&small, f)?;
        p[0].mul_public(1u64 << (2 * h - f)).add(&small)
    }

    fn masked_extreme(
        &mut self,
        x: &ArithShares,
        mask: Option<&ArithShares>,
        min: bool,
    ) -> Result<ArithShares> {
        let me = self.me();
        let v = match mask {
            None => x.clone(),
            Some(m) => {
                check_len("mask", x.len(), m.len())?;
                // v = s + mask·(x − s), with s = +sentinel for min, −sentinel for max.
                let s = if min {
                    SENTINEL
                } else {
                    SENTINEL.wrapping_neg()
                };
                let d = x.add_const(me, s.wrapping_neg());
                self.mul(&d, m)?.add_const(me, s)
            }
        };
        if v.is_empty() {
            return Err(MpcError::arg("min/max of an empty column"));
        }
        if min {
            self.min_of(&v)
        } else {
            self.max_of(&v)
        }
    }

    /// Minimum over the selected rows (the sentinel 2^62 − 1 if none is selected).
    pub fn min_masked(
        &mut self,
        x: &ArithShares,
        mask: Option<&ArithShares>,
    ) -> Result<ArithShares> {
        self.masked_extreme(x, mask, true)
    }

    /// Maximum over the selected rows (−(2^62 − 1) if none is selected).
    pub fn max_masked(
        &mut self,
        x: &ArithShares,
        mask: Option<&ArithShares>,
    ) -> Result<ArithShares> {
        self.masked_extreme(x, mask, false)
    }

    /// Secret bit [count ≥ k] for threshold suppression (8 rounds); `count` must be a
    /// one-or-more-element sharing of counts below 2^62.
    pub fn count_at_least(&mut self, count: &ArithShares, k: u64) -> Result<BitShares> {
        let me = self.me();
        Ok(self.lt_public(count, k)?.not(me))
    }
}
