//! consort-data owns a member's data before and at rest: reading input formats, inferring
//! schemas, applying preprocessing recipes (clean, coerce, filter, deduplicate,
//! pseudonymise), storing datasets as typed tables in the member's own database (SQLite,
//! PostgreSQL or MySQL/MariaDB behind one trait), and computing dataset commitments.
//!
//! Nothing here touches the ledger or the network: the node registers what this crate
//! produces.

pub mod canonical;
pub mod clean;
pub mod error;
pub mod files;
pub mod formats;
pub mod infer;
pub mod pipeline;
pub mod recipe;
pub mod store;
pub mod value;

pub use error::DataError;
pub use value::{Column, ColumnType, Row, Schema, Value};

#[doc(hidden)]
pub mod exp {
    //! TEMPORARY experiment switches (to be removed).
    pub fn thread_cpu(label: &str) {
        if std::env::var("EXP_LOG").is_err() {
            return;
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") {
            let rest = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let s: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            eprintln!("EXP {label} user {:.2} sys {:.2}", u / 100.0, s / 100.0);
        }
    }
    pub fn num(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}
