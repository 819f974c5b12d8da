//! `EXPLAIN <query>`: what a plan does, in words. Each owner's local work (derived
//! columns, filter, groups, partial aggregates), what the compute nodes do in MPC, and what
//! is revealed to whom (docs/QUERY.md §6). Nothing is recorded on the ledger.

use consort_model::local_query::{LocalAggregate, Predicate};
use consort_model::scalar::ScalarExpr;
use consort_model::Value;

use crate::plan::{AggExpr, LocalWork, Plan};

/// The query inside `EXPLAIN <query>`, if `sql` is one.
pub fn explain_target(sql: &str) -> Option<&str> {
    let trimmed = sql.trim_start();
    let word = trimmed.get(..7)?;
    let rest = trimmed.get(7..)?;
    (word.eq_ignore_ascii_case("EXPLAIN") && rest.starts_with(char::is_whitespace))
        .then_some(rest.trim_start())
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Boolean(b) => b.to_string().to_uppercase(),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Date(d) => format!("DATE '{d}'"),
        Value::Timestamp(t) => format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")),
    }
}

fn list(parts: &[ScalarExpr], joiner: &str) -> String {
    let parts: Vec<String> = parts.iter().map(scalar).collect();
    format!("({})", parts.join(joiner))
}

/// An expression in SQL-like text (recursion bounded by the planner's depth limit).
fn scalar(e: &ScalarExpr) -> String {
    match e {
        ScalarExpr::Column(c) => c.clone(),
        ScalarExpr::Literal { value: v, .. } => value(v),
        ScalarExpr::Arith { op, left, right } => {
            format!("({} {} {})", scalar(left), op.symbol(), scalar(right))
        }
        ScalarExpr::Negate(x) => format!("-{}", scalar(x)),
        ScalarExpr::Concat(l, r) => format!("({} || {})", scalar(l), scalar(r)),
        ScalarExpr::Compare { op, left, right } => {
            format!("({} {} {})", scalar(left), op.symbol(), scalar(right))
        }
        ScalarExpr::And(parts) => list(parts, " AND "),
        ScalarExpr::Or(parts) => list(parts, " OR "),
        ScalarExpr::Not(x) => format!("NOT {}", scalar(x)),
        ScalarExpr::Like {
            expr,
            pattern,
            negated,
        } => format!(
            "({} {}LIKE {})",
            scalar(expr),
            if *negated { "NOT " } else { "" },
            value(&Value::Text(pattern.clone().into()))
        ),
        ScalarExpr::IsNull { expr, negated } => format!(
            "{} IS {}NULL",
            scalar(expr),
            if *negated { "NOT " } else { "" }
        ),
        ScalarExpr::Case { whens, otherwise } => {
            let mut s = "CASE".to_string();
            for (c, v) in whens {
                s += &format!(" WHEN {} THEN {}", scalar(c), scalar(v));
            }
            if let Some(o) = otherwise {
                s += &format!(" ELSE {}", scalar(o));
            }
            s + " END"
        }
        ScalarExpr::Coalesce(args) => format!("COALESCE{}", list(args, ", ")),
        ScalarExpr::NullIf(a, b) => format!("NULLIF({}, {})", scalar(a), scalar(b)),
        ScalarExpr::Abs(x) => format!("ABS({})", scalar(x)),
        ScalarExpr::ToFloat(x) => format!("CAST({} AS DOUBLE)", scalar(x)),
        ScalarExpr::IntegerToText(x) => format!("CAST({} AS TEXT)", scalar(x)),
        ScalarExpr::Extract { part, expr } => {
            format!("EXTRACT({} FROM {})", part.name(), scalar(expr))
        }
        ScalarExpr::Math { func, arg } => format!("{}({})", func.name(), scalar(arg)),
        ScalarExpr::Sign(x) => format!("SIGN({})", scalar(x)),
        ScalarExpr::Length(x) => format!("LENGTH({})", scalar(x)),
        ScalarExpr::Round { arg, digits } => format!("ROUND({}, {digits})", scalar(arg)),
        ScalarExpr::Power(x, y) => format!("POWER({}, {})", scalar(x), scalar(y)),
        ScalarExpr::Extreme { greatest, args } => {
            let name = if *greatest { "GREATEST" } else { "LEAST" };
            format!("{name}{}", list(args, ", "))
        }
        ScalarExpr::CaseMap { upper, arg } => {
            format!(
                "{}({})",
                if *upper { "UPPER" } else { "LOWER" },
                scalar(arg)
            )
        }
        ScalarExpr::Substr { arg, start, len } => match len {
            Some(l) => format!("SUBSTR({}, {start}, {l})", scalar(arg)),
            None => format!("SUBSTR({}, {start})", scalar(arg)),
        },
        ScalarExpr::Trim { arg, side, ch } => format!(
            "TRIM({} {} FROM {})",
            side.name(),
            value(&Value::Text(ch.to_string().into())),
            scalar(arg)
        ),
        ScalarExpr::Replace { arg, from, to } => {
            format!("REPLACE({}, {}, {})", scalar(arg), scalar(from), scalar(to))
        }
        ScalarExpr::DateTrunc { unit, arg } => {
            format!("DATE_TRUNC('{}', {})", unit.name(), scalar(arg))
        }
        ScalarExpr::AddInterval { arg, unit, amount } => {
            format!("({} + INTERVAL '{amount}' {})", scalar(arg), unit.name())
        }
        ScalarExpr::DateDiff(l, r) => format!("({} - {})", scalar(l), scalar(r)),
        ScalarExpr::Cast { arg, to } => {
            format!("CAST({} AS {})", scalar(arg), to.as_str().to_uppercase())
        }
    }
}

