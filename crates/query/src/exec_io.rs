//! The edges of the aggregate protocol: how an owner encodes its partials, how the
//! compute parties check an owner's public group keys, and how the requester receives and
//! decodes the revealed values into the result table.

use std::collections::BTreeMap;

use consort_crypto::encoding::Reader;
use consort_model::local_query::{LocalAggregate, LocalAggregateQuery};
use consort_model::{ColumnType, Row, Value};
use consort_mpc::{decode_fixed, encode_fixed, receive_output, receive_output_bits, SENTINEL};

use crate::canon::{cmp_rows, cmp_values, get_rows};
use crate::error::QueryError;
use crate::exec::{Ctx, Net};
use crate::plan::{AggFunc, AggSpec, OutputExpr, FRAC_BITS};
use crate::table::ResultTable;

type R<T> = Result<T, QueryError>;

const SCALE: i64 = 1 << FRAC_BITS;

/// One owner partial as a ring element.
pub(crate) fn encode_partial(p: &LocalAggregate, v: &Value) -> R<u64> {
    let column = match p {
        LocalAggregate::CountRows => "*",
        LocalAggregate::Count(c)
        | LocalAggregate::Sum(c)
        | LocalAggregate::SumSquares(c)
        | LocalAggregate::Min(c)
        | LocalAggregate::Max(c) => c.as_str(),
    };
    let range = |what: String| QueryError::Range(format!("column {column}: {what}"));
    match p {
        LocalAggregate::CountRows | LocalAggregate::Count(_) => match v {
            Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            Value::Null => Ok(0),
            other => Err(QueryError::arg(format!("count partial {other:?}"))),
        },
        LocalAggregate::Sum(_)
        | LocalAggregate::SumSquares(_)
        | LocalAggregate::Min(_)
        | LocalAggregate::Max(_) => {
            let x = match v {
                Value::Null => {
                    return Ok(match p {
                        LocalAggregate::Min(_) => SENTINEL,
                        LocalAggregate::Max(_) => SENTINEL.wrapping_neg(),
                        _ => 0,
                    })
                }
                Value::Integer(i) => i
                    .checked_mul(SCALE)
                    .ok_or_else(|| range(format!("{i} exceeds the fixed-point range")))?,
                Value::Float(f) => encode_fixed(*f, FRAC_BITS)
                    .map_err(|_| range(format!("{f} exceeds the fixed-point range")))?
                    as i64,
                other => return Err(QueryError::arg(format!("numeric partial {other:?}"))),
            };
            // Min/max must stay strictly inside the sentinels for the comparisons.
            if matches!(p, LocalAggregate::Min(_) | LocalAggregate::Max(_))
                && x.unsigned_abs() >= SENTINEL
            {
                return Err(range(format!("{v:?} exceeds the MIN/MAX range")));
            }
            Ok(x as u64)
        }
    }
}

/// The largest magnitude (in ring units) of one owner's SUM or sum-of-squares partial
/// when `owners` owners add theirs: the total then stays below 2^62, so it can neither
/// wrap nor reach the signed boundary, and every later step (AVG, the variances) works on
/// values that fit.
pub(crate) fn partial_limit(owners: usize) -> u64 {
    let shift = usize::BITS - owners.max(1).saturating_sub(1).leading_zeros();
    (1u64 << 62) >> shift
}

