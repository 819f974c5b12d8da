//! Sorting by shuffle-then-quicksort with revealed comparison outcomes.
//!
//! 1. Make keys unique by appending the ORIGINAL row index (public before the shuffle):
//!    either packed into the low bits (key · 2^b + i, when the caller bounds the key
//!    width) or as a separate column compared lexicographically.
//! 2. Shuffle keys and payload columns together with [`Session::shuffle`].
//! 3. Quicksort level by level: every open segment compares all its elements with its
//!    first element (a uniformly random pivot after the shuffle) in ONE batched
//!    comparison per level; the outcome bits are revealed and used to partition.
//! 4. Apply the resulting public permutation to the shuffled shares (local).
//!
//! Leakage: n, and the comparison outcomes among shuffled, distinct keys. These are a
//! function of σ, the permutation that sorts the shuffled array, which is uniformly
//! random whatever the input (the shuffle is uniform and unknown to every single party,
//! and ties cannot occur), so they reveal nothing about the keys. The number of levels and
//! comparisons (≈ 2 n ln n) are functions of σ too.

use crate::error::{MpcError, Result};
use crate::session::Session;
use crate::share::{ArithShares, BitShares};

/// Options for [`Session::sort`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SortOptions {
    /// If keys are known to lie in [−2^(k−1), 2^(k−1)), give k: when k + ⌈log2 n⌉ < 64 the
    /// row index is packed under the key and one narrow comparison per pair suffices.
    /// `None` means any signed 64-bit key (exact, about 4× the comparison cost).
    pub key_bits: Option<u32>,
    /// Largest first (rows with equal keys then come in reverse original order).
    pub descending: bool,
}

/// Statistics of one sort (all public).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SortStats {
    /// Quicksort levels (each one batched comparison + one reveal).
    pub levels: usize,
    /// Comparisons performed.
    pub comparisons: usize,
}

enum Mode {
    Packed { bits: u32 },
    Lex { bounded: bool, idx_bits: u32 },
}

impl Session {
    /// Sorts `keys` ascending (stable: ties keep their original order) and permutes the
    /// payload columns the same way.
    pub fn sort(
        &mut self,
        keys: &ArithShares,
        payloads: &[ArithShares],
        opts: SortOptions,
    ) -> Result<(ArithShares, Vec<ArithShares>, SortStats)> {
        let n = keys.len();
        for p in payloads {
            if p.len() != n {
                return Err(MpcError::arg(format!(
                    "sort: payload of {} rows, keys {n}",
                    p.len()
                )));
            }
        }
        if n <= 1 {
            return Ok((keys.clone(), payloads.to_vec(), SortStats::default()));
        }
        let me = self.me();
        let idx_bits = 64 - ((n - 1) as u64).leading_zeros();
        let idx: Vec<u64> = (0..n as u64).collect();
        let mode = match opts.key_bits {
            Some(k) if k == 0 || k > 64 => return Err(MpcError::arg(format!("key_bits = {k}"))),
            Some(k) if k + idx_bits < 64 => Mode::Packed {
                bits: k + idx_bits + 1,
            },
            Some(k) => Mode::Lex {
                bounded: k < 64,
                idx_bits,
            },
            None => Mode::Lex {
                bounded: false,
                idx_bits,
            },
        };
        // Columns: [cmp0, (cmp1), key, payloads...]
        let mut cols: Vec<ArithShares> = Vec::with_capacity(payloads.len() + 3);
        match mode {
            Mode::Packed { .. } => {
                cols.push(keys.mul_public(1u64 << idx_bits).add_public(me, &idx)?)
            }
            Mode::Lex { .. } => cols.push(ArithShares::public(me, &idx)),
        }
        cols.push(keys.clone());
        cols.extend(payloads.iter().cloned());
        let sh = self.shuffle(&cols)?;

        let mut perm: Vec<usize> = (0..n).collect();
        let mut segs: Vec<(usize, usize)> = vec![(0, n)];
        let mut stats = SortStats::default();
        let mut scratch = vec![0usize; n];
        while !segs.is_empty() {
            let mut elems = Vec::new();
            let mut pivots = Vec::new();
            for &(lo, hi) in &segs {
                for &e in &perm[lo + 1..hi] {
                    elems.push(e);
                    pivots.push(perm[lo]);
                }
            }
            let less = self.less_batch(&mode, &sh, &elems, &pivots)?;
            let less = self.reveal_bits_all(&less)?;
            stats.levels += 1;
            stats.comparisons += elems.len();
            let mut k = 0;
            let mut next = Vec::new();
            for &(lo, hi) in &segs {
                let pivot = perm[lo];
                let (mut l, mut r) = (lo, hi);
                for &e in &perm[lo + 1..hi] {
                    if less[k] {
                        scratch[l] = e;
                        l += 1;
                    } else {
                        r -= 1;
                        scratch[r] = e;
                    }
                    k += 1;
                }
                // Right part was filled backwards; restore its relative order.
                scratch[r..hi].reverse();
                scratch[l] = pivot;
                perm[lo..hi].copy_from_slice(&scratch[lo..hi]);
                if l - lo >= 2 {
                    next.push((lo, l));
                }
                if hi - (l + 1) >= 2 {
                    next.push((l + 1, hi));
                }
            }
            segs = next;
        }
        if opts.descending {
            perm.reverse();
        }
        let mut out: Vec<ArithShares> = Vec::with_capacity(sh.len());
        for c in sh.iter().skip(1) {
            out.push(c.gather(&perm)?);
        }
        let mut it = out.into_iter();
        let sorted_keys = it.next().unwrap_or_default();
        Ok((sorted_keys, it.collect(), stats))
    }

    /// [element < pivot] for each pair, on the shuffled columns.
    fn less_batch(
        &mut self,
        mode: &Mode,
        sh: &[ArithShares],
        e: &[usize],
        p: &[usize],
    ) -> Result<BitShares> {
        match *mode {
            Mode::Packed { bits } => {
                let (x, y) = (sh[0].gather(e)?, sh[0].gather(p)?);
                self.lt_narrow(&x, &y, bits)
            }
            Mode::Lex { bounded, idx_bits } => {
                let (kx, ky) = (sh[1].gather(e)?, sh[1].gather(p)?);
                let (ix, iy) = (sh[0].gather(e)?, sh[0].gather(p)?);
                let lt = if bounded {
                    self.lt(&kx, &ky)?
                } else {
                    self.lt_full(&kx, &ky)?
                };
                let eq = self.eq(&kx, &ky)?;
                let ilt = self.lt_narrow(&ix, &iy, idx_bits + 1)?;
                let tie = self.and_bits(&eq, &ilt)?;
                lt.xor(&tie)
            }
        }
    }
}
