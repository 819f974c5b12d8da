//! The crate's single error type.

use std::path::PathBuf;

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
    /// A key file exists but its contents are not a key.
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// A key file is readable or writable by group or others.
    #[error("key file {path} has mode {mode:o}, which lets group/others access it; run `chmod 600 {path}`")]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// An I/O operation on a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key could not be encoded as PKCS#8.
    #[error("PKCS#8 encoding of the member key failed: {0}")]
    Pkcs8(String),
    /// Canonical decoding failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
