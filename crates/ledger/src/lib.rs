//! consort-ledger owns the permissioned ledger's data model and rules: transactions and their
//! canonical encoding ([`tx`]), blocks ([`block`]), the pure, deterministic state machine that
//! validates and applies blocks ([`state`]), block storage ([`store`]: in-memory and redb),
//! whole-chain verification ([`verify`]), export files ([`export`]) and inclusion proofs
//! ([`proof`]).
//!
//! The state machine performs no I/O and reads no clock: callers pass timestamps in, so every
//! node that applies the same blocks reaches the same state. Byte-exact formats are specified
//! in `docs/FORMAT.md`.

pub mod block;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod dataset;
mod error;
pub mod export;
mod genesis;
pub mod policy;
mod policy_rules;
pub mod proof;
mod rules;
pub mod rules_limits;
pub mod sql_limits;
pub mod state;
pub mod store;
pub mod tx;
pub mod verify;

pub use block::{Block, BlockHeader, InvalidCode, TxOutcome};
pub use error::LedgerError;
pub use export::{read_export, write_export};
pub use proof::{
    Binding, GovernanceEntry, InclusionProof, OutcomeEntry, ProofReport, ProofSources,
};
pub use state::{Applied, LedgerState};
pub use store::{BlockStore, MemBlockStore};
pub use tx::{Approval, Genesis, MemberInfo, Notarization, NotarizedFile, Transaction, TxPayload};
pub use verify::{verify_chain, VerifyFailure, VerifyReport};
