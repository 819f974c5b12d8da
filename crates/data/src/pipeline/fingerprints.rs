//! The dedup set: the 128-bit fingerprints of the rows kept so far.
//!
//! Fingerprints are hash output, so their low bits already spread them evenly and a plain
//! open-addressing table (linear probing, the fingerprint itself as the slot, zero as the
//! empty mark) needs no hashing and one memory access per lookup where `HashSet` makes two
//! (its control bytes, then the slot). At ten million rows the table is far larger than the
//! caches, so every lookup is a miss; [`FingerprintSet::insert_all`] first loads the home
//! slot of every fingerprint of a chunk, which the processor overlaps, and only then
//! inserts, finding the lines in cache.

/// At most this share of the slots is used before the table doubles (7/8 would make probe
/// runs long; 1/2 would double the memory).
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;
const MIN_SLOTS: usize = 1024;

/// A set of fingerprints. Memory: 16 bytes per slot, at most twice the slots in use
/// after a growth (`16 / (3/4)` ≈ 21 to 43 bytes per fingerprint).
pub(crate) struct FingerprintSet {
    slots: Vec<u128>,
    /// Fingerprints in `slots` (the zero fingerprint is kept apart, in `has_zero`).
    len: usize,
    has_zero: bool,
}

impl Default for FingerprintSet {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl FingerprintSet {
    /// A set that holds `expected` fingerprints without growing.
    pub(crate) fn with_capacity(expected: usize) -> Self {
        Self {
            slots: vec![0; slots_for(expected)],
            len: 0,
            has_zero: false,
        }
    }

    /// Inserts `fingerprint`; false if it was already there.
    pub(crate) fn insert(&mut self, fingerprint: u128) -> bool {
        if fingerprint == 0 {
            return !std::mem::replace(&mut self.has_zero, true);
        }
        if (self.len + 1) * MAX_LOAD_DENOMINATOR > self.slots.len() * MAX_LOAD_NUMERATOR {
            self.grow();
        }
        let inserted = place(&mut self.slots, fingerprint);
        self.len += usize::from(inserted);
        inserted
    }

    /// Inserts each fingerprint in order (a `None` is skipped), calling `outcome` with
    /// whether it was new: the same as [`FingerprintSet::insert`] one by one, with the
    /// table's memory loaded for the whole batch first.
    pub(crate) fn insert_all(
        &mut self,
        fingerprints: &[Option<u128>],
        mut outcome: impl FnMut(usize, bool),
    ) {
        let mask = self.slots.len() - 1;
        // Independent loads: the processor has many of these misses in flight at once,
        // where the inserts, each waiting for its own, would have one.
        let warm = fingerprints
            .iter()
            .flatten()
            .fold(0u128, |acc, f| acc ^ self.slots[home(*f, mask)]);
        std::hint::black_box(warm);
        for (i, f) in fingerprints.iter().enumerate() {
            if let Some(f) = f {
                outcome(i, self.insert(*f));
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len + usize::from(self.has_zero)
    }

    fn grow(&mut self) {
        let mut bigger = vec![0u128; self.slots.len() * 2];
        for &f in self.slots.iter().filter(|&&f| f != 0) {
            place(&mut bigger, f);
        }
        self.slots = bigger;
    }
}

/// The slots for `expected` fingerprints at the maximum load: a power of two.
fn slots_for(expected: usize) -> usize {
    let needed = expected.saturating_mul(MAX_LOAD_DENOMINATOR) / MAX_LOAD_NUMERATOR + 1;
    needed
        .max(MIN_SLOTS)
        .checked_next_power_of_two()
        .unwrap_or(1 << 62)
}

fn home(fingerprint: u128, mask: usize) -> usize {
    (fingerprint as usize) & mask
}

/// Puts a non-zero fingerprint in its slot; false if it is there already. The table is
/// never full (the load stays below 3/4), so the probe ends.
fn place(slots: &mut [u128], fingerprint: u128) -> bool {
    let mask = slots.len() - 1;
    let mut at = home(fingerprint, mask);
    loop {
        let slot = &mut slots[at];
        if *slot == 0 {
            *slot = fingerprint;
            return true;
        }
        if *slot == fingerprint {
            return false;
        }
        at = (at + 1) & mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        /// Agrees with `HashSet` on every insert, through growth, with fingerprints that
        /// share their low bits (long probe runs), repeat, or are zero.
        #[test]
        fn agrees_with_a_hash_set(
            values in proptest::collection::vec((0u64..64, 0u64..4096, any::<bool>()), 0..3000),
            expected in 0usize..2000,
        ) {
            let mut set = FingerprintSet::with_capacity(expected);
            let mut reference = HashSet::new();
            for (high, low, zero) in values {
                let f = if zero { 0 } else { (u128::from(high) << 64) | u128::from(low * 1024) };
                prop_assert_eq!(set.insert(f), reference.insert(f));
            }
            prop_assert_eq!(set.len(), reference.len());
        }

        #[test]
        fn insert_all_is_insert_in_order(
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of(0u128..500), 0..300), 0..20),
        ) {
            let mut set = FingerprintSet::default();
            let mut reference = HashSet::new();
            for batch in batches {
                let mut got = Vec::new();
                set.insert_all(&batch, |i, new| got.push((i, new)));
                let want: Vec<_> = batch
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| f.map(|f| (i, reference.insert(f))))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn sizes_are_powers_of_two_with_room() {
        assert_eq!(slots_for(0), MIN_SLOTS);
        assert_eq!(slots_for(10_000_000), 1 << 24);
        assert!(slots_for(usize::MAX).is_power_of_two());
    }
}
