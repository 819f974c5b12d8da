//! Rate-limited logging of refused connections.
//!
//! Anyone who can reach a port can make a node refuse connections as fast as it can open
//! them; one line per refusal let a flood write megabytes of log a minute. A
//! [`RefusalLog`] writes the first few refusals of each interval in full (they name the
//! source and the reason, which is what a misconfigured member needs to see) and counts the
//! rest into one summary line per interval.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most one summary line per interval; also how often the accept loops flush it.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
/// Refusals written in full per interval before the rest are only counted.
pub const DETAILED_PER_INTERVAL: u64 = 3;

/// Counts refusals of one kind of connection (e.g. "peer connections").
pub struct RefusalLog {
    what: &'static str,
    state: Mutex<Window>,
}

struct Window {
    since: Instant,
    total: u64,
    detailed: u64,
    by_reason: BTreeMap<&'static str, u64>,
}

impl RefusalLog {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            state: Mutex::new(Window {
                since: Instant::now(),
                total: 0,
                detailed: 0,
                by_reason: BTreeMap::new(),
            }),
        }
    }

    /// Counts one refusal under `reason` (a short plural phrase such as "over the
    /// per-source limit"); writes `detail()` at `warn` while few were written this interval.
    pub fn refused(&self, reason: &'static str, detail: impl FnOnce() -> String) {
        let mut window = self.lock();
        self.roll(&mut window);
        window.total += 1;
        *window.by_reason.entry(reason).or_insert(0) += 1;
        if window.detailed < DETAILED_PER_INTERVAL {
            window.detailed += 1;
            drop(window);
            tracing::warn!("{}", detail());
        }
    }

    /// Writes the summary of an interval that has ended; called periodically so that the
    /// last burst of a flood is reported even when no further refusal comes.
    pub fn flush_if_due(&self) {
        let mut window = self.lock();
        self.roll(&mut window);
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // The window holds only counters, which stay meaningful after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn roll(&self, window: &mut Window) {
        let elapsed = window.since.elapsed();
        if elapsed < SUMMARY_INTERVAL {
            return;
        }
        if window.total > window.detailed {
            let breakdown: Vec<String> = window
                .by_reason
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            tracing::warn!(
                "refused {} {} in the last {} s ({}); {} of them logged individually",
                window.total,
                self.what,
                elapsed.as_secs(),
                breakdown.join(", "),
                window.detailed
            );
        }
        window.since = Instant::now();
        window.total = 0;
        window.detailed = 0;
        window.by_reason.clear();
    }
}
