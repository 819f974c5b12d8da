//! Row expressions an owner's database computes for a joint query: arithmetic, CASE,
//! COALESCE, NULLIF, ABS, casts, comparisons and boolean logic, and date parts. The
//! planner turns each expression of a query into a *derived column* ([`Derived`]) that
//! the owner's store computes next to the table's own columns, so every later step
//! (filters, groups, aggregates, selections) sees it as one more column.
//!
//! The semantics are SQL's, pinned down where databases differ, so that SQLite,
//! PostgreSQL and MySQL/MariaDB give the same value for every row (docs/QUERY.md,
//! "Expressions"):
//! - integer `+ - *` stay integers; a result outside 64 bits is refused, never wrapped;
//! - `/` and `%` of integers truncate toward zero; by zero they give NULL;
//! - any float operand makes the operation a float one (the integer is converted first);
//! - NULL in, NULL out, except in `AND`/`OR` (three-valued), `IS NULL`, `COALESCE` and
//!   `CASE`;
//! - text compares by code point.
//!
//! [`ScalarExpr::result_type`] is the one typing rule, used by the planner and re-checked
//! by every store.

use crate::local_query::CmpOp;
use crate::value::{ColumnType, Schema, Value};

mod funcs;

pub use funcs::{
    cast_allowed, IntervalUnit, TrimSide, TruncUnit, MAX_EXTREME_ARGS, MAX_INTERVAL_DAYS,
    MAX_INTERVAL_MONTHS, MAX_ROUND_DIGITS,
};

/// The prefix of derived column names; dataset columns cannot start with it.
pub const DERIVED_PREFIX: &str = "_consort_e";

/// The most derived columns one query may ask an owner to compute.
pub const MAX_DERIVED: usize = 64;

/// The deepest expression tree a store accepts (the planner's bounds stop hostile SQL
/// far earlier; this guards the store's own recursion).
pub const MAX_DEPTH: usize = 64;

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

/// A numeric function of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathFunc {
    /// Square root of a float; NULL for a negative argument.
    Sqrt,
    /// Natural logarithm of a float; NULL for zero or a negative argument.
    Ln,
    /// e to the power of a float; a result too large for a float is an error.
    Exp,
    /// The largest integral float not above a float.
    Floor,
    /// The smallest integral float not below a float.
    Ceil,
}

impl MathFunc {
    pub fn name(self) -> &'static str {
        match self {
            MathFunc::Sqrt => "SQRT",
            MathFunc::Ln => "LN",
            MathFunc::Exp => "EXP",
            MathFunc::Floor => "FLOOR",
            MathFunc::Ceil => "CEIL",
        }
    }
}

/// A part of a date or timestamp (`EXTRACT(part FROM x)`), as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    Year,
    Quarter,
    Month,
    Day,
    /// Day of the week, 0 = Sunday to 6 = Saturday (PostgreSQL's `DOW`).
    DayOfWeek,
    /// Day of the year, 1 to 366.
    DayOfYear,
    /// Hour of the day (UTC), 0 to 23; timestamps only.
    Hour,
    /// The ISO 8601 week of the year, 1 to 53 (weeks start on Monday; week 1 holds the
    /// year's first Thursday), as PostgreSQL's `WEEK`.
    Week,
}

impl DatePart {
    pub fn name(self) -> &'static str {
        match self {
            DatePart::Year => "YEAR",
            DatePart::Quarter => "QUARTER",
            DatePart::Month => "MONTH",
            DatePart::Day => "DAY",
            DatePart::DayOfWeek => "DOW",
            DatePart::DayOfYear => "DOY",
            DatePart::Hour => "HOUR",
            DatePart::Week => "WEEK",
        }
    }
}

