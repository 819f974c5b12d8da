//! The data crate's error type.

/// Everything that can go wrong taking in, preparing, storing or committing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Crypto(#[from] consort_crypto::CryptoError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Input that cannot be read as the format it claims to be.
    #[error("{0}")]
    Format(String),
    /// A recipe that is not valid.
    #[error("recipe: {0}")]
    Recipe(String),
    /// Anything else the user asked for that cannot be done, with the reason.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
