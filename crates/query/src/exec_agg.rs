//! The aggregate protocol (see docs/QUERY.md for what each party learns).
//!
//! 1. Every owner encodes its local partials as ring elements (counts as integers; sums,
//!    sums of squares, min and max in fixed point with [`FRAC_BITS`] fractional bits;
//!    NULL sums as 0 and NULL min/max as the ±[`SENTINEL`]), sends its group keys in the
//!    clear to the three compute parties and secret-shares the partials.
//! 2. The compute parties align the owners' groups on the sorted union of keys (a public
//!    index map, local scatter), add the additive partials and take min/max across owners
//!    in MPC.
//! 3. Per group: the bit [COUNT(*) ≥ K] and the HAVING condition are computed in MPC and
//!    only their AND (the keep bit) is revealed to the compute parties; the number of
//!    groups below K is revealed as one total.
//! 4. For the kept rows the output aggregates are computed (AVG and VAR_POP divide by the
//!    per-group COUNT(col), revealed to the compute parties for kept groups only) and
//!    revealed to the requester alone, with the NULL flags (COUNT(col) = 0). ORDER BY an
//!    aggregate with LIMIT is sorted in MPC when it has the shape `exec_top` handles.

use std::collections::BTreeMap;

use consort_crypto::encoding::Writer;
use consort_crypto::Hash;
use consort_model::local_query::{LocalAggregate, LocalAggregateQuery};
use consort_model::{ColumnType, Row};
use consort_mpc::{encode_fixed, provide_input, ArithShares, BitShares, Session, SENTINEL};
use rand_core::{CryptoRng, RngCore};

use crate::canon::{cmp_rows, cmp_values, put_rows};
use crate::error::QueryError;
use crate::exec::{share_digest, Ctx, Net};
use crate::exec_io::{
    build_table, decode_keys, encode_local, nullable, order_on_aggregate, receive_result,
    revealed_aggs, split_top, top_len,
};
use crate::exec_lists::{encode_list, list_aggregates, send_lists, EncodedList, ListAggregate};
use crate::exec_math::compare;
use crate::exec_top::{sort_top, sorts_in_mpc};
use crate::exec_values::{agg_values, evaluate_computed, having_value};
use crate::plan::{AggFunc, AggSpec, HavingExpr, LocalWork, OutputExpr, FRAC_BITS};
use crate::table::ResultTable;

type R<T> = Result<T, QueryError>;

const SCALE: i64 = 1 << FRAC_BITS;

pub(crate) struct AggResult {
    pub table: Option<ResultTable>,
    pub digest: Option<Hash>,
    pub rows: u64,
    pub suppressed: u64,
}

fn query<'a>(cx: &Ctx<'a>) -> R<&'a LocalAggregateQuery> {
    match &cx.plan.local {
        LocalWork::Aggregate(q) => Ok(q),
        LocalWork::Select(_) => Err(QueryError::arg("not an aggregate plan")),
    }
}

