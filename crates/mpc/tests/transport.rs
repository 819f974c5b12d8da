//! MemTransport passes the transport conformance suite; codec checks lengths.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use consort_mpc::conformance::run_all;
use consort_mpc::transport::{decode_u64s, encode_u64s, MsgReader};
use consort_mpc::{mem_network, MpcError, Transport};

#[test]
fn mem_transport_conformance() {
    run_all(|n, timeout: Duration| {
        mem_network(n, timeout)
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn Transport>)
            .collect()
    })
    .unwrap();
}

#[test]
fn codec_round_trip_and_wrong_lengths() {
    let v = vec![0, 1, u64::MAX, 0x0123_4567_89AB_CDEF];
    let b = encode_u64s(&v);
    assert_eq!(b.len(), 32);
    assert_eq!(b[8], 1, "little endian");
    assert_eq!(decode_u64s(&b, 4, "m1".into()).unwrap(), v);
    for (bytes, n) in [(&b[..31], 4), (&b[..], 3), (&b[..], 5), (&b[..0], 1)] {
        match decode_u64s(bytes, n, "m1".into()) {
            Err(MpcError::Malformed { peer, .. }) => assert_eq!(peer, "m1"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
    let mut r = MsgReader::new(&b, "m2".into());
    assert_eq!(r.u64().unwrap(), 0);
    assert!(matches!(r.finish(), Err(MpcError::Malformed { .. })));
    let mut r = MsgReader::new(&b[..4], "m2".into());
    assert!(matches!(
        r.u64s(usize::MAX / 4),
        Err(MpcError::Malformed { .. })
    ));
}
