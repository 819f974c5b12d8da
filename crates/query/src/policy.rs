//! The owner-side policy check (DESIGN §6): may `requester` run `plan` on the owner's
//! dataset, given the owner's grants on the ledger?
//!
//! Rules:
//! - Only grants of `owner` on `dataset` that [`GrantEntry::applies_to`] the requester at
//!   `at_ms` count (expired and revoked grants are ignored; `*` grants cover everyone).
//! - The permissions of all applicable grants are unioned per column. `plain` implies
//!   `group`, `filter` and `aggregate` (whoever may see a column's values may also compute
//!   those functions of them); `join` is never implied.
//! - Every column the plan uses must hold every permission the plan needs on it;
//!   otherwise the plan is refused, naming the first such column (by name) and permission.
//! - A plan that uses no column (`SELECT COUNT(*) FROM t`) still needs at least one
//!   applicable grant on the dataset: without any grant a dataset is unusable.
//! - The minimum group size is the maximum `min_group_size` over the applicable grants
//!   that contributed a needed permission (over all applicable grants when no column is
//!   used), and never below 1.
//! - For a JOIN only the columns of the owner's own side(s) count, by their plain names,
//!   and both join keys need `join`.
//! - The owner querying its own data needs no grant: approved, with K = the maximum over
//!   applicable grants if there are any (so the owner sees what its grantees would),
//!   else [`DEFAULT_MIN_GROUP_SIZE`].

use std::collections::BTreeSet;

use consort_crypto::MemberId;
use consort_ledger::policy::{GrantEntry, Permission, DEFAULT_MIN_GROUP_SIZE};

use crate::plan::Plan;

/// An owner's answer to a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecision {
    pub approve: bool,
    /// Why (a refusal names the column and the missing permission).
    pub reason: String,
    /// The minimum group size the owner demands (0 for a refusal).
    pub min_group_size: u32,
}

fn refuse(reason: String) -> PolicyDecision {
    PolicyDecision {
        approve: false,
        reason,
        min_group_size: 0,
    }
}

fn grants_perm(granted: &[Permission], need: Permission) -> bool {
    granted.contains(&need)
        || (granted.contains(&Permission::Plain)
            && matches!(
                need,
                Permission::Group | Permission::Filter | Permission::Aggregate
            ))
}

/// Checks `plan` for `requester` against the owner's grants (see the module docs).
pub fn check_policy(
    plan: &Plan,
    owner: &MemberId,
    dataset: &str,
    requester: &MemberId,
    grants: &[&GrantEntry],
    at_ms: u64,
) -> PolicyDecision {
    if !plan
        .datasets
        .iter()
        .any(|d| d.owner == *owner && d.name == dataset)
    {
        return refuse(format!(
            "the plan does not read dataset {dataset} of member {owner}"
        ));
    }
    let applicable: Vec<&GrantEntry> = grants
        .iter()
        .copied()
        .filter(|g| g.owner == *owner && g.grant.dataset == dataset)
        .filter(|g| g.applies_to(requester, at_ms))
        .collect();
    let max_k = |gs: &[&GrantEntry]| gs.iter().map(|g| g.grant.min_group_size).max();
    if requester == owner {
        let k = max_k(&applicable).unwrap_or(DEFAULT_MIN_GROUP_SIZE).max(1);
        return PolicyDecision {
            approve: true,
            reason: format!("member {owner} queries its own dataset {dataset}"),
            min_group_size: k,
        };
    }
    if applicable.is_empty() {
        return refuse(format!(
            "no grant on dataset {dataset} applies to member {requester}"
        ));
    }
    let uses = crate::parse_join::uses_for(plan, owner, dataset);
    let mut contributing: BTreeSet<usize> = BTreeSet::new();
    for (column, needs) in &uses {
        for need in needs {
            let givers: Vec<usize> = applicable
                .iter()
                .enumerate()
                .filter(|(_, g)| grants_perm(g.grant.permissions_on(column), *need))
                .map(|(i, _)| i)
                .collect();
            if givers.is_empty() {
                return refuse(format!(
                    "column {column:?} lacks permission {:?} for member {requester}",
                    need.name()
                ));
            }
            contributing.extend(givers);
        }
    }
    let used: Vec<&GrantEntry> = if contributing.is_empty() {
        applicable.clone()
    } else {
        contributing.iter().map(|&i| applicable[i]).collect()
    };
    let k = max_k(&used).unwrap_or(DEFAULT_MIN_GROUP_SIZE).max(1);
    let cols: Vec<&str> = uses.keys().map(|c| c.as_str()).collect();
    PolicyDecision {
        approve: true,
        reason: format!(
            "granted to member {requester} on columns [{}] by {} grant(s)",
            cols.join(", "),
            used.len()
        ),
        min_group_size: k,
    }
}
