//! Correlated randomness: AES-128-CTR pseudo-random generators keyed by seeds that the
//! parties agree on at session start, and the zero-sharings derived from them.
//!
//! Party i samples key k_i and sends it to party i+1, so that party i holds k_i (shared
//! with i+1, its "next" key) and k_{i-1} (shared with i-1, its "prev" key). A zero-sharing
//! is α_i = F(k_i) − F(k_{i−1}) (or XOR): the three α sum to zero and each is uniformly
//! random to the other two parties, with no communication. All three parties also hold a
//! common key (the XOR of three contributions) for randomness nobody needs to hide from the
//! compute parties.
//!
//! Every stream is consumed in lock-step by the parties that share it: the protocols draw
//! the same number of words in the same order on both sides. An error in the middle of a
//! protocol breaks this, which is why a failed session is poisoned.

use aes::cipher::{KeyIvInit, StreamCipherCore};
use aes::Aes128;
use ctr::flavors::Ctr64LE;
use ctr::CtrCore;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Result;
use crate::transport::{MsgReader, Transport};

/// A 128-bit PRG seed. Zeroized on drop; `Debug` never prints it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed(pub(crate) [u8; 16]);

impl Seed {
    /// Samples a fresh seed.
    pub fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut s = [0u8; 16];
        rng.fill_bytes(&mut s);
        Seed(s)
    }

    /// Wraps raw key bytes (for seeds received from a peer).
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Seed(b)
    }

    /// Raw bytes, for sending to the peer that shares this seed.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

type Block = aes::Block;
const POOL_BLOCKS: usize = 256;

/// AES-128 in counter mode producing `u64` words in bulk (AES-NI is detected at run time
/// by the `aes` crate). The round keys are zeroized on drop by `aes`; the output pool is
/// zeroized by our `Drop`.
pub struct Prg {
    core: CtrCore<Aes128, Ctr64LE>,
    blocks: Vec<Block>,
    pool: Vec<u64>,
    pos: usize,
}

impl std::fmt::Debug for Prg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prg(<redacted>)")
    }
}

impl Drop for Prg {
    fn drop(&mut self) {
        self.pool.zeroize();
        for b in self.blocks.iter_mut() {
            b.as_mut_slice().zeroize();
        }
    }
}

impl Prg {
    /// A generator for `seed` (the counter starts at zero).
    pub fn new(seed: &Seed) -> Self {
        let iv = [0u8; 16];
        Prg {
            core: CtrCore::<Aes128, Ctr64LE>::new(&seed.0.into(), &iv.into()),
            blocks: vec![Block::default(); POOL_BLOCKS],
            pool: vec![0; POOL_BLOCKS * 2],
            pos: POOL_BLOCKS * 2,
        }
    }

    fn refill(&mut self) {
        self.core.write_keystream_blocks(&mut self.blocks);
        for (b, out) in self.blocks.iter().zip(self.pool.chunks_exact_mut(2)) {
            let (lo, hi) = b.split_at(8);
            out[0] = u64::from_le_bytes([lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7]]);
            out[1] = u64::from_le_bytes([hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7]]);
        }
        self.pos = 0;
    }

    /// Fills `out` with the next words of the stream.
    pub fn fill(&mut self, mut out: &mut [u64]) {
        while !out.is_empty() {
            if self.pos == self.pool.len() {
                self.refill();
            }
            let k = out.len().min(self.pool.len() - self.pos);
            out[..k].copy_from_slice(&self.pool[self.pos..self.pos + k]);
            self.pos += k;
            out = &mut out[k..];
        }
    }

    /// The next `n` words as a vector.
    pub fn gen(&mut self, n: usize) -> Vec<u64> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        if self.pos == self.pool.len() {
            self.refill();
        }
        self.pos += 1;
        self.pool[self.pos - 1]
    }

    /// A uniform integer in `0..bound` (Lemire's method with rejection: exactly uniform).
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let mut m = (self.next_u64() as u128) * (bound as u128);
        if (m as u64) < bound {
            let t = bound.wrapping_neg() % bound;
            while (m as u64) < t {
                m = (self.next_u64() as u128) * (bound as u128);
            }
        }
        (m >> 64) as u64
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates); `p[i]` is the source index
    /// of output position `i`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// The generators of one compute party.