pub(crate) fn run_aggregate(
    net: &Net,
    cx: &Ctx<'_>,
    session: Option<Session>,
    local: Option<(Vec<Row>, Vec<Vec<Row>>)>,
    min_group_size: u32,
    rng: &mut (impl RngCore + CryptoRng),
) -> R<AggResult> {
    let q = query(cx)?;
    let value_lists = cx.plan.value_lists();
    let (mine, my_lists) = match &local {
        Some((rows, lists)) => {
            if lists.len() != value_lists.len() {
                return Err(QueryError::arg(format!(
                    "{} value lists passed, the plan has {}",
                    lists.len(),
                    value_lists.len()
                )));
            }
            let enc = value_lists
                .iter()
                .zip(lists)
                .map(|(l, rows)| encode_list(l, q.group_by.len(), rows))
                .collect::<R<Vec<_>>>()?;
            (Some(encode_local(q, rows, cx.owners.len())?), Some(enc))
        }
        None => (None, None),
    };
    let mut out = AggResult {
        table: None,
        digest: None,
        rows: 0,
        suppressed: 0,
    };
    match session {
        Some(mut sess) => {
            let c = compute(
                net,
                cx,
                q,
                &mut sess,
                mine,
                my_lists.as_deref(),
                u64::from(min_group_size.max(1)),
            )?;
            out.digest = Some(c.digest);
            out.rows = c.rows;
            out.suppressed = c.suppressed;
            out.table = c.table;
        }
        None => {
            if let Some((keys, vals)) = &mine {
                let mut w = Writer::new();
                put_rows(&mut w, keys);
                let m = w.into_bytes();
                for p in 0..3 {
                    net.send(p, m.clone())?;
                }
                net.with(|t| provide_input(t, vals, rng))?;
            }
            if let Some(lists) = &my_lists {
                send_lists(net, lists, rng)?;
            }
            if cx.is_requester() {
                let table = receive_result(net, cx, q)?;
                out.rows = table.rows.len() as u64;
                out.suppressed = table.suppressed_groups;
                out.table = Some(table);
            }
        }
    }
    Ok(out)
}

pub(crate) struct ComputeResult {
    pub digest: Hash,
    pub rows: u64,
    pub suppressed: u64,
    pub table: Option<ResultTable>,
}

/// Totals per union group of every partial (min/max already combined across owners).
pub(crate) struct Totals {
    /// One vector per entry of `q.aggregates`, one element per group.
    pub parts: Vec<ArithShares>,
    pub q: LocalAggregateQuery,
    /// The aggregates computed from value lists, by index in the plan's aggregates.
    pub lists: BTreeMap<usize, ListAggregate>,
}

impl Totals {
    pub(crate) fn get(&self, p: &LocalAggregate) -> R<&ArithShares> {
        self.q
            .aggregates
            .iter()
            .position(|x| x == p)
            .and_then(|j| self.parts.get(j))
            .ok_or_else(|| QueryError::arg(format!("plan lacks partial {p:?}")))
    }
    pub(crate) fn list(&self, agg: usize) -> R<&ListAggregate> {
        self.lists
            .get(&agg)
            .ok_or_else(|| QueryError::arg(format!("no value list for aggregate {agg}")))
    }
    pub(crate) fn count_of(&self, a: &AggSpec) -> R<&ArithShares> {
        match &a.column {
            Some(c) => self.count_column(c),
            None => self.get(&LocalAggregate::CountRows),
        }
    }
    /// `COUNT(c)`; the planner leaves it out for a derived column that is never NULL,
    /// whose count is `COUNT(*)`.
    pub(crate) fn count_column(&self, c: &str) -> R<&ArithShares> {
        let count = LocalAggregate::Count(c.to_string());
        if self.q.aggregates.contains(&count) {
            self.get(&count)
        } else {
            self.get(&LocalAggregate::CountRows)
        }
    }
}

