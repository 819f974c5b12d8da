//! The values the compute parties reveal for the kept groups: each aggregate's value and
//! NULL flag (from the combined partials, the value lists and the public per-group
//! counts), and arithmetic over aggregates ([`AggExpr`]) evaluated on them in MPC.

use std::collections::BTreeMap;

use consort_model::local_query::LocalAggregate;
use consort_model::scalar::ArithOp;
use consort_model::ColumnType;
use consort_mpc::{encode_fixed, ArithShares, BitShares, Session};

use crate::error::QueryError;
use crate::exec::Ctx;
use crate::exec_agg::Totals;
use crate::exec_io::nullable;
use crate::exec_math::{divide_batched, mul_fixed_wide, square_fixed_wide};
use crate::plan::{AggExpr, AggFunc, FRAC_BITS};

type R<T> = Result<T, QueryError>;

/// One aggregate over the kept groups.
pub(crate) struct Leaf {
    /// In the encoding `decode_value` reads: counts and list integers plain, the rest in
    /// fixed point.
    pub value: ArithShares,
    /// Zero where the aggregate is NULL (None: never NULL).
    pub present: Option<ArithShares>,
}

/// Plain integers among the aggregates' encodings (everything else is fixed point).
fn plain_integer(func: AggFunc, column_type: ColumnType) -> bool {
    match func {
        AggFunc::CountRows | AggFunc::Count | AggFunc::CountDistinct => true,
        AggFunc::SumDistinct | AggFunc::PercentileDisc => column_type == ColumnType::Integer,
        _ => false,
    }
}

/// The values of the aggregates `needed` for the kept groups `selected`; `counts` holds
/// the public per-group COUNT(col) of the columns under AVG and the variances.
pub(crate) fn agg_values(
    sess: &mut Session,
    cx: &Ctx<'_>,
    totals: &Totals,
    selected: &[usize],
    needed: &[usize],
    counts: &BTreeMap<String, Vec<u64>>,
) -> R<BTreeMap<usize, Leaf>> {
    let me = sess.me();
    let s = selected.len();
    let aggs = &cx.plan.aggregates;
    let mut values: Vec<ArithShares> = Vec::new();
    let mut presents: Vec<Option<ArithShares>> = Vec::new();
    // Numerators and their public divisors, divided in batches per distinct divisor.
    let mut num_parts: Vec<(usize, ArithShares, Vec<u64>)> = Vec::new();
    for &ai in needed {
        let a = aggs
            .get(ai)
            .ok_or_else(|| QueryError::arg("aggregate index out of range"))?;
        let col = a.column.clone().unwrap_or_default();
        let n = || counts.get(&col).cloned().unwrap_or_default();
        let from_list = a.value_list().is_some();
        let v = match a.func {
            _ if from_list => totals.list(ai)?.values.gather(selected)?,
            AggFunc::CountRows | AggFunc::Count => totals.count_of(a)?.gather(selected)?,
            AggFunc::Sum => totals
                .get(&LocalAggregate::Sum(col.clone()))?
                .gather(selected)?,
            AggFunc::Min => totals
                .get(&LocalAggregate::Min(col.clone()))?
                .gather(selected)?,
            AggFunc::Max => totals
                .get(&LocalAggregate::Max(col.clone()))?
                .gather(selected)?,
            AggFunc::Avg => {
                let sum = totals
                    .get(&LocalAggregate::Sum(col.clone()))?
                    .gather(selected)?;
                num_parts.push((values.len(), sum, n()));
                ArithShares::zeros(s)
            }
            AggFunc::VarPop | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::StddevSamp => {
                let sample = matches!(a.func, AggFunc::VarSamp | AggFunc::StddevSamp);
                let sum = totals
                    .get(&LocalAggregate::Sum(col.clone()))?
                    .gather(selected)?;
                let sq = totals
                    .get(&LocalAggregate::SumSquares(col.clone()))?
                    .gather(selected)?;
                variance(sess, &sum, &sq, &n(), sample)?
            }
            AggFunc::CountDistinct
            | AggFunc::SumDistinct
            | AggFunc::PercentileCont
            | AggFunc::PercentileDisc => totals.list(ai)?.values.gather(selected)?,
        };
        values.push(v);
        let present = if nullable(a) {
            // Zero where the value is NULL: no non-NULL value (too few for VAR_SAMP).
            Some(match a.func {
                AggFunc::VarSamp | AggFunc::StddevSamp => {
                    let ok: Vec<u64> = n().iter().map(|&c| u64::from(c >= 2)).collect();
                    ArithShares::public(me, &ok)
                }
                _ if from_list => {
                    let c = &totals.list(ai)?.counts;
                    let ok: Vec<u64> = selected.iter().map(|&i| c[i].min(1)).collect();
                    ArithShares::public(me, &ok)
                }
                _ => totals.count_of(a)?.gather(selected)?,
            })
        } else {
            None
        };
        presents.push(present);
    }
    divide_batched(sess, &mut values, num_parts)?;
    Ok(needed
        .iter()
        .zip(values.into_iter().zip(presents))
        .map(|(&ai, (value, present))| (ai, Leaf { value, present }))
        .collect())
}

