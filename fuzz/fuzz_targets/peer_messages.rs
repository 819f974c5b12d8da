//! Everything a peer can send on a link after the TLS handshake must decode without a panic:
//! the hello, the multiplexed message envelope, and the node's request bodies inside it.
#![no_main]

use consort_node::peer::frame::{Hello, Message};
use consort_node::raft::network::{decode, ForwardResponse, PeerRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Hello::decode(data);
    let _ = Message::decode(data, 1 << 20);
    let _ = decode::<PeerRequest>(data);
    let _ = decode::<ForwardResponse>(data);
});
