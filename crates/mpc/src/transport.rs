//! The transport trait: the only way protocol code talks to peers, and the wire codec.
//!
//! Protocol code is synchronous: each party runs on its own thread and calls
//! [`Transport::send`] / [`Transport::recv`]. Every protocol round sends at most one message
//! to each peer, carrying the whole batch, so the number of messages does not grow with the
//! vector length. Vectors travel as little-endian `u64` arrays; decoding checks lengths and
//! returns [`MpcError::Malformed`], never panics.
//!
//! ## Contract for implementations
//! - Messages between an ordered pair of parties arrive in order, unmodified, whole.
//! - `send` must not wait for the peer to call `recv` (it buffers): in a round every party
//!   first sends and then receives, so a rendezvous transport would deadlock.
//! - `recv` is bounded by a timeout chosen by the implementation and fails with
//!   [`MpcError::Timeout`]; a closed link fails with [`MpcError::PeerGone`] once the
//!   messages sent before the close have been delivered.
//! - Empty messages are legal and must be delivered as empty messages.
//!
//! [`crate::conformance::run_all`] checks these properties.

use crate::error::{MpcError, Result};

/// Identifies a party within one session: 0, 1, 2 are the compute parties; 3 and above
/// are external input owners or result parties.
pub type PartyId = usize;

/// Number of compute parties.
pub const COMPUTE_PARTIES: usize = 3;

/// Blocking, ordered, reliable point-to-point messaging between the parties of one session.
pub trait Transport: Send {
    /// This party's id.
    fn me(&self) -> PartyId;
    /// Queues `msg` for `to`. Must not block until the peer receives it.
    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<()>;
    /// Next message from `from`, waiting at most the implementation's timeout.
    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>>;
    /// Human-readable name of a party, used in error messages ("peer m2 vanished").
    fn peer_name(&self, p: PartyId) -> String;
    /// Total payload bytes sent so far.
    fn bytes_sent(&self) -> u64;
    /// Total messages sent so far.
    fn messages_sent(&self) -> u64;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn me(&self) -> PartyId {
        (**self).me()
    }
    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<()> {
        (**self).send(to, msg)
    }
    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>> {
        (**self).recv(from)
    }
    fn peer_name(&self, p: PartyId) -> String {
        (**self).peer_name(p)
    }
    fn bytes_sent(&self) -> u64 {
        (**self).bytes_sent()
    }
    fn messages_sent(&self) -> u64 {
        (**self).messages_sent()
    }
}

/// Trailing frame tag of a protocol message carrying data.
pub const TAG_DATA: u8 = 0;
/// Trailing frame tag of an abort notice (the payload is the UTF-8 reason).
pub const TAG_ABORT: u8 = 1;

/// Protocol messages carry one trailing tag byte (appending is O(1), prepending would
/// copy the batch): data, or an abort notice from a party that failed.
pub fn unframe(mut m: Vec<u8>, peer: String) -> Result<Vec<u8>> {
    match m.pop() {
        Some(TAG_DATA) => Ok(m),
        Some(TAG_ABORT) => Err(MpcError::Aborted {
            peer,
            reason: String::from_utf8_lossy(&m).into_owned(),
        }),
        Some(t) => Err(MpcError::Malformed {
            peer,
            reason: format!("unknown frame tag {t}"),
        }),
        None => Err(MpcError::Malformed {
            peer,
            reason: "empty frame".into(),
        }),
    }
}

/// Marks `msg` as a data message (the one framing every protocol on a session uses).
pub fn frame_data(msg: &mut Vec<u8>) {
    msg.push(TAG_DATA);
}

/// Sends `msg` to `to` as a data message.
pub fn send_data<T: Transport + ?Sized>(t: &mut T, to: PartyId, mut msg: Vec<u8>) -> Result<()> {
    frame_data(&mut msg);
    t.send(to, msg)
}

/// The next data message from `from`; a peer's abort notice becomes
/// [`MpcError::Aborted`].
pub fn recv_data<T: Transport + ?Sized>(t: &mut T, from: PartyId) -> Result<Vec<u8>> {
    let m = t.recv(from)?;
    unframe(m, t.peer_name(from))
}

/// An abort notice carrying `reason`.
pub fn frame_abort(reason: &str) -> Vec<u8> {
    let mut m = reason.as_bytes().to_vec();
    m.push(TAG_ABORT);
    m
}

/// Appends `v` as little-endian u64s.
pub fn put_u64s(out: &mut Vec<u8>, v: &[u64]) {
    out.reserve(v.len() * 8);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Encodes `v` as little-endian u64s.
pub fn encode_u64s(v: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 8 + 1);
    put_u64s(&mut out, v);
    out
}

/// Reads a message part by part, checking lengths; every failure is `Malformed` naming
/// the sender.
pub struct MsgReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    peer: String,
}

impl<'a> MsgReader<'a> {
    /// Starts reading a message received from `peer` (its display name).
    pub fn new(bytes: &'a [u8], peer: String) -> Self {
        MsgReader {
            bytes,
            pos: 0,
            peer,
        }
    }

    fn malformed(&self, reason: String) -> MpcError {
        MpcError::Malformed {
            peer: self.peer.clone(),
            reason,
        }
    }

    /// Takes exactly `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.malformed(format!(
                    "message of {} bytes is too short: needed {} more at offset {}",
                    self.bytes.len(),
                    n,
                    self.pos
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Takes one little-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// Takes `n` little-endian u64s.
    pub fn u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        let len = n
            .checked_mul(8)
            .ok_or_else(|| self.malformed("length overflow".into()))?;
        let b = self.bytes(len)?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }

    /// Fails unless the whole message has been consumed.
    pub fn finish(self) -> Result<()> {
        if self.pos != self.bytes.len() {
            return Err(self.malformed(format!(
                "expected {} bytes, got {}",
                self.pos,
                self.bytes.len()
            )));
        }
        Ok(())
    }
}

/// Decodes a message that must contain exactly `n` u64s.
pub fn decode_u64s(bytes: &[u8], n: usize, peer: String) -> Result<Vec<u64>> {
    if bytes.len() != n.saturating_mul(8) {
        return Err(MpcError::Malformed {
            peer,
            reason: format!(
                "expected {} u64 values ({} bytes), got {} bytes",
                n,
                n * 8,
                bytes.len()
            ),
        });
    }
    let mut r = MsgReader::new(bytes, peer);
    let v = r.u64s(n)?;
    r.finish()?;
    Ok(v)
}
