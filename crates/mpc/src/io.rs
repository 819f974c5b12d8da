//! Getting secrets in and results out: inputs by a compute party or by an external owner,
//! and reveals to named parties (compute or external) with a replicated-copy check.
//!
//! **Input by an external owner** (id ≥ 3): the owner draws seeds s0, s1 and sets
//! x_0 = PRG(s0), x_1 = PRG(s1), x_2 = v − x_0 − x_1. Party 0 gets (s0, s1); party 2 gets
//! s0 and x_2 explicitly and forwards x_2 to party 1; party 1 gets s1. The owner uploads
//! one word per element (plus 32 bytes of seeds) and the compute parties one more.
//!
//! **Reveal**: party p lacks component x_{p+2}, held by both p+1 and p+2. p+1 sends it;
//! p+2 sends a hash of its copy; the other two components are checked against hashes of
//! the peers' copies too (64 more bytes), so every recipient verifies all three
//! components and returns [`MpcError::Mismatch`] instead of a wrong value. An external
//! recipient gets x_i and a hash of x_{i+1} from each party i, so every component is
//! cross-checked there as well.

use rand_core::{CryptoRng, RngCore};

use crate::error::{MpcError, Result};
use crate::prg::{Prg, Seed};
use crate::session::{digest, Ring, Session};
use crate::share::{ArithShares, BitShares, XorShares};
use crate::transport::{
    frame_data, put_u64s, unframe, MsgReader, PartyId, Transport, COMPUTE_PARTIES,
};

impl Session {
    /// Secret-shares `n` values owned by compute party `owner` (which passes `Some`);
    /// one round, `n` words sent by the owner to one peer.
    pub fn input(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
    ) -> Result<ArithShares> {
        let (a, b) = self.input_local(owner, values, n, 0)?;
        Ok(ArithShares { a, b })
    }

    /// Secret-shares `n` bits owned by compute party `owner` (which passes `Some`).
    pub fn input_bits(
        &mut self,
        owner: PartyId,
        bits: Option<&[bool]>,
        n: usize,
    ) -> Result<BitShares> {
        let words = bits.map(|b| {
            let mut w = vec![0u64; n.div_ceil(64)];
            for (i, &x) in b.iter().enumerate().take(n) {
                w[i / 64] |= (x as u64) << (i % 64);
            }
            (w, b.len())
        });
        if let Some((_, l)) = &words {
            if *l != n {
                return Err(MpcError::arg(format!(
                    "input_bits: {l} bits, announced {n}"
                )));
            }
        }
        let nw = n.div_ceil(64);
        let (a, b) = self.input_local(owner, words.as_ref().map(|(w, _)| w.as_slice()), nw, nw)?;
        BitShares::new(a, b, n)
    }