fn compute(
    net: &Net,
    cx: &Ctx<'_>,
    q: &LocalAggregateQuery,
    sess: &mut Session,
    mine: Option<(Vec<Row>, Vec<u64>)>,
    my_lists: Option<&[EncodedList]>,
    k: u64,
) -> R<ComputeResult> {
    let me = cx.me;
    let nk = q.group_by.len();
    let np = q.aggregates.len();
    // 1. Keys in the clear and shares of the partials, owner by owner.
    let mut inputs: Vec<(Vec<Row>, ArithShares)> = Vec::new();
    for &o in &cx.owners {
        let (keys, vals) = if o == me {
            let (keys, vals) = mine
                .clone()
                .ok_or_else(|| QueryError::arg("owner without rows"))?;
            let mut w = Writer::new();
            put_rows(&mut w, &keys);
            let m = w.into_bytes();
            for p in (0..3).filter(|&p| p != me) {
                net.send(p, m.clone())?;
            }
            (keys, Some(vals))
        } else {
            (decode_keys(net, o, &net.recv(o)?, nk)?, None)
        };
        let n = keys.len() * np;
        let sh = if o < 3 {
            sess.input(o, vals.as_deref(), n)?
        } else {
            sess.input_external(o, n)?
        };
        inputs.push((keys, sh));
    }
    // 2. Align on the sorted union of keys.
    let mut union: Vec<Row> = inputs.iter().flat_map(|(k, _)| k.iter().cloned()).collect();
    union.sort_by(|a, b| cmp_rows(a, b));
    union.dedup_by(|a, b| cmp_rows(a, b).is_eq());
    let g = union.len();
    let positions: Vec<Vec<usize>> = inputs
        .iter()
        .map(|(keys, _)| {
            keys.iter()
                .map(|k| union.binary_search_by(|u| cmp_rows(u, k)).unwrap_or(0))
                .collect()
        })
        .collect();
    let mut parts: Vec<ArithShares> = Vec::with_capacity(np);
    let mins: Vec<usize> = (0..np)
        .filter(|&j| matches!(q.aggregates[j], LocalAggregate::Min(_)))
        .collect();
    let maxs: Vec<usize> = (0..np)
        .filter(|&j| matches!(q.aggregates[j], LocalAggregate::Max(_)))
        .collect();
    for j in 0..np {
        let mut t = ArithShares::zeros(g);
        if !mins.contains(&j) && !maxs.contains(&j) {
            for ((keys, sh), pos) in inputs.iter().zip(&positions) {
                let m = keys.len();
                for (i, &p) in pos.iter().enumerate() {
                    t.a[p] = t.a[p].wrapping_add(sh.a[j * m + i]);
                    t.b[p] = t.b[p].wrapping_add(sh.b[j * m + i]);
                }
            }
        }
        parts.push(t);
    }
    for (cols, min) in [(&mins, true), (&maxs, false)] {
        if cols.is_empty() {
            continue;
        }
        let fill = if min {
            SENTINEL
        } else {
            SENTINEL.wrapping_neg()
        };
        let mut acc: Option<ArithShares> = None;
        for ((keys, sh), pos) in inputs.iter().zip(&positions) {
            let m = keys.len();
            // Groups an owner lacks hold the public sentinel, which never wins.
            let mut v = ArithShares::public(me, &vec![fill; cols.len() * g]);
            for (c, &j) in cols.iter().enumerate() {
                for (i, &p) in pos.iter().enumerate() {
                    v.a[c * g + p] = sh.a[j * m + i];
                    v.b[c * g + p] = sh.b[j * m + i];
                }
            }
            acc = Some(match acc {
                None => v,
                Some(a) if min => sess.min_pairwise(&a, &v)?,
                Some(a) => sess.max_pairwise(&a, &v)?,
            });
        }
        if let Some(acc) = acc {
            for (c, &j) in cols.iter().enumerate() {
                parts[j] = acc.slice(c * g..(c + 1) * g)?;
            }
        }
    }
    let lists = list_aggregates(net, cx, sess, my_lists, &union)?;
    let totals = Totals {
        parts,
        q: q.clone(),
        lists,
    };
    finish(net, cx, sess, &union, &totals, k, false)
}

