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

/// Rows sorted within their groups ([`Session::sort_grouped`]).
#[derive(Clone, Debug, Default)]
pub struct GroupedSort {
    /// Every sorted row's group label (public), ascending: each label's rows are one run.
    pub labels: Vec<u64>,
    /// The keys, sorted within each run.
    pub keys: ArithShares,
    /// The payload columns, permuted the same way.
    pub payloads: Vec<ArithShares>,
    pub stats: SortStats,
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
        let (mode, cols) = self.sort_columns(keys, payloads, opts)?;
        let sh = self.shuffle(&cols)?;
        let (perm, stats) = self.quicksort(&mode, &sh, vec![(0, n)], None)?;
        let mut perm = perm;
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

    /// The columns a sort shuffles: `[cmp0, key, payloads…]`, where cmp0 is the packed
    /// key-and-index or (lexicographic mode) the index alone.
    fn sort_columns(
        &self,
        keys: &ArithShares,
        payloads: &[ArithShares],
        opts: SortOptions,
    ) -> Result<(Mode, Vec<ArithShares>)> {
        let n = keys.len();
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
        let mut cols: Vec<ArithShares> = Vec::with_capacity(payloads.len() + 3);
        match mode {
            Mode::Packed { .. } => {
                cols.push(keys.mul_public(1u64 << idx_bits).add_public(me, &idx)?)
            }
            Mode::Lex { .. } => cols.push(ArithShares::public(me, &idx)),
        }
        cols.push(keys.clone());
        cols.extend(payloads.iter().cloned());
        Ok((mode, cols))
    }

    /// Sorts rows within groups. `labels` holds each row's secret group label: the rows
    /// are shuffled together with their labels, the labels are revealed, and each label's
    /// rows are sorted by `keys` (ascending, stable) with the payloads.
    ///
    /// Leakage beyond [`Session::sort`]'s: how many rows carry each label. The shuffle
    /// comes first, so no label is linked to an input position.
    pub fn sort_grouped(
        &mut self,
        labels: &ArithShares,
        keys: &ArithShares,
        payloads: &[ArithShares],
        opts: SortOptions,
    ) -> Result<GroupedSort> {
        self.grouped(labels, keys, payloads, opts, None)
    }

    /// As [`Session::sort_grouped`], but only the rows at the ranks `ranks(run length)`
    /// of each label's run are guaranteed in place (ascending): quickselect, which only
    /// goes on partitioning the parts that hold a wanted rank (about 3n comparisons for
    /// a median instead of 2n ln n). Its comparisons are a subset of the sort's, so it
    /// leaks no more.
    pub fn select_grouped(
        &mut self,
        labels: &ArithShares,
        keys: &ArithShares,
        opts: SortOptions,
        ranks: &dyn Fn(usize) -> Vec<usize>,
    ) -> Result<GroupedSort> {
        if opts.descending {
            return Err(MpcError::arg("select_grouped: ascending only"));
        }
        self.grouped(labels, keys, &[], opts, Some(ranks))
    }

    fn grouped(
        &mut self,
        labels: &ArithShares,
        keys: &ArithShares,
        payloads: &[ArithShares],
        opts: SortOptions,
        ranks: Option<&dyn Fn(usize) -> Vec<usize>>,
    ) -> Result<GroupedSort> {
        let n = keys.len();
        if labels.len() != n {
            return Err(MpcError::arg(format!(
                "sort_grouped: {} labels, keys {n}",
                labels.len()
            )));
        }
        for p in payloads {
            if p.len() != n {
                return Err(MpcError::arg(format!(
                    "sort_grouped: payload of {} rows, keys {n}",
                    p.len()
                )));
            }
        }
        if n == 0 {
            return Ok(GroupedSort {
                labels: Vec::new(),
                keys: keys.clone(),
                payloads: payloads.to_vec(),
                stats: SortStats::default(),
            });
        }
        let (mode, mut cols) = self.sort_columns(keys, payloads, opts)?;
        cols.push(labels.clone());
        let mut sh = self.shuffle(&cols)?;
        let shuffled_labels = match sh.pop() {
            Some(l) => self.reveal_all(&l)?,
            None => return Err(MpcError::arg("sort_grouped: no label column")),
        };
        // Group the shuffled rows by label (public, local); within a label the rows stay
        // in shuffled, uniformly random order, as quicksort's pivot choice needs.
        let mut by_label: Vec<usize> = (0..n).collect();
        by_label.sort_by_key(|&i| shuffled_labels[i]);
        let sh: Vec<ArithShares> = sh
            .iter()
            .map(|c| c.gather(&by_label))
            .collect::<Result<_>>()?;
        let sorted_labels: Vec<u64> = by_label.iter().map(|&i| shuffled_labels[i]).collect();
        let mut segs = Vec::new();
        let mut lo = 0;
        for i in 1..=n {
            if i == n || sorted_labels[i] != sorted_labels[lo] {
                segs.push((lo, i));
                lo = i;
            }
        }
        let targets: Option<Vec<usize>> = ranks.map(|ranks| {
            let mut t: Vec<usize> = segs
                .iter()
                .flat_map(|&(lo, hi)| {
                    ranks(hi - lo)
                        .into_iter()
                        .filter(move |&r| r < hi - lo)
                        .map(move |r| lo + r)
                })
                .collect();
            t.sort_unstable();
            t.dedup();
            t
        });
        let (mut perm, stats) = self.quicksort(&mode, &sh, segs.clone(), targets.as_deref())?;
        if opts.descending {
            for &(lo, hi) in &segs {
                perm[lo..hi].reverse();
            }
        }
        let mut out = sh
            .iter()
            .skip(1)
            .map(|c| c.gather(&perm))
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let keys = out.next().unwrap_or_default();
        Ok(GroupedSort {
            labels: sorted_labels,
            keys,
            payloads: out.collect(),
            stats,
        })
    }

    /// Quicksorts each segment of the shuffled columns `sh` (rows in uniformly random order
    /// within every segment); returns the sorting permutation of shuffled row indices.
    /// With `targets` (sorted final positions), a part that holds none of them is left
    /// unsorted.
    fn quicksort(
        &mut self,
        mode: &Mode,
        sh: &[ArithShares],
        mut segs: Vec<(usize, usize)>,
        targets: Option<&[usize]>,
    ) -> Result<(Vec<usize>, SortStats)> {
        let n = sh.first().map(|c| c.len()).unwrap_or(0);
        let wanted = |lo: usize, hi: usize| {
            hi - lo >= 2
                && targets.is_none_or(|t| {
                    let i = t.partition_point(|&x| x < lo);
                    t.get(i).is_some_and(|&x| x < hi)
                })
        };
        segs.retain(|&(lo, hi)| wanted(lo, hi));
        let mut perm: Vec<usize> = (0..n).collect();
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
            let less = self.less_batch(mode, sh, &elems, &pivots)?;
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
                if wanted(lo, l) {
                    next.push((lo, l));
                }
                if wanted(l + 1, hi) {
                    next.push((l + 1, hi));
                }
            }
            segs = next;
        }
        Ok((perm, stats))
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
