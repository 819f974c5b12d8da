//! When the leader cuts a block. One block is in flight at a time; whatever arrives while
//! it is in flight goes into the next, so under load blocks grow (group commit).

/// The most transactions one block holds; keeps a block (and an AppendEntries batch of
/// blocks) far below the peer frame limit.
pub const MAX_BLOCK_TXS: usize = 4096;

/// What the builder sees when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuilderView {
    /// Raft says this node leads.
    pub leading: bool,
    /// This node has applied its whole log, so a block built on its state extends the
    /// chain every node will have.
    pub applied_whole_log: bool,
    /// The chain halted (a block failed to apply); nothing is built until it is repaired.
    pub halted: bool,
    /// Transactions waiting in the mempool.
    pub pending: usize,
}

/// What the builder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderStep {
    /// Nothing to do now.
    Wait,
    /// No longer the leader: forward what was queued here to the new leader.
    HandOver,
    /// Build a block from the first `take` pending transactions.
    Build { take: usize },
}

/// Decides what the builder does (see [`BuilderStep`]).
pub fn step(view: &BuilderView) -> BuilderStep {
    if view.halted {
        return BuilderStep::Wait;
    }
    if !view.leading {
        return if view.pending > 0 {
            BuilderStep::HandOver
        } else {
            BuilderStep::Wait
        };
    }
    if !view.applied_whole_log || view.pending == 0 {
        return BuilderStep::Wait;
    }
    BuilderStep::Build {
        take: view.pending.min(MAX_BLOCK_TXS),
    }
}

/// A block's timestamp: the clock, but never before the previous block built here.
pub fn block_timestamp(now_ms: u64, previous_ms: u64) -> u64 {
    now_ms.max(previous_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(leading: bool, applied_whole_log: bool, halted: bool, pending: usize) -> BuilderView {
        BuilderView {
            leading,
            applied_whole_log,
            halted,
            pending,
        }
    }

    #[test]
    fn a_leader_builds_at_most_a_full_block() {
        assert_eq!(
            step(&view(true, true, false, 3)),
            BuilderStep::Build { take: 3 }
        );
        assert_eq!(
            step(&view(true, true, false, MAX_BLOCK_TXS * 2 + 1)),
            BuilderStep::Build {
                take: MAX_BLOCK_TXS
            }
        );
        assert_eq!(step(&view(true, true, false, 0)), BuilderStep::Wait);
    }

    #[test]
    fn a_leader_behind_its_log_or_a_halted_chain_waits() {
        assert_eq!(step(&view(true, false, false, 5)), BuilderStep::Wait);
        assert_eq!(step(&view(true, true, true, 5)), BuilderStep::Wait);
        assert_eq!(step(&view(false, true, true, 5)), BuilderStep::Wait);
    }

    #[test]
    fn a_follower_hands_over_what_it_queued() {
        assert_eq!(step(&view(false, false, false, 2)), BuilderStep::HandOver);
        assert_eq!(step(&view(false, true, false, 0)), BuilderStep::Wait);
    }

    #[test]
    fn block_time_never_goes_back() {
        assert_eq!(block_timestamp(100, 50), 100);
        assert_eq!(block_timestamp(40, 50), 50);
    }
}
