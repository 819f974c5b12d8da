//! consort-demo: consortia of real `consort node run` processes on loopback and what runs on
//! them for show. It owns [`cluster::LocalCluster`] (used by `consort demo`, `consort bench`
//! and the CLI's integration tests), the `consort demo` narrative ([`narrative`]) with its
//! grants and joint queries ([`queries`]), and the generated hospital visits ([`visits`]).
//!
//! It also holds the few pieces the CLI, the demo and the benchmarks share, so that none of
//! them depends on the CLI: standard output that ends quietly on a closed pipe
//! ([`output`]), signing a transaction as a member and verifying a chain export
//! ([`ledger`]).
//!
//! The narrative and the cluster start node processes from the running executable
//! (`std::env::current_exe`), so they work only inside the `consort` binary or with an
//! explicit path to it ([`cluster::LocalCluster::create`]).

/// Every `println!` of this crate goes through [`output::line`], which ends the process
/// quietly when standard output is a closed pipe (`consort demo | head -1`) where the
/// standard macro would panic. Defined before the modules so that it shadows the prelude's
/// macro in all of them.
macro_rules! println {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

pub mod cluster;
pub mod ledger;
pub mod narrative;
pub mod output;
pub mod queries;
pub mod visits;

pub use narrative::{run, DemoOptions};
