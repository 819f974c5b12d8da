//! Aggregate calls of the SQL subset: which function, over which column (or derived
//! column), with DISTINCT, FILTER or WITHIN GROUP. Part of the planner (`parse`).

use consort_ledger::policy::Permission;
use consort_model::scalar::ArithOp;
use consort_model::ColumnType;
use sqlparser::ast::{
    BinaryOperator, DataType, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, UnaryOperator,
};

use crate::error::QueryError;
use crate::parse::{unsupported, R};
use crate::parse_expr::{contains_aggregate_call, expr_kind, number, Ctx};
use crate::parse_scalar::is_scalar_function;
use crate::plan::{AggExpr, AggFunc, AggSpec, Fraction};

/// Two-argument statistics planned as arithmetic over ordinary aggregates of derived
/// columns (`composite`).
const COMPOSITES: [&str; 8] = [
    "COVAR_POP",
    "COVAR_SAMP",
    "REGR_SLOPE",
    "REGR_INTERCEPT",
    "REGR_COUNT",
    "REGR_AVGX",
    "REGR_AVGY",
    "CORR",
];

/// Whether `f` is one of [`COMPOSITES`].
pub(crate) fn is_composite(f: &Function) -> bool {
    COMPOSITES.contains(&f.name.to_string().to_ascii_uppercase().as_str())
}

/// The aggregate functions of the subset (upper case), aliases included.
const AGGREGATES: [&str; 15] = [
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "VAR_POP",
    "STDDEV_POP",
    "VAR_SAMP",
    "STDDEV_SAMP",
    "VARIANCE",
    "STDDEV",
    "MEDIAN",
    "PERCENTILE_CONT",
    "PERCENTILE_DISC",
    "MODE",
];

/// Whether `name` (upper case) is an aggregate function.
pub(crate) fn is_aggregate_name(name: &str) -> bool {
    AGGREGATES.contains(&name) || COMPOSITES.contains(&name)
}

fn numeric(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Integer | ColumnType::Float)
}

