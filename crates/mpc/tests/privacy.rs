//! Privacy: the view of one compute party (every message it receives) must not depend on
//! the secret inputs beyond the revealed outputs. We run the same computation on two
//! input sets with equal outputs many times (deterministic seeds, so the test is not
//! flaky) and compare, message by message, the distribution of received bytes with a
//! two-sample chi-square test. A control shows the test does detect a leak.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use consort_mpc::{mem_network, MemTransport, PartyId, Session, Transport};
use rand::rngs::StdRng;
use rand::SeedableRng;

const RUNS: u64 = 120;
const N: usize = 64;

/// Records everything party 0 receives.
struct Recorder {
    inner: MemTransport,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Transport for Recorder {
    fn me(&self) -> PartyId {
        self.inner.me()
    }
    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> consort_mpc::Result<()> {
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: PartyId) -> consort_mpc::Result<Vec<u8>> {
        let m = self.inner.recv(from)?;
        self.log.lock().unwrap().push(m.clone());
        Ok(m)
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

/// Party 2 owns x and y; the parties multiply, compare, select, convert, truncate and
/// reveal the product to party 1 and then to everyone. Returns party 0's view.
fn view(x: u64, y: u64, seed: u64) -> Vec<Vec<u8>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let nets = mem_network(3, Duration::from_secs(20));
    thread::scope(|s| {
        for (i, t) in nets.into_iter().enumerate() {
            let log = log.clone();
            s.spawn(move || {
                let t: Box<dyn Transport> = if i == 0 {
                    Box::new(Recorder { inner: t, log })
                } else {
                    Box::new(t)
                };
                let mut rng = StdRng::seed_from_u64(seed * 3 + i as u64);
                let mut s = Session::setup(t, &mut rng).unwrap();
                let (xs, ys) = (vec![x; N], vec![y; N]);
                let a = s.input(2, (i == 2).then_some(&xs[..]), N).unwrap();
                let b = s.input(2, (i == 2).then_some(&ys[..]), N).unwrap();
                let p = s.mul(&a, &b).unwrap();
                let c = s.lt(&a, &b).unwrap();
                let m = s.mux(&c, &a, &b).unwrap();
                let e = s.eq(&m, &p).unwrap();
                let bits = s.a2b(&m).unwrap();
                let _ = s.b2a(&bits).unwrap();
                let _ = s.and_bits(&c, &e).unwrap();
                let _ = s.trunc(&m, 1).unwrap();
                let _ = s.shuffle(std::slice::from_ref(&a)).unwrap();
                let _ = s.reveal_to(&p, 1).unwrap();
                let out = s.reveal_all(&p).unwrap();
                assert_eq!(out, vec![x.wrapping_mul(y); N]);
            });
        }
    });
    let v = log.lock().unwrap().clone();
    v
}

/// p-value of the two-sample chi-square statistic on byte histograms (Wilson–Hilferty).
fn chi2_p(a: &[u64; 256], b: &[u64; 256]) -> f64 {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    let (ka, kb) = ((nb / na).sqrt(), (na / nb).sqrt());
    let mut stat = 0.0;
    let mut bins = 0;
    for i in 0..256 {
        let s = (a[i] + b[i]) as f64;
        if s > 0.0 {
            stat += (ka * a[i] as f64 - kb * b[i] as f64).powi(2) / s;
            bins += 1;
        }
    }
    if bins < 2 {
        return 1.0;
    }
    let df = (bins - 1) as f64;
    let z = ((stat / df).powf(1.0 / 3.0) - (1.0 - 2.0 / (9.0 * df))) / (2.0 / (9.0 * df)).sqrt();
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    // Numerical Recipes erfcc, relative error < 1.2e-7.
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn histograms(views: &[Vec<Vec<u8>>]) -> Vec<[u64; 256]> {
    let k = views[0].len();
    let mut h = vec![[0u64; 256]; k];
    for v in views {
        assert_eq!(
            v.len(),
            k,
            "the number of messages must not depend on the data"
        );
        for (i, m) in v.iter().enumerate() {
            for &byte in m {
                h[i][byte as usize] += 1;
            }
        }
    }
    h
}

#[test]
fn single_party_view_is_independent_of_inputs() {
    // Set A: 2·3 = 6 with x < y; set B: 6·1 = 6 with x > y. Same revealed output.
    let va: Vec<_> = (0..RUNS).map(|r| view(2, 3, r)).collect();
    let vb: Vec<_> = (0..RUNS).map(|r| view(6, 1, 10_000 + r)).collect();
    // Message sizes are public and identical.
    for (a, b) in va[0].iter().zip(&vb[0]) {
        assert_eq!(a.len(), b.len());
    }
    let (ha, hb) = (histograms(&va), histograms(&vb));
    let mut worst = 1.0f64;
    for (i, (a, b)) in ha.iter().zip(&hb).enumerate() {
        let p = chi2_p(a, b);
        worst = worst.min(p);
        assert!(
            p > 1e-4,
            "message {i} of party 0's view depends on the inputs (p = {p:e})"
        );
    }
    eprintln!(
        "{} messages compared, smallest p-value {worst:.4}",
        ha.len()
    );

    // Control: a view that also contained the raw input (as an unmasked input protocol
    // would send it) is rejected, so the test has power.
    let leak = |vs: &[Vec<Vec<u8>>], x: u64| -> [u64; 256] {
        let mut h = [0u64; 256];
        for v in vs {
            for &byte in v[1]
                .iter()
                .chain(x.to_le_bytes().iter().cycle().take(8 * N))
            {
                h[byte as usize] += 1;
            }
        }
        h
    };
    assert!(
        chi2_p(&leak(&va, 2), &leak(&vb, 6)) < 1e-6,
        "the test has no power"
    );
}
