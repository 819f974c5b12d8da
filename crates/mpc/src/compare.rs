//! Comparisons: less-than (MSB of the difference), equality (AND-tree over XNOR bits),
//! and element-wise and whole-vector min/max.
//!
//! `lt(x, y)` is the sign bit of x − y, so it is correct when the true difference fits in
//! a signed 64-bit integer: |x − y| < 2^63 (e.g. both operands in [−2^62, 2^62)). Fixed-
//! point values with 16 fractional bits have 47 integer bits of room under that bound.
//! [`Session::lt_full`] is correct on all pairs of signed 64-bit values at three times the
//! communication. Cost of `lt`: 8 rounds; per 64 comparisons party 1 sends 64 words and
//! every party about 63 + 2·62 words (≈ 31 bytes per comparison).

use crate::circuits::SplitMode;
use crate::error::{MpcError, Result};
use crate::session::Session;
use crate::share::{check_len, ArithShares, BitShares, XorShares};

impl Session {
    /// Sign bits (bit 63) of several sharings in one batched circuit.
    pub fn msb_many(&mut self, xs: &[&ArithShares]) -> Result<Vec<BitShares>> {
        let req: Vec<(&ArithShares, SplitMode)> = xs.iter().map(|x| (*x, SplitMode::Sum)).collect();
        let splits = self.split(&req)?;
        let sr: Vec<_> = splits.iter().map(|s| (s, 0usize)).collect();
        let m = self.msb_of_splits(&sr)?;
        Ok(m.into_iter()
            .zip(xs)
            .map(|(w, x)| BitShares::from_words(w, x.len()))
            .collect())
    }

    /// Sign bit of each element (1 iff the element is negative as an i64).
    pub fn msb(&mut self, x: &ArithShares) -> Result<BitShares> {
        Ok(self.msb_many(&[x])?.pop().unwrap_or_default())
    }

    /// x < y (signed), valid when |x − y| < 2^63. 8 rounds.
    pub fn lt(&mut self, x: &ArithShares, y: &ArithShares) -> Result<BitShares> {
        self.msb(&x.sub(y)?)
    }

    /// x ≤ y, valid when |x − y| < 2^63.
    pub fn le(&mut self, x: &ArithShares, y: &ArithShares) -> Result<BitShares> {
        let me = self.me();
        Ok(self.lt(y, x)?.not(me))
    }

    /// x > y, valid when |x − y| < 2^63.
    pub fn gt(&mut self, x: &ArithShares, y: &ArithShares) -> Result<BitShares> {
        self.lt(y, x)
    }

    /// x ≥ y, valid when |x − y| < 2^63.
    pub fn ge(&mut self, x: &ArithShares, y: &ArithShares) -> Result<BitShares> {
        let me = self.me();
        Ok(self.lt(x, y)?.not(me))
    }

    /// x < c for a public constant c, valid when |x − c| < 2^63.
    pub fn lt_public(&mut self, x: &ArithShares, c: u64) -> Result<BitShares> {
        let me = self.me();
        self.msb(&x.add_const(me, c.wrapping_neg()))
    }

    /// x < y when the difference is known to satisfy |x − y| < 2^(bits−1): the circuit
    /// only spans the top `bits` positions (cheaper for small ranges such as indices).
    pub fn lt_narrow(&mut self, x: &ArithShares, y: &ArithShares, bits: u32) -> Result<BitShares> {
        if !(1..=64).contains(&bits) {
            return Err(MpcError::arg(format!("lt_narrow: {bits} bits")));
        }
        let shift = 64 - bits;
        let d = x.sub(y)?.mul_public(1u64 << shift);
        let splits = self.split(&[(&d, SplitMode::Sum)])?;
        let m = self.msb_of_splits(&[(&splits[0], shift as usize)])?;
        Ok(BitShares::from_words(
            m.into_iter().next().unwrap_or_default(),
            x.len(),
        ))
    }

    /// x < y for ALL signed 64-bit x, y: sign of x − y corrected for overflow, using the
    /// sign bits of x, y and x − y (one batched circuit, then one AND round).
    pub fn lt_full(&mut self, x: &ArithShares, y: &ArithShares) -> Result<BitShares> {
        let d = x.sub(y)?;
        let m = self.msb_many(&[x, y, &d])?;
        let (sx, sy, sd) = (&m[0], &m[1], &m[2]);
        // overflow = (sx ⊕ sy) ∧ (sx ⊕ sd)
        let ov = self.and_bits(&sx.xor(sy)?, &sx.xor(sd)?)?;
        sd.xor(&ov)
    }

    /// x = y element-wise (exact for all inputs; 7 rounds).
    pub fn eq(&mut self, x: &ArithShares, y: &ArithShares) -> Result<BitShares> {
        self.eq_zero(&x.sub(y)?)
    }

    /// x = 0 element-wise: with u = x_0 and v = −(x_1 + x_2), x = 0 iff u = v, i.e. iff
    /// all 64 bits of ¬(u ⊕ v) are one.
    pub fn eq_zero(&mut self, x: &ArithShares) -> Result<BitShares> {
        let me = self.me();
        let splits = self.split(&[(x, SplitMode::Negated)])?;
        let s = &splits[0];
        let mut planes: Vec<XorShares> = Vec::with_capacity(64);
        for (u, v) in s.u.iter().zip(&s.v) {
            planes.push(u.xor(v)?.xor_const(me, u64::MAX));
        }
        let r = self.and_all_planes(vec![planes])?;
        Ok(BitShares::from_words(
            r.into_iter().next().unwrap_or_default(),
            x.len(),
        ))
    }

    /// Element-wise minimum (lt + mux: 10 rounds). Same range condition as `lt`.
    pub fn min_pairwise(&mut self, x: &ArithShares, y: &ArithShares) -> Result<ArithShares> {
        check_len("min", x.len(), y.len())?;
        let c = self.lt(x, y)?;
        self.mux(&c, x, y)
    }

    /// Element-wise maximum.
    pub fn max_pairwise(&mut self, x: &ArithShares, y: &ArithShares) -> Result<ArithShares> {
        check_len("max", x.len(), y.len())?;
        let c = self.lt(x, y)?;
        self.mux(&c, y, x)
    }

    /// Minimum of a vector (a tree: ⌈log2 n⌉ levels, each one batched lt + mux).
    /// Fails on an empty vector.
    pub fn min_of(&mut self, x: &ArithShares) -> Result<ArithShares> {
        self.reduce(x, true)
    }

    /// Maximum of a vector. Fails on an empty vector.
    pub fn max_of(&mut self, x: &ArithShares) -> Result<ArithShares> {
        self.reduce(x, false)
    }

    fn reduce(&mut self, x: &ArithShares, min: bool) -> Result<ArithShares> {
        if x.is_empty() {
            return Err(MpcError::arg("min/max of an empty vector"));
        }
        let mut cur = x.clone();
        while cur.len() > 1 {
            let h = cur.len() / 2;
            let left = cur.slice(0..h)?;
            let right = cur.slice(h..2 * h)?;
            let best = if min {
                self.min_pairwise(&left, &right)?
            } else {
                self.max_pairwise(&left, &right)?
            };
            cur = if cur.len() % 2 == 1 {
                ArithShares::concat(&[&best, &cur.slice(2 * h..cur.len())?])
            } else {
                best
            };
        }
        Ok(cur)
    }
}
