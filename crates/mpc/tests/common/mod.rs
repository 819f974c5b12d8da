//! Shared test harness: three parties on threads over MemTransport.
#![allow(dead_code)]

use std::fmt::Debug;
use std::time::Duration;

use consort_mpc::sim::run3;
use consort_mpc::{ArithShares, BitShares, Result, Session};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `f` on all three parties, asserts success and that all parties agree; returns
/// party 0's result.
pub fn run<R: Send + PartialEq + Debug>(f: impl Fn(&mut Session) -> Result<R> + Sync) -> R {
    run_seeded(1, f)
}

pub fn run_seeded<R: Send + PartialEq + Debug>(
    seed: u64,
    f: impl Fn(&mut Session) -> Result<R> + Sync,
) -> R {
    let mut rs: Vec<R> = run3(TIMEOUT, seed, f)
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("party {i} failed: {e}")))
        .collect();
    let r0 = rs.remove(0);
    for r in &rs {
        assert_eq!(&r0, r, "parties disagree");
    }
    r0
}

/// Party 0 inputs `v` (others pass None).
pub fn share(s: &mut Session, v: &[u64]) -> Result<ArithShares> {
    share_from(s, 0, v)
}

pub fn share_from(s: &mut Session, owner: usize, v: &[u64]) -> Result<ArithShares> {
    let mine = s.me() == owner;
    s.input(owner, mine.then_some(v), v.len())
}

pub fn share_i64(s: &mut Session, v: &[i64]) -> Result<ArithShares> {
    let u: Vec<u64> = v.iter().map(|&x| x as u64).collect();
    share(s, &u)
}

pub fn open(s: &mut Session, x: &ArithShares) -> Result<Vec<u64>> {
    s.reveal_all(x)
}

pub fn open_i64(s: &mut Session, x: &ArithShares) -> Result<Vec<i64>> {
    Ok(s.reveal_all(x)?.into_iter().map(|v| v as i64).collect())
}

pub fn open_bits(s: &mut Session, x: &BitShares) -> Result<Vec<bool>> {
    s.reveal_bits_all(x)
}

pub const EDGES: [i64; 9] = [
    0,
    1,
    -1,
    2,
    -2,
    i64::MAX,
    i64::MIN,
    i64::MAX - 1,
    i64::MIN + 1,
];
/// Values whose pairwise differences stay below 2^63 in absolute value.
pub const EDGES_HALF: [i64; 9] = [
    0,
    1,
    -1,
    2,
    -2,
    (1 << 62) - 1,
    -(1 << 62),
    1 << 40,
    -(1 << 40),
];
