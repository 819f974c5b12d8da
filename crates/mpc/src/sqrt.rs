//! Square root of a secret fixed-point value (`Session::sqrt_fixed`), exact: the digit-by-
//! digit (restoring) method on XOR-shared bit-planes, two bits of the radicand per step.
//!
//! For N = x·2^f (x ≥ 0, < 2^62), the result Q = ⌊√N⌋ is x's square root in fixed point
//! with f fractional bits. Step k (from the top pair of bits down) keeps a remainder R and
//! the root so far Q: R ← 4R + the next two bits of N; T = 4Q + 1; if R ≥ T then R ← R − T
//! and Q ← 2Q + 1, else Q ← 2Q. Since T's lowest bit is 1, −T = ¬(4Q): the subtraction is
//! one addition with locally shifted, negated planes of Q, and [R ≥ T] is the sign plane.
//! R < 2T < 2^42, so nothing wraps. 8 rounds per step, ⌈(62 + f)/2⌉ steps.
//!
//! A negative x gives 0 (it is outside the function's domain; callers flag it). Leakage:
//! sizes only.

use crate::boolean::{planes_of, unplanes};
use crate::divide::zero_plane;
use crate::error::{MpcError, Result};
use crate::session::Session;
use crate::share::{ArithShares, XorShares};

impl Session {
    /// √x for fixed-point x ≥ 0 with `f` fractional bits (|x| < 2^62), truncated to f
    /// fractional bits; 0 for a negative x.
    pub fn sqrt_fixed(&mut self, x: &ArithShares, f: u32) -> Result<ArithShares> {
        let n = x.len();
        if f > 32 || f % 2 != 0 {
            return Err(MpcError::arg(format!(
                "sqrt_fixed: {f} fractional bits (an even number up to 32)"
            )));
        }
        if n == 0 {
            return Ok(ArithShares::default());
        }
        let me = self.me();
        let negative = self.msb(x)?;
        let x = self.mux(&negative, &ArithShares::zeros(n), x)?;
        let w = self.a2b(&x)?;
        let x_planes = planes_of(&w.a, &w.b);
        let nb = n.div_ceil(64);
        // N = x·2^f has 62 + f significant bits; pairs from the top.
        let bits = 62 + f as usize;
        let steps = bits.div_ceil(2);
        let n_bit = |k: usize| -> XorShares {
            if k >= f as usize && k - (f as usize) < 64 {
                x_planes[k - f as usize].clone()
            } else {
                zero_plane(nb)
            }
        };
        let mut rem: Vec<XorShares> = (0..64).map(|_| zero_plane(nb)).collect();
        // Root bits, most significant first as they are found.
        let mut root: Vec<XorShares> = Vec::with_capacity(steps);
        for step in (0..steps).rev() {
            // R ← 4R + bits (2·step + 1, 2·step) of N.
            rem.truncate(62);
            rem.insert(0, n_bit(2 * step));
            rem.insert(1, n_bit(2 * step + 1));
            // −T = ¬(4Q): plane j of 4Q is Q's plane j − 2 (Q's planes: root reversed).
            let neg_t: Vec<XorShares> = (0..64usize)
                .map(|j| {
                    let q = j
                        .checked_sub(2)
                        .and_then(|i| root.len().checked_sub(1 + i).map(|r| root[r].clone()))
                        .unwrap_or_else(|| zero_plane(nb));
                    q.xor_const(me, u64::MAX)
                })
                .collect();
            let ge = self.restoring_step(&mut rem, &neg_t)?;
            root.push(ge);
        }
        // Q's plane i is the root bit found i steps before the end.
        let mut planes: Vec<XorShares> = root.iter().rev().cloned().collect();
        planes.resize_with(64, || zero_plane(nb));
        self.b2a(&unplanes(&planes, n))
    }
}
