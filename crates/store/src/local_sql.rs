//! SQL for owner-local queries, shared by the SQL backends. Every identifier is quoted
//! with the backend's quoting function and every literal becomes a bound parameter, so
//! names and values from a query are data, never SQL.
//!
//! Per-backend choices, so all backends agree with the in-memory reference:
//!
//! - Text order is code-point order: PostgreSQL compares `column COLLATE "C"`;
//!   MySQL/MariaDB compares `CAST(column AS BINARY)` (byte order, which for UTF-8 is
//!   code-point order, and no PAD SPACE: `'a' <> 'a '`), also for grouping and MIN/MAX;
//!   SQLite's default BINARY collation already is.
//! - `LIKE` is case-sensitive and has no escape character everywhere. PostgreSQL: LIKE
//!   is case-sensitive; its default escape `\` is neutralised by doubling every `\` in
//!   the bound pattern. MySQL/MariaDB: `column COLLATE utf8mb4_bin LIKE ?` (binary
//!   collation: case-sensitive, per character, trailing spaces significant), `\` doubled
//!   likewise. SQLite: its LIKE folds ASCII case, so every connection of the SQLite pool
//!   runs `PRAGMA case_sensitive_like = ON` (see `sqlite.rs`); SQLite LIKE has no default
//!   escape character.
//! - Dates and timestamps: SQLite binds the same fixed-width text it stores (which sorts
//!   chronologically); the servers bind native values.
//! - Integer `SUM`: PostgreSQL and MySQL return NUMERIC/DECIMAL; it is read as text and
//!   refused if it does not fit 64 bits. SQLite raises "integer overflow" itself.
//! - Group rows are sorted after fetching (see `local_check::sort_groups`), so no
//!   backend's collation decides the order.

use std::fmt::Write;

use super::local_check::{self, Agg, AggQuery, Col, Pred, SelectQuery};
use super::rules::{self, ROW_COLUMN};
use super::StoreError;
use consort_model::local_query::{LocalAggregateQuery, LocalSelect};
use consort_model::scalar::Derived;
use consort_model::value::{ColumnType, Row, Schema, Value};

/// Which SQL backend a statement is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    Sqlite,
    Postgres,
    Mysql,
}

/// How one output column of a statement is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Out {
    /// A value of the column type (group values, MIN/MAX, selected columns, float SUM).
    Typed(ColumnType),
    /// A count.
    Count,
    /// An integer SUM: text (PostgreSQL, MySQL) or an integer (SQLite).
    IntSum,
    /// A float.
    Float,
}

/// A rendered statement: SQL, parameters in order, and how to decode each output column
/// (after the leading row-number column of a selection).
#[derive(Debug)]
pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
    pub outputs: Vec<Out>,
}

pub(crate) struct Renderer {
    pub(crate) flavor: Flavor,
    quote: fn(&str) -> String,
    pub(crate) sql: String,
    params: Vec<Value>,
}

impl Renderer {
    fn new(flavor: Flavor) -> Self {
        let quote = match flavor {
            Flavor::Mysql => super::rules::quote_backtick,
            _ => super::rules::quote_double,
        };
        Self {
            flavor,
            quote,
            sql: String::new(),
            params: Vec::new(),
        }
    }

    pub(crate) fn q(&self, name: &str) -> String {
        (self.quote)(name)
    }

    /// Binds a value of a row expression and writes its placeholder (text stays text:
    /// comparisons wrap their operands themselves).
    pub(crate) fn plain_param(&mut self, v: Value) {
        self.params.push(v);
        if self.flavor == Flavor::Postgres {
            let _ = write!(self.sql, "${}", self.params.len());
        } else {
            self.sql.push('?');
        }
    }

    /// `FROM table`, or, with derived columns, `FROM (SELECT *, expr AS name … FROM
    /// table) AS t`, so that everything after may name them like the table's own.
    fn from(&mut self, table: &str, schema: &Schema, derived: &[Derived]) {
        let t = self.q(table);
        if derived.is_empty() {
            let _ = write!(self.sql, " FROM {t}");
            return;
        }
        self.sql.push_str(" FROM (SELECT *");
        for d in derived {
            self.sql.push_str(", ");
            self.scalar(&d.expr, schema);
            let name = self.q(&d.name);
            let _ = write!(self.sql, " AS {name}");
        }
        let alias = self.q("_consort_t");
        let _ = write!(self.sql, " FROM {t}) AS {alias}");
    }

    /// A column as compared and grouped: code-point order for text.
    fn ordered(&self, c: &Col) -> String {
        let q = self.q(&c.name);
        match (self.flavor, c.ty) {
            (Flavor::Postgres, ColumnType::Text) => format!("{q} COLLATE \"C\""),
            (Flavor::Mysql, ColumnType::Text) => format!("CAST({q} AS BINARY)"),
            _ => q,
        }
    }

