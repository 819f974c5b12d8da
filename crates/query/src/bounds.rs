//! The planner's bounds on hostile SQL (issue 15, `docs/SECURITY.md`).
//!
//! Three layers, each cheap and each enough on its own for what it guards:
//! 1. the ledger's lexical limits ([`consort_ledger::sql_limits`]) before sqlparser sees the
//!    text, which bound every tree the parser can build from it;
//! 2. a depth check of every expression in the parsed statement, so the planner's own
//!    recursive walks never go deeper than [`MAX_EXPR_DEPTH`];
//! 3. parsing, planning and dropping the syntax tree on the planning thread, which has a
//!    large stack, so that a tree the limits still admit (a long chain is flat text but a
//!    deep tree) is walked and freed where the stack cannot run out, and any panic becomes a
//!    refusal instead of taking the node down. Plans queue for that one thread; a refused
//!    hostile query costs it milliseconds.

use std::ops::ControlFlow;
use std::sync::{mpsc, Mutex, OnceLock};

use consort_ledger::sql_limits::{self, SQL_LIMITS};
use sqlparser::ast::{Expr, Statement, Visit, Visitor};

use crate::error::QueryError;

/// The deepest nesting of expressions the planner accepts.
pub const MAX_EXPR_DEPTH: usize = 256;

/// The planning thread's stack. Dropping or printing a left-deep chain costs a few hundred
/// bytes of stack per level; the lexical limits admit chains of at most a few thousand.
const PLANNER_STACK_BYTES: usize = 64 << 20;

/// Refuses SQL over the lexical limits, before any parse.
pub fn check_lexical(sql: &str) -> Result<(), QueryError> {
    sql_limits::check(sql, &SQL_LIMITS)
        .map(|_| ())
        .map_err(QueryError::TooComplex)
}

struct DepthGuard {
    depth: usize,
}

impl Visitor for DepthGuard {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Refuses a statement with an expression nested deeper than [`MAX_EXPR_DEPTH`]. The visit
/// stops at the first level past the bound, so it never recurses deeper itself.
pub(crate) fn check_depth(statement: &Statement) -> Result<(), QueryError> {
    let mut guard = DepthGuard { depth: 0 };
    match statement.visit(&mut guard) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(QueryError::TooComplex(format!(
            "expressions nest more than {MAX_EXPR_DEPTH} deep"
        ))),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The planning thread: started on first use and kept, because starting a thread with a
/// large stack for every plan cost about 0.1 ms, several times the plan itself.
fn planner() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static PLANNER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    PLANNER
        .get_or_init(|| {
            let (jobs, inbox) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("consort-plan".into())
                .stack_size(PLANNER_STACK_BYTES)
                .spawn(move || {
                    for job in inbox {
                        // A panic drops the job's reply sender, which its caller reports;
                        // the thread lives on for the next plan.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .ok()
                .map(|_| Mutex::new(jobs))
        })
        .as_ref()
}

/// Plans `sql` on the planning thread, whose large stack outlives any tree the limits admit;
/// a panic in the planner becomes an error. Falls back to a thread of its own if the
/// planning thread could not be started.
pub(crate) fn plan_on_planner_stack(
    sql: &str,
    catalog: &crate::plan::Catalog,
) -> Result<crate::plan::Plan, QueryError> {
    let failed = || QueryError::Invalid("the planner failed on this query".into());
    if let Some(planner) = planner() {
        let (reply, answer) = mpsc::sync_channel(1);
        let (sql, catalog) = (sql.to_string(), catalog.clone());
        let job: Job = Box::new(move || {
            let _ = reply.send(crate::parse::plan_sql(&sql, &catalog));
        });
        let sent = planner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .is_ok();
        if sent {
            return answer.recv().map_err(|_| failed())?;
        }
    }
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("consort-plan-once".into())
            .stack_size(PLANNER_STACK_BYTES)
            .spawn_scoped(scope, || crate::parse::plan_sql(sql, catalog))
            .map_err(|e| QueryError::Invalid(format!("cannot start the planner: {e}")))?;
        handle.join().map_err(|_| failed())?
    })
}

/// The planner as it ran before these bounds: parse and walk on the caller's own stack,
/// with no lexical check. Only for `consort bench plan`, which compares the two; it is
/// unsafe for SQL from anyone else.
#[doc(hidden)]
pub fn plan_unbounded_for_bench(
    sql: &str,
    catalog: &crate::plan::Catalog,
) -> Result<crate::plan::Plan, QueryError> {
    crate::parse::plan_sql(sql, catalog)
}
