//! The query state machine of one node (DESIGN §8). For every open query on the ledger it
//! decides this node's parts: as an owner, check the plan against its own grants and
//! record a decision; once every owner approved, join the query's MPC session as owner,
//! compute node or requester. Each query is planned once per node: the plan made for the
//! owner's decision (or by this node's API, for its own requests) is the plan the session
//! runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use consort_crypto::{Hash, MemberId};
use consort_ledger::policy::{GrantEntry, QueryDecision, QueryEntry};
use consort_ledger::rules_limits::bounded_text;
use consort_ledger::LedgerState;
use consort_query::{session_min_group_size, Plan, Roles};

use crate::catalog::catalog;

/// Bound on any one wait for a peer inside a query's MPC session.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra patience per row of the joined datasets while the owners run their PSI (which
/// costs about 70 µs of one core per row and owner).
pub const PSI_WAIT_PER_ROW: Duration = Duration::from_micros(200);
/// Plans this node's API made that no ledger entry has claimed yet are kept up to this
/// many (the oldest goes first); a request that never commits leaves nothing behind.
const PLANNED_KEPT: usize = 64;

/// Everything a node needs to play its parts in one query's session.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub query: Hash,
    pub plan: Arc<Plan>,
    pub roles: Roles,
    /// The strictest minimum group size among the owners' decisions.
    pub min_group_size: u32,
    /// The datasets of the request that this node owns (it pushes its part down to them).
    pub own_datasets: Vec<String>,
    /// How long a party may wait on another's next message.
    pub peer_timeout: Duration,
    /// This node requested the query (the answer is its to keep).
    pub requester: bool,
}

/// What the runtime does for a query.
#[derive(Debug, Clone)]
pub enum QueryAction {
    /// Record this owner's decision on the ledger.
    Decide(QueryDecision),
    /// Join the query's MPC session.
    Join(Box<SessionStart>),
    /// This node cannot take part (its plan differs); a requester reports it as the answer.
    CannotJoin {
        query: Hash,
        reason: String,
        requester: bool,
    },
}

#[derive(Default)]
struct Tracked {
    plan: Option<Result<Arc<Plan>, String>>,
    decided: bool,
    joined: bool,
}

/// See the module documentation.
pub struct QueryEngine {
    me: MemberId,
    open: BTreeMap<Hash, Tracked>,
    /// Plans this node's API made, oldest first.
    planned: Vec<Arc<Plan>>,
}

impl QueryEngine {
    pub fn new(me: MemberId) -> Self {
        Self {
            me,
            open: BTreeMap::new(),
            planned: Vec::new(),
        }
    }

    /// Keeps a plan this node's API made, so the request it is about to record is not
    /// planned again here.
    pub fn planned(&mut self, plan: Arc<Plan>) {
        if self.planned.len() >= PLANNED_KEPT {
            self.planned.remove(0);
        }
        self.planned.push(plan);
    }

    /// The open queries this node is tracking (for status and tests).
    pub fn tracked(&self) -> usize {
        self.open.len()
    }

    /// Reacts to the ledger as it stands at `now_ms`.
    pub fn on_ledger(&mut self, state: &LedgerState, now_ms: u64) -> Vec<QueryAction> {
        let me = self.me;
        let mut actions = Vec::new();
        let mut still_open = BTreeSet::new();
        for (id, entry) in state.queries() {
            if entry.result.is_some() {
                continue;
            }
            still_open.insert(*id);
            let owners = entry.request.owners();
            let owner = owners.contains(&me);
            let involved = owner || entry.request.compute.contains(&me) || entry.requester == me;
            let must_decide = owner && !entry.decisions.iter().any(|d| d.0 == me);
            let all_approved = owners
                .iter()
                .all(|o| entry.decisions.iter().any(|d| d.0 == *o && d.1.approve));
            let joins = all_approved && involved;
            let tracked = self.open.entry(*id).or_default();
            if (!must_decide || tracked.decided) && (!joins || tracked.joined) {
                continue;
            }
            if tracked.plan.is_none() {
                tracked.plan = Some(plan_for(&mut self.planned, state, entry));
            }
            let Some(plan) = tracked.plan.clone() else {
                continue;
            };
            if must_decide && !tracked.decided {
                tracked.decided = true;
                actions.push(QueryAction::Decide(judge(me, state, entry, &plan, now_ms)));
            }
            if joins && !tracked.joined {
                tracked.joined = true;
                actions.push(match plan {
                    Ok(plan) => match session_start(me, state, entry, plan) {
                        Ok(start) => QueryAction::Join(Box::new(start)),
                        Err(reason) => cannot_join(me, entry, reason),
                    },
                    Err(reason) => cannot_join(me, entry, reason),
                });
            }
        }
        // A query with a result never reopens: forget it, so memory follows open queries.
        self.open.retain(|id, _| still_open.contains(id));
        actions
    }
}

