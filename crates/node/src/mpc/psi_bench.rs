//! One party's part of a PSI benchmark or self-test between two members' nodes: each
//! party's keys come from a seed both know (half of them shared), so after the timed
//! intersection each party checks the cardinality and its matched rows against the
//! plaintext answer, and a wrong answer fails the run.

use std::time::Instant;

use consort_mpc::psi::{psi, PsiKey, PsiMode, RevealTo};
use consort_mpc::{MpcError, Transport};
use serde::{Deserialize, Serialize};

/// What one party measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PsiReport {
    pub party: usize,
    pub n: usize,
    pub seconds: f64,
    pub cardinality: usize,
    pub bytes_sent: u64,
    pub messages_sent: u64,
    /// The intersection matched the plaintext reference.
    pub verified: bool,
}

/// Party `party`'s keys: the first half (0..n/2, scrambled by `seed`) is shared by both
/// parties, the second half is this party's own.
pub fn keys(party: usize, n: usize, seed: u64) -> Vec<PsiKey> {
    let shared = n / 2;
    (0..n)
        .map(|i| {
            let base = if i < shared {
                i as u64
            } else {
                ((party as u64 + 1) << 40) + i as u64
            };
            PsiKey::Int((base ^ seed.rotate_left(17)) as i64)
        })
        .collect()
}

/// Runs one intersection (revealed to both) as the party `transport` speaks for (0 or 1).
pub fn run_party(
    mut transport: Box<dyn Transport>,
    n: usize,
    seed: u64,
) -> Result<PsiReport, MpcError> {
    let me = transport.me();
    if me > 1 {
        return Err(MpcError::InvalidArgument(format!(
            "a PSI runs between parties 0 and 1, not {me}"
        )));
    }
    let mine = keys(me, n, seed);
    let started = Instant::now();
    let out = psi(
        transport.as_mut(),
        1 - me,
        &mine,
        PsiMode::Reveal { to: RevealTo::Both },
        &mut rand::rngs::OsRng,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let cardinality = out.cardinality.unwrap_or(0);
    let expected: Vec<usize> = (0..n / 2).collect();
    let verified = cardinality == n / 2 && out.matched_rows.as_deref() == Some(&expected[..]);
    Ok(PsiReport {
        party: me,
        n,
        seconds,
        cardinality,
        bytes_sent: transport.bytes_sent(),
        messages_sent: transport.messages_sent(),
        verified,
    })
}
