//! Secret × secret multiplication and dot products (one round each).
//!
//! Party i computes its 3-out-of-3 component z_i = x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i
//! (the nine cross terms are covered exactly once across the parties), adds a zero-sharing
//! α_i and sends z_i to party i−1: one ring element per product per party. A dot product
//! sums the cross terms before resharing, so it costs one element per output, whatever
//! the vector length. The same code, with AND and XOR, is the boolean AND.

use crate::error::Result;
use crate::session::{Ring, Session};
use crate::share::{check_len, ArithShares};

/// A borrowed pair of share components (a, b).
pub(crate) type Pair<'a> = (&'a [u64], &'a [u64]);

#[inline]
pub(crate) fn local_products(ring: Ring, x: Pair, y: Pair, out: &mut [u64]) {
    let (xa, xb) = x;
    let (ya, yb) = y;
    match ring {
        Ring::Add => {
            for i in 0..out.len() {
                out[i] = xa[i]
                    .wrapping_mul(ya[i].wrapping_add(yb[i]))
                    .wrapping_add(xb[i].wrapping_mul(ya[i]));
            }
        }
        Ring::Xor => {
            for i in 0..out.len() {
                out[i] = (xa[i] & (ya[i] ^ yb[i])) ^ (xb[i] & ya[i]);
            }
        }
    }
}

impl Session {
    /// Element-wise products of many pairs of equal-length vectors in ONE round.
    pub(crate) fn products(
        &mut self,
        ring: Ring,
        xs: &[Pair],
        ys: &[Pair],
    ) -> Result<Vec<(Vec<u64>, Vec<u64>)>> {
        check_len("products: operand count", xs.len(), ys.len())?;
        let mut total = 0;
        for (x, y) in xs.iter().zip(ys) {
            check_len("products: a/b", x.0.len(), x.1.len())?;
            check_len("products: a/b", y.0.len(), y.1.len())?;
            check_len("products", x.0.len(), y.0.len())?;
            total += x.0.len();
        }
        let mut z = vec![0u64; total];
        let mut off = 0;
        for (x, y) in xs.iter().zip(ys) {
            let n = x.0.len();
            local_products(ring, *x, *y, &mut z[off..off + n]);
            off += n;
        }
        let (za, zb) = self.reshare(ring, z)?;
        let mut out = Vec::with_capacity(xs.len());
        let mut off = 0;
        for x in xs {
            let n = x.0.len();
            out.push((za[off..off + n].to_vec(), zb[off..off + n].to_vec()));
            off += n;
        }
        Ok(out)
    }

    /// x · y element-wise (one round, one word per element sent).
    pub fn mul(&mut self, x: &ArithShares, y: &ArithShares) -> Result<ArithShares> {
        check_len("mul", x.len(), y.len())?;
        check_len("mul", x.a.len(), x.b.len())?;
        check_len("mul", y.a.len(), y.b.len())?;
        let (a, b) = self.reshare_with(Ring::Add, x.len(), |o, out| {
            let e = o + out.len();
            local_products(
                Ring::Add,
                (&x.a[o..e], &x.b[o..e]),
                (&y.a[o..e], &y.b[o..e]),
                out,
            )
        })?;
        Ok(ArithShares { a, b })
    }

    /// Many element-wise products in one round.
    pub fn mul_many(&mut self, pairs: &[(&ArithShares, &ArithShares)]) -> Result<Vec<ArithShares>> {
        let xs: Vec<Pair> = pairs.iter().map(|(x, _)| (&x.a[..], &x.b[..])).collect();
        let ys: Vec<Pair> = pairs.iter().map(|(_, y)| (&y.a[..], &y.b[..])).collect();
        Ok(self
            .products(Ring::Add, &xs, &ys)?
            .into_iter()
            .map(|(a, b)| ArithShares { a, b })
            .collect())
    }

    /// Σ x_e · y_e as a one-element sharing (one round, one word sent).
    pub fn dot(&mut self, x: &ArithShares, y: &ArithShares) -> Result<ArithShares> {
        self.dot_many(&[(x, y)])
    }

    /// Several dot products at once: one output element per pair, one round.
    pub fn dot_many(&mut self, pairs: &[(&ArithShares, &ArithShares)]) -> Result<ArithShares> {
        let mut z = Vec::with_capacity(pairs.len());
        for (x, y) in pairs {
            check_len("dot", x.len(), y.len())?;
            check_len("dot", x.a.len(), x.b.len())?;
            check_len("dot", y.a.len(), y.b.len())?;
            let mut s = 0u64;
            for i in 0..x.len() {
                s = s
                    .wrapping_add(x.a[i].wrapping_mul(y.a[i].wrapping_add(y.b[i])))
                    .wrapping_add(x.b[i].wrapping_mul(y.a[i]));
            }
            z.push(s);
        }
        let (a, b) = self.reshare(Ring::Add, z)?;
        Ok(ArithShares { a, b })
    }
}
