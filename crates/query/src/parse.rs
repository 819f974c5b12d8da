//! SQL text → [`Plan`]: parses with sqlparser (generic dialect) and walks the AST,
//! accepting exactly the subset in the crate docs. Every construct outside it becomes a
//! one-line [`QueryError::Unsupported`] naming the construct.

use std::collections::BTreeMap;

use consort_ledger::dataset::{DatasetEntry, DatasetKind};
use consort_ledger::policy::{DatasetRef, Permission};
use consort_model::local_query::{LocalAggregate, LocalAggregateQuery, LocalSelect};
use consort_model::{Column, ColumnType, Schema};
use sqlparser::ast::{
    Expr, GroupByExpr, Ident, LimitClause, ObjectName, OrderByKind, Query, Select, SelectItem,
    SetExpr, Statement, TableFactor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::error::QueryError;
use crate::parse_expr::{contains_aggregate_call, expr_kind, number, Ctx};
use crate::parse_scalar::is_scalar_function;
use crate::plan::{Catalog, LocalWork, OrderKey, OutputColumn, OutputExpr, Plan};

pub(crate) type R<T> = Result<T, QueryError>;

pub(crate) fn unsupported<T>(what: impl Into<String>) -> R<T> {
    Err(QueryError::unsupported(what))
}

/// Resolves the FROM clause, the schema and the dataset references.
pub(crate) struct Source<'a> {
    pub name: String,
    pub schema: Schema,
    pub entries: Vec<&'a DatasetEntry>,
}

fn schema_of(e: &DatasetEntry) -> R<Schema> {
    let mut columns = Vec::new();
    for c in &e.record.columns {
        let ty = ColumnType::parse(&c.ty).ok_or_else(|| {
            QueryError::Type(format!(
                "dataset {} has column {:?} of unknown type {:?}",
                e.record.name, c.name, c.ty
            ))
        })?;
        columns.push(Column {
            name: c.name.clone(),
            ty,
            nullable: c.nullable,
        });
    }
    Ok(Schema { columns })
}

pub(crate) fn resolve_source<'a>(name: &ObjectName, catalog: &'a Catalog) -> R<Source<'a>> {
    let mut parts = Vec::new();
    for p in &name.0 {
        match p.as_ident() {
            Some(i) => parts.push(i.value.clone()),
            None => return unsupported(format!("table function {name} in FROM")),
        }
    }
    let (owner, dataset) = match parts.as_slice() {
        [d] => (None, d.clone()),
        [m, d] => {
            let owner = catalog
                .members
                .iter()
                .find(|(id, n)| n == m || id.to_string() == *m)
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    QueryError::UnknownDataset(format!("{m}.{d} (no member named {m:?})"))
                })?;
            (Some(owner), d.clone())
        }
        _ => return unsupported(format!("table name with {} parts ({name})", parts.len())),
    };
    let shown = match &owner {
        Some(_) => format!("{name}"),
        None => dataset.clone(),
    };
    let named: Vec<&DatasetEntry> = catalog
        .datasets
        .iter()
        .filter(|e| e.record.name == dataset && owner.is_none_or(|o| e.owner == o))
        .collect();
    let mut entries: Vec<&DatasetEntry> = named
        .iter()
        .copied()
        .filter(|e| e.record.kind == DatasetKind::Table)
        .collect();
    if entries.is_empty() {
        if !named.is_empty() {
            return Err(QueryError::Type(format!(
                "dataset {shown} is a files dataset; only table datasets can be queried"
            )));
        }
        return Err(QueryError::UnknownDataset(shown));
    }
    entries.sort_by(|a, b| (a.owner, &a.record.name).cmp(&(b.owner, &b.record.name)));
    let first = schema_of(entries[0])?;
    let mut schema = first.clone();
    for e in &entries[1..] {
        let s = schema_of(e)?;
        let same = s.columns.len() == first.columns.len()
            && s.columns
                .iter()
                .zip(&first.columns)
                .all(|(x, y)| x.name == y.name && x.ty == y.ty);
        if !same {
            return Err(QueryError::Type(format!(
                "dataset {shown}: the schemas of members {} and {} differ",
                entries[0].owner, e.owner
            )));
        }
        for (c, o) in schema.columns.iter_mut().zip(&s.columns) {
            c.nullable |= o.nullable;
        }
    }
    Ok(Source {
        name: dataset,
        schema,
        entries,
    })
}

