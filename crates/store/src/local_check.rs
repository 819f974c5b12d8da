//! Checking owner-local queries ([`LocalAggregateQuery`], [`LocalSelect`]) against a
//! schema before anything reaches a database, and the value order every backend agrees
//! on. The plain in-memory evaluator of checked queries is in `local_eval`.
//!
//! Checks: every column must be in the schema (else [`StoreError::InvalidName`]); every
//! literal must be non-NULL and of the column's type, except that an integer literal is
//! accepted for a float column (compared as a float); floats must be finite, text must
//! not contain NUL, dates and timestamps must be in `0001-01-01 ..= 9999-12-31` and
//! timestamps at microsecond precision; `SUM`/`SUM_SQUARES` need a numeric column and
//! `LIKE` a text column; `IN` needs at least one value; predicates nest at most
//! [`MAX_DEPTH`] deep and hold at most [`MAX_LITERALS`] literals. Anything else is a
//! [`StoreError::InvalidQuery`].

use chrono::{Datelike, Timelike};

use super::StoreError;
use consort_model::local_query::{
    CmpOp, LocalAggregate, LocalAggregateQuery, LocalSelect, Predicate,
};
use consort_model::scalar::{extend_schema, Derived, ScalarExpr};
use consort_model::value::{ColumnType, Row, Schema, Value};

/// Deepest nesting of `AND`/`OR`/`NOT` accepted.
pub const MAX_DEPTH: usize = 64;
/// Most literals (bound parameters) one query may hold.
pub const MAX_LITERALS: usize = 30_000;

/// A resolved column: its index in the schema, name and type.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub index: usize,
    pub name: String,
    pub ty: ColumnType,
}

/// A checked predicate: columns resolved, literals of the column's type.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Compare(Col, CmpOp, Value),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    In(Col, Vec<Value>, bool),
    Between(Col, Value, Value, bool),
    Like(Col, String, bool),
    IsNull(Col, bool),
}

/// A checked aggregate.
#[derive(Debug, Clone)]
pub(crate) enum Agg {
    CountRows,
    Count(Col),
    Sum(Col),
    SumSquares(Col),
    Min(Col),
    Max(Col),
}

/// A checked aggregate query.
#[derive(Debug, Clone)]
pub(crate) struct AggQuery {
    /// Computed before everything else; their columns follow the table's in `Col::index`.
    pub derived: Vec<Derived>,
    pub filter: Option<Pred>,
    pub group_by: Vec<Col>,
    pub aggregates: Vec<Agg>,
}

/// A checked selection.
#[derive(Debug, Clone)]
pub(crate) struct SelectQuery {
    /// As in [`AggQuery::derived`].
    pub derived: Vec<Derived>,
    pub columns: Vec<Col>,
    pub filter: Option<Pred>,
    pub mask: Option<Pred>,
}

fn invalid(table: &str, what: String) -> StoreError {
    StoreError::InvalidQuery(format!("table {table}: {what}"))
}

struct Checker<'a> {
    table: &'a str,
    schema: &'a Schema,
    literals: usize,
}

