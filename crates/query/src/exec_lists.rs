//! Aggregates over value lists: `COUNT(DISTINCT x)`, `SUM(DISTINCT x)`, `MEDIAN(x)` and
//! `PERCENTILE_CONT/DISC(p)` (docs/MPC.md, "Value lists").
//!
//! 1. Every owner runs [`Plan::value_list_select`] for each list and encodes each row as
//!    a secret group label (64 bits of a hash of the group key; grouped queries only) and
//!    a value: integers as they are, floats in fixed point, dates in days, timestamps in
//!    microseconds, booleans as 0/1 and text by a 64-bit hash (COUNT(DISTINCT) only). A
//!    DISTINCT list drops repeated (group, value) pairs first. The owner tells the
//!    compute parties how many rows it sends and whether any value lies outside ±2^40,
//!    then secret-shares them.
//! 2. The compute parties shuffle every owner's rows together, reveal the labels and
//!    sort each group's values in MPC ([`Session::sort_grouped`]).
//! 3. DISTINCT marks each sorted value that differs from its predecessor in the run (one
//!    batched equality test) and sums the marks (or the marked values). Percentiles take
//!    the values at public ranks of each run (its length is public) and interpolate with
//!    public weights.
//!
//! What the compute parties learn: each owner's row count per list and whether it holds
//! a value beyond ±2^40, how many rows each group has over all owners together (not per
//! owner), and nothing else; the requester gets only the result table.

use std::collections::{BTreeMap, HashMap};

use consort_crypto::encoding::{Reader, Writer};
use consort_crypto::hash_domain;
use consort_model::{ColumnType, Row, Value};
use consort_mpc::{encode_fixed, provide_input, ArithShares, BitShares, Session, SortOptions};
use rand_core::{CryptoRng, RngCore};

use crate::canon::put_row;
use crate::error::QueryError;
use crate::exec::{Ctx, Net};
use crate::plan::{AggFunc, ValueList, FRAC_BITS};

type R<T> = Result<T, QueryError>;

/// Values inside ±2^(NARROW_BITS − 1) sort with one narrow comparison per pair.
const NARROW_BITS: u32 = 41;

/// The most rows a `SUM(DISTINCT)` adds: with values below 2^40 the sum stays below
/// 2^62, inside the ring's signed range.
const MAX_SUM_ROWS: usize = 1 << 22;

/// The most rows one owner may announce for one list (about 1 GiB of shares), so a
/// hostile header cannot make the compute parties allocate without bound.
const MAX_LIST_ROWS: usize = 1 << 25;

/// One owner's encoded list.
pub(crate) struct EncodedList {
    /// Group labels then values (values only for an ungrouped query).
    pub shares: Vec<u64>,
    pub rows: usize,
    /// Some value lies outside ±2^40 (or the values are text hashes).
    pub wide: bool,
}

/// Per aggregate of the plan computed from a list: its value per union group and the
/// public number of list rows per group (0: the aggregate is NULL, or 0 for a count).
pub(crate) struct ListAggregate {
    pub values: ArithShares,
    pub counts: Vec<u64>,
}

/// The secret label of a group key: 64 bits of a domain-separated hash.
pub(crate) fn label_of(key: &[Value]) -> u64 {
    let mut w = Writer::new();
    put_row(&mut w, key);
    let h = hash_domain("consort/group-label", &[&w.into_bytes()]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_le_bytes(b)
}

fn encode_value(list: &ValueList, v: &Value) -> R<u64> {
    let range = |what: String| QueryError::Range(format!("{}: {what}", list.column));
    Ok(match v {
        Value::Integer(i) => *i as u64,
        Value::Float(f) => encode_fixed(*f, FRAC_BITS)
            .map_err(|_| range(format!("{f} exceeds the fixed-point range")))?,
        Value::Boolean(b) => u64::from(*b),
        Value::Date(d) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            d.signed_duration_since(epoch).num_days() as u64
        }
        Value::Timestamp(t) => t.timestamp_micros() as u64,
        Value::Text(s) => {
            let h = hash_domain("consort/distinct-text", &[s.as_bytes()]);
            let mut b = [0u8; 8];
            b.copy_from_slice(&h.0[..8]);
            u64::from_le_bytes(b)
        }
        Value::Null => return Err(QueryError::arg("a NULL in a value list")),
    })
}

fn narrow(v: u64) -> bool {
    let half = 1i64 << (NARROW_BITS - 1);
    (-half..half).contains(&(v as i64))
}