#[derive(Debug)]
pub struct PartyKeys {
    /// k_i, shared with party i+1.
    pub next: Prg,
    /// k_{i-1}, shared with party i-1.
    pub prev: Prg,
    /// Common to all three compute parties.
    pub common: Prg,
}

/// Words processed per chunk in fused loops (fits L1 with a few buffers).
pub(crate) const CHUNK: usize = 1024;

impl PartyKeys {
    /// Builds the generators from the three seeds.
    pub fn from_seeds(next: &Seed, prev: &Seed, common: &Seed) -> Self {
        PartyKeys {
            next: Prg::new(next),
            prev: Prg::new(prev),
            common: Prg::new(common),
        }
    }

    /// Fills `out` with this party's component of an additive zero-sharing.
    pub fn zero_add(&mut self, out: &mut [u64]) {
        self.zero_with(out, u64::wrapping_sub);
    }

    /// Fills `out` with this party's component of an XOR zero-sharing.
    pub fn zero_xor(&mut self, out: &mut [u64]) {
        self.zero_with(out, |a, b| a ^ b);
    }

    /// `out[i] = combine(next[i], prev[i])` over the two pairwise streams: the components
    /// cancel across the three parties for the group `combine` subtracts in.
    #[inline]
    fn zero_with(&mut self, out: &mut [u64], combine: impl Fn(u64, u64) -> u64) {
        let mut tmp = [0u64; CHUNK];
        for c in out.chunks_mut(CHUNK) {
            self.next.fill(c);
            let t = &mut tmp[..c.len()];
            self.prev.fill(t);
            for (o, p) in c.iter_mut().zip(t.iter()) {
                *o = combine(*o, *p);
            }
        }
    }
}

/// Session-start key agreement among the three compute parties (one round).
///
/// Party i samples k_i and a contribution c_i; it sends (k_i, c_i) to i+1 and c_i to i−1.
/// The common key is c_0 ⊕ c_1 ⊕ c_2, uniformly random if any one party is honest.
pub fn agree_keys(
    t: &mut dyn Transport,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PartyKeys> {
    let me = t.me();
    let (next, prev) = ((me + 1) % 3, (me + 2) % 3);
    let k_next = Seed::random(rng);
    let c_me = Seed::random(rng);
    let mut to_next = Vec::with_capacity(32);
    to_next.extend_from_slice(&k_next.0);
    to_next.extend_from_slice(&c_me.0);
    t.send(next, to_next)?;
    t.send(prev, c_me.0.to_vec())?;

    let from_prev = t.recv(prev)?;
    let mut r = MsgReader::new(&from_prev, t.peer_name(prev));
    let mut k_prev = Seed([0; 16]);
    k_prev.0.copy_from_slice(r.bytes(16)?);
    let mut c_prev = Seed([0; 16]);
    c_prev.0.copy_from_slice(r.bytes(16)?);
    r.finish()?;

    let from_next = t.recv(next)?;
    let mut r = MsgReader::new(&from_next, t.peer_name(next));
    let mut c_next = Seed([0; 16]);
    c_next.0.copy_from_slice(r.bytes(16)?);
    r.finish()?;

    // The received key bytes are secrets too.
    let (mut from_prev, mut from_next) = (from_prev, from_next);
    from_prev.zeroize();
    from_next.zeroize();
    let mut common = Seed([0; 16]);
    for i in 0..16 {
        common.0[i] = c_me.0[i] ^ c_prev.0[i] ^ c_next.0[i];
    }
    Ok(PartyKeys::from_seeds(&k_next, &k_prev, &common))
}