/// A row expression over one table's columns. Every node has one type, given by
/// [`ScalarExpr::result_type`]; the planner inserts the conversions (`ToFloat`) that SQL
/// applies implicitly, so a store never has to guess.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    Column(String),
    /// A literal of a known type; `Value::Null` carries its type in `ty`.
    Literal {
        value: Value,
        ty: ColumnType,
    },
    /// Both operands integer, or both float (never mixed).
    Arith {
        op: ArithOp,
        left: Box<ScalarExpr>,
        right: Box<ScalarExpr>,
    },
    Negate(Box<ScalarExpr>),
    /// Text `||` text.
    Concat(Box<ScalarExpr>, Box<ScalarExpr>),
    /// A comparison of two values of one type (integers and floats compare as numbers);
    /// a boolean, NULL when either side is NULL.
    Compare {
        op: CmpOp,
        left: Box<ScalarExpr>,
        right: Box<ScalarExpr>,
    },
    And(Vec<ScalarExpr>),
    Or(Vec<ScalarExpr>),
    Not(Box<ScalarExpr>),
    IsNull {
        expr: Box<ScalarExpr>,
        negated: bool,
    },
    /// `text [NOT] LIKE 'pattern'` (`%`, `_`, case-sensitive, no escape character), as a
    /// boolean that is NULL for a NULL text.
    Like {
        expr: Box<ScalarExpr>,
        pattern: String,
        negated: bool,
    },
    /// `CASE WHEN cond THEN value … [ELSE otherwise] END`; a condition that is NULL does
    /// not match; no match and no ELSE gives NULL. The simple form `CASE x WHEN v …` is
    /// planned as `x = v` conditions.
    Case {
        whens: Vec<(ScalarExpr, ScalarExpr)>,
        otherwise: Option<Box<ScalarExpr>>,
    },
    /// The first non-NULL argument; all arguments of one type.
    Coalesce(Vec<ScalarExpr>),
    /// NULL when the two are equal, else the first.
    NullIf(Box<ScalarExpr>, Box<ScalarExpr>),
    Abs(Box<ScalarExpr>),
    /// An integer as a float.
    ToFloat(Box<ScalarExpr>),
    /// An integer as its decimal text (`CAST(x AS TEXT)`).
    IntegerToText(Box<ScalarExpr>),
    /// A part of a date or timestamp.
    Extract {
        part: DatePart,
        expr: Box<ScalarExpr>,
    },
    /// A float function of a float ([`MathFunc`]).
    Math {
        func: MathFunc,
        arg: Box<ScalarExpr>,
    },
    /// -1, 0 or 1 as an integer, for a number.
    Sign(Box<ScalarExpr>),
    /// The number of characters (Unicode scalar values) of a text, as an integer.
    Length(Box<ScalarExpr>),
    /// `ROUND(x, digits)`, ties away from zero; a float stays a float (rounded at the
    /// `digits`-th decimal), an integer stays an integer (`digits` < 0 rounds to tens,
    /// hundreds, …). `digits` is a constant within ±[`MAX_ROUND_DIGITS`].
    Round {
        arg: Box<ScalarExpr>,
        digits: i32,
    },
    /// `POWER(x, y)` of floats; NULL out of its domain (zero to a negative power, a
    /// negative number to a non-integral one); a result too large for a float is an error.
    Power(Box<ScalarExpr>, Box<ScalarExpr>),
    /// `GREATEST(…)` (`greatest`) or `LEAST(…)` of values of one type; NULL arguments are
    /// ignored, and the result is NULL only when all are (PostgreSQL's rule).
    Extreme {
        greatest: bool,
        args: Vec<ScalarExpr>,
    },
    /// `UPPER(x)` (`upper`) or `LOWER(x)`, of ASCII letters only: other characters are
    /// left as they are.
    CaseMap {
        upper: bool,
        arg: Box<ScalarExpr>,
    },
    /// `SUBSTR(x, start[, len])`: the characters at positions `start` to `start + len - 1`
    /// (1-based, in characters; positions before 1 count, as in PostgreSQL); without `len`,
    /// to the end. Constants; `len` is never negative.
    Substr {
        arg: Box<ScalarExpr>,
        start: i64,
        len: Option<i64>,
    },
    /// `TRIM([side] ch FROM x)`: `ch` removed repeatedly from one or both ends.
    Trim {
        arg: Box<ScalarExpr>,
        side: TrimSide,
        ch: char,
    },
    /// `REPLACE(x, from, to)`: every occurrence of `from` (case-sensitive, left to right,
    /// not overlapping) replaced; an empty `from` leaves `x` as it is.
    Replace {
        arg: Box<ScalarExpr>,
        from: Box<ScalarExpr>,
        to: Box<ScalarExpr>,
    },
    /// `DATE_TRUNC(unit, x)`: the first day (midnight UTC for a timestamp) of the unit
    /// holding `x`; a date stays a date, a timestamp a timestamp.
    DateTrunc {
        unit: TruncUnit,
        arg: Box<ScalarExpr>,
    },
    /// `date + INTERVAL 'amount' unit` (a negative `amount` subtracts): months and years
    /// keep the day of the month, clamped to the month's last day; a result outside
    /// 0001-01-01 to 9999-12-31 is NULL.
    AddInterval {
        arg: Box<ScalarExpr>,
        unit: IntervalUnit,
        amount: i64,
    },
    /// `left - right` of two dates, in days, as an integer.
    DateDiff(Box<ScalarExpr>, Box<ScalarExpr>),
    /// `CAST(x AS to)` for the pairs [`cast_allowed`] lists beyond `ToFloat` and
    /// `IntegerToText` (docs/QUERY.md, "CAST").
    Cast {
        arg: Box<ScalarExpr>,
        to: ColumnType,
    },
}

