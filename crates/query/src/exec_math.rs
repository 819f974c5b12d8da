//! Arithmetic helpers of the aggregate protocol: batched public division, the wide
//! fixed-point square, and comparison of a shared integer with a real threshold.

use std::collections::BTreeMap;

use consort_model::local_query::CmpOp;
use consort_mpc::{ArithShares, BitShares, Session};

use crate::error::QueryError;
use crate::plan::FRAC_BITS;

type R<T> = Result<T, QueryError>;

/// Divides each numerator element by its public divisor (one `div_public` per distinct
/// divisor); a divisor 0 (no non-NULL value: the result is NULL) leaves 0.
pub(crate) fn divide_batched(
    sess: &mut Session,
    values: &mut [ArithShares],
    parts: Vec<(usize, ArithShares, Vec<u64>)>,
) -> R<()> {
    let mut by_div: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
    for (pi, (_, num, divs)) in parts.iter().enumerate() {
        if divs.len() != num.len() {
            return Err(QueryError::arg("divisor count mismatch"));
        }
        for (i, &d) in divs.iter().enumerate() {
            if d > 0 {
                by_div.entry(d).or_default().push((pi, i));
            }
        }
    }
    for (d, items) in by_div {
        let mut x = ArithShares::zeros(items.len());
        for (e, &(pi, i)) in items.iter().enumerate() {
            x.a[e] = parts[pi].1.a[i];
            x.b[e] = parts[pi].1.b[i];
        }
        let y = sess.div_public(&x, d)?;
        for (e, &(pi, i)) in items.iter().enumerate() {
            let slot = parts[pi].0;
            values[slot].a[i] = y.a[e];
            values[slot].b[i] = y.b[e];
        }
    }
    Ok(())
}

/// d²/2^f without the 2^(63−2f) product limit (as `consort_mpc`'s variance): split
/// d = hi·2^h + lo, h = ⌈f/2⌉, and truncate only the small cross terms.
pub(crate) fn square_fixed_wide(sess: &mut Session, d: &ArithShares) -> R<ArithShares> {
    let f = FRAC_BITS;
    let h = f.div_ceil(2);
    let hi = sess.trunc(d, h)?;
    let lo = d.sub(&hi.mul_public(1u64 << h))?;
    let p = sess.mul_many(&[(&hi, &hi), (&hi, &lo), (&lo, &lo)])?;
    let small = p[1].mul_public(1u64 << (h + 1)).add(&p[2])?;
    let small = sess.trunc(&small, f)?;
    Ok(p[0].mul_public(1u64 << (2 * h - f)).add(&small)?)
}

/// [x op t] for integer ring values x and a real threshold t (in x's units).
pub(crate) fn compare(sess: &mut Session, x: &ArithShares, op: CmpOp, t: f64) -> R<BitShares> {
    let me = sess.me();
    let lim = (1u64 << 62) as f64;
    let ceil = t.ceil().clamp(-lim, lim) as i64;
    let floor1 = (t.floor().clamp(-lim, lim) as i64).saturating_add(1);
    Ok(match op {
        CmpOp::Lt => sess.lt_public(x, ceil as u64)?,
        CmpOp::LtEq => sess.lt_public(x, floor1 as u64)?,
        CmpOp::Gt => sess.lt_public(x, floor1 as u64)?.not(me),
        CmpOp::GtEq => sess.lt_public(x, ceil as u64)?.not(me),
        CmpOp::Eq | CmpOp::NotEq => {
            let eq = if t.fract() == 0.0 && t.abs() < lim {
                sess.eq_zero(&x.add_const(me, (t as i64).wrapping_neg() as u64))?
            } else {
                BitShares::public(me, &vec![false; x.len()])
            };
            if op == CmpOp::Eq {
                eq
            } else {
                eq.not(me)
            }
        }
    })
}

/// a·b/2^f for fixed-point a and b (|a|, |b| < 2^61), within about 6 ulp: both are split
/// as hi·2^h + lo (h = f/2, lo < 2^(h+1)) so that no partial product is larger than the
/// result or than 2·|a|, 2·|b|; the lo·lo term (below 4 ulp) is dropped.
pub(crate) fn mul_fixed_wide(
    sess: &mut Session,
    a: &ArithShares,
    b: &ArithShares,
) -> R<ArithShares> {
    let f = FRAC_BITS;
    let h = f / 2;
    let n = a.len();
    let hi = sess.trunc(&ArithShares::concat(&[a, b]), h)?;
    let (ah, bh) = (hi.slice(0..n)?, hi.slice(n..2 * n)?);
    let al = a.sub(&ah.mul_public(1u64 << h))?;
    let bl = b.sub(&bh.mul_public(1u64 << h))?;
    let p = sess.mul_many(&[(&ah, &bh), (&ah, &bl), (&al, &bh)])?;
    // a·b/2^f = ah·bh·2^(2h−f) + (ah·bl + al·bh)/2^(f−h) + al·bl/2^f.
    let cross = sess.trunc(&p[1].add(&p[2])?, f - h)?;
    Ok(p[0].mul_public(1u64 << (2 * h - f)).add(&cross)?)
}
