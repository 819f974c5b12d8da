//! Failures: vanished and silent peers, malformed messages, tampered shares, poisoning.
//! Every surviving party must fail (no hang, no partial output) with an error that names
//! the peer at fault.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::thread;
use std::time::{Duration, Instant};

use consort_mpc::sim::{run_parties, Party};
use consort_mpc::{
    mem_network_named, receive_output, MemTransport, MpcError, PartyId, Session, Transport,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const SHORT: Duration = Duration::from_millis(400);

/// Wraps a transport and rewrites the `at`-th message it sends.
struct Tamper {
    inner: MemTransport,
    sent: u64,
    at: u64,
}

impl Transport for Tamper {
    fn me(&self) -> PartyId {
        self.inner.me()
    }
    fn send(&mut self, to: PartyId, mut msg: Vec<u8>) -> consort_mpc::Result<()> {
        self.sent += 1;
        if self.sent == self.at {
            // Eight extra bytes in front: the frame tag survives, the length does not.
            msg.splice(0..0, [0u8; 8]);
        }
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: PartyId) -> consort_mpc::Result<Vec<u8>> {
        self.inner.recv(from)
    }
    fn peer_name(&self, p: PartyId) -> String {
        self.inner.peer_name(p)
    }
    fn bytes_sent(&self) -> u64 {
        self.inner.bytes_sent()
    }
    fn messages_sent(&self) -> u64 {
        self.inner.messages_sent()
    }
}

/// Runs the three parties over named in-memory links; `wrap` may replace a transport.
fn run_named<R: Send>(
    wrap: impl Fn(MemTransport) -> Box<dyn Transport> + Sync,
    f: impl Fn(&mut Session) -> consort_mpc::Result<R> + Sync,
) -> Vec<consort_mpc::Result<R>> {
    let names = vec!["m0".to_string(), "m1".to_string(), "m2".to_string()];
    let nets = mem_network_named(names, SHORT);
    thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let (wrap, f) = (&wrap, &f);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(i as u64);
                    let mut sess = Session::setup(wrap(t), &mut rng)?;
                    f(&mut sess)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn assert_names(r: &consort_mpc::Result<impl std::fmt::Debug>, who: &str, culprit: &str) {
    match r {
        Ok(v) => panic!("{who} succeeded with {v:?} although {culprit} failed"),
        Err(e) => assert!(
            e.to_string().contains(culprit),
            "{who}: error does not name {culprit}: {e}"
        ),
    }
}

#[test]
fn vanished_peer_mid_protocol_is_named_by_everyone() {
    let v: Vec<u64> = (0..1000).collect();
    for culprit in 0..3 {
        let start = Instant::now();
        let rs = run_named(
            |t| Box::new(t),
            |s| {
                let x = share(s, &v)?;
                let y = s.mul(&x, &x)?;
                if s.me() == culprit {
                    return Ok(None); // drops its session (and links) mid-protocol
                }
                let z = s.lt(&y, &x)?;
                let m = s.mul(&y, &y)?;
                Ok(Some((open(s, &m)?, open_bits(s, &z)?)))
            },
        );
        assert!(start.elapsed() < Duration::from_secs(10), "parties hung");
        let name = format!("m{culprit}");
        for (i, r) in rs.iter().enumerate() {
            if i != culprit {
                assert_names(r, &format!("party {i}"), &name);
            }
        }
    }
}

#[test]
fn silent_peer_times_out_and_is_named() {
    let rs = run_named(
        |t| Box::new(t),
        |s| {
            let x = share(s, &[1, 2, 3])?;
            if s.me() == 1 {
                thread::sleep(SHORT * 4); // stalls, keeps its links open
                return Ok(vec![]);
            }
            let y = s.mul(&x, &x)?;
            open(s, &y)
        },
    );
    for i in [0, 2] {
        assert_names(&rs[i], &format!("party {i}"), "m1");
    }
    let direct = rs
        .iter()
        .any(|r| matches!(r, Err(MpcError::Timeout { peer, .. }) if peer == "m1"));
    assert!(direct, "{rs:?}");
}

#[test]
fn wrong_length_message_is_malformed() {
    // Party 1's third message (after key agreement: its input-free rounds) is stretched.
    let rs = run_named(
        |t| {
            if t.me() == 1 {
                Box::new(Tamper {
                    inner: t,
                    sent: 0,
                    at: 3,
                })
            } else {
                Box::new(t)
            }
        },
        |s| {
            let x = share(s, &[5; 100])?;
            let y = s.mul(&x, &x)?;
            let z = s.mul(&y, &x)?;
            open(s, &z)
        },
    );
    let malformed = rs
        .iter()
        .any(|r| matches!(r, Err(MpcError::Malformed { peer, .. }) if peer == "m1"));
    assert!(malformed, "{rs:?}");
    for i in [0, 2] {
        assert_names(&rs[i], &format!("party {i}"), "m1");
    }
}

#[test]
fn tampered_share_is_a_mismatch_not_a_wrong_value() {
    for victim in 0..3 {
        let rs = run_named(
            |t| Box::new(t),
            |s| {
                let mut x = share(s, &[10, 20, 30])?;
                if s.me() == victim {
                    x.b[1] ^= 1; // corrupt one replicated copy
                }
                let r = s.reveal_all(&x);
                // A poisoned session refuses further work.
                if r.is_err() {
                    assert!(matches!(s.mul(&x, &x), Err(MpcError::Poisoned(_))));
                }
                r
            },
        );
        // Every party checks all three components, so everyone refuses, naming the victim
        // (whose copy disagrees with its neighbour's) or the victim's abort notice.
        for (i, r) in rs.iter().enumerate() {
            assert_names(r, &format!("party {i}"), &format!("m{victim}"));
        }
        assert!(
            rs.iter()
                .any(|r| matches!(r, Err(MpcError::Mismatch { .. }))),
            "{rs:?}"
        );
    }
}

#[test]
fn tampered_share_detected_by_external_result_party() {
    let rs = run_parties(4, TIMEOUT, 5, |p| match p {
        Party::Compute(s) => {
            let mut x = share(s, &[7, 8, 9])?;
            if s.me() == 2 {
                x.a[0] = x.a[0].wrapping_add(1);
            }
            s.reveal_to(&x, 3)?;
            Ok(vec![])
        }
        Party::External(_, t) => receive_output(t),
    });
    assert!(
        matches!(&rs[3], Err(MpcError::Mismatch { .. })),
        "{:?}",
        rs[3]
    );
}

#[test]
fn setup_rejects_external_ids_and_bad_inputs() {
    let mut nets = consort_mpc::mem_network(4, SHORT);
    let t = nets.pop().unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    assert!(matches!(
        Session::setup(Box::new(t), &mut rng),
        Err(MpcError::InvalidArgument(_))
    ));
    let rs = consort_mpc::sim::run3(TIMEOUT, 1, |s| {
        // The owner must supply exactly n values.
        let bad = s.input(0, (s.me() == 0).then_some(&[1u64, 2][..]), 3);
        assert!(bad.is_err() || s.me() != 0);
        Ok(())
    });
    // Parties 1 and 2 waited for an input that never came: a bounded error, no hang.
    assert!(rs[0].is_ok());
}
