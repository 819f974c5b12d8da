//! When the member that requested a query stops waiting, and why. The runtime asks after
//! every block and on a short tick, with the ledger's entry for the query and the time.

use consort_crypto::MemberId;
use consort_ledger::policy::{QueryEntry, QueryOutcome};

/// What the requester does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The ledger records the query as failed: report it.
    Failed { reason: String },
    /// An owner refused: record the failure and report the refusal.
    Refused { by: MemberId, reason: String },
    /// The session's answer is here: take it (and wait for the attestation).
    Collect,
    /// Some owners did not decide in time: record the failure naming them.
    DecisionsMissing { missing: Vec<MemberId> },
    /// The overall deadline passed.
    OutOfTime,
    /// Keep waiting.
    Wait,
}

/// The requester's deadlines, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Every owner's decision must be on the ledger by then.
    pub decisions_ms: u64,
    /// The answer must be here by then.
    pub answer_ms: u64,
}

/// Decides the requester's next step for `entry` at `now_ms`. `answered` says whether the
/// session's answer reached this node.
pub fn progress(entry: &QueryEntry, answered: bool, now_ms: u64, deadlines: Deadlines) -> Progress {
    if let Some((result, _)) = &entry.result {
        if let QueryOutcome::Failed { reason } = &result.outcome {
            return Progress::Failed {
                reason: reason.clone(),
            };
        }
    }
    if let Some((by, decision, _)) = entry.decisions.iter().find(|d| !d.1.approve) {
        return Progress::Refused {
            by: *by,
            reason: decision.reason.clone(),
        };
    }
    if answered {
        return Progress::Collect;
    }
    let owners = entry.request.owners();
    if entry.decisions.len() < owners.len() && now_ms >= deadlines.decisions_ms {
        let missing = owners
            .into_iter()
            .filter(|o| !entry.decisions.iter().any(|d| d.0 == *o))
            .collect();
        return Progress::DecisionsMissing { missing };
    }
    if now_ms >= deadlines.answer_ms {
        return Progress::OutOfTime;
    }
    Progress::Wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_crypto::Hash;
    use consort_ledger::policy::{DatasetRef, QueryDecision, QueryRequest, QueryResult};

    fn member(i: u8) -> MemberId {
        MemberId([i; 16])
    }

    fn entry(owners: &[u8]) -> QueryEntry {
        QueryEntry {
            id: Hash([1; 32]),
            requester: member(9),
            request: QueryRequest {
                sql: "SELECT COUNT(*) FROM t".into(),
                plan_hash: Hash([2; 32]),
                datasets: owners
                    .iter()
                    .map(|o| DatasetRef {
                        owner: member(*o),
                        name: "t".into(),
                        version_tx: Hash([3; 32]),
                    })
                    .collect(),
                compute: vec![member(1), member(2), member(3)],
            },
            requested_ms: 0,
            decisions: Vec::new(),
            result: None,
        }
    }

    fn decide(entry: &mut QueryEntry, owner: u8, approve: bool) {
        entry.decisions.push((
            member(owner),
            QueryDecision {
                query: entry.id,
                approve,
                reason: format!("because {owner}"),
                min_group_size: 3,
            },
            Hash([owner; 32]),
        ));
    }

    const DEADLINES: Deadlines = Deadlines {
        decisions_ms: 100,
        answer_ms: 1_000,
    };

    #[test]
    fn waits_then_names_the_owners_that_did_not_decide() {
        let mut e = entry(&[1, 2, 3]);
        decide(&mut e, 2, true);
        assert_eq!(progress(&e, false, 50, DEADLINES), Progress::Wait);
        assert_eq!(
            progress(&e, false, 100, DEADLINES),
            Progress::DecisionsMissing {
                missing: vec![member(1), member(3)]
            }
        );
    }

    #[test]
    fn a_refusal_wins_over_an_answer() {
        let mut e = entry(&[1, 2]);
        decide(&mut e, 1, true);
        decide(&mut e, 2, false);
        assert_eq!(
            progress(&e, true, 0, DEADLINES),
            Progress::Refused {
                by: member(2),
                reason: "because 2".into()
            }
        );
    }

    #[test]
    fn a_recorded_failure_is_reported_and_an_answer_collected() {
        let mut e = entry(&[1]);
        decide(&mut e, 1, true);
        assert_eq!(progress(&e, true, 5_000, DEADLINES), Progress::Collect);
        assert_eq!(progress(&e, false, 5_000, DEADLINES), Progress::OutOfTime);
        e.result = Some((
            QueryResult {
                query: e.id,
                outcome: QueryOutcome::Failed {
                    reason: "gone".into(),
                },
            },
            Hash([4; 32]),
        ));
        assert_eq!(
            progress(&e, true, 0, DEADLINES),
            Progress::Failed {
                reason: "gone".into()
            }
        );
    }
}
