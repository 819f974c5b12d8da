//! PSI benchmark: two parties on two threads over MemTransport, `n` integer keys each,
//! half of them shared.
//!
//! cargo run --release -p consort-mpc --example psi_bench -- [--n N] [--mode reveal|card|join]
//!
//! Prints the wall time, elements per second per core per party (each party's n elements
//! over the wall time, times parties / cores: both parties share the machine's cores) and
//! the bytes and messages each party sent.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::thread;
use std::time::{Duration, Instant};

use consort_mpc::psi::psi;
use consort_mpc::{mem_network_named, PsiKey, PsiMode, RevealTo, Transport};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn main() {
    let mut n: usize = 1 << 20;
    let mut mode = PsiMode::Reveal { to: RevealTo::Both };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--n" => n = args.next().and_then(|v| v.parse().ok()).expect("--n N"),
            "--mode" => {
                mode = match args.next().as_deref() {
                    Some("reveal") => PsiMode::Reveal { to: RevealTo::Both },
                    Some("card") => PsiMode::Cardinality,
                    Some("join") => PsiMode::JoinAlignment,
                    m => panic!("unknown mode {m:?}"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    // Alice holds 0..n, bob n/2..n+n/2: n/2 in common.
    let keys = |start: usize| -> Vec<PsiKey> {
        (start..start + n).map(|i| PsiKey::Int(i as i64)).collect()
    };
    let sets = [keys(0), keys(n / 2)];
    let nets = mem_network_named(
        vec!["alice".into(), "bob".into()],
        Duration::from_secs(3600),
    );
    let start = Instant::now();
    let results: Vec<_> = thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip(&sets)
            .enumerate()
            .map(|(i, (mut t, keys))| {
                s.spawn(move || {
                    let mut rng = StdRng::from_entropy();
                    let out = psi(&mut t, 1 - i, keys, mode, &mut rng).expect("psi failed");
                    (out, t.bytes_sent(), t.messages_sent(), start.elapsed())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let cores = thread::available_parallelism().map_or(1, |c| c.get());
    println!("PSI {mode:?}: n = {n} per party, {cores} cores, 2 parties");
    println!("  total time       {secs:.2} s");
    println!(
        "  elements/s/core/party {:.0}",
        n as f64 / secs * 2.0 / cores as f64
    );
    for (i, (out, bytes, msgs, t)) in results.iter().enumerate() {
        println!(
            "  party {i}: finished after {:.2} s, cardinality {:?}, sent {:.1} MB in {msgs} messages",
            t.as_secs_f64(),
            out.cardinality,
            *bytes as f64 / 1e6
        );
        if let Some(c) = out.cardinality {
            assert_eq!(c, n - n / 2, "wrong intersection size");
        }
    }
}