    /// Binds a value and writes its placeholder.
    fn param(&mut self, v: Value) {
        let text = matches!(v, Value::Text(_));
        self.params.push(v);
        let ph = match self.flavor {
            Flavor::Postgres => format!("${}", self.params.len()),
            _ => "?".to_string(),
        };
        if self.flavor == Flavor::Mysql && text {
            let _ = write!(self.sql, "CAST({ph} AS BINARY)");
        } else {
            self.sql.push_str(&ph);
        }
    }

    fn pred(&mut self, p: &Pred) {
        match p {
            Pred::Compare(c, op, v) => {
                let lhs = self.ordered(c);
                let op = op.symbol();
                let _ = write!(self.sql, "({lhs} {op} ");
                self.param(v.clone());
                self.sql.push(')');
            }
            Pred::And(ps) | Pred::Or(ps) => {
                let (joiner, empty) = match p {
                    Pred::And(_) => (" AND ", "TRUE"),
                    _ => (" OR ", "FALSE"),
                };
                if ps.is_empty() {
                    self.sql.push_str(empty);
                    return;
                }
                self.sql.push('(');
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(joiner);
                    }
                    self.pred(p);
                }
                self.sql.push(')');
            }
            Pred::Not(p) => {
                self.sql.push_str("(NOT ");
                self.pred(p);
                self.sql.push(')');
            }
            Pred::In(c, vs, neg) => {
                let lhs = self.ordered(c);
                let not = if *neg { "NOT " } else { "" };
                let _ = write!(self.sql, "({lhs} {not}IN (");
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(", ");
                    }
                    self.param(v.clone());
                }
                self.sql.push_str("))");
            }
            Pred::Between(c, lo, hi, neg) => {
                let lhs = self.ordered(c);
                let not = if *neg { "NOT " } else { "" };
                let _ = write!(self.sql, "({lhs} {not}BETWEEN ");
                self.param(lo.clone());
                self.sql.push_str(" AND ");
                self.param(hi.clone());
                self.sql.push(')');
            }
            Pred::Like(c, pattern, neg) => {
                let q = self.q(&c.name);
                let not = if *neg { "NOT " } else { "" };
                let (lhs, pattern) = match self.flavor {
                    Flavor::Sqlite => (q, pattern.clone()),
                    Flavor::Postgres => (q, pattern.replace('\\', "\\\\")),
                    Flavor::Mysql => (
                        format!("{q} COLLATE utf8mb4_bin"),
                        pattern.replace('\\', "\\\\"),
                    ),
                };
                let _ = write!(self.sql, "({lhs} {not}LIKE ");
                // Bound as text but not cast to binary: LIKE must match per character.
                self.params.push(Value::Text(pattern.into()));
                match self.flavor {
                    Flavor::Postgres => {
                        let _ = write!(self.sql, "${}", self.params.len());
                    }
                    _ => self.sql.push('?'),
                }
                self.sql.push(')');
            }
            Pred::IsNull(c, neg) => {
                let q = self.q(&c.name);
                let not = if *neg { "NOT " } else { "" };
                let _ = write!(self.sql, "({q} IS {not}NULL)");
            }
        }
    }

    fn where_clause(&mut self, filter: &Option<Pred>) {
        if let Some(p) = filter {
            self.sql.push_str(" WHERE ");
            self.pred(p);
        }
    }

    fn as_double(&self, c: &Col) -> String {
        let q = self.q(&c.name);
        if c.ty == ColumnType::Float {
            return q;
        }
        match self.flavor {
            Flavor::Sqlite => format!("CAST({q} AS REAL)"),
            Flavor::Postgres => format!("CAST({q} AS DOUBLE PRECISION)"),
            Flavor::Mysql => format!("({q} + 0e0)"),
        }
    }

    fn aggregate(&self, a: &Agg) -> (String, Out) {
        match a {
            Agg::CountRows => ("COUNT(*)".into(), Out::Count),
            Agg::Count(c) => (format!("COUNT({})", self.q(&c.name)), Out::Count),
            Agg::Sum(c) if c.ty == ColumnType::Integer => {
                let q = self.q(&c.name);
                let sql = match self.flavor {
                    Flavor::Sqlite => format!("SUM({q})"),
                    Flavor::Postgres => format!("CAST(SUM({q}) AS TEXT)"),
                    Flavor::Mysql => format!("CAST(SUM({q}) AS CHAR)"),
                };
                (sql, Out::IntSum)
            }
            Agg::Sum(c) => (format!("SUM({})", self.q(&c.name)), Out::Float),
            Agg::SumSquares(c) => {
                let d = self.as_double(c);
                (format!("SUM({d} * {d})"), Out::Float)
            }
            Agg::Min(c) | Agg::Max(c) => {
                let min = matches!(a, Agg::Min(_));
                let sql = if self.flavor == Flavor::Postgres && c.ty == ColumnType::Boolean {
                    let f = if min { "bool_and" } else { "bool_or" };
                    format!("{f}({})", self.q(&c.name))
                } else {
                    let f = if min { "MIN" } else { "MAX" };
                    format!("{f}({})", self.ordered(c))
                };
                (sql, Out::Typed(c.ty))
            }
        }
    }
}

