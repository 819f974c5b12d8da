//! consort-data takes a member's data in: reading input formats, inferring schemas,
//! applying preprocessing recipes (clean, coerce, filter, deduplicate, pseudonymise),
//! committing to the rows (row hashes or hiding salted columns), and content-addressing
//! files datasets. It hands rows to a sink in batches; storing them is `consort-store`'s
//! business, and the node joins the two.
//!
//! Nothing here touches the ledger, the network or a database.

pub use consort_model::canonical;
pub mod clean;
pub mod error;
pub mod files;
pub mod formats;
pub mod hiding;
pub mod infer;
pub mod pipeline;
pub mod recipe;
pub use consort_model::value;

pub use error::DataError;
pub use value::{Column, ColumnType, Row, Schema, Value};
