//! Checking owner-local queries ([`LocalAggregateQuery`], [`LocalSelect`]) against a
//! schema before anything reaches a database, the value order every backend agrees on,
//! and the plain in-memory evaluator the memory store runs (the reference the SQL
//! backends are tested against).
//!
//! Checks: every column must be in the schema (else [`StoreError::InvalidName`]); every
//! literal must be non-NULL and of the column's type, except that an integer literal is
//! accepted for a float column (compared as a float); floats must be finite, text must
//! not contain NUL, dates and timestamps must be in `0001-01-01 ..= 9999-12-31` and
//! timestamps at microsecond precision; `SUM`/`SUM_SQUARES` need a numeric column and
//! `LIKE` a text column; `IN` needs at least one value; predicates nest at most
//! [`MAX_DEPTH`] deep and hold at most [`MAX_LITERALS`] literals. Anything else is a
//! [`StoreError::InvalidQuery`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{Datelike, Timelike};

use super::local_query::{CmpOp, LocalAggregate, LocalAggregateQuery, LocalSelect, Predicate};
use super::StoreError;
use crate::value::{ColumnType, Row, Schema, Value};

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
    pub filter: Option<Pred>,
    pub group_by: Vec<Col>,
    pub aggregates: Vec<Agg>,
}

/// A checked selection.
#[derive(Debug, Clone)]
pub(crate) struct SelectQuery {
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
                self.literal(&c, &Value::Text(pattern.clone()))?;
                Pred::Like(c, pattern.clone(), *negated)
            }
            Predicate::IsNull { column, negated } => Pred::IsNull(self.col(column)?, *negated),
        })
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
    let mut ck = Checker {
        table,
        schema,
        literals: 0,
    };
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
    let mut ck = Checker {
        table,
        schema,
        literals: 0,
    };
    let columns = q
        .columns
        .iter()
        .map(|c| ck.col(c))
        .collect::<Result<_, _>>()?;
    let filter = ck.filter(&q.filter)?;
    let mask = ck.filter(&q.mask)?;
    Ok(SelectQuery {
        columns,
        filter,
        mask,
    })
}

/// The order of values every backend agrees on: NULL first, then by value (integers and
/// floats numerically, `false < true`, text by code point, dates and timestamps
/// chronologically). Values of different types order by type (never happens in one
/// column).
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Integer(x), Integer(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.partial_cmp(y).unwrap_or_else(|| x.total_cmp(y)),
        (Integer(x), Float(y)) => (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal),
        (Float(x), Integer(y)) => x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal),
        (Boolean(x), Boolean(y)) => x.cmp(y),
        (Text(x), Text(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Integer(_) | Value::Float(_) => 1,
        Value::Boolean(_) => 2,
        Value::Text(_) => 3,
        Value::Date(_) => 4,
        Value::Timestamp(_) => 5,
    }
}

fn compare_rows(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match compare_values(x, y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

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

// ---------------------------------------------------------------------------------------
// The in-memory evaluator.

/// SQL's three-valued logic: `None` is unknown.
type Truth = Option<bool>;

fn cmp_truth(cell: &Value, op: CmpOp, lit: &Value) -> Truth {
    if cell.is_null() || lit.is_null() {
        return None;
    }
    let o = compare_values(cell, lit);
    Some(match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::NotEq => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::LtEq => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::GtEq => o != Ordering::Less,
    })
}

fn and3(a: Truth, b: Truth) -> Truth {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Truth, b: Truth) -> Truth {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// Three-valued AND of all (TRUE when empty). Not `try_fold`: unknown must not stop
/// the scan, a later FALSE still decides.
fn all3(ts: impl Iterator<Item = Truth>) -> Truth {
    let mut acc = Some(true);
    for t in ts {
        acc = and3(acc, t);
    }
    acc
}

/// Three-valued OR of all (FALSE when empty).
fn any3(ts: impl Iterator<Item = Truth>) -> Truth {
    let mut acc = Some(false);
    for t in ts {
        acc = or3(acc, t);
    }
    acc
}

fn not3(a: Truth, negate: bool) -> Truth {
    if negate {
        a.map(|b| !b)
    } else {
        a
    }
}

/// `text LIKE pattern`: `%` any run of characters, `_` one character, case-sensitive,
/// no escape. Iterative (backtracks to the last `%` only), so linear stack and
/// O(len(text) × len(pattern)) time.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == t[ti])) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

fn cell<'r>(row: &'r [Value], c: &Col) -> &'r Value {
    row.get(c.index).unwrap_or(&Value::Null)
}

/// Evaluates a checked predicate on a row with three-valued logic.
pub(crate) fn eval(p: &Pred, row: &[Value]) -> Truth {
    match p {
        Pred::Compare(c, op, v) => cmp_truth(cell(row, c), *op, v),
        Pred::And(ps) => all3(ps.iter().map(|p| eval(p, row))),
        Pred::Or(ps) => any3(ps.iter().map(|p| eval(p, row))),
        Pred::Not(p) => not3(eval(p, row), true),
        Pred::In(c, vs, neg) => {
            let x = cell(row, c);
            let t = any3(vs.iter().map(|v| cmp_truth(x, CmpOp::Eq, v)));
            not3(t, *neg)
        }
        Pred::Between(c, lo, hi, neg) => {
            let x = cell(row, c);
            let t = and3(cmp_truth(x, CmpOp::GtEq, lo), cmp_truth(x, CmpOp::LtEq, hi));
            not3(t, *neg)
        }
        Pred::Like(c, pat, neg) => {
            let t = match cell(row, c) {
                Value::Text(s) => Some(like(s, pat)),
                _ => None,
            };
            not3(t, *neg)
        }
        Pred::IsNull(c, neg) => Some(cell(row, c).is_null() != *neg),
    }
}

