//! A compute party's session: its transport, its correlated randomness, the round counter,
//! and the low-level steps every protocol is built from (one round each): resharing a
//! 3-out-of-3 value into replicated form, inputs by a compute party, and reveals.
//!
//! A session is single-use after an error: the parties' PRG streams are then out of step,
//! so every later call returns [`MpcError::Poisoned`].

use rand_core::{CryptoRng, RngCore};

use crate::error::{MpcError, Result};
use crate::prg::{agree_keys, PartyKeys, CHUNK};
use crate::transport::{
    decode_u64s, frame_abort, frame_data, put_u64s, unframe, PartyId, Transport, COMPUTE_PARTIES,
};

/// Words per message when a reshare streams a long vector (512 KiB).
pub(crate) const STREAM_WORDS: usize = 1 << 16;

/// Slices a party sends ahead of the one it decodes: enough that its peer's next slice is
/// usually there when it looks, while it computes its own.
const STREAM_LAG: usize = 2;

/// Which ring a component vector lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ring {
    /// Z_2^64, wrapping addition.
    Add,
    /// Z_2 bitwise (64 bits per word), XOR.
    Xor,
}

impl Ring {
    #[inline]
    pub(crate) fn op(self, x: u64, y: u64) -> u64 {
        match self {
            Ring::Add => x.wrapping_add(y),
            Ring::Xor => x ^ y,
        }
    }
}

/// What an input by a compute party needs from this party: the message it sends (owner
/// only), its two components, and whether it must fill `a` from the owner's message.
pub(crate) struct InputParts {
    pub send: Option<(PartyId, Vec<u8>)>,
    pub a: Vec<u64>,
    pub b: Vec<u64>,
    pub receiver: bool,
}

