//! Row expressions (`consort_model::scalar`) rendered in each backend's SQL, so that the
//! three backends compute what the reference evaluator (`scalar_eval`) computes:
//!
//! - integer `+ - *` and negation: SQLite's own operators turn an overflow into a float,
//!   so SQLite calls the checked `consort_add`/`_sub`/`_mul`/`_neg` (`sqlite_functions`);
//!   PostgreSQL and MySQL raise "out of range" themselves;
//! - `/` and `%` divide by `NULLIF(divisor, 0)`, so by zero they give NULL everywhere;
//!   MySQL's `/` is decimal division, so integers use `DIV`;
//! - text compares as code points (`COLLATE "C"`, `CAST(… AS BINARY)`), also inside
//!   `NULLIF`, which is rendered as a `CASE` for that reason; MySQL concatenates with
//!   `CONCAT` (its `||` is OR);
//! - a NULL literal is typed where PostgreSQL needs it;
//! - `SQRT`, `LN`, `EXP`, `FLOOR`, `CEIL` and `SIGN`: SQLite calls consort's functions (the
//!   bundled SQLite has none); PostgreSQL calls `pg_temp.consort_sqrt`/`_ln` (NULL out of
//!   the domain, as MySQL gives); `SIGN` and `LENGTH` are cast to 64-bit integers;
//! - dates: SQLite stores `YYYY-MM-DD` text and reads parts with `strftime` (of a
//!   timestamp's date text only: its date functions round to milliseconds); PostgreSQL
//!   takes parts of timestamps at UTC.

use std::fmt::Write;

use consort_model::local_query::CmpOp;
use consort_model::scalar::{ArithOp, DatePart, MathFunc, ScalarExpr};
use consort_model::value::{ColumnType, Schema, Value};

use super::local_sql::{Flavor, Renderer};

/// The longest SQL text a query's expressions may render to.
pub(crate) const MAX_SQL: usize = 1 << 20;

impl Renderer {
    pub(crate) fn ty(e: &ScalarExpr, schema: &Schema) -> ColumnType {
        // Checked before rendering (`extend_schema`); text is the harmless fallback.
        e.result_type(schema).unwrap_or(ColumnType::Text)
    }

    pub(crate) fn typed_null(&mut self, ty: ColumnType) {
        let sql = match (self.flavor, ty) {
            (Flavor::Postgres, ColumnType::Integer) => "CAST(NULL AS BIGINT)",
            (Flavor::Postgres, ColumnType::Float) => "CAST(NULL AS DOUBLE PRECISION)",
            (Flavor::Postgres, ColumnType::Boolean) => "CAST(NULL AS BOOLEAN)",
            (Flavor::Postgres, ColumnType::Text) => "CAST(NULL AS TEXT)",
            (Flavor::Postgres, ColumnType::Date) => "CAST(NULL AS DATE)",
            (Flavor::Postgres, ColumnType::Timestamp) => "CAST(NULL AS TIMESTAMPTZ)",
            _ => "NULL",
        };
        self.sql.push_str(sql);
    }

    /// An operand of a comparison: text in code-point order.
    pub(crate) fn ordered_operand(&mut self, e: &ScalarExpr, schema: &Schema) {
        let text = Self::ty(e, schema) == ColumnType::Text;
        match (self.flavor, text) {
            (Flavor::Mysql, true) => {
                self.sql.push_str("CAST(");
                self.scalar(e, schema);
                self.sql.push_str(" AS BINARY)");
            }
            (Flavor::Postgres, true) => {
                self.sql.push('(');
                self.scalar(e, schema);
                self.sql.push_str(") COLLATE \"C\"");
            }
            _ => self.scalar(e, schema),
        }
    }

    fn compare(&mut self, op: CmpOp, l: &ScalarExpr, r: &ScalarExpr, schema: &Schema) {
        self.sql.push('(');
        self.ordered_operand(l, schema);
        let _ = write!(self.sql, " {} ", op.symbol());
        self.ordered_operand(r, schema);
        self.sql.push(')');
    }

