//! A conformance suite that every [`Transport`] implementation must pass.
//!
//! The node crate runs it against its TLS transport; `MemTransport` runs it in this
//! crate's tests. `make(n, timeout)` must return a fresh, fully connected network of `n`
//! parties (index = party id) whose `recv` gives up after roughly `timeout`.

// A conformance suite fails by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::thread;
use std::time::{Duration, Instant};

use crate::error::MpcError;
use crate::transport::Transport;

/// A factory of fresh networks: `(parties, recv timeout) -> transports indexed by id`.
pub trait NetworkFactory: Fn(usize, Duration) -> Vec<Box<dyn Transport>> + Sync {}
impl<F: Fn(usize, Duration) -> Vec<Box<dyn Transport>> + Sync> NetworkFactory for F {}

type Check = fn(&dyn NetworkFactory) -> Result<(), String>;

const TIMEOUT: Duration = Duration::from_millis(300);

/// Runs every check; returns the list of failures (empty on success).
pub fn run_all(make: impl NetworkFactory) -> Result<(), String> {
    let checks: [(&str, Check); 7] = [
        ("identities", identities),
        ("ordering per pair", ordering),
        ("empty and large messages, sent before received", sizes),
        ("byte and message counters", counters),
        ("timeout names the peer", timeout),
        ("peer gone after delivering what it sent", peer_gone),
        ("send to a gone peer does not panic or hang", send_to_gone),
    ];
    let mut failures = Vec::new();
    for (name, check) in checks {
        if let Err(e) = check(&make) {
            failures.push(format!("{name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn net(make: &dyn NetworkFactory, n: usize) -> Result<Vec<Box<dyn Transport>>, String> {
    let v = make(n, TIMEOUT);
    if v.len() != n {
        return Err(format!(
            "factory returned {} transports, wanted {n}",
            v.len()
        ));
    }
    Ok(v)
}

fn identities(make: &dyn NetworkFactory) -> Result<(), String> {
    let ts = net(make, 4)?;
    for (i, t) in ts.iter().enumerate() {
        if t.me() != i {
            return Err(format!("transport {i} says me() = {}", t.me()));
        }
        for p in 0..4 {
            if t.peer_name(p).is_empty() {
                return Err(format!("empty name for party {p}"));
            }
        }
    }
    Ok(())
}

fn ordering(make: &dyn NetworkFactory) -> Result<(), String> {
    let mut ts = net(make, 3)?;
    let mut t2 = ts.pop().ok_or("no party 2")?;
    let mut t1 = ts.pop().ok_or("no party 1")?;
    let mut t0 = ts.pop().ok_or("no party 0")?;
    const N: u32 = 50;
    let h1 = thread::spawn(move || -> Result<Box<dyn Transport>, MpcError> {
        for i in 0..N {
            t1.send(0, [1u8].iter().chain(&i.to_le_bytes()).copied().collect())?;
        }
        Ok(t1)
    });
    let h2 = thread::spawn(move || -> Result<Box<dyn Transport>, MpcError> {
        for i in 0..N {
            t2.send(0, [2u8].iter().chain(&i.to_le_bytes()).copied().collect())?;
        }
        Ok(t2)
    });
    // Drain party 2's stream first: queues of different senders must be independent.
    for from in [2u8, 1u8] {
        for i in 0..N {
            let m = t0.recv(from as usize).map_err(|e| e.to_string())?;
            let want: Vec<u8> = [from].iter().chain(&i.to_le_bytes()).copied().collect();
            if m != want {
                return Err(format!(
                    "from {from}: message {i} was {m:?}, wanted {want:?}"
                ));
            }
        }
    }
    let _keep1 = h1
        .join()
        .map_err(|_| "sender panicked")?
        .map_err(|e| e.to_string())?;
    let _keep2 = h2
        .join()
        .map_err(|_| "sender panicked")?
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn sizes(make: &dyn NetworkFactory) -> Result<(), String> {
    let mut ts = net(make, 2)?;
    let t1 = ts.pop().ok_or("no party 1")?;
    let t0 = ts.pop().ok_or("no party 0")?;
    const BIG: usize = 24 << 20;
    let run = |mut t: Box<dyn Transport>, peer: usize| {
        thread::spawn(move || -> Result<Box<dyn Transport>, String> {
            let me = t.me() as u8;
            let big: Vec<u8> = (0..BIG).map(|i| (i as u8).wrapping_mul(31) ^ me).collect();
            // Both parties send before receiving: the transport must buffer.
            t.send(peer, Vec::new()).map_err(|e| e.to_string())?;
            t.send(peer, big).map_err(|e| e.to_string())?;
            t.send(peer, vec![me]).map_err(|e| e.to_string())?;
            let e = t.recv(peer).map_err(|e| e.to_string())?;
            if !e.is_empty() {
                return Err(format!("empty message arrived with {} bytes", e.len()));
            }
            let b = t.recv(peer).map_err(|e| e.to_string())?;
            let other = peer as u8;
            if b.len() != BIG
                || b.iter()
                    .enumerate()
                    .any(|(i, &x)| x != (i as u8).wrapping_mul(31) ^ other)
            {
                return Err(format!("large message corrupted ({} bytes)", b.len()));
            }
            let s = t.recv(peer).map_err(|e| e.to_string())?;
            if s != vec![other] {
                return Err("message after the large one corrupted".into());
            }
            Ok(t)
        })
    };
    let h0 = run(t0, 1);
    let h1 = run(t1, 0);
    let r0 = h0.join().map_err(|_| "party 0 panicked")?;
    let r1 = h1.join().map_err(|_| "party 1 panicked")?;
    r0?;
    r1?;
    Ok(())
}

fn counters(make: &dyn NetworkFactory) -> Result<(), String> {
    let mut ts = net(make, 2)?;
    let (b0, m0) = (ts[0].bytes_sent(), ts[0].messages_sent());
    ts[0].send(1, vec![7; 100]).map_err(|e| e.to_string())?;
    ts[0].send(1, Vec::new()).map_err(|e| e.to_string())?;
    let _ = ts[1].recv(0).map_err(|e| e.to_string())?;
    let _ = ts[1].recv(0).map_err(|e| e.to_string())?;
    if ts[0].bytes_sent() - b0 != 100 || ts[0].messages_sent() - m0 != 2 {
        return Err(format!(
            "after 2 messages of 100 bytes total: bytes {} messages {}",
            ts[0].bytes_sent() - b0,
            ts[0].messages_sent() - m0
        ));
    }
    Ok(())
}

fn timeout(make: &dyn NetworkFactory) -> Result<(), String> {
    let mut ts = net(make, 2)?;
    let name = ts[0].peer_name(1);
    let start = Instant::now();
    let r = ts[0].recv(1);
    let took = start.elapsed();
    match r {
        Err(MpcError::Timeout { peer, .. }) if peer == name => {}
        other => return Err(format!("recv from a silent peer gave {other:?}")),
    }
    if took > TIMEOUT * 20 + Duration::from_secs(2) {
        return Err(format!("timeout of {TIMEOUT:?} took {took:?}"));
    }
    Ok(())
}

fn peer_gone(make: &dyn NetworkFactory) -> Result<(), String> {
    let mut ts = net(make, 3)?;
    let name = ts[0].peer_name(2);
    let mut t2 = ts.pop().ok_or("no party 2")?;
    t2.send(0, vec![1, 2, 3]).map_err(|e| e.to_string())?;
    drop(t2);
    let m = ts[0].recv(2).map_err(|e| e.to_string())?;
    if m != vec![1, 2, 3] {
        return Err("message sent before the drop was lost or changed".into());
    }
    let start = Instant::now();
    match ts[0].recv(2) {
        Err(MpcError::PeerGone { peer }) if peer == name => {}
        other => return Err(format!("recv from a dropped peer gave {other:?}")),
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err("noticing a dropped peer took more than 5 s".into());
    }
    // The remaining link is unaffected.
    ts[1].send(0, vec![9]).map_err(|e| e.to_string())?;
    if ts[0].recv(1).map_err(|e| e.to_string())? != vec![9] {
        return Err("link 1->0 broken by the drop of party 2".into());
    }
    Ok(())
}

fn send_to_gone(make: &dyn NetworkFactory) -> Result<(), String> {
    let mut ts = net(make, 2)?;
    let name = ts[0].peer_name(1);
    drop(ts.pop());
    let start = Instant::now();
    match ts[0].send(1, vec![0; 1024]) {
        Ok(()) => {}
        Err(MpcError::PeerGone { peer }) if peer == name => {}
        Err(e) => return Err(format!("send to a dropped peer gave {e:?}")),
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err("send to a dropped peer blocked".into());
    }
    Ok(())
}
