//! The node's decision engine, sans I/O (in the style of openraft's `Engine`): every
//! decision a node takes on its own is a function of events, and comes back as actions
//! for the runtime (`consort-node`) to carry out. The engine has no async runtime, no
//! sockets, no files and no clock: time arrives inside the events.
//!
//! | event ([`Event`])                                  | actions ([`Action`])                            |
//! |----------------------------------------------------|-------------------------------------------------|
//! | the ledger moved or a tick passed (`Ledger`)       | record an owner's decision, join a query session, or give up on one |
//! | the API planned a query (`Planned`)                | none; the plan is kept so the query is planned once |
//! | Raft's view of the membership (`Membership`)      | add a learner, change the voters                 |
//!
//! Two stateless decisions are plain functions the runtime calls where it stands: when the
//! leader cuts a block ([`builder::step`], in the sequencer's loop) and when a requester
//! stops waiting for a query's answer ([`requester::progress`]).
//!
//! Module map: [`queries`] (the query state machine and the owner's decision),
//! [`membership`] (Raft voters follow the ledger's members), [`builder`] (when the leader
//! cuts a block), [`requester`] (when a requester stops waiting), [`catalog`] (what the
//! planner sees of the ledger, and the choice of compute nodes).

pub mod builder;
pub mod catalog;
pub mod membership;
pub mod queries;
pub mod requester;

use std::sync::Arc;

use consort_ledger::LedgerState;
use consort_query::Plan;

pub use builder::{BuilderStep, BuilderView};
pub use catalog::{catalog, choose_compute};
pub use membership::{RaftMembership, VoterStep};
pub use queries::{QueryAction, QueryEngine, SessionStart};

/// Something that happened that the node must react to.
pub enum Event<'a> {
    /// A block was applied, or the periodic tick passed: the ledger as it stands, and the
    /// current time in milliseconds since the Unix epoch.
    Ledger { state: &'a LedgerState, now_ms: u64 },
    /// This node's API planned a query it is about to request.
    Planned(Arc<Plan>),
    /// Raft's view of the cluster, with the ledger's members (Raft node id → peer address).
    Membership {
        raft: &'a RaftMembership,
        members: &'a std::collections::BTreeMap<u64, String>,
    },
}

/// What the runtime must do.
#[derive(Debug)]
pub enum Action {
    Query(QueryAction),
    Voters(VoterStep),
}

/// The whole engine of one node. Only the query part keeps state; the others are decided
/// from the event alone.
pub struct Engine {
    queries: QueryEngine,
}

impl Engine {
    pub fn new(me: consort_crypto::MemberId) -> Self {
        Self {
            queries: QueryEngine::new(me),
        }
    }

    /// Takes one event and returns what to do about it, in order.
    pub fn handle(&mut self, event: Event<'_>) -> Vec<Action> {
        match event {
            Event::Ledger { state, now_ms } => self
                .queries
                .on_ledger(state, now_ms)
                .into_iter()
                .map(Action::Query)
                .collect(),
            Event::Planned(plan) => {
                self.queries.planned(plan);
                Vec::new()
            }
            Event::Membership { raft, members } => membership::reconcile(raft, members)
                .into_iter()
                .map(Action::Voters)
                .collect(),
        }
    }

    /// The query part, for the runtime's bookkeeping questions.
    pub fn queries(&self) -> &QueryEngine {
        &self.queries
    }
}
