//! In-memory transport over `std::sync::mpsc` channels, for tests and local benchmarks.
//!
//! Dropping a [`MemTransport`] closes its links: peers waiting on it get
//! [`MpcError::PeerGone`] (after draining what it sent before), never a hang.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{MpcError, Result};
use crate::transport::{PartyId, Transport};

/// One party's end of an in-memory network.
pub struct MemTransport {
    me: PartyId,
    names: Arc<Vec<String>>,
    to: Vec<Option<Sender<Vec<u8>>>>,
    from: Vec<Option<Receiver<Vec<u8>>>>,
    timeout: Duration,
    bytes: u64,
    msgs: u64,
}

/// Builds a fully connected in-memory network of `n` parties named `p0`, `p1`, …; every
/// `recv` gives up after `timeout`.
pub fn mem_network(n: usize, timeout: Duration) -> Vec<MemTransport> {
    let names = (0..n).map(|i| format!("p{i}")).collect();
    mem_network_named(names, timeout)
}

/// As [`mem_network`], with explicit party names (used in error messages).
pub fn mem_network_named(names: Vec<String>, timeout: Duration) -> Vec<MemTransport> {
    let n = names.len();
    let names = Arc::new(names);
    let mut to: Vec<Vec<Option<Sender<Vec<u8>>>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut from: Vec<Vec<Option<Receiver<Vec<u8>>>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    for (i, row) in to.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            if i != j {
                let (tx, rx) = channel();
                *slot = Some(tx);
                from[j][i] = Some(rx);
            }
        }
    }
    to.into_iter()
        .zip(from)
        .enumerate()
        .map(|(me, (to, from))| MemTransport {
            me,
            names: names.clone(),
            to,
            from,
            timeout,
            bytes: 0,
            msgs: 0,
        })
        .collect()
}

impl MemTransport {
    /// Closes every link of this party, as if its process died; peers see `PeerGone`.
    pub fn vanish(&mut self) {
        self.to.iter_mut().for_each(|s| *s = None);
        self.from.iter_mut().for_each(|r| *r = None);
    }

    fn unknown(&self, p: PartyId) -> MpcError {
        MpcError::arg(format!("party {} has no link to party {p}", self.me))
    }
}

impl Transport for MemTransport {
    fn me(&self) -> PartyId {
        self.me
    }

    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<()> {
        if to == self.me || to >= self.to.len() {
            return Err(self.unknown(to));
        }
        let len = msg.len() as u64;
        let peer = self.peer_name(to);
        match &self.to[to] {
            Some(tx) => tx.send(msg).map_err(|_| MpcError::PeerGone { peer })?,
            None => return Err(MpcError::PeerGone { peer }),
        }
        self.bytes += len;
        self.msgs += 1;
        Ok(())
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>> {
        if from == self.me || from >= self.from.len() {
            return Err(self.unknown(from));
        }
        let peer = self.peer_name(from);
        let rx = self.from[from]
            .as_ref()
            .ok_or_else(|| MpcError::PeerGone { peer: peer.clone() })?;
        match rx.recv_timeout(self.timeout) {
            Ok(m) => Ok(m),
            Err(RecvTimeoutError::Timeout) => Err(MpcError::Timeout {
                peer,
                after: self.timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(MpcError::PeerGone { peer }),
        }
    }

    fn peer_name(&self, p: PartyId) -> String {
        self.names
            .get(p)
            .cloned()
            .unwrap_or_else(|| format!("party{p}"))
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    fn messages_sent(&self) -> u64 {
        self.msgs
    }
}