/// Steps 3 and 4 on the combined totals of the groups `union` (sorted): suppression,
/// HAVING, ordering and the reveal to the requester. With `skip_empty` (a join, whose
/// candidate groups may hold no row) groups with COUNT(*) = 0 are neither shown nor
/// counted as suppressed.
pub(crate) fn finish(
    net: &Net,
    cx: &Ctx<'_>,
    sess: &mut Session,
    union: &[Row],
    totals: &Totals,
    k: u64,
    skip_empty: bool,
) -> R<ComputeResult> {
    let me = cx.me;
    let g = union.len();
    // 3. Keep bits: [COUNT(*) ≥ K] ∧ HAVING; only the AND is revealed.
    let count_rows = totals.get(&LocalAggregate::CountRows)?.clone();
    let keep_k = sess.count_at_least(&count_rows, k)?;
    let below = if skip_empty {
        let present = sess.eq_zero(&count_rows)?.not(me);
        let both = BitShares::concat(&[&present, &keep_k]);
        let a = sess.bit2a(&both)?;
        a.slice(0..g)?.sum().sub(&a.slice(g..2 * g)?.sum())?
    } else {
        sess.bit2a(&keep_k.not(me))?.sum()
    };
    let suppressed = sess.reveal_all(&below)?.first().copied().unwrap_or(0);
    let keep = match &cx.plan.having {
        Some(h) => {
            let (t, _) = having(sess, cx, totals, h)?;
            sess.and_bits(&keep_k, &t)?
        }
        None => keep_k,
    };
    let keep = sess.reveal_bits_all(&keep)?;
    let mut selected: Vec<usize> = (0..g).filter(|&i| keep.get(i) == Some(&true)).collect();
    let requester_sorts = order_on_aggregate(cx);
    let mpc_top = sorts_in_mpc(cx);
    if !requester_sorts || mpc_top {
        // ORDER BY on group keys (public to the compute parties) and LIMIT are applied
        // here, so the requester receives only the rows it asked for. With an MPC top-L
        // sort this orders the rows by the trailing keys first (the sort is stable).
        let order = &cx.plan.order_by;
        selected.sort_by(|&x, &y| {
            for ok in order {
                if let OutputExpr::Key(kk) = ok.target {
                    let o = match (union[x].get(kk), union[y].get(kk)) {
                        (Some(a), Some(b)) => cmp_values(a, b),
                        _ => std::cmp::Ordering::Equal,
                    };
                    let o = if ok.descending { o.reverse() } else { o };
                    if o.is_ne() {
                        return o;
                    }
                }
            }
            std::cmp::Ordering::Equal
        });
        if let (Some(l), false) = (cx.plan.limit, requester_sorts) {
            selected.truncate(usize::try_from(l).unwrap_or(usize::MAX));
        }
    }
    let s = selected.len();
    let sel_keys: Vec<Row> = selected.iter().map(|&i| union[i].clone()).collect();
    if cx.requester >= 3 {
        let mut w = Writer::new();
        w.u64(suppressed);
        w.bool(mpc_top);
        put_rows(&mut w, &sel_keys);
        net.send(cx.requester, w.into_bytes())?;
    }
    // 4. Output values of the kept rows, revealed to the requester only.
    let rev = revealed_aggs(cx);
    let aggs = &cx.plan.aggregates;
    // Every aggregate the output shows, ORDER BY sorts on or the arithmetic over
    // aggregates reads; only the first kind is revealed as such.
    let mut needed = rev.clone();
    for c in &cx.plan.computed {
        c.operands(&mut needed);
    }
    needed.sort();
    needed.dedup();
    // Public per-row counts for the divisions of AVG / VAR_POP / STDDEV_POP.
    let mut div_cols: Vec<String> = needed
        .iter()
        .filter_map(|&a| aggs.get(a))
        .filter(|a| {
            matches!(
                a.func,
                AggFunc::Avg
                    | AggFunc::VarPop
                    | AggFunc::StddevPop
                    | AggFunc::VarSamp
                    | AggFunc::StddevSamp
            )
        })
        .filter_map(|a| a.column.clone())
        .collect();
    div_cols.sort();
    div_cols.dedup();
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if !div_cols.is_empty() && s > 0 {
        let gathered = div_cols
            .iter()
            .map(|c| {
                totals
                    .count_column(c)?
                    .gather(&selected)
                    .map_err(QueryError::from)
            })
            .collect::<R<Vec<_>>>()?;
        let refs: Vec<&ArithShares> = gathered.iter().collect();
        let all = sess.reveal_all(&ArithShares::concat(&refs))?;
        for (ci, c) in div_cols.iter().enumerate() {
            counts.insert(
                c.clone(),
                all.get(ci * s..(ci + 1) * s).unwrap_or_default().to_vec(),
            );
        }
    }
    let leaves = agg_values(sess, cx, totals, &selected, &needed, &counts)?;
    let mut values: Vec<ArithShares> = Vec::new();
    let mut nulls: Vec<ArithShares> = Vec::new();
    for ai in &rev {
        let leaf = leaves
            .get(ai)
            .ok_or_else(|| QueryError::arg("aggregate value missing"))?;
        values.push(leaf.value.clone());
        if let Some(p) = &leaf.present {
            nulls.push(p.clone());
        }
    }
    let (computed_values, computed_nulls) = evaluate_computed(sess, cx, &leaves, s)?;
    values.extend(computed_values);
    if mpc_top {
        let l = top_len(cx, s);
        let out = sort_top(sess, cx, &rev, &values, &nulls, s, l)?;
        let got = if out.is_empty() {
            None
        } else {
            sess.reveal_to(&out, cx.requester)?
        };
        let digest = share_digest(&[out.a.as_slice(), out.b.as_slice()]);
        let table = if cx.is_requester() {
            let (keys, vals, bits) =
                split_top(cx, &sel_keys, &got.unwrap_or_default(), l).map_err(QueryError::arg)?;
            Some(build_table(cx, &keys, &vals, &bits, suppressed)?)
        } else {
            None
        };
        return Ok(ComputeResult {
            digest,
            rows: l as u64,
            suppressed,
            table,
        });
    }
    let refs: Vec<&ArithShares> = values.iter().collect();
    let vals = ArithShares::concat(&refs);
    let null_bits = if nulls.is_empty() || s == 0 {
        BitShares::zeros(0)
    } else {
        let refs: Vec<&ArithShares> = nulls.iter().collect();
        sess.eq_zero(&ArithShares::concat(&refs))?
    };
    let null_bits = BitShares::concat(&[&null_bits, &computed_nulls]);
    let mut got_vals = None;
    let mut got_bits = None;
    if !vals.is_empty() {
        got_vals = sess.reveal_to(&vals, cx.requester)?;
    }
    if !null_bits.is_empty() {
        got_bits = sess.reveal_bits_to(&null_bits, &[cx.requester])?;
    }
    let digest = share_digest(&[
        vals.a.as_slice(),
        vals.b.as_slice(),
        null_bits.a.as_slice(),
        null_bits.b.as_slice(),
    ]);
    let table = if cx.is_requester() {
        Some(build_table(
            cx,
            &sel_keys,
            &got_vals.unwrap_or_default(),
            &got_bits.unwrap_or_default(),
            suppressed,
        )?)
    } else {
        None
    };
    let rows = match (requester_sorts, cx.plan.limit) {
        (true, Some(l)) => (s as u64).min(l),
        _ => s as u64,
    };
    Ok(ComputeResult {
        digest,
        rows,
        suppressed,
        table,
    })
}

