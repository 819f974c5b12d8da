//! Wire format of peer links: frames, the hello, and multiplexed messages.
//!
//! - Frame: `u32` big-endian payload length, then the payload. Lengths above the configured
//!   maximum are rejected before anything is allocated; EOF inside a frame is an error, EOF
//!   exactly between frames is a clean close.
//! - Hello (first frame in each direction, 50 bytes): `u16` BE protocol version, 32-byte chain
//!   id (genesis block hash), 16-byte member id.
//! - Every later frame is a bincode-encoded [`Message`] (varint `DefaultOptions`, size limit
//!   = max frame, trailing bytes rejected).

use std::time::Duration;

use bincode::Options;
use consort_crypto::{Hash, MemberId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::PeerError;

/// Frames up to this size are read into a buffer of their announced size.
const EXACT_READ: usize = 2 << 20;

/// Reads one frame. Returns `Ok(None)` on a clean EOF before the first header byte.
///
/// Once the first header byte arrived, the rest of the frame must arrive within
/// `body_timeout`; an idle link waiting for the next frame is never timed out here.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    body_timeout: Duration,
) -> Result<Option<Vec<u8>>, PeerError> {
    let mut header = [0u8; 4];
    let first = match r.read(&mut header).await {
        Ok(n) => n,
        // A TLS peer that vanished without close_notify, exactly between frames: frames are
        // self-delimiting, so nothing was truncated; treat it as a close.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
        Err(e) => return Err(e.into()),
    };
    if first == 0 {
        return Ok(None);
    }
    let rest = async {
        let mut filled = first;
        while filled < header.len() {
            let n = r.read(header.get_mut(filled..).unwrap_or_default()).await?;
            if n == 0 {
                return Err(PeerError::Malformed(
                    "connection closed inside a frame header".into(),
                ));
            }
            filled += n;
        }
        let len = u32::from_be_bytes(header);
        if len as u64 > max as u64 {
            return Err(PeerError::FrameTooLarge {
                len: len.into(),
                max,
            });
        }
        let len = len as usize;
        // Up to EXACT_READ the announced length is allocated at once (no regrowth copies
        // for the common sizes); beyond it the buffer grows with the data actually
        // received, so a peer cannot make us reserve the maximum by announcing it.
        let mut buf = Vec::with_capacity(if len <= EXACT_READ { len } else { 64 * 1024 });
        (&mut *r).take(len as u64).read_to_end(&mut buf).await?;
        if buf.len() != len {
            return Err(PeerError::Malformed(format!(
                "connection closed inside a frame ({} of {len} bytes received)",
                buf.len()
            )));
        }
        Ok(buf)
    };
    match tokio::time::timeout(body_timeout, rest).await {
        Ok(res) => res.map(Some),
        Err(_) => Err(PeerError::Malformed(format!(
            "frame not completed within {body_timeout:?}"
        ))),
    }
}

/// A frame to write: its payload is `head || body`, kept apart so that a large request
/// body is written from where it is instead of being copied behind its header first.
#[derive(Debug)]
pub struct OutFrame {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl OutFrame {
    /// A frame whose whole payload is `payload`.
    pub fn whole(payload: Vec<u8>) -> Self {
        Self {
            head: payload,
            body: Vec::new(),
        }
    }
}

/// Writes one frame given in two parts (not flushed). Refuses payloads above `max`.
pub async fn write_frame_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &OutFrame,
    max: usize,
) -> Result<(), PeerError> {
    write_parts(w, &frame.head, &frame.body, max).await
}

/// Writes one frame (not flushed). Refuses payloads above `max`.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
    max: usize,
) -> Result<(), PeerError> {
    write_parts(w, payload, &[], max).await
}

/// The frame whose payload is `head || body`.
async fn write_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    head: &[u8],
    body: &[u8],
    max: usize,
) -> Result<(), PeerError> {
    let total = head.len() + body.len();
    let len = u32::try_from(total)
        .ok()
        .filter(|l| *l as u64 <= max as u64)
        .ok_or(PeerError::FrameTooLarge {
            len: total as u64,
            max,
        })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(head).await?;
    w.write_all(body).await?;
    Ok(())
}

