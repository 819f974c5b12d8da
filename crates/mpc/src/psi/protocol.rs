//! The PSI message flow, the framing and failure conventions, and the group arithmetic.
//!
//! Messages, each with the crate's trailing frame byte (docs/MPC.md §5):
//! 1. both: a header `[magic, mode as seen by the sender, number of distinct keys]`
//!    (three little-endian u64s), so that a mode mismatch fails before any key leaves;
//! 2. both: the sender's blinded, shuffled points `H(x)^a`, in chunks of at most
//!    [`MAX_CHUNK`] compressed 32-byte points;
//! 3. to each party that learns: its points raised to the peer's scalar, `H(x)^(ab)`, one
//!    message per chunk received, in the order received (sorted instead, in cardinality
//!    mode, so that they cannot be linked back to the party's own keys);
//! 4. join alignment only: the number of own rows of each matched key, in the common
//!    order, as little-endian u64s in chunks of [`MAX_CHUNK`].
//!
//! Every party sends all it can before it blocks on a receive, and the transport buffers
//! sends, so the flow cannot deadlock whatever the relative speed of the parties.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::seq::SliceRandom;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use super::keys::{KeySet, HASH_DOMAIN, NO_KEY};
use super::{PsiKey, PsiMode, PsiOutput, RevealTo};
use crate::error::{MpcError, Result};
use crate::transport::{
    encode_u64s, frame_abort, frame_data, unframe, MsgReader, PartyId, Transport,
};

/// Largest number of points (or counts) in one message: 2 MiB of points, so that sets of
/// 10^7 keys travel in bounded messages and the receiver can answer chunk by chunk.
pub const MAX_CHUNK: usize = 1 << 16;

/// Points per rayon task: large enough to amortise the batched inversion of
/// `double_and_compress_batch`, small enough to balance across cores.
const PAR_CHUNK: usize = 512;

/// "cpsi", then the protocol version.
const MAGIC: u64 = u64::from_le_bytes(*b"cpsi\0\0\0\x01");

/// Upper bound on a set size announced by a peer, so that a corrupt header cannot make us
/// reserve absurd amounts of memory.
const MAX_SET: u64 = 1 << 40;

/// Upper bound on the rows of a join alignment (the cross product of duplicates): the row
/// counts come from the peer, so this bounds the memory a peer can make us allocate (1 GiB
/// of row indices).
const MAX_ALIGNED: u64 = 1 << 27;

const POINT: usize = 32;

/// A compressed point, compared and sorted as bytes.
type Enc = [u8; POINT];

/// This session's secret exponent. Only `a/2` is kept: multiplying by `a/2` and then using
/// `double_and_compress_batch` yields `compress(a·P)` with one field inversion per batch
/// instead of one per point. Zeroized on drop; never printed.
struct Blinding {
    half: Scalar,
}

impl Blinding {
    fn random(rng: &mut (impl RngCore + CryptoRng)) -> Blinding {
        let mut a = Scalar::random(rng);
        while a == Scalar::ZERO {
            a = Scalar::random(rng); // probability 2^-252; zero would reveal nothing but fail
        }
        let half = a * Scalar::from(2u8).invert();
        a.zeroize();
        Blinding { half }
    }

    /// `compress(a·P)` for each point, in order.
    fn raise_compress(&self, pts: &mut [RistrettoPoint]) -> Vec<Enc> {
        for p in pts.iter_mut() {
            *p *= self.half;
        }
        RistrettoPoint::double_and_compress_batch(pts.iter())
            .into_iter()
            .map(|c| c.to_bytes())
            .collect()
    }

    /// Hashes canonical keys to the group and blinds them: `H(x)^a`, in parallel.
    fn blind_keys(&self, keys: &[&[u8]]) -> Vec<Enc> {
        keys.par_chunks(PAR_CHUNK)
            .flat_map_iter(|c| {
                let mut pts: Vec<RistrettoPoint> = c.iter().map(|k| hash_to_group(k)).collect();
                self.raise_compress(&mut pts)
            })
            .collect()
    }

