//! Conversions between sharings: A2B (parallel-prefix adder), B2A, bit → arithmetic,
//! bit injection (secret bit × secret value) and select (mux).
//!
//! **Bit to arithmetic / injection** (2 rounds). For a shared bit c = c_0 ⊕ c_1 ⊕ c_2,
//! party 0 knows t = c_0 ⊕ c_1 and parties 1 and 2 both know c_2. Then
//! c·v = c_2·v + t·(v − 2·c_2·v). Round 1: party 0 inputs t while the parties reshare the
//! locally computable c_2·v; round 2: one multiplication.
//!
//! **B2A** (ABY3 style): parties 0,1 draw y_1 and parties 1,2 draw y_2 from shared keys;
//! party 1 inputs −y_1 − y_2 as a boolean sharing; a boolean adder computes
//! y_0 = x − y_1 − y_2, which is revealed to parties 0 and 2 only.

use crate::boolean::{planes_of, unplanes};
use crate::circuits::SplitMode;
use crate::error::Result;
use crate::session::{Ring, Session};
use crate::share::{check_len, ArithShares, BitShares, XorShares};
use crate::transport::put_u64s;

impl Session {
    /// A2B: 64-bit values, XOR-shared per bit (1 + 7 rounds).
    pub fn a2b(&mut self, x: &ArithShares) -> Result<XorShares> {
        let split = self.split(&[(x, SplitMode::Sum)])?;
        let s = &split[0];
        let sum = self.add_planes(&[(&s.u, &s.v)])?;
        Ok(unplanes(&sum[0], x.len()))
    }

    /// B2A: XOR-shared 64-bit values to additive shares (9 rounds).
    pub fn b2a(&mut self, x: &XorShares) -> Result<ArithShares> {
        check_len("b2a", x.a.len(), x.b.len())?;
        let n = x.len();
        let me = self.me();
        let (y1, y2) = match me {
            0 => (self.keys().next.gen(n), Vec::new()),
            1 => {
                let y1 = self.keys().prev.gen(n);
                (y1, self.keys().next.gen(n))
            }
            _ => (Vec::new(), self.keys().prev.gen(n)),
        };
        // Party 1 inputs w = −y1 − y2 as bit-planes.
        let total = 64 * n.div_ceil(64);
        let w_planes = if me == 1 {
            let w: Vec<u64> = y1
                .iter()
                .zip(&y2)
                .map(|(a, b)| a.wrapping_add(*b).wrapping_neg())
                .collect();
            Some(crate::boolean::to_planes(&w).concat())
        } else {
            None
        };
        let (wa, wb) = self.input_local(1, w_planes.as_deref(), total, total)?;
        let nb = n.div_ceil(64);
        let wp: Vec<XorShares> = (0..64)
            .map(|j| XorShares {
                a: wa[j * nb..(j + 1) * nb].to_vec(),
                b: wb[j * nb..(j + 1) * nb].to_vec(),
            })
            .collect();
        let xp = planes_of(&x.a, &x.b);
        let sum = self.add_planes(&[(&xp, &wp)])?;
        let y0 = unplanes(&sum[0], n);
        let y0 = self.reveal_words(Ring::Xor, &y0.a, &y0.b, &[0, 2])?;
        Ok(match me {
            0 => ArithShares {
                a: y0.unwrap_or_default(),
                b: y1,
            },
            1 => ArithShares { a: y1, b: y2 },
            _ => ArithShares {
                a: y2,
                b: y0.unwrap_or_default(),
            },
        })
    }

    /// Secret bits to additive shares of 0/1 (2 rounds).
    pub fn bit2a(&mut self, bits: &BitShares) -> Result<ArithShares> {
        self.inject_inner(bits, None)
    }

    /// Bit injection: c_e · v_e for secret bits c and secret values v (2 rounds).
    pub fn inject(&mut self, bits: &BitShares, v: &ArithShares) -> Result<ArithShares> {
        check_len("inject", bits.len(), v.len())?;
        self.inject_inner(bits, Some(v))
    }

    /// Select: `c ? x : y` element-wise (2 rounds).
    pub fn mux(&mut self, c: &BitShares, x: &ArithShares, y: &ArithShares) -> Result<ArithShares> {
        let d = x.sub(y)?;
        let cd = self.inject(c, &d)?;
        cd.add(y)
    }

    fn inject_inner(&mut self, bits: &BitShares, v: Option<&ArithShares>) -> Result<ArithShares> {
        let n = bits.len();
        let me = self.me();
        let bit = |w: &[u64], i: usize| (w[i / 64] >> (i % 64)) & 1;
        // t = c_0 ⊕ c_1 at party 0; c_2 at parties 1 (as b) and 2 (as a).
        let t: Option<Vec<u64>> =
            (me == 0).then(|| (0..n).map(|i| bit(&bits.a, i) ^ bit(&bits.b, i)).collect());
        let c2: Vec<u64> = match me {
            1 => (0..n).map(|i| bit(&bits.b, i)).collect(),
            2 => (0..n).map(|i| bit(&bits.a, i)).collect(),
            _ => vec![0; n],
        };
        let crate::session::InputParts {
            send,
            a: mut ta,
            b: tb,
            receiver,
        } = self.input_parts(0, t.as_deref(), n, 0)?;
        let mut sends: Vec<(usize, Vec<u8>)> = send.into_iter().collect();
        let mut from = Vec::new();
        if receiver {
            from.push(0);
        }
        // [c_2 · v]: trivial when v is the constant 1, else a local 3-out-of-3 + reshare.
        let c2v = match v {
            None => {
                let z = vec![0; n];
                match me {
                    1 => ArithShares {
                        a: z,
                        b: c2.clone(),
                    },
                    2 => ArithShares {
                        a: c2.clone(),
                        b: z,
                    },
                    _ => ArithShares { a: z.clone(), b: z },
                }
            }
            Some(v) => {
                let mut z: Vec<u64> = match me {
                    1 => (0..n)
                        .map(|i| c2[i].wrapping_mul(v.a[i].wrapping_add(v.b[i])))
                        .collect(),
                    2 => (0..n).map(|i| c2[i].wrapping_mul(v.b[i])).collect(),
                    _ => vec![0; n],
                };
                self.add_zero(Ring::Add, &mut z);
                let mut m = Vec::with_capacity(n * 8 + 1);
                put_u64s(&mut m, &z);
                sends.push((self.prev(), m));
                from.push(self.next());
                ArithShares {
                    a: z,
                    b: Vec::new(),
                }
            }
        };
        let r = self.round(sends, &from)?;
        let mut k = 0;
        if receiver {
            ta = self.decode(&r[0], n, 0)?;
            k = 1;
        }
        let c2v = if v.is_some() {
            let next = self.next();
            let b = self.decode(&r[k], n, next)?;
            ArithShares { a: c2v.a, b }
        } else {
            c2v
        };
        let t_sh = ArithShares { a: ta, b: tb };
        // w = v − 2·c2v, or 1 − 2·c_2 when v = 1.
        let w = match v {
            Some(v) => v.sub(&c2v.mul_public(2))?,
            None => c2v.mul_public(2).neg().add_const(me, 1),
        };
        let tw = self.mul(&t_sh, &w)?;
        tw.add(&c2v)
    }
}