/// Encodes an owner's rows of one list (`nk` group values then the value per row).
pub(crate) fn encode_list(list: &ValueList, nk: usize, rows: &[Row]) -> R<EncodedList> {
    let mut pairs: Vec<(u64, u64)> = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(key), Some(v)) = (r.get(..nk), r.get(nk)) else {
            return Err(QueryError::arg(format!(
                "value-list row of {} values, expected {}",
                r.len(),
                nk + 1
            )));
        };
        let label = if nk == 0 { 0 } else { label_of(key) };
        pairs.push((label, encode_value(list, v)?));
    }
    if list.distinct {
        pairs.sort_unstable();
        pairs.dedup();
    }
    let wide = list.column_type == ColumnType::Text || pairs.iter().any(|&(_, v)| !narrow(v));
    let mut shares = Vec::with_capacity(pairs.len() * 2);
    if nk > 0 {
        shares.extend(pairs.iter().map(|p| p.0));
    }
    shares.extend(pairs.iter().map(|p| p.1));
    Ok(EncodedList {
        rows: pairs.len(),
        shares,
        wide,
    })
}

fn header(l: &EncodedList) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(l.rows as u64).bool(l.wide);
    w.into_bytes()
}

/// An owner's list header: its row count (at most [`MAX_LIST_ROWS`]) and its wide flag.
fn parse_header(m: &[u8]) -> Result<(usize, bool), String> {
    let mut r = Reader::new(m);
    let (rows, wide) = (|| Ok::<_, consort_crypto::DecodeError>((r.u64()?, r.bool()?)))()
        .map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    let rows = usize::try_from(rows)
        .ok()
        .filter(|&n| n <= MAX_LIST_ROWS)
        .ok_or_else(|| format!("a value list of {rows} rows (at most {MAX_LIST_ROWS})"))?;
    Ok((rows, wide))
}

/// A non-compute owner's part: each list's header to the three compute parties, then
/// its shares.
pub(crate) fn send_lists(
    net: &Net,
    lists: &[EncodedList],
    rng: &mut (impl RngCore + CryptoRng),
) -> R<()> {
    for l in lists {
        for p in 0..3 {
            net.send(p, header(l))?;
        }
        net.with(|t| provide_input(t, &l.shares, rng))?;
    }
    Ok(())
}