/// One node of an [`AggExpr`] over the kept groups: its value in fixed point, its NULL
/// flags, and whether SQL types it as an integer.
struct Node {
    value: ArithShares,
    null: BitShares,
    integer: bool,
}

/// Evaluates every [`AggExpr`] of the plan on the kept groups: their values (fixed point,
/// one vector each) and their NULL flags (concatenated). A quotient too large for the
/// fixed-point range fails the query, naming the expression: the compute parties learn
/// that one bit.
pub(crate) fn evaluate_computed(
    sess: &mut Session,
    cx: &Ctx<'_>,
    leaves: &BTreeMap<usize, Leaf>,
    s: usize,
) -> R<(Vec<ArithShares>, BitShares)> {
    if cx.plan.computed.is_empty() {
        return Ok((Vec::new(), BitShares::zeros(0)));
    }
    let (values, nulls) = evaluate(sess, cx, leaves, s, &cx.plan.computed)?;
    let refs: Vec<&BitShares> = nulls.iter().collect();
    Ok((values, BitShares::concat(&refs)))
}

/// One HAVING condition's arithmetic over aggregates, for every group (kept or not): its
/// value and NULL flags. AVG divides by the secret count here (no count is public before
/// the keep bits); variances are refused by the planner.
pub(crate) fn having_value(
    sess: &mut Session,
    cx: &Ctx<'_>,
    totals: &Totals,
    expr: &AggExpr,
    groups: usize,
) -> R<(ArithShares, BitShares)> {
    let mut needed = Vec::new();
    expr.operands(&mut needed);
    needed.sort();
    needed.dedup();
    let all: Vec<usize> = (0..groups).collect();
    let mut averages = Vec::new();
    let mut others = Vec::new();
    for ai in needed {
        match cx.plan.aggregates.get(ai).map(|a| a.func) {
            Some(AggFunc::Avg) => averages.push(ai),
            Some(AggFunc::VarPop | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::StddevSamp) => {
                return Err(QueryError::unsupported(
                    "a variance in arithmetic over aggregates in HAVING",
                ))
            }
            _ => others.push(ai),
        }
    }
    let mut leaves = agg_values(sess, cx, totals, &all, &others, &BTreeMap::new())?;
    for ai in averages {
        let a = &cx.plan.aggregates[ai];
        let col = a.column.clone().unwrap_or_default();
        let sum = totals.get(&LocalAggregate::Sum(col.clone()))?.clone();
        let n = totals.count_column(&col)?.clone();
        let q = sess.div_fixed(&sum, &n.mul_public(1 << FRAC_BITS), FRAC_BITS)?;
        leaves.insert(
            ai,
            Leaf {
                value: q.value,
                present: Some(n),
            },
        );
    }
    let (mut values, mut nulls) = evaluate(sess, cx, &leaves, groups, std::slice::from_ref(expr))?;
    match (values.pop(), nulls.pop()) {
        (Some(v), Some(n)) => Ok((v, n)),
        _ => Err(QueryError::arg("HAVING expression not evaluated")),
    }
}

