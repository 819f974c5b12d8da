//! consort-bench: the `consort bench` benchmarks. Each starts what it measures for real —
//! node processes of a fresh local consortium ([`consort_demo::cluster::LocalCluster`]),
//! or the ingest pipeline and planner in this process — and checks its answer against a
//! reference (plaintext, or plain SQLite over the same rows through rusqlite) before it
//! reports times: [`ledger`], [`ingest`], [`mpc`], [`psi`], [`query`] (and its JOIN form,
//! [`join`]) and [`plan`]. Each takes a plain options struct that the CLI fills in from its
//! arguments, prints a human report or one JSON document, and returns the exit status.
//!
//! The cluster benchmarks start nodes from the running executable, so they run only inside
//! the `consort` binary.

/// Every `println!` of this crate goes through [`consort_demo::output::line`], which ends
/// the process quietly when standard output is a closed pipe where the standard macro
/// would panic. Defined before the modules so that it shadows the prelude's macro in all
/// of them.
macro_rules! println {
    () => {
        consort_demo::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        consort_demo::output::line(format_args!($($arg)*))
    };
}

pub mod ingest;
pub mod join;
pub mod ledger;
pub mod mpc;
pub mod ordered;
pub mod plan;
pub mod psi;
pub mod query;
