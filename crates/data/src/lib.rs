//! consort-data owns a member's data before and at rest: reading input formats, inferring
//! schemas, applying preprocessing recipes (clean, coerce, filter, deduplicate,
//! pseudonymise), storing datasets as typed tables in the member's own database (SQLite,
//! PostgreSQL or MySQL/MariaDB behind one trait), and computing dataset commitments.
//!
//! Nothing here touches the ledger or the network: the node registers what this crate
//! produces.

pub use consort_model::canonical;
pub mod clean;
pub mod error;
pub mod files;
pub mod formats;
pub mod hiding;
pub mod infer;
pub mod pipeline;
pub mod recipe;
pub mod store;
pub use consort_model::value;

pub use error::DataError;
pub use value::{Column, ColumnType, Row, Schema, Value};
