//! Raft's voters follow the ledger's members. On the leader, a new member first joins as a
//! learner and is promoted once it holds (nearly) the whole log, so the new quorum can
//! commit at once; a removed member is dropped with the same change.

use std::collections::{BTreeMap, BTreeSet};

/// A learner may be promoted when it is at most this many entries behind the leader.
pub const PROMOTION_LAG: u64 = 8;

/// Raft's view of the cluster on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMembership {
    pub leading: bool,
    pub voters: BTreeSet<u64>,
    /// Voters and learners.
    pub known: BTreeSet<u64>,
    /// The last log index each node is known to hold (leader only).
    pub matched: BTreeMap<u64, u64>,
    pub last_log: u64,
}

/// One change to Raft's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterStep {
    AddLearner {
        node: u64,
        addr: String,
    },
    /// Make exactly these nodes the voters (and drop every other node).
    ChangeVoters(BTreeSet<u64>),
}

/// The changes that bring Raft's membership towards `members` (node id → peer address).
/// Only a leader changes anything; a change to the voters waits until every new member
/// has caught up.
pub fn reconcile(raft: &RaftMembership, members: &BTreeMap<u64, String>) -> Vec<VoterStep> {
    if !raft.leading {
        return Vec::new();
    }
    let wanted: BTreeSet<u64> = members.keys().copied().collect();
    if raft.voters == wanted && raft.known == wanted {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut lagging = false;
    for (node, addr) in members {
        if !raft.known.contains(node) {
            steps.push(VoterStep::AddLearner {
                node: *node,
                addr: addr.clone(),
            });
            lagging = true;
        } else if !raft.voters.contains(node) {
            let matched = raft.matched.get(node).copied().unwrap_or(0);
            if matched.saturating_add(PROMOTION_LAG) < raft.last_log {
                lagging = true;
            }
        }
    }
    if !lagging {
        steps.push(VoterStep::ChangeVoters(wanted));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u64]) -> BTreeMap<u64, String> {
        ids.iter().map(|i| (*i, format!("127.0.0.1:{i}"))).collect()
    }

    fn raft(
        voters: &[u64],
        learners: &[u64],
        matched: &[(u64, u64)],
        last_log: u64,
    ) -> RaftMembership {
        RaftMembership {
            leading: true,
            voters: voters.iter().copied().collect(),
            known: voters.iter().chain(learners).copied().collect(),
            matched: matched.iter().copied().collect(),
            last_log,
        }
    }

    #[test]
    fn a_follower_changes_nothing() {
        let mut view = raft(&[1, 2], &[], &[], 10);
        view.leading = false;
        assert!(reconcile(&view, &members(&[1, 2, 3])).is_empty());
    }

    #[test]
    fn an_agreeing_membership_changes_nothing() {
        assert!(reconcile(&raft(&[1, 2, 3], &[], &[], 10), &members(&[1, 2, 3])).is_empty());
    }

    #[test]
    fn a_new_member_joins_as_a_learner_first() {
        let steps = reconcile(&raft(&[1, 2, 3], &[], &[], 10), &members(&[1, 2, 3, 4]));
        assert_eq!(
            steps,
            vec![VoterStep::AddLearner {
                node: 4,
                addr: "127.0.0.1:4".into()
            }]
        );
    }

    #[test]
    fn a_learner_is_promoted_only_once_caught_up() {
        let wanted = members(&[1, 2, 3, 4]);
        let behind = raft(&[1, 2, 3], &[4], &[(4, 100)], 200);
        assert!(reconcile(&behind, &wanted).is_empty());
        let caught_up = raft(&[1, 2, 3], &[4], &[(4, 195)], 200);
        assert_eq!(
            reconcile(&caught_up, &wanted),
            vec![VoterStep::ChangeVoters([1, 2, 3, 4].into())]
        );
    }

    #[test]
    fn a_removed_member_is_dropped() {
        assert_eq!(
            reconcile(&raft(&[1, 2, 3, 4], &[], &[], 10), &members(&[1, 2, 3])),
            vec![VoterStep::ChangeVoters([1, 2, 3].into())]
        );
    }
}
