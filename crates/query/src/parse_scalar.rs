//! Row expressions of the SQL subset (docs/QUERY.md, "Expressions"): literals, columns,
//! arithmetic, `||`, comparisons and boolean logic, `IN`, `BETWEEN` and `EXTRACT`, turned
//! into `consort_model::scalar::ScalarExpr` with SQL's implicit conversions made explicit;
//! `CASE`, `CAST` and the functions are in `parse_funcs`, interval arithmetic in
//! `parse_dates`. An expression that stands where a column may stand becomes a derived
//! column the owner's database computes ([`Ctx::value_column`]); every column it mentions
//! is used with the permission of the clause it stands in.

use consort_ledger::policy::Permission;
use consort_model::local_query::CmpOp;
use consort_model::scalar::{ArithOp, DatePart, Derived, MathFunc, ScalarExpr, DERIVED_PREFIX};
use consort_model::{ColumnType, Value};
use sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, DataType, DateTimeField, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArguments, UnaryOperator, Value as SqlValue,
};

use crate::error::QueryError;
use crate::parse::{unsupported, R};
use crate::parse_expr::{cmp_op, expr_kind, literal, number, Ctx};

/// An expression being built: its type is `None` only for a bare `NULL`, which takes
/// the type its context gives it.
pub(crate) struct Typed {
    pub(crate) expr: ScalarExpr,
    pub(crate) ty: Option<ColumnType>,
}

/// A NULL whose type its context will give (`coerce`).
pub(crate) fn untyped_null() -> Typed {
    Typed {
        expr: ScalarExpr::Literal {
            value: Value::Null,
            ty: ColumnType::Text,
        },
        ty: None,
    }
}

pub(crate) fn typed(expr: ScalarExpr, ty: ColumnType) -> Typed {
    Typed { expr, ty: Some(ty) }
}

pub(crate) fn numeric(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Integer | ColumnType::Float)
}

/// `t` as a value of type `want`: a NULL takes the type, an integer becomes a float
/// where a float is wanted; anything else must already be of that type.
pub(crate) fn coerce(t: Typed, want: ColumnType, what: &str) -> R<ScalarExpr> {
    match (t.ty, want) {
        (None, _) => Ok(ScalarExpr::Literal {
            value: Value::Null,
            ty: want,
        }),
        (Some(have), want) if have == want => Ok(t.expr),
        (Some(ColumnType::Integer), ColumnType::Float) => Ok(match t.expr {
            ScalarExpr::Literal {
                value: Value::Integer(i),
                ..
            } => ScalarExpr::Literal {
                value: Value::Float(i as f64),
                ty: ColumnType::Float,
            },
            e => ScalarExpr::ToFloat(Box::new(e)),
        }),
        (Some(have), want) => Err(QueryError::Type(format!(
            "{what}: a {have} value where a {want} is needed"
        ))),
    }
}

/// The common type of several values (`CASE` branches, `COALESCE` arguments): all one
/// type, integers widening to float when floats are present; `None` if all are NULL.
pub(crate) fn unify(types: &[Option<ColumnType>], what: &str) -> R<Option<ColumnType>> {
    let mut common: Option<ColumnType> = None;
    for t in types.iter().flatten() {
        common = Some(match common {
            None => *t,
            Some(c) if c == *t => c,
            Some(c) if numeric(c) && numeric(*t) => ColumnType::Float,
            Some(c) => return Err(QueryError::Type(format!("{what} mix {c} and {t} values"))),
        });
    }
    Ok(common)
}

fn date_part(field: &DateTimeField) -> R<DatePart> {
    Ok(match field {
        DateTimeField::Year => DatePart::Year,
        DateTimeField::Quarter => DatePart::Quarter,
        DateTimeField::Month => DatePart::Month,
        DateTimeField::Day => DatePart::Day,
        DateTimeField::Dow | DateTimeField::DayOfWeek => DatePart::DayOfWeek,
        DateTimeField::Doy | DateTimeField::DayOfYear => DatePart::DayOfYear,
        DateTimeField::Hour => DatePart::Hour,
        DateTimeField::Week(None) | DateTimeField::IsoWeek => DatePart::Week,
        other => return unsupported(format!("EXTRACT({other})")),
    })
}