    pub(crate) fn call(&mut self, name: &str, args: &[&ScalarExpr], schema: &Schema) {
        let _ = write!(self.sql, "{name}(");
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.scalar(a, schema);
        }
        self.sql.push(')');
    }

    pub(crate) fn infix(&mut self, l: &ScalarExpr, op: &str, r: &ScalarExpr, schema: &Schema) {
        self.sql.push('(');
        self.scalar(l, schema);
        let _ = write!(self.sql, " {op} ");
        self.scalar(r, schema);
        self.sql.push(')');
    }

    /// A divisor that is NULL where it is zero.
    fn divide(&mut self, l: &ScalarExpr, op: &str, r: &ScalarExpr, schema: &Schema) {
        self.sql.push('(');
        self.scalar(l, schema);
        let _ = write!(self.sql, " {op} NULLIF(");
        self.scalar(r, schema);
        self.sql.push_str(", 0))");
    }

    fn arith(&mut self, op: ArithOp, l: &ScalarExpr, r: &ScalarExpr, schema: &Schema) {
        let integer = Self::ty(l, schema) == ColumnType::Integer;
        match (op, integer, self.flavor) {
            (ArithOp::Add, true, Flavor::Sqlite) => self.call("consort_add", &[l, r], schema),
            (ArithOp::Sub, true, Flavor::Sqlite) => self.call("consort_sub", &[l, r], schema),
            (ArithOp::Mul, true, Flavor::Sqlite) => self.call("consort_mul", &[l, r], schema),
            (ArithOp::Div, true, Flavor::Mysql) => self.divide(l, "DIV", r, schema),
            (ArithOp::Div, true, Flavor::Sqlite) => {
                self.sql.push_str("consort_div(");
                self.scalar(l, schema);
                self.sql.push_str(", NULLIF(");
                self.scalar(r, schema);
                self.sql.push_str(", 0))");
            }
            (ArithOp::Div, _, _) => self.divide(l, "/", r, schema),
            (ArithOp::Rem, _, _) => self.divide(l, "%", r, schema),
            (op, _, _) => self.infix(l, op.symbol(), r, schema),
        }
    }

    fn extract(&mut self, part: DatePart, e: &ScalarExpr, schema: &Schema) {
        let timestamp = Self::ty(e, schema) == ColumnType::Timestamp;
        match self.flavor {
            Flavor::Sqlite => {
                let format = match part {
                    DatePart::Year => "%Y",
                    DatePart::Quarter | DatePart::Month => "%m",
                    DatePart::Day => "%d",
                    DatePart::DayOfWeek => "%w",
                    DatePart::DayOfYear => "%j",
                    DatePart::Hour => "%H",
                    DatePart::Week => "",
                };
                // SQLite's date functions round fractional seconds to milliseconds, so
                // 23:59:59.9999 would fall on the next day: timestamps are read from
                // their fixed-width text (the date is its first 10 characters).
                if part == DatePart::Hour {
                    self.sql.push_str("CAST(substr(");
                    self.scalar(e, schema);
                    self.sql.push_str(", 12, 2) AS INTEGER)");
                    return;
                }
                if part == DatePart::Week {
                    // SQLite's strftime has no ISO week: consort's function computes it.
                    self.sql.push_str("consort_iso_week(");
                    if timestamp {
                        self.sql.push_str("substr(");
                        self.scalar(e, schema);
                        self.sql.push_str(", 1, 10)");
                    } else {
                        self.scalar(e, schema);
                    }
                    self.sql.push(')');
                    return;
                }
                if part == DatePart::Quarter {
                    self.sql.push('(');
                }
                let _ = write!(self.sql, "CAST(strftime('{format}', ");
                if timestamp {
                    self.sql.push_str("substr(");
                    self.scalar(e, schema);
                    self.sql.push_str(", 1, 10)");
                } else {
                    self.scalar(e, schema);
                }
                self.sql.push_str(") AS INTEGER)");
                if part == DatePart::Quarter {
                    self.sql.push_str(" + 2) / 3");
                }
            }
            Flavor::Postgres => {
                let _ = write!(self.sql, "CAST(EXTRACT({} FROM ", part.name());
                self.sql.push('(');
                self.scalar(e, schema);
                self.sql.push(')');
                if timestamp {
                    self.sql.push_str(" AT TIME ZONE 'UTC'");
                }
                self.sql.push_str(") AS BIGINT)");
            }
            Flavor::Mysql => {
                let f = match part {
                    DatePart::Year => "YEAR",
                    DatePart::Quarter => "QUARTER",
                    DatePart::Month => "MONTH",
                    DatePart::Day => "DAY",
                    DatePart::DayOfWeek => "DAYOFWEEK",
                    DatePart::DayOfYear => "DAYOFYEAR",
                    DatePart::Hour => "HOUR",
                    DatePart::Week => "WEEK",
                };
                let _ = write!(self.sql, "CAST({f}(");
                self.scalar(e, schema);
                if part == DatePart::Week {
                    // Mode 3: ISO 8601 weeks.
                    self.sql.push_str(", 3");
                }
                self.sql.push(')');
                if part == DatePart::DayOfWeek {
                    self.sql.push_str(" - 1");
                }
                self.sql.push_str(" AS SIGNED)");
            }
        }
    }

    /// Appends `e` as SQL of this backend; literals become bound parameters. Some
    /// functions render an operand several times: past [`MAX_SQL`] bytes nothing more is
    /// appended, and the statement is refused (`local_sql::check_size`).
    pub(crate) fn scalar(&mut self, e: &ScalarExpr, schema: &Schema) {
        if self.sql.len() > MAX_SQL {
            return;
        }
        match e {
            ScalarExpr::Column(name) => {
                let q = self.q(name);
                self.sql.push_str(&q);
            }
            ScalarExpr::Literal {
                value: Value::Null,
                ty,
            } => self.typed_null(*ty),
            ScalarExpr::Literal { value, .. } => self.plain_param(value.clone()),
            ScalarExpr::Arith { op, left, right } => self.arith(*op, left, right, schema),
            ScalarExpr::Negate(x) => {
                if self.flavor == Flavor::Sqlite && Self::ty(x, schema) == ColumnType::Integer {
                    self.call("consort_neg", &[x], schema);
                } else {
                    self.sql.push_str("(- ");
                    self.scalar(x, schema);
                    self.sql.push(')');
                }
            }
            ScalarExpr::Abs(x) => self.call("ABS", &[x], schema),
            ScalarExpr::Concat(l, r) => match self.flavor {
                Flavor::Mysql => self.call("CONCAT", &[l, r], schema),
                _ => self.infix(l, "||", r, schema),
            },
            ScalarExpr::Compare { op, left, right } => self.compare(*op, left, right, schema),
            ScalarExpr::And(parts) | ScalarExpr::Or(parts) => {
                let joiner = if matches!(e, ScalarExpr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.sql.push('(');
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(joiner);
                    }
                    self.scalar(p, schema);
                }
                self.sql.push(')');
            }
            ScalarExpr::Not(x) => {
                self.sql.push_str("(NOT ");
                self.scalar(x, schema);
                self.sql.push(')');
            }
            ScalarExpr::Like {
                expr,
                pattern,
                negated,
            } => {
                // As the WHERE form (`local_sql`): per character, case-sensitive, `\`
                // an ordinary character everywhere.
                self.sql.push_str("((");
                self.scalar(expr, schema);
                self.sql.push(')');
                let pattern = match self.flavor {
                    Flavor::Sqlite => pattern.clone(),
                    Flavor::Postgres => pattern.replace('\\', "\\\\"),
                    Flavor::Mysql => {
                        self.sql.push_str(" COLLATE utf8mb4_bin");
                        pattern.replace('\\', "\\\\")
                    }
                };
                self.sql
                    .push_str(if *negated { " NOT LIKE " } else { " LIKE " });
                self.plain_param(Value::Text(pattern.into()));
                self.sql.push(')');
            }
            ScalarExpr::IsNull { expr, negated } => {
                self.sql.push('(');
                self.scalar(expr, schema);
                self.sql.push_str(if *negated {
                    " IS NOT NULL)"
                } else {
                    " IS NULL)"
                });
            }
            ScalarExpr::Case { whens, otherwise } => {
                self.sql.push_str("CASE");
                for (cond, value) in whens {
                    self.sql.push_str(" WHEN ");
                    self.scalar(cond, schema);
                    self.sql.push_str(" THEN ");
                    self.scalar(value, schema);
                }
                self.sql.push_str(" ELSE ");
                match otherwise {
                    Some(x) => self.scalar(x, schema),
                    None => self.typed_null(Self::ty(e, schema)),
                }
                self.sql.push_str(" END");
            }
            ScalarExpr::Coalesce(args) => {
                let args: Vec<&ScalarExpr> = args.iter().collect();
                self.call("COALESCE", &args, schema);
            }
            ScalarExpr::NullIf(a, b) => {
                self.sql.push_str("CASE WHEN ");
                self.compare(CmpOp::Eq, a, b, schema);
                self.sql.push_str(" THEN ");
                self.typed_null(Self::ty(a, schema));
                self.sql.push_str(" ELSE ");
                self.scalar(a, schema);
                self.sql.push_str(" END");
            }
            ScalarExpr::ToFloat(x) => match self.flavor {
                Flavor::Sqlite => {
                    self.sql.push_str("CAST(");
                    self.scalar(x, schema);
                    self.sql.push_str(" AS REAL)");
                }
                Flavor::Postgres => {
                    self.sql.push_str("CAST(");
                    self.scalar(x, schema);
                    self.sql.push_str(" AS DOUBLE PRECISION)");
                }
                Flavor::Mysql => {
                    self.sql.push('(');
                    self.scalar(x, schema);
                    self.sql.push_str(" + 0e0)");
                }
            },
            ScalarExpr::IntegerToText(x) => {
                let to = if self.flavor == Flavor::Mysql {
                    "CHAR"
                } else {
                    "TEXT"
                };
                self.sql.push_str("CAST(");
                self.scalar(x, schema);
                let _ = write!(self.sql, " AS {to})");
            }
            ScalarExpr::Extract { part, expr } => self.extract(*part, expr, schema),
            ScalarExpr::Math { func, arg } => {
                let name = match (self.flavor, func) {
                    (Flavor::Sqlite, MathFunc::Sqrt) => "consort_sqrt",
                    (Flavor::Sqlite, MathFunc::Ln) => "consort_ln",
                    (Flavor::Sqlite, MathFunc::Exp) => "consort_exp",
                    (Flavor::Sqlite, MathFunc::Floor) => "consort_floor",
                    (Flavor::Sqlite, MathFunc::Ceil) => "consort_ceil",
                    (Flavor::Postgres, MathFunc::Sqrt) => "pg_temp.consort_sqrt",
                    (Flavor::Postgres, MathFunc::Ln) => "pg_temp.consort_ln",
                    // MySQL answers SQRT and LN out of their domain with NULL itself.
                    (_, f) => f.name(),
                };
                self.call(name, &[arg], schema);
            }
            ScalarExpr::Sign(x) => match self.flavor {
                Flavor::Sqlite => self.call("consort_sign", &[x], schema),
                Flavor::Postgres => {
                    self.sql.push_str("CAST(SIGN(");
                    self.scalar(x, schema);
                    self.sql.push_str(") AS BIGINT)");
                }
                Flavor::Mysql => {
                    self.sql.push_str("CAST(SIGN(");
                    self.scalar(x, schema);
                    self.sql.push_str(") AS SIGNED)");
                }
            },
            ScalarExpr::Length(x) => match self.flavor {
                Flavor::Sqlite => self.call("length", &[x], schema),
                Flavor::Postgres => {
                    self.sql.push_str("CAST(char_length(");
                    self.scalar(x, schema);
                    self.sql.push_str(") AS BIGINT)");
                }
                Flavor::Mysql => {
                    self.sql.push_str("CAST(CHAR_LENGTH(");
                    self.scalar(x, schema);
                    self.sql.push_str(") AS SIGNED)");
                }
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
            | ScalarExpr::Cast { .. } => self.function(e, schema),
        }
    }
}
