//! `FROM a JOIN b ON a.k = b.k`: resolves both sides, rewrites every column reference of
//! the statement to its virtual name (`alias.column`) so that the single-table planner
//! (`parse`) plans the joined relation unchanged, then splits the result per side:
//! WHERE into one condition per side, the columns each side must supply, and the `join`
//! permission on both keys. Part of the planner.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use consort_ledger::policy::Permission;
use consort_model::local_query::{LocalAggregate, Predicate};
use consort_model::{Column, Schema};
use sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, Query,
    SelectItem, SetExpr, TableFactor, TableWithJoins,
};

use crate::error::QueryError;
use crate::parse::{resolve_source, unsupported, Source, R};
use crate::plan::{Catalog, JoinSide, JoinSpec, LocalWork, Plan};

/// One resolved side, before the plan exists.
pub(crate) struct Side<'a> {
    alias: String,
    source: Source<'a>,
}

/// Both sides and the key columns (plain names).
pub(crate) struct JoinFrom<'a> {
    sides: [Side<'a>; 2],
    keys: [String; 2],
}

fn side<'a>(relation: &TableFactor, catalog: &'a Catalog) -> R<Side<'a>> {
    let TableFactor::Table {
        name, alias, args, ..
    } = relation
    else {
        return match relation {
            TableFactor::Derived { .. } => unsupported("subquery in FROM"),
            TableFactor::NestedJoin { .. } => unsupported("parenthesised JOIN"),
            _ => unsupported("this kind of FROM clause"),
        };
    };
    if args.is_some() {
        return unsupported(format!("table function {name}"));
    }
    let source = resolve_source(name, catalog)?;
    let alias = match alias {
        Some(a) if !a.columns.is_empty() => return unsupported("column aliases on a table"),
        Some(a) => a.name.value.clone(),
        None => source.name.clone(),
    };
    if alias.contains('.') || alias.is_empty() {
        return Err(QueryError::Invalid(format!(
            "table alias {alias:?} must be a plain name without a dot"
        )));
    }
    Ok(Side { alias, source })
}