fn predicate(p: &Predicate) -> String {
    let join = |ps: &[Predicate], j: &str| {
        let parts: Vec<String> = ps.iter().map(predicate).collect();
        format!("({})", parts.join(j))
    };
    match p {
        Predicate::Compare {
            column,
            op,
            value: v,
        } => format!("{column} {} {}", op.symbol(), value(v)),
        Predicate::And(ps) => join(ps, " AND "),
        Predicate::Or(ps) => join(ps, " OR "),
        Predicate::Not(q) => format!("NOT {}", predicate(q)),
        Predicate::In {
            column,
            values,
            negated,
        } => {
            let vs: Vec<String> = values.iter().map(value).collect();
            let not = if *negated { "NOT " } else { "" };
            format!("{column} {not}IN ({})", vs.join(", "))
        }
        Predicate::Between {
            column,
            low,
            high,
            negated,
        } => {
            let not = if *negated { "NOT " } else { "" };
            format!("{column} {not}BETWEEN {} AND {}", value(low), value(high))
        }
        Predicate::Like {
            column,
            pattern,
            negated,
        } => {
            let not = if *negated { "NOT " } else { "" };
            format!("{column} {not}LIKE '{}'", pattern.replace('\'', "''"))
        }
        Predicate::IsNull { column, negated } => {
            format!("{column} IS {}NULL", if *negated { "NOT " } else { "" })
        }
    }
}

fn partial(a: &LocalAggregate) -> String {
    match a {
        LocalAggregate::CountRows => "COUNT(*)".into(),
        LocalAggregate::Count(c) => format!("COUNT({c})"),
        LocalAggregate::Sum(c) => format!("SUM({c})"),
        LocalAggregate::SumSquares(c) => format!("SUM({c} * {c})"),
        LocalAggregate::Min(c) => format!("MIN({c})"),
        LocalAggregate::Max(c) => format!("MAX({c})"),
    }
}

/// Arithmetic over aggregates in SQL-like text.
fn agg_expr(e: &AggExpr, plan: &Plan) -> String {
    match e {
        AggExpr::Agg(i) => match plan.aggregates.get(*i) {
            Some(a) => match &a.column {
                Some(c) => format!("{}({c})", a.func.sql_name()),
                None => format!("{}(*)", a.func.sql_name()),
            },
            None => "?".into(),
        },
        AggExpr::Integer(v) => v.to_string(),
        AggExpr::Float(v) => format!("{v:?}"),
        AggExpr::Arith { op, left, right } => format!(
            "({} {} {})",
            agg_expr(left, plan),
            op.symbol(),
            agg_expr(right, plan)
        ),
        AggExpr::Negate(x) => format!("-{}", agg_expr(x, plan)),
        AggExpr::ToFloat(x) => format!("CAST({} AS DOUBLE)", agg_expr(x, plan)),
        AggExpr::Sqrt(x) => format!("SQRT({})", agg_expr(x, plan)),
        AggExpr::ZeroBelow(x, ulps) => {
            format!("ZERO_BELOW({}, {ulps}·2^-16)", agg_expr(x, plan))
        }
    }
}

