//! The crate's single error type: planning errors, and the lower layers' errors wrapped.

use consort_mpc::MpcError;

/// Errors of planning, policy inputs and execution. Every message is one line; network
/// errors name the peer (the MPC layer already does).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse.
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// SQL over the size and complexity limits (docs/QUERY.md §6, FORMAT.md §8.4).
    #[error("query too complex: {0}")]
    TooComplex(String),
    /// A construct outside the supported subset (named in the message).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// `FROM` names no table dataset in the catalog.
    #[error("unknown dataset {0}")]
    UnknownDataset(String),
    /// A column that the dataset's schema does not have.
    #[error("unknown column {column:?} in dataset {dataset}")]
    UnknownColumn { dataset: String, column: String },
    /// A literal or an aggregate that does not fit the column's type, or schemas that
    /// disagree.
    #[error("type error: {0}")]
    Type(String),
    /// A query that is well-formed SQL but meaningless here (e.g. an ungrouped column).
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The MPC engine failed (names the peer where a peer caused it).
    #[error("MPC: {0}")]
    Mpc(#[from] MpcError),
    /// A public message of the query protocol that does not decode or disagrees.
    #[error("malformed message from {peer}: {reason}")]
    Malformed { peer: String, reason: String },
    /// The caller's arguments do not fit the plan (roles, local rows).
    #[error("invalid execution argument: {0}")]
    Argument(String),
    /// A value that cannot be represented in the MPC encoding (fixed point range).
    #[error("value out of range: {0}")]
    Range(String),
}

impl QueryError {
    pub(crate) fn unsupported(what: impl Into<String>) -> Self {
        QueryError::Unsupported(what.into())
    }
    pub(crate) fn arg(what: impl Into<String>) -> Self {
        QueryError::Argument(what.into())
    }
}
