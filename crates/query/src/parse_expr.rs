//! Expressions of the SQL subset: column references, aggregate calls, WHERE predicates,
//! HAVING conditions and typed literals. Part of the planner (`parse`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use consort_ledger::policy::Permission;
use consort_model::local_query::{CmpOp, Predicate};
use consort_model::{ColumnType, Value};
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, UnaryOperator,
    Value as SqlValue,
};

use crate::error::QueryError;
use crate::parse::{unsupported, Source, R};
use crate::plan::{AggExpr, AggFunc, AggSpec, HavingExpr, OutputColumn, OutputExpr};

/// A short name for an expression outside the subset, for error messages.
pub(crate) fn expr_kind(e: &Expr) -> String {
    match e {
        Expr::Subquery(_) => "subquery".into(),
        Expr::Exists { .. } => "EXISTS (subquery)".into(),
        Expr::InSubquery { .. } => "IN (subquery)".into(),
        Expr::Case { .. } => "CASE expression".into(),
        Expr::Cast { .. } => "CAST".into(),
        Expr::Wildcard(_) => "*".into(),
        Expr::QualifiedWildcard(..) => "qualified *".into(),
        Expr::CompoundIdentifier(parts) => format!(
            "qualified column name {}",
            parts
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(".")
        ),
        Expr::Function(f) => {
            if f.over.is_some() {
                format!("window function {}", f.name)
            } else {
                format!("function {}", f.name)
            }
        }
        Expr::BinaryOp { op, .. } => format!("operator {op} in expression `{e}`"),
        Expr::UnaryOp { op, .. } => format!("operator {op} in expression `{e}`"),
        Expr::ILike { .. } => "ILIKE".into(),
        Expr::SimilarTo { .. } => "SIMILAR TO".into(),
        Expr::RLike { .. } => "REGEXP/RLIKE".into(),
        Expr::IsTrue(_) | Expr::IsNotTrue(_) | Expr::IsFalse(_) | Expr::IsNotFalse(_) => {
            "IS [NOT] TRUE/FALSE".into()
        }
        Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..) => "IS [NOT] DISTINCT FROM".into(),
        _ => format!("expression `{e}`"),
    }
}

pub(crate) struct Ctx<'a> {
    pub src: &'a Source<'a>,
    pub uses: BTreeMap<String, BTreeSet<Permission>>,
    pub aggs: Vec<AggSpec>,
    /// Expressions the owners compute as extra columns (`parse_scalar`).
    pub derived: Vec<consort_model::scalar::Derived>,
}