/// The single argument list of a plain function call, or an error naming the function.
pub(crate) fn plain_args<'e>(f: &'e Function, name: &str) -> R<Vec<&'e Expr>> {
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return unsupported(format!("{name} with OVER, FILTER or WITHIN GROUP"));
    }
    let list = match &f.args {
        FunctionArguments::List(l) if l.duplicate_treatment.is_none() && l.clauses.is_empty() => l,
        FunctionArguments::None => return Ok(Vec::new()),
        _ => return unsupported(format!("this form of {name}(…)")),
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => unsupported(format!("this argument of {name}")),
        })
        .collect()
}

/// Scalar functions the subset knows (aggregates are not among them).
pub(crate) fn is_scalar_function(f: &Function) -> bool {
    matches!(
        f.name.to_string().to_ascii_uppercase().as_str(),
        "COALESCE"
            | "NULLIF"
            | "ABS"
            | "SQRT"
            | "LN"
            | "EXP"
            | "FLOOR"
            | "CEIL"
            | "CEILING"
            | "SIGN"
            | "LENGTH"
            | "CHAR_LENGTH"
            | "ROUND"
            | "POWER"
            | "POW"
            | "GREATEST"
            | "LEAST"
            | "LOWER"
            | "UPPER"
            | "REPLACE"
            | "SUBSTR"
            | "SUBSTRING"
            | "DATE_TRUNC"
            | "DATE_DIFF"
    )
}