/// The lines `EXPLAIN` prints for `plan`.
pub fn explain(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let owners: Vec<String> = plan
        .datasets
        .iter()
        .map(|d| format!("{} of {}", d.name, d.owner))
        .collect();
    out.push(format!("reads: {}", owners.join(", ")));
    let (derived, filter) = match &plan.local {
        LocalWork::Aggregate(q) => (&q.derived, &q.filter),
        LocalWork::Select(s) => (&s.derived, &s.filter),
    };
    out.push("each owner, in its own database:".into());
    for d in derived {
        out.push(format!("  computes {} = {}", d.name, scalar(&d.expr)));
    }
    if let Some(f) = filter {
        out.push(format!("  keeps the rows where {}", predicate(f)));
    }
    match &plan.local {
        LocalWork::Aggregate(q) => {
            if !q.group_by.is_empty() {
                out.push(format!("  groups by {}", q.group_by.join(", ")));
            }
            let parts: Vec<String> = q.aggregates.iter().map(partial).collect();
            out.push(format!("  computes {} per group", parts.join(", ")));
            out.push(
                "  secret-shares them to the compute nodes (and reveals its group keys to them)"
                    .into(),
            );
            for l in plan.value_lists() {
                out.push(format!(
                    "  secret-shares every {}non-NULL {} value with a secret group label                      (the compute nodes learn how many it sends)",
                    if l.distinct { "distinct " } else { "" },
                    l.column
                ));
            }
            out.push("the three compute nodes, in MPC:".into());
            out.push(
                "  add the owners' partials per group; suppress groups below the minimum group size"
                    .into(),
            );
            let aggs: Vec<String> = plan
                .aggregates
                .iter()
                .map(|a| match &a.column {
                    Some(c) => format!("{}({c})", a.func.sql_name()),
                    None => format!("{}(*)", a.func.sql_name()),
                })
                .collect();
            out.push(format!("  compute {}", aggs.join(", ")));
            if !plan.value_lists().is_empty() {
                out.push(
                    "  sort each group's shared values (shuffle, reveal group sizes, sort) for                      DISTINCT and percentiles"
                        .into(),
                );
            }
            for e in &plan.computed {
                out.push(format!(
                    "  evaluate {} on the shared aggregates (only the result is revealed)",
                    agg_expr(e, plan)
                ));
            }
            if plan.having.is_some() {
                out.push("  apply HAVING".into());
            }
        }
        LocalWork::Select(s) => {
            out.push(format!("  selects {}", s.columns.join(", ")));
            out.push("  shares the selected rows with the requester (a plain selection)".into());
        }
    }
    if !plan.order_by.is_empty() || plan.limit.is_some() {
        out.push(format!(
            "ordered by {} key(s){}",
            plan.order_by.len(),
            plan.limit
                .map(|l| format!(", limit {l}"))
                .unwrap_or_default()
        ));
    }
    let cols: Vec<String> = plan.output.iter().map(|c| c.name.clone()).collect();
    out.push(format!(
        "revealed to the requester: {} and the number of suppressed groups (docs/QUERY.md §6)",
        cols.join(", ")
    ));
    out.push(format!("plan hash {}", plan.hash()));
    out
}

#[cfg(test)]
mod tests {
    use super::explain_target;

    #[test]
    fn explain_is_a_prefix_word() {
        assert_eq!(explain_target("EXPLAIN SELECT 1"), Some("SELECT 1"));
        assert_eq!(explain_target("  explain\n SELECT 1"), Some("SELECT 1"));
        assert_eq!(explain_target("EXPLAINSELECT 1"), None);
        assert_eq!(explain_target("SELECT 1"), None);
        assert_eq!(explain_target("EXPLAIN"), None);
        assert_eq!(explain_target("ÉXPLAIN SELECT 1"), None);
    }
}
