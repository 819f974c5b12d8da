//! Scalar functions of the SQL subset (docs/QUERY.md, "Expressions"): the numeric, text
//! and date functions, each typed and turned into a `ScalarExpr` whose constant
//! arguments (digits, positions, units, interval amounts) are checked and bounded here,
//! so that a bad one is a one-line planning error.

use consort_ledger::policy::Permission;
use consort_model::local_query::CmpOp;
use consort_model::scalar::{
    MathFunc, ScalarExpr, TrimSide, TruncUnit, MAX_EXTREME_ARGS, MAX_ROUND_DIGITS,
};
use consort_model::{ColumnType, Value};
use sqlparser::ast::{DataType, Expr, Function, TrimWhereField, Value as SqlValue};

use crate::error::QueryError;
use crate::parse::{unsupported, R};
use crate::parse_expr::{literal, number, Ctx};
use crate::parse_scalar::{coerce, numeric, plain_args, strip, typed, unify, untyped_null, Typed};

/// An integer constant (a number, possibly negated), for the arguments that must be one.
pub(crate) fn const_int(e: &Expr) -> Option<i64> {
    number(e)?.parse().ok()
}

/// A text constant.
pub(crate) fn const_text(e: &Expr) -> Option<&str> {
    match strip(e) {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    }
}

