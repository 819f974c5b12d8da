//! The clock the node passes to its engine and its signers. The engine never reads time
//! itself; the runtime reads it here, once per event.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock (0 before 1970).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The wall clock's time, for front ends that sign outside a node (the CLI).
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}