fn cannot_join(me: MemberId, entry: &QueryEntry, reason: String) -> QueryAction {
    QueryAction::CannotJoin {
        query: entry.id,
        reason,
        requester: entry.requester == me,
    }
}

/// The plan of `entry`'s SQL over this node's view of the ledger, checked against the
/// recorded plan hash; a plan this node's API made is taken instead of planning again.
fn plan_for(
    planned: &mut Vec<Arc<Plan>>,
    state: &LedgerState,
    entry: &QueryEntry,
) -> Result<Arc<Plan>, String> {
    let request = &entry.request;
    if let Some(i) = planned
        .iter()
        .position(|p| p.sql == request.sql && p.hash() == request.plan_hash)
    {
        return Ok(planned.remove(i));
    }
    let plan = consort_query::plan(&request.sql, &catalog(state))
        .map_err(|e| format!("the query does not plan on this node: {e}"))?;
    if plan.hash() != request.plan_hash {
        return Err(
            "the recorded plan hash is not the plan of this SQL over the ledger's datasets".into(),
        );
    }
    Ok(Arc::new(plan))
}

fn refuse(entry: &QueryEntry, reason: &str) -> QueryDecision {
    QueryDecision {
        query: entry.id,
        approve: false,
        // The reason can quote hostile SQL; the ledger takes at most MAX_TEXT_BYTES.
        reason: bounded_text(reason),
        min_group_size: 0,
    }
}

/// The owner's decision on `entry` (DESIGN §6): the plan must be the recorded one, every
/// dataset of this owner must still be at the version the request names, and the owner's
/// grants must allow what the plan does. The owner decides alone.
pub fn judge(
    me: MemberId,
    state: &LedgerState,
    entry: &QueryEntry,
    plan: &Result<Arc<Plan>, String>,
    now_ms: u64,
) -> QueryDecision {
    let plan = match plan {
        Ok(plan) => plan,
        Err(reason) => return refuse(entry, reason),
    };
    let mut min_group_size = 1;
    let mut reasons = Vec::new();
    for dataset in entry.request.datasets.iter().filter(|d| d.owner == me) {
        match state.dataset(&me, &dataset.name) {
            Some(current) if current.tx_id == dataset.version_tx => {}
            _ => {
                return refuse(
                    entry,
                    &format!(
                        "dataset {} is no longer at the version the query names",
                        dataset.name
                    ),
                )
            }
        }
        let grants: Vec<&GrantEntry> = state.grants_on(&me, &dataset.name).collect();
        let verdict = consort_query::check_policy(
            plan,
            &me,
            &dataset.name,
            &entry.requester,
            &grants,
            now_ms,
        );
        if !verdict.approve {
            return refuse(entry, &verdict.reason);
        }
        min_group_size = min_group_size.max(verdict.min_group_size);
        reasons.push(verdict.reason);
    }
    QueryDecision {
        query: entry.id,
        approve: true,
        reason: bounded_text(&reasons.join("; ")),
        min_group_size,
    }
}

fn session_start(
    me: MemberId,
    state: &LedgerState,
    entry: &QueryEntry,
    plan: Arc<Plan>,
) -> Result<SessionStart, String> {
    let compute: [MemberId; 3] = entry
        .request
        .compute
        .as_slice()
        .try_into()
        .map_err(|_| "the request does not name three compute nodes".to_string())?;
    let roles = Roles {
        compute,
        owners: entry.request.owners(),
        requester: entry.requester,
    };
    let peer_timeout = if plan.join.is_some() {
        // In a JOIN the compute parties wait while the owners run their PSI, whose length
        // grows with the rows on the ledger; about three times what it takes on 2 cores.
        let rows: u64 = entry
            .request
            .datasets
            .iter()
            .filter_map(|d| state.dataset(&d.owner, &d.name).map(|e| e.record.row_count))
            .sum();
        SESSION_TIMEOUT + PSI_WAIT_PER_ROW * u32::try_from(rows).unwrap_or(u32::MAX)
    } else {
        SESSION_TIMEOUT
    };
    Ok(SessionStart {
        query: entry.id,
        min_group_size: session_min_group_size(entry.decisions.iter().map(|d| &d.1)),
        own_datasets: entry
            .request
            .datasets
            .iter()
            .filter(|d| d.owner == me)
            .map(|d| d.name.clone())
            .collect(),
        requester: entry.requester == me,
        roles,
        plan,
        peer_timeout,
    })
}
