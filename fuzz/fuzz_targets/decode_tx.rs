//! Transaction decoding must never panic, and whatever decodes must re-encode to the input
//! (the encoding is canonical).
#![no_main]

use consort_ledger::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data, "decode/encode is not canonical");
        let _ = tx.id();
    }
});