/// The owner's keys and its partials, partial-major (`j * groups + i`). A SUM or sum of
/// squares too large for `owners` owners to add safely is refused, naming the column.
pub(crate) fn encode_local(
    q: &LocalAggregateQuery,
    rows: &[Row],
    owners: usize,
) -> R<(Vec<Row>, Vec<u64>)> {
    let limit = partial_limit(owners);
    let nk = q.group_by.len();
    let np = q.aggregates.len();
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        if r.len() != nk + np {
            return Err(QueryError::arg(format!(
                "local row of {} values, expected {}",
                r.len(),
                nk + np
            )));
        }
        keys.push(r[..nk].to_vec());
    }
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| cmp_rows(a, b));
    if sorted.windows(2).any(|w| cmp_rows(&w[0], &w[1]).is_eq()) {
        return Err(QueryError::arg("local result has a group twice"));
    }
    let mut vals = Vec::with_capacity(rows.len() * np);
    for (j, p) in q.aggregates.iter().enumerate() {
        for r in rows {
            let v = encode_partial(p, &r[nk + j])?;
            if let LocalAggregate::Sum(c) | LocalAggregate::SumSquares(c) = p {
                if (v as i64).unsigned_abs() >= limit {
                    let what = if matches!(p, LocalAggregate::Sum(_)) {
                        "SUM"
                    } else {
                        "the sum of squares"
                    };
                    return Err(QueryError::Range(format!(
                        "{what} of column {c} over this owner's rows is {}, beyond the ±{} that {owners} owners can add exactly",
                        display_value(&r[nk + j]),
                        limit >> FRAC_BITS
                    )));
                }
            }
            vals.push(v);
        }
    }
    Ok((keys, vals))
}

fn display_value(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f}"),
        other => format!("{other:?}"),
    }
}

pub(crate) fn decode_keys(net: &Net, from: usize, m: &[u8], nk: usize) -> R<Vec<Row>> {
    let mut r = Reader::new(m);
    let keys = get_rows(&mut r).map_err(|e| net.malformed(from, e.to_string()))?;
    r.finish().map_err(|e| net.malformed(from, e.to_string()))?;
    if keys.iter().any(|k| k.len() != nk) {
        return Err(net.malformed(from, format!("group keys must have {nk} values")));
    }
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| cmp_rows(a, b));
    if sorted.windows(2).any(|w| cmp_rows(&w[0], &w[1]).is_eq()) {
        return Err(net.malformed(from, "the same group key twice"));
    }
    Ok(keys)
}

/// The aggregates revealed to the requester: those in the output or ORDER BY.
pub(crate) fn revealed_aggs(cx: &Ctx<'_>) -> Vec<usize> {
    let mut r: Vec<usize> = cx
        .plan
        .output
        .iter()
        .map(|o| o.expr)
        .chain(cx.plan.order_by.iter().map(|k| k.target))
        .filter_map(|e| match e {
            OutputExpr::Agg(a) => Some(a),
            _ => None,
        })
        .collect();
    r.sort();
    r.dedup();
    r
}

pub(crate) fn nullable(a: &AggSpec) -> bool {
    !matches!(
        a.func,
        AggFunc::CountRows | AggFunc::Count | AggFunc::CountDistinct
    )
}

pub(crate) fn order_on_aggregate(cx: &Ctx<'_>) -> bool {
    cx.plan
        .order_by
        .iter()
        .any(|k| matches!(k.target, OutputExpr::Agg(_) | OutputExpr::Computed(_)))
}