impl Ctx<'_> {
    pub(crate) fn function(&mut self, e: &Expr, f: &Function, p: Permission) -> R<Typed> {
        let name = f.name.to_string().to_ascii_uppercase();
        let args = plain_args(f, &name)?;
        let arity = |n: usize| -> R<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(QueryError::Invalid(format!(
                    "{name} takes {n} argument(s), got {} in `{e}`",
                    args.len()
                )))
            }
        };
        match name.as_str() {
            "COALESCE" => {
                if args.is_empty() {
                    return Err(QueryError::Invalid("COALESCE needs arguments".into()));
                }
                let parts = args
                    .iter()
                    .map(|a| self.scalar(a, p))
                    .collect::<R<Vec<_>>>()?;
                let types: Vec<Option<ColumnType>> = parts.iter().map(|t| t.ty).collect();
                let Some(ty) = unify(&types, "COALESCE arguments")? else {
                    return Ok(parts.into_iter().next().unwrap_or_else(untyped_null));
                };
                let parts = parts
                    .into_iter()
                    .map(|t| coerce(t, ty, "COALESCE"))
                    .collect::<R<Vec<_>>>()?;
                Ok(typed(ScalarExpr::Coalesce(parts), ty))
            }
            "NULLIF" => {
                arity(2)?;
                let (a, b) = (self.scalar(args[0], p)?, self.scalar(args[1], p)?);
                let ty = unify(&[a.ty, b.ty], "NULLIF arguments")?
                    .ok_or_else(|| QueryError::Invalid("NULLIF of two NULLs".into()))?;
                Ok(typed(
                    ScalarExpr::NullIf(
                        Box::new(coerce(a, ty, "NULLIF")?),
                        Box::new(coerce(b, ty, "NULLIF")?),
                    ),
                    ty,
                ))
            }
            "ABS" => {
                arity(1)?;
                let t = self.scalar(args[0], p)?;
                match t.ty {
                    Some(ty) if numeric(ty) => Ok(typed(ScalarExpr::Abs(Box::new(t.expr)), ty)),
                    None => Ok(t),
                    Some(ty) => Err(QueryError::Type(format!("ABS of a {ty} value in `{e}`"))),
                }
            }
            "SQRT" | "LN" | "EXP" => {
                arity(1)?;
                let func = match name.as_str() {
                    "SQRT" => MathFunc::Sqrt,
                    "LN" => MathFunc::Ln,
                    _ => MathFunc::Exp,
                };
                let t = self.scalar(args[0], p)?;
                match t.ty {
                    Some(ty) if numeric(ty) => Ok(typed(
                        ScalarExpr::Math {
                            func,
                            arg: Box::new(coerce(t, ColumnType::Float, &name)?),
                        },
                        ColumnType::Float,
                    )),
                    None => Ok(t),
                    Some(ty) => Err(QueryError::Type(format!("{name} of a {ty} value in `{e}`"))),
                }
            }
            "FLOOR" | "CEIL" | "CEILING" => {
                arity(1)?;
                let func = if name == "FLOOR" {
                    MathFunc::Floor
                } else {
                    MathFunc::Ceil
                };
                let t = self.scalar(args[0], p)?;
                self.rounding(e, func, t)
            }
            "SIGN" => {
                arity(1)?;
                let t = self.scalar(args[0], p)?;
                match t.ty {
                    Some(ty) if numeric(ty) => Ok(typed(
                        ScalarExpr::Sign(Box::new(t.expr)),
                        ColumnType::Integer,
                    )),
                    None => Ok(t),
                    Some(ty) => Err(QueryError::Type(format!("SIGN of a {ty} value in `{e}`"))),
                }
            }
            "LENGTH" | "CHAR_LENGTH" => {
                arity(1)?;
                let t = self.scalar(args[0], p)?;
                match t.ty {
                    Some(ColumnType::Text) => Ok(typed(
                        ScalarExpr::Length(Box::new(t.expr)),
                        ColumnType::Integer,
                    )),
                    None => Ok(t),
                    Some(ty) => Err(QueryError::Type(format!(
                        "LENGTH of a {ty} value in `{e}` (text only)"
                    ))),
                }
            }
            _ => self.function2(e, &name, &args, p),
        }
    }

    /// `FLOOR`/`CEIL`: an integer is its own floor; a float gives an integral float.
    pub(crate) fn rounding(&self, e: &Expr, func: MathFunc, t: Typed) -> R<Typed> {
        match t.ty {
            Some(ColumnType::Integer) | None => Ok(t),
            Some(ColumnType::Float) => Ok(typed(
                ScalarExpr::Math {
                    func,
                    arg: Box::new(t.expr),
                },
                ColumnType::Float,
            )),
            Some(ty) => Err(QueryError::Type(format!(
                "{} of a {ty} value in `{e}`",
                func.name()
            ))),
        }
    }

    /// The functions beyond the first set.
    fn function2(&mut self, e: &Expr, name: &str, args: &[&Expr], p: Permission) -> R<Typed> {
        let arity = |lo: usize, hi: usize| -> R<()> {
            if (lo..=hi).contains(&args.len()) {
                Ok(())
            } else {
                let n = if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo} to {hi}")
                };
                Err(QueryError::Invalid(format!(
                    "{name} takes {n} argument(s), got {} in `{e}`",
                    args.len()
                )))
            }
        };
        match name {
            "ROUND" => {
                arity(1, 2)?;
                let digits = match args.get(1) {
                    None => 0,
                    Some(d) => const_int(d)
                        .and_then(|d| i32::try_from(d).ok())
                        .filter(|d| d.unsigned_abs() <= MAX_ROUND_DIGITS.unsigned_abs())
                        .ok_or_else(|| {
                            QueryError::Invalid(format!(
                                "ROUND's digits must be an integer constant from \
                                 -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}, not `{d}`"
                            ))
                        })?,
                };
                let t = self.scalar(args[0], p)?;
                match t.ty {
                    Some(ty) if numeric(ty) => Ok(typed(
                        ScalarExpr::Round {
                            arg: Box::new(t.expr),
                            digits,
                        },
                        ty,
                    )),
                    None => Ok(t),
                    Some(ty) => Err(QueryError::Type(format!("ROUND of a {ty} value in `{e}`"))),
                }
            }
            "POWER" | "POW" => {
                arity(2, 2)?;
                let (x, y) = (self.scalar(args[0], p)?, self.scalar(args[1], p)?);
                for t in [&x, &y] {
                    if let Some(ty) = t.ty.filter(|t| !numeric(*t)) {
                        return Err(QueryError::Type(format!("POWER of a {ty} value in `{e}`")));
                    }
                }
                if x.ty.is_none() || y.ty.is_none() {
                    return Ok(untyped_null());
                }
                Ok(typed(
                    ScalarExpr::Power(
                        Box::new(coerce(x, ColumnType::Float, "POWER")?),
                        Box::new(coerce(y, ColumnType::Float, "POWER")?),
                    ),
                    ColumnType::Float,
                ))
            }
            "GREATEST" | "LEAST" => {
                arity(1, MAX_EXTREME_ARGS)?;
                let parts = args
                    .iter()
                    .map(|a| self.scalar(a, p))
                    .collect::<R<Vec<_>>>()?;
                let types: Vec<Option<ColumnType>> = parts.iter().map(|t| t.ty).collect();
                let Some(ty) = unify(&types, &format!("{name} arguments"))? else {
                    return Ok(untyped_null());
                };
                if ty == ColumnType::Boolean {
                    return Err(QueryError::Type(format!("{name} of booleans in `{e}`")));
                }
                let parts = parts
                    .into_iter()
                    .map(|t| coerce(t, ty, name))
                    .collect::<R<Vec<_>>>()?;
                Ok(typed(
                    ScalarExpr::Extreme {
                        greatest: name == "GREATEST",
                        args: parts,
                    },
                    ty,
                ))
            }
            "LOWER" | "UPPER" => {
                arity(1, 1)?;
                let t = self.text_arg(e, args[0], name, p)?;
                Ok(match t {
                    None => untyped_null(),
                    Some(x) => typed(
                        ScalarExpr::CaseMap {
                            upper: name == "UPPER",
                            arg: Box::new(x),
                        },
                        ColumnType::Text,
                    ),
                })
            }
            "REPLACE" => {
                arity(3, 3)?;
                let mut parts = Vec::with_capacity(3);
                for a in args {
                    let t = self.scalar(a, p)?;
                    parts.push(coerce(t, ColumnType::Text, "REPLACE").map_err(|_| {
                        QueryError::Type(format!("REPLACE of a value that is not text in `{e}`"))
                    })?);
                }
                let [arg, from, to] = <[ScalarExpr; 3]>::try_from(parts)
                    .map_err(|_| QueryError::Invalid("REPLACE takes 3 arguments".into()))?;
                Ok(typed(
                    ScalarExpr::Replace {
                        arg: Box::new(arg),
                        from: Box::new(from),
                        to: Box::new(to),
                    },
                    ColumnType::Text,
                ))
            }
            "SUBSTR" | "SUBSTRING" => {
                arity(2, 3)?;
                self.substr(e, args[0], Some(args[1]), args.get(2).copied(), p)
            }
            "DATE_TRUNC" => {
                arity(2, 2)?;
                let unit = const_text(args[0])
                    .and_then(TruncUnit::parse)
                    .ok_or_else(|| {
                        QueryError::Invalid(format!(
                            "DATE_TRUNC's unit must be one of 'year', 'quarter', 'month', \
                             'week', 'day', not `{}`",
                            args[0]
                        ))
                    })?;
                let t = self.scalar(args[1], p)?;
                match t.ty {
                    Some(ty @ (ColumnType::Date | ColumnType::Timestamp)) => Ok(typed(
                        ScalarExpr::DateTrunc {
                            unit,
                            arg: Box::new(t.expr),
                        },
                        ty,
                    )),
                    None => Ok(t),
                    Some(ty) => Err(QueryError::Type(format!(
                        "DATE_TRUNC of a {ty} value in `{e}` (dates and timestamps only)"
                    ))),
                }
            }
            "DATE_DIFF" => {
                arity(3, 3)?;
                if !const_text(args[0]).is_some_and(|u| u.eq_ignore_ascii_case("day")) {
                    return unsupported(format!(
                        "DATE_DIFF in units other than 'day' (`{}`)",
                        args[0]
                    ));
                }
                let (from, to) = (self.scalar(args[1], p)?, self.scalar(args[2], p)?);
                let date = |t: Typed| coerce(t, ColumnType::Date, "DATE_DIFF");
                Ok(typed(
                    ScalarExpr::DateDiff(Box::new(date(to)?), Box::new(date(from)?)),
                    ColumnType::Integer,
                ))
            }
            other => unsupported(format!("function {other}")),
        }
    }

    /// A text argument (`None` for a bare NULL).
    fn text_arg(&mut self, e: &Expr, a: &Expr, name: &str, p: Permission) -> R<Option<ScalarExpr>> {
        let t = self.scalar(a, p)?;
        match t.ty {
            Some(ColumnType::Text) => Ok(Some(t.expr)),
            None => Ok(None),
            Some(ty) => Err(QueryError::Type(format!(
                "{name} of a {ty} value in `{e}` (text only)"
            ))),
        }
    }

    /// `SUBSTR(x, start[, len])` and `SUBSTRING(x FROM start [FOR len])`, with constant
    /// positions.
    pub(crate) fn substr(
        &mut self,
        e: &Expr,
        x: &Expr,
        from: Option<&Expr>,
        count: Option<&Expr>,
        p: Permission,
    ) -> R<Typed> {
        let constant = |a: &Expr, what: &str| {
            const_int(a).ok_or_else(|| {
                QueryError::Invalid(format!(
                    "SUBSTR's {what} must be an integer constant, not `{a}`"
                ))
            })
        };
        let start = from.map(|a| constant(a, "start")).transpose()?.unwrap_or(1);
        let len = count.map(|a| constant(a, "length")).transpose()?;
        if let Some(l) = len.filter(|l| *l < 0) {
            return Err(QueryError::Invalid(format!(
                "SUBSTR with the negative length {l} in `{e}`"
            )));
        }
        Ok(match self.text_arg(e, x, "SUBSTR", p)? {
            None => untyped_null(),
            Some(arg) => typed(
                ScalarExpr::Substr {
                    arg: Box::new(arg),
                    start,
                    len,
                },
                ColumnType::Text,
            ),
        })
    }

    /// `TRIM([BOTH | LEADING | TRAILING] [c] FROM x)` and `TRIM(x)`: `c` is one character
    /// (a space by default).
    pub(crate) fn trim(
        &mut self,
        e: &Expr,
        x: &Expr,
        side: Option<&TrimWhereField>,
        what: Option<&Expr>,
        characters: Option<&[Expr]>,
        p: Permission,
    ) -> R<Typed> {
        if characters.is_some() {
            return unsupported(format!(
                "TRIM(x, characters) in `{e}`; write TRIM(BOTH 'c' FROM x)"
            ));
        }
        let side = match side {
            None | Some(TrimWhereField::Both) => TrimSide::Both,
            Some(TrimWhereField::Leading) => TrimSide::Leading,
            Some(TrimWhereField::Trailing) => TrimSide::Trailing,
        };
        let ch = match what {
            None => ' ',
            Some(w) => {
                let text = const_text(w).ok_or_else(|| {
                    QueryError::Invalid(format!(
                        "TRIM's characters must be a text constant, not `{w}`"
                    ))
                })?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => {
                        return unsupported(format!(
                            "TRIM of {text:?}: one character only (MySQL trims a string, \
                             PostgreSQL a set of characters)"
                        ))
                    }
                }
            }
        };
        Ok(match self.text_arg(e, x, "TRIM", p)? {
            None => untyped_null(),
            Some(arg) => typed(
                ScalarExpr::Trim {
                    arg: Box::new(arg),
                    side,
                    ch,
                },
                ColumnType::Text,
            ),
        })
    }

    pub(crate) fn cast(&mut self, e: &Expr, x: &Expr, to: &DataType, p: Permission) -> R<Typed> {
        let want = match to {
            DataType::Int(_)
            | DataType::Integer(_)
            | DataType::BigInt(_)
            | DataType::SmallInt(_)
            | DataType::Int64
            | DataType::Int8(_) => ColumnType::Integer,
            DataType::Real
            | DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::Float(_)
            | DataType::Float8
            | DataType::Float64 => ColumnType::Float,
            DataType::Text | DataType::Varchar(_) | DataType::String(_) => ColumnType::Text,
            DataType::Date => ColumnType::Date,
            DataType::Timestamp(..) | DataType::Datetime(_) => ColumnType::Timestamp,
            DataType::Boolean | DataType::Bool => ColumnType::Boolean,
            other => return unsupported(format!("CAST to {other}")),
        };
        let t = self.scalar(x, p)?;
        let expr = match (t.ty, want) {
            (None, want) => ScalarExpr::Literal {
                value: Value::Null,
                ty: want,
            },
            (Some(have), want) if have == want => t.expr,
            (Some(ColumnType::Integer), ColumnType::Float) => coerce(t, want, "CAST")?,
            (Some(ColumnType::Integer), ColumnType::Text) => {
                ScalarExpr::IntegerToText(Box::new(t.expr))
            }
            // A literal converts at planning time, exactly.
            (Some(ColumnType::Text), ColumnType::Date | ColumnType::Timestamp)
                if matches!(t.expr, ScalarExpr::Literal { .. }) =>
            {
                ScalarExpr::Literal {
                    value: literal(x, want, "a CAST")?,
                    ty: want,
                }
            }
            (Some(have), want) if consort_model::scalar::cast_allowed(have, want) => {
                ScalarExpr::Cast {
                    arg: Box::new(t.expr),
                    to: want,
                }
            }
            (Some(have), want) => {
                return unsupported(format!(
                    "CAST of a {have} value to {want} in `{e}` (the databases disagree on it)"
                ))
            }
        };
        Ok(typed(expr, want))
    }

    pub(crate) fn case(
        &mut self,
        operand: Option<&Expr>,
        conditions: &[sqlparser::ast::CaseWhen],
        else_result: Option<&Expr>,
        p: Permission,
    ) -> R<Typed> {
        let mut conds = Vec::with_capacity(conditions.len());
        let mut values = Vec::with_capacity(conditions.len());
        for w in conditions {
            let cond = match operand {
                // CASE x WHEN v …: x = v.
                Some(x) => self.comparison(CmpOp::Eq, x, &w.condition, p)?,
                None => coerce(self.scalar(&w.condition, p)?, ColumnType::Boolean, "WHEN")?,
            };
            conds.push(cond);
            values.push(self.scalar(&w.result, p)?);
        }
        let otherwise = else_result.map(|e| self.scalar(e, p)).transpose()?;
        let mut types: Vec<Option<ColumnType>> = values.iter().map(|v| v.ty).collect();
        types.extend(otherwise.as_ref().map(|o| o.ty));
        let ty = unify(&types, "CASE branches")?;
        let Some(ty) = ty else {
            return Ok(untyped_null());
        };
        let whens = conds
            .into_iter()
            .zip(values)
            .map(|(c, v)| Ok((c, coerce(v, ty, "a CASE branch")?)))
            .collect::<R<Vec<_>>>()?;
        let otherwise = otherwise
            .map(|o| coerce(o, ty, "the CASE ELSE").map(Box::new))
            .transpose()?;
        Ok(typed(ScalarExpr::Case { whens, otherwise }, ty))
    }
}
