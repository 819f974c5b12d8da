//! Joint SQL queries (DESIGN §8): this crate owns the SQL subset → federated [`Plan`]
//! ([`plan()`]), the owner-side policy check of a plan against the owner's column grants
//! ([`check_policy`]), and the MPC execution of a plan over the
//! [`consort_mpc::transport::Transport`] trait ([`run_party`]).
//!
//! It is pure: no async runtime, no sockets, no clock. The node builds the [`Catalog`]
//! from its ledger state, runs the owner-local part of the plan ([`Plan::local`]) on its
//! own database, opens one MPC transport session with [`Roles::parties`] and calls
//! [`run_party`] on its own thread. What each party learns is listed in `docs/QUERY.md`.
//!
//! Module map:
//! - [`attest`]: the compute nodes' co-signed `QueryResult` ([`cosign`]) and the session's
//!   minimum group size ([`session_min_group_size`]);
//! - [`plan`] (types, canonical hash), `parse` (sqlparser AST → plan) and `parse_expr`
//!   (columns, aggregates, predicates, HAVING, literals);
//! - [`policy`]: the owner's decision;
//! - [`table`]: the revealed [`ResultTable`] and its hash;
//! - `parse_join`: `FROM a JOIN b ON a.k = b.k`, planned as one virtual relation and split
//!   per side ([`JoinSpec`]);
//! - [`exec`] (roles, the entry point, raw selection, the share digests and result hash) and `exec_agg`
//!   (the aggregate protocol, with the owners' encoding and the requester's decoding in
//!   `exec_io` and its arithmetic in `exec_math`); `exec_join` (joins: PSI alignment per
//!   pair of owners, MPC over the aligned rows, with the owners' edge in
//!   `exec_join_align`); `canon` is the canonical byte encoding shared by hashes and
//!   public messages.

pub mod attest;
pub mod bounds;
mod canon;
pub mod error;
pub mod exec;
mod exec_agg;
mod exec_io;
mod exec_join;
mod exec_join_align;
mod exec_lists;
mod exec_math;
mod exec_top;
mod exec_values;
pub mod explain;
mod parse;
mod parse_agg;
mod parse_dates;
mod parse_expr;
mod parse_funcs;
mod parse_join;
mod parse_scalar;
pub mod plan;
pub mod policy;
pub mod table;

pub use attest::{cosign, result_payload, session_min_group_size, Attestation};
pub use error::QueryError;
pub use exec::{run_party, LocalInput, PartyOutcome, Roles};
pub use explain::{explain, explain_target};
pub use plan::{
    plan, AggFunc, AggSpec, Catalog, Fraction, HavingExpr, JoinSide, JoinSpec, LocalWork, OrderKey,
    OrderTarget, OutputColumn, OutputExpr, Plan, ValueList, FRAC_BITS,
};
pub use policy::{check_policy, PolicyDecision};
pub use table::ResultTable;
