//! One party's part of an MPC benchmark or self-test session: the inputs come from a seed
//! all three parties know, so after the timed operation the revealed result is checked
//! against the plaintext reference, and a wrong answer fails the run.
//!
//! Party 0 owns `x`, party 1 owns `y`; each shares its vector, a one-word reveal lines the
//! parties up, and only the operation itself is timed (revealing and checking are not).
//! The operation runs twice: the first run is reported as the cold time (a fresh process
//! faults in every page its buffers touch), the second as the time, the steady state of a
//! node that has served a query before. Rounds and bytes are those of one run.

use std::time::Instant;

use consort_mpc::{ArithShares, MpcError, Session, SortOptions, Transport};
use serde::{Deserialize, Serialize};

/// The benchmarked operations.
pub const OPS: [&str; 5] = ["mul", "lt", "min", "sort", "sum"];

/// Key width for `sort` and the range of `lt` inputs (|x - y| stays below 2^63).
const VALUE_BITS: u32 = 40;

/// What one party measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartyReport {
    pub party: usize,
    pub op: String,
    pub n: usize,
    /// The second run.
    pub seconds: f64,
    /// The first run, in a process that had not yet used buffers of this size.
    pub cold_seconds: f64,
    pub rounds: u64,
    pub bytes_sent: u64,
    pub messages_sent: u64,
    /// The revealed result matched the plaintext reference.
    pub verified: bool,
}

/// The benchmark's test values: `VALUE_BITS`-bit signed values from `seed`.
pub fn values(n: usize, seed: u64) -> Vec<u64> {
    consort_mpc::sim::bench_values(n, seed, VALUE_BITS)
}

/// Runs `op` on `n` elements as the party `transport` speaks for.
pub fn run_party(
    transport: Box<dyn Transport>,
    op: &str,
    n: usize,
    seed: u64,
) -> Result<PartyReport, MpcError> {
    if !OPS.contains(&op) {
        return Err(MpcError::InvalidArgument(format!(
            "unknown operation {op:?} (expected one of {})",
            OPS.join(", ")
        )));
    }
    let mut session = Session::setup(transport, &mut rand::rngs::OsRng)?;
    let me = session.me();
    let xs = values(n, seed);
    let ys = values(n, seed ^ 0x5555_5555_5555_5555);
    let x = session.input(0, (me == 0).then_some(&xs[..]), n)?;
    let y = session.input(1, (me == 1).then_some(&ys[..]), n)?;
    session.reveal_all(&ArithShares::zeros(1))?;
    let cold = Instant::now();
    run_op(&mut session, op, &x, &y)?;
    let cold_seconds = cold.elapsed().as_secs_f64();
    session.reveal_all(&ArithShares::zeros(1))?;
    let (rounds, bytes, messages) = (
        session.rounds(),
        session.bytes_sent(),
        session.messages_sent(),
    );
    let started = Instant::now();
    let outcome = run_op(&mut session, op, &x, &y)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = PartyReport {
        party: me,
        op: op.to_string(),
        n,
        seconds,
        cold_seconds,
        rounds: session.rounds() - rounds,
        bytes_sent: session.bytes_sent() - bytes,
        messages_sent: session.messages_sent() - messages,
        verified: false,
    };
    // Counted before the checking reveal, which is not part of the operation.
    report.verified = match outcome {
        Outcome::Words(shares) => session.reveal_all(&shares)? == reference_words(op, &xs, &ys),
        Outcome::Bits(shares) => {
            let expected: Vec<bool> = xs
                .iter()
                .zip(&ys)
                .map(|(&a, &b)| (a as i64) < (b as i64))
                .collect();
            session.reveal_bits_all(&shares)? == expected
        }
    };
    Ok(report)
}

fn run_op(
    session: &mut Session,
    op: &str,
    x: &ArithShares,
    y: &ArithShares,
) -> Result<Outcome, MpcError> {
    Ok(match op {
        "mul" => Outcome::Words(session.mul(x, y)?),
        "lt" => Outcome::Bits(session.lt(x, y)?),
        "min" => Outcome::Words(session.min_of(x)?),
        "sort" => {
            let options = SortOptions {
                key_bits: Some(VALUE_BITS + 1),
                descending: false,
            };
            Outcome::Words(session.sort(x, &[], options)?.0)
        }
        _ => Outcome::Words(session.sum(x)),
    })
}

enum Outcome {
    Words(ArithShares),
    Bits(consort_mpc::BitShares),
}

/// The plaintext answer to a word-valued operation.
fn reference_words(op: &str, xs: &[u64], ys: &[u64]) -> Vec<u64> {
    match op {
        "mul" => xs.iter().zip(ys).map(|(a, b)| a.wrapping_mul(*b)).collect(),
        "min" => xs
            .iter()
            .map(|&v| v as i64)
            .min()
            .map(|m| m as u64)
            .into_iter()
            .collect(),
        "sort" => {
            let mut sorted: Vec<i64> = xs.iter().map(|&v| v as i64).collect();
            sorted.sort_unstable();
            sorted.into_iter().map(|v| v as u64).collect()
        }
        _ => vec![xs.iter().fold(0u64, |acc, v| acc.wrapping_add(*v))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_verifies_over_the_in_memory_network() {
        for op in OPS {
            for n in [1usize, 2, 37] {
                let transports = consort_mpc::mem_network(3, std::time::Duration::from_secs(20));
                let handles: Vec<_> = transports
                    .into_iter()
                    .map(|t| {
                        let op = op.to_string();
                        std::thread::spawn(move || run_party(Box::new(t), &op, n, 9))
                    })
                    .collect();
                for h in handles {
                    let r = h
                        .join()
                        .unwrap()
                        .unwrap_or_else(|e| panic!("{op} n={n}: {e}"));
                    assert!(r.verified, "{op} n={n} did not verify");
                }
            }
        }
    }
}
