//! The reference semantics of the second set of scalar functions (`ROUND`, `POWER`,
//! `GREATEST`/`LEAST`, text functions, date truncation and arithmetic, further casts),
//! used by the reference evaluator (`scalar_eval`) and, through consort's SQLite
//! functions (`sqlite_functions`), by SQLite itself. PostgreSQL and MySQL compute the same
//! in their own SQL (`scalar_sql_funcs`), which the conformance suite checks.

use chrono::{Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use consort_model::scalar::{IntervalUnit, TrimSide, TruncUnit};
use consort_model::value::{compare_values, Value};

type Eval = Result<Value, String>;

/// 2^52: every float at least this large is an integer.
pub(crate) const TWO_52: f64 = 4_503_599_627_370_496.0;

/// 10^n as the nearest float (the literal `1e<n>`, parsed exactly as the databases do).
pub(crate) fn pow10(n: u32) -> f64 {
    format!("1e{n}").parse().unwrap_or(f64::INFINITY)
}

/// A non-negative float below 2^52 rounded to an integral float, ties away from zero.
/// `y - floor(y)` is exact there, so this never rounds twice.
fn round_unit(y: f64) -> f64 {
    let f = y.floor();
    if y - f >= 0.5 {
        f + 1.0
    } else {
        f
    }
}

/// `ROUND(x, digits)` of a float: `|x|` is scaled by 10^digits (multiplied, or divided
/// for negative digits), rounded ties away from zero, scaled back, and given `x`'s sign;
/// when `|x| >= 2^52 / 10^digits` (digits >= 0) it has no such digits and is returned as
/// it is; when `|x| < 10^-digits / 2` (digits < 0) the result is 0. A result beyond a
/// float's range is an error.
pub(crate) fn round_float(x: f64, digits: i32) -> Result<f64, String> {
    let a = x.abs();
    let v = if digits >= 0 {
        let p = pow10(digits.unsigned_abs());
        if a >= TWO_52 / p {
            return Ok(x);
        }
        round_unit(a * p) / p
    } else {
        let q = pow10(digits.unsigned_abs());
        // Below half a unit the result is 0, decided exactly (dividing a tiny value would
        // underflow, which PostgreSQL reports as an error).
        if a < q * 0.5 {
            0.0
        } else {
            round_unit(a / q) * q
        }
    };
    if !v.is_finite() {
        return Err("ROUND overflows a float".into());
    }
    let v = if x < 0.0 { -v } else { v };
    Ok(if v == 0.0 { 0.0 } else { v })
}

/// `ROUND(i, digits)` of an integer: itself for digits >= 0, else rounded to a multiple
/// of 10^-digits, ties away from zero; outside 64 bits an error.
pub(crate) fn round_integer(i: i64, digits: i32) -> Result<i64, String> {
    if digits >= 0 {
        return Ok(i);
    }
    let q = 10i64
        .checked_pow(digits.unsigned_abs())
        .ok_or("ROUND digits out of range")?;
    let (t, m) = (i / q, i % q);
    let t = if m.unsigned_abs() * 2 >= q.unsigned_abs() {
        t + i.signum()
    } else {
        t
    };
    t.checked_mul(q).ok_or_else(|| "integer overflow".into())
}

pub(crate) fn round(v: &Value, digits: i32) -> Eval {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Integer(i) => Value::Integer(round_integer(*i, digits)?),
        Value::Float(f) => Value::Float(round_float(*f, digits)?),
        v => return Err(format!("ROUND of {v:?}")),
    })
}

/// `POWER(x, y)`: NULL for zero to a negative power and for a negative number to a
/// non-integral power; an infinite result is an error; a result too small for a float
/// is 0.
pub(crate) fn power(x: &Value, y: &Value) -> Eval {
    let (x, y) = match (x, y) {
        (Value::Null, _) | (_, Value::Null) => return Ok(Value::Null),
        (Value::Float(x), Value::Float(y)) => (*x, *y),
        (x, y) => return Err(format!("POWER of {x:?} and {y:?}")),
    };
    if (x == 0.0 && y < 0.0) || (x < 0.0 && y != y.floor()) {
        return Ok(Value::Null);
    }
    let r = x.powf(y);
    if !r.is_finite() {
        return Err("POWER overflows a float".into());
    }
    Ok(Value::Float(if r == 0.0 { 0.0 } else { r }))
}