/// A column the owner's store computes from the table's columns for one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// `_consort_e<n>`.
    pub name: String,
    pub expr: ScalarExpr,
}

fn numeric(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Integer | ColumnType::Float)
}

impl ScalarExpr {
    pub fn column(name: &str) -> Self {
        ScalarExpr::Column(name.to_string())
    }

    /// The type of the expression over `schema`, or why it is ill-typed (one line naming
    /// the offending part). Also bounds the depth.
    pub fn result_type(&self, schema: &Schema) -> Result<ColumnType, String> {
        self.type_at(schema, 0)
    }

    fn type_at(&self, schema: &Schema, depth: usize) -> Result<ColumnType, String> {
        if depth > MAX_DEPTH {
            return Err(format!("expression nested deeper than {MAX_DEPTH}"));
        }
        let d = depth + 1;
        let sub = |e: &ScalarExpr| e.type_at(schema, d);
        match self {
            ScalarExpr::Column(name) => schema
                .index_of(name)
                .map(|i| schema.columns[i].ty)
                .ok_or_else(|| format!("unknown column {name:?}")),
            ScalarExpr::Literal { value, ty } => match value.column_type() {
                None => Ok(*ty),
                Some(actual) if actual == *ty => Ok(*ty),
                Some(actual) => Err(format!("a {actual} literal marked as {ty}")),
            },
            ScalarExpr::Arith { op, left, right } => {
                let (l, r) = (sub(left)?, sub(right)?);
                match (l, r) {
                    (ColumnType::Integer, ColumnType::Integer) => Ok(ColumnType::Integer),
                    (ColumnType::Float, ColumnType::Float) if *op == ArithOp::Rem => {
                        Err("% of floats (integers only)".into())
                    }
                    (ColumnType::Float, ColumnType::Float) => Ok(ColumnType::Float),
                    _ => Err(format!("{l} {} {r} (numbers of one type)", op.symbol())),
                }
            }
            ScalarExpr::Negate(e) | ScalarExpr::Abs(e) => match sub(e)? {
                t if numeric(t) => Ok(t),
                t => Err(format!("sign of a {t} value (numbers only)")),
            },
            ScalarExpr::Concat(l, r) => match (sub(l)?, sub(r)?) {
                (ColumnType::Text, ColumnType::Text) => Ok(ColumnType::Text),
                (l, r) => Err(format!("{l} || {r} (text only; CAST numbers to TEXT)")),
            },
            ScalarExpr::Compare { left, right, .. } => {
                let (l, r) = (sub(left)?, sub(right)?);
                if l == r || (numeric(l) && numeric(r)) {
                    Ok(ColumnType::Boolean)
                } else {
                    Err(format!("comparison of {l} with {r}"))
                }
            }
            ScalarExpr::And(parts) | ScalarExpr::Or(parts) => {
                for p in parts {
                    let t = sub(p)?;
                    if t != ColumnType::Boolean {
                        return Err(format!("AND/OR of a {t} value (booleans only)"));
                    }
                }
                Ok(ColumnType::Boolean)
            }
            ScalarExpr::Not(e) => match sub(e)? {
                ColumnType::Boolean => Ok(ColumnType::Boolean),
                t => Err(format!("NOT of a {t} value (booleans only)")),
            },
            ScalarExpr::IsNull { expr, .. } => sub(expr).map(|_| ColumnType::Boolean),
            ScalarExpr::Like { expr, .. } => match sub(expr)? {
                ColumnType::Text => Ok(ColumnType::Boolean),
                t => Err(format!("LIKE on a {t} value (text only)")),
            },
            ScalarExpr::Case { whens, otherwise } => {
                if whens.is_empty() {
                    return Err("CASE without WHEN".into());
                }
                let mut ty = None;
                for (cond, value) in whens {
                    if sub(cond)? != ColumnType::Boolean {
                        return Err("a CASE condition that is not boolean".into());
                    }
                    ty = Some(same_type(ty, sub(value)?, "CASE branches")?);
                }
                if let Some(e) = otherwise {
                    ty = Some(same_type(ty, sub(e)?, "CASE branches")?);
                }
                ty.ok_or_else(|| "CASE without a branch".to_string())
            }
            ScalarExpr::Coalesce(args) => {
                let mut ty = None;
                for a in args {
                    ty = Some(same_type(ty, sub(a)?, "COALESCE arguments")?);
                }
                ty.ok_or_else(|| "COALESCE without arguments".to_string())
            }
            ScalarExpr::NullIf(a, b) => {
                let (l, r) = (sub(a)?, sub(b)?);
                if l == r {
                    Ok(l)
                } else {
                    Err(format!("NULLIF of {l} and {r} (one type)"))
                }
            }
            ScalarExpr::ToFloat(e) => match sub(e)? {
                ColumnType::Integer => Ok(ColumnType::Float),
                t => Err(format!("{t} as a float (integers only)")),
            },
            ScalarExpr::IntegerToText(e) => match sub(e)? {
                ColumnType::Integer => Ok(ColumnType::Text),
                t => Err(format!("CAST of a {t} value to TEXT (integers only)")),
            },
            ScalarExpr::Math { func, arg } => match sub(arg)? {
                ColumnType::Float => Ok(ColumnType::Float),
                t => Err(format!("{}({t}) (floats only)", func.name())),
            },
            ScalarExpr::Sign(e) => match sub(e)? {
                t if numeric(t) => Ok(ColumnType::Integer),
                t => Err(format!("SIGN of a {t} value (numbers only)")),
            },
            ScalarExpr::Length(e) => match sub(e)? {
                ColumnType::Text => Ok(ColumnType::Integer),
                t => Err(format!("LENGTH of a {t} value (text only)")),
            },
            ScalarExpr::Round { .. }
            | ScalarExpr::Power(..)
            | ScalarExpr::Extreme { .. }
            | ScalarExpr::CaseMap { .. }
            | ScalarExpr::Substr { .. }
            | ScalarExpr::Trim { .. }
            | ScalarExpr::Replace { .. }
            | ScalarExpr::DateTrunc { .. }
            | ScalarExpr::AddInterval { .. }
            | ScalarExpr::DateDiff(..)
            | ScalarExpr::Cast { .. } => funcs::type_of(self, &sub),
            ScalarExpr::Extract { part, expr } => match (part, sub(expr)?) {
                (DatePart::Hour, ColumnType::Timestamp) => Ok(ColumnType::Integer),
                (DatePart::Hour, t) => Err(format!("EXTRACT(HOUR) of a {t} (timestamps only)")),
                (_, ColumnType::Date | ColumnType::Timestamp) => Ok(ColumnType::Integer),
                (p, t) => Err(format!(
                    "EXTRACT({}) of a {t} value (dates and timestamps only)",
                    p.name()
                )),
            },
        }
    }

