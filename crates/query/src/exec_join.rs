//! The join protocol (docs/QUERY.md, "Joins"): aggregates over `a JOIN b ON a.k = b.k`
//! where the sides belong to different members.
//!
//! 1. **Alignment.** For every (left owner, right owner) pair, in order, the two owners
//!    run the PSI in join-alignment mode on their key column (or align locally when one
//!    member holds both sides). Each learns which of its rows match and one common order
//!    of the matched pairs, nothing about the other's other keys.
//! 2. **Input.** Each owner secret-shares, for its aligned rows in that order, its WHERE
//!    mask, the columns the aggregates need and a 0/1 indicator per distinct group tuple
//!    of its side; the number of aligned rows and those tuples go to the compute parties
//!    in the clear.
//! 3. **Combine.** The compute parties multiply the two masks and the two sides' group
//!    indicators into one 0/1 weight per joined row and candidate group, then take dot
//!    products for counts and sums and masked tree reductions for MIN/MAX.
//! 4. The per-group totals go through the aggregate protocol's last steps
//!    (`exec_agg::finish`): suppression below K (empty candidate groups are neither shown
//!    nor counted), HAVING, ordering, the reveal to the requester.

use consort_crypto::MemberId;
use consort_model::local_query::{LocalAggregate, LocalAggregateQuery};
use consort_model::Row;
use consort_mpc::psi::{psi, PsiMode};
use consort_mpc::transport::PartyId;
use consort_mpc::{provide_input, ArithShares, Session, SENTINEL};
use rand_core::{CryptoRng, RngCore};

use crate::canon::cmp_rows;
use crate::error::QueryError;
use crate::exec::{Ctx, Net};
use crate::exec_agg::{finish, AggResult, Totals};
use crate::exec_io::receive_result;
use crate::exec_join_align::{
    align_locally, decode_header, encode_header, encode_side, keys_of, ShareKind, SideInput,
    SideLayout,
};
use crate::plan::{JoinSpec, LocalWork};

type R<T> = Result<T, QueryError>;

/// This owner's rows of each side it holds.
pub(crate) type JoinLocal = (Option<Vec<Row>>, Option<Vec<Row>>);

/// One side's input as the compute parties hold it.
struct SideShares {
    n: usize,
    tuples: Vec<Row>,
    shares: ArithShares,
}

