//! The query state machine driven by a real ledger state, with no runtime, sockets or
//! clock: owners decide once with the time the event carries, every involved node joins
//! once every owner approved, and closed queries are forgotten.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use consort_crypto::{hash_domain, Hash, MemberId, SecretKey};
use consort_engine::queries::QueryAction;
use consort_engine::{catalog, Action, Engine, Event};
use consort_ledger::conformance::{sample_genesis, sample_keys};
use consort_ledger::dataset::{ColumnSpec, DatasetKind, DatasetRecord};
use consort_ledger::policy::{
    ColumnGrant, Grant, Grantee, Permission, QueryDecision, QueryOutcome, QueryRequest, QueryResult,
};
use consort_ledger::{LedgerState, Transaction, TxOutcome, TxPayload};

const NOW: u64 = 1_000;
const OWNER: usize = 1;
const REQUESTER: usize = 3;
const BYSTANDER: usize = 4;

struct Ledger {
    keys: Vec<SecretKey>,
    state: LedgerState,
    nonce: u64,
}

impl Ledger {
    /// Five members: 1 owns `visits`, 3 asks, 0, 1 and 2 compute, 4 looks on.
    fn new(expires_ms: Option<u64>) -> Self {
        let keys = sample_keys(5);
        let state = LedgerState::from_genesis(&sample_genesis(&keys)).unwrap();
        let mut ledger = Ledger {
            keys,
            state,
            nonce: 0,
        };
        let record = DatasetRecord {
            name: "visits".into(),
            kind: DatasetKind::Table,
            columns: vec![column("patient", "text"), column("age", "integer")],
            row_count: 10,
            commitment: h("commitment"),
            input_hash: h("input"),
            recipe_hash: h("recipe"),
            version: 1,
            parent: None,
            commitment_scheme: Default::default(),
        };
        ledger.commit(OWNER, TxPayload::DatasetRegister(record));
        let grant = Grant {
            dataset: "visits".into(),
            grantee: Grantee::Anyone,
            columns: vec![ColumnGrant {
                column: "age".into(),
                permissions: vec![Permission::Group, Permission::Aggregate],
            }],
            min_group_size: 4,
            expires_ms,
        };
        ledger.commit(OWNER, TxPayload::Grant(grant));
        ledger
    }

    fn id(&self, member: usize) -> MemberId {
        self.keys[member].member_id()
    }

    fn commit(&mut self, signer: usize, payload: TxPayload) -> Hash {
        self.nonce += 1;
        let tx = Transaction::sign(
            payload,
            &self.keys[signer],
            &self.state.chain_id(),
            self.nonce,
            NOW,
        );
        let id = tx.id();
        let block = self
            .state
            .build_block(vec![tx], &self.keys[0], NOW, &[false]);
        self.state.apply_block(&block, true).unwrap();
        assert!(
            matches!(block.outcomes[0], TxOutcome::Valid),
            "{:?}",
            block.outcomes[0]
        );
        id
    }

    /// Records a request for `sql` by the requester, with the plan hash it would compute
    /// (or `plan_hash` instead); returns the query id and the plan.
    fn request(&mut self, sql: &str, plan_hash: Option<Hash>) -> (Hash, Arc<consort_query::Plan>) {
        let plan = consort_query::plan(sql, &catalog(&self.state)).unwrap();
        let request = QueryRequest {
            sql: sql.into(),
            plan_hash: plan_hash.unwrap_or_else(|| plan.hash()),
            datasets: plan.datasets.clone(),
            compute: vec![self.id(0), self.id(1), self.id(2)],
        };
        (
            self.commit(REQUESTER, TxPayload::QueryRequest(request)),
            Arc::new(plan),
        )
    }

    fn engine(&self, member: usize) -> Engine {
        Engine::new(self.id(member))
    }
}

fn column(name: &str, ty: &str) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        ty: ty.into(),
        nullable: true,
    }
}

fn h(label: &str) -> Hash {
    hash_domain("test", &[label.as_bytes()])
}

fn on_ledger(engine: &mut Engine, ledger: &Ledger, now_ms: u64) -> Vec<QueryAction> {
    engine
        .handle(Event::Ledger {
            state: &ledger.state,
            now_ms,
        })
        .into_iter()
        .map(|a| match a {
            Action::Query(q) => q,
            other => panic!("a ledger event gave {other:?}"),
        })
        .collect()
}

fn the_decision(actions: Vec<QueryAction>) -> QueryDecision {
    match actions.as_slice() {
        [QueryAction::Decide(d)] => d.clone(),
        other => panic!("expected one decision, got {other:?}"),
    }
}