impl Ctx<'_> {
    /// Plans arithmetic over aggregates (`SUM(a) / SUM(b)`): aggregate calls, numeric
    /// literals, `+ - * / %`, unary minus, parentheses and `CAST(… AS DOUBLE)`.
    pub(crate) fn agg_expr(&mut self, e: &Expr, depth: usize) -> R<AggExpr> {
        if depth > crate::bounds::MAX_EXPR_DEPTH {
            return Err(QueryError::Invalid(
                "arithmetic over aggregates nested too deep".into(),
            ));
        }
        let next = depth + 1;
        match e {
            Expr::Nested(inner) => self.agg_expr(inner, next),
            Expr::Function(f) if is_composite(f) => self.composite(f),
            Expr::Function(f) if !is_scalar_function(f) => {
                let (spec, _) = self.aggregate(f)?;
                if !numeric(spec.output_type()) {
                    return unsupported(format!(
                        "`{f}` in arithmetic over aggregates (a {} value)",
                        spec.output_type()
                    ));
                }
                Ok(AggExpr::Agg(self.agg_index(spec)))
            }
            Expr::Value(_) => {
                let Some(text) = number(e) else {
                    return unsupported(format!(
                        "`{e}` in arithmetic over aggregates (numbers only)"
                    ));
                };
                if let Ok(i) = text.parse::<i64>() {
                    return Ok(AggExpr::Integer(i));
                }
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(AggExpr::Float(v)),
                    _ => Err(QueryError::Type(format!("bad number {text}"))),
                }
            }
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => Ok(AggExpr::Negate(Box::new(self.agg_expr(expr, next)?))),
            Expr::UnaryOp {
                op: UnaryOperator::Plus,
                expr,
            } => self.agg_expr(expr, next),
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => ArithOp::Add,
                    BinaryOperator::Minus => ArithOp::Sub,
                    BinaryOperator::Multiply => ArithOp::Mul,
                    BinaryOperator::Divide => ArithOp::Div,
                    BinaryOperator::Modulo => ArithOp::Rem,
                    other => {
                        return unsupported(format!(
                            "operator {other} over aggregates (use + - * / %)"
                        ))
                    }
                };
                let e = AggExpr::Arith {
                    op,
                    left: Box::new(self.agg_expr(left, next)?),
                    right: Box::new(self.agg_expr(right, next)?),
                };
                if op == ArithOp::Rem && e.result_type(&self.aggs) != ColumnType::Integer {
                    return Err(QueryError::Type(format!(
                        "% over aggregates takes integers, in `{left} % {right}`"
                    )));
                }
                Ok(e)
            }
            Expr::Cast {
                expr,
                data_type:
                    DataType::Double(_)
                    | DataType::DoublePrecision
                    | DataType::Real
                    | DataType::Float(_)
                    | DataType::Float64
                    | DataType::Float8
                    | DataType::Numeric(_)
                    | DataType::Decimal(_),
                ..
            } => Ok(AggExpr::ToFloat(Box::new(self.agg_expr(expr, next)?))),
            Expr::Identifier(i) => unsupported(format!(
                "column {i} outside an aggregate in arithmetic over aggregates"
            )),
            other => unsupported(format!(
                "{} in arithmetic over aggregates",
                expr_kind(other)
            )),
        }
    }

    /// `COVAR_POP(y, x)` and its kin, over the rows where both are non-NULL, as
    /// PostgreSQL defines them, from AVG, VAR_POP and COUNT of three derived columns
    /// (x and y where the other is not NULL, and x·y):
    /// COVAR_POP = AVG(xy) − AVG(x)·AVG(y); COVAR_SAMP = COVAR_POP·n/(n − 1);
    /// REGR_SLOPE = COVAR_POP / VAR_POP(x); REGR_INTERCEPT = AVG(y) − SLOPE·AVG(x);
    /// REGR_COUNT = n; REGR_AVGX/AVGY = AVG(x)/AVG(y).
    fn composite(&mut self, f: &Function) -> R<AggExpr> {
        let fname = f.name.to_string().to_ascii_uppercase();
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            return unsupported(format!("FILTER, OVER or WITHIN GROUP on {fname}"));
        }
        let FunctionArguments::List(list) = &f.args else {
            return Err(QueryError::Invalid(format!("{fname} takes (y, x)")));
        };
        if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
            return unsupported(format!("DISTINCT or clauses inside {fname}"));
        }
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(y)), FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] =
            list.args.as_slice()
        else {
            return Err(QueryError::Invalid(format!(
                "{fname} takes two values (y, x)"
            )));
        };
        if contains_aggregate_call(x) || contains_aggregate_call(y) {
            return unsupported(format!("nested aggregate in {fname}"));
        }
        let derived = |text: String| -> R<Expr> {
            sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_expr())
                .map_err(|e| QueryError::Invalid(format!("{fname}: {e}")))
        };
        let xs = derived(format!("CASE WHEN ({y}) IS NOT NULL THEN ({x}) END"))?;
        let ys = derived(format!("CASE WHEN ({x}) IS NOT NULL THEN ({y}) END"))?;
        let xy = derived(format!("({x}) * ({y})"))?;
        let mut agg = |func: AggFunc, e: &Expr| -> R<AggExpr> {
            let (column, column_type) = self.value_column(e, Permission::Aggregate)?;
            if !numeric(column_type) {
                return Err(QueryError::Type(format!(
                    "{fname} of a {column_type} value (numbers only)"
                )));
            }
            Ok(AggExpr::Agg(self.agg_index(AggSpec {
                func,
                column: Some(column),
                column_type,
                fraction: None,
            })))
        };
        let avg_x = agg(AggFunc::Avg, &xs)?;
        let avg_y = agg(AggFunc::Avg, &ys)?;
        let avg_xy = agg(AggFunc::Avg, &xy)?;
        let n = agg(AggFunc::Count, &xy)?;
        let arith = |op: ArithOp, l: AggExpr, r: AggExpr| AggExpr::Arith {
            op,
            left: Box::new(l),
            right: Box::new(r),
        };
        let covar = arith(
            ArithOp::Sub,
            avg_xy,
            arith(ArithOp::Mul, avg_x.clone(), avg_y.clone()),
        );
        Ok(match fname.as_str() {
            "COVAR_POP" => covar,
            "COVAR_SAMP" => arith(
                ArithOp::Div,
                arith(ArithOp::Mul, covar, AggExpr::ToFloat(Box::new(n.clone()))),
                arith(ArithOp::Sub, n, AggExpr::Integer(1)),
            ),
            "REGR_COUNT" => n,
            "REGR_AVGX" => avg_x,
            "REGR_AVGY" => avg_y,
            "CORR" => {
                // COVAR_POP / √VAR_POP(x) / √VAR_POP(y): each step stays in range.
                let sd = |v: AggExpr| AggExpr::Sqrt(Box::new(AggExpr::ZeroBelow(Box::new(v), 16)));
                let sd_x = sd(agg(AggFunc::VarPop, &xs)?);
                let sd_y = sd(agg(AggFunc::VarPop, &ys)?);
                arith(ArithOp::Div, arith(ArithOp::Div, covar, sd_x), sd_y)
            }
            _ => {
                // PostgreSQL gives NULL when VAR_POP(x) is 0; ours is 0 only up to a few
                // ulp of rounding, so such a variance counts as 0.
                let var_x = AggExpr::ZeroBelow(Box::new(agg(AggFunc::VarPop, &xs)?), 16);
                let slope = arith(ArithOp::Div, covar, var_x);
                if fname == "REGR_SLOPE" {
                    slope
                } else {
                    arith(ArithOp::Sub, avg_y, arith(ArithOp::Mul, slope, avg_x))
                }
            }
        })
    }

    /// Plans one aggregate call; returns it and its SQL text (the default output name).
    pub(crate) fn aggregate(&mut self, f: &Function) -> R<(AggSpec, String)> {
        let fname = f.name.to_string().to_ascii_uppercase();
        if f.over.is_some() {
            return unsupported(format!("window function {fname} … OVER"));
        }
        let func = match fname.as_str() {
            "COUNT" => AggFunc::Count,
            "SUM" => AggFunc::Sum,
            "AVG" => AggFunc::Avg,
            "MIN" => AggFunc::Min,
            "MAX" => AggFunc::Max,
            "VAR_POP" => AggFunc::VarPop,
            "STDDEV_POP" => AggFunc::StddevPop,
            "VAR_SAMP" | "VARIANCE" => AggFunc::VarSamp,
            "STDDEV_SAMP" | "STDDEV" => AggFunc::StddevSamp,
            "MEDIAN" | "PERCENTILE_CONT" => AggFunc::PercentileCont,
            "PERCENTILE_DISC" => AggFunc::PercentileDisc,
            _ => return unsupported(format!("function {}", f.name)),
        };
        if f.null_treatment.is_some() {
            return unsupported(format!("IGNORE/RESPECT NULLS on {fname}"));
        }
        if !matches!(f.parameters, FunctionArguments::None) {
            return unsupported(format!("parametric function {fname}"));
        }
        let list = match &f.args {
            FunctionArguments::List(l) => l,
            FunctionArguments::Subquery(_) => return unsupported("subquery"),
            FunctionArguments::None => {
                return Err(QueryError::Invalid(format!("{fname} needs an argument")))
            }
        };
        if !list.clauses.is_empty() {
            return unsupported(format!("clauses inside {fname}(…)"));
        }
        let distinct = match list.duplicate_treatment {
            None | Some(DuplicateTreatment::All) => false,
            Some(DuplicateTreatment::Distinct) => true,
        };
        let func = match (func, distinct) {
            (f, false) => f,
            (AggFunc::Count, true) => AggFunc::CountDistinct,
            (AggFunc::Sum, true) => AggFunc::SumDistinct,
            // MIN/MAX(DISTINCT x) are MIN/MAX(x).
            (f @ (AggFunc::Min | AggFunc::Max), true) => f,
            (_, true) => return unsupported(format!("{fname}(DISTINCT …)")),
        };
        let args: Vec<&FunctionArgExpr> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(a) => Ok(a),
                _ => unsupported(format!("named argument in {fname}")),
            })
            .collect::<R<_>>()?;
        // PERCENTILE_x(p) WITHIN GROUP (ORDER BY value); MEDIAN(value) is p = 0.5.
        let (arg, fraction) = if fname.starts_with("PERCENTILE") {
            let [FunctionArgExpr::Expr(p)] = args.as_slice() else {
                return Err(QueryError::Invalid(format!(
                    "{fname} takes one fraction, as in {fname}(0.5) WITHIN GROUP (ORDER BY x)"
                )));
            };
            let fraction = number(p)
                .and_then(|s| s.parse::<f64>().ok())
                .and_then(Fraction::new)
                .ok_or_else(|| {
                    QueryError::Invalid(format!("{fname}({p}): the fraction must be in [0, 1]"))
                })?;
            let [order] = f.within_group.as_slice() else {
                return Err(QueryError::Invalid(format!(
                    "{fname} needs WITHIN GROUP (ORDER BY one value)"
                )));
            };
            if order.options.nulls_first.is_some() || order.with_fill.is_some() {
                return unsupported(format!("NULLS FIRST/LAST or WITH FILL in {fname}"));
            }
            if order.options.asc == Some(false) {
                return unsupported(format!("{fname} WITHIN GROUP (ORDER BY … DESC)"));
            }
            (FunctionArgExpr::Expr(order.expr.clone()), Some(fraction))
        } else {
            if !f.within_group.is_empty() {
                return unsupported(format!("WITHIN GROUP on {fname}"));
            }
            let [arg] = args.as_slice() else {
                return Err(QueryError::Invalid(format!(
                    "{fname} takes one argument, got {}",
                    args.len()
                )));
            };
            let half = (fname == "MEDIAN").then(|| Fraction::new(0.5)).flatten();
            ((*arg).clone(), half)
        };
        let spec = |column: String, column_type: ColumnType| AggSpec {
            func,
            column: Some(column),
            column_type,
            fraction,
        };
        if let Some(cond) = &f.filter {
            // agg(x) FILTER (WHERE c) is agg(CASE WHEN c THEN x END), COUNT(*) FILTER
            // (WHERE c) is COUNT(CASE WHEN c THEN 1 END): one derived column either way.
            if contains_aggregate_call(cond) {
                return unsupported(format!("an aggregate in the FILTER of {fname}"));
            }
            let value = match &arg {
                FunctionArgExpr::Wildcard if func == AggFunc::Count => None,
                FunctionArgExpr::Expr(e) if !contains_aggregate_call(e) => Some(e),
                FunctionArgExpr::Expr(_) => {
                    return unsupported(format!("nested aggregate in {fname}"))
                }
                _ => return unsupported(format!("this argument of {fname} with FILTER")),
            };
            let (col, ty) = self.filtered_column(value, cond)?;
            check_type(func, &fname, ty, &col, f)?;
            return Ok((spec(col, ty), f.to_string()));
        }
        match arg {
            FunctionArgExpr::Wildcard if func == AggFunc::Count => Ok((
                AggSpec {
                    func: AggFunc::CountRows,
                    column: None,
                    column_type: ColumnType::Integer,
                    fraction: None,
                },
                "COUNT(*)".into(),
            )),
            FunctionArgExpr::Wildcard => unsupported(format!("{fname}(*)")),
            FunctionArgExpr::QualifiedWildcard(n) => unsupported(format!("{fname}({n}.*)")),
            FunctionArgExpr::Expr(e) => {
                if contains_aggregate_call(&e) {
                    return unsupported(format!("nested aggregate in {fname}"));
                }
                let (col, ty) = match &e {
                    Expr::Identifier(i) => self.column(i)?,
                    // An expression: the owners compute it as a derived column.
                    e => self.value_column(e, Permission::Aggregate)?,
                };
                check_type(func, &fname, ty, &col, f)?;
                // A derived column's own columns were recorded when it was planned.
                if self.src.schema.index_of(&col).is_some() {
                    self.use_col(&col, Permission::Aggregate);
                }
                let text = if fraction.is_some() || distinct {
                    f.to_string()
                } else {
                    format!("{fname}({e})")
                };
                Ok((spec(col, ty), text))
            }
        }
    }
}

/// Which value types each aggregate takes.
fn check_type(func: AggFunc, fname: &str, ty: ColumnType, col: &str, f: &Function) -> R<()> {
    match func {
        AggFunc::Count | AggFunc::CountRows => Ok(()),
        // Any type: the compute parties compare values for equality only.
        AggFunc::CountDistinct => Ok(()),
        AggFunc::Min | AggFunc::Max
            if !numeric(ty) && !matches!(ty, ColumnType::Date | ColumnType::Timestamp) =>
        {
            unsupported(format!(
                "{fname} of {ty} column {col:?} (MPC min/max takes numbers, dates and timestamps)"
            ))
        }
        AggFunc::Min | AggFunc::Max => Ok(()),
        AggFunc::PercentileCont | AggFunc::PercentileDisc if !numeric(ty) => unsupported(format!(
            "{fname} of {ty} column {col:?} (percentiles are numeric only)"
        )),
        _ if !numeric(ty) => Err(QueryError::Type(format!(
            "{fname} of a {ty} value in `{f}` (numbers only)"
        ))),
        _ => Ok(()),
    }
}