/// The external requester's side: the header from each compute party (which must agree),
/// then the revealed values and NULL flags.
pub(crate) fn receive_result(net: &Net, cx: &Ctx<'_>, q: &LocalAggregateQuery) -> R<ResultTable> {
    let nk = q.group_by.len();
    let mut header: Option<Vec<u8>> = None;
    for p in 0..3 {
        let m = net.recv(p)?;
        match &header {
            None => header = Some(m),
            Some(h) if *h == m => {}
            Some(_) => {
                return Err(net.malformed(p, "result header differs from party 0's"));
            }
        }
    }
    let header = header.unwrap_or_default();
    let mut r = Reader::new(&header);
    let (suppressed, top, keys) =
        (|| Ok::<_, consort_crypto::DecodeError>((r.u64()?, r.bool()?, get_rows(&mut r)?)))()
            .map_err(|e| net.malformed(0, e.to_string()))?;
    r.finish().map_err(|e| net.malformed(0, e.to_string()))?;
    if keys.iter().any(|k| k.len() != nk) {
        return Err(net.malformed(0, "group keys of the wrong width"));
    }
    let s = keys.len();
    if top {
        let l = top_len(cx, s);
        let got = if l > 0 {
            net.with(receive_output)?
        } else {
            Vec::new()
        };
        let (keys, vals, bits) = split_top(cx, &keys, &got, l).map_err(|e| net.malformed(0, e))?;
        return build_table(cx, &keys, &vals, &bits, suppressed);
    }
    let rev = revealed_aggs(cx);
    let n_null = rev
        .iter()
        .filter(|&&a| cx.plan.aggregates.get(a).is_some_and(nullable))
        .count();
    let nc = cx.plan.computed.len();
    let want = s * (rev.len() + nc);
    let vals = if want > 0 {
        net.with(receive_output)?
    } else {
        Vec::new()
    };
    if vals.len() != want {
        return Err(net.malformed(
            0,
            format!("{} values revealed, expected {want}", vals.len()),
        ));
    }
    let bits = if s * (n_null + nc) > 0 {
        net.with(|t| receive_output_bits(t, s * (n_null + nc)))?
    } else {
        Vec::new()
    };
    build_table(cx, &keys, &vals, &bits, suppressed)
}

pub(crate) fn decode_value(a: &AggSpec, v: u64, null: bool) -> Value {
    if null {
        return Value::Null;
    }
    let fixed = decode_fixed(v, FRAC_BITS);
    match a.func {
        AggFunc::CountRows | AggFunc::Count | AggFunc::CountDistinct => Value::Integer(v as i64),
        // Value lists carry integers as they are.
        AggFunc::SumDistinct | AggFunc::PercentileDisc => match a.column_type {
            ColumnType::Integer => Value::Integer(v as i64),
            _ => Value::Float(fixed),
        },
        AggFunc::PercentileCont => Value::Float(fixed),
        // Dates and timestamps come from value lists: days and µs since the epoch.
        AggFunc::Min | AggFunc::Max if a.column_type == ColumnType::Date => {
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::Duration::days(v as i64)))
                .map_or(Value::Null, Value::Date)
        }
        AggFunc::Min | AggFunc::Max if a.column_type == ColumnType::Timestamp => {
            chrono::DateTime::from_timestamp_micros(v as i64).map_or(Value::Null, Value::Timestamp)
        }
        AggFunc::Sum | AggFunc::Min | AggFunc::Max => match a.column_type {
            // Integer inputs were scaled by 2^f exactly, so the shift is exact.
            ColumnType::Integer => Value::Integer((v as i64) >> FRAC_BITS),
            _ => Value::Float(fixed),
        },
        AggFunc::Avg => Value::Float(fixed),
        AggFunc::VarPop | AggFunc::VarSamp => Value::Float(fixed.max(0.0)),
        AggFunc::StddevPop | AggFunc::StddevSamp => Value::Float(fixed.max(0.0).sqrt()),
    }
}

