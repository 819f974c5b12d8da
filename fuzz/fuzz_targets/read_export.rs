//! Export parsing must never panic, with or without a valid magic prefix.
#![no_main]

use consort_ledger::read_export;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_export(data);
    let mut with_magic = b"CNSRTEX1".to_vec();
    with_magic.extend_from_slice(data);
    if let Ok(blocks) = read_export(&with_magic) {
        let _ = consort_ledger::verify_chain(blocks.into_iter().map(Ok));
    }
});