impl Ctx<'_> {
    pub(crate) fn column(&self, ident: &Ident) -> R<(String, ColumnType)> {
        let name = &ident.value;
        match self.src.schema.index_of(name) {
            Some(i) => Ok((name.clone(), self.src.schema.columns[i].ty)),
            None => Err(QueryError::UnknownColumn {
                dataset: self.src.name.clone(),
                column: name.clone(),
            }),
        }
    }

    pub(crate) fn use_col(&mut self, col: &str, p: Permission) {
        self.uses.entry(col.to_string()).or_default().insert(p);
    }

    pub(crate) fn column_expr(&mut self, e: &Expr, p: Permission) -> R<(String, ColumnType)> {
        match e {
            Expr::Identifier(i) => {
                let c = self.column(i)?;
                self.use_col(&c.0, p);
                Ok(c)
            }
            Expr::Nested(inner) => self.column_expr(inner, p),
            other => unsupported(expr_kind(other)),
        }
    }

    /// Parses an aggregate call; returns its spec and SQL text.
    pub(crate) fn agg_index(&mut self, spec: AggSpec) -> usize {
        match self.aggs.iter().position(|a| *a == spec) {
            Some(i) => i,
            None => {
                self.aggs.push(spec);
                self.aggs.len() - 1
            }
        }
    }

    pub(crate) fn predicate(&mut self, e: &Expr) -> R<Predicate> {
        match e {
            Expr::Nested(inner) => self.predicate(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    let (l, r) = (self.predicate(left)?, self.predicate(right)?);
                    let and = matches!(op, BinaryOperator::And);
                    let mut parts = Vec::new();
                    for p in [l, r] {
                        match (p, and) {
                            (Predicate::And(ps), true) | (Predicate::Or(ps), false) => {
                                parts.extend(ps)
                            }
                            (p, _) => parts.push(p),
                        }
                    }
                    Ok(if and {
                        Predicate::And(parts)
                    } else {
                        Predicate::Or(parts)
                    })
                }
                _ => {
                    let Some(op) = cmp_op(op) else {
                        return self.boolean_condition(e);
                    };
                    let (subject, lit_e, op) = if is_literal(right) {
                        (left, right, op)
                    } else if is_literal(left) {
                        (right, left, flip(op))
                    } else {
                        // Columns or expressions on both sides: the owner computes the
                        // comparison itself as a boolean column.
                        let (column, _) = self.value_column(e, Permission::Filter)?;
                        return Ok(Predicate::Compare {
                            column,
                            op: CmpOp::Eq,
                            value: Value::Boolean(true),
                        });
                    };
                    let (column, ty) = self.value_column(subject, Permission::Filter)?;
                    let value = literal(lit_e, ty, &column_label(&column, subject))?;
                    Ok(Predicate::Compare { column, op, value })
                }
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Predicate::Not(Box::new(self.predicate(expr)?))),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let (column, ty) = self.value_column(expr, Permission::Filter)?;
                if list.is_empty() {
                    return Err(QueryError::Invalid("empty IN list".into()));
                }
                let values = list
                    .iter()
                    .map(|l| literal(l, ty, &column))
                    .collect::<R<Vec<_>>>()?;
                Ok(Predicate::In {
                    column,
                    values,
                    negated: *negated,
                })
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (column, ty) = self.value_column(expr, Permission::Filter)?;
                Ok(Predicate::Between {
                    low: literal(low, ty, &column)?,
                    high: literal(high, ty, &column)?,
                    column,
                    negated: *negated,
                })
            }
            Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any {
                    return unsupported("LIKE ANY");
                }
                if escape_char.is_some() {
                    return unsupported("LIKE … ESCAPE");
                }
                let (column, ty) = self.value_column(expr, Permission::Filter)?;
                if ty != ColumnType::Text {
                    return Err(QueryError::Type(format!(
                        "LIKE on {ty} column {column:?} (text only)"
                    )));
                }
                let Value::Text(pattern) = literal(pattern, ty, &column)? else {
                    return Err(QueryError::Type("LIKE needs a text pattern".into()));
                };
                Ok(Predicate::Like {
                    column,
                    pattern: pattern.into_string(),
                    negated: *negated,
                })
            }
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let (column, _) = self.value_column(x, Permission::Filter)?;
                Ok(Predicate::IsNull {
                    column,
                    negated: matches!(e, Expr::IsNotNull(_)),
                })
            }
            other => self.boolean_condition(other),
        }
    }

    /// Any other boolean expression (a boolean column, `CASE`, …) as a condition: the
    /// owner computes it and keeps the rows where it is true.
    fn boolean_condition(&mut self, e: &Expr) -> R<Predicate> {
        let (column, ty) = self.value_column(e, Permission::Filter)?;
        if ty != ColumnType::Boolean {
            return Err(QueryError::Type(format!(
                "WHERE {e}: a {ty} value is not a condition"
            )));
        }
        Ok(Predicate::Compare {
            column,
            op: CmpOp::Eq,
            value: Value::Boolean(true),
        })
    }

    pub(crate) fn having(
        &mut self,
        e: &Expr,
        outputs: &[OutputColumn],
        computed: &[AggExpr],
    ) -> R<HavingExpr> {
        match e {
            Expr::Nested(inner) => self.having(inner, outputs, computed),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(HavingExpr::Not(Box::new(
                self.having(expr, outputs, computed)?,
            ))),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(HavingExpr::And(
                    Box::new(self.having(left, outputs, computed)?),
                    Box::new(self.having(right, outputs, computed)?),
                )),
                BinaryOperator::Or => Ok(HavingExpr::Or(
                    Box::new(self.having(left, outputs, computed)?),
                    Box::new(self.having(right, outputs, computed)?),
                )),
                _ => {
                    let Some(op) = cmp_op(op) else {
                        return unsupported(format!("{} in HAVING", expr_kind(e)));
                    };
                    let (agg_e, lit_e, op) = if number(right).is_some() {
                        (left, right, op)
                    } else if number(left).is_some() {
                        (right, left, flip(op))
                    } else {
                        return unsupported(format!(
                            "HAVING comparison `{e}` (compare an aggregate with a number)"
                        ));
                    };
                    let value = number(lit_e)
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| QueryError::Type(format!("bad number in `{e}`")))?;
                    // Arithmetic over aggregates, or the alias of such an output.
                    let alias_of_computed = match agg_e.as_ref() {
                        Expr::Identifier(i) => outputs.iter().find_map(|o| match o.expr {
                            OutputExpr::Computed(c) if o.name == i.value => computed.get(c),
                            _ => None,
                        }),
                        _ => None,
                    };
                    let arithmetic = matches!(
                        agg_e.as_ref(),
                        Expr::BinaryOp { .. } | Expr::UnaryOp { .. } | Expr::Cast { .. }
                    ) || matches!(agg_e.as_ref(), Expr::Function(f) if crate::parse_agg::is_composite(f));
                    if alias_of_computed.is_some() || arithmetic {
                        let expr = match alias_of_computed {
                            Some(e) => e.clone(),
                            None => self.agg_expr(agg_e, 0)?,
                        };
                        return Ok(HavingExpr::CompareComputed { expr, op, value });
                    }
                    let agg = self.having_agg(agg_e, outputs)?;
                    if matches!(
                        self.aggs[agg].func,
                        AggFunc::VarPop
                            | AggFunc::StddevPop
                            | AggFunc::VarSamp
                            | AggFunc::StddevSamp
                    ) {
                        return unsupported(format!(
                            "{} in HAVING",
                            self.aggs[agg].func.sql_name()
                        ));
                    }
                    if !matches!(
                        self.aggs[agg].output_type(),
                        ColumnType::Integer | ColumnType::Float
                    ) {
                        return unsupported(format!(
                            "HAVING on a {} aggregate (compare numbers)",
                            self.aggs[agg].output_type()
                        ));
                    }
                    Ok(HavingExpr::Compare { agg, op, value })
                }
            },
            other => unsupported(format!("{} in HAVING", expr_kind(other))),
        }
    }

    pub(crate) fn having_agg(&mut self, e: &Expr, outputs: &[OutputColumn]) -> R<usize> {
        match e {
            Expr::Nested(inner) => self.having_agg(inner, outputs),
            Expr::Function(f) => {
                let (spec, _) = self.aggregate(f)?;
                Ok(self.agg_index(spec))
            }
            Expr::Identifier(i) => match outputs.iter().find(|o| o.name == i.value) {
                Some(OutputColumn {
                    expr: OutputExpr::Agg(a),
                    ..
                }) => Ok(*a),
                _ => unsupported(format!(
                    "HAVING on {i}: only aggregates can be compared in HAVING (use WHERE)"
                )),
            },
            other => unsupported(format!("{} in HAVING", expr_kind(other))),
        }
    }
}

