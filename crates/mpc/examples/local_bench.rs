//! Local benchmark: the three compute parties on three threads over MemTransport.
//!
//! cargo run --release -p consort-mpc --example local_bench -- [--op mul|lt|min|sort|sum|all] [--n N]
//!
//! Prints operations per second, rounds and bytes sent per party for the timed operation
//! (input sharing and reveal are not timed).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use consort_mpc::sim::{bench_values as values, run3};
use consort_mpc::{Result, Session, SortOptions};

struct Stat {
    secs: f64,
    rounds: u64,
    bytes: u64,
    msgs: u64,
}

fn timed(s: &mut Session, f: impl FnOnce(&mut Session) -> Result<()>) -> Result<Stat> {
    // A one-word reveal to everyone is a barrier: no party starts the clock while another
    // is still sharing inputs.
    s.reveal_all(&consort_mpc::ArithShares::zeros(1))?;
    let (r0, b0, m0) = (s.rounds(), s.bytes_sent(), s.messages_sent());
    let t = Instant::now();
    f(s)?;
    Ok(Stat {
        secs: t.elapsed().as_secs_f64(),
        rounds: s.rounds() - r0,
        bytes: s.bytes_sent() - b0,
        msgs: s.messages_sent() - m0,
    })
}

fn bench(op: &str, n: usize) {
    let xs = values(n, 1, 40);
    let ys = values(n, 2, 40);
    let res = run3(Duration::from_secs(600), 42, |s| {
        let me = s.me();
        let x = s.input(0, (me == 0).then_some(&xs[..]), n)?;
        let y = s.input(1, (me == 1).then_some(&ys[..]), n)?;
        let mut check = Vec::new();
        let st = match op {
            "mul" => timed(s, |s| {
                let z = s.mul(&x, &y)?;
                check = z.a[..1.min(n)].to_vec();
                Ok(())
            })?,
            "lt" => timed(s, |s| s.lt(&x, &y).map(|_| ()))?,
            "min" => timed(s, |s| s.min_of(&x).map(|_| ()))?,
            "sort" => timed(s, |s| {
                let opts = SortOptions {
                    key_bits: Some(41),
                    descending: false,
                };
                let (k, _, st) = s.sort(&x, &[], opts)?;
                if me == 0 {
                    eprintln!(
                        "  sort: {} levels, {} comparisons",
                        st.levels, st.comparisons
                    );
                }
                check = k.a[..1.min(n)].to_vec();
                Ok(())
            })?,
            "sum" => timed(s, |s| {
                let t = s.sum(&x);
                let _ = s.reveal_all(&t)?;
                Ok(())
            })?,
            other => panic!("unknown op {other}"),
        };
        let _ = check;
        Ok(st)
    });
    let stats: Vec<Stat> = res.into_iter().map(|r| r.expect("party failed")).collect();
    let secs = stats.iter().map(|s| s.secs).fold(0.0, f64::max);
    println!(
        "{op:>5} n={n:>9}: {secs:8.3} s  {:>14.0} ops/s  rounds {:>5}  bytes/party {:?}  msgs/party {:?}",
        n as f64 / secs,
        stats[0].rounds,
        stats.iter().map(|s| s.bytes).collect::<Vec<_>>(),
        stats.iter().map(|s| s.msgs).collect::<Vec<_>>(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut op = "all".to_string();
    let mut n: Option<usize> = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--op" => {
                op = args.get(i + 1).cloned().unwrap_or_default();
                i += 1;
            }
            "--n" => {
                n = args.get(i + 1).and_then(|v| v.parse().ok());
                i += 1;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let defaults = [
        ("mul", 10_000_000),
        ("lt", 1_000_000),
        ("min", 1_000_000),
        ("sort", 1_000_000),
        ("sum", 10_000_000),
    ];
    for (o, d) in defaults {
        if op == "all" || op == o {
            bench(o, n.unwrap_or(d));
        }
    }
}
