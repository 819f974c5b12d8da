//! Boolean circuits over bit-planes: splitting an arithmetic sharing into two boolean
//! operands, carry computation (log-depth trees), the full parallel-prefix adder, and the
//! AND-tree used by equality.
//!
//! **Split.** x = x_0 + x_1 + x_2. Parties 0 and 2 both know u = x_0, so its boolean
//! sharing (u, 0, 0) is free. Party 1 knows v = x_1 + x_2 and inputs it as a boolean
//! sharing (one round, one word per element, from party 1 only). Then x = u + v, a
//! two-operand addition; no full-adder layer is needed.
//!
//! **Planes.** Values are transposed 64 at a time, so plane j holds bit j of 64 elements
//! in one word and every gate costs one word per 64 elements. Circuits evaluate only the
//! positions they need: the MSB of u + v is u_63 ⊕ v_63 ⊕ c_63, where the carry c_63 is a
//! balanced tree of (generate, propagate) pairs over positions 0..62: 63 ANDs for the
//! generate bits plus about 2 ANDs per tree node, 1 + 6 rounds.

use crate::boolean::to_planes;
use crate::error::Result;
use crate::session::Session;
use crate::share::{ArithShares, XorShares};

/// How party 1 transforms its value v = x_1 + x_2 (and party 0/2 their u = x_0) before
/// the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SplitMode {
    /// u = x_0, v = x_1 + x_2 (so u + v = x).
    Sum,
    /// u = x_0, v = −(x_1 + x_2) (so u = v iff x = 0).
    Negated,
}

/// Boolean operands u and v as 64 bit-planes each.
pub(crate) struct Split {
    pub u: Vec<XorShares>,
    pub v: Vec<XorShares>,
}

fn xor_planes(x: &XorShares, y: &XorShares) -> XorShares {
    XorShares {
        a: x.a.iter().zip(&y.a).map(|(p, q)| p ^ q).collect(),
        b: x.b.iter().zip(&y.b).map(|(p, q)| p ^ q).collect(),
    }
}

impl Session {
    /// Splits several arithmetic sharings at once (one round; party 1 sends one word per
    /// element per sharing).
    pub(crate) fn split(&mut self, xs: &[(&ArithShares, SplitMode)]) -> Result<Vec<Split>> {
        Ok(self.split_with_extra(xs, None, 0)?.0)
    }

    /// As [`Session::split`]; in the same message party 1 also inputs `extra` (`extra_len`
    /// words, additive sharing), e.g. its locally divided half of a truncation.
    pub(crate) fn split_with_extra(
        &mut self,
        xs: &[(&ArithShares, SplitMode)],
        extra: Option<&[u64]>,
        extra_len: usize,
    ) -> Result<(Vec<Split>, ArithShares)> {
        let me = self.me();
        let nbs: Vec<usize> = xs.iter().map(|(x, _)| x.len().div_ceil(64)).collect();
        let total: usize = nbs.iter().map(|nb| 64 * nb).sum();
        let values = if me == 1 {
            let mut all = Vec::with_capacity(total);
            for (x, mode) in xs {
                let v: Vec<u64> =
                    x.a.iter()
                        .zip(&x.b)
                        .map(|(p, q)| {
                            let s = p.wrapping_add(*q);
                            match mode {
                                SplitMode::Sum => s,
                                SplitMode::Negated => s.wrapping_neg(),
                            }
                        })
                        .collect();
                for plane in to_planes(&v) {
                    all.extend_from_slice(&plane);
                }
            }
            let extra = extra.unwrap_or(&[]);
            if extra.len() != extra_len {
                return Err(crate::MpcError::arg(
                    "split: extra input has the wrong length",
                ));
            }
            all.extend_from_slice(extra);
            Some(all)
        } else {
            None
        };
        let (va, vb) = self.input_local(1, values.as_deref(), total + extra_len, total)?;
        let extra_sh = ArithShares {
            a: va[total..].to_vec(),
            b: vb[total..].to_vec(),
        };
        let mut out = Vec::with_capacity(xs.len());
        let mut off = 0;
        for ((x, _), nb) in xs.iter().zip(nbs) {
            // u = x_0 is held as `a` by party 0 and as `b` by party 2; transposing the
            // other (zero) component would be wasted work.
            let zeros = || vec![0u64; nb];
            let u: Vec<XorShares> = match me {
                0 => to_planes(&x.a)
                    .into_iter()
                    .map(|a| XorShares { a, b: zeros() })
                    .collect(),
                2 => to_planes(&x.b)
                    .into_iter()
                    .map(|b| XorShares { a: zeros(), b })
                    .collect(),
                _ => (0..64)
                    .map(|_| XorShares {
                        a: zeros(),
                        b: zeros(),
                    })
                    .collect(),
            };
            let mut v = Vec::with_capacity(64);
            for _ in 0..64 {
                v.push(XorShares {
                    a: va[off..off + nb].to_vec(),
                    b: vb[off..off + nb].to_vec(),
                });
                off += nb;
            }
            out.push(Split { u, v });
        }
        Ok((out, extra_sh))
    }

