//! The MPC chunk on the peer links (docs/FORMAT.md §15):
//! `"MPC\x01" || session id (16 bytes) || sequence number (u64 LE) || flags (1 byte: 0x01
//! last piece of a message, 0x02 the sender left the session) || data`. Sequence numbers count the chunks one party sends
//! another within a session from 0; several chunks are in flight at once and the receiver
//! puts them back in order.
//!
//! The magic is not a valid start of any other peer request (those begin with a small
//! little-endian variant index), so the peer service tells the two apart by the prefix,
//! and protocol batches of tens of megabytes travel without a serialiser walking them
//! byte by byte.

use crate::error::NodeError;
use std::fmt;

/// Prefix of every MPC chunk.
pub const MPC_MAGIC: [u8; 4] = *b"MPC\x01";
/// Bytes before the data.
pub const HEADER_LEN: usize = 4 + 16 + 8 + 1;
/// The largest piece of a message sent in one request (messages are split and rejoined).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Identifies one MPC session among all those the consortium runs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

impl Chunk {
    /// A chunk whose data is all of `data`.
    pub fn new(session: SessionId, seq: u64, last: bool, data: Vec<u8>) -> Self {
        Self {
            session,
            seq,
            last,
            close: false,
            buffer: data,
            start: 0,
        }
    }

    /// The chunk's data.
    pub fn data(&self) -> &[u8] {
        self.buffer.get(self.start..).unwrap_or_default()
    }
}

impl SessionId {
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Self(id)
    }

    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// One piece of a protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub session: SessionId,
    pub seq: u64,
    pub last: bool,
    /// The sender has left the session: nothing follows (the data is empty).
    pub close: bool,
    /// The chunk's data is `buffer[start..]`: decoding keeps the request's buffer as it
    /// is, so the data is copied once, into the message it belongs to.
    pub buffer: Vec<u8>,
    pub start: usize,
}

/// Whether a peer request body is an MPC chunk.
pub fn is_chunk(body: &[u8]) -> bool {
    body.starts_with(&MPC_MAGIC)
}

/// The request body carrying `data` as a piece of a message of `session`.
pub fn encode_chunk(session: SessionId, seq: u64, last: bool, data: &[u8]) -> Vec<u8> {
    encode(session, seq, u8::from(last), data)
}

/// The request body saying the sender has left `session` after chunk `seq - 1`.
pub fn encode_close(session: SessionId, seq: u64) -> Vec<u8> {
    encode(session, seq, FLAG_CLOSE, &[])
}

const FLAG_LAST: u8 = 0x01;
const FLAG_CLOSE: u8 = 0x02;

fn encode(session: SessionId, seq: u64, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(HEADER_LEN + data.len());
    body.extend_from_slice(&MPC_MAGIC);
    body.extend_from_slice(&session.0);
    body.extend_from_slice(&seq.to_le_bytes());
    body.push(flags);
    body.extend_from_slice(data);
    body
}

/// Decodes a chunk; any deviation is an error naming it.
pub fn decode_chunk(body: Vec<u8>) -> Result<Chunk, NodeError> {
    if !is_chunk(&body) {
        return Err(NodeError::Malformed("not an MPC chunk (bad magic)".into()));
    }
    if body.len() < HEADER_LEN {
        return Err(NodeError::Malformed(format!(
            "MPC chunk of {} bytes is shorter than its {HEADER_LEN}-byte header",
            body.len()
        )));
    }
    let flags = body[HEADER_LEN - 1];
    let valid =
        flags == 0 || flags == FLAG_LAST || (flags == FLAG_CLOSE && body.len() == HEADER_LEN);
    if !valid {
        return Err(NodeError::Malformed(format!(
            "MPC chunk has invalid flags {flags:#04x} (for {} data bytes)",
            body.len() - HEADER_LEN
        )));
    }
    let mut session = [0u8; 16];
    session.copy_from_slice(&body[4..20]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&body[20..28]);
    Ok(Chunk {
        session: SessionId(session),
        seq: u64::from_le_bytes(seq),
        last: flags == FLAG_LAST,
        close: flags == FLAG_CLOSE,
        buffer: body,
        start: HEADER_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_bad_ones_are_named() {
        let s = SessionId([3; 16]);
        for (seq, last, data) in [(0, true, &b""[..]), (u64::MAX, false, &b"abc"[..])] {
            let c = decode_chunk(encode_chunk(s, seq, last, data)).unwrap();
            assert_eq!((c.session, c.seq, c.last, c.data()), (s, seq, last, data));
        }
        assert!(decode_chunk(b"MPC\x01short".to_vec())
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        let mut bad = encode_chunk(s, 1, true, b"x");
        bad[HEADER_LEN - 1] = 7;
        assert!(decode_chunk(bad).unwrap_err().to_string().contains("flags"));
        let close = decode_chunk(encode_close(s, 5)).unwrap();
        assert!(close.close && !close.last && close.data().is_empty() && close.seq == 5);
        let mut close_with_data = encode_close(s, 5);
        close_with_data.push(1);
        assert!(decode_chunk(close_with_data)
            .unwrap_err()
            .to_string()
            .contains("flags"));
        assert!(decode_chunk(b"nope".to_vec())
            .unwrap_err()
            .to_string()
            .contains("magic"));
        assert_eq!(SessionId::parse(&s.to_string()), Some(s));
        assert_eq!(SessionId::parse("zz"), None);
    }
}