/// One compute party (0, 1 or 2) of a three-party session.
pub struct Session {
    t: Box<dyn Transport>,
    me: PartyId,
    keys: PartyKeys,
    rounds: u64,
    poisoned: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("me", &self.me)
            .field("rounds", &self.rounds)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session over `t` (whose `me()` must be 0, 1 or 2): one round in which the
    /// pairwise and common PRG keys are agreed.
    pub fn setup(mut t: Box<dyn Transport>, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self> {
        let me = t.me();
        if me >= COMPUTE_PARTIES {
            return Err(MpcError::arg(format!(
                "party {me} is not a compute party (0, 1, 2)"
            )));
        }
        let keys = agree_keys(&mut *t, rng)?;
        Ok(Session {
            t,
            me,
            keys,
            rounds: 1,
            poisoned: None,
        })
    }

    /// This party's id (0, 1 or 2).
    pub fn me(&self) -> PartyId {
        self.me
    }
    /// Party i+1.
    pub fn next(&self) -> PartyId {
        (self.me + 1) % 3
    }
    /// Party i−1.
    pub fn prev(&self) -> PartyId {
        (self.me + 2) % 3
    }
    /// Communication rounds so far (including key agreement).
    pub fn rounds(&self) -> u64 {
        self.rounds
    }
    /// Bytes this party has sent.
    pub fn bytes_sent(&self) -> u64 {
        self.t.bytes_sent()
    }
    /// Messages this party has sent.
    pub fn messages_sent(&self) -> u64 {
        self.t.messages_sent()
    }
    /// Display name of a party.
    pub fn peer_name(&self, p: PartyId) -> String {
        self.t.peer_name(p)
    }
    /// Gives the transport back (e.g. to reuse a link after the session).
    pub fn into_transport(self) -> Box<dyn Transport> {
        self.t
    }

    pub(crate) fn keys(&mut self) -> &mut PartyKeys {
        &mut self.keys
    }

    /// Records a failure (poisoning the session) and returns it.
    /// The first failure also tells the other compute parties why, so that a party
    /// blocked on a healthy peer learns which peer actually failed (best effort).
    pub(crate) fn fail<T>(&mut self, e: MpcError) -> Result<T> {
        self.poison(&e);
        Err(e)
    }

    fn poison(&mut self, e: &MpcError) {
        if self.poisoned.is_none() {
            self.poisoned = Some(e.to_string());
            let why = match e {
                MpcError::Aborted { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            for p in [self.next(), self.prev()] {
                let _ = self.t.send(p, frame_abort(&why));
            }
        }
    }

    /// After `p` vanished or timed out: did it leave an abort notice explaining that it
    /// was itself waiting on someone else? Then that is the better error.
    fn explain(&mut self, p: PartyId, e: MpcError) -> MpcError {
        let peer = self.t.peer_name(p);
        match e {
            MpcError::Timeout { .. } => {
                // Tell the others at once (they may be waiting on us), then give p one more
                // timeout period to send its own notice.
                self.poison(&e);
                match self.t.recv(p).and_then(|m| unframe(m, peer)) {
                    Err(a @ MpcError::Aborted { .. }) => a,
                    _ => e,
                }
            }
            MpcError::PeerGone { .. } => {
                // A gone peer's queue drains without blocking; look for its notice.
                for _ in 0..64 {
                    match self.t.recv(p).map(|m| unframe(m, peer.clone())) {
                        Ok(Err(a @ MpcError::Aborted { .. })) => return a,
                        Ok(_) => continue,
                        Err(_) => break,
                    }
                }
                e
            }
            other => other,
        }
    }

    fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(MpcError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// One communication round: send every message, then receive one message from each
    /// party in `recv_from`, in that order. Every party calls this once per round, even if
    /// it sends and receives nothing, so round counts agree.
    pub(crate) fn round(
        &mut self,
        sends: Vec<(PartyId, Vec<u8>)>,
        recv_from: &[PartyId],
    ) -> Result<Vec<Vec<u8>>> {
        self.check()?;
        self.rounds += 1;
        for (to, mut msg) in sends {
            frame_data(&mut msg);
            if let Err(e) = self.t.send(to, msg) {
                let e = self.explain(to, e);
                return self.fail(e);
            }
        }
        let mut out = Vec::with_capacity(recv_from.len());
        for &p in recv_from {
            match self.t.recv(p) {
                Ok(m) => match unframe(m, self.t.peer_name(p)) {
                    Ok(m) => out.push(m),
                    Err(e) => return self.fail(e),
                },
                Err(e) => {
                    let e = self.explain(p, e);
                    return self.fail(e);
                }
            }
        }
        Ok(out)
    }

    /// Decodes exactly `n` words from `from`, poisoning the session on a bad length.
    pub(crate) fn decode(&mut self, bytes: &[u8], n: usize, from: PartyId) -> Result<Vec<u64>> {
        match decode_u64s(bytes, n, self.t.peer_name(from)) {
            Ok(v) => Ok(v),
            Err(e) => self.fail(e),
        }
    }

    /// Adds this party's component of a fresh zero-sharing to `z`.
    pub(crate) fn add_zero(&mut self, ring: Ring, z: &mut [u64]) {
        let mut t1 = [0u64; CHUNK];
        let mut t2 = [0u64; CHUNK];
        for c in z.chunks_mut(CHUNK) {
            let (n1, n2) = (&mut t1[..c.len()], &mut t2[..c.len()]);
            self.keys.next.fill(n1);
            self.keys.prev.fill(n2);
            match ring {
                Ring::Add => {
                    for ((o, x), y) in c.iter_mut().zip(n1.iter()).zip(n2.iter()) {
                        *o = o.wrapping_add(x.wrapping_sub(*y));
                    }
                }
                Ring::Xor => {
                    for ((o, x), y) in c.iter_mut().zip(n1.iter()).zip(n2.iter()) {
                        *o ^= x ^ y;
                    }
                }
            }
        }
    }

    /// Turns a 3-out-of-3 sharing (z_0 + z_1 + z_2 = value) into a replicated one in one
    /// round: add a zero-sharing (so z_i is uniformly random to party i−1), send it to
    /// party i−1, receive z_{i+1} from party i+1. One word sent per element.
    pub(crate) fn reshare(&mut self, ring: Ring, z: Vec<u64>) -> Result<(Vec<u64>, Vec<u64>)> {
        self.reshare_with(ring, z.len(), |off, out| {
            out.copy_from_slice(&z[off..off + out.len()])
        })
    }

    /// As [`Session::reshare`], with the local values produced chunk by chunk by
    /// `local(offset, out)`: the local values, the zero-sharing and the outgoing message
    /// are built in one pass over cache-resident chunks (large batches are memory-bound).
    ///
    /// A long vector travels as several messages of [`STREAM_WORDS`] words within the one
    /// round: each party sends a slice as soon as it is computed and decodes the slice it
    /// received [`STREAM_LAG`] slices earlier while the next is computed. Compute and
    /// transfer then overlap, and no message of the size of the whole vector is built,
    /// reassembled or decoded at once (on loopback TLS that copying and the fresh memory
    /// it needs cost more than the arithmetic).
    pub(crate) fn reshare_with(
        &mut self,
        ring: Ring,
        n: usize,
        mut local: impl FnMut(usize, &mut [u64]),
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        self.check()?;
        self.rounds += 1;
        let (to, from) = (self.prev(), self.next());
        let slices = n.div_ceil(STREAM_WORDS).max(1);
        let slice_len = |k: usize| STREAM_WORDS.min(n - k * STREAM_WORDS);
        let mut z: Vec<u64> = Vec::with_capacity(n);
        let mut b: Vec<u64> = Vec::with_capacity(n);
        let mut c = [0u64; CHUNK];
        let mut received = 0;
        for k in 0..slices {
            let (start, end) = (k * STREAM_WORDS, k * STREAM_WORDS + slice_len(k));
            let mut msg: Vec<u8> = Vec::with_capacity((end - start) * 8 + 1);
            let mut off = start;
            while off < end {
                let len = CHUNK.min(end - off);
                local(off, &mut c[..len]);
                self.add_zero(ring, &mut c[..len]);
                z.extend_from_slice(&c[..len]);
                put_u64s(&mut msg, &c[..len]);
                off += len;
            }
            frame_data(&mut msg);
            if let Err(e) = self.t.send(to, msg) {
                let e = self.explain(to, e);
                return self.fail(e);
            }
            while received + STREAM_LAG <= k {
                self.recv_words_into(from, slice_len(received), &mut b)?;
                received += 1;
            }
        }
        while received < slices {
            self.recv_words_into(from, slice_len(received), &mut b)?;
            received += 1;
        }
        Ok((z, b))
    }

    /// Receives one message of exactly `n` words from `from` and appends them to `out`.
    fn recv_words_into(&mut self, from: PartyId, n: usize, out: &mut Vec<u64>) -> Result<()> {
        let bytes = match self.t.recv(from) {
            Ok(m) => match unframe(m, self.t.peer_name(from)) {
                Ok(m) => m,
                Err(e) => return self.fail(e),
            },
            Err(e) => {
                let e = self.explain(from, e);
                return self.fail(e);
            }
        };
        if bytes.len() != n.saturating_mul(8) {
            let e = MpcError::Malformed {
                peer: self.t.peer_name(from),
                reason: format!(
                    "expected {n} u64 values ({} bytes), got {} bytes",
                    n.saturating_mul(8),
                    bytes.len()
                ),
            };
            return self.fail(e);
        }
        out.extend(bytes.chunks_exact(8).map(|w| {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            u64::from_le_bytes(word)
        }));
        Ok(())
    }

    /// Message and local components for an input of `n` words by compute party `owner`.
    ///
    /// The component the owner does not hold (x_{p+2}) is zero; x_p comes from the key the
    /// owner shares with party p−1; x_{p+1} = v − x_p is sent to party p+1. So one word per
    /// element is sent, and each non-owner sees a uniformly random word (or a zero).
    /// `xor_words` leading words use the XOR ring, the rest the additive ring.
    pub(crate) fn input_parts(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
        xor_words: usize,
    ) -> Result<InputParts> {
        if owner >= 3 {
            return Err(MpcError::arg(format!(
                "input_parts: owner {owner} is not a compute party"
            )));
        }
        let me = self.me;
        if me == owner {
            let v =
                values.ok_or_else(|| MpcError::arg("the input owner must supply its values"))?;
            if v.len() != n {
                return Err(MpcError::arg(format!(
                    "input: {} values, announced {n}",
                    v.len()
                )));
            }
            let xp = self.keys.prev.gen(n);
            let xp1: Vec<u64> = v
                .iter()
                .zip(&xp)
                .enumerate()
                .map(|(i, (v, r))| {
                    if i < xor_words {
                        v ^ r
                    } else {
                        v.wrapping_sub(*r)
                    }
                })
                .collect();
            let mut msg = Vec::with_capacity(n * 8 + 1);
            put_u64s(&mut msg, &xp1);
            Ok(InputParts {
                send: Some((self.next(), msg)),
                a: xp,
                b: xp1,
                receiver: false,
            })
        } else if me == (owner + 1) % 3 {
            // Filled in by the caller from the owner's message.
            Ok(InputParts {
                send: None,
                a: Vec::new(),
                b: vec![0; n],
                receiver: true,
            })
        } else {
            let xp = self.keys.next.gen(n);
            Ok(InputParts {
                send: None,
                a: vec![0; n],
                b: xp,
                receiver: false,
            })
        }
    }

    /// Input of `n` words by compute party `owner` (one round).
    pub(crate) fn input_local(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
        xor_words: usize,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let InputParts {
            send,
            mut a,
            b,
            receiver,
        } = self.input_parts(owner, values, n, xor_words)?;
        let from: Vec<PartyId> = if receiver { vec![owner] } else { vec![] };
        let r = self.round(send.into_iter().collect(), &from)?;
        if receiver {
            a = self.decode(&r[0], n, owner)?;
        }
        Ok((a, b))
    }
}

/// Hash of a component vector, used to check a replicated copy without sending it twice.
pub(crate) fn digest(ring: Ring, words: &[u64]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("consort-mpc 2024 reveal check v1");
    h.update(&[ring as u8]);
    h.update(&(words.len() as u64).to_le_bytes());
    let mut buf = [0u8; 8 * 512];
    for c in words.chunks(512) {
        for (o, w) in buf.chunks_exact_mut(8).zip(c) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        h.update(&buf[..c.len() * 8]);
    }
    *h.finalize().as_bytes()
}
