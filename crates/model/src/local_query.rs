//! Queries an owner runs on its own dataset table for a joint query (DESIGN §8): a filter,
//! optional grouping and partial aggregates, or a plain selection of columns.
//!
//! Every backend renders these into its own SQL with column names quoted and every literal
//! bound as a parameter, never spliced, so identifiers and values from a query are data.

use crate::scalar::Derived;
use crate::value::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// The SQL operator (`=`, `<>`, `<`, `<=`, `>`, `>=`).
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

/// A row condition over one table's columns, with SQL's three-valued logic (a comparison
/// with NULL is unknown, and a row is kept only when the whole condition is true).
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `column op value`; `value` is never NULL (the planner turns `= NULL` into an error).
    Compare {
        column: String,
        op: CmpOp,
        value: Value,
    },
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    /// `column [NOT] IN (values…)`; values are non-NULL and at least one.
    In {
        column: String,
        values: Vec<Value>,
        negated: bool,
    },
    /// `column [NOT] BETWEEN low AND high` (inclusive).
    Between {
        column: String,
        low: Value,
        high: Value,
        negated: bool,
    },
    /// `column [NOT] LIKE pattern` with `%` and `_` wildcards, case-sensitive, no escape
    /// character, on text columns.
    Like {
        column: String,
        pattern: String,
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        column: String,
        negated: bool,
    },
}

/// A partial aggregate computed by the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAggregate {
    /// `COUNT(*)`: Integer.
    CountRows,
    /// `COUNT(column)`, non-NULL values: Integer.
    Count(String),
    /// `SUM(column)`: Integer for an integer column, Float for a float column; NULL when
    /// no non-NULL value.
    Sum(String),
    /// `SUM(column * column)` as a Float; NULL when no non-NULL value.
    SumSquares(String),
    /// `MIN(column)`, of the column's type; NULL when no non-NULL value.
    Min(String),
    /// `MAX(column)`, of the column's type; NULL when no non-NULL value.
    Max(String),
}

/// `SELECT group_by…, aggregates… FROM table [WHERE filter] [GROUP BY group_by…]`.
///
/// Result rows hold the group values (in `group_by` order) then the aggregates, sorted by
/// the group values (NULL first). Without `group_by` there is exactly one row, even over
/// no rows (counts 0, other aggregates NULL).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalAggregateQuery {
    /// Columns the store computes first ([`crate::scalar`]); the filter, groups and
    /// aggregates may name them like the table's own.
    pub derived: Vec<Derived>,
    pub filter: Option<Predicate>,
    pub group_by: Vec<String>,
    pub aggregates: Vec<LocalAggregate>,
}

/// `SELECT columns… [, mask] FROM table [WHERE filter]` in row-number order.
///
/// With `mask` set, each row gets one more trailing Integer value: 1 where `mask` is true
/// for the row and 0 where it is false or unknown. A JOIN uses it so that an owner's WHERE
/// becomes a secret 0/1 per row instead of dropping rows before the intersection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalSelect {
    /// Columns the store computes first ([`crate::scalar`]); `columns`, `filter` and
    /// `mask` may name them like the table's own.
    pub derived: Vec<Derived>,
    pub columns: Vec<String>,
    pub filter: Option<Predicate>,
    pub mask: Option<Predicate>,
}
