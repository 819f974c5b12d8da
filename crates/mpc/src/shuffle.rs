//! Secure shuffle by resharing (three passes).
//!
//! In pass p the pair (p, p+1) — which shares PRG key k_p — picks a permutation π_p from
//! that key. They hold x as a 2-out-of-2 sharing (party p: x_p + x_{p+1}, party p+1:
//! x_{p+2}), permute it locally, and rebuild a replicated sharing with the third party q:
//! q's components y_p and y_{p+2} come from the keys q shares with p and with p+1, and
//! the pair exchange π(s) − y masks to agree on y_{p+1}. One round per pass; the pair
//! sends n words per column each way; q sends nothing. Each party knows two of π_0, π_1,
//! π_2 but not the third, so the composed permutation is uniformly random to it, and
//! every word it receives is masked by a PRG stream it does not know.

use crate::error::Result;
use crate::session::Session;
use crate::share::{check_len, ArithShares};
use crate::transport::put_u64s;

impl Session {
    /// Shuffles the rows of several equal-length columns with one secret permutation
    /// (3 rounds).
    pub fn shuffle(&mut self, cols: &[ArithShares]) -> Result<Vec<ArithShares>> {
        let n = cols.first().map(|c| c.len()).unwrap_or(0);
        for c in cols {
            check_len("shuffle: columns", c.len(), n)?;
            check_len("shuffle: components", c.a.len(), c.b.len())?;
        }
        let mut cols: Vec<ArithShares> = cols.to_vec();
        for p in 0..3 {
            cols = self.shuffle_pass(p, cols, n)?;
        }
        Ok(cols)
    }

    fn shuffle_pass(
        &mut self,
        p: usize,
        cols: Vec<ArithShares>,
        n: usize,
    ) -> Result<Vec<ArithShares>> {
        let me = self.me();
        let k = cols.len();
        let total = n * k;
        if me == (p + 2) % 3 {
            // Third party: y_{p+2} from k_{p+1} (prev key), y_p from k_{p−1} (next key).
            let y2 = self.keys().prev.gen(total);
            let y0 = self.keys().next.gen(total);
            self.round(vec![], &[])?;
            return Ok((0..k)
                .map(|c| ArithShares {
                    a: y2[c * n..(c + 1) * n].to_vec(),
                    b: y0[c * n..(c + 1) * n].to_vec(),
                })
                .collect());
        }
        let first = me == p;
        let perm = if first {
            self.keys().next.permutation(n)
        } else {
            self.keys().prev.permutation(n)
        };
        let mask = if first {
            self.keys().prev.gen(total)
        } else {
            self.keys().next.gen(total)
        };
        let mut m = Vec::with_capacity(total);
        for (c, col) in cols.iter().enumerate() {
            for (i, &src) in perm.iter().enumerate() {
                let s = if first {
                    col.a[src].wrapping_add(col.b[src])
                } else {
                    col.b[src]
                };
                m.push(s.wrapping_sub(mask[c * n + i]));
            }
        }
        let peer = if first { self.next() } else { self.prev() };
        let mut msg = Vec::with_capacity(total * 8 + 1);
        put_u64s(&mut msg, &m);
        let r = self.round(vec![(peer, msg)], &[peer])?;
        let other = self.decode(&r[0], total, peer)?;
        let mid: Vec<u64> = m
            .iter()
            .zip(&other)
            .map(|(x, y)| x.wrapping_add(*y))
            .collect();
        Ok((0..k)
            .map(|c| {
                let (lo, hi) = (c * n, (c + 1) * n);
                if first {
                    ArithShares {
                        a: mask[lo..hi].to_vec(),
                        b: mid[lo..hi].to_vec(),
                    }
                } else {
                    ArithShares {
                        a: mid[lo..hi].to_vec(),
                        b: mask[lo..hi].to_vec(),
                    }
                }
            })
            .collect())
    }
}
