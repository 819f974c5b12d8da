//! Block decoding must never panic, decoded blocks re-encode to the input, and verifying a
//! fuzzed block as block 0 or as block 1 of a fixed chain must fail cleanly.
#![no_main]

use consort_ledger::conformance::sample_chain;
use consort_ledger::{verify_chain, Block};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(block.encode(), data, "decode/encode is not canonical");
    }
    let _ = verify_chain([Ok(data.to_vec())]);
    let (_, blocks) = sample_chain(1, 0, 0);
    let genesis = blocks[0].encode();
    let _ = verify_chain([Ok(genesis), Ok(data.to_vec())]);
});
