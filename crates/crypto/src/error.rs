//! The crate's single error type.

use crate::encoding::DecodeError;

/// Everything that can go wrong in consort-crypto.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A hex string did not decode to the expected value.
    #[error("invalid hex for {what}: {reason}")]
    Hex { what: &'static str, reason: String },
    /// A 32-byte string is not a valid Ed25519 public key (not a curve point).
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// A signature did not verify (strict RFC 8032 verification).
    #[error("signature verification failed")]
    BadSignature,
    /// A key file's text is not a key.
    #[error("not a key file: {0}")]
    KeyFile(String),
    /// The key could not be encoded as PKCS#8.
    #[error("PKCS#8 encoding of the member key failed: {0}")]
    Pkcs8(String),
    /// Canonical decoding failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