/// `GREATEST`/`LEAST`: NULLs ignored; numbers compare as numbers, text by code point.
pub(crate) fn extreme(greatest: bool, args: &[Value]) -> Eval {
    let mut best: Option<&Value> = None;
    for v in args.iter().filter(|v| !v.is_null()) {
        best = Some(match best {
            None => v,
            Some(b) => {
                let o = match (b, v) {
                    (Value::Integer(i), Value::Float(f)) => (*i as f64).total_cmp(f),
                    (Value::Float(f), Value::Integer(i)) => f.total_cmp(&(*i as f64)),
                    (Value::Float(x), Value::Float(y)) if *x == 0.0 && *y == 0.0 => {
                        std::cmp::Ordering::Equal
                    }
                    _ => compare_values(v, b).reverse(),
                };
                // `o` is b against v: keep b unless v is strictly better.
                let better = if greatest { o.is_lt() } else { o.is_gt() };
                if better {
                    v
                } else {
                    b
                }
            }
        });
    }
    Ok(match best {
        Some(Value::Float(f)) if *f == 0.0 => Value::Float(0.0),
        Some(v) => v.clone(),
        None => Value::Null,
    })
}

fn text<'v>(v: &'v Value, what: &str) -> Result<Option<&'v str>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Text(t) => Ok(Some(t.as_str())),
        v => Err(format!("{what} of {v:?}")),
    }
}

/// ASCII-only `UPPER`/`LOWER`.
pub(crate) fn case_map(upper: bool, v: &Value) -> Eval {
    Ok(match text(v, "UPPER/LOWER")? {
        None => Value::Null,
        Some(t) if upper => Value::Text(t.to_ascii_uppercase().into()),
        Some(t) => Value::Text(t.to_ascii_lowercase().into()),
    })
}

/// The first position (1-based, at least 1) and the number of characters a
/// `SUBSTR(x, start[, len])` takes, each within 32 bits (PostgreSQL's bound; no text
/// is that long).
pub(crate) fn substr_bounds(start: i64, len: Option<i64>) -> (i64, Option<i64>) {
    const MAX: i64 = i32::MAX as i64;
    let first = start.clamp(1, MAX);
    let count = len.map(|l| (start.saturating_add(l).saturating_sub(first)).clamp(0, MAX));
    (first, count)
}

pub(crate) fn substr(v: &Value, start: i64, len: Option<i64>) -> Eval {
    let Some(t) = text(v, "SUBSTR")? else {
        return Ok(Value::Null);
    };
    let (first, count) = substr_bounds(start, len);
    let skip = usize::try_from(first - 1).unwrap_or(usize::MAX);
    let take = count.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
    Ok(Value::Text(
        t.chars().skip(skip).take(take).collect::<String>().into(),
    ))
}

pub(crate) fn trim(v: &Value, side: TrimSide, ch: char) -> Eval {
    Ok(match text(v, "TRIM")? {
        None => Value::Null,
        Some(t) => Value::Text(
            match side {
                TrimSide::Both => t.trim_matches(ch),
                TrimSide::Leading => t.trim_start_matches(ch),
                TrimSide::Trailing => t.trim_end_matches(ch),
            }
            .into(),
        ),
    })
}

pub(crate) fn replace(v: &Value, from: &Value, to: &Value) -> Eval {
    let (Some(t), Some(f), Some(r)) = (
        text(v, "REPLACE")?,
        text(from, "REPLACE")?,
        text(to, "REPLACE")?,
    ) else {
        return Ok(Value::Null);
    };
    if f.is_empty() {
        return Ok(Value::Text(t.into()));
    }
    Ok(Value::Text(t.replace(f, r).into()))
}

/// The first day of the unit holding `d`.
pub(crate) fn trunc_date(unit: TruncUnit, d: NaiveDate) -> Result<NaiveDate, String> {
    let first = |m: u32| NaiveDate::from_ymd_opt(d.year(), m, 1);
    match unit {
        TruncUnit::Year => first(1),
        TruncUnit::Quarter => first(d.month0() / 3 * 3 + 1),
        TruncUnit::Month => first(d.month()),
        TruncUnit::Week => d.checked_sub_signed(Duration::days(i64::from(
            d.weekday().num_days_from_monday(),
        ))),
        TruncUnit::Day => Some(d),
    }
    .ok_or_else(|| format!("DATE_TRUNC of {d} is out of range"))
}

pub(crate) fn date_trunc(unit: TruncUnit, v: &Value) -> Eval {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Date(d) => Value::Date(trunc_date(unit, *d)?),
        Value::Timestamp(t) => {
            let d = trunc_date(unit, t.date_naive())?;
            Value::Timestamp(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
        }
        v => return Err(format!("DATE_TRUNC of {v:?}")),
    })
}

/// The dates interval arithmetic may produce.
pub(crate) fn date_range() -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN),
        NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX),
    )
}

