//! Parsing and verifying an inclusion proof from arbitrary JSON must never panic.
#![no_main]

use consort_ledger::InclusionProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = serde_json::from_slice::<InclusionProof>(data) {
        let _ = proof.verify();
    }
});
