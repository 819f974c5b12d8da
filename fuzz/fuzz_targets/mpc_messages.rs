//! What a member can send into an MPC session must decode without a panic: the chunk on
//! the peer link (and the router's sequence checks), and the protocol message inside it.
#![no_main]

use consort_crypto::MemberId;
use consort_node::mpc::wire::decode_chunk;
use consort_node::mpc::MpcRouter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let router = MpcRouter::new();
    if let Ok(chunk) = decode_chunk(data.to_vec()) {
        let _ = router.deliver(MemberId([1; 16]), chunk.clone());
        let _ = router.deliver(MemberId([1; 16]), chunk);
    }
    if let Ok(words) = consort_mpc::transport::unframe(data.to_vec(), "peer".into()) {
        let n = data.first().copied().unwrap_or(0) as usize;
        let _ = consort_mpc::transport::decode_u64s(&words, n, "peer".into());
    }
});