/// Evaluates `exprs` on the leaves (each `s` long): their fixed-point values and NULL
/// flags. A quotient too large for the fixed-point range fails the query (the compute
/// parties learn that one bit).
fn evaluate(
    sess: &mut Session,
    cx: &Ctx<'_>,
    leaves: &BTreeMap<usize, Leaf>,
    s: usize,
    exprs: &[AggExpr],
) -> R<(Vec<ArithShares>, Vec<BitShares>)> {
    // NULL flags of the leaves, in one batch.
    let mut leaf_nulls: BTreeMap<usize, BitShares> = BTreeMap::new();
    let nullable_leaves: Vec<(usize, &ArithShares)> = leaves
        .iter()
        .filter_map(|(ai, l)| l.present.as_ref().map(|p| (*ai, p)))
        .collect();
    if !nullable_leaves.is_empty() && s > 0 {
        let refs: Vec<&ArithShares> = nullable_leaves.iter().map(|(_, p)| *p).collect();
        let bits = sess.eq_zero(&ArithShares::concat(&refs))?;
        for (i, (ai, _)) in nullable_leaves.iter().enumerate() {
            leaf_nulls.insert(*ai, bits.slice(i * s..(i + 1) * s)?);
        }
    }
    let mut cx_eval = Eval {
        sess,
        cx,
        leaves,
        leaf_nulls: &leaf_nulls,
        s,
        overflow: Vec::new(),
    };
    let mut values = Vec::new();
    let mut nulls = Vec::new();
    for e in exprs {
        let node = cx_eval.node(e)?;
        // Integers are decoded from fixed point by the requester, exactly.
        values.push(node.value);
        nulls.push(node.null);
    }
    let overflow = std::mem::take(&mut cx_eval.overflow);
    if !overflow.is_empty() && s > 0 {
        let refs: Vec<&BitShares> = overflow.iter().collect();
        let all = BitShares::concat(&refs);
        let any = sess.reveal_bits_all(&all)?.iter().any(|&b| b);
        if any {
            return Err(QueryError::Range(
                "a quotient in arithmetic over aggregates exceeds ±2^46".into(),
            ));
        }
    }
    Ok((values, nulls))
}

struct Eval<'a, 'b> {
    sess: &'a mut Session,
    cx: &'a Ctx<'b>,
    leaves: &'a BTreeMap<usize, Leaf>,
    leaf_nulls: &'a BTreeMap<usize, BitShares>,
    s: usize,
    overflow: Vec<BitShares>,
}

