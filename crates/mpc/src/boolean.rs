//! Boolean sharing: XOR (free) and AND (one round, one word per 64 ANDs), and the 64×64
//! bit transpose that turns 64 values into 64 bit-planes ("bit-slicing across elements")
//! so that circuits over bit positions cost one word per 64 elements per gate.

use crate::arith::Pair;
use crate::error::Result;
use crate::session::{Ring, Session};
use crate::share::{check_len, BitShares, XorShares};

impl Session {
    /// Many bitwise ANDs of equal-length word vectors in one round.
    pub(crate) fn and_pairs(
        &mut self,
        xs: &[&XorShares],
        ys: &[&XorShares],
    ) -> Result<Vec<XorShares>> {
        let xp: Vec<Pair> = xs.iter().map(|x| (&x.a[..], &x.b[..])).collect();
        let yp: Vec<Pair> = ys.iter().map(|y| (&y.a[..], &y.b[..])).collect();
        Ok(self
            .products(Ring::Xor, &xp, &yp)?
            .into_iter()
            .map(|(a, b)| XorShares { a, b })
            .collect())
    }

    /// x & y on XOR-shared words (64 ANDs per word; one round).
    pub fn and_xor(&mut self, x: &XorShares, y: &XorShares) -> Result<XorShares> {
        check_len("and", x.len(), y.len())?;
        let mut r = self.and_pairs(&[x], &[y])?;
        Ok(r.pop().unwrap_or_default())
    }

    /// x ∧ y on secret bits (one round, one word per 64 bits).
    pub fn and_bits(&mut self, x: &BitShares, y: &BitShares) -> Result<BitShares> {
        check_len("and_bits", x.len(), y.len())?;
        let w = self.and_xor(&x.words(), &y.words())?;
        Ok(BitShares::from_words(w, x.len()))
    }

    /// x ∨ y = x ⊕ y ⊕ (x ∧ y) (one round).
    pub fn or_bits(&mut self, x: &BitShares, y: &BitShares) -> Result<BitShares> {
        let a = self.and_bits(x, y)?;
        x.xor(y)?.xor(&a)
    }
}

/// In-place transpose of a 64×64 bit matrix: afterwards bit c of `m[r]` is what bit r of
/// `m[c]` was. It is its own inverse.
pub fn transpose64(m: &mut [u64; 64]) {
    let mut j = 32;
    let mut mask: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((m[k] >> j) ^ m[k | j]) & mask;
            m[k] ^= t << j;
            m[k | j] ^= t;
            k = ((k | j) + 1) & !j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Bit-planes of `v`: `planes[j][w]` has bit e set iff bit j of `v[64w + e]` is set.
pub fn to_planes(v: &[u64]) -> Vec<Vec<u64>> {
    let nb = v.len().div_ceil(64);
    let mut planes = vec![vec![0u64; nb]; 64];
    let mut buf = [0u64; 64];
    for (w, chunk) in v.chunks(64).enumerate() {
        buf[..chunk.len()].copy_from_slice(chunk);
        buf[chunk.len()..].iter_mut().for_each(|x| *x = 0);
        transpose64(&mut buf);
        for (j, p) in planes.iter_mut().enumerate() {
            p[w] = buf[j];
        }
    }
    planes
}

/// Inverse of [`to_planes`] for `n` values.
pub fn from_planes(planes: &[Vec<u64>], n: usize) -> Vec<u64> {
    let mut out = vec![0u64; n];
    let mut buf = [0u64; 64];
    for (w, chunk) in out.chunks_mut(64).enumerate() {
        for (j, p) in planes.iter().enumerate().take(64) {
            buf[j] = p.get(w).copied().unwrap_or(0);
        }
        transpose64(&mut buf);
        chunk.copy_from_slice(&buf[..chunk.len()]);
    }
    out
}

/// Both components of a share vector turned into bit-planes (local, linear).
pub(crate) fn planes_of(a: &[u64], b: &[u64]) -> Vec<XorShares> {
    to_planes(a)
        .into_iter()
        .zip(to_planes(b))
        .map(|(a, b)| XorShares { a, b })
        .collect()
}

/// Bit-plane shares back to per-element words (local, linear).
pub(crate) fn unplanes(planes: &[XorShares], n: usize) -> XorShares {
    let a: Vec<Vec<u64>> = planes.iter().map(|p| p.a.clone()).collect();
    let b: Vec<Vec<u64>> = planes.iter().map(|p| p.b.clone()).collect();
    XorShares {
        a: from_planes(&a, n),
        b: from_planes(&b, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_naive_and_is_involution() {
        let mut m = [0u64; 64];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for r in m.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *r = x;
        }
        let orig = m;
        transpose64(&mut m);
        for (r, row) in m.iter().enumerate() {
            for (c, orig_row) in orig.iter().enumerate() {
                assert_eq!((row >> c) & 1, (orig_row >> r) & 1);
            }
        }
        transpose64(&mut m);
        assert_eq!(m, orig);
    }

    #[test]
    fn planes_round_trip() {
        let v: Vec<u64> = (0..130u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let p = to_planes(&v);
        assert_eq!(p.len(), 64);
        assert_eq!(p[0].len(), 3);
        for (e, val) in v.iter().enumerate() {
            for (j, plane) in p.iter().enumerate() {
                assert_eq!((plane[e / 64] >> (e % 64)) & 1, (val >> j) & 1);
            }
        }
        assert_eq!(from_planes(&p, v.len()), v);
    }
}
