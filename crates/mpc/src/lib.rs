//! Three-party replicated secret sharing over Z_2^64 (Araki et al. 2016; ABY3): the pure
//! MPC protocol core of consort. No sockets, no async runtime, no clock: every party runs
//! its protocol on its own thread and talks to its peers through [`Transport`].
//!
//! Security model: semi-honest, honest majority (at most one of the three compute parties
//! corrupted). See `docs/MPC.md` for the protocols, their costs and their leakage.
//!
//! Module map:
//! - [`transport`], [`mem`], [`conformance`]: messaging, the in-memory network, the
//!   conformance suite for transports;
//! - [`prg`]: seeds, AES-CTR generators, zero-sharings;
//! - [`share`]: share types and local operations;
//! - [`session`]: a party's session and the one-round building blocks;
//! - [`io`]: input and reveal (compute and external parties);
//! - [`arith`], [`fixed`], [`divide`]: multiplication, dot products, fixed point,
//!   truncation, division of two secrets and square roots ([`sqrt`]);
//! - [`boolean`], [`circuits`], [`convert`], [`compare`]: boolean sharing, bit-plane
//!   circuits, A2B/B2A/injection/mux, comparisons and min/max;
//! - [`shuffle`], [`sort`]: secure shuffle and shuffle-then-sort;
//! - [`aggregate`]: sum, count, mean, variance, min, max, threshold;
//! - [`psi`]: two-party private set intersection (ECDH over ristretto255) for joins;
//! - [`sim`]: running all parties in one process (tests, benchmarks).

pub mod aggregate;
pub mod arith;
pub mod boolean;
pub mod circuits;
pub mod compare;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod convert;
pub mod divide;
pub mod error;
pub mod fixed;
pub mod io;
pub mod mem;
pub mod prg;
pub mod psi;
pub mod session;
pub mod share;
pub mod shuffle;
pub mod sim;
pub mod sort;
pub mod sqrt;
pub mod transport;

pub use aggregate::{Moments, SENTINEL};
pub use divide::Quotient;
pub use error::{MpcError, Result};
pub use fixed::{decode_fixed, encode_fixed, DEFAULT_FRAC_BITS};
pub use io::{provide_input, receive_output, receive_output_bits};
pub use mem::{mem_network, mem_network_named, MemTransport};
pub use prg::{Prg, Seed};
pub use psi::{PsiKey, PsiMode, PsiOutput, RevealTo};
pub use session::Session;
pub use share::{ArithShares, BitShares, XorShares};
pub use sort::{GroupedSort, SortOptions, SortStats};
pub use transport::{PartyId, Transport};