impl Eval<'_, '_> {
    fn node(&mut self, e: &AggExpr) -> R<Node> {
        let me = self.sess.me();
        let s = self.s;
        let aggs = &self.cx.plan.aggregates;
        Ok(match e {
            AggExpr::Agg(ai) => {
                let a = aggs
                    .get(*ai)
                    .ok_or_else(|| QueryError::arg("aggregate index out of range"))?;
                let leaf = self
                    .leaves
                    .get(ai)
                    .ok_or_else(|| QueryError::arg("aggregate value missing"))?;
                let value = if plain_integer(a.func, a.column_type) {
                    leaf.value.mul_public(1 << FRAC_BITS)
                } else {
                    leaf.value.clone()
                };
                Node {
                    value,
                    null: self
                        .leaf_nulls
                        .get(ai)
                        .cloned()
                        .unwrap_or_else(|| BitShares::zeros(s)),
                    integer: a.output_type() == ColumnType::Integer,
                }
            }
            AggExpr::Integer(_) | AggExpr::Float(_) => {
                let v = match e {
                    AggExpr::Integer(i) => *i as f64,
                    AggExpr::Float(f) => *f,
                    _ => 0.0,
                };
                let f = encode_fixed(v, FRAC_BITS)
                    .map_err(|_| QueryError::Range(format!("{v} exceeds the fixed-point range")))?;
                Node {
                    value: ArithShares::public(me, &vec![f; s]),
                    null: BitShares::zeros(s),
                    integer: matches!(e, AggExpr::Integer(_)),
                }
            }
            AggExpr::Negate(x) => {
                let n = self.node(x)?;
                Node {
                    value: n.value.neg(),
                    ..n
                }
            }
            AggExpr::ToFloat(x) => Node {
                integer: false,
                ..self.node(x)?
            },
            AggExpr::Sqrt(x) => {
                let n = self.node(x)?;
                let value = self.sess.sqrt_fixed(&n.value, FRAC_BITS)?;
                Node {
                    value,
                    integer: false,
                    ..n
                }
            }
            AggExpr::ZeroBelow(x, ulps) => {
                let n = self.node(x)?;
                let t = u64::from(*ulps);
                // |v| < t ⇔ 0 ≤ v + t < 2t: two signs in one batch.
                let shifted = n.value.add_const(me, t);
                let signs = self
                    .sess
                    .msb_many(&[&shifted.add_const(me, (2 * t).wrapping_neg()), &shifted])?;
                let small = self.sess.and_bits(&signs[0], &signs[1].not(me))?;
                let value = self.sess.mux(&small, &ArithShares::zeros(s), &n.value)?;
                Node { value, ..n }
            }
            AggExpr::Arith { op, left, right } => {
                let l = self.node(left)?;
                let r = self.node(right)?;
                let integer = l.integer && r.integer;
                let mut null = self.sess.or_bits(&l.null, &r.null)?;
                let value = match op {
                    ArithOp::Add => l.value.add(&r.value)?,
                    ArithOp::Sub => l.value.sub(&r.value)?,
                    ArithOp::Mul => match (literal_integer(left), literal_integer(right)) {
                        (Some(k), _) => r.value.mul_public(k as u64),
                        (_, Some(k)) => l.value.mul_public(k as u64),
                        // An integer times anything: the integer exactly, then a plain
                        // product, so integer results stay exact.
                        _ if l.integer => {
                            let plain = self.sess.shr_exact(&l.value, FRAC_BITS)?;
                            self.sess.mul(&plain, &r.value)?
                        }
                        _ if r.integer => {
                            let plain = self.sess.shr_exact(&r.value, FRAC_BITS)?;
                            self.sess.mul(&l.value, &plain)?
                        }
                        _ => mul_fixed_wide(self.sess, &l.value, &r.value)?,
                    },
                    ArithOp::Div | ArithOp::Rem => {
                        if *op == ArithOp::Rem && !integer {
                            return Err(QueryError::unsupported("% over non-integer aggregates"));
                        }
                        // Integers divide to an integer, truncated toward zero, as in SQL.
                        let f = if integer { 0 } else { FRAC_BITS };
                        let q = self.sess.div_fixed(&l.value, &r.value, f)?;
                        null = self.sess.or_bits(&null, &q.by_zero)?;
                        // A NULL result (a NULL operand, whose encoding is arbitrary, or
                        // a zero divisor) is not an overflow.
                        let real = self.sess.and_bits(&q.overflow, &null.not(me))?;
                        self.overflow.push(real);
                        if *op == ArithOp::Rem {
                            // l − q·r, with the dividend's sign as in SQL: the plain
                            // quotient times the fixed-point divisor is exact.
                            let qr = self.sess.mul(&q.value, &r.value)?;
                            let rem = l.value.sub(&qr)?;
                            self.sess.mux(&null, &ArithShares::zeros(s), &rem)?
                        } else if integer {
                            q.value.mul_public(1 << FRAC_BITS)
                        } else {
                            q.value
                        }
                    }
                };
                Node {
                    value,
                    null,
                    integer,
                }
            }
        })
    }
}