    /// Whether the expression can never be NULL over `schema` (conservative: `false` when
    /// unsure). Division, `NULLIF`, `SQRT`, `LN` and a `CASE` without `ELSE` can give NULL
    /// from non-NULL inputs.
    pub fn never_null(&self, schema: &Schema) -> bool {
        let nn = |e: &ScalarExpr| e.never_null(schema);
        match self {
            ScalarExpr::Column(name) => schema
                .index_of(name)
                .is_some_and(|i| !schema.columns[i].nullable),
            ScalarExpr::Literal { value, .. } => !value.is_null(),
            ScalarExpr::Arith { op, left, right } => {
                matches!(op, ArithOp::Add | ArithOp::Sub | ArithOp::Mul) && nn(left) && nn(right)
            }
            ScalarExpr::Concat(l, r)
            | ScalarExpr::Compare {
                left: l, right: r, ..
            } => nn(l) && nn(r),
            ScalarExpr::Negate(e)
            | ScalarExpr::Abs(e)
            | ScalarExpr::Not(e)
            | ScalarExpr::ToFloat(e)
            | ScalarExpr::IntegerToText(e)
            | ScalarExpr::Sign(e)
            | ScalarExpr::Length(e)
            | ScalarExpr::Extract { expr: e, .. }
            | ScalarExpr::Round { arg: e, .. }
            | ScalarExpr::CaseMap { arg: e, .. }
            | ScalarExpr::Substr { arg: e, .. }
            | ScalarExpr::Trim { arg: e, .. }
            | ScalarExpr::DateTrunc { arg: e, .. } => nn(e),
            ScalarExpr::Replace { arg, from, to } => nn(arg) && nn(from) && nn(to),
            ScalarExpr::DateDiff(l, r) => nn(l) && nn(r),
            ScalarExpr::Extreme { args, .. } => args.iter().any(nn),
            // Out of its domain, out of the date range, or bad text: NULL.
            ScalarExpr::Power(..) | ScalarExpr::AddInterval { .. } => false,
            // Text that is not a number casts to NULL.
            ScalarExpr::Cast { arg, .. } => {
                !matches!(arg.result_type(schema), Ok(ColumnType::Text)) && nn(arg)
            }
            ScalarExpr::Math { func, arg } => {
                matches!(func, MathFunc::Exp | MathFunc::Floor | MathFunc::Ceil) && nn(arg)
            }
            ScalarExpr::And(parts) | ScalarExpr::Or(parts) => parts.iter().all(nn),
            ScalarExpr::IsNull { .. } => true,
            ScalarExpr::Like { expr, .. } => nn(expr),
            ScalarExpr::Case { whens, otherwise } => {
                otherwise.as_deref().is_some_and(nn) && whens.iter().all(|(_, v)| nn(v))
            }
            ScalarExpr::Coalesce(args) => args.iter().any(nn),
            ScalarExpr::NullIf(..) => false,
        }
    }