/// `d + amount unit`, or `None` outside 0001-01-01 to 9999-12-31.
pub(crate) fn add_interval(d: NaiveDate, unit: IntervalUnit, amount: i64) -> Option<NaiveDate> {
    let r = match unit {
        IntervalUnit::Day => d.checked_add_signed(Duration::try_days(amount)?),
        IntervalUnit::Month => {
            let m = Months::new(u32::try_from(amount.unsigned_abs()).ok()?);
            if amount >= 0 {
                d.checked_add_months(m)
            } else {
                d.checked_sub_months(m)
            }
        }
    }?;
    let (lo, hi) = date_range();
    (lo..=hi).contains(&r).then_some(r)
}

/// The dates `d` for which `d + amount unit` stays within the range, as `(first, last)`,
/// or `None` if there are none: the SQL backends guard the arithmetic with them.
pub(crate) fn interval_domain(unit: IntervalUnit, amount: i64) -> Option<(NaiveDate, NaiveDate)> {
    let (lo, hi) = date_range();
    match unit {
        IntervalUnit::Day => {
            let first = lo
                .checked_sub_signed(Duration::try_days(amount)?)
                .map_or(lo, |f| f.max(lo));
            let last = hi
                .checked_sub_signed(Duration::try_days(amount)?)
                .map_or(hi, |l| l.min(hi));
            (first <= last).then_some((first, last))
        }
        IntervalUnit::Month => {
            // Month indexes: 0001-01 is 12, 9999-12 is 119_999; the day never changes the
            // month.
            let first = 12i64.saturating_sub(amount).max(12);
            let last = 119_999i64.saturating_sub(amount).min(119_999);
            if first > last {
                return None;
            }
            let month = |k: i64| -> Option<NaiveDate> {
                NaiveDate::from_ymd_opt(
                    i32::try_from(k / 12).ok()?,
                    u32::try_from(k % 12 + 1).ok()?,
                    1,
                )
            };
            let last_day = month(last)?
                .checked_add_months(Months::new(1))
                .and_then(|d| d.pred_opt())
                .unwrap_or(hi);
            Some((month(first)?, last_day))
        }
    }
}

pub(crate) fn interval(v: &Value, unit: IntervalUnit, amount: i64) -> Eval {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Date(d) => add_interval(*d, unit, amount).map_or(Value::Null, Value::Date),
        v => return Err(format!("INTERVAL arithmetic on {v:?}")),
    })
}

pub(crate) fn date_diff(l: &Value, r: &Value) -> Eval {
    Ok(match (l, r) {
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        (Value::Date(a), Value::Date(b)) => Value::Integer(a.signed_duration_since(*b).num_days()),
        (a, b) => return Err(format!("{a:?} - {b:?}")),
    })
}

/// The ISO 8601 week of a date.
pub(crate) fn iso_week(d: NaiveDate) -> i64 {
    i64::from(d.iso_week().week())
}

/// Text to integer: an optional sign and 1 to 19 ASCII digits, within 64 bits; anything
/// else is NULL.
pub(crate) fn text_to_integer(t: &str) -> Value {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Value::Null;
    }
    t.parse::<i64>().map_or(Value::Null, Value::Integer)
}

