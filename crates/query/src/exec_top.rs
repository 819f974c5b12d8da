//! ORDER BY an aggregate with LIMIT, inside MPC: the kept rows are first ordered by the
//! trailing group keys (public to the compute parties), then stably sorted in MPC on the
//! aggregate (`Session::sort`, shuffle-then-quicksort; it leaks nothing about the keys,
//! docs/MPC.md §6); only the first LIMIT rows' values, NULL flags and row indices are
//! revealed to the requester, which maps the indices to the kept keys it was sent.

use consort_mpc::{ArithShares, Session, SortOptions};

use crate::error::QueryError;
use crate::exec::Ctx;
use crate::exec_io::nullable;
use crate::plan::OutputExpr;

type R<T> = Result<T, QueryError>;

/// Whether the plan's ORDER BY is one aggregate followed only by group keys, with LIMIT:
/// the shape sorted in MPC. Other ORDER BY aggregates are sorted by the requester.
pub(crate) fn sorts_in_mpc(cx: &Ctx<'_>) -> bool {
    let o = &cx.plan.order_by;
    cx.plan.limit.is_some()
        && cx.plan.computed.is_empty()
        && matches!(o.first().map(|k| k.target), Some(OutputExpr::Agg(_)))
        && o.iter()
            .skip(1)
            .all(|k| matches!(k.target, OutputExpr::Key(_)))
}

/// Sorts the `s` kept rows on the first ORDER BY aggregate and returns the first `l`
/// rows of: each revealed aggregate's values, each nullable one's NULL flag (0/1), and the
/// row index, concatenated block by block (each block `l` long).
pub(crate) fn sort_top(
    sess: &mut Session,
    cx: &Ctx<'_>,
    rev: &[usize],
    values: &[ArithShares],
    null_counts: &[ArithShares],
    s: usize,
    l: usize,
) -> R<ArithShares> {
    if s == 0 || l == 0 {
        // Nothing is kept (public): nothing to sort or reveal.
        return Ok(ArithShares::zeros(0));
    }
    let me = sess.me();
    let first = cx
        .plan
        .order_by
        .first()
        .ok_or_else(|| QueryError::arg("no ORDER BY"))?;
    let OutputExpr::Agg(a0) = first.target else {
        return Err(QueryError::arg("ORDER BY does not start with an aggregate"));
    };
    let ri = rev
        .iter()
        .position(|&x| x == a0)
        .ok_or_else(|| QueryError::arg("ORDER BY aggregate not revealed"))?;
    let spec = cx
        .plan
        .aggregates
        .get(a0)
        .ok_or_else(|| QueryError::arg("aggregate index out of range"))?;
    let nulls: Vec<ArithShares> = if null_counts.is_empty() || s == 0 {
        Vec::new()
    } else {
        let refs: Vec<&ArithShares> = null_counts.iter().collect();
        let bits = sess.eq_zero(&ArithShares::concat(&refs))?;
        let a = sess.bit2a(&bits)?;
        (0..null_counts.len())
            .map(|i| a.slice(i * s..(i + 1) * s))
            .collect::<Result<_, _>>()?
    };
    let v = values
        .get(ri)
        .ok_or_else(|| QueryError::arg("missing ORDER BY values"))?;
    // A stable ascending sort on −v gives DESC with ties in their prior (key) order.
    let mut key = if first.descending { v.neg() } else { v.clone() };
    if nullable(spec) {
        // SQL orders NULL below every value: first for ASC, last for DESC. Values stay
        // inside ±2^62 (fixed-point range), so ±2^62 sorts outside all of them.
        let ni = rev[..ri]
            .iter()
            .filter(|&&a| cx.plan.aggregates.get(a).is_some_and(nullable))
            .count();
        let nb = nulls
            .get(ni)
            .ok_or_else(|| QueryError::arg("missing NULL flags"))?;
        let edge: u64 = if first.descending {
            1 << 62
        } else {
            (1u64 << 62).wrapping_neg()
        };
        let diff = key.neg().add_const(me, edge);
        key = key.add(&sess.mul(nb, &diff)?)?;
    }
    let idx: Vec<u64> = (0..s as u64).collect();
    let mut payloads: Vec<ArithShares> = values.to_vec();
    payloads.extend(nulls);
    payloads.push(ArithShares::public(me, &idx));
    let (_, sorted, _) = sess.sort(
        &key,
        &payloads,
        SortOptions {
            key_bits: None,
            descending: false,
        },
    )?;
    let tops = sorted
        .iter()
        .map(|p| p.slice(0..l))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&ArithShares> = tops.iter().collect();
    Ok(ArithShares::concat(&refs))
}