/// An integral numeric literal, for exact multiplication by a public constant.
fn literal_integer(e: &AggExpr) -> Option<i64> {
    match e {
        AggExpr::Integer(i) if i.unsigned_abs() < 1 << 40 => Some(*i),
        AggExpr::Float(v) if v.fract() == 0.0 && v.abs() < 1.0e12 => Some(*v as i64),
        _ => None,
    }
}

/// VAR_POP (or, with `sample`, VAR_SAMP) per group from Σx, Σx² (fixed point) and the
/// public counts n (0 leaves 0; the caller flags NULL).
///
/// Two formulas, chosen per group by a secret bit, so the choice reveals nothing:
/// - exact, `(n·Σx² − (Σx)²) / n²`, when `n·Σx² < 2^62` and `|Σx| < 2^39` (in ring units),
///   where no intermediate can wrap;
/// - otherwise `Σx²/n − (Σx/n)²`, whose terms are bounded by the owners' partial limits
///   (`partial_limit`), at an absolute error of about (|mean| + 1)·2^−15.
///
/// VAR_SAMP = VAR_POP + VAR_POP / (n − 1).
fn variance(
    sess: &mut Session,
    sum: &ArithShares,
    sq: &ArithShares,
    n: &[u64],
    sample: bool,
) -> R<ArithShares> {
    let s = sum.len();
    // In range for the exact formula: Σx² < 2^62 / n and −2^39 ≤ Σx < 2^39.
    let sq_limit: Vec<u64> = n.iter().map(|&c| (1u64 << 62) / c.max(1)).collect();
    let n2: Vec<u64> = n
        .iter()
        .map(|&c| c.checked_mul(c).filter(|&x| x < 1 << 62).unwrap_or(0))
        .collect();
    let me = sess.me();
    let shifted = sum.add_const(me, 1 << 39);
    // Signs of Σx² − limit, Σx + 2^39 − 2^40 and Σx + 2^39, in one batch.
    let signs = sess.msb_many(&[
        &sq.sub(&ArithShares::public(me, &sq_limit))?,
        &shifted.add_const(me, (1u64 << 40).wrapping_neg()),
        &shifted,
    ])?;
    let [sq_ok, sum_ok, negative] = signs.as_slice() else {
        return Err(QueryError::arg("msb_many returned the wrong count"));
    };
    let ok = sess.and_bits(sq_ok, sum_ok)?;
    let ok = sess.and_bits(&ok, &negative.not(me))?;
    // A group too large for n² gets the bounded formula.
    let ok = sess.and_bits(
        &ok,
        &BitShares::public(me, &n2.iter().map(|&x| x > 0).collect::<Vec<_>>()),
    )?;
    let exact_num = sq.mul_public_vec(n)?.sub(&square_fixed_wide(sess, sum)?)?;
    let mut parts = vec![
        ArithShares::zeros(s),
        ArithShares::zeros(s),
        ArithShares::zeros(s),
    ];
    divide_batched(
        sess,
        &mut parts,
        vec![
            (0, exact_num, n2),
            (1, sum.clone(), n.to_vec()),
            (2, sq.clone(), n.to_vec()),
        ],
    )?;
    let bounded = parts[2].sub(&square_fixed_wide(sess, &parts[1])?)?;
    let pop = sess.mux(&ok, &parts[0], &bounded)?;
    if !sample {
        return Ok(pop);
    }
    let n1: Vec<u64> = n.iter().map(|&c| c.saturating_sub(1)).collect();
    let mut extra = vec![ArithShares::zeros(s)];
    divide_batched(sess, &mut extra, vec![(0, pop.clone(), n1)])?;
    Ok(pop.add(&extra[0])?)
}
