//! The owners' edge of the join protocol: join keys as PSI keys, the alignment of one
//! pair of sides when one member holds both (done locally, with the same matching rules
//! as the PSI), the layout of the shares a side inputs, and the public header that
//! announces them to the compute parties.

use std::collections::HashMap;

use chrono::NaiveDate;
use consort_crypto::encoding::{Reader, Writer};
use consort_model::local_query::{LocalAggregate, LocalAggregateQuery};
use consort_model::{Row, Value};
use consort_mpc::psi::PsiKey;

use crate::canon::{cmp_rows, get_rows, put_rows};
use crate::error::QueryError;
use crate::exec_io::encode_partial;
use crate::plan::JoinSide;

type R<T> = Result<T, QueryError>;

/// The largest number of ring elements one side of one pair may input (2^26: 512 MiB per
/// share vector); a header asking for more is refused before anything is allocated.
const MAX_SIDE_ELEMENTS: u64 = 1 << 26;

/// A join key as a PSI key (same type ⇒ same canonical encoding on both sides).
pub(crate) fn psi_key(v: &Value) -> PsiKey {
    match v {
        Value::Null => PsiKey::Null,
        Value::Integer(i) => PsiKey::Int(*i),
        Value::Float(f) => PsiKey::Float(*f),
        Value::Boolean(b) => PsiKey::Bool(*b),
        Value::Text(s) => PsiKey::Text(s.to_string()),
        Value::Date(d) => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            PsiKey::Date(i32::try_from((*d - epoch).num_days()).unwrap_or(i32::MAX))
        }
        Value::Timestamp(t) => PsiKey::Timestamp(t.timestamp_micros()),
    }
}

/// The keys of a side's local rows (the key is the first value of each row).
pub(crate) fn keys_of(rows: &[Row]) -> Vec<PsiKey> {
    rows.iter()
        .map(|r| r.first().map(psi_key).unwrap_or(PsiKey::Null))
        .collect()
}

/// Every pair (left row, right row) with equal non-NULL keys, left rows in order and the
/// right rows of one key in order: the join of two sides one member holds, without PSI.
pub(crate) fn align_locally(left: &[PsiKey], right: &[PsiKey]) -> (Vec<usize>, Vec<usize>) {
    let mut by_key: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (j, k) in right.iter().enumerate() {
        if let Some(c) = k.canonical() {
            by_key.entry(c).or_default().push(j);
        }
    }
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for (i, k) in left.iter().enumerate() {
        if let Some(js) = k.canonical().and_then(|c| by_key.get(&c)) {
            for &j in js {
                l.push(i);
                r.push(j);
            }
        }
    }
    (l, r)
}

/// One secret column a side inputs per aligned row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ShareKind {
    /// 1 where the value is not NULL (for COUNT(col)).
    NotNull,
    /// The value in fixed point, NULL as 0 (SUM).
    Value,
    /// The square in fixed point, NULL as 0 (VAR_POP).
    Square,
    /// The value, NULL as the MIN sentinel.
    MinValue,
    /// The value, NULL as the MAX sentinel.
    MaxValue,
}

/// What a side inputs, derived from the plan alone (owners and compute parties agree).
#[derive(Debug, Clone)]
pub(crate) struct SideLayout {
    pub has_mask: bool,
    /// (partial index in `q.aggregates`, index of the value in a local row, kind).
    pub columns: Vec<(usize, usize, ShareKind)>,
    /// (position in `q.group_by`, index of the value in a local row).
    pub groups: Vec<(usize, usize)>,
    /// Values per local row: key, payload columns, mask.
    pub row_width: usize,
}

impl SideLayout {
    pub fn new(side: &JoinSide, q: &LocalAggregateQuery) -> R<Self> {
        let index = |qualified: &str| -> R<Option<usize>> {
            let Some(plain) = side.plain(qualified) else {
                return Ok(None);
            };
            side.columns
                .iter()
                .position(|c| c == plain)
                .map(|i| Some(i + 1))
                .ok_or_else(|| QueryError::arg(format!("side {} lacks {plain}", side.alias)))
        };
        let mut columns = Vec::new();
        for (j, a) in q.aggregates.iter().enumerate() {
            let (c, kind) = match a {
                LocalAggregate::CountRows => continue,
                LocalAggregate::Count(c) => (c, ShareKind::NotNull),
                LocalAggregate::Sum(c) => (c, ShareKind::Value),
                LocalAggregate::SumSquares(c) => (c, ShareKind::Square),
                LocalAggregate::Min(c) => (c, ShareKind::MinValue),
                LocalAggregate::Max(c) => (c, ShareKind::MaxValue),
            };
            if let Some(i) = index(c)? {
                columns.push((j, i, kind));
            }
        }
        let mut groups = Vec::new();
        for (g, name) in q.group_by.iter().enumerate() {
            if let Some(i) = index(name)? {
                groups.push((g, i));
            }
        }
        let has_mask = side.filter.is_some();
        Ok(SideLayout {
            has_mask,
            columns,
            groups,
            row_width: 1 + side.columns.len() + usize::from(has_mask),
        })
    }

    /// Ring elements input for `n` aligned rows and `tuples` distinct group tuples:
    /// the mask, each column, then one 0/1 indicator per tuple (column-major).
    pub fn len(&self, n: usize, tuples: usize) -> usize {
        let indicators = if self.groups.is_empty() { 0 } else { tuples };
        n * (usize::from(self.has_mask) + self.columns.len() + indicators)
    }
}

