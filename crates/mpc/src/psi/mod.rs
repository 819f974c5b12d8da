//! Two-party private set intersection (ECDH-PSI over ristretto255).
//!
//! Each party hashes its distinct keys to the group, raises them to a fresh secret scalar,
//! shuffles them and sends them; each party raises the peer's points to its own scalar
//! and sends them back in the order received (or sorted, in [`PsiMode::Cardinality`]).
//! `H(x)^(ab) = H(y)^(ba)` exactly when `x = y`, so comparing the double-blinded values
//! gives the intersection and nothing else, under the decisional Diffie-Hellman
//! assumption, against a semi-honest peer. docs/MPC.md ("PSI") has the modes, the
//! handling of duplicates and NULLs, and what each party learns.
//!
//! The protocol runs between two parties over any [`Transport`] (in-memory in tests, the
//! members' TLS links in the node); like the rest of the crate it is synchronous and pure.

mod keys;
mod protocol;

pub use keys::PsiKey;
pub use protocol::MAX_CHUNK;

use rand_core::{CryptoRng, RngCore};

use crate::error::Result;
use crate::transport::{PartyId, Transport};

/// Who learns the intersection in [`PsiMode::Reveal`], seen from the calling party: the
/// peer must call with the mirror image (`Me` ↔ `Peer`, `Both` ↔ `Both`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevealTo {
    /// Both parties learn which of their own rows match.
    Both,
    /// Only the calling party learns; the peer learns nothing but the set size.
    Me,
    /// Only the peer learns; the calling party learns nothing but the set size.
    Peer,
}

/// What the PSI reveals. Both parties must pass the same mode (mirrored for `Reveal`);
/// a mismatch fails before any key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsiMode {
    /// The intersection, as the indices of the matching rows of each learner's own keys.
    Reveal {
        /// Who learns it.
        to: RevealTo,
    },
    /// Only the number of distinct keys both parties hold, to both.
    Cardinality,
    /// Both learn which of their own rows match and a common order of the matching rows
    /// (pairs of rows with equal keys), so that each can then secret-share its payload
    /// columns row-aligned with the other's.
    JoinAlignment,
}

impl PsiMode {
    /// The same mode seen from the peer.
    pub fn mirror(self) -> PsiMode {
        match self {
            PsiMode::Reveal { to: RevealTo::Me } => PsiMode::Reveal { to: RevealTo::Peer },
            PsiMode::Reveal { to: RevealTo::Peer } => PsiMode::Reveal { to: RevealTo::Me },
            m => m,
        }
    }

    /// Whether the calling party learns the intersection (or its size).
    pub(crate) fn i_learn(self) -> bool {
        !matches!(self, PsiMode::Reveal { to: RevealTo::Peer })
    }

    /// Whether the peer learns the intersection (or its size).
    pub(crate) fn peer_learns(self) -> bool {
        self.mirror().i_learn()
    }
}

/// What the calling party learned from a PSI. Fields a mode does not reveal are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsiOutput {
    /// Number of distinct non-NULL keys this party entered (what the peer learned of it).
    pub my_set_size: usize,
    /// Number of distinct non-NULL keys the peer entered (always revealed).
    pub peer_set_size: usize,
    /// Number of distinct keys both hold, if this party learned it (every mode except
    /// `Reveal { to: Peer }`).
    pub cardinality: Option<usize>,
    /// Indices into the caller's `keys` of the rows whose key the peer also holds, in
    /// ascending order; every row of a duplicated key is listed. `Reveal` (when this
    /// party learns) and `JoinAlignment` only.
    pub matched_rows: Option<Vec<usize>>,
    /// `JoinAlignment` only: `alignment[j]` is the index into the caller's `keys` of the
    /// j-th aligned row. Both parties' lists have the same length and row j of each holds
    /// the same key; a key held by `r` rows here and `s` rows at the peer appears as all
    /// `r × s` pairs.
    pub alignment: Option<Vec<usize>>,
}

/// Runs a PSI on `keys` with `peer` over `t`, using chunks of [`MAX_CHUNK`] points.
/// `rng` draws this session's secret scalar and shuffle; both are fresh per call. The peer
/// must call `psi` at the same time with `t.me()` as its peer and the mirrored mode.
pub fn psi(
    t: &mut dyn Transport,
    peer: PartyId,
    keys: &[PsiKey],
    mode: PsiMode,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PsiOutput> {
    psi_chunked(t, peer, keys, mode, MAX_CHUNK, rng)
}

/// As [`psi`], sending at most `chunk` points (1 to [`MAX_CHUNK`]) per message. The
/// parties may use different chunk sizes; each answer mirrors the chunks it answers.
pub fn psi_chunked(
    t: &mut dyn Transport,
    peer: PartyId,
    keys: &[PsiKey],
    mode: PsiMode,
    chunk: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PsiOutput> {
    protocol::run(t, peer, keys, mode, chunk, rng)
}