/// The application hello exchanged right after the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Peer link protocol version.
    pub version: u16,
    /// Chain id (genesis block hash) the sender runs.
    pub chain_id: Hash,
    /// The sender's member id; must match its certificate key.
    pub member_id: MemberId,
}

impl Hello {
    /// Encoded length in bytes.
    pub const LEN: usize = 2 + 32 + 16;

    /// Fixed-width encoding: version BE, chain id, member id.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.chain_id.0);
        out.extend_from_slice(&self.member_id.0);
        out
    }

    /// Decodes a hello; any length other than [`Hello::LEN`] is malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self, PeerError> {
        let bad = || PeerError::Malformed(format!("hello must be {} bytes", Self::LEN));
        if bytes.len() != Self::LEN {
            return Err(bad());
        }
        let (version, rest) = bytes.split_at(2);
        let (chain, member) = rest.split_at(32);
        Ok(Self {
            version: u16::from_be_bytes(version.try_into().map_err(|_| bad())?),
            chain_id: Hash(chain.try_into().map_err(|_| bad())?),
            member_id: MemberId(member.try_into().map_err(|_| bad())?),
        })
    }
}

/// A multiplexed message on an established link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Client to server: handle `body`, answer with the same `id`.
    Request {
        /// Correlation id chosen by the client, unique among its in-flight requests.
        id: u64,
        /// Opaque request body (as bincode bytes: copied whole, not element by element).
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Server to client: the handler's result for request `id`.
    Response {
        /// The request's correlation id.
        id: u64,
        /// Handler output or handler error text.
        #[serde(with = "bytes_result")]
        result: Result<Vec<u8>, String>,
    },
}