    /// Decodes a message of the peer's points and raises them to our scalar, in parallel.
    /// An invalid encoding is `Malformed`, naming the peer and the point's position.
    fn reblind(&self, msg: &[u8], peer: &str) -> Result<Vec<Enc>> {
        let parts: Vec<std::result::Result<Vec<Enc>, usize>> = msg
            .par_chunks(PAR_CHUNK * POINT)
            .enumerate()
            .map(|(ci, c)| {
                let mut pts = Vec::with_capacity(c.len() / POINT);
                for (i, b) in c.chunks_exact(POINT).enumerate() {
                    // `chunks_exact` gives POINT bytes, which is what `from_slice` wants.
                    let Ok(enc) = CompressedRistretto::from_slice(b) else {
                        return Err(ci * PAR_CHUNK + i);
                    };
                    match enc.decompress() {
                        Some(p) => pts.push(p),
                        None => return Err(ci * PAR_CHUNK + i),
                    }
                }
                Ok(self.raise_compress(&mut pts))
            })
            .collect();
        let mut out = Vec::with_capacity(msg.len() / POINT);
        for p in parts {
            match p {
                Ok(v) => out.extend(v),
                Err(i) => {
                    return Err(MpcError::Malformed {
                        peer: peer.to_string(),
                        reason: format!(
                            "point {i} of a chunk is not a valid ristretto255 encoding"
                        ),
                    })
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.half.zeroize();
    }
}

impl std::fmt::Debug for Blinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blinding(<secret>)")
    }
}

/// `H(x)`: SHA-512 of the domain separator and the canonical key, mapped to the group
/// (the same as `RistrettoPoint::hash_from_bytes::<Sha512>(HASH_DOMAIN || key)`, without
/// building the concatenation).
fn hash_to_group(key: &[u8]) -> RistrettoPoint {
    RistrettoPoint::from_hash(Sha512::new().chain_update(HASH_DOMAIN).chain_update(key))
}

fn mode_code(m: PsiMode) -> u64 {
    match m {
        PsiMode::Reveal { to: RevealTo::Both } => 1,
        PsiMode::Reveal { to: RevealTo::Me } => 2,
        PsiMode::Reveal { to: RevealTo::Peer } => 3,
        PsiMode::Cardinality => 4,
        PsiMode::JoinAlignment => 5,
    }
}

/// One party's link to the peer: frames messages like the rest of the crate and, on
/// failure, tells the peer why (so it fails at once, naming the real culprit) or picks up
/// the peer's own abort notice.
struct Link<'a> {
    t: &'a mut dyn Transport,
    peer: PartyId,
    name: String,
}