/// HAVING with three-valued logic: returns the (definitely true, definitely false) bits.
fn having(
    sess: &mut Session,
    cx: &Ctx<'_>,
    totals: &Totals,
    h: &HavingExpr,
) -> R<(BitShares, BitShares)> {
    let me = sess.me();
    match h {
        HavingExpr::Not(a) => {
            let (t, f) = having(sess, cx, totals, a)?;
            Ok((f, t))
        }
        HavingExpr::And(a, b) | HavingExpr::Or(a, b) => {
            let (ta, fa) = having(sess, cx, totals, a)?;
            let (tb, fb) = having(sess, cx, totals, b)?;
            if matches!(h, HavingExpr::And(..)) {
                // T = T1 ∧ T2; F = F1 ∨ F2 = ¬(¬F1 ∧ ¬F2). Both ANDs in one round.
                let r = sess.and_bits(
                    &BitShares::concat(&[&ta, &fa.not(me)]),
                    &BitShares::concat(&[&tb, &fb.not(me)]),
                )?;
                let n = ta.len();
                Ok((r.slice(0..n)?, r.slice(n..2 * n)?.not(me)))
            } else {
                let r = sess.and_bits(
                    &BitShares::concat(&[&ta.not(me), &fa]),
                    &BitShares::concat(&[&tb.not(me), &fb]),
                )?;
                let n = ta.len();
                Ok((r.slice(0..n)?.not(me), r.slice(n..2 * n)?))
            }
        }
        HavingExpr::CompareComputed { expr, op, value } => {
            let groups = totals.parts.first().map(|p| p.len()).unwrap_or(0);
            let (x, null) = having_value(sess, cx, totals, expr, groups)?;
            let c = compare(sess, &x, *op, value * SCALE as f64)?;
            let nn = null.not(me);
            let n = c.len();
            let r = sess.and_bits(
                &BitShares::concat(&[&c, &c.not(me)]),
                &BitShares::concat(&[&nn, &nn]),
            )?;
            Ok((r.slice(0..n)?, r.slice(n..2 * n)?))
        }
        HavingExpr::Compare { agg, op, value } => {
            let a = cx
                .plan
                .aggregates
                .get(*agg)
                .ok_or_else(|| QueryError::arg("aggregate index out of range"))?;
            let col = a.column.clone().unwrap_or_default();
            let scale = SCALE as f64;
            let (x, t) = match a.func {
                AggFunc::CountRows | AggFunc::Count => (totals.count_of(a)?.clone(), *value),
                AggFunc::Sum => (
                    totals.get(&LocalAggregate::Sum(col))?.clone(),
                    value * scale,
                ),
                AggFunc::Min => (
                    totals.get(&LocalAggregate::Min(col))?.clone(),
                    value * scale,
                ),
                AggFunc::Max => (
                    totals.get(&LocalAggregate::Max(col))?.clone(),
                    value * scale,
                ),
                AggFunc::Avg => {
                    // AVG op c ⇔ Σx − c·n op 0 (n > 0): no division needed.
                    let c = encode_fixed(*value, FRAC_BITS)
                        .map_err(|_| QueryError::Range(format!("{value} in HAVING")))?;
                    let sum = totals.get(&LocalAggregate::Sum(col.clone()))?;
                    let n = totals.count_column(&col)?;
                    (sum.sub(&n.mul_public(c))?, 0.0)
                }
                AggFunc::VarPop | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::StddevSamp => {
                    return Err(QueryError::unsupported(format!(
                        "{} in HAVING",
                        a.func.sql_name()
                    )))
                }
                // Counts and integer values are plain integers; fixed point otherwise.
                AggFunc::CountDistinct => (totals.list(*agg)?.values.clone(), *value),
                AggFunc::SumDistinct | AggFunc::PercentileDisc
                    if a.column_type == ColumnType::Integer =>
                {
                    (totals.list(*agg)?.values.clone(), *value)
                }
                AggFunc::SumDistinct | AggFunc::PercentileDisc | AggFunc::PercentileCont => {
                    (totals.list(*agg)?.values.clone(), value * scale)
                }
            };
            let c = compare(sess, &x, *op, t)?;
            if nullable(a) {
                let nn = match totals.lists.get(agg) {
                    Some(l) => {
                        BitShares::public(me, &l.counts.iter().map(|&c| c > 0).collect::<Vec<_>>())
                    }
                    None => sess.eq_zero(totals.count_of(a)?)?.not(me),
                };
                let n = c.len();
                let r = sess.and_bits(
                    &BitShares::concat(&[&c, &c.not(me)]),
                    &BitShares::concat(&[&nn, &nn]),
                )?;
                Ok((r.slice(0..n)?, r.slice(n..2 * n)?))
            } else {
                let f = c.not(me);
                Ok((c, f))
            }
        }
    }
}
