//! What the planner sees of the ledger, and who computes a query.

use consort_crypto::{hash_domain, Hash, MemberId};
use consort_ledger::LedgerState;
use consort_query::Catalog;

/// The catalog the planner sees: the members and every dataset on the ledger.
pub fn catalog(state: &LedgerState) -> Catalog {
    Catalog {
        members: state
            .members()
            .iter()
            .map(|(id, m)| (*id, m.name.clone()))
            .collect(),
        datasets: state.datasets().values().cloned().collect(),
    }
}

/// Three compute nodes chosen deterministically from the live members: ordered by
/// `hash_domain("consort/compute/v1", [plan_hash, member id])`, so the choice spreads
/// over members and anyone can recompute it from the request.
pub fn choose_compute(plan_hash: &Hash, live: &[MemberId]) -> Option<Vec<MemberId>> {
    let mut ranked: Vec<(Hash, MemberId)> = live
        .iter()
        .map(|m| (hash_domain("consort/compute/v1", &[&plan_hash.0, &m.0]), *m))
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.1 == b.1);
    (ranked.len() >= 3).then(|| ranked.into_iter().take(3).map(|(_, m)| m).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8) -> MemberId {
        MemberId([i; 16])
    }

    #[test]
    fn three_distinct_live_members_compute_and_anyone_agrees() {
        let live: Vec<MemberId> = (1..=5).map(member).collect();
        let plan = Hash([7; 32]);
        let chosen = choose_compute(&plan, &live).unwrap_or_default();
        assert_eq!(chosen.len(), 3);
        let mut reversed = live.clone();
        reversed.reverse();
        assert_eq!(choose_compute(&plan, &reversed), Some(chosen.clone()));
        let mut distinct = chosen.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn fewer_than_three_live_members_compute_nothing() {
        let twice = [member(1), member(1), member(2)];
        assert_eq!(choose_compute(&Hash([0; 32]), &twice), None);
    }
}
