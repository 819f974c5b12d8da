//! Software prefetch of the rows a load is about to read.
//!
//! Rows reach a store's load as a batch built on other cores a few batches earlier, so they
//! are rarely still in this core's cache, and every row is a separate allocation (its
//! values), with a further one per text: the hardware prefetcher cannot follow those
//! pointers. Without this, a loop over a batch waited on memory for each row's values and
//! then again for each of its texts.

use consort_model::value::{Row, Value};

/// Starts loading the values of rows `at + 2 * ahead ..` and the texts of rows
/// `at + ahead ..`, `ahead` rows of each: called every `ahead` rows, each row's values are
/// fetched one call before its texts, whose addresses they hold.
pub(super) fn prefetch_rows(rows: &[(u64, Row)], at: usize, ahead: usize) {
    for (_, row) in rows.iter().skip(at + 2 * ahead).take(ahead) {
        let values = row.as_ptr().cast::<u8>();
        let bytes = std::mem::size_of_val(row.as_slice());
        for offset in (0..bytes).step_by(64) {
            prefetch(values.wrapping_add(offset));
        }
    }
    for (_, row) in rows.iter().skip(at + ahead).take(ahead) {
        for value in row {
            if let Value::Text(s) = value {
                prefetch(s.as_ptr());
            }
        }
    }
}

#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint to the cache: it reads nothing the program sees
    // and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