impl Checker<'_> {
    fn col(&self, name: &str) -> Result<Col, StoreError> {
        let index = self.schema.index_of(name).ok_or_else(|| {
            StoreError::InvalidName(format!(
                "column {name:?} is not in the schema of table {}",
                self.table
            ))
        })?;
        Ok(Col {
            index,
            name: name.to_string(),
            ty: self.schema.columns[index].ty,
        })
    }

    fn literal(&mut self, col: &Col, v: &Value) -> Result<Value, StoreError> {
        self.literals += 1;
        if self.literals > MAX_LITERALS {
            return Err(invalid(
                self.table,
                format!("more than {MAX_LITERALS} literals"),
            ));
        }
        let bad = |why: String| invalid(self.table, format!("column {:?}: {why}", col.name));
        let v = match (col.ty, v) {
            (_, Value::Null) => return Err(bad("a NULL literal (use IS NULL)".into())),
            (ColumnType::Float, Value::Integer(i)) => Value::Float(*i as f64),
            (ty, v) if v.column_type() == Some(ty) => v.clone(),
            (ty, v) => {
                let vty = v.column_type().map(|t| t.as_str()).unwrap_or("null");
                return Err(bad(format!("a {vty} literal for a {ty} column")));
            }
        };
        match &v {
            Value::Float(f) if !f.is_finite() => Err(bad(format!("non-finite float {f}"))),
            Value::Text(s) if s.contains('\0') => Err(bad("text literal contains NUL".into())),
            Value::Date(d) if !(1..=9999).contains(&d.year()) => {
                Err(bad(format!("date {d} outside 0001-01-01 ..= 9999-12-31")))
            }
            Value::Timestamp(t) => {
                if !(1..=9999).contains(&t.year()) {
                    return Err(bad(format!("timestamp {t} outside years 1 ..= 9999")));
                }
                let n = t.nanosecond();
                if n >= 1_000_000_000 || !n.is_multiple_of(1000) {
                    return Err(bad(format!(
                        "timestamp {t} is not at microsecond precision"
                    )));
                }
                Ok(v)
            }
            _ => Ok(v),
        }
    }

    fn pred(&mut self, p: &Predicate, depth: usize) -> Result<Pred, StoreError> {
        if depth > MAX_DEPTH {
            return Err(invalid(
                self.table,
                format!("condition nested deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(match p {
            Predicate::Compare { column, op, value } => {
                let c = self.col(column)?;
                let v = self.literal(&c, value)?;
                Pred::Compare(c, *op, v)
            }
            Predicate::And(ps) => Pred::And(
                ps.iter()
                    .map(|p| self.pred(p, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Predicate::Or(ps) => Pred::Or(
                ps.iter()
                    .map(|p| self.pred(p, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Predicate::Not(p) => Pred::Not(Box::new(self.pred(p, depth + 1)?)),
            Predicate::In {
                column,
                values,
                negated,
            } => {
                let c = self.col(column)?;
                if values.is_empty() {
                    return Err(invalid(
                        self.table,
                        format!("column {column:?}: IN with no values"),
                    ));
                }
                let vs = values
                    .iter()
                    .map(|v| self.literal(&c, v))
                    .collect::<Result<_, _>>()?;
                Pred::In(c, vs, *negated)
            }
            Predicate::Between {
                column,
                low,
                high,
                negated,
            } => {
                let c = self.col(column)?;
                let lo = self.literal(&c, low)?;
                let hi = self.literal(&c, high)?;
                Pred::Between(c, lo, hi, *negated)
            }
            Predicate::Like {
                column,
                pattern,
                negated,
            } => {
                let c = self.col(column)?;
                if c.ty != ColumnType::Text {
                    return Err(invalid(
                        self.table,
                        format!("column {column:?}: LIKE on a {} column", c.ty),
                    ));
                }
                self.literal(&c, &Value::Text(pattern.as_str().into()))?;
                Pred::Like(c, pattern.clone(), *negated)
            }
            Predicate::IsNull { column, negated } => Pred::IsNull(self.col(column)?, *negated),
        })
    }

    /// Checks the literals of a derived column's expression (their types were checked by
    /// `extend_schema`), counting them against [`MAX_LITERALS`].
    fn expr_literals(&mut self, d: &Derived) -> Result<(), StoreError> {
        let mut stack = vec![&d.expr];
        while let Some(e) = stack.pop() {
            match e {
                ScalarExpr::Literal {
                    value: Value::Null, ..
                }
                | ScalarExpr::Column(_) => {}
                ScalarExpr::Literal { value, ty } => {
                    let col = Col {
                        index: 0,
                        name: d.name.clone(),
                        ty: *ty,
                    };
                    self.literal(&col, value)?;
                }
                ScalarExpr::Arith { left, right, .. }
                | ScalarExpr::Compare { left, right, .. }
                | ScalarExpr::Concat(left, right)
                | ScalarExpr::NullIf(left, right)
                | ScalarExpr::Power(left, right)
                | ScalarExpr::DateDiff(left, right) => {
                    stack.push(left);
                    stack.push(right);
                }
                ScalarExpr::Replace { arg, from, to } => {
                    stack.push(arg);
                    stack.push(from);
                    stack.push(to);
                }
                ScalarExpr::Like { expr, pattern, .. } => {
                    // The pattern is a literal like any other (size, count).
                    let col = Col {
                        index: 0,
                        name: d.name.clone(),
                        ty: ColumnType::Text,
                    };
                    self.literal(&col, &Value::Text(pattern.clone().into()))?;
                    stack.push(expr);
                }
                ScalarExpr::Negate(e)
                | ScalarExpr::Abs(e)
                | ScalarExpr::Not(e)
                | ScalarExpr::ToFloat(e)
                | ScalarExpr::IntegerToText(e)
                | ScalarExpr::IsNull { expr: e, .. }
                | ScalarExpr::Extract { expr: e, .. }
                | ScalarExpr::Math { arg: e, .. }
                | ScalarExpr::Sign(e)
                | ScalarExpr::Length(e)
                | ScalarExpr::Round { arg: e, .. }
                | ScalarExpr::CaseMap { arg: e, .. }
                | ScalarExpr::Substr { arg: e, .. }
                | ScalarExpr::Trim { arg: e, .. }
                | ScalarExpr::DateTrunc { arg: e, .. }
                | ScalarExpr::AddInterval { arg: e, .. }
                | ScalarExpr::Cast { arg: e, .. } => stack.push(e),
                ScalarExpr::And(parts)
                | ScalarExpr::Or(parts)
                | ScalarExpr::Coalesce(parts)
                | ScalarExpr::Extreme { args: parts, .. } => stack.extend(parts.iter()),
                ScalarExpr::Case { whens, otherwise } => {
                    for (c, v) in whens {
                        stack.push(c);
                        stack.push(v);
                    }
                    if let Some(e) = otherwise {
                        stack.push(e);
                    }
                }
            }
        }
        Ok(())
    }

    fn derived(&mut self, derived: &[Derived]) -> Result<(), StoreError> {
        for d in derived {
            self.expr_literals(d)?;
        }
        Ok(())
    }

    fn filter(&mut self, f: &Option<Predicate>) -> Result<Option<Pred>, StoreError> {
        f.as_ref().map(|p| self.pred(p, 0)).transpose()
    }

    fn numeric(&self, name: &str, what: &str) -> Result<Col, StoreError> {
        let c = self.col(name)?;
        match c.ty {
            ColumnType::Integer | ColumnType::Float => Ok(c),
            ty => Err(invalid(
                self.table,
                format!("column {name:?}: {what} of a {ty} column"),
            )),
        }
    }
}

/// Checks an aggregate query against the schema of `table`.
pub(crate) fn check_aggregate(
    table: &str,
    schema: &Schema,
    q: &LocalAggregateQuery,
) -> Result<AggQuery, StoreError> {
    let full = extend_schema(schema, &q.derived).map_err(|e| invalid(table, e))?;
    let mut ck = Checker {
        table,
        schema: &full,
        literals: 0,
    };
    ck.derived(&q.derived)?;
    let group_by = q
        .group_by
        .iter()
        .map(|g| ck.col(g))
        .collect::<Result<_, _>>()?;
    let aggregates = q
        .aggregates
        .iter()
        .map(|a| {
            Ok(match a {
                LocalAggregate::CountRows => Agg::CountRows,
                LocalAggregate::Count(c) => Agg::Count(ck.col(c)?),
                LocalAggregate::Sum(c) => Agg::Sum(ck.numeric(c, "SUM")?),
                LocalAggregate::SumSquares(c) => Agg::SumSquares(ck.numeric(c, "SUM of squares")?),
                LocalAggregate::Min(c) => Agg::Min(ck.col(c)?),
                LocalAggregate::Max(c) => Agg::Max(ck.col(c)?),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let filter = ck.filter(&q.filter)?;
    Ok(AggQuery {
        derived: q.derived.clone(),
        filter,
        group_by,
        aggregates,
    })
}

/// Checks a selection against the schema of `table`.
pub(crate) fn check_select(
    table: &str,
    schema: &Schema,
    q: &LocalSelect,
) -> Result<SelectQuery, StoreError> {
    let full = extend_schema(schema, &q.derived).map_err(|e| invalid(table, e))?;
    let mut ck = Checker {
        table,
        schema: &full,
        literals: 0,
    };
    ck.derived(&q.derived)?;
    let columns = q
        .columns
        .iter()
        .map(|c| ck.col(c))
        .collect::<Result<_, _>>()?;
    let filter = ck.filter(&q.filter)?;
    let mask = ck.filter(&q.mask)?;
    Ok(SelectQuery {
        derived: q.derived.clone(),
        columns,
        filter,
        mask,
    })
}

pub(crate) use consort_model::value::{compare_rows, compare_values};

/// Sorts aggregate result rows by their first `groups` values (NULL first).
pub(crate) fn sort_groups(rows: &mut [Row], groups: usize) {
    rows.sort_by(|a, b| compare_rows(&a[..groups.min(a.len())], &b[..groups.min(b.len())]));
}

/// Refuses a non-finite float in a result (an aggregate overflowed).
pub(crate) fn check_result(table: &str, rows: &[Row]) -> Result<(), StoreError> {
    for row in rows {
        for v in row {
            if let Value::Float(f) = v {
                if !f.is_finite() {
                    return Err(StoreError::Database(format!(
                        "table {table}: a float aggregate overflowed ({f})"
                    )));
                }
            }
        }
    }
    Ok(())
}