/// The compute parties' part: collects every owner's lists, sorts them within groups and
/// computes the aggregates of the plan that use them, by aggregate index.
pub(crate) fn list_aggregates(
    net: &Net,
    cx: &Ctx<'_>,
    sess: &mut Session,
    mine: Option<&[EncodedList]>,
    union: &[Row],
) -> R<BTreeMap<usize, ListAggregate>> {
    let lists = cx.plan.value_lists();
    let mut out = BTreeMap::new();
    if lists.is_empty() {
        return Ok(out);
    }
    let grouped = union.first().is_some_and(|k| !k.is_empty());
    let mut label_to_group: HashMap<u64, usize> = HashMap::with_capacity(union.len());
    for (u, key) in union.iter().enumerate() {
        let label = if grouped { label_of(key) } else { 0 };
        if label_to_group.insert(label, u).is_some() {
            return Err(QueryError::arg(
                "two groups share a 64-bit label; run the query again with other groups",
            ));
        }
    }
    for (li, list) in lists.iter().enumerate() {
        let mut labels = Vec::new();
        let mut values = Vec::new();
        let mut wide = list.column_type == ColumnType::Text;
        for &o in &cx.owners {
            let (rows, owner_wide, mine_shares) = if o == cx.me {
                let l = mine
                    .and_then(|m| m.get(li))
                    .ok_or_else(|| QueryError::arg("owner without its value lists"))?;
                for p in (0..3).filter(|&p| p != cx.me) {
                    net.send(p, header(l))?;
                }
                (l.rows, l.wide, Some(l.shares.as_slice()))
            } else {
                let (rows, w) = parse_header(&net.recv(o)?).map_err(|e| net.malformed(o, e))?;
                (rows, w, None)
            };
            wide |= owner_wide;
            let n = if grouped { 2 * rows } else { rows };
            let sh = if o < 3 {
                sess.input(o, mine_shares, n)?
            } else {
                sess.input_external(o, n)?
            };
            if grouped {
                labels.push(sh.slice(0..rows)?);
                values.push(sh.slice(rows..2 * rows)?);
            } else {
                values.push(sh);
            }
        }
        let values = ArithShares::concat(&values.iter().collect::<Vec<_>>());
        let n = values.len();
        let labels = if grouped {
            ArithShares::concat(&labels.iter().collect::<Vec<_>>())
        } else {
            ArithShares::public(cx.me, &vec![0; n])
        };
        let opts = SortOptions {
            key_bits: (!wide).then_some(NARROW_BITS),
            descending: false,
        };
        // DISTINCT needs every run in order; percentiles only the values at their ranks.
        let sorted = if list.distinct {
            sess.sort_grouped(&labels, &values, &[], opts)?
        } else {
            let wanted: Vec<(bool, f64)> = cx
                .plan
                .aggregates
                .iter()
                .filter(|a| a.value_list().as_ref() == Some(list))
                .map(|a| (a.func == AggFunc::PercentileCont, fraction_of(a)))
                .collect();
            let ranks = move |n: usize| -> Vec<usize> {
                wanted
                    .iter()
                    .flat_map(|&(cont, p)| {
                        let (lo, hi, _) = rank_of(p, n, cont);
                        [lo, hi]
                    })
                    .collect()
            };
            sess.select_grouped(&labels, &values, opts, &ranks)?
        };
        // Runs of equal labels, as union group indices.
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        let mut lo = 0;
        for i in 1..=n {
            if i == n || sorted.labels[i] != sorted.labels[lo] {
                let u = *label_to_group.get(&sorted.labels[lo]).ok_or_else(|| {
                    QueryError::arg("a value list holds a group that no owner reported")
                })?;
                runs.push((u, lo, i));
                lo = i;
            }
        }
        let mut counts = vec![0u64; union.len()];
        for &(u, lo, hi) in &runs {
            counts[u] = (hi - lo) as u64;
        }
        for (ai, a) in cx.plan.aggregates.iter().enumerate() {
            if a.value_list().as_ref() != Some(list) {
                continue;
            }
            let what = format!("{}({})", a.func.sql_name(), list.column);
            let values = match a.func {
                AggFunc::CountDistinct | AggFunc::SumDistinct => {
                    let sum = a.func == AggFunc::SumDistinct;
                    if sum && (wide || n > MAX_SUM_ROWS) {
                        return Err(QueryError::Range(format!(
                            "{what}: values must lie within ±2^40 (±2^24 for floats) and \
                             number at most 2^22"
                        )));
                    }
                    distinct(sess, &sorted.keys, &runs, union.len(), sum)?
                }
                AggFunc::PercentileCont | AggFunc::PercentileDisc | AggFunc::Min | AggFunc::Max => {
                    let p = fraction_of(a);
                    let cont = a.func == AggFunc::PercentileCont;
                    if cont && wide {
                        return Err(QueryError::Range(format!(
                            "{what}: values must lie within ±2^40 (±2^24 for floats)"
                        )));
                    }
                    let float = list.column_type == ColumnType::Float;
                    percentile(sess, &sorted.keys, &runs, union.len(), p, cont, float)?
                }
                _ => continue,
            };
            out.insert(
                ai,
                ListAggregate {
                    values,
                    counts: counts.clone(),
                },
            );
        }
    }
    Ok(out)
}

/// Per group: the number of distinct values, or (with `sum`) their sum.
fn distinct(
    sess: &mut Session,
    v: &ArithShares,
    runs: &[(usize, usize, usize)],
    groups: usize,
    sum: bool,
) -> R<ArithShares> {
    let me = sess.me();
    let (mut cur, mut prev) = (Vec::new(), Vec::new());
    for &(_, lo, hi) in runs {
        for i in lo + 1..hi {
            cur.push(i);
            prev.push(i - 1);
        }
    }
    let differs = if cur.is_empty() {
        BitShares::zeros(0)
    } else {
        sess.eq(&v.gather(&cur)?, &v.gather(&prev)?)?.not(me)
    };
    let differs = sess.bit2a(&differs)?;
    // Marks: the first value of each run is new; others where they differ.
    let mut marks = ArithShares::public(me, &vec![1; v.len()]);
    for (e, &i) in cur.iter().enumerate() {
        marks.a[i] = differs.a[e];
        marks.b[i] = differs.b[e];
    }
    let marks = if sum { sess.mul(&marks, v)? } else { marks };
    let mut out = ArithShares::zeros(groups);
    for &(u, lo, hi) in runs {
        let s = marks.slice(lo..hi)?.sum();
        out.a[u] = s.a[0];
        out.b[u] = s.b[0];
    }
    Ok(out)
}

/// The fraction a list aggregate reads: p of a percentile, 0 for MIN, 1 for MAX.
fn fraction_of(a: &crate::plan::AggSpec) -> f64 {
    match a.func {
        AggFunc::Min => 0.0,
        AggFunc::Max => 1.0,
        _ => a.fraction.map(|f| f.get()).unwrap_or(0.5),
    }
}