    /// For each item, the group generate G over all its positions (index 0 = lowest),
    /// i.e. the carry out of the block; balanced tree, all items' ANDs of a level in one
    /// round. Items are (generate bits, propagate bits) per position.
    pub(crate) fn carry_trees(
        &mut self,
        items: Vec<(Vec<XorShares>, Vec<XorShares>)>,
    ) -> Result<Vec<XorShares>> {
        // Each node: (G, P) where P is None for the node containing position 0 (its P is
        // never needed because there is no carry into position 0).
        let mut levels: Vec<Vec<(XorShares, Option<XorShares>)>> = items
            .into_iter()
            .map(|(g, p)| {
                g.into_iter()
                    .zip(p)
                    .enumerate()
                    .map(|(i, (g, p))| (g, if i == 0 { None } else { Some(p) }))
                    .collect()
            })
            .collect();
        while levels.iter().any(|l| l.len() > 1) {
            let mut xs: Vec<&XorShares> = Vec::new();
            let mut ys: Vec<&XorShares> = Vec::new();
            for l in &levels {
                for pair in l.chunks(2) {
                    if let [lo, hi] = pair {
                        let p_hi =
                            hi.1.as_ref()
                                .ok_or_else(|| crate::MpcError::arg("internal: missing P"))?;
                        xs.push(p_hi);
                        ys.push(&lo.0);
                        if let Some(p_lo) = &lo.1 {
                            xs.push(p_hi);
                            ys.push(p_lo);
                        }
                    }
                }
            }
            let mut res = self.and_pairs(&xs, &ys)?.into_iter();
            let mut next_levels = Vec::with_capacity(levels.len());
            for l in levels {
                let mut nl = Vec::with_capacity(l.len().div_ceil(2));
                let mut it = l.into_iter();
                while let Some(lo) = it.next() {
                    match it.next() {
                        Some(hi) => {
                            let t = res.next().unwrap_or_default();
                            let g = xor_planes(&hi.0, &t);
                            let p = if lo.1.is_some() { res.next() } else { None };
                            nl.push((g, p));
                        }
                        None => nl.push(lo),
                    }
                }
                next_levels.push(nl);
            }
            levels = next_levels;
        }
        Ok(levels
            .into_iter()
            .map(|mut l| l.pop().map(|n| n.0).unwrap_or_default())
            .collect())
    }