/// The backend-independent half of `DatasetStore::aggregate`: checks the table name and
/// the query against the schema and renders it for `flavor`. Returns the statement and
/// the number of group columns, for [`finish_aggregate`].
pub(crate) fn prepare_aggregate(
    flavor: Flavor,
    table: &str,
    schema: &Schema,
    query: &LocalAggregateQuery,
) -> Result<(Statement, usize), StoreError> {
    rules::validate_table_name(table)?;
    let q = local_check::check_aggregate(table, schema, query)?;
    let st = check_size(table, aggregate(flavor, table, schema, &q))?;
    Ok((st, q.group_by.len()))
}

/// Refuses a statement whose expressions rendered past `scalar_sql::MAX_SQL` (some
/// functions repeat an operand in the SQL, so nesting them multiplies its size).
fn check_size(table: &str, st: Statement) -> Result<Statement, StoreError> {
    if st.sql.len() > super::scalar_sql::MAX_SQL {
        return Err(StoreError::InvalidQuery(format!(
            "table {table}: the expressions are too large once written in this database's SQL \
             (more than {} bytes); nest fewer functions",
            super::scalar_sql::MAX_SQL
        )));
    }
    Ok(st)
}

/// Puts the fetched group rows in the canonical order and checks them.
pub(crate) fn finish_aggregate(
    table: &str,
    mut rows: Vec<Row>,
    groups: usize,
) -> Result<Vec<Row>, StoreError> {
    local_check::sort_groups(&mut rows, groups);
    local_check::check_result(table, &rows)?;
    Ok(rows)
}

/// The backend-independent half of `DatasetStore::select` (rows are decoded from
/// output 1: output 0 is the row number).
pub(crate) fn prepare_select(
    flavor: Flavor,
    table: &str,
    schema: &Schema,
    query: &LocalSelect,
) -> Result<Statement, StoreError> {
    rules::validate_table_name(table)?;
    let q = local_check::check_select(table, schema, query)?;
    check_size(table, select(flavor, table, schema, &q))
}

/// `SELECT groups…, aggregates… FROM table [WHERE …] [GROUP BY groups…]`. When the
/// query has neither groups nor aggregates, a `COUNT(*)` is selected and not decoded.
pub(crate) fn aggregate(flavor: Flavor, table: &str, schema: &Schema, q: &AggQuery) -> Statement {
    let mut r = Renderer::new(flavor);
    let mut select = Vec::new();
    let mut outputs = Vec::new();
    for g in &q.group_by {
        select.push(r.ordered(g));
        outputs.push(Out::Typed(g.ty));
    }
    for a in &q.aggregates {
        let (s, o) = r.aggregate(a);
        select.push(s);
        outputs.push(o);
    }
    let list = if select.is_empty() {
        "COUNT(*)".to_string()
    } else {
        select.join(", ")
    };
    let _ = write!(r.sql, "SELECT {list}");
    r.from(table, schema, &q.derived);
    r.where_clause(&q.filter);
    if !q.group_by.is_empty() {
        let groups: Vec<String> = q.group_by.iter().map(|g| r.ordered(g)).collect();
        let _ = write!(r.sql, " GROUP BY {}", groups.join(", "));
    }
    Statement {
        sql: r.sql,
        params: r.params,
        outputs,
    }
}

