//! The crate's single error type.

use consort_crypto::{CryptoError, DecodeError};

use crate::block::InvalidCode;

/// Everything that can go wrong in consort-ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Bytes that are not a canonical encoding of the expected value.
    #[error("malformed {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    /// The block store failed or holds inconsistent data.
    #[error("block store: {0}")]
    Store(String),
    /// A block that does not follow from the current state.
    #[error("invalid block at height {height}: {reason}")]
    InvalidBlock { height: u64, reason: String },
    /// A transaction refused at submission (it would be recorded as invalid in a block).
    #[error("transaction rejected ({0}): {1}")]
    Rejected(InvalidCode, String),
    /// A genesis description that cannot start a consortium.
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    /// A malformed export file.
    #[error("invalid export file: {0}")]
    Export(String),
    /// An inclusion proof that does not verify.
    #[error("inclusion proof does not verify: {0}")]
    Proof(String),
    /// Text that is not an inclusion proof of the version this build reads (FORMAT.md §12).
    #[error("unreadable inclusion proof: {0}")]
    ProofFormat(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl LedgerError {
    pub(crate) fn decode(what: &'static str) -> impl FnOnce(DecodeError) -> LedgerError {
        move |source| LedgerError::Decode { what, source }
    }
}