/// The ranks (0-based, in a run of `n` ≥ 1 sorted values) a percentile reads, and for
/// PERCENTILE_CONT the weight of the upper one in fixed point. PostgreSQL's rules: CONT
/// interpolates at r = p·(n − 1) between ⌊r⌋ and ⌈r⌉; DISC takes the first value whose
/// cumulative share reaches p.
fn rank_of(p: f64, n: usize, cont: bool) -> (usize, usize, u64) {
    let one = 1u64 << FRAC_BITS;
    let n = n.max(1);
    if cont {
        let r = p * (n - 1) as f64;
        let below = (r.floor() as usize).min(n - 1);
        let above = (below + 1).min(n - 1);
        let c = (((r - below as f64) * one as f64).round() as u64).min(one);
        (below, above, c)
    } else {
        let k = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        (k, k, 0)
    }
}

/// Per group: PERCENTILE_CONT (fixed point) or PERCENTILE_DISC (the value's own
/// encoding) of fraction `p`.
fn percentile(
    sess: &mut Session,
    v: &ArithShares,
    runs: &[(usize, usize, usize)],
    groups: usize,
    p: f64,
    cont: bool,
    float: bool,
) -> R<ArithShares> {
    let one = 1u64 << FRAC_BITS;
    let (mut lo_idx, mut hi_idx, mut w_lo, mut w_hi, mut slot) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &(u, lo, hi) in runs {
        let n = hi - lo;
        if n == 0 {
            continue;
        }
        let (below, above, c) = rank_of(p, n, cont);
        lo_idx.push(lo + below);
        if cont {
            hi_idx.push(lo + above);
            w_lo.push(one - c);
            w_hi.push(c);
        }
        slot.push(u);
    }
    let picked = if cont {
        let mixed = v
            .gather(&lo_idx)?
            .mul_public_vec(&w_lo)?
            .add(&v.gather(&hi_idx)?.mul_public_vec(&w_hi)?)?;
        // An integer times a weight of 2^f is fixed point already; a fixed-point float
        // times one must drop f bits.
        if float {
            sess.trunc(&mixed, FRAC_BITS)?
        } else {
            mixed
        }
    } else {
        v.gather(&lo_idx)?
    };
    let mut out = ArithShares::zeros(groups);
    for (e, &u) in slot.iter().enumerate() {
        out.a[u] = picked.a[e];
        out.b[u] = picked.b[e];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ty: ColumnType, distinct: bool) -> ValueList {
        ValueList {
            column: "x".into(),
            column_type: ty,
            distinct,
        }
    }

    #[test]
    fn distinct_lists_drop_repeats_per_group_and_flag_wide_values() {
        let rows = vec![
            vec![Value::Text("a".into()), Value::Integer(1)],
            vec![Value::Text("a".into()), Value::Integer(1)],
            vec![Value::Text("b".into()), Value::Integer(1)],
        ];
        let e = encode_list(&list(ColumnType::Integer, true), 1, &rows).unwrap();
        assert_eq!(e.rows, 2);
        assert_eq!(e.shares.len(), 4);
        assert!(!e.wide);
        let e = encode_list(&list(ColumnType::Integer, false), 1, &rows).unwrap();
        assert_eq!(e.rows, 3);
        let big = vec![vec![Value::Integer(1 << 40)]];
        assert!(
            encode_list(&list(ColumnType::Integer, false), 0, &big)
                .unwrap()
                .wide
        );
        let small = vec![vec![Value::Integer(-(1 << 40))]];
        assert!(
            !encode_list(&list(ColumnType::Integer, false), 0, &small)
                .unwrap()
                .wide
        );
        let text = vec![vec![Value::Text("p1".into())]];
        assert!(
            encode_list(&list(ColumnType::Text, true), 0, &text)
                .unwrap()
                .wide
        );
        let short = vec![vec![]];
        assert!(encode_list(&list(ColumnType::Integer, true), 0, &short).is_err());
    }

    #[test]
    fn hostile_list_headers_are_refused_by_name() {
        let e = encode_list(
            &list(ColumnType::Integer, false),
            0,
            &[vec![Value::Integer(3)]],
        )
        .unwrap();
        assert_eq!(parse_header(&header(&e)), Ok((1, false)));
        let mut w = Writer::new();
        w.u64(u64::MAX).bool(true);
        let huge = parse_header(&w.into_bytes()).unwrap_err();
        assert!(huge.contains("value list of"), "{huge}");
        assert!(parse_header(&[1, 2, 3]).is_err(), "short");
        let mut long = header(&e);
        long.push(0);
        assert!(parse_header(&long).is_err(), "trailing bytes");
    }

    #[test]
    fn labels_differ_per_key_and_find_their_group() {
        let a = vec![Value::Text("a".into())];
        let b = vec![Value::Text("b".into())];
        assert_ne!(label_of(&a), label_of(&b));
        assert_eq!(label_of(&a), label_of(&a.clone()));
    }
}