    /// Receives the shares of `n` values sent by an external owner (`owner` ≥ 3) with
    /// [`provide_input`]; `n` is public (agreed in the query plan) and a message announcing
    /// another size is `Malformed`. Two rounds (owner → parties, party 2 → party 1).
    pub fn input_external(&mut self, owner: PartyId, n: usize) -> Result<ArithShares> {
        let expected = n;
        if owner < COMPUTE_PARTIES {
            return Err(MpcError::arg(format!(
                "input_external: {owner} is a compute party"
            )));
        }
        let me = self.me();
        let m = self.round(vec![], &[owner])?;
        let peer = self.peer_name(owner);
        let mut r = MsgReader::new(&m[0], peer.clone());
        let parsed = (|| -> Result<(usize, Vec<Seed>, Option<Vec<u64>>)> {
            let n = r.u64()?;
            if n as u128 != expected as u128 {
                return Err(MpcError::Malformed {
                    peer: peer.clone(),
                    reason: format!("announced {n} values, expected {expected}"),
                });
            }
            let n = n as usize;
            let nseeds = if me == 1 { 1 } else { 2 };
            let mut seeds = Vec::new();
            for _ in 0..if me == 2 { 1 } else { nseeds } {
                let mut s = [0u8; 16];
                s.copy_from_slice(r.bytes(16)?);
                seeds.push(Seed::from_bytes(s));
            }
            let data = if me == 2 { Some(r.u64s(n)?) } else { None };
            r.finish()?;
            Ok((n, seeds, data))
        })();
        let (n, seeds, data) = match parsed {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        let (a, b) = match me {
            0 => (Prg::new(&seeds[0]).gen(n), Prg::new(&seeds[1]).gen(n)),
            1 => {
                let x1 = Prg::new(&seeds[0]).gen(n);
                let f = self.round(vec![], &[2])?;
                let x2 = self.decode(&f[0], n, 2)?;
                return Ok(ArithShares { a: x1, b: x2 });
            }
            _ => {
                let x2 = data.unwrap_or_default();
                let mut msg = Vec::with_capacity(n * 8 + 1);
                put_u64s(&mut msg, &x2);
                self.round(vec![(1, msg)], &[])?;
                return Ok(ArithShares {
                    a: x2,
                    b: Prg::new(&seeds[0]).gen(n),
                });
            }
        };
        self.round(vec![], &[])?;
        Ok(ArithShares { a, b })
    }

    /// Reveals `x` to one party (compute or external). Returns `Some(values)` at the
    /// recipient, `None` elsewhere. One round.
    pub fn reveal_to(&mut self, x: &ArithShares, to: PartyId) -> Result<Option<Vec<u64>>> {
        self.reveal_words(Ring::Add, &x.a, &x.b, &[to])
    }

    /// Reveals `x` to several parties at once (one round).
    pub fn reveal_to_many(&mut self, x: &ArithShares, to: &[PartyId]) -> Result<Option<Vec<u64>>> {
        self.reveal_words(Ring::Add, &x.a, &x.b, to)
    }

    /// Reveals `x` to all three compute parties (one round).
    pub fn reveal_all(&mut self, x: &ArithShares) -> Result<Vec<u64>> {
        let v = self.reveal_words(Ring::Add, &x.a, &x.b, &[0, 1, 2])?;
        Ok(v.unwrap_or_default())
    }

    /// Reveals 64-bit XOR-shared values to all compute parties.
    pub fn reveal_xor_all(&mut self, x: &XorShares) -> Result<Vec<u64>> {
        let v = self.reveal_words(Ring::Xor, &x.a, &x.b, &[0, 1, 2])?;
        Ok(v.unwrap_or_default())
    }

    /// Reveals secret bits to the listed parties.
    pub fn reveal_bits_to(&mut self, x: &BitShares, to: &[PartyId]) -> Result<Option<Vec<bool>>> {
        let v = self.reveal_words(Ring::Xor, &x.a, &x.b, to)?;
        Ok(v.map(|w| unpack_bits(&w, x.len())))
    }

    /// Reveals secret bits to all compute parties.
    pub fn reveal_bits_all(&mut self, x: &BitShares) -> Result<Vec<bool>> {
        Ok(self.reveal_bits_to(x, &[0, 1, 2])?.unwrap_or_default())
    }

    /// The generic reveal: every recipient in `to` learns the value; one round.
    pub(crate) fn reveal_words(
        &mut self,
        ring: Ring,
        a: &[u64],
        b: &[u64],
        to: &[PartyId],
    ) -> Result<Option<Vec<u64>>> {
        if a.len() != b.len() {
            return Err(MpcError::arg("reveal: component lengths differ"));
        }
        let n = a.len();
        let (me, prev, next) = (self.me(), self.prev(), self.next());
        let ha = digest(ring, a);
        let mut sends = Vec::new();
        // Recipient p needs x_{p+2} from p+1 (its b) and checks of all three components:
        // from p+1 the hash of x_{p+1} (its a); from p+2 hashes of x_{p+2} and x_p.
        if to.contains(&prev) {
            let mut m = Vec::with_capacity(n * 8 + 33);
            put_u64s(&mut m, b);
            m.extend_from_slice(&ha);
            sends.push((prev, m));
        }
        if to.contains(&next) {
            let mut m = ha.to_vec();
            m.extend_from_slice(&digest(ring, b));
            sends.push((next, m));
        }
        let mut ext: Vec<PartyId> = to
            .iter()
            .copied()
            .filter(|&p| p >= COMPUTE_PARTIES)
            .collect();
        ext.sort_unstable();
        ext.dedup();
        for e in ext {
            let mut m = Vec::with_capacity(n * 8 + 33);
            put_u64s(&mut m, a);
            m.extend_from_slice(&digest(ring, b));
            sends.push((e, m));
        }
        let mine = to.contains(&me);
        let from: Vec<PartyId> = if mine { vec![next, prev] } else { vec![] };
        let r = self.round(sends, &from)?;
        if !mine {
            return Ok(None);
        }
        let (nn, pn) = (self.peer_name(next), self.peer_name(prev));
        let parsed = (|| -> Result<RevealParts> {
            let mut rn = MsgReader::new(&r[0], nn.clone());
            let missing = rn.u64s(n)?;
            let h_b = rn.bytes(32)?.to_vec();
            rn.finish()?;
            let mut rp = MsgReader::new(&r[1], pn.clone());
            let h_missing = rp.bytes(32)?.to_vec();
            let h_a = rp.bytes(32)?.to_vec();
            rp.finish()?;
            Ok((missing, h_b, h_missing, h_a))
        })();
        let (missing, h_b, h_missing, h_a) = match parsed {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        let me_name = self.peer_name(me);
        let checks = [
            (
                (me + 2) % 3,
                digest(ring, &missing) == h_missing[..],
                &nn,
                &pn,
            ),
            (me, ha == h_a[..], &me_name, &pn),
            ((me + 1) % 3, digest(ring, b) == h_b[..], &me_name, &nn),
        ];
        for (comp, ok, x, y) in checks {
            if !ok {
                let e = MpcError::Mismatch {
                    what: format!(
                        "component x{comp}: the copy held by {x} differs from the copy held by {y}"
                    ),
                };
                return self.fail(e);
            }
        }
        Ok(Some(
            a.iter()
                .zip(b)
                .zip(&missing)
                .map(|((x, y), z)| ring.op(ring.op(*x, *y), *z))
                .collect(),
        ))
    }
}

/// Missing component, hash of own b, hash of the missing component, hash of own a.
type RevealParts = (Vec<u64>, Vec<u8>, Vec<u8>, Vec<u8>);

pub(crate) fn unpack_bits(w: &[u64], len: usize) -> Vec<bool> {
    (0..len).map(|i| (w[i / 64] >> (i % 64)) & 1 == 1).collect()
}

/// External owner's side of [`Session::input_external`]: splits `values` and sends each
/// compute party its part (party 2 gets the only explicit data).
pub fn provide_input(
    t: &mut dyn Transport,
    values: &[u64],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<()> {
    let n = values.len();
    let (s0, s1) = (Seed::random(rng), Seed::random(rng));
    let x0 = Prg::new(&s0).gen(n);
    let x1 = Prg::new(&s1).gen(n);
    let x2: Vec<u64> = values
        .iter()
        .zip(x0.iter().zip(&x1))
        .map(|(v, (a, b))| v.wrapping_sub(*a).wrapping_sub(*b))
        .collect();
    let header = (n as u64).to_le_bytes();
    let mut m0 = header.to_vec();
    m0.extend_from_slice(s0.as_bytes());
    m0.extend_from_slice(s1.as_bytes());
    let mut m1 = header.to_vec();
    m1.extend_from_slice(s1.as_bytes());
    let mut m2 = Vec::with_capacity(8 + 16 + n * 8 + 1);
    m2.extend_from_slice(&header);
    m2.extend_from_slice(s0.as_bytes());
    put_u64s(&mut m2, &x2);
    for (p, mut m) in [(0, m0), (1, m1), (2, m2)] {
        frame_data(&mut m);
        t.send(p, m)?;
    }
    Ok(())
}

fn receive_words(t: &mut dyn Transport, ring: Ring) -> Result<Vec<u64>> {
    let mut comps = Vec::with_capacity(3);
    let mut hashes = Vec::with_capacity(3);
    for p in 0..COMPUTE_PARTIES {
        let peer = t.peer_name(p);
        let m = unframe(t.recv(p)?, peer.clone())?;
        if m.len() < 32 || (m.len() - 32) % 8 != 0 {
            return Err(MpcError::Malformed {
                peer,
                reason: format!("reveal message of {} bytes", m.len()),
            });
        }
        let n = (m.len() - 32) / 8;
        let mut r = MsgReader::new(&m, peer);
        let c = r.u64s(n)?;
        let h = r.bytes(32)?.to_vec();
        r.finish()?;
        comps.push(c);
        hashes.push(h);
    }
    for i in 0..3 {
        let j = (i + 1) % 3;
        if comps[j].len() != comps[i].len() {
            return Err(MpcError::Malformed {
                peer: t.peer_name(j),
                reason: format!(
                    "sent {} values, {} sent {}",
                    comps[j].len(),
                    t.peer_name(i),
                    comps[i].len()
                ),
            });
        }
        if digest(ring, &comps[j])[..] != hashes[i][..] {
            return Err(MpcError::Mismatch {
                what: format!(
                    "component x{j} sent by {} does not match the copy held by {}",
                    t.peer_name(j),
                    t.peer_name(i)
                ),
            });
        }
    }
    Ok(comps[0]
        .iter()
        .zip(&comps[1])
        .zip(&comps[2])
        .map(|((x, y), z)| ring.op(ring.op(*x, *y), *z))
        .collect())
}

/// External result party's side of [`Session::reveal_to`]: receives and checks the three
/// components of an arithmetic sharing.
pub fn receive_output(t: &mut dyn Transport) -> Result<Vec<u64>> {
    receive_words(t, Ring::Add)
}

/// External result party's side of [`Session::reveal_bits_to`] for `len` bits.
pub fn receive_output_bits(t: &mut dyn Transport, len: usize) -> Result<Vec<bool>> {
    let w = receive_words(t, Ring::Xor)?;
    if w.len() != len.div_ceil(64) {
        return Err(MpcError::Malformed {
            peer: t.peer_name(0),
            reason: format!("{} words cannot hold {len} bits", w.len()),
        });
    }
    Ok(unpack_bits(&w, len))
}
