//! Secure shuffle and shuffle-then-sort.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use consort_mpc::{ArithShares, SortOptions};
use proptest::prelude::*;

#[test]
fn shuffle_permutes_rows_together() {
    let n = 300u64;
    let k: Vec<u64> = (0..n).collect();
    let p: Vec<u64> = (0..n).map(|i| i * i + 7).collect();
    let out = run(|s| {
        let a = share(s, &k)?;
        let b = share_from(s, 2, &p)?;
        let sh = s.shuffle(&[a, b])?;
        Ok((open(s, &sh[0])?, open(s, &sh[1])?))
    });
    assert_ne!(out.0, k, "a shuffle of 300 rows left them in order");
    let mut sorted = out.0.clone();
    sorted.sort();
    assert_eq!(sorted, k);
    for (a, b) in out.0.iter().zip(&out.1) {
        assert_eq!(*b, a * a + 7, "payload separated from its key");
    }
    // Different session randomness, different permutation.
    let other = run_seeded(99, |s| {
        let a = share(s, &k)?;
        let sh = s.shuffle(&[a])?;
        open(s, &sh[0])
    });
    assert_ne!(other, out.0);
    let empty = run(|s| Ok(s.shuffle(&[ArithShares::zeros(0)])?[0].len()));
    assert_eq!(empty, 0);
}

fn sort_check(keys: &[i64], opts: SortOptions) {
    let n = keys.len();
    let payload: Vec<u64> = (0..n as u64).map(|i| i * 10 + 1).collect();
    let out = run(|s| {
        let k = share_i64(s, keys)?;
        let p = share_from(s, 1, &payload)?;
        let (sk, sp, _) = s.sort(&k, &[p], opts)?;
        Ok((open_i64(s, &sk)?, open(s, &sp[0])?))
    });
    // Plaintext reference: stable sort by key.
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|&i| keys[i]);
    if opts.descending {
        idx.reverse();
    }
    let want_k: Vec<i64> = idx.iter().map(|&i| keys[i]).collect();
    let want_p: Vec<u64> = idx.iter().map(|&i| payload[i]).collect();
    assert_eq!(out.0, want_k, "keys, opts {opts:?}");
    assert_eq!(out.1, want_p, "payloads (stability), opts {opts:?}");
}

const MODES: [SortOptions; 4] = [
    SortOptions {
        key_bits: None,
        descending: false,
    },
    SortOptions {
        key_bits: Some(63),
        descending: false,
    },
    SortOptions {
        key_bits: Some(40),
        descending: false,
    },
    SortOptions {
        key_bits: Some(40),
        descending: true,
    },
];

#[test]
fn sort_edges() {
    let full: Vec<i64> = EDGES.to_vec();
    sort_check(&full, MODES[0]);
    let half: Vec<i64> = EDGES_HALF.to_vec();
    sort_check(&half, MODES[0]);
    sort_check(&half, MODES[1]);
    for m in MODES {
        sort_check(&[], m);
        sort_check(&[5], m);
        sort_check(&[3; 20], m);
        sort_check(&[2, 1], m);
        sort_check(&(0..50).rev().collect::<Vec<_>>(), m);
        sort_check(&[-(1 << 39), (1 << 39) - 1, 0, -1, 1, 0, -(1 << 39)], m);
    }
}