fn keep(filter: &Option<Pred>, row: &[Value]) -> bool {
    filter.as_ref().is_none_or(|p| eval(p, row) == Some(true))
}

/// Runs a checked selection over rows in row-number order.
pub(crate) fn select_rows<'r>(q: &SelectQuery, rows: impl Iterator<Item = &'r Row>) -> Vec<Row> {
    rows.filter(|r| keep(&q.filter, r))
        .map(|r| {
            let mut out: Row = q.columns.iter().map(|c| cell(r, c).clone()).collect();
            if let Some(m) = &q.mask {
                out.push(Value::Integer(i64::from(eval(m, r) == Some(true))));
            }
            out
        })
        .collect()
}

/// A group key ordered by [`compare_values`]; `-0.0` is stored as `0.0`.
struct Key(Vec<Value>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_rows(&self.0, &other.0)
    }
}

#[derive(Clone)]
enum Acc {
    Count(i64),
    IntSum(Option<i128>),
    FloatSum(Option<f64>),
    Extreme(Value, Ordering),
}

fn new_acc(a: &Agg) -> Acc {
    match a {
        Agg::CountRows | Agg::Count(_) => Acc::Count(0),
        Agg::Sum(c) if c.ty == ColumnType::Integer => Acc::IntSum(None),
        Agg::Sum(_) | Agg::SumSquares(_) => Acc::FloatSum(None),
        Agg::Min(_) => Acc::Extreme(Value::Null, Ordering::Less),
        Agg::Max(_) => Acc::Extreme(Value::Null, Ordering::Greater),
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn step(acc: &mut Acc, a: &Agg, row: &[Value]) {
    match (acc, a) {
        (Acc::Count(n), Agg::CountRows) => *n += 1,
        (Acc::Count(n), Agg::Count(c)) => *n += i64::from(!cell(row, c).is_null()),
        (Acc::IntSum(s), Agg::Sum(c)) => {
            if let Value::Integer(i) = cell(row, c) {
                // i128 cannot overflow: fewer than 2^64 rows of at most 2^63.
                *s = Some(s.unwrap_or(0).saturating_add(i128::from(*i)));
            }
        }
        (Acc::FloatSum(s), Agg::Sum(c)) => {
            if let Some(f) = as_f64(cell(row, c)) {
                *s = Some(s.unwrap_or(0.0) + f);
            }
        }
        (Acc::FloatSum(s), Agg::SumSquares(c)) => {
            if let Some(f) = as_f64(cell(row, c)) {
                *s = Some(s.unwrap_or(0.0) + f * f);
            }
        }
        (Acc::Extreme(best, want), Agg::Min(c) | Agg::Max(c)) => {
            let v = cell(row, c);
            if !v.is_null() && (best.is_null() || compare_values(v, best) == *want) {
                *best = v.clone();
            }
        }
        _ => {}
    }
}

fn finish(acc: Acc, table: &str) -> Result<Value, StoreError> {
    Ok(match acc {
        Acc::Count(n) => Value::Integer(n),
        Acc::IntSum(None) | Acc::FloatSum(None) => Value::Null,
        Acc::IntSum(Some(s)) => Value::Integer(i64::try_from(s).map_err(|_| {
            StoreError::Database(format!("table {table}: integer SUM overflows 64 bits"))
        })?),
        Acc::FloatSum(Some(f)) => Value::Float(f),
        Acc::Extreme(v, _) => v,
    })
}

fn normalise(v: &Value) -> Value {
    match v {
        Value::Float(f) if *f == 0.0 => Value::Float(0.0),
        v => v.clone(),
    }
}

/// Runs a checked aggregate query over rows: groups sorted, NULL first; one row without
/// `group_by` even over no rows.
pub(crate) fn aggregate_rows<'r>(
    table: &str,
    q: &AggQuery,
    rows: impl Iterator<Item = &'r Row>,
) -> Result<Vec<Row>, StoreError> {
    let fresh: Vec<Acc> = q.aggregates.iter().map(new_acc).collect();
    let mut groups: BTreeMap<Key, Vec<Acc>> = BTreeMap::new();
    if q.group_by.is_empty() {
        groups.insert(Key(Vec::new()), fresh.clone());
    }
    for row in rows.filter(|r| keep(&q.filter, r)) {
        let key = Key(q.group_by.iter().map(|c| normalise(cell(row, c))).collect());
        let accs = groups.entry(key).or_insert_with(|| fresh.clone());
        for (acc, a) in accs.iter_mut().zip(&q.aggregates) {
            step(acc, a, row);
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (key, accs) in groups {
        let mut row = key.0;
        for acc in accs {
            row.push(finish(acc, table)?);
        }
        out.push(row);
    }
    check_result(table, &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_matches_sql() {
        assert!(like("abc", "abc"));
        assert!(!like("abc", "ABC"));
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("ünï", "_n_"));
        assert!(like("aXbXc", "%X%X%"));
        assert!(!like("aXb", "%X%X%"));
        assert!(like("mississippi", "%iss%pi"));
        assert!(like("a%b", "a%b"));
        assert!(like("a\\b", "a\\b"));
    }
}