fn check_query_shape(q: &Query) -> R<()> {
    if q.with.is_some() {
        return unsupported("WITH (common table expressions)");
    }
    if q.fetch.is_some() {
        return unsupported("FETCH");
    }
    if !q.locks.is_empty() {
        return unsupported("FOR UPDATE/SHARE");
    }
    if q.for_clause.is_some() {
        return unsupported("FOR XML/JSON");
    }
    if q.settings.is_some() {
        return unsupported("SETTINGS");
    }
    if q.format_clause.is_some() {
        return unsupported("FORMAT");
    }
    if !q.pipe_operators.is_empty() {
        return unsupported("pipe operators");
    }
    Ok(())
}

fn check_select_shape(s: &Select) -> R<()> {
    if s.distinct.is_some() {
        return unsupported("DISTINCT");
    }
    if s.top.is_some() {
        return unsupported("TOP");
    }
    if s.into.is_some() {
        return unsupported("SELECT INTO");
    }
    if s.exclude.is_some() {
        return unsupported("EXCLUDE");
    }
    if !s.lateral_views.is_empty() {
        return unsupported("LATERAL VIEW");
    }
    if s.prewhere.is_some() {
        return unsupported("PREWHERE");
    }
    if !s.cluster_by.is_empty() || !s.distribute_by.is_empty() || !s.sort_by.is_empty() {
        return unsupported("CLUSTER/DISTRIBUTE/SORT BY");
    }
    if !s.named_window.is_empty() {
        return unsupported("WINDOW clause (window functions)");
    }
    if s.qualify.is_some() {
        return unsupported("QUALIFY");
    }
    if s.connect_by.is_some() {
        return unsupported("CONNECT BY");
    }
    if s.value_table_mode.is_some() {
        return unsupported("SELECT AS VALUE/STRUCT");
    }
    Ok(())
}

fn limit_of(q: &Query) -> R<Option<u64>> {
    match &q.limit_clause {
        None => Ok(None),
        Some(LimitClause::OffsetCommaLimit { .. }) => unsupported("OFFSET"),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if offset.is_some() {
                return unsupported("OFFSET");
            }
            if !limit_by.is_empty() {
                return unsupported("LIMIT BY");
            }
            match limit {
                None => Ok(None),
                Some(e) => number(e)
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(Some)
                    .ok_or_else(|| {
                        QueryError::Invalid(format!("LIMIT needs a non-negative integer, got {e}"))
                    }),
            }
        }
    }
}

pub(crate) fn plan_sql(sql: &str, catalog: &Catalog) -> R<Plan> {
    let mut stmts = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| QueryError::Syntax(e.to_string()))?;
    let stmt = match stmts.as_mut_slice() {
        [s] => s,
        [] => return Err(QueryError::Syntax("empty query".into())),
        _ => return unsupported("more than one statement"),
    };
    crate::bounds::check_depth(stmt)?;
    let Statement::Query(q) = stmt else {
        let text = stmt.to_string();
        let word = text.split_whitespace().next().unwrap_or("statement");
        return unsupported(format!("{word} statement (only SELECT)"));
    };
    check_query_shape(q)?;
    let is_join = matches!(q.body.as_ref(),
        SetExpr::Select(s) if s.from.len() == 1 && !s.from[0].joins.is_empty());
    let joined = if is_join {
        Some(crate::parse_join::prepare(q, catalog)?)
    } else {
        None
    };
    let sel = match q.body.as_ref() {
        SetExpr::Select(s) => s,
        SetExpr::SetOperation { op, .. } => return unsupported(format!("{op}")),
        SetExpr::Query(_) => return unsupported("parenthesised subquery"),
        SetExpr::Values(_) => return unsupported("VALUES"),
        SetExpr::Table(_) => return unsupported("TABLE statement"),
        _ => return unsupported("this kind of query body"),
    };
    check_select_shape(sel)?;
    let (src, join_from) = match joined {
        Some((src, join)) => (src, Some(join)),
        None => (single_source(sel, catalog)?, None),
    };
    plan_select(sql, q, sel, src, join_from)
}

