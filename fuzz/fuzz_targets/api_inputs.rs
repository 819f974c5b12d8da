//! Files and API bodies users hand to consort must parse or fail cleanly: genesis files,
//! member cards, and hex-encoded transactions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(genesis) = serde_json::from_str::<consort_ledger::Genesis>(text) {
            let _ = genesis.validate();
        }
        let _ = serde_json::from_str::<consort_node::config::MemberCard>(text);
        if let Ok(bytes) = hex::decode(text.trim()) {
            let _ = consort_ledger::Transaction::decode(&bytes);
        }
    }
});