/// A literal where a comparison expects one (a number, string, boolean, NULL or typed
/// string such as `DATE '2024-01-01'`).
pub(crate) fn is_literal(e: &Expr) -> bool {
    number(e).is_some()
        || match e {
            Expr::Value(_) | Expr::TypedString { .. } => true,
            Expr::Nested(i) => is_literal(i),
            _ => false,
        }
}

/// How a compared value is named in errors: its column, or the expression's text.
pub(crate) fn column_label(column: &str, e: &Expr) -> String {
    if column.starts_with(consort_model::scalar::DERIVED_PREFIX) {
        format!("{e}")
    } else {
        column.to_string()
    }
}

/// Whether `e` calls an aggregate anywhere (scalar functions do not count).
pub(crate) fn contains_aggregate_call(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_uppercase();
            let aggregate = crate::parse_agg::is_aggregate_name(&name) || f.over.is_some();
            aggregate
                || match &f.args {
                    FunctionArguments::List(l) => l.args.iter().any(|a| {
                        matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) if contains_aggregate_call(x))
                    }),
                    _ => false,
                }
        }
        Expr::Nested(i) | Expr::UnaryOp { expr: i, .. } => contains_aggregate_call(i),
        Expr::Cast { expr, .. }
        | Expr::Extract { expr, .. }
        | Expr::Floor { expr, .. }
        | Expr::Ceil { expr, .. } => contains_aggregate_call(expr),
        Expr::IsNull(x) | Expr::IsNotNull(x) => contains_aggregate_call(x),
        Expr::BinaryOp { left, right, .. } => {
            contains_aggregate_call(left) || contains_aggregate_call(right)
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate_call)
                || conditions.iter().any(|w| {
                    contains_aggregate_call(&w.condition) || contains_aggregate_call(&w.result)
                })
                || else_result.as_deref().is_some_and(contains_aggregate_call)
        }
        Expr::InList { expr, list, .. } => {
            contains_aggregate_call(expr) || list.iter().any(contains_aggregate_call)
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            contains_aggregate_call(expr)
                || contains_aggregate_call(low)
                || contains_aggregate_call(high)
        }
        _ => false,
    }
}

