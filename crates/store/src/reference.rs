//! The plaintext reference of the tests: PostgreSQL's ordered-set and sample aggregates
//! registered in SQLite (which has none of them), so that consort's answers can be
//! compared with SQLite over the union of the owners' rows.

/// PostgreSQL's ordered-set and sample aggregates for the SQLite reference, which has
/// none of them: `median(x)`, `pct_cont(p, x)`, `pct_disc(p, x)`, `var_samp(x)`,
/// `stddev_samp(x)`, `covar_pop(y, x)`, `covar_samp(y, x)`, `regr_slope(y, x)`,
/// `regr_intercept(y, x)` and `regr_count(y, x)`. NULL inputs are skipped; no value gives
/// NULL (a count 0).
pub fn register_aggregates(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::{Aggregate, Context, FunctionFlags};
    use rusqlite::types::Value as S;

    fn num(v: &S) -> Option<f64> {
        match v {
            S::Integer(i) => Some(*i as f64),
            S::Real(f) => Some(*f),
            _ => None,
        }
    }

    #[derive(Clone, Copy)]
    enum Kind {
        Median,
        Cont,
        Disc,
        VarSamp,
        StddevSamp,
    }
    struct Agg(Kind);
    impl Aggregate<(f64, Vec<S>), S> for Agg {
        fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<(f64, Vec<S>)> {
            Ok((0.5, Vec::new()))
        }
        fn step(&self, ctx: &mut Context<'_>, acc: &mut (f64, Vec<S>)) -> rusqlite::Result<()> {
            let at = if matches!(self.0, Kind::Cont | Kind::Disc) {
                acc.0 = ctx.get::<f64>(0)?;
                1
            } else {
                0
            };
            let v: S = ctx.get(at)?;
            if v != S::Null {
                acc.1.push(v);
            }
            Ok(())
        }
        fn finalize(&self, _: &mut Context<'_>, acc: Option<(f64, Vec<S>)>) -> rusqlite::Result<S> {
            let (p, mut vs) = acc.unwrap_or((0.5, Vec::new()));
            vs.sort_by(|a, b| {
                num(a)
                    .partial_cmp(&num(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let n = vs.len();
            let xs: Vec<f64> = vs.iter().filter_map(num).collect();
            Ok(match self.0 {
                _ if n == 0 => S::Null,
                Kind::Median | Kind::Cont => {
                    let p = if matches!(self.0, Kind::Median) {
                        0.5
                    } else {
                        p
                    };
                    let r = p * (n - 1) as f64;
                    let lo = r.floor() as usize;
                    let hi = (lo + 1).min(n - 1);
                    S::Real(xs[lo] + (r - lo as f64) * (xs[hi] - xs[lo]))
                }
                Kind::Disc => {
                    let k = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
                    vs[k].clone()
                }
                Kind::VarSamp | Kind::StddevSamp if n < 2 => S::Null,
                Kind::VarSamp | Kind::StddevSamp => {
                    let mean = xs.iter().sum::<f64>() / n as f64;
                    let var =
                        xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
                    S::Real(if matches!(self.0, Kind::VarSamp) {
                        var
                    } else {
                        var.sqrt()
                    })
                }
            })
        }
    }
    #[derive(Clone, Copy)]
    enum PairKind {
        CovarPop,
        CovarSamp,
        Slope,
        Intercept,
        Count,
        Corr,
    }
    /// Two-argument statistics over the rows where both y and x are not NULL.
    struct PairAgg(PairKind);
    impl Aggregate<Vec<(f64, f64)>, S> for PairAgg {
        fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Vec<(f64, f64)>> {
            Ok(Vec::new())
        }
        fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<(f64, f64)>) -> rusqlite::Result<()> {
            let (y, x): (S, S) = (ctx.get(0)?, ctx.get(1)?);
            if let (Some(y), Some(x)) = (num(&y), num(&x)) {
                acc.push((y, x));
            }
            Ok(())
        }
        fn finalize(
            &self,
            _: &mut Context<'_>,
            acc: Option<Vec<(f64, f64)>>,
        ) -> rusqlite::Result<S> {
            let pairs = acc.unwrap_or_default();
            let n = pairs.len() as f64;
            if let PairKind::Count = self.0 {
                return Ok(S::Integer(pairs.len() as i64));
            }
            if pairs.is_empty() {
                return Ok(S::Null);
            }
            let my = pairs.iter().map(|p| p.0).sum::<f64>() / n;
            let mx = pairs.iter().map(|p| p.1).sum::<f64>() / n;
            let sxy = pairs.iter().map(|p| (p.0 - my) * (p.1 - mx)).sum::<f64>();
            let sxx = pairs.iter().map(|p| (p.1 - mx) * (p.1 - mx)).sum::<f64>();
            let syy = pairs.iter().map(|p| (p.0 - my) * (p.0 - my)).sum::<f64>();
            Ok(match self.0 {
                PairKind::CovarPop => S::Real(sxy / n),
                PairKind::CovarSamp if pairs.len() < 2 => S::Null,
                PairKind::CovarSamp => S::Real(sxy / (n - 1.0)),
                _ if sxx == 0.0 => S::Null,
                PairKind::Corr if syy == 0.0 => S::Null,
                PairKind::Corr => S::Real(sxy / (sxx * syy).sqrt()),
                PairKind::Slope => S::Real(sxy / sxx),
                PairKind::Intercept => S::Real(my - sxy / sxx * mx),
                PairKind::Count => S::Null,
            })
        }
    }
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for (name, kind) in [
        ("covar_pop", PairKind::CovarPop),
        ("covar_samp", PairKind::CovarSamp),
        ("regr_slope", PairKind::Slope),
        ("regr_intercept", PairKind::Intercept),
        ("regr_count", PairKind::Count),
        ("corr", PairKind::Corr),
    ] {
        db.create_aggregate_function(name, 2, flags, PairAgg(kind))?;
    }
    for (name, args, kind) in [
        ("median", 1, Kind::Median),
        ("pct_cont", 2, Kind::Cont),
        ("pct_disc", 2, Kind::Disc),
        ("var_samp", 1, Kind::VarSamp),
        ("stddev_samp", 1, Kind::StddevSamp),
    ] {
        db.create_aggregate_function(name, args, flags, Agg(kind))?;
    }
    Ok(())
}

/// Rewrites `PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)` (and `_DISC`) into the
/// reference's `pct_cont(p, x)` (`pct_disc`); `x` holds no parenthesis.
pub fn percentiles(sql: &str) -> String {
    let mut out = sql.to_string();
    for (from, to) in [
        ("PERCENTILE_CONT(", "pct_cont("),
        ("PERCENTILE_DISC(", "pct_disc("),
    ] {
        while let Some(start) = out.find(from) {
            let rest = &out[start + from.len()..];
            let Some(p_end) = rest.find(')') else {
                return out;
            };
            let p = rest[..p_end].to_string();
            let marker = " WITHIN GROUP (ORDER BY ";
            let after = &rest[p_end + 1..];
            let Some(x_end) = after.strip_prefix(marker).and_then(|a| a.find(')')) else {
                return out;
            };
            let x = after[marker.len()..marker.len() + x_end].to_string();
            let tail = after[marker.len() + x_end + 1..].to_string();
            out = format!("{}{to}{p}, {x}){tail}", &out[..start]);
        }
    }
    out
}