#[test]
fn sort_counts_are_reported_and_bad_options_rejected() {
    let keys: Vec<i64> = (0..200).map(|i| (i * 7919) % 1000).collect();
    let stats = run(|s| {
        let k = share_i64(s, &keys)?;
        Ok(s.sort(
            &k,
            &[],
            SortOptions {
                key_bits: Some(12),
                descending: false,
            },
        )?
        .2)
    });
    assert!(stats.levels >= 8 && stats.comparisons >= 199, "{stats:?}");
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let k = share_i64(s, &[1, 2])?;
        let p = share_i64(s, &[1])?;
        assert!(s.sort(&k, &[p], SortOptions::default()).is_err());
        s.sort(
            &k,
            &[],
            SortOptions {
                key_bits: Some(0),
                descending: false,
            },
        )
        .map(|_| ())
    });
    assert!(rs.iter().all(|r| r.is_err()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn prop_sort_small_range(v in proptest::collection::vec(-20i64..20, 0..60), m in 0usize..4) {
        sort_check(&v, MODES[m]);
    }

    #[test]
    fn prop_sort_any(v in proptest::collection::vec(any::<i64>(), 0..30)) {
        sort_check(&v, MODES[0]);
    }
}

/// `sort_grouped` against a plaintext reference: the runs of labels ascending, each run's
/// keys sorted (stable), the payload following its key.
fn grouped_check(labels: &[u64], keys: &[i64], opts: SortOptions) {
    let n = keys.len();
    let payload: Vec<u64> = (0..n as u64).map(|i| i * 3 + 2).collect();
    let out = run(|s| {
        let l = share_from(s, 2, labels)?;
        let k = share_i64(s, keys)?;
        let p = share_from(s, 1, &payload)?;
        let g = s.sort_grouped(&l, &k, &[p], opts)?;
        Ok((g.labels, open_i64(s, &g.keys)?, open(s, &g.payloads[0])?))
    });
    let mut want_labels = labels.to_vec();
    want_labels.sort();
    assert_eq!(out.0, want_labels, "labels, opts {opts:?}");
    let mut lo = 0;
    while lo < n {
        let hi = lo + out.0[lo..].iter().take_while(|&&l| l == out.0[lo]).count();
        let mut idx: Vec<usize> = (0..n).filter(|&i| labels[i] == out.0[lo]).collect();
        idx.sort_by_key(|&i| keys[i]);
        if opts.descending {
            idx.reverse();
        }
        let want_k: Vec<i64> = idx.iter().map(|&i| keys[i]).collect();
        assert_eq!(out.1[lo..hi], want_k[..], "keys of label {}", out.0[lo]);
        // Equal keys may come in either order across the shuffle; each payload must
        // still sit beside its own key.
        for i in lo..hi {
            let row = ((out.2[i] - 2) / 3) as usize;
            assert_eq!(keys[row], out.1[i], "payload separated from its key");
            assert_eq!(labels[row], out.0[i], "payload in the wrong group");
        }
        lo = hi;
    }
}

#[test]
fn sort_grouped_edges() {
    for m in MODES {
        grouped_check(&[], &[], m);
        grouped_check(&[7], &[-3], m);
        grouped_check(&[1, 1, 1], &[5, 5, 5], m);
        grouped_check(&[2, 1, 2, 1, 0], &[9, 8, -7, 6, 5], m);
        grouped_check(&[u64::MAX, 0, u64::MAX], &[1, 2, 0], m);
    }
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let l = share_i64(s, &[1])?;
        let k = share_i64(s, &[1, 2])?;
        s.sort_grouped(&l, &k, &[], SortOptions::default())
            .map(|_| ())
    });
    assert!(
        rs.iter().all(|r| r.is_err()),
        "a label count unlike the keys'"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn prop_sort_grouped(
        rows in proptest::collection::vec((0u64..4, -30i64..30), 0..60),
        m in 0usize..4,
    ) {
        let (labels, keys): (Vec<u64>, Vec<i64>) = rows.into_iter().unzip();
        grouped_check(&labels, &keys, MODES[m]);
    }
}

/// Quickselect within groups: the wanted ranks of every run hold the sorted values.
#[test]
fn select_grouped_places_the_wanted_ranks() {
    let mut rng = 7u64;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    let labels: Vec<u64> = (0..400).map(|_| next() % 3).collect();
    let keys: Vec<i64> = (0..400).map(|_| (next() % 50) as i64 - 25).collect();
    let ranks = |n: usize| vec![0, n / 2, n.saturating_sub(1), n + 5];
    let opts = SortOptions {
        key_bits: Some(40),
        descending: false,
    };
    let (got_labels, got_keys, stats) = run(|s| {
        let l = share_from(s, 2, &labels)?;
        let k = share_i64(s, &keys)?;
        let g = s.select_grouped(&l, &k, opts, &ranks)?;
        Ok((g.labels, open_i64(s, &g.keys)?, g.stats))
    });
    let full = run(|s| {
        let l = share_from(s, 2, &labels)?;
        let k = share_i64(s, &keys)?;
        Ok(s.sort_grouped(&l, &k, &[], opts)?.stats)
    });
    assert!(
        stats.comparisons < full.comparisons,
        "{stats:?} vs {full:?}"
    );
    let mut lo = 0;
    while lo < got_labels.len() {
        let label = got_labels[lo];
        let hi = lo + got_labels[lo..].iter().take_while(|&&l| l == label).count();
        let mut want: Vec<i64> = (0..keys.len())
            .filter(|&i| labels[i] == label)
            .map(|i| keys[i])
            .collect();
        want.sort();
        for r in ranks(hi - lo).into_iter().filter(|&r| r < hi - lo) {
            assert_eq!(got_keys[lo + r], want[r], "label {label} rank {r}");
        }
        lo = hi;
    }
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        let k = share_i64(s, &[1, 2])?;
        let l = share_i64(s, &[0, 0])?;
        let desc = SortOptions {
            key_bits: None,
            descending: true,
        };
        s.select_grouped(&l, &k, desc, &|_| vec![0]).map(|_| ())
    });
    assert!(
        rs.iter().all(|r| r.is_err()),
        "descending selection is refused"
    );
}