/// `SELECT row, columns… FROM table [WHERE …] ORDER BY row`.
pub(crate) fn select(flavor: Flavor, table: &str, schema: &Schema, q: &SelectQuery) -> Statement {
    let mut r = Renderer::new(flavor);
    let row = r.q(ROW_COLUMN);
    let mut list = row.clone();
    for c in &q.columns {
        list.push_str(", ");
        list.push_str(&r.q(&c.name));
    }
    let mut outputs: Vec<Out> = q.columns.iter().map(|c| Out::Typed(c.ty)).collect();
    // Parameters are numbered in text order, so the mask (in the select list) is rendered
    // before the WHERE clause.
    let mut head = format!("SELECT {list}");
    if let Some(m) = &q.mask {
        let before = std::mem::take(&mut r.sql);
        r.pred(m);
        let cond = std::mem::replace(&mut r.sql, before);
        let case = format!("CASE WHEN {cond} THEN 1 ELSE 0 END");
        let _ = match r.flavor {
            Flavor::Sqlite => write!(head, ", {case}"),
            Flavor::Postgres => write!(head, ", CAST({case} AS BIGINT)"),
            Flavor::Mysql => write!(head, ", CAST({case} AS SIGNED)"),
        };
        outputs.push(Out::Count);
    }
    r.sql.push_str(&head);
    r.from(table, schema, &q.derived);
    r.where_clause(&q.filter);
    let _ = write!(r.sql, " ORDER BY {row}");
    Statement {
        sql: r.sql,
        params: r.params,
        outputs,
    }
}

/// Parses an integer SUM read as text; `None` (NULL) stays NULL.
pub(crate) fn parse_int_sum(s: Option<String>) -> Result<Value, String> {
    match s {
        None => Ok(Value::Null),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("integer SUM {s} does not fit 64 bits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_check::check_select;
    use consort_model::local_query::{CmpOp, LocalSelect, Predicate};
    use consort_model::value::{Column, Schema};

    #[test]
    fn names_and_values_are_never_spliced() {
        let evil = "x\"; DROP TABLE t; --`'";
        let schema = Schema {
            columns: vec![Column {
                name: evil.into(),
                ty: ColumnType::Text,
                nullable: true,
            }],
        };
        let q = LocalSelect {
            derived: Vec::new(),
            columns: vec![evil.into()],
            filter: Some(Predicate::Compare {
                column: evil.into(),
                op: CmpOp::Eq,
                value: Value::Text("' OR 1=1 --".into()),
            }),
            mask: None,
        };
        let checked = check_select("t", &schema, &q).expect("valid");
        for flavor in [Flavor::Sqlite, Flavor::Postgres, Flavor::Mysql] {
            let s = select(flavor, "t", &schema, &checked);
            assert!(!s.sql.contains("OR 1=1"), "{}", s.sql);
            assert_eq!(s.params, vec![Value::Text("' OR 1=1 --".into())]);
        }
        let s = select(Flavor::Postgres, "t", &schema, &checked);
        assert!(s.sql.contains("\"x\"\"; DROP TABLE t; --`'\""), "{}", s.sql);
        let s = select(Flavor::Mysql, "t", &schema, &checked);
        assert!(s.sql.contains("`x\"; DROP TABLE t; --``'`"), "{}", s.sql);
    }
    #[test]
    fn nested_functions_that_repeat_an_operand_are_refused_not_rendered_forever() {
        use consort_model::scalar::{Derived, ScalarExpr};
        let schema = Schema {
            columns: vec![Column {
                name: "f".into(),
                ty: ColumnType::Float,
                nullable: true,
            }],
        };
        let mut e = ScalarExpr::column("f");
        for _ in 0..60 {
            e = ScalarExpr::Round {
                arg: Box::new(e),
                digits: 1,
            };
        }
        let q = LocalSelect {
            derived: vec![Derived {
                name: "_consort_e0".into(),
                expr: e,
            }],
            columns: vec!["_consort_e0".into()],
            filter: None,
            mask: None,
        };
        for flavor in [Flavor::Postgres, Flavor::Mysql] {
            let err = prepare_select(flavor, "t", &schema, &q).unwrap_err();
            assert!(err.to_string().contains("too large"), "{err}");
        }
        // SQLite calls consort's function once per level.
        let st = prepare_select(Flavor::Sqlite, "t", &schema, &q).expect("small");
        assert!(st.sql.len() < 4096, "{}", st.sql);
    }

    #[test]
    fn function_constants_are_bound_or_integers() {
        use consort_model::scalar::{Derived, ScalarExpr, TrimSide};
        let schema = Schema {
            columns: vec![Column {
                name: "t".into(),
                ty: ColumnType::Text,
                nullable: true,
            }],
        };
        let q = LocalSelect {
            derived: vec![Derived {
                name: "_consort_e0".into(),
                expr: ScalarExpr::Trim {
                    arg: Box::new(ScalarExpr::column("t")),
                    side: TrimSide::Both,
                    ch: '\'',
                },
            }],
            columns: vec!["_consort_e0".into()],
            filter: None,
            mask: None,
        };
        for flavor in [Flavor::Sqlite, Flavor::Postgres, Flavor::Mysql] {
            let st = prepare_select(flavor, "t", &schema, &q).expect("valid");
            assert_eq!(st.params, vec![Value::Text("'".into())]);
            assert!(!st.sql.contains("'''"), "{}", st.sql);
        }
    }
}