/// A side's aligned input: the public header (rows, distinct group tuples) and the
/// values it secret-shares.
pub(crate) struct SideInput {
    pub n: usize,
    pub tuples: Vec<Row>,
    pub values: Vec<u64>,
}

fn encode(kind: &ShareKind, j: usize, q: &LocalAggregateQuery, v: &Value) -> R<u64> {
    let p = q
        .aggregates
        .get(j)
        .ok_or_else(|| QueryError::arg("partial index out of range"))?;
    match kind {
        ShareKind::NotNull => Ok(u64::from(!v.is_null())),
        ShareKind::Value | ShareKind::MinValue | ShareKind::MaxValue => encode_partial(p, v),
        ShareKind::Square => {
            let sq = match v {
                Value::Null => Value::Null,
                Value::Integer(i) => Value::Float((*i as f64) * (*i as f64)),
                Value::Float(f) => Value::Float(f * f),
                other => return Err(QueryError::arg(format!("square of {other:?}"))),
            };
            encode_partial(p, &sq)
        }
    }
}

/// Encodes the rows `aligned` (indices into `rows`, in the common order) of one side.
pub(crate) fn encode_side(
    layout: &SideLayout,
    q: &LocalAggregateQuery,
    rows: &[Row],
    aligned: &[usize],
) -> R<SideInput> {
    let n = aligned.len();
    let picked: Vec<&Row> = aligned
        .iter()
        .map(|&i| {
            rows.get(i)
                .filter(|r| r.len() == layout.row_width)
                .ok_or_else(|| {
                    QueryError::arg(format!(
                        "local join row {i} missing or not {} values wide",
                        layout.row_width
                    ))
                })
        })
        .collect::<R<_>>()?;
    let tuple = |r: &Row| -> Row { layout.groups.iter().map(|&(_, i)| r[i].clone()).collect() };
    // Each aligned row's group tuple, built once for the dedup and the indicators.
    let row_tuples: Vec<Row> = picked.iter().map(|r| tuple(r)).collect();
    let mut tuples: Vec<Row> = row_tuples.clone();
    tuples.sort_by(|a, b| cmp_rows(a, b));
    tuples.dedup_by(|a, b| cmp_rows(a, b).is_eq());
    if layout.groups.is_empty() {
        tuples.clear();
    }
    let mut values = Vec::with_capacity(layout.len(n, tuples.len()));
    if layout.has_mask {
        for r in &picked {
            values.push(match r.last() {
                Some(Value::Integer(1)) => 1,
                Some(Value::Integer(0)) => 0,
                other => return Err(QueryError::arg(format!("mask value {other:?}"))),
            });
        }
    }
    for (j, i, kind) in &layout.columns {
        for r in &picked {
            values.push(encode(kind, *j, q, &r[*i])?);
        }
    }
    for t in &tuples {
        for rt in &row_tuples {
            values.push(u64::from(cmp_rows(rt, t).is_eq()));
        }
    }
    Ok(SideInput { n, tuples, values })
}

/// The public header of a side's input.
pub(crate) fn encode_header(input: &SideInput) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(input.n as u64);
    put_rows(&mut w, &input.tuples);
    w.into_bytes()
}

/// Decodes and checks a header: (rows, distinct sorted tuples of the side's width).
pub(crate) fn decode_header(m: &[u8], layout: &SideLayout) -> Result<(usize, Vec<Row>), String> {
    let mut r = Reader::new(m);
    let n = r.u64().map_err(|e| e.to_string())?;
    let tuples = get_rows(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    if layout.groups.is_empty() && !tuples.is_empty() {
        return Err("group tuples for a side without GROUP BY columns".into());
    }
    if tuples.iter().any(|t| t.len() != layout.groups.len()) {
        return Err(format!(
            "group tuples must have {} values",
            layout.groups.len()
        ));
    }
    if tuples.windows(2).any(|w| cmp_rows(&w[0], &w[1]).is_ge()) {
        return Err("group tuples not sorted and distinct".into());
    }
    if tuples.len() as u64 > n {
        return Err(format!("{} group tuples for {n} rows", tuples.len()));
    }
    let width = (usize::from(layout.has_mask) + layout.columns.len() + tuples.len()) as u64;
    if n.saturating_mul(width.max(1)) > MAX_SIDE_ELEMENTS {
        return Err(format!("{n} rows is more than a join input may hold"));
    }
    Ok((n as usize, tuples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_alignment_pairs_every_match_and_skips_nulls() {
        let l = vec![PsiKey::Int(1), PsiKey::Null, PsiKey::Int(2), PsiKey::Int(1)];
        let r = vec![PsiKey::Int(1), PsiKey::Int(1), PsiKey::Null, PsiKey::Int(3)];
        let (a, b) = align_locally(&l, &r);
        assert_eq!(a, vec![0, 0, 3, 3]);
        assert_eq!(b, vec![0, 1, 0, 1]);
    }

    #[test]
    fn keys_of_different_types_never_match() {
        let (a, _) = align_locally(&[PsiKey::Int(42)], &[PsiKey::Float(42.0)]);
        assert!(a.is_empty());
    }
}