fn single_source<'a>(sel: &Select, catalog: &'a Catalog) -> R<Source<'a>> {
    let from = match sel.from.as_slice() {
        [] => return Err(QueryError::Invalid("missing FROM".into())),
        [f] => f,
        _ => return unsupported("several tables in FROM (implicit join)"),
    };
    if !from.joins.is_empty() {
        return unsupported("JOIN");
    }
    let name = match &from.relation {
        TableFactor::Table {
            name, alias, args, ..
        } => {
            if args.is_some() {
                return unsupported(format!("table function {name}"));
            }
            if alias.is_some() {
                return unsupported("table alias (outside a JOIN)");
            }
            name
        }
        TableFactor::Derived { .. } => return unsupported("subquery in FROM"),
        TableFactor::NestedJoin { .. } => return unsupported("JOIN"),
        _ => return unsupported("this kind of FROM clause"),
    };
    resolve_source(name, catalog)
}

/// What a GROUP BY item groups by: a column, a SELECT alias (when no column has that
/// name), a SELECT position (`GROUP BY 1`), or an expression.
fn group_target<'e>(
    g: &'e Expr,
    items: &[(&'e Expr, Option<&Ident>)],
    cx: &Ctx<'_>,
) -> R<&'e Expr> {
    if let Some(n) = number(g) {
        let item = n
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| items.get(i));
        return match item {
            Some((e, _)) if contains_aggregate_call(e) => Err(QueryError::Invalid(format!(
                "GROUP BY {n} refers to an aggregate"
            ))),
            Some((e, _)) => Ok(e),
            None => Err(QueryError::Invalid(format!(
                "GROUP BY {n}: the SELECT list has {} columns",
                items.len()
            ))),
        };
    }
    if let Expr::Identifier(i) = g {
        if cx.src.schema.index_of(&i.value).is_none() {
            if let Some((e, _)) = items
                .iter()
                .find(|(_, alias)| alias.is_some_and(|a| a.value == i.value))
            {
                return Ok(e);
            }
        }
    }
    Ok(g)
}