const SQL: &str = "SELECT age, COUNT(*) FROM visits GROUP BY age";

#[test]
fn an_owner_decides_once_then_every_involved_node_joins_once() {
    let mut ledger = Ledger::new(None);
    let (query, plan) = ledger.request(SQL, None);
    let mut owner = ledger.engine(OWNER);
    let mut requester = ledger.engine(REQUESTER);
    let mut bystander = ledger.engine(BYSTANDER);
    requester.handle(Event::Planned(plan.clone()));

    let decision = the_decision(on_ledger(&mut owner, &ledger, NOW));
    assert!(decision.approve, "{}", decision.reason);
    assert_eq!((decision.query, decision.min_group_size), (query, 4));
    assert!(
        on_ledger(&mut owner, &ledger, NOW).is_empty(),
        "decided twice"
    );
    assert!(
        on_ledger(&mut requester, &ledger, NOW).is_empty(),
        "joined before approval"
    );

    ledger.commit(OWNER, TxPayload::QueryDecision(decision));
    for (engine, member) in [(&mut owner, OWNER), (&mut requester, REQUESTER)] {
        let actions = on_ledger(engine, &ledger, NOW);
        let [QueryAction::Join(start)] = actions.as_slice() else {
            panic!("member {member}: expected to join, got {actions:?}");
        };
        assert_eq!(start.query, query);
        assert_eq!(start.min_group_size, 4);
        assert_eq!(start.plan.hash(), plan.hash());
        assert_eq!(start.requester, member == REQUESTER);
        // The requester runs the plan its API made: the query is planned once per node.
        assert_eq!(Arc::ptr_eq(&start.plan, &plan), member == REQUESTER);
        let own: Vec<&str> = start.own_datasets.iter().map(String::as_str).collect();
        assert_eq!(
            own,
            if member == OWNER {
                vec!["visits"]
            } else {
                vec![]
            }
        );
        assert_eq!(
            start.roles.compute,
            [ledger.id(0), ledger.id(1), ledger.id(2)]
        );
        assert!(on_ledger(engine, &ledger, NOW).is_empty(), "joined twice");
    }
    assert!(on_ledger(&mut bystander, &ledger, NOW).is_empty());
    assert_eq!(owner.queries().tracked(), 1);
    let result = QueryResult {
        query,
        outcome: QueryOutcome::Failed {
            reason: "test".into(),
        },
    };
    ledger.commit(REQUESTER, TxPayload::QueryResult(result));
    assert!(on_ledger(&mut owner, &ledger, NOW).is_empty());
    assert_eq!(owner.queries().tracked(), 0, "a closed query is forgotten");
}

#[test]
fn the_owner_refuses_a_column_it_did_not_grant_naming_it() {
    let mut ledger = Ledger::new(None);
    ledger.request(
        "SELECT patient, COUNT(*) FROM visits GROUP BY patient",
        None,
    );
    let decision = the_decision(on_ledger(&mut ledger.engine(OWNER), &ledger, NOW));
    assert!(!decision.approve);
    assert!(decision.reason.contains("patient"), "{}", decision.reason);
}

#[test]
fn the_clock_comes_from_the_event() {
    let mut ledger = Ledger::new(Some(NOW + 500));
    ledger.request(SQL, None);
    let before = the_decision(on_ledger(&mut ledger.engine(OWNER), &ledger, NOW + 499));
    assert!(before.approve, "{}", before.reason);
    let after = the_decision(on_ledger(&mut ledger.engine(OWNER), &ledger, NOW + 501));
    assert!(!after.approve, "an expired grant still counted");
}

#[test]
fn a_plan_hash_that_is_not_this_sql_is_refused_and_not_joined() {
    let mut ledger = Ledger::new(None);
    let (query, _) = ledger.request(SQL, Some(h("another plan")));
    let decision = the_decision(on_ledger(&mut ledger.engine(OWNER), &ledger, NOW));
    assert!(!decision.approve);
    assert!(decision.reason.contains("plan hash"), "{}", decision.reason);
    // Were it approved anyway (an owner on another build), the requester gives up at once.
    let approval = QueryDecision {
        query,
        approve: true,
        reason: "ok".into(),
        min_group_size: 3,
    };
    ledger.commit(OWNER, TxPayload::QueryDecision(approval));
    match on_ledger(&mut ledger.engine(REQUESTER), &ledger, NOW).as_slice() {
        [QueryAction::CannotJoin {
            query: q,
            reason,
            requester: true,
        }] => {
            assert_eq!(*q, query);
            assert!(reason.contains("plan hash"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
