//! consort's data model, shared by every layer above the cryptography and kept free of
//! storage and runtime crates (`cargo tree -e normal -p consort-model` shows none):
//!
//! - typed values, columns and schemas ([`value`]);
//! - the canonical byte encoding of values and rows, and the dataset commitment built
//!   from it ([`canonical`], `docs/FORMAT.md` §14.1);
//! - the queries an owner runs on its own table for a joint query ([`local_query`]),
//!   which the planner (`consort-query`) builds and the storage backends (`consort-store`)
//!   render into SQL.

pub mod canonical;
pub mod local_query;
pub mod scalar;
pub mod value;

pub use value::{Column, ColumnType, Row, Schema, Value};