impl Ctx<'_> {
    /// A column the owner can read for `e`: the column itself for a column name, else a
    /// derived column computing `e` (one per distinct expression). Returns its name and
    /// type.
    pub(crate) fn value_column(&mut self, e: &Expr, p: Permission) -> R<(String, ColumnType)> {
        if let Expr::Identifier(_) = strip(e) {
            return self.column_expr(e, p);
        }
        let t = self.scalar(e, p)?;
        let Some(ty) = t.ty else {
            return Err(QueryError::Invalid(format!(
                "`{e}` is always NULL; write IS [NOT] NULL or drop it"
            )));
        };
        self.register(t.expr, ty)
    }

    /// The derived column `CASE WHEN cond THEN value END` of an aggregate's `FILTER (WHERE
    /// cond)` (`value` is the constant 1 for `COUNT(*)`): the condition's columns are used
    /// as filters, the value's as aggregate inputs.
    pub(crate) fn filtered_column(
        &mut self,
        value: Option<&Expr>,
        cond: &Expr,
    ) -> R<(String, ColumnType)> {
        let cond = self.scalar(cond, Permission::Filter)?;
        let cond = coerce(cond, ColumnType::Boolean, "FILTER (WHERE …)")?;
        let value = match value {
            Some(e) => self.scalar(e, Permission::Aggregate)?,
            None => typed(
                ScalarExpr::Literal {
                    value: Value::Integer(1),
                    ty: ColumnType::Integer,
                },
                ColumnType::Integer,
            ),
        };
        let Some(ty) = value.ty else {
            return Err(QueryError::Invalid(
                "an aggregate of NULL with FILTER is always NULL".into(),
            ));
        };
        let expr = ScalarExpr::Case {
            whens: vec![(cond, value.expr)],
            otherwise: None,
        };
        self.register(expr, ty)
    }

    /// Adds `expr` as a derived column (or finds the one that already computes it).
    fn register(&mut self, expr: ScalarExpr, ty: ColumnType) -> R<(String, ColumnType)> {
        if let Err(e) = expr.result_type(&self.src.schema) {
            // The typing rule also bounds the depth (`consort_model::scalar::MAX_DEPTH`).
            return Err(if e.contains("deeper") {
                QueryError::TooComplex(e)
            } else {
                QueryError::Type(e)
            });
        }
        if let Some(d) = self.derived.iter().find(|d| d.expr == expr) {
            return Ok((d.name.clone(), ty));
        }
        if self.derived.len() >= consort_model::scalar::MAX_DERIVED {
            return Err(QueryError::TooComplex(format!(
                "more than {} distinct expressions",
                consort_model::scalar::MAX_DERIVED
            )));
        }
        let name = format!("{DERIVED_PREFIX}{}", self.derived.len());
        self.derived.push(Derived {
            name: name.clone(),
            expr,
        });
        Ok((name, ty))
    }

    /// `e` as a typed row expression (see the module docs).
    pub(crate) fn scalar(&mut self, e: &Expr, p: Permission) -> R<Typed> {
        if let Some(n) = number(e) {
            return Ok(match n.parse::<i64>() {
                Ok(i) => typed(
                    ScalarExpr::Literal {
                        value: Value::Integer(i),
                        ty: ColumnType::Integer,
                    },
                    ColumnType::Integer,
                ),
                Err(_) => {
                    let v = literal(e, ColumnType::Float, "a number")?;
                    typed(
                        ScalarExpr::Literal {
                            value: v,
                            ty: ColumnType::Float,
                        },
                        ColumnType::Float,
                    )
                }
            });
        }
        match e {
            Expr::Nested(inner) => self.scalar(inner, p),
            Expr::Identifier(_) => {
                let (name, ty) = self.column_expr(e, p)?;
                Ok(typed(ScalarExpr::Column(name), ty))
            }
            Expr::Value(v) => match &v.value {
                SqlValue::Null => Ok(untyped_null()),
                SqlValue::Boolean(b) => Ok(typed(
                    ScalarExpr::Literal {
                        value: Value::Boolean(*b),
                        ty: ColumnType::Boolean,
                    },
                    ColumnType::Boolean,
                )),
                SqlValue::SingleQuotedString(s) => Ok(typed(
                    ScalarExpr::Literal {
                        value: Value::Text(s.as_str().into()),
                        ty: ColumnType::Text,
                    },
                    ColumnType::Text,
                )),
                other => unsupported(format!("literal {other}")),
            },
            Expr::TypedString { data_type, .. } => {
                let ty = match data_type {
                    DataType::Date => ColumnType::Date,
                    DataType::Timestamp(..) | DataType::Datetime(_) => ColumnType::Timestamp,
                    other => return unsupported(format!("{other} literal")),
                };
                let v = literal(e, ty, "a literal")?;
                Ok(typed(ScalarExpr::Literal { value: v, ty }, ty))
            }
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => {
                    let x = self.scalar(expr, p)?;
                    let x = coerce(x, ColumnType::Boolean, "NOT")?;
                    Ok(typed(ScalarExpr::Not(Box::new(x)), ColumnType::Boolean))
                }
                UnaryOperator::Minus | UnaryOperator::Plus => {
                    let x = self.scalar(expr, p)?;
                    match x.ty {
                        Some(ty) if numeric(ty) => Ok(if *op == UnaryOperator::Minus {
                            typed(ScalarExpr::Negate(Box::new(x.expr)), ty)
                        } else {
                            x
                        }),
                        None => Ok(x),
                        Some(ty) => Err(QueryError::Type(format!("sign of a {ty} value in `{e}`"))),
                    }
                }
                other => unsupported(format!("operator {other} in `{e}`")),
            },
            Expr::BinaryOp { left, op, right } => self.binary(e, left, op, right, p),
            Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return unsupported("LIKE ANY or LIKE … ESCAPE");
                }
                let text = self.scalar(expr, p)?;
                if !matches!(text.ty, Some(ColumnType::Text) | None) {
                    return Err(QueryError::Type(format!(
                        "LIKE on a non-text value in `{e}`"
                    )));
                }
                let pattern = match pattern.as_ref() {
                    Expr::Value(v) => match &v.value {
                        SqlValue::SingleQuotedString(s) => s.clone(),
                        _ => {
                            return Err(QueryError::Type(format!(
                                "LIKE needs a text pattern in `{e}`"
                            )))
                        }
                    },
                    _ => {
                        return unsupported(format!(
                            "a LIKE pattern that is not a literal in `{e}`"
                        ))
                    }
                };
                Ok(typed(
                    ScalarExpr::Like {
                        expr: Box::new(coerce(text, ColumnType::Text, "LIKE")?),
                        pattern,
                        negated: *negated,
                    },
                    ColumnType::Boolean,
                ))
            }
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let t = self.scalar(x, p)?;
                Ok(typed(
                    ScalarExpr::IsNull {
                        expr: Box::new(t.expr),
                        negated: matches!(e, Expr::IsNotNull(_)),
                    },
                    ColumnType::Boolean,
                ))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                if list.is_empty() {
                    return Err(QueryError::Invalid("empty IN list".into()));
                }
                let mut parts = Vec::with_capacity(list.len());
                for item in list {
                    parts.push(self.comparison(CmpOp::Eq, expr, item, p)?);
                }
                let any = ScalarExpr::Or(parts);
                Ok(typed(
                    if *negated {
                        ScalarExpr::Not(Box::new(any))
                    } else {
                        any
                    },
                    ColumnType::Boolean,
                ))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let both = ScalarExpr::And(vec![
                    self.comparison(CmpOp::GtEq, expr, low, p)?,
                    self.comparison(CmpOp::LtEq, expr, high, p)?,
                ]);
                Ok(typed(
                    if *negated {
                        ScalarExpr::Not(Box::new(both))
                    } else {
                        both
                    },
                    ColumnType::Boolean,
                ))
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref(), p),
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() || matches!(kind, CastKind::TryCast | CastKind::SafeCast) {
                    return unsupported(format!("this form of CAST in `{e}`"));
                }
                self.cast(e, expr, data_type, p)
            }
            Expr::Extract { field, expr, .. } => {
                let part = date_part(field)?;
                let t = self.scalar(expr, p)?;
                let extract = ScalarExpr::Extract {
                    part,
                    expr: Box::new(t.expr),
                };
                let ty = extract
                    .result_type(&self.src.schema)
                    .map_err(QueryError::Type)?;
                Ok(typed(extract, ty))
            }
            Expr::Function(f) if is_scalar_function(f) => self.function(e, f, p),
            Expr::Floor { expr, field } | Expr::Ceil { expr, field } => {
                if !matches!(
                    field,
                    CeilFloorKind::DateTimeField(DateTimeField::NoDateTime)
                ) {
                    return unsupported(format!("this form of FLOOR/CEIL in `{e}`"));
                }
                let func = if matches!(e, Expr::Floor { .. }) {
                    MathFunc::Floor
                } else {
                    MathFunc::Ceil
                };
                let t = self.scalar(expr, p)?;
                self.rounding(e, func, t)
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => self.substr(
                e,
                expr,
                substring_from.as_deref(),
                substring_for.as_deref(),
                p,
            ),
            Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => self.trim(
                e,
                expr,
                trim_where.as_ref(),
                trim_what.as_deref(),
                trim_characters.as_deref(),
                p,
            ),
            Expr::Interval(_) => Err(QueryError::Invalid(format!(
                "`{e}` stands alone; write date + INTERVAL '<n>' DAY|WEEK|MONTH|YEAR"
            ))),
            Expr::Function(f) => unsupported(format!("function {} inside an expression", f.name)),
            other => unsupported(expr_kind(other)),
        }
    }

    fn binary(
        &mut self,
        e: &Expr,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        p: Permission,
    ) -> R<Typed> {
        if let Some(cmp) = cmp_op(op) {
            return Ok(typed(
                self.comparison(cmp, left, right, p)?,
                ColumnType::Boolean,
            ));
        }
        let arith = match op {
            BinaryOperator::Plus => Some(ArithOp::Add),
            BinaryOperator::Minus => Some(ArithOp::Sub),
            BinaryOperator::Multiply => Some(ArithOp::Mul),
            BinaryOperator::Divide => Some(ArithOp::Div),
            BinaryOperator::Modulo => Some(ArithOp::Rem),
            _ => None,
        };
        if let (Some(op @ (ArithOp::Add | ArithOp::Sub)), Expr::Interval(i)) = (arith, strip(right))
        {
            return self.interval(e, left, op == ArithOp::Sub, i, p);
        }
        let (l, r) = (self.scalar(left, p)?, self.scalar(right, p)?);
        if arith == Some(ArithOp::Sub)
            && l.ty == Some(ColumnType::Date)
            && r.ty == Some(ColumnType::Date)
        {
            return Ok(typed(
                ScalarExpr::DateDiff(Box::new(l.expr), Box::new(r.expr)),
                ColumnType::Integer,
            ));
        }
        if let Some(op) = arith {
            let ty = match unify(&[l.ty, r.ty], "arithmetic")? {
                Some(t) if numeric(t) => t,
                None => ColumnType::Integer,
                Some(t) => {
                    return Err(QueryError::Type(format!(
                        "{} of {t} values in `{e}` (numbers only)",
                        op.symbol()
                    )))
                }
            };
            if op == ArithOp::Rem && ty == ColumnType::Float {
                return Err(QueryError::Type(format!(
                    "% of floats in `{e}` (integers only)"
                )));
            }
            return Ok(typed(
                ScalarExpr::Arith {
                    op,
                    left: Box::new(coerce(l, ty, "arithmetic")?),
                    right: Box::new(coerce(r, ty, "arithmetic")?),
                },
                ty,
            ));
        }
        match op {
            BinaryOperator::StringConcat => Ok(typed(
                ScalarExpr::Concat(
                    Box::new(coerce(l, ColumnType::Text, "||")?),
                    Box::new(coerce(r, ColumnType::Text, "||")?),
                ),
                ColumnType::Text,
            )),
            BinaryOperator::And | BinaryOperator::Or => {
                let mut parts = Vec::new();
                let and = *op == BinaryOperator::And;
                for t in [l, r] {
                    match (coerce(t, ColumnType::Boolean, "AND/OR")?, and) {
                        (ScalarExpr::And(ps), true) | (ScalarExpr::Or(ps), false) => {
                            parts.extend(ps)
                        }
                        (x, _) => parts.push(x),
                    }
                }
                Ok(typed(
                    if and {
                        ScalarExpr::And(parts)
                    } else {
                        ScalarExpr::Or(parts)
                    },
                    ColumnType::Boolean,
                ))
            }
            other => unsupported(format!("operator {other} in `{e}`")),
        }
    }

    /// `l op r` with the operands brought to one type: numbers widen to float, and a
    /// text literal beside a date or timestamp is read as one.
    pub(crate) fn comparison(
        &mut self,
        op: CmpOp,
        l: &Expr,
        r: &Expr,
        p: Permission,
    ) -> R<ScalarExpr> {
        let (lt, rt) = (self.scalar(l, p)?, self.scalar(r, p)?);
        let (l_ty, r_ty) = (lt.ty, rt.ty);
        let (lt, rt) = (
            self.retype_text(lt, r_ty, l)?,
            self.retype_text(rt, l_ty, r)?,
        );
        let ty = unify(&[lt.ty, rt.ty], "a comparison")?.ok_or_else(|| {
            QueryError::Invalid(
                "comparison of NULL with NULL is never true; use IS [NOT] NULL".into(),
            )
        })?;
        if lt.ty.is_none() || rt.ty.is_none() {
            return Err(QueryError::Invalid(
                "a comparison with NULL is never true; use IS [NOT] NULL".into(),
            ));
        }
        Ok(ScalarExpr::Compare {
            op,
            left: Box::new(coerce(lt, ty, "a comparison")?),
            right: Box::new(coerce(rt, ty, "a comparison")?),
        })
    }

    /// A text literal compared with a date or timestamp, read as one.
    fn retype_text(&self, t: Typed, other: Option<ColumnType>, e: &Expr) -> R<Typed> {
        let is_text_literal = matches!(
            (&t.expr, t.ty),
            (ScalarExpr::Literal { .. }, Some(ColumnType::Text))
        );
        match other {
            Some(ty @ (ColumnType::Date | ColumnType::Timestamp)) if is_text_literal => {
                let v = literal(e, ty, "a date or time")?;
                Ok(typed(ScalarExpr::Literal { value: v, ty }, ty))
            }
            _ => Ok(t),
        }
    }
}

pub(crate) fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(i) => strip(i),
        e => e,
    }
}