pub(crate) fn cmp_op(op: &BinaryOperator) -> Option<CmpOp> {
    Some(match op {
        BinaryOperator::Eq => CmpOp::Eq,
        BinaryOperator::NotEq => CmpOp::NotEq,
        BinaryOperator::Lt => CmpOp::Lt,
        BinaryOperator::LtEq => CmpOp::LtEq,
        BinaryOperator::Gt => CmpOp::Gt,
        BinaryOperator::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

/// `a op b` ⇔ `b flip(op) a`.
pub(crate) fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::LtEq => CmpOp::GtEq,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::GtEq => CmpOp::LtEq,
        o => o,
    }
}

/// A numeric literal's text, with its sign.
pub(crate) fn number(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(s, _) => Some(s.clone()),
            _ => None,
        },
        Expr::Nested(i) => number(i),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => number(expr).map(|s| format!("-{s}")),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => number(expr),
        _ => None,
    }
}

/// A literal typed for `column` of type `ty`.
pub(crate) fn literal(e: &Expr, ty: ColumnType, column: &str) -> R<Value> {
    let mismatch = |what: &str| {
        QueryError::Type(format!(
            "literal {what} does not fit {ty} column {column:?}"
        ))
    };
    if let Some(n) = number(e) {
        return match ty {
            ColumnType::Integer => n
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| mismatch(&n)),
            ColumnType::Float => match n.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                _ => Err(mismatch(&n)),
            },
            _ => Err(mismatch(&n)),
        };
    }
    let text = match e {
        Expr::Nested(i) => return literal(i, ty, column),
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => s.clone(),
            SqlValue::Boolean(b) if ty == ColumnType::Boolean => return Ok(Value::Boolean(*b)),
            SqlValue::Boolean(b) => return Err(mismatch(&b.to_string().to_uppercase())),
            SqlValue::Null => {
                return Err(QueryError::Invalid(format!(
                    "comparison of {column:?} with NULL is never true; use IS [NOT] NULL"
                )))
            }
            other => return unsupported(format!("literal {other}")),
        },
        Expr::TypedString { value, .. } => match &value.value {
            SqlValue::SingleQuotedString(s) => s.clone(),
            other => return unsupported(format!("literal {other}")),
        },
        other => return unsupported(format!("{} where a literal is expected", expr_kind(other))),
    };
    let shown = format!("'{text}'");
    match ty {
        ColumnType::Text => Ok(Value::Text(text.into())),
        ColumnType::Date => NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|_| mismatch(&shown)),
        ColumnType::Timestamp => {
            let t = DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    [
                        "%Y-%m-%d %H:%M:%S%.f",
                        "%Y-%m-%dT%H:%M:%S%.f",
                        "%Y-%m-%d %H:%M",
                    ]
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())
                    .map(|n| n.and_utc())
                });
            t.map(Value::Timestamp).ok_or_else(|| mismatch(&shown))
        }
        _ => Err(mismatch(&shown)),
    }
}