fn plan_select(
    sql: &str,
    q: &Query,
    sel: &Select,
    src: Source<'_>,
    join_from: Option<crate::parse_join::JoinFrom<'_>>,
) -> R<Plan> {
    let mut cx = Ctx {
        src: &src,
        uses: BTreeMap::new(),
        aggs: Vec::new(),
        derived: Vec::new(),
    };
    let filter = sel
        .selection
        .as_ref()
        .map(|w| cx.predicate(w))
        .transpose()?;
    let group_exprs = match &sel.group_by {
        GroupByExpr::All(_) => return unsupported("GROUP BY ALL"),
        GroupByExpr::Expressions(exprs, mods) => {
            if !mods.is_empty() {
                return unsupported("GROUP BY modifiers (ROLLUP/CUBE/TOTALS)");
            }
            exprs
        }
    };
    let mut items: Vec<(&Expr, Option<&Ident>)> = Vec::new();
    for it in &sel.projection {
        match it {
            SelectItem::UnnamedExpr(e) => items.push((e, None)),
            SelectItem::ExprWithAlias { expr, alias } => items.push((expr, Some(alias))),
            SelectItem::Wildcard(_) => return unsupported("SELECT *"),
            SelectItem::QualifiedWildcard(k, _) => return unsupported(format!("SELECT {k}")),
        }
    }
    let mut group_by: Vec<String> = Vec::new();
    for g in group_exprs {
        let expr = group_target(g, &items, &cx)?;
        let (c, _) = cx.value_column(expr, Permission::Group)?;
        if group_by.contains(&c) {
            return Err(QueryError::Invalid(format!(
                "{g} appears twice in GROUP BY"
            )));
        }
        group_by.push(c);
    }
    let aggregate_query = !group_by.is_empty()
        || sel.having.is_some()
        || items.iter().any(|(e, _)| contains_aggregate_call(e));
    let limit = limit_of(q)?;
    let mut output = Vec::new();
    let mut computed = Vec::new();
    let mut select_cols: Vec<String> = Vec::new();
    for (e, alias) in &items {
        let (expr, text) = match e {
            Expr::Identifier(i) => {
                let (c, _) = cx.column(i)?;
                if aggregate_query {
                    match group_by.iter().position(|g| *g == c) {
                        Some(k) => (OutputExpr::Key(k), i.value.clone()),
                        None => {
                            return Err(QueryError::Invalid(format!(
                                "column {c:?} must appear in GROUP BY or inside an aggregate"
                            )))
                        }
                    }
                } else {
                    cx.use_col(&c, Permission::Plain);
                    let k = match select_cols.iter().position(|s| *s == c) {
                        Some(k) => k,
                        None => {
                            select_cols.push(c);
                            select_cols.len() - 1
                        }
                    };
                    (OutputExpr::Column(k), i.value.clone())
                }
            }
            Expr::Function(f)
                if aggregate_query
                    && !is_scalar_function(f)
                    && !crate::parse_agg::is_composite(f) =>
            {
                let (spec, text) = cx.aggregate(f)?;
                (OutputExpr::Agg(cx.agg_index(spec)), text)
            }
            // Arithmetic over aggregates, evaluated in MPC.
            other if contains_aggregate_call(other) => {
                let e = cx.agg_expr(other, 0)?;
                computed.push(e);
                (OutputExpr::Computed(computed.len() - 1), other.to_string())
            }
            // A row expression: a group key, or (in a selection) a computed column.
            other if aggregate_query => {
                let (c, _) = cx.value_column(other, Permission::Group)?;
                match group_by.iter().position(|g| *g == c) {
                    Some(k) => (OutputExpr::Key(k), other.to_string()),
                    None => {
                        return Err(QueryError::Invalid(format!(
                            "`{other}` must appear in GROUP BY or inside an aggregate"
                        )))
                    }
                }
            }
            other => {
                let (c, _) = cx.value_column(other, Permission::Plain)?;
                let k = match select_cols.iter().position(|s| *s == c) {
                    Some(k) => k,
                    None => {
                        select_cols.push(c);
                        select_cols.len() - 1
                    }
                };
                (OutputExpr::Column(k), other.to_string())
            }
        };
        output.push(OutputColumn {
            name: alias.map(|a| a.value.clone()).unwrap_or(text),
            expr,
        });
    }
    if output.is_empty() {
        return Err(QueryError::Invalid("empty SELECT list".into()));
    }
    let having = match &sel.having {
        Some(h) => Some(cx.having(h, &output, &computed)?),
        None => None,
    };
    let mut order_by = Vec::new();
    if let Some(ob) = &q.order_by {
        let exprs = match &ob.kind {
            OrderByKind::All(_) => return unsupported("ORDER BY ALL"),
            OrderByKind::Expressions(e) => e,
        };
        if ob.interpolate.is_some() {
            return unsupported("INTERPOLATE");
        }
        for o in exprs {
            if o.options.nulls_first.is_some() {
                return unsupported("NULLS FIRST/LAST");
            }
            if o.with_fill.is_some() {
                return unsupported("WITH FILL");
            }
            let target = match &o.expr {
                Expr::Identifier(i) => {
                    if let Some(out) = output.iter().find(|c| c.name == i.value) {
                        out.expr
                    } else if let Some(k) = group_by.iter().position(|g| *g == i.value) {
                        OutputExpr::Key(k)
                    } else if let Some(k) = select_cols.iter().position(|c| *c == i.value) {
                        OutputExpr::Column(k)
                    } else {
                        cx.column(i)?;
                        return Err(QueryError::Invalid(format!(
                            "ORDER BY {i}: order by a selected column, a group key or an aggregate"
                        )));
                    }
                }
                Expr::Function(f) if aggregate_query && !is_scalar_function(f) => {
                    let (spec, _) = cx.aggregate(f)?;
                    OutputExpr::Agg(cx.agg_index(spec))
                }
                e if number(e).is_some() => {
                    let n = number(e).and_then(|n| n.parse::<usize>().ok());
                    match n.and_then(|n| n.checked_sub(1)).and_then(|i| output.get(i)) {
                        Some(out) => out.expr,
                        None => {
                            return Err(QueryError::Invalid(format!(
                                "ORDER BY {e}: the SELECT list has {} columns",
                                output.len()
                            )))
                        }
                    }
                }
                // An expression that is in the SELECT list orders by that column.
                other => match items
                    .iter()
                    .position(|(e, _)| e.to_string() == other.to_string())
                {
                    Some(i) => output[i].expr,
                    None => {
                        return unsupported(format!(
                            "{} in ORDER BY (order by a selected column, its alias or position)",
                            expr_kind(other)
                        ))
                    }
                },
            };
            order_by.push(OrderKey {
                target,
                descending: o.options.asc == Some(false),
            });
        }
    }
    let local = if aggregate_query {
        // COUNT(*) is always computed first: small-group suppression needs it.
        let mut partials = vec![LocalAggregate::CountRows];
        for a in &cx.aggs {
            for p in a.partials() {
                // COUNT of a derived column that is never NULL is COUNT(*): the owner need
                // not compute it (nor evaluate the expression once more for it).
                if let LocalAggregate::Count(c) = &p {
                    let never_null = cx
                        .derived
                        .iter()
                        .find(|d| d.name == *c)
                        .is_some_and(|d| d.expr.never_null(&src.schema));
                    if never_null {
                        continue;
                    }
                }
                if !partials.contains(&p) {
                    partials.push(p);
                }
            }
        }
        LocalWork::Aggregate(LocalAggregateQuery {
            derived: cx.derived.clone(),
            filter,
            group_by,
            aggregates: partials,
        })
    } else {
        LocalWork::Select(LocalSelect {
            derived: cx.derived.clone(),
            columns: select_cols,
            filter,
            mask: None,
        })
    };
    let mut datasets: Vec<DatasetRef> = src
        .entries
        .iter()
        .map(|e| DatasetRef {
            owner: e.owner,
            name: e.record.name.clone(),
            version_tx: e.tx_id,
        })
        .collect();
    datasets.sort_by(|a, b| (a.owner, &a.name).cmp(&(b.owner, &b.name)));
    if join_from.is_some() && !cx.derived.is_empty() {
        return unsupported("expressions in a JOIN query");
    }
    if join_from.is_some() && cx.aggs.iter().any(|a| a.func.needs_value_list()) {
        return unsupported("COUNT/SUM(DISTINCT …), MEDIAN and percentiles in a JOIN query");
    }
    let plan = Plan {
        sql: sql.to_string(),
        datasets,
        dataset: src.name.clone(),
        schema: src.schema.clone(),
        local,
        output,
        aggregates: cx.aggs,
        having,
        order_by,
        limit,
        uses: cx.uses,
        computed,
        join: None,
    };
    match join_from {
        Some(j) => crate::parse_join::finish(plan, j),
        None => Ok(plan),
    }
}
