//! The typing rule and the bounds of the scalar functions beyond the first set: `ROUND`,
//! `POWER`, `GREATEST`/`LEAST`, `LOWER`/`UPPER`, `SUBSTR`, `TRIM`, `REPLACE`,
//! `DATE_TRUNC`, interval arithmetic, date differences and the further casts. Their
//! semantics are documented on [`ScalarExpr`] and in docs/QUERY.md ("Expressions").

use super::ScalarExpr;
use crate::value::ColumnType;

/// `ROUND(x, n)` accepts `n` within ±this (beyond it a float has no digits left to round,
/// and 10^n no longer fits an integer).
pub const MAX_ROUND_DIGITS: i32 = 18;

/// The most arguments of one `GREATEST` or `LEAST` (each argument is rendered once per
/// argument for MySQL, so the bound keeps the pushed-down SQL small).
pub const MAX_EXTREME_ARGS: usize = 16;

/// The largest interval in days: 0001-01-01 to 9999-12-31. Anything larger leaves the date
/// range from every date.
pub const MAX_INTERVAL_DAYS: i64 = 3_652_058;

/// The largest interval in months (years are 12 months).
pub const MAX_INTERVAL_MONTHS: i64 = 9999 * 12;

/// Which end(s) `TRIM` trims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimSide {
    Both,
    Leading,
    Trailing,
}

impl TrimSide {
    pub fn name(self) -> &'static str {
        match self {
            TrimSide::Both => "BOTH",
            TrimSide::Leading => "LEADING",
            TrimSide::Trailing => "TRAILING",
        }
    }
}

/// The unit of `DATE_TRUNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncUnit {
    Year,
    Quarter,
    Month,
    /// The ISO week: back to its Monday.
    Week,
    Day,
}

impl TruncUnit {
    pub fn name(self) -> &'static str {
        match self {
            TruncUnit::Year => "year",
            TruncUnit::Quarter => "quarter",
            TruncUnit::Month => "month",
            TruncUnit::Week => "week",
            TruncUnit::Day => "day",
        }
    }

    /// The unit a `DATE_TRUNC` names (case-insensitive), if one of the five.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "year" => TruncUnit::Year,
            "quarter" => TruncUnit::Quarter,
            "month" => TruncUnit::Month,
            "week" => TruncUnit::Week,
            "day" => TruncUnit::Day,
            _ => return None,
        })
    }
}

/// The unit of date interval arithmetic (a year is planned as 12 months).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalUnit {
    Day,
    Month,
}

impl IntervalUnit {
    pub fn name(self) -> &'static str {
        match self {
            IntervalUnit::Day => "DAY",
            IntervalUnit::Month => "MONTH",
        }
    }

    /// The largest `|amount|` of this unit.
    pub fn max_amount(self) -> i64 {
        match self {
            IntervalUnit::Day => MAX_INTERVAL_DAYS,
            IntervalUnit::Month => MAX_INTERVAL_MONTHS,
        }
    }
}

/// Whether `CAST(x AS to)` of a `from` value is a [`ScalarExpr::Cast`]: float to integer
/// (ties away from zero; outside 64 bits an error), text to integer (optional sign and
/// 1 to 19 ASCII digits, in range, else NULL), boolean to integer (1/0), integer to boolean
/// (non-zero), boolean to text (`true`/`false`), date to text (`YYYY-MM-DD`), timestamp to
/// text (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC), timestamp to date (its UTC day) and date to
/// timestamp (midnight UTC).
pub fn cast_allowed(from: ColumnType, to: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        (from, to),
        (Float, Integer)
            | (Text, Integer)
            | (Boolean, Integer)
            | (Integer, Boolean)
            | (Boolean, Text)
            | (Date, Text)
            | (Timestamp, Text)
            | (Timestamp, Date)
            | (Date, Timestamp)
    )
}

fn one_of(t: ColumnType, want: &[ColumnType], what: &str) -> Result<ColumnType, String> {
    if want.contains(&t) {
        Ok(t)
    } else {
        let names: Vec<&str> = want.iter().map(|w| w.as_str()).collect();
        Err(format!(
            "{what} of a {t} value ({} only)",
            names.join(" or ")
        ))
    }
}

/// The type of one of this module's expressions; `sub` types an operand.
pub(super) fn type_of(
    e: &ScalarExpr,
    sub: &dyn Fn(&ScalarExpr) -> Result<ColumnType, String>,
) -> Result<ColumnType, String> {
    use ColumnType::*;
    match e {
        ScalarExpr::Round { arg, digits } => {
            if digits.unsigned_abs() > MAX_ROUND_DIGITS.unsigned_abs() {
                return Err(format!(
                    "ROUND to {digits} digits (at most {MAX_ROUND_DIGITS} either way)"
                ));
            }
            one_of(sub(arg)?, &[Integer, Float], "ROUND")
        }
        ScalarExpr::Power(x, y) => {
            one_of(sub(x)?, &[Float], "POWER")?;
            one_of(sub(y)?, &[Float], "POWER")
        }
        ScalarExpr::Extreme { greatest, args } => {
            let what = if *greatest { "GREATEST" } else { "LEAST" };
            if args.is_empty() || args.len() > MAX_EXTREME_ARGS {
                return Err(format!(
                    "{what} of {} arguments (1 to {MAX_EXTREME_ARGS})",
                    args.len()
                ));
            }
            let mut ty = None;
            for a in args {
                let t = one_of(sub(a)?, &[Integer, Float, Text, Date, Timestamp], what)?;
                if let Some(have) = ty.filter(|have| *have != t) {
                    return Err(format!("{what} of {have} and {t} values (one type)"));
                }
                ty = Some(t);
            }
            ty.ok_or_else(|| format!("{what} without arguments"))
        }
        ScalarExpr::CaseMap { upper, arg } => {
            one_of(sub(arg)?, &[Text], if *upper { "UPPER" } else { "LOWER" })
        }
        ScalarExpr::Substr { arg, len, .. } => {
            if len.is_some_and(|l| l < 0) {
                return Err("SUBSTR with a negative length".into());
            }
            one_of(sub(arg)?, &[Text], "SUBSTR")
        }
        ScalarExpr::Trim { arg, .. } => one_of(sub(arg)?, &[Text], "TRIM"),
        ScalarExpr::Replace { arg, from, to } => {
            for x in [arg, from, to] {
                one_of(sub(x)?, &[Text], "REPLACE")?;
            }
            Ok(Text)
        }
        ScalarExpr::DateTrunc { arg, .. } => one_of(sub(arg)?, &[Date, Timestamp], "DATE_TRUNC"),
        ScalarExpr::AddInterval { arg, unit, amount } => {
            if amount.unsigned_abs() > unit.max_amount().unsigned_abs() {
                return Err(format!(
                    "an INTERVAL of {amount} {} (at most {} either way)",
                    unit.name(),
                    unit.max_amount()
                ));
            }
            one_of(sub(arg)?, &[Date], "INTERVAL arithmetic")
        }
        ScalarExpr::DateDiff(l, r) => {
            one_of(sub(l)?, &[Date], "a date difference")?;
            one_of(sub(r)?, &[Date], "a date difference")?;
            Ok(Integer)
        }
        ScalarExpr::Cast { arg, to } => {
            let from = sub(arg)?;
            if cast_allowed(from, *to) {
                Ok(*to)
            } else {
                Err(format!("CAST of a {from} value to {to}"))
            }
        }
        other => Err(format!("not a function expression: {other:?}")),
    }
}