/// `Result<Vec<u8>, String>` with the bytes encoded as one block. Same bincode layout as
/// the plain `Result` (variant index, then the length-prefixed bytes or string).
mod bytes_result {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    enum Out<'a> {
        Ok(#[serde(with = "serde_bytes")] &'a [u8]),
        Err(&'a str),
    }

    #[derive(Deserialize)]
    enum In {
        Ok(#[serde(with = "serde_bytes")] Vec<u8>),
        Err(String),
    }

    pub fn serialize<S: Serializer>(r: &Result<Vec<u8>, String>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Ok(bytes) => Out::Ok(bytes),
            Err(text) => Out::Err(text),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Result<Vec<u8>, String>, D::Error> {
        Ok(match In::deserialize(d)? {
            In::Ok(bytes) => Ok(bytes),
            In::Err(text) => Err(text),
        })
    }
}

fn bincode_opts(max: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(max as u64)
        .reject_trailing_bytes()
}

impl Message {
    /// Encodes the message; refuses results larger than `max`.
    pub fn encode(&self, max: usize) -> Result<Vec<u8>, PeerError> {
        let len = bincode::DefaultOptions::new()
            .serialized_size(self)
            .map_err(|e| PeerError::Malformed(format!("encoding message: {e}")))?;
        if len > max as u64 {
            return Err(PeerError::FrameTooLarge { len, max });
        }
        bincode_opts(max)
            .serialize(self)
            .map_err(|e| PeerError::Malformed(format!("encoding message: {e}")))
    }

    /// The frame of `Request { id, body }` without copying `body`: the head is the
    /// encoding of the variant index, the id and the body length, exactly the bytes
    /// [`Self::encode`] puts before the body.
    pub fn request_frame(id: u64, body: Vec<u8>, max: usize) -> Result<OutFrame, PeerError> {
        let head = bincode::DefaultOptions::new()
            .serialize(&(0u32, id, body.len() as u64))
            .map_err(|e| PeerError::Malformed(format!("encoding message: {e}")))?;
        let len = (head.len() + body.len()) as u64;
        if len > max as u64 {
            return Err(PeerError::FrameTooLarge { len, max });
        }
        Ok(OutFrame { head, body })
    }

    /// Decodes a message frame payload, allocating at most `max` bytes.
    pub fn decode(bytes: &[u8], max: usize) -> Result<Self, PeerError> {
        bincode_opts(max)
            .deserialize(bytes)
            .map_err(|e| PeerError::Malformed(format!("undecodable message frame: {e}")))
    }

    /// Decodes a frame that must be a request, reusing the frame's buffer for the body
    /// (the header is shifted out) instead of copying the body into a new one.
    pub fn decode_request(mut frame: Vec<u8>, max: usize) -> Result<(u64, Vec<u8>), PeerError> {
        /// The request variant (index 0) of [`Message`], borrowing its body.
        #[derive(Deserialize)]
        enum Borrowed<'a> {
            Request {
                id: u64,
                #[serde(borrow, with = "serde_bytes")]
                body: &'a [u8],
            },
        }
        let (id, start, len) = match bincode_opts(max).deserialize::<Borrowed<'_>>(&frame) {
            Ok(Borrowed::Request { id, body }) => (
                id,
                body.as_ptr() as usize - frame.as_ptr() as usize,
                body.len(),
            ),
            Err(_) => {
                return Err(match Self::decode(&frame, max) {
                    Ok(Message::Response { id, .. }) => PeerError::Malformed(format!(
                        "unexpected response frame (id {id}) on a server link"
                    )),
                    Ok(Message::Request { .. }) => {
                        PeerError::Malformed("undecodable request frame".into())
                    }
                    Err(e) => e,
                })
            }
        };
        frame.truncate(start + len);
        frame.drain(..start);
        Ok((id, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test]
    async fn exact_max_is_accepted_both_ways() {
        let payload = vec![7u8; 100];
        let mut out = Vec::new();
        write_frame(&mut out, &payload, 100).await.unwrap();
        assert_eq!(out, framed(&payload));
        let got = read_frame(&mut out.as_slice(), 100, T).await.unwrap();
        assert_eq!(got, Some(payload));
    }

    #[tokio::test]
    async fn max_plus_one_is_rejected_both_ways() {
        let payload = vec![7u8; 101];
        let mut out = Vec::new();
        let err = write_frame(&mut out, &payload, 100).await.unwrap_err();
        assert!(matches!(
            err,
            PeerError::FrameTooLarge { len: 101, max: 100 }
        ));
        assert!(out.is_empty());
        let wire = framed(&payload);
        let err = read_frame(&mut wire.as_slice(), 100, T).await.unwrap_err();
        assert!(matches!(
            err,
            PeerError::FrameTooLarge { len: 101, max: 100 }
        ));
    }

    #[tokio::test]
    async fn huge_length_prefix_is_rejected_without_payload() {
        let wire = u32::MAX.to_be_bytes();
        let err = read_frame(&mut wire.as_slice(), 16 << 20, T)
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::FrameTooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn truncated_body_and_header_are_errors() {
        let wire = framed(&[1, 2, 3, 4, 5]);
        let short = &wire[..wire.len() - 1];
        let err = read_frame(&mut &short[..], 100, T).await.unwrap_err();
        assert!(matches!(err, PeerError::Malformed(_)), "{err}");
        let err = read_frame(&mut &wire[..2], 100, T).await.unwrap_err();
        assert!(matches!(err, PeerError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn clean_eof_and_empty_frame() {
        assert_eq!(read_frame(&mut &[][..], 100, T).await.unwrap(), None);
        let wire = framed(&[]);
        let mut r = wire.as_slice();
        assert_eq!(read_frame(&mut r, 100, T).await.unwrap(), Some(vec![]));
        assert_eq!(read_frame(&mut r, 100, T).await.unwrap(), None);
    }

    #[tokio::test]
    async fn stalled_frame_body_times_out() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        let err = read_frame(&mut b, 100, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::Malformed(_)), "{err}");
    }

    #[test]
    fn hello_roundtrip_and_bad_length() {
        let h = Hello {
            version: 1,
            chain_id: Hash([3; 32]),
            member_id: MemberId([9; 16]),
        };
        let enc = h.encode();
        assert_eq!(enc.len(), Hello::LEN);
        assert_eq!(Hello::decode(&enc).unwrap(), h);
        assert!(Hello::decode(&enc[..49]).is_err());
        assert!(Hello::decode(&[enc.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn byte_blocks_keep_the_plain_bincode_layout() {
        #[derive(Serialize)]
        enum Plain {
            Request {
                id: u64,
                body: Vec<u8>,
            },
            Response {
                id: u64,
                result: Result<Vec<u8>, String>,
            },
        }
        let opts = bincode::DefaultOptions::new();
        let cases = [
            (
                Message::Request {
                    id: 7,
                    body: vec![1, 2, 300u16 as u8],
                },
                Plain::Request {
                    id: 7,
                    body: vec![1, 2, 300u16 as u8],
                },
            ),
            (
                Message::Response {
                    id: 9,
                    result: Ok(vec![5; 300]),
                },
                Plain::Response {
                    id: 9,
                    result: Ok(vec![5; 300]),
                },
            ),
            (
                Message::Response {
                    id: 9,
                    result: Err("no".into()),
                },
                Plain::Response {
                    id: 9,
                    result: Err("no".into()),
                },
            ),
        ];
        for (ours, plain) in cases {
            assert_eq!(
                ours.encode(1 << 20).unwrap(),
                opts.serialize(&plain).unwrap()
            );
        }
    }

    #[test]
    fn request_frames_in_two_parts_match_the_encoding() {
        for id in [0u64, 250, 251, 65_535, 65_536, u64::MAX] {
            for len in [0usize, 1, 250, 251, 70_000] {
                let body = vec![3u8; len];
                let whole = Message::Request {
                    id,
                    body: body.clone(),
                }
                .encode(1 << 20)
                .unwrap();
                let parts = Message::request_frame(id, body, 1 << 20).unwrap();
                assert_eq!(
                    [parts.head, parts.body].concat(),
                    whole,
                    "id {id}, len {len}"
                );
            }
        }
        assert!(matches!(
            Message::request_frame(1, vec![0; 100], 50),
            Err(PeerError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn requests_decode_in_place_and_responses_are_refused_as_requests() {
        for body in [vec![], vec![9u8; 3], vec![1u8; 70_000]] {
            let m = Message::Request {
                id: 300,
                body: body.clone(),
            };
            let frame = m.encode(1 << 20).unwrap();
            assert_eq!(
                Message::decode_request(frame, 1 << 20).unwrap(),
                (300, body)
            );
        }
        let r = Message::Response {
            id: 5,
            result: Ok(vec![1]),
        }
        .encode(100)
        .unwrap();
        let err = Message::decode_request(r, 100).unwrap_err().to_string();
        assert!(err.contains("unexpected response"), "{err}");
        assert!(Message::decode_request(vec![0xff; 9], 100).is_err());
        let mut trailing = Message::Request {
            id: 1,
            body: vec![2],
        }
        .encode(100)
        .unwrap();
        trailing.push(0);
        assert!(Message::decode_request(trailing, 100).is_err());
    }

    #[test]
    fn message_roundtrip_limits_and_garbage() {
        let m = Message::Request {
            id: 42,
            body: vec![1; 50],
        };
        let enc = m.encode(100).unwrap();
        assert_eq!(Message::decode(&enc, 100).unwrap(), m);
        assert!(matches!(m.encode(10), Err(PeerError::FrameTooLarge { .. })));
        let r = Message::Response {
            id: 1,
            result: Err("nope".into()),
        };
        assert_eq!(Message::decode(&r.encode(100).unwrap(), 100).unwrap(), r);
        // A vector length claiming far more than the limit must not allocate it.
        let bogus = [0u8, 1, 0xfc, 0xff, 0xff, 0xff, 0x7f];
        assert!(Message::decode(&bogus, 1000).is_err());
        assert!(Message::decode(&[0xff; 20], 1000).is_err());
        let mut trailing = enc.clone();
        trailing.push(0);
        assert!(Message::decode(&trailing, 1000).is_err());
    }
}