/// Resolves the FROM clause of a join and rewrites the statement's column references;
/// returns the virtual joined source (columns `alias.column`) and the join.
pub(crate) fn prepare<'a>(q: &mut Query, catalog: &'a Catalog) -> R<(Source<'a>, JoinFrom<'a>)> {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return unsupported("this kind of query body");
    };
    let from: &TableWithJoins = match sel.from.as_slice() {
        [f] => f,
        _ => return unsupported("several tables in FROM (implicit join)"),
    };
    let [join] = from.joins.as_slice() else {
        return unsupported("more than one JOIN");
    };
    let on = match &join.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => match c {
            JoinConstraint::On(e) => e.clone(),
            JoinConstraint::Using(_) => return unsupported("JOIN … USING (write ON a.k = b.k)"),
            JoinConstraint::Natural => return unsupported("NATURAL JOIN"),
            JoinConstraint::None => return Err(QueryError::Invalid("JOIN needs ON".into())),
        },
        JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => return unsupported("LEFT JOIN"),
        JoinOperator::Right(_) | JoinOperator::RightOuter(_) => return unsupported("RIGHT JOIN"),
        JoinOperator::FullOuter(_) => return unsupported("FULL JOIN"),
        JoinOperator::CrossJoin => return unsupported("CROSS JOIN"),
        _ => return unsupported("this kind of JOIN (only [INNER] JOIN … ON)"),
    };
    let left = side(&from.relation, catalog)?;
    let right = side(&join.relation, catalog)?;
    if left.alias == right.alias {
        return Err(QueryError::Invalid(format!(
            "both sides of the JOIN are called {:?}; give them different aliases",
            left.alias
        )));
    }
    let sides = [left, right];
    // Output aliases stay as they are, so ORDER BY and HAVING can still name them.
    let aliases: Vec<String> = sel
        .projection
        .iter()
        .filter_map(|it| match it {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    let mut failure: Option<QueryError> = None;
    let _ = visit_expressions_mut(q, |e| {
        match qualify(e, &sides, &aliases) {
            Ok(Some(name)) => *e = Expr::Identifier(Ident::new(name)),
            Ok(None) => {}
            Err(err) => {
                failure = Some(err);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let keys = keys_of(&on, &sides)?;
    let mut columns = Vec::new();
    for s in &sides {
        for c in &s.source.schema.columns {
            columns.push(Column {
                name: format!("{}.{}", s.alias, c.name),
                ty: c.ty,
                nullable: c.nullable,
            });
        }
    }
    let mut entries = sides[0].source.entries.clone();
    for e in &sides[1].source.entries {
        if !entries.iter().any(|x| x.tx_id == e.tx_id) {
            entries.push(e);
        }
    }
    let source = Source {
        name: format!("{} JOIN {}", sides[0].alias, sides[1].alias),
        schema: Schema { columns },
        entries,
    };
    Ok((source, JoinFrom { sides, keys }))
}

/// The virtual name of a column reference, `None` for anything else (or a name neither
/// side has, left for the planner to report or to match an output alias).
fn qualify(e: &Expr, sides: &[Side<'_>; 2], aliases: &[String]) -> R<Option<String>> {
    match e {
        Expr::CompoundIdentifier(parts) => {
            let [table, column] = parts.as_slice() else {
                return unsupported(format!(
                    "column reference with {} parts ({})",
                    parts.len(),
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                ));
            };
            let s = sides
                .iter()
                .find(|s| s.alias == table.value)
                .ok_or_else(|| {
                    QueryError::Invalid(format!(
                        "unknown table {:?} in {}.{} (the JOIN has {:?} and {:?})",
                        table.value, table.value, column.value, sides[0].alias, sides[1].alias
                    ))
                })?;
            if s.source.schema.index_of(&column.value).is_none() {
                return Err(QueryError::UnknownColumn {
                    dataset: s.source.name.clone(),
                    column: column.value.clone(),
                });
            }
            Ok(Some(format!("{}.{}", s.alias, column.value)))
        }
        Expr::Identifier(i) => {
            if aliases.contains(&i.value) || i.value.contains('.') {
                return Ok(None);
            }
            let holders: Vec<&Side<'_>> = sides
                .iter()
                .filter(|s| s.source.schema.index_of(&i.value).is_some())
                .collect();
            match holders.as_slice() {
                [] => Ok(None),
                [s] => Ok(Some(format!("{}.{}", s.alias, i.value))),
                _ => Err(QueryError::Invalid(format!(
                    "column {:?} is in both sides of the JOIN; write {}.{} or {}.{}",
                    i.value, sides[0].alias, i.value, sides[1].alias, i.value
                ))),
            }
        }
        _ => Ok(None),
    }
}

/// `ON a.k = b.k` (already rewritten): the key of each side, with equal types.
fn keys_of(on: &Expr, sides: &[Side<'_>; 2]) -> R<[String; 2]> {
    let shape = || {
        QueryError::Unsupported(format!(
            "JOIN condition `{on}` (only ON a.key = b.key, one column of each side)"
        ))
    };
    let on = strip(on);
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = on
    else {
        return Err(shape());
    };
    // The condition was parsed before the rewrite, so qualify its two names here.
    let name = |e: &Expr| -> R<String> {
        match qualify(strip(e), sides, &[])? {
            Some(n) => Ok(n),
            None => match strip(e) {
                Expr::Identifier(i) if i.value.contains('.') => Ok(i.value.clone()),
                Expr::Identifier(i) => Err(QueryError::UnknownColumn {
                    dataset: format!("{} JOIN {}", sides[0].alias, sides[1].alias),
                    column: i.value.clone(),
                }),
                _ => Err(shape()),
            },
        }
    };
    let (a, b) = (name(left)?, name(right)?);
    let split = |n: &str| -> Option<(usize, String)> {
        let (alias, col) = n.split_once('.')?;
        let i = sides.iter().position(|s| s.alias == alias)?;
        Some((i, col.to_string()))
    };
    let (Some((ia, ca)), Some((ib, cb))) = (split(&a), split(&b)) else {
        return Err(shape());
    };
    if ia == ib {
        return Err(QueryError::Invalid(format!(
            "the JOIN condition compares two columns of {:?}; it must compare a column of each side",
            sides[ia].alias
        )));
    }
    let mut keys = [String::new(), String::new()];
    keys[ia] = ca;
    keys[ib] = cb;
    let ty = |i: usize| {
        let s = &sides[i].source.schema;
        s.index_of(&keys[i]).map(|j| s.columns[j].ty)
    };
    if ty(0) != ty(1) {
        return Err(QueryError::Type(format!(
            "JOIN keys {}.{} and {}.{} have different types ({} and {})",
            sides[0].alias,
            keys[0],
            sides[1].alias,
            keys[1],
            ty(0).map(|t| t.as_str()).unwrap_or("?"),
            ty(1).map(|t| t.as_str()).unwrap_or("?"),
        )));
    }
    Ok(keys)
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(i) => strip(i),
        other => other,
    }
}

/// Which side (0 or 1) every column of a predicate belongs to, if it is only one.
fn side_of(p: &Predicate, spec: &[JoinSide; 2]) -> R<Option<usize>> {
    let mut cols = Vec::new();
    columns_of(p, &mut cols);
    let mut found: Option<usize> = None;
    for c in cols {
        let i = spec
            .iter()
            .position(|s| s.plain(&c).is_some())
            .ok_or_else(|| QueryError::arg(format!("column {c} of no side")))?;
        if found.is_some_and(|f| f != i) {
            return unsupported(
                "a WHERE condition that mixes columns of both sides of a JOIN \
                 (each AND-ed condition must use one side only)",
            );
        }
        found = Some(i);
    }
    Ok(found)
}

fn columns_of(p: &Predicate, out: &mut Vec<String>) {
    match p {
        Predicate::Compare { column, .. }
        | Predicate::In { column, .. }
        | Predicate::Between { column, .. }
        | Predicate::Like { column, .. }
        | Predicate::IsNull { column, .. } => out.push(column.clone()),
        Predicate::And(ps) | Predicate::Or(ps) => ps.iter().for_each(|p| columns_of(p, out)),
        Predicate::Not(p) => columns_of(p, out),
    }
}

fn rename(p: &Predicate, f: &impl Fn(&str) -> String) -> Predicate {
    match p {
        Predicate::Compare { column, op, value } => Predicate::Compare {
            column: f(column),
            op: *op,
            value: value.clone(),
        },
        Predicate::In {
            column,
            values,
            negated,
        } => Predicate::In {
            column: f(column),
            values: values.clone(),
            negated: *negated,
        },
        Predicate::Between {
            column,
            low,
            high,
            negated,
        } => Predicate::Between {
            column: f(column),
            low: low.clone(),
            high: high.clone(),
            negated: *negated,
        },
        Predicate::Like {
            column,
            pattern,
            negated,
        } => Predicate::Like {
            column: f(column),
            pattern: pattern.clone(),
            negated: *negated,
        },
        Predicate::IsNull { column, negated } => Predicate::IsNull {
            column: f(column),
            negated: *negated,
        },
        Predicate::And(ps) => Predicate::And(ps.iter().map(|p| rename(p, f)).collect()),
        Predicate::Or(ps) => Predicate::Or(ps.iter().map(|p| rename(p, f)).collect()),
        Predicate::Not(p) => Predicate::Not(Box::new(rename(p, f))),
    }
}

/// Turns the plan of the virtual joined relation into a join plan: WHERE split per side,
/// each side's payload columns, and `join` on both keys.
pub(crate) fn finish(mut plan: Plan, from: JoinFrom<'_>) -> R<Plan> {
    let LocalWork::Aggregate(q) = &mut plan.local else {
        return unsupported(
            "selecting raw columns over a JOIN (only aggregates of the joined rows are revealed)",
        );
    };
    let JoinFrom { sides, keys } = from;
    let mut spec: [JoinSide; 2] = [0, 1].map(|i| {
        let s = &sides[i];
        let mut owners: Vec<_> = s.source.entries.iter().map(|e| e.owner).collect();
        owners.sort();
        owners.dedup();
        JoinSide {
            alias: s.alias.clone(),
            dataset: s.source.name.clone(),
            owners,
            schema: s.source.schema.clone(),
            key: keys[i].clone(),
            filter: None,
            columns: Vec::new(),
        }
    });
    fn flatten(p: Predicate, out: &mut Vec<Predicate>) {
        match p {
            Predicate::And(ps) => ps.into_iter().for_each(|p| flatten(p, out)),
            p => out.push(p),
        }
    }
    let mut conjuncts = Vec::new();
    if let Some(p) = q.filter.take() {
        flatten(p, &mut conjuncts);
    }
    let mut parts: [Vec<Predicate>; 2] = [Vec::new(), Vec::new()];
    for c in conjuncts {
        match side_of(&c, &spec)? {
            Some(i) => {
                let s = &spec[i];
                parts[i].push(rename(&c, &|n| s.plain(n).unwrap_or(n).to_string()));
            }
            None => return Err(QueryError::arg("a WHERE condition without a column")),
        }
    }
    for (i, mut ps) in parts.into_iter().enumerate() {
        spec[i].filter = match ps.len() {
            0 => None,
            1 => ps.pop(),
            _ => Some(Predicate::And(ps)),
        };
    }
    let mut needed: Vec<&str> = q.group_by.iter().map(|g| g.as_str()).collect();
    for a in &q.aggregates {
        match a {
            LocalAggregate::CountRows => {}
            LocalAggregate::Count(c)
            | LocalAggregate::Sum(c)
            | LocalAggregate::SumSquares(c)
            | LocalAggregate::Min(c)
            | LocalAggregate::Max(c) => needed.push(c),
        }
    }
    for n in needed {
        let side = spec
            .iter_mut()
            .find(|s| s.plain(n).is_some())
            .ok_or_else(|| QueryError::arg(format!("column {n} of no side")))?;
        let plain = side.plain(n).unwrap_or(n).to_string();
        if !side.columns.contains(&plain) {
            side.columns.push(plain);
        }
    }
    for s in &spec {
        let key = s.qualified(&s.key);
        plan.uses.entry(key).or_default().insert(Permission::Join);
    }
    let [left, right] = spec;
    plan.join = Some(JoinSpec { left, right });
    Ok(plan)
}

/// The permissions a join plan needs on `dataset` of `owner`, keyed by plain column name
/// (the union over both sides when the owner holds the dataset on both).
pub(crate) fn uses_for(
    plan: &Plan,
    owner: &consort_crypto::MemberId,
    dataset: &str,
) -> BTreeMap<String, std::collections::BTreeSet<Permission>> {
    let mut out: BTreeMap<String, std::collections::BTreeSet<Permission>> = BTreeMap::new();
    let Some(j) = &plan.join else {
        return plan.uses.clone();
    };
    for s in j.sides() {
        if s.dataset != dataset || !s.owners.contains(owner) {
            continue;
        }
        for (c, ps) in &plan.uses {
            if let Some(p) = s.plain(c) {
                out.entry(p.to_string())
                    .or_default()
                    .extend(ps.iter().copied());
            }
        }
    }
    out
}