    /// The columns the expression reads, in first-use order.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_columns(&mut out);
        out
    }

    fn visit_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        let mut push = |name: &'a str| {
            if !out.contains(&name) {
                out.push(name);
            }
        };
        match self {
            ScalarExpr::Column(name) => push(name),
            ScalarExpr::Literal { .. } => {}
            ScalarExpr::Arith { left, right, .. }
            | ScalarExpr::Compare { left, right, .. }
            | ScalarExpr::Concat(left, right)
            | ScalarExpr::NullIf(left, right)
            | ScalarExpr::Power(left, right)
            | ScalarExpr::DateDiff(left, right) => {
                left.visit_columns(out);
                right.visit_columns(out);
            }
            ScalarExpr::Negate(e)
            | ScalarExpr::Abs(e)
            | ScalarExpr::Not(e)
            | ScalarExpr::ToFloat(e)
            | ScalarExpr::IntegerToText(e)
            | ScalarExpr::IsNull { expr: e, .. }
            | ScalarExpr::Like { expr: e, .. }
            | ScalarExpr::Extract { expr: e, .. }
            | ScalarExpr::Math { arg: e, .. }
            | ScalarExpr::Sign(e)
            | ScalarExpr::Length(e)
            | ScalarExpr::Round { arg: e, .. }
            | ScalarExpr::CaseMap { arg: e, .. }
            | ScalarExpr::Substr { arg: e, .. }
            | ScalarExpr::Trim { arg: e, .. }
            | ScalarExpr::DateTrunc { arg: e, .. }
            | ScalarExpr::AddInterval { arg: e, .. }
            | ScalarExpr::Cast { arg: e, .. } => e.visit_columns(out),
            ScalarExpr::Replace { arg, from, to } => {
                arg.visit_columns(out);
                from.visit_columns(out);
                to.visit_columns(out);
            }
            ScalarExpr::And(parts)
            | ScalarExpr::Or(parts)
            | ScalarExpr::Coalesce(parts)
            | ScalarExpr::Extreme { args: parts, .. } => {
                for p in parts {
                    p.visit_columns(out);
                }
            }
            ScalarExpr::Case { whens, otherwise } => {
                for (c, v) in whens {
                    c.visit_columns(out);
                    v.visit_columns(out);
                }
                if let Some(e) = otherwise {
                    e.visit_columns(out);
                }
            }
        }
    }
}

fn same_type(have: Option<ColumnType>, next: ColumnType, what: &str) -> Result<ColumnType, String> {
    match have {
        Some(t) if t != next => Err(format!("{what} of types {t} and {next}")),
        _ => Ok(next),
    }
}

/// `schema` with the derived columns appended (their names checked and their types
/// computed over the table's own columns), or why not.
pub fn extend_schema(schema: &Schema, derived: &[Derived]) -> Result<Schema, String> {
    if derived.len() > MAX_DERIVED {
        return Err(format!(
            "{} derived columns (at most {MAX_DERIVED})",
            derived.len()
        ));
    }
    let mut out = schema.clone();
    for d in derived {
        if !d.name.starts_with(DERIVED_PREFIX)
            || !d.name[DERIVED_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Err(format!("derived column name {:?}", d.name));
        }
        if out.index_of(&d.name).is_some() {
            return Err(format!("derived column {} twice", d.name));
        }
        // Over the table's own columns only: a derived column never reads another.
        let ty = d
            .expr
            .result_type(schema)
            .map_err(|e| format!("{}: {e}", d.name))?;
        out.columns.push(crate::value::Column {
            name: d.name.clone(),
            ty,
            nullable: true,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