    /// Generate and propagate bits of u + v at positions `lo..hi` (one AND round for all).
    pub(crate) fn gen_prop(
        &mut self,
        splits: &[(&Split, usize, usize)],
    ) -> Result<Vec<(Vec<XorShares>, Vec<XorShares>)>> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (s, lo, hi) in splits {
            for j in *lo..*hi {
                xs.push(&s.u[j]);
                ys.push(&s.v[j]);
            }
        }
        let mut g = self.and_pairs(&xs, &ys)?.into_iter();
        Ok(splits
            .iter()
            .map(|(s, lo, hi)| {
                let gs: Vec<XorShares> = (*lo..*hi).map(|_| g.next().unwrap_or_default()).collect();
                let ps: Vec<XorShares> = (*lo..*hi).map(|j| xor_planes(&s.u[j], &s.v[j])).collect();
                (gs, ps)
            })
            .collect())
    }

    /// MSB of u + v for each split, where every component is known to be zero below bit
    /// `lo` (lo = 0 for full 64-bit values). Result: one packed bit-word per 64 elements.
    pub(crate) fn msb_of_splits(&mut self, splits: &[(&Split, usize)]) -> Result<Vec<XorShares>> {
        let req: Vec<(&Split, usize, usize)> = splits.iter().map(|(s, lo)| (*s, *lo, 63)).collect();
        let gp = self.gen_prop(&req)?;
        let carries = self.carry_trees(gp)?;
        Ok(splits
            .iter()
            .zip(carries)
            .map(|((s, lo), c)| {
                let top = xor_planes(&s.u[63], &s.v[63]);
                if *lo >= 63 {
                    top
                } else {
                    xor_planes(&top, &c)
                }
            })
            .collect())
    }

    /// Carry out of the 64-bit addition u + v (the wrap bit) for each split.
    pub(crate) fn wrap_of_splits(&mut self, splits: &[&Split]) -> Result<Vec<XorShares>> {
        let req: Vec<(&Split, usize, usize)> = splits.iter().map(|s| (*s, 0, 64)).collect();
        let gp = self.gen_prop(&req)?;
        self.carry_trees(gp)
    }

    /// Full 64-bit sums u + v as bit-planes (Sklansky parallel prefix: 1 + 6 rounds).
    pub(crate) fn add_planes(
        &mut self,
        items: &[(&[XorShares], &[XorShares])],
    ) -> Result<Vec<Vec<XorShares>>> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (u, v) in items {
            for j in 0..63 {
                xs.push(&u[j]);
                ys.push(&v[j]);
            }
        }
        let mut gi = self.and_pairs(&xs, &ys)?.into_iter();
        // gs[item][j], ps[item][j] for j in 0..63: prefix over [start, j].
        let mut gs: Vec<Vec<XorShares>> = Vec::new();
        let mut ps: Vec<Vec<XorShares>> = Vec::new();
        let mut props: Vec<Vec<XorShares>> = Vec::new();
        for (u, v) in items {
            gs.push((0..63).map(|_| gi.next().unwrap_or_default()).collect());
            let p: Vec<XorShares> = (0..64).map(|j| xor_planes(&u[j], &v[j])).collect();
            ps.push(p[..63].to_vec());
            props.push(p);
        }
        let mut s = 1;
        while s < 64 {
            let mut xs: Vec<&XorShares> = Vec::new();
            let mut ys: Vec<&XorShares> = Vec::new();
            let mut plan = Vec::new();
            for it in 0..items.len() {
                for j in 0..63usize {
                    if j & s == 0 {
                        continue;
                    }
                    let k = (j & !(2 * s - 1)) + s - 1;
                    let need_p = j & !(2 * s - 1) != 0;
                    xs.push(&ps[it][j]);
                    ys.push(&gs[it][k]);
                    if need_p {
                        xs.push(&ps[it][j]);
                        ys.push(&ps[it][k]);
                    }
                    plan.push((it, j, need_p));
                }
            }
            let res = self.and_pairs(&xs, &ys)?;
            let mut r = res.into_iter();
            for (it, j, need_p) in plan {
                let t = r.next().unwrap_or_default();
                gs[it][j] = xor_planes(&gs[it][j], &t);
                if need_p {
                    ps[it][j] = r.next().unwrap_or_default();
                }
            }
            s *= 2;
        }
        Ok(props
            .into_iter()
            .zip(gs)
            .map(|(p, g)| {
                let mut sum = Vec::with_capacity(64);
                sum.push(p[0].clone());
                for j in 1..64 {
                    sum.push(xor_planes(&p[j], &g[j - 1]));
                }
                sum
            })
            .collect())
    }

    /// AND of all 64 planes of each item (balanced tree, 6 rounds, batched).
    pub(crate) fn and_all_planes(&mut self, items: Vec<Vec<XorShares>>) -> Result<Vec<XorShares>> {
        let mut levels = items;
        while levels.iter().any(|l| l.len() > 1) {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for l in &levels {
                for pair in l.chunks(2) {
                    if let [x, y] = pair {
                        xs.push(x);
                        ys.push(y);
                    }
                }
            }
            let mut res = self.and_pairs(&xs, &ys)?.into_iter();
            let mut next = Vec::with_capacity(levels.len());
            for l in levels {
                let mut nl = Vec::with_capacity(l.len().div_ceil(2));
                let odd = l.len() % 2 == 1;
                let last = if odd { l.last().cloned() } else { None };
                for _ in 0..l.len() / 2 {
                    nl.push(res.next().unwrap_or_default());
                }
                if let Some(x) = last {
                    nl.push(x);
                }
                next.push(nl);
            }
            levels = next;
        }
        Ok(levels
            .into_iter()
            .map(|mut l| l.pop().unwrap_or_default())
            .collect())
    }
}
