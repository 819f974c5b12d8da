//! Running a whole session in one process: the three compute parties (and any external
//! parties) on their own threads over [`MemTransport`]. Used by tests, examples and the
//! local benchmark; the node crate runs the same protocol code over TLS instead.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::Result;
use crate::mem::mem_network;
use crate::session::Session;
use crate::transport::{PartyId, Transport};

/// The role a simulated party plays.
pub enum Party<'a> {
    /// A compute party with its session.
    Compute(&'a mut Session),
    /// An external input owner or result party with its raw transport.
    External(PartyId, &'a mut dyn Transport),
}

/// Runs `parties` parties (three compute + the rest external) on threads; seeds are
/// derived from `seed` so runs are reproducible. Returns each party's result by id.
pub fn run_parties<R: Send>(
    parties: usize,
    timeout: Duration,
    seed: u64,
    f: impl Fn(Party<'_>) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let nets = mem_network(parties.max(3), timeout);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = nets
            .into_iter()
            .enumerate()
            .map(|(id, t)| {
                s.spawn(move || {
                    let mut t: Box<dyn Transport> = Box::new(t);
                    if id < 3 {
                        let mut rng = StdRng::seed_from_u64(
                            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id as u64,
                        );
                        let mut sess = Session::setup(t, &mut rng)?;
                        f(Party::Compute(&mut sess))
                    } else {
                        f(Party::External(id, &mut *t))
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

/// Runs the three compute parties on threads with `f(session)`; results by party id.
pub fn run3<R: Send>(
    timeout: Duration,
    seed: u64,
    f: impl Fn(&mut Session) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    run_parties(3, timeout, seed, |p| match p {
        Party::Compute(s) => f(s),
        Party::External(..) => unreachable!("run3 has no external parties"),
    })
}

/// `n` deterministic signed values of `bits` bits (1 to 63) from `seed` (xorshift), as the
/// benchmarks' inputs: every party can recompute them to check a revealed result.
pub fn bench_values(n: usize, seed: u64, bits: u32) -> Vec<u64> {
    let bits = bits.clamp(1, 63);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> (64 - bits)) as i64 - (1i64 << (bits - 1))) as u64
        })
        .collect()
}
