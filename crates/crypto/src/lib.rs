//! consort-crypto owns every cryptographic primitive the rest of consort relies on:
//! Ed25519 member identities and key files ([`identity`]), signature verification including
//! parallel batch verification, domain-separated BLAKE3 hashing ([`hash`]), RFC 6962 Merkle
//! trees with audit paths ([`merkle`]) and the canonical binary encoding ([`encoding`]).
//!
//! The byte-exact definitions live in `docs/FORMAT.md`; this crate is the reference
//! implementation of its primitives. Nothing here does network I/O; the only file I/O is
//! key files and streaming file hashing.

pub mod encoding;
mod error;
pub mod hash;
pub mod identity;
pub mod merkle;

pub use encoding::DecodeError;
pub use error::CryptoError;
pub use hash::{constant_time_eq, hash_domain, Hash};
pub use identity::{
    verify, verify_each, verify_many, MemberId, PublicKey, SecretKey, Signature, VERIFY_CHUNK_SIZE,
};