impl Link<'_> {
    fn send(&mut self, mut msg: Vec<u8>) -> Result<()> {
        frame_data(&mut msg);
        self.t.send(self.peer, msg).map_err(|e| self.explain(e))
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        match self.t.recv(self.peer) {
            Ok(m) => unframe(m, self.name.clone()),
            Err(e) => Err(self.explain(e)),
        }
    }

    /// After a failed send to a gone peer, its abort notice may still sit behind data in
    /// our queue; a gone peer's queue drains without blocking.
    fn explain(&mut self, e: MpcError) -> MpcError {
        if matches!(e, MpcError::PeerGone { .. }) {
            for _ in 0..1024 {
                match self
                    .t
                    .recv(self.peer)
                    .map(|m| unframe(m, self.name.clone()))
                {
                    Ok(Err(a @ MpcError::Aborted { .. })) => return a,
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
        e
    }

    /// Best-effort abort notice, unless the peer is the one that aborted.
    fn abort(&mut self, e: &MpcError) {
        if !matches!(e, MpcError::Aborted { .. }) {
            let _ = self.t.send(self.peer, frame_abort(&e.to_string()));
        }
    }

    fn malformed(&self, reason: String) -> MpcError {
        MpcError::Malformed {
            peer: self.name.clone(),
            reason,
        }
    }

    /// Receives messages of `width`-byte items until `n` items have arrived, passing each
    /// message's bytes to `f`; every message must hold 1 to [`MAX_CHUNK`] whole items.
    fn recv_items(
        &mut self,
        n: usize,
        width: usize,
        what: &str,
        mut f: impl FnMut(&mut Self, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut got = 0usize;
        while got < n {
            let m = self.recv()?;
            let k = m.len() / width;
            if m.len() % width != 0 || k == 0 || k > MAX_CHUNK || k > n - got {
                return Err(self.malformed(format!(
                    "{what}: message of {} bytes, expected 1 to {} items of {width} bytes",
                    m.len(),
                    MAX_CHUNK.min(n - got)
                )));
            }
            got += k;
            f(self, m)?;
        }
        Ok(())
    }
}

pub(super) fn run(
    t: &mut dyn Transport,
    peer: PartyId,
    keys: &[PsiKey],
    mode: PsiMode,
    chunk: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PsiOutput> {
    let me = t.me();
    if peer == me {
        return Err(MpcError::arg(format!("PSI peer {peer} is this party")));
    }
    if chunk == 0 || chunk > MAX_CHUNK {
        return Err(MpcError::arg(format!(
            "PSI chunk size {chunk} outside 1..={MAX_CHUNK}"
        )));
    }
    let name = t.peer_name(peer);
    let mut link = Link { t, peer, name };
    let r = flow(&mut link, me < peer, keys, mode, chunk, rng);
    if let Err(e) = &r {
        link.abort(e);
    }
    r
}

fn flat(v: &[Enc]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * POINT + 1);
    for e in v {
        out.extend_from_slice(e);
    }
    out
}

fn flow(
    link: &mut Link<'_>,
    outer: bool,
    keys: &[PsiKey],
    mode: PsiMode,
    chunk: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PsiOutput> {
    let set = KeySet::new(keys);
    let n = set.distinct.len();
    let blinding = Blinding::random(rng);
    // Points leave in a random order, so their positions say nothing about our rows.
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);

    // 1. Headers.
    let mut hdr = encode_u64s(&[MAGIC, mode_code(mode), n as u64]);
    hdr.reserve(1);
    link.send(hdr)?;
    let m = link.recv()?;
    let mut r = MsgReader::new(&m, link.name.clone());
    let (magic, peer_mode, peer_n) = (r.u64()?, r.u64()?, r.u64()?);
    r.finish()?;
    if magic != MAGIC {
        return Err(link.malformed(format!("not a PSI header (magic {magic:#x})")));
    }
    if peer_mode != mode_code(mode.mirror()) {
        return Err(link.malformed(format!(
            "peer runs PSI mode {peer_mode}, this party expects {} ({mode:?})",
            mode_code(mode.mirror())
        )));
    }
    if peer_n > MAX_SET {
        return Err(link.malformed(format!("announced set size {peer_n} is too large")));
    }
    let peer_n = peer_n as usize;
    let (i_learn, peer_learns) = (mode.i_learn(), mode.peer_learns());
    let card = mode == PsiMode::Cardinality;

    // 2. Our blinded points, chunk by chunk.
    for c in order.chunks(chunk) {
        let ks: Vec<&[u8]> = c.iter().map(|&i| set.distinct[i].as_slice()).collect();
        link.send(flat(&blinding.blind_keys(&ks)))?;
    }

    // 2'/3. The peer's points: raise them to our scalar; answer each chunk at once unless
    // the answer must be sorted first (cardinality).
    let keep = i_learn || (peer_learns && card);
    // Reserve by what has arrived, never by what the peer announced.
    let mut peer_db: Vec<Enc> = Vec::with_capacity(if keep { peer_n.min(MAX_CHUNK) } else { 0 });
    link.recv_items(peer_n, POINT, "blinded points", |link, m| {
        let db = blinding.reblind(&m, &link.name)?;
        if peer_learns && !card {
            link.send(flat(&db))?;
        }
        if keep {
            peer_db.extend_from_slice(&db);
        }
        Ok(())
    })?;
    drop(blinding);
    peer_db.par_sort_unstable();
    if peer_learns && card {
        for c in peer_db.chunks(MAX_CHUNK) {
            link.send(flat(c))?;
        }
    }
    if !i_learn {
        return Ok(PsiOutput {
            my_set_size: n,
            peer_set_size: peer_n,
            cardinality: None,
            matched_rows: None,
            alignment: None,
        });
    }

    // 3'. Our own points, double-blinded: position p is our key order[p] (or, in
    // cardinality mode, some key we cannot identify).
    let mut my_db: Vec<Enc> = vec![[0u8; POINT]; if card { 0 } else { n }];
    let mut pos = 0usize;
    let mut card_count = 0usize;
    link.recv_items(n, POINT, "double-blinded points", |_, m| {
        for b in m.chunks_exact(POINT) {
            let mut e: Enc = [0u8; POINT];
            e.copy_from_slice(b);
            if card {
                card_count += usize::from(peer_db.binary_search(&e).is_ok());
            } else {
                my_db[order[pos]] = e;
            }
            pos += 1;
        }
        Ok(())
    })?;
    if card {
        return Ok(PsiOutput {
            my_set_size: n,
            peer_set_size: peer_n,
            cardinality: Some(card_count),
            matched_rows: None,
            alignment: None,
        });
    }

    // Matched keys, in the common order (ascending double-blinded value).
    let mut matched: Vec<(Enc, usize)> = my_db
        .par_iter()
        .enumerate()
        .filter(|(_, e)| peer_db.binary_search(e).is_ok())
        .map(|(i, e)| (*e, i))
        .collect();
    drop(peer_db);
    matched.par_sort_unstable();
    let mut rank = vec![NO_KEY; n];
    for (j, &(_, k)) in matched.iter().enumerate() {
        rank[k] = j;
    }
    let matched_rows: Vec<usize> = (0..keys.len())
        .filter(|&r| set.row_key[r] != NO_KEY && rank[set.row_key[r]] != NO_KEY)
        .collect();
    let mut out = PsiOutput {
        my_set_size: n,
        peer_set_size: peer_n,
        cardinality: Some(matched.len()),
        matched_rows: None,
        alignment: None,
    };
    if mode == PsiMode::JoinAlignment {
        out.alignment = Some(align(
            link,
            outer,
            &set,
            &rank,
            &matched_rows,
            matched.len(),
        )?);
    }
    out.matched_rows = Some(matched_rows);
    Ok(out)
}

/// Step 4, join alignment: exchange the number of rows per matched key (in the common order)
/// and lay out the cross product of each key's rows, the lower party id's rows outer.
fn align(
    link: &mut Link<'_>,
    outer: bool,
    set: &KeySet,
    rank: &[usize],
    matched_rows: &[usize],
    m: usize,
) -> Result<Vec<usize>> {
    // Our rows of each matched key, ascending (matched_rows is ascending).
    let mut start = vec![0usize; m + 1];
    for &r in matched_rows {
        start[rank[set.row_key[r]] + 1] += 1;
    }
    for j in 0..m {
        start[j + 1] += start[j];
    }
    let mut fill = start.clone();
    let mut rows = vec![0usize; matched_rows.len()];
    for &r in matched_rows {
        let j = rank[set.row_key[r]];
        rows[fill[j]] = r;
        fill[j] += 1;
    }
    let counts: Vec<u64> = (0..m).map(|j| (start[j + 1] - start[j]) as u64).collect();
    for c in counts.chunks(MAX_CHUNK) {
        let mut msg = encode_u64s(c);
        msg.reserve(1);
        link.send(msg)?;
    }
    let mut peer_counts: Vec<u64> = Vec::with_capacity(m);
    link.recv_items(m, 8, "row counts", |link, msg| {
        let mut r = MsgReader::new(&msg, link.name.clone());
        peer_counts.extend(r.u64s(msg.len() / 8)?);
        r.finish()
    })?;
    let mut total = 0u64;
    for (j, &c) in peer_counts.iter().enumerate() {
        if c == 0 || c > MAX_SET {
            return Err(link.malformed(format!("row count {c} for matched key {j}")));
        }
        total = total.saturating_add(c.saturating_mul(counts[j]));
    }
    if total > MAX_ALIGNED {
        return Err(MpcError::arg(format!(
            "the join alignment would have {total} rows (limit {MAX_ALIGNED}): too many keys duplicated on both sides"
        )));
    }
    let mut out = Vec::with_capacity(total as usize);
    for (j, &c) in peer_counts.iter().enumerate() {
        let mine = &rows[start[j]..start[j + 1]];
        if outer {
            for &r in mine {
                out.extend(std::iter::repeat_n(r, c as usize));
            }
        } else {
            for _ in 0..c {
                out.extend_from_slice(mine);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn blinding_is_not_printed_and_matches_plain_multiplication() {
        let b = Blinding::random(&mut StdRng::seed_from_u64(7));
        assert_eq!(format!("{b:?}"), "Blinding(<secret>)");
        let p = hash_to_group(b"x");
        let a = b.half + b.half;
        assert_eq!(
            b.raise_compress(&mut [p]),
            vec![(p * a).compress().to_bytes()]
        );
        // The chained hash equals hashing the concatenation.
        let cat = [HASH_DOMAIN, b"x"].concat();
        assert_eq!(p, RistrettoPoint::hash_from_bytes::<Sha512>(&cat));
    }
}
