//! Date interval arithmetic of the SQL subset (docs/QUERY.md, "Expressions"):
//! `date ± INTERVAL 'n' unit`, with the unit and the constant amount checked and bounded
//! here.

use consort_ledger::policy::Permission;
use consort_model::scalar::{IntervalUnit, ScalarExpr};
use consort_model::ColumnType;
use sqlparser::ast::{DateTimeField, Expr, Interval};

use crate::error::QueryError;
use crate::parse::{unsupported, R};
use crate::parse_expr::Ctx;
use crate::parse_funcs::{const_int, const_text};
use crate::parse_scalar::{typed, Typed};

impl Ctx<'_> {
    /// `date ± INTERVAL 'n' unit` (also `INTERVAL 'n unit'`), units DAY, WEEK, MONTH and
    /// YEAR, `n` an integer constant within the bounds of `IntervalUnit::max_amount`.
    pub(crate) fn interval(
        &mut self,
        e: &Expr,
        left: &Expr,
        minus: bool,
        i: &Interval,
        p: Permission,
    ) -> R<Typed> {
        let bad = || {
            QueryError::Invalid(format!(
                "`{e}`: write INTERVAL '<integer>' DAY|WEEK|MONTH|YEAR"
            ))
        };
        if i.last_field.is_some() || i.fractional_seconds_precision.is_some() {
            return Err(bad());
        }
        let (amount, unit_word) = match (const_int(&i.value), const_text(&i.value)) {
            (Some(n), _) => (n, None),
            (None, Some(s)) => {
                let mut words = s.split_whitespace();
                let n: i64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                let unit = words.next().map(str::to_ascii_uppercase);
                if words.next().is_some() {
                    return Err(bad());
                }
                (n, unit)
            }
            _ => return Err(bad()),
        };
        let field = match (&i.leading_field, unit_word.as_deref()) {
            (Some(f), None) => match f {
                DateTimeField::Day | DateTimeField::Days => "DAY",
                DateTimeField::Week(None) | DateTimeField::Weeks => "WEEK",
                DateTimeField::Month | DateTimeField::Months => "MONTH",
                DateTimeField::Year | DateTimeField::Years => "YEAR",
                other => return unsupported(format!("INTERVAL in {other}")),
            },
            (None, Some(w)) => match w.trim_end_matches('S') {
                "DAY" => "DAY",
                "WEEK" => "WEEK",
                "MONTH" => "MONTH",
                "YEAR" => "YEAR",
                other => return unsupported(format!("INTERVAL in {other}")),
            },
            _ => return Err(bad()),
        };
        let (unit, factor) = match field {
            "DAY" => (IntervalUnit::Day, 1),
            "WEEK" => (IntervalUnit::Day, 7),
            "MONTH" => (IntervalUnit::Month, 1),
            _ => (IntervalUnit::Month, 12),
        };
        let amount = amount
            .checked_mul(factor)
            .and_then(|a| if minus { a.checked_neg() } else { Some(a) })
            .filter(|a| a.unsigned_abs() <= unit.max_amount().unsigned_abs())
            .ok_or_else(|| {
                QueryError::Invalid(format!(
                    "`{e}`: an interval beyond {} {}S (the whole date range)",
                    unit.max_amount(),
                    unit.name()
                ))
            })?;
        let t = self.scalar(left, p)?;
        match t.ty {
            Some(ColumnType::Date) => Ok(typed(
                ScalarExpr::AddInterval {
                    arg: Box::new(t.expr),
                    unit,
                    amount,
                },
                ColumnType::Date,
            )),
            None => Ok(t),
            Some(ty) => Err(QueryError::Type(format!(
                "INTERVAL arithmetic on a {ty} value in `{e}` (dates only)"
            ))),
        }
    }
}
