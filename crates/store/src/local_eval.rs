//! The plain in-memory evaluator of checked owner-local queries, which the memory store
//! runs: the reference the SQL backends are tested against. SQL semantics: three-valued
//! logic for NULL, `LIKE` with `%` and `_`, aggregates that skip NULLs.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::local_check::{
    check_result, compare_rows, compare_values, Agg, AggQuery, Col, Pred, SelectQuery,
};
use super::StoreError;
use consort_model::local_query::CmpOp;
use consort_model::value::{ColumnType, Row, Value};

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