pub(crate) fn run_join(
    net: &Net,
    cx: &Ctx<'_>,
    session: Option<Session>,
    local: Option<JoinLocal>,
    min_group_size: u32,
    rng: &mut (impl RngCore + CryptoRng),
) -> R<AggResult> {
    let spec = cx
        .plan
        .join
        .as_ref()
        .ok_or_else(|| QueryError::arg("not a join plan"))?;
    let LocalWork::Aggregate(q) = &cx.plan.local else {
        return Err(QueryError::arg("a join plan must aggregate"));
    };
    let layouts = [
        SideLayout::new(&spec.left, q)?,
        SideLayout::new(&spec.right, q)?,
    ];
    let mine = match local {
        Some(l) => align_and_encode(net, cx, spec, q, &layouts, l, rng)?,
        None => Vec::new(),
    };
    let mut out = AggResult {
        table: None,
        digest: None,
        rows: 0,
        suppressed: 0,
    };
    match session {
        Some(mut sess) => {
            let inputs = receive_inputs(net, cx, spec, &layouts, &mut sess, mine)?;
            let (union, totals) = combine(&mut sess, q, &layouts, inputs)?;
            let k = u64::from(min_group_size.max(1));
            let c = finish(
                net,
                cx,
                &mut sess,
                &union,
                &totals,
                k,
                !q.group_by.is_empty(),
            )?;
            out.digest = Some(c.digest);
            out.rows = c.rows;
            out.suppressed = c.suppressed;
            out.table = c.table;
        }
        None => {
            for input in &mine {
                let header = encode_header(input);
                for p in 0..3 {
                    net.send(p, header.clone())?;
                }
                if !input.values.is_empty() {
                    net.with(|t| provide_input(t, &input.values, rng))?;
                }
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

/// Step 1 at an owner: align every pair it is in and encode its inputs, in input order
/// (pair by pair, left side first).
fn align_and_encode(
    net: &Net,
    cx: &Ctx<'_>,
    spec: &JoinSpec,
    q: &LocalAggregateQuery,
    layouts: &[SideLayout; 2],
    (left, right): JoinLocal,
    rng: &mut (impl RngCore + CryptoRng),
) -> R<Vec<SideInput>> {
    let me: MemberId = *cx
        .parties
        .get(cx.me)
        .ok_or_else(|| QueryError::arg("party id out of range"))?;
    let rows = [left, right];
    for (i, side) in spec.sides().iter().enumerate() {
        if side.owners.contains(&me) != rows[i].is_some() {
            return Err(QueryError::arg(format!(
                "member {me} {} side {} of the join but {} rows for it",
                if side.owners.contains(&me) {
                    "holds"
                } else {
                    "does not hold"
                },
                side.alias,
                if rows[i].is_some() {
                    "passed"
                } else {
                    "did not pass"
                }
            )));
        }
    }
    let keys = [
        rows[0].as_deref().map(keys_of),
        rows[1].as_deref().map(keys_of),
    ];
    let mut out = Vec::new();
    for (l, r) in spec.pairs() {
        let aligned: [Option<Vec<usize>>; 2] = if l == me && r == me {
            let (a, b) = align_locally(
                keys[0].as_deref().unwrap_or_default(),
                keys[1].as_deref().unwrap_or_default(),
            );
            [Some(a), Some(b)]
        } else if l == me || r == me {
            let (side, peer) = if l == me { (0, r) } else { (1, l) };
            let peer = cx.party_of(&peer)?;
            let my_keys = keys[side].as_deref().unwrap_or_default();
            let o = net.with(|t| psi(t, peer, my_keys, PsiMode::JoinAlignment, rng))?;
            let a = o
                .alignment
                .ok_or_else(|| QueryError::arg("the PSI returned no alignment"))?;
            let mut both = [None, None];
            both[side] = Some(a);
            both
        } else {
            [None, None]
        };
        for (side, a) in aligned.iter().enumerate() {
            if let (Some(a), Some(rows)) = (a, rows[side].as_deref()) {
                out.push(encode_side(&layouts[side], q, rows, a)?);
            }
        }
    }
    Ok(out)
}

/// Step 2 at a compute party: every side's header and shares, pair by pair.
fn receive_inputs(
    net: &Net,
    cx: &Ctx<'_>,
    spec: &JoinSpec,
    layouts: &[SideLayout; 2],
    sess: &mut Session,
    mine: Vec<SideInput>,
) -> R<Vec<[SideShares; 2]>> {
    let me = cx.me;
    let mut mine = mine.into_iter();
    let mut out = Vec::new();
    for (l, r) in spec.pairs() {
        let mut pair: Vec<SideShares> = Vec::with_capacity(2);
        for (side, owner) in [l, r].into_iter().enumerate() {
            let o: PartyId = cx.party_of(&owner)?;
            let layout = &layouts[side];
            let (n, tuples, values) = if o == me {
                let input = mine
                    .next()
                    .ok_or_else(|| QueryError::arg("missing own join input"))?;
                let header = encode_header(&input);
                for p in (0..3).filter(|&p| p != me) {
                    net.send(p, header.clone())?;
                }
                (input.n, input.tuples, Some(input.values))
            } else {
                let m = net.recv(o)?;
                let (n, tuples) = decode_header(&m, layout).map_err(|e| net.malformed(o, e))?;
                (n, tuples, None)
            };
            let len = layout.len(n, tuples.len());
            let shares = if len == 0 {
                ArithShares::zeros(0)
            } else if o < 3 {
                sess.input(o, values.as_deref(), len)?
            } else {
                sess.input_external(o, len)?
            };
            pair.push(SideShares { n, tuples, shares });
        }
        let right = pair.pop();
        let left = pair.pop();
        let (Some(left), Some(right)) = (left, right) else {
            return Err(QueryError::arg("pair inputs missing"));
        };
        if left.n != right.n {
            return Err(net.malformed(
                cx.party_of(&r)?,
                format!("{} aligned rows, the other side has {}", right.n, left.n),
            ));
        }
        out.push([left, right]);
    }
    Ok(out)
}

/// A side's shares split into mask, columns and indicators.
struct Parts {
    mask: Option<ArithShares>,
    columns: Vec<ArithShares>,
    indicators: Vec<ArithShares>,
}

fn split(layout: &SideLayout, s: &SideShares) -> R<Parts> {
    let n = s.n;
    let mut at = 0;
    let mut next = || -> R<ArithShares> {
        let v = s.shares.slice(at..at + n)?;
        at += n;
        Ok(v)
    };
    let mask = if layout.has_mask { Some(next()?) } else { None };
    let columns = layout
        .columns
        .iter()
        .map(|_| next())
        .collect::<R<Vec<_>>>()?;
    let indicators = if layout.groups.is_empty() {
        Vec::new()
    } else {
        s.tuples.iter().map(|_| next()).collect::<R<Vec<_>>>()?
    };
    Ok(Parts {
        mask,
        columns,
        indicators,
    })
}

/// x · y element-wise for many pairs of equal-length vectors, in one round.
fn mul_batch(sess: &mut Session, pairs: &[(&ArithShares, &ArithShares)]) -> R<Vec<ArithShares>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let xs: Vec<&ArithShares> = pairs.iter().map(|p| p.0).collect();
    let ys: Vec<&ArithShares> = pairs.iter().map(|p| p.1).collect();
    let z = sess.mul(&ArithShares::concat(&xs), &ArithShares::concat(&ys))?;
    let mut out = Vec::with_capacity(pairs.len());
    let mut at = 0;
    for (x, _) in pairs {
        out.push(z.slice(at..at + x.len())?);
        at += x.len();
    }
    Ok(out)
}

/// Contributions of one candidate group of one pair.
struct Candidate {
    key: Row,
    /// Per partial: the additive total (len 1), or the masked values to reduce (MIN/MAX).
    parts: Vec<ArithShares>,
}

/// Step 3: per-group totals of every partial over the joined rows of all pairs.
fn combine(
    sess: &mut Session,
    q: &LocalAggregateQuery,
    layouts: &[SideLayout; 2],
    inputs: Vec<[SideShares; 2]>,
) -> R<(Vec<Row>, Totals)> {
    let me = sess.me();
    let np = q.aggregates.len();
    let mut candidates: Vec<Candidate> = Vec::new();
    for [ls, rs] in &inputs {
        let n = ls.n;
        if n == 0 {
            continue;
        }
        let (lp, rp) = (split(&layouts[0], ls)?, split(&layouts[1], rs)?);
        let ones = ArithShares::public(me, &vec![1; n]);
        let mask = match (&lp.mask, &rp.mask) {
            (Some(a), Some(b)) => sess.mul(a, b)?,
            (Some(a), None) => a.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => ones.clone(),
        };
        // Candidate groups: every left tuple × every right tuple (one empty tuple for a
        // side without group columns).
        let lt: Vec<(Option<&ArithShares>, &[consort_model::Value])> = if lp.indicators.is_empty() {
            vec![(None, &[][..])]
        } else {
            lp.indicators
                .iter()
                .zip(&ls.tuples)
                .map(|(i, t)| (Some(i), t.as_slice()))
                .collect()
        };
        let rt: Vec<(Option<&ArithShares>, &[consort_model::Value])> = if rp.indicators.is_empty() {
            vec![(None, &[][..])]
        } else {
            rp.indicators
                .iter()
                .zip(&rs.tuples)
                .map(|(i, t)| (Some(i), t.as_slice()))
                .collect()
        };
        let left_w: Vec<ArithShares> = {
            let pairs: Vec<(&ArithShares, &ArithShares)> = lt
                .iter()
                .filter_map(|(ind, _)| ind.map(|i| (&mask, i)))
                .collect();
            if pairs.is_empty() {
                vec![mask.clone()]
            } else {
                mul_batch(sess, &pairs)?
            }
        };
        let mut weights: Vec<(usize, usize, ArithShares)> = Vec::new();
        {
            let mut pairs: Vec<(&ArithShares, &ArithShares)> = Vec::new();
            let mut slots = Vec::new();
            for (li, lw) in left_w.iter().enumerate() {
                for (ri, (ind, _)) in rt.iter().enumerate() {
                    match ind {
                        Some(i) => {
                            pairs.push((lw, i));
                            slots.push((li, ri));
                        }
                        None => weights.push((li, ri, lw.clone())),
                    }
                }
            }
            for ((li, ri), w) in slots.into_iter().zip(mul_batch(sess, &pairs)?) {
                weights.push((li, ri, w));
            }
        }
        // The value column of partial j, from whichever side holds it.
        let column = |j: usize| -> Option<(&ArithShares, &ShareKind)> {
            for (layout, parts) in [(&layouts[0], &lp), (&layouts[1], &rp)] {
                if let Some(pos) = layout.columns.iter().position(|c| c.0 == j) {
                    return parts.columns.get(pos).map(|c| (c, &layout.columns[pos].2));
                }
            }
            None
        };
        let mut dots: Vec<(&ArithShares, &ArithShares)> = Vec::new();
        let mut extremes: Vec<(&ArithShares, ArithShares)> = Vec::new();
        for (_, _, w) in &weights {
            for j in 0..np {
                match (&q.aggregates[j], column(j)) {
                    (LocalAggregate::CountRows, _) => {}
                    (_, Some((x, ShareKind::MinValue))) | (_, Some((x, ShareKind::MaxValue))) => {
                        let fill = fill_of(&q.aggregates[j]);
                        // w·(x − fill) + fill: x where the joined row counts, else fill.
                        extremes.push((w, x.add_const(me, fill.wrapping_neg())));
                    }
                    (_, Some((x, _))) => dots.push((w, x)),
                    (_, None) => return Err(QueryError::arg(format!("partial {j} has no column"))),
                }
            }
        }
        let dot = sess.dot_many(&dots)?;
        let ext_pairs: Vec<(&ArithShares, &ArithShares)> =
            extremes.iter().map(|(w, x)| (*w, x)).collect();
        let ext = mul_batch(sess, &ext_pairs)?;
        let (mut di, mut ei) = (0, 0);
        for (li, ri, w) in &weights {
            let mut parts = Vec::with_capacity(np);
            for j in 0..np {
                let part = match &q.aggregates[j] {
                    LocalAggregate::CountRows => w.sum(),
                    a @ (LocalAggregate::Min(_) | LocalAggregate::Max(_)) => {
                        let v = ext
                            .get(ei)
                            .ok_or_else(|| QueryError::arg("extreme index"))?
                            .add_const(me, fill_of(a));
                        ei += 1;
                        v
                    }
                    _ => {
                        let v = dot.slice(di..di + 1)?;
                        di += 1;
                        v
                    }
                };
                parts.push(part);
            }
            candidates.push(Candidate {
                key: group_key(q, layouts, lt[*li].1, rt[*ri].1)?,
                parts,
            });
        }
    }
    let mut union: Vec<Row> = candidates.iter().map(|c| c.key.clone()).collect();
    if q.group_by.is_empty() {
        union.push(Vec::new());
    }
    union.sort_by(|a, b| cmp_rows(a, b));
    union.dedup_by(|a, b| cmp_rows(a, b).is_eq());
    let g = union.len();
    let slot_of = |k: &Row| union.binary_search_by(|u| cmp_rows(u, k)).unwrap_or(0);
    let mut parts: Vec<ArithShares> = Vec::with_capacity(np);
    for (j, a) in q.aggregates.iter().enumerate() {
        match a {
            LocalAggregate::Min(_) | LocalAggregate::Max(_) => {
                let mut segments: Vec<Vec<&ArithShares>> = vec![Vec::new(); g];
                for c in &candidates {
                    segments[slot_of(&c.key)].push(&c.parts[j]);
                }
                let min = matches!(a, LocalAggregate::Min(_));
                parts.push(reduce_segments(sess, &segments, fill_of(a), min)?);
            }
            _ => {
                let mut t = ArithShares::zeros(g);
                for c in &candidates {
                    let s = slot_of(&c.key);
                    t.a[s] = t.a[s].wrapping_add(c.parts[j].a[0]);
                    t.b[s] = t.b[s].wrapping_add(c.parts[j].b[0]);
                }
                parts.push(t);
            }
        }
    }
    Ok((
        union,
        Totals {
            parts,
            q: q.clone(),
            // The planner refuses value-list aggregates in a JOIN.
            lists: Default::default(),
        },
    ))
}

fn fill_of(a: &LocalAggregate) -> u64 {
    match a {
        LocalAggregate::Max(_) => SENTINEL.wrapping_neg(),
        _ => SENTINEL,
    }
}

/// The group key of a candidate, in `q.group_by` order, from the two sides' tuples.
fn group_key(
    q: &LocalAggregateQuery,
    layouts: &[SideLayout; 2],
    left: &[consort_model::Value],
    right: &[consort_model::Value],
) -> R<Row> {
    let mut key = Vec::with_capacity(q.group_by.len());
    for g in 0..q.group_by.len() {
        let v = [(&layouts[0], left), (&layouts[1], right)]
            .iter()
            .find_map(|(l, t)| {
                l.groups
                    .iter()
                    .position(|x| x.0 == g)
                    .and_then(|p| t.get(p).cloned())
            })
            .ok_or_else(|| QueryError::arg(format!("group column {g} of no side")))?;
        key.push(v);
    }
    Ok(key)
}

/// The minimum (or maximum) of each segment, in one tree of pairwise comparisons over all
/// segments at once; segments are padded with the public `fill`, which never wins.
fn reduce_segments(
    sess: &mut Session,
    segments: &[Vec<&ArithShares>],
    fill: u64,
    min: bool,
) -> R<ArithShares> {
    let me = sess.me();
    let mut cur: Vec<ArithShares> = segments.iter().map(|s| ArithShares::concat(s)).collect();
    let mut len = cur.iter().map(|v| v.len()).max().unwrap_or(0).max(1);
    for v in cur.iter_mut() {
        if v.len() < len {
            let pad = ArithShares::public(me, &vec![fill; len - v.len()]);
            *v = ArithShares::concat(&[v, &pad]);
        }
    }
    while len > 1 {
        let half = len / 2;
        let lo: Vec<ArithShares> = cur
            .iter()
            .map(|v| v.slice(0..half))
            .collect::<Result<_, _>>()?;
        let hi: Vec<ArithShares> = cur
            .iter()
            .map(|v| v.slice(half..2 * half))
            .collect::<Result<_, _>>()?;
        let (a, b) = (
            ArithShares::concat(&lo.iter().collect::<Vec<_>>()),
            ArithShares::concat(&hi.iter().collect::<Vec<_>>()),
        );
        let r = if min {
            sess.min_pairwise(&a, &b)?
        } else {
            sess.max_pairwise(&a, &b)?
        };
        let mut next = Vec::with_capacity(cur.len());
        for (i, v) in cur.iter().enumerate() {
            let mut part = r.slice(i * half..(i + 1) * half)?;
            if len % 2 == 1 {
                part = ArithShares::concat(&[&part, &v.slice(2 * half..len)?]);
            }
            next.push(part);
        }
        cur = next;
        len = half + len % 2;
    }
    Ok(ArithShares::concat(&cur.iter().collect::<Vec<_>>()))
}