/// The further casts (`consort_model::scalar::cast_allowed`).
pub(crate) fn cast(v: &Value, to: consort_model::ColumnType) -> Eval {
    use consort_model::ColumnType as T;
    Ok(match (v, to) {
        (Value::Null, _) => Value::Null,
        (Value::Float(f), T::Integer) => {
            let r = round_float(*f, 0)?;
            // -2^63 is refused too, as MySQL refuses it.
            if r <= -9_223_372_036_854_775_808.0 || r >= 9_223_372_036_854_775_808.0 {
                return Err("float out of the integer range".into());
            }
            Value::Integer(r as i64)
        }
        (Value::Text(t), T::Integer) => text_to_integer(t),
        (Value::Boolean(b), T::Integer) => Value::Integer(i64::from(*b)),
        (Value::Integer(i), T::Boolean) => Value::Boolean(*i != 0),
        (Value::Boolean(b), T::Text) => Value::Text(if *b { "true" } else { "false" }.into()),
        (Value::Date(d), T::Text) => Value::Text(d.format("%Y-%m-%d").to_string().into()),
        (Value::Timestamp(t), T::Text) => {
            Value::Text(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string().into())
        }
        (Value::Timestamp(t), T::Date) => Value::Date(t.date_naive()),
        (Value::Date(d), T::Timestamp) => {
            Value::Timestamp(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
        }
        (v, to) => return Err(format!("CAST of {v:?} to {to}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ties_go_away_from_zero_on_the_stored_binary_value() {
        let r = |x: f64, n: i32| round_float(x, n).unwrap();
        assert_eq!(r(2.5, 0), 3.0);
        assert_eq!(r(-2.5, 0), -3.0);
        assert_eq!(r(0.5, 0), 1.0);
        assert_eq!(r(-0.5, 0), -1.0);
        // Not a tie: the largest float below one half.
        assert_eq!(r(0.499_999_999_999_999_94, 0), 0.0);
        // The scaling is a float multiplication: 2.675 * 100 gives 267.5 exactly (a tie),
        // 1.005 * 100 gives 100.49999999999999.
        assert_eq!(r(2.675, 2), 2.68);
        assert_eq!(r(1.005, 2), 1.0);
        assert_eq!(r(1234.5678, -2), 1200.0);
        assert_eq!(r(-1250.0, -2), -1300.0);
        assert_eq!(r(1e300, 15), 1e300);
        assert_eq!(r(-0.3, 0).to_bits(), 0.0f64.to_bits());
        assert_eq!(round_integer(25, -1), Ok(30));
        assert_eq!(round_integer(-25, -1), Ok(-30));
        assert_eq!(round_integer(-24, -1), Ok(-20));
        assert_eq!(round_integer(7, 3), Ok(7));
        assert!(round_integer(i64::MAX, -1).is_err());
        assert_eq!(round_integer(i64::MIN, -18), Ok(-9_000_000_000_000_000_000));
    }

    #[test]
    fn substr_follows_postgresql_positions() {
        let t = Value::Text("hello".into());
        let s = |a, b| substr(&t, a, b).unwrap();
        let text = |x: &str| Value::Text(x.into());
        assert_eq!(s(0, Some(2)), text("h"));
        assert_eq!(s(-1, Some(3)), text("h"));
        assert_eq!(s(2, None), text("ello"));
        assert_eq!(s(-5, None), text("hello"));
        assert_eq!(s(9, Some(1)), text(""));
        assert_eq!(s(i64::MAX, Some(i64::MAX)), text(""));
        assert_eq!(s(i64::MIN, Some(i64::MAX)), text(""));
    }

    #[test]
    fn month_arithmetic_clamps_and_stays_in_range() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            add_interval(d(2024, 1, 31), IntervalUnit::Month, 1),
            Some(d(2024, 2, 29))
        );
        assert_eq!(
            add_interval(d(2024, 2, 29), IntervalUnit::Month, 12),
            Some(d(2025, 2, 28))
        );
        assert_eq!(
            add_interval(d(2024, 3, 31), IntervalUnit::Month, -1),
            Some(d(2024, 2, 29))
        );
        assert_eq!(add_interval(d(9999, 12, 31), IntervalUnit::Day, 1), None);
        assert_eq!(add_interval(d(1, 1, 1), IntervalUnit::Month, -1), None);
        for (unit, amount) in [
            (IntervalUnit::Day, 40),
            (IntervalUnit::Day, -40),
            (IntervalUnit::Month, 13),
            (IntervalUnit::Month, -13),
        ] {
            let (first, last) = interval_domain(unit, amount).unwrap();
            assert!(add_interval(first, unit, amount).is_some());
            assert!(add_interval(last, unit, amount).is_some());
            if let Some(before) = first.pred_opt().filter(|b| b.year() >= 1) {
                assert_eq!(
                    add_interval(before, unit, amount),
                    None,
                    "{unit:?} {amount}"
                );
            }
            if let Some(after) = last.succ_opt().filter(|a| a.year() <= 9999) {
                assert_eq!(add_interval(after, unit, amount), None, "{unit:?} {amount}");
            }
        }
        assert_eq!(interval_domain(IntervalUnit::Month, MAX_MONTHS), None);
        assert_eq!(
            trunc_date(TruncUnit::Week, d(2024, 3, 3)),
            Ok(d(2024, 2, 26))
        );
        assert_eq!(
            trunc_date(TruncUnit::Quarter, d(2024, 8, 31)),
            Ok(d(2024, 7, 1))
        );
        assert_eq!(iso_week(d(2021, 1, 1)), 53);
    }

    const MAX_MONTHS: i64 = consort_model::scalar::MAX_INTERVAL_MONTHS;

    #[test]
    fn text_becomes_an_integer_or_null() {
        assert_eq!(text_to_integer("-0012"), Value::Integer(-12));
        assert_eq!(text_to_integer("+7"), Value::Integer(7));
        assert_eq!(
            text_to_integer("-9223372036854775808"),
            Value::Integer(i64::MIN)
        );
        for bad in [
            "",
            "+",
            " 1",
            "1 ",
            "1.5",
            "12a",
            "9223372036854775808",
            "12\n",
            "١٢",
        ] {
            assert_eq!(text_to_integer(bad), Value::Null, "{bad:?}");
        }
    }
}