/// The requester assembles the table: values agg-major (`r * rows + i`), NULL flags for
/// the nullable revealed aggregates in the same order; ORDER BY on aggregates and LIMIT
/// are applied here when the compute parties could not (see docs/QUERY.md).
pub(crate) fn build_table(
    cx: &Ctx<'_>,
    keys: &[Row],
    vals: &[u64],
    bits: &[bool],
    suppressed: u64,
) -> R<ResultTable> {
    let plan = cx.plan;
    let s = keys.len();
    let rev = revealed_aggs(cx);
    let n_null = rev
        .iter()
        .filter(|&&a| plan.aggregates.get(a).is_some_and(nullable))
        .count();
    let mut recs: Vec<(Row, BTreeMap<usize, Value>, Vec<Value>)> = Vec::with_capacity(s);
    for (i, k) in keys.iter().enumerate() {
        let mut m = BTreeMap::new();
        let mut ni = 0;
        for (ri, &a) in rev.iter().enumerate() {
            let spec = plan
                .aggregates
                .get(a)
                .ok_or_else(|| QueryError::arg("aggregate index out of range"))?;
            let null = if nullable(spec) {
                let b = bits.get(ni * s + i).copied().unwrap_or(true);
                ni += 1;
                b
            } else {
                false
            };
            let v = vals.get(ri * s + i).copied().unwrap_or(0);
            m.insert(a, decode_value(spec, v, null));
        }
        // Arithmetic over aggregates: fixed point, after the aggregates.
        let computed = plan
            .computed
            .iter()
            .enumerate()
            .map(|(c, e)| {
                let v = vals.get((rev.len() + c) * s + i).copied().unwrap_or(0);
                if bits.get((n_null + c) * s + i).copied().unwrap_or(true) {
                    Value::Null
                } else if e.result_type(&plan.aggregates) == ColumnType::Integer {
                    // Integer results are exact multiples of 2^f.
                    Value::Integer((v as i64) >> FRAC_BITS)
                } else {
                    Value::Float(decode_fixed(v, FRAC_BITS))
                }
            })
            .collect();
        recs.push((k.clone(), m, computed));
    }
    let pick = |rec: &(Row, BTreeMap<usize, Value>, Vec<Value>), e: &OutputExpr| match e {
        OutputExpr::Key(k) => rec.0.get(*k).cloned().unwrap_or(Value::Null),
        OutputExpr::Agg(a) => rec.1.get(a).cloned().unwrap_or(Value::Null),
        OutputExpr::Computed(c) => rec.2.get(*c).cloned().unwrap_or(Value::Null),
        OutputExpr::Column(_) => Value::Null,
    };
    if order_on_aggregate(cx) {
        recs.sort_by(|x, y| {
            for k in &plan.order_by {
                let o = cmp_values(&pick(x, &k.target), &pick(y, &k.target));
                let o = if k.descending { o.reverse() } else { o };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        if let Some(l) = plan.limit {
            recs.truncate(usize::try_from(l).unwrap_or(usize::MAX));
        }
    }
    let rows = recs
        .iter()
        .map(|r| plan.output.iter().map(|c| pick(r, &c.expr)).collect())
        .collect();
    Ok(ResultTable {
        columns: plan.columns(),
        rows,
        suppressed_groups: suppressed,
    })
}

/// The ordered keys, agg-major values and NULL flags of the top-L rows.
pub(crate) type TopRows = (Vec<Row>, Vec<u64>, Vec<bool>);

/// Rows revealed by the MPC top-L sort: min(kept rows, LIMIT).
pub(crate) fn top_len(cx: &Ctx<'_>, s: usize) -> usize {
    cx.plan
        .limit
        .map_or(s, |l| s.min(usize::try_from(l).unwrap_or(usize::MAX)))
}

/// Splits the revealed top-L vector (value blocks, NULL-flag blocks, index block; each
/// `l` long) into the ordered keys, the agg-major values and the NULL flags.
pub(crate) fn split_top(
    cx: &Ctx<'_>,
    keys: &[Row],
    got: &[u64],
    l: usize,
) -> Result<TopRows, String> {
    let rev = revealed_aggs(cx);
    let n_null = rev
        .iter()
        .filter(|&&a| cx.plan.aggregates.get(a).is_some_and(nullable))
        .count();
    let want = l * (rev.len() + n_null + 1);
    if got.len() != want {
        return Err(format!("{} values revealed, expected {want}", got.len()));
    }
    let nv = rev.len() * l;
    let vals = got[..nv].to_vec();
    let bits = got[nv..nv + n_null * l].iter().map(|&b| b != 0).collect();
    let ordered = got[nv + n_null * l..]
        .iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| keys.get(i).cloned())
                .ok_or_else(|| format!("row index {i} out of range"))
        })
        .collect::<Result<Vec<Row>, String>>()?;
    Ok((ordered, vals, bits))
}
