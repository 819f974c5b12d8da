//! The planner's bounds on hostile SQL (issue 15, `docs/SECURITY.md`).
//!
//! Three layers, each cheap and each enough on its own for what it guards:
//! 1. the ledger's lexical limits ([`consort_ledger::sql_limits`]) before sqlparser sees the
//!    text, which bound every tree the parser can build from it;
//! 2. a depth check of every expression in the parsed statement, so the planner's own
//!    recursive walks never go deeper than [`MAX_EXPR_DEPTH`];
//! 3. parsing, planning and dropping the syntax tree on a thread of its own with a large
//!    stack, so that a tree the limits still admit (a 4,000-operator chain is flat text but a
//!    deep tree) is walked and freed where the stack cannot run out, and any panic becomes a
//!    refusal instead of taking the node down.

use std::ops::ControlFlow;

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

/// Runs `work` on a planning thread with a large stack; a panic in it becomes an error.
pub(crate) fn on_planner_stack<T: Send>(
    work: impl FnOnce() -> Result<T, QueryError> + Send,
) -> Result<T, QueryError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("consort-plan".into())
            .stack_size(PLANNER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| QueryError::Invalid(format!("cannot start the planner: {e}")))?;
        handle
            .join()
            .map_err(|_| QueryError::Invalid("the planner failed on this query".into()))?
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
