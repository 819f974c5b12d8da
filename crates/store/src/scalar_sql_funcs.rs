//! The second set of scalar functions in each backend's SQL (see `scalar_funcs` for the
//! semantics, which the reference evaluator and consort's SQLite functions share):
//!
//! - SQLite calls consort's functions (`sqlite_values`) for `ROUND`, `POWER`,
//!   `GREATEST`/`LEAST`, date truncation and arithmetic, ISO weeks and the numeric casts;
//!   its own `lower`/`upper` (ASCII only), `substr`, `trim` and `replace` agree already;
//! - `ROUND` of a float is spelled out with `FLOOR` (ties away from zero, exactly as the
//!   reference: PostgreSQL's `round(float8)` ties to even, MySQL's depends on the C
//!   library); of an integer, with integer `/` and `%`;
//! - `POWER`: PostgreSQL calls `pg_temp.consort_power` (NULL out of the domain, 0 on
//!   underflow, where PostgreSQL raises errors); MySQL guards `POW` with a `CASE`;
//! - `GREATEST`/`LEAST`: PostgreSQL's ignore NULLs; MySQL's return NULL if any argument
//!   is, so every argument is replaced by a `COALESCE` of all of them; text compares by
//!   code point (`COLLATE "C"`, `BINARY`);
//! - `LOWER`/`UPPER` map ASCII letters only: PostgreSQL under `COLLATE "C"`, MySQL with
//!   26 `REPLACE`s;
//! - `SUBSTR`: start and length are constants, turned into PostgreSQL's positions here;
//! - interval arithmetic is guarded by the dates whose result stays in range (NULL
//!   otherwise), computed here from the constant amount.

use std::fmt::Write;

use consort_model::scalar::{IntervalUnit, ScalarExpr, TrimSide, TruncUnit};
use consort_model::value::{ColumnType, Schema, Value};

use super::local_sql::{Flavor, Renderer};
use super::scalar_funcs::{interval_domain, pow10, substr_bounds, TWO_52};
use super::sqlite_values::trunc_code;

impl Renderer {
    fn raw(&mut self, s: &str) {
        self.sql.push_str(s);
    }

    /// Appends a function expression of the second set (`ScalarExpr::Round` …
    /// `ScalarExpr::Cast`).
    pub(crate) fn function(&mut self, e: &ScalarExpr, schema: &Schema) {
        match e {
            ScalarExpr::Round { arg, digits } => self.round(arg, *digits, schema),
            ScalarExpr::Power(x, y) => match self.flavor {
                Flavor::Sqlite => self.call("consort_power", &[x, y], schema),
                Flavor::Postgres => self.call("pg_temp.consort_power", &[x, y], schema),
                Flavor::Mysql => {
                    self.raw("CASE WHEN ");
                    self.scalar(x, schema);
                    self.raw(" = 0 AND ");
                    self.scalar(y, schema);
                    self.raw(" < 0 THEN NULL WHEN ");
                    self.scalar(x, schema);
                    self.raw(" < 0 AND ");
                    self.scalar(y, schema);
                    self.raw(" <> FLOOR(");
                    self.scalar(y, schema);
                    self.raw(") THEN NULL ELSE ");
                    self.call("POW", &[x, y], schema);
                    self.raw(" END");
                }
            },
            ScalarExpr::Extreme { greatest, args } => self.extreme(*greatest, args, schema),
            ScalarExpr::CaseMap { upper, arg } => self.case_map(*upper, arg, schema),
            ScalarExpr::Substr { arg, start, len } => {
                let (first, count) = substr_bounds(*start, *len);
                let name = if self.flavor == Flavor::Mysql {
                    "SUBSTRING"
                } else {
                    "substr"
                };
                let _ = write!(self.sql, "{name}(");
                self.scalar(arg, schema);
                let _ = write!(self.sql, ", {first}");
                if let Some(n) = count {
                    let _ = write!(self.sql, ", {n}");
                }
                self.raw(")");
            }
            ScalarExpr::Trim { arg, side, ch } => {
                let ch = Value::Text(ch.to_string().into());
                if self.flavor == Flavor::Mysql {
                    let _ = write!(self.sql, "TRIM({} ", side.name());
                    self.plain_param(ch);
                    self.raw(" FROM ");
                    self.scalar(arg, schema);
                    self.raw(")");
                    return;
                }
                let name = match (self.flavor, side) {
                    (_, TrimSide::Leading) => "ltrim",
                    (_, TrimSide::Trailing) => "rtrim",
                    (Flavor::Postgres, TrimSide::Both) => "btrim",
                    (_, TrimSide::Both) => "trim",
                };
                let _ = write!(self.sql, "{name}(");
                self.scalar(arg, schema);
                self.raw(", ");
                self.plain_param(ch);
                self.raw(")");
            }
            ScalarExpr::Replace { arg, from, to } => {
                if self.flavor != Flavor::Mysql {
                    self.call("replace", &[arg, from, to], schema);
                    return;
                }
                // MariaDB's REPLACE ignores a NULL replacement when nothing matches: the
                // empty prefixes of both make any NULL the result's.
                self.raw("CONCAT(");
                self.call("REPLACE", &[arg, from, to], schema);
                for x in [from, to] {
                    self.raw(", LEFT(");
                    self.scalar(x, schema);
                    self.raw(", 0)");
                }
                self.raw(")");
            }
            ScalarExpr::DateTrunc { unit, arg } => self.date_trunc(*unit, arg, schema),
            ScalarExpr::AddInterval { arg, unit, amount } => {
                self.add_interval(arg, *unit, *amount, schema)
            }
            ScalarExpr::DateDiff(l, r) => match self.flavor {
                Flavor::Sqlite => self.call("consort_date_diff", &[l, r], schema),
                Flavor::Postgres => {
                    self.raw("CAST(");
                    self.infix(l, "-", r, schema);
                    self.raw(" AS BIGINT)");
                }
                Flavor::Mysql => {
                    self.raw("CAST(");
                    self.call("DATEDIFF", &[l, r], schema);
                    self.raw(" AS SIGNED)");
                }
            },
            ScalarExpr::Cast { arg, to } => self.cast(arg, *to, schema),
            // The other expressions are rendered by `scalar`.
            other => self.scalar(other, schema),
        }
    }

    /// `ROUND(x, digits)`.
    fn round(&mut self, x: &ScalarExpr, digits: i32, schema: &Schema) {
        let integer = Self::ty(x, schema) == ColumnType::Integer;
        if self.flavor == Flavor::Sqlite {
            let name = if integer {
                "consort_round_i"
            } else {
                "consort_round_f"
            };
            let _ = write!(self.sql, "{name}(");
            self.scalar(x, schema);
            let _ = write!(self.sql, ", {digits})");
            return;
        }
        if integer {
            if digits >= 0 {
                self.scalar(x, schema);
                return;
            }
            // ((x / q) + (±1 when |x % q| * 2 >= q)) * q, q = 10^-digits.
            let q = 10i64.pow(digits.unsigned_abs());
            let (div, rem) = if self.flavor == Flavor::Mysql {
                ("DIV", "MOD")
            } else {
                ("/", "%")
            };
            self.raw("((");
            self.scalar(x, schema);
            let _ = write!(self.sql, " {div} {q}) + CASE WHEN ABS(");
            self.scalar(x, schema);
            let _ = write!(self.sql, " {rem} {q}) * 2 >= {q} THEN CASE WHEN ");
            self.scalar(x, schema);
            let _ = write!(self.sql, " < 0 THEN -1 ELSE 1 END ELSE 0 END) * {q}");
            return;
        }
        self.round_float(x, digits, schema);
    }

    /// A float rounded ties away from zero, spelled out (`scalar_funcs::round_float`).
    fn round_float(&mut self, x: &ScalarExpr, digits: i32, schema: &Schema) {
        let scale = pow10(digits.unsigned_abs());
        if digits >= 0 {
            self.raw("CASE WHEN ABS(");
            self.scalar(x, schema);
            self.raw(") >= ");
            self.plain_param(Value::Float(TWO_52 / scale));
            self.raw(" THEN ");
            self.scalar(x, schema);
            self.raw(" ELSE ");
        } else {
            self.raw("CASE WHEN ABS(");
            self.scalar(x, schema);
            self.raw(") < ");
            self.plain_param(Value::Float(scale * 0.5));
            self.raw(" THEN ");
            self.plain_param(Value::Float(0.0));
            self.raw(" ELSE ");
        }
        self.raw("(CASE WHEN ");
        self.scalar(x, schema);
        self.raw(" < 0 THEN -1 ELSE 1 END) * (");
        // y = |x| * 10^digits, or |x| / 10^-digits; r = floor(y) + (1 if the rest is
        // at least one half).
        let op = if digits >= 0 { "*" } else { "/" };
        let y = |r: &mut Self| {
            r.raw("(ABS(");
            r.scalar(x, schema);
            let _ = write!(r.sql, ") {op} ");
            r.plain_param(Value::Float(scale));
            r.raw(")");
        };
        self.raw("(FLOOR(");
        y(self);
        self.raw(") + CASE WHEN ");
        y(self);
        self.raw(" - FLOOR(");
        y(self);
        self.raw(") >= 0.5 THEN 1 ELSE 0 END)");
        let back = if digits >= 0 { "/" } else { "*" };
        let _ = write!(self.sql, " {back} ");
        self.plain_param(Value::Float(scale));
        self.raw(") END");
    }

    fn extreme(&mut self, greatest: bool, args: &[ScalarExpr], schema: &Schema) {
        let name = if greatest { "GREATEST" } else { "LEAST" };
        if let [only] = args {
            self.scalar(only, schema);
            return;
        }
        let text = args
            .first()
            .is_some_and(|a| Self::ty(a, schema) == ColumnType::Text);
        match self.flavor {
            Flavor::Sqlite => {
                let name = if greatest {
                    "consort_greatest"
                } else {
                    "consort_least"
                };
                let args: Vec<&ScalarExpr> = args.iter().collect();
                self.call(name, &args, schema);
            }
            Flavor::Postgres => {
                let _ = write!(self.sql, "{name}(");
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        self.raw(", ");
                    }
                    self.ordered_operand(a, schema);
                }
                self.raw(")");
            }
            Flavor::Mysql => {
                // MySQL's GREATEST is NULL if any argument is: argument i is replaced by
                // COALESCE(arg i, the others…), one of the non-NULL values if any.
                if text {
                    self.raw("CONVERT(");
                }
                let _ = write!(self.sql, "{name}(");
                for i in 0..args.len() {
                    if i > 0 {
                        self.raw(", ");
                    }
                    if text {
                        self.raw("CAST(");
                    }
                    self.raw("COALESCE(");
                    let order = std::iter::once(i).chain((0..args.len()).filter(|j| *j != i));
                    for (k, j) in order.enumerate() {
                        if k > 0 {
                            self.raw(", ");
                        }
                        self.scalar(&args[j], schema);
                    }
                    self.raw(")");
                    if text {
                        self.raw(" AS BINARY)");
                    }
                }
                self.raw(")");
                if text {
                    self.raw(" USING utf8mb4)");
                }
            }
        }
    }

    fn case_map(&mut self, upper: bool, x: &ScalarExpr, schema: &Schema) {
        let name = if upper { "upper" } else { "lower" };
        match self.flavor {
            Flavor::Sqlite => self.call(name, &[x], schema),
            Flavor::Postgres => {
                let _ = write!(self.sql, "{name}((");
                self.scalar(x, schema);
                self.raw(") COLLATE \"C\")");
            }
            Flavor::Mysql => {
                let letters = b'a'..=b'z';
                for _ in letters.clone() {
                    self.raw("REPLACE(");
                }
                self.scalar(x, schema);
                for l in letters {
                    let (from, to) = if upper {
                        (l, l.to_ascii_uppercase())
                    } else {
                        (l.to_ascii_uppercase(), l)
                    };
                    let _ = write!(self.sql, ", '{}', '{}')", from as char, to as char);
                }
            }
        }
    }

    fn date_trunc(&mut self, unit: TruncUnit, x: &ScalarExpr, schema: &Schema) {
        let timestamp = Self::ty(x, schema) == ColumnType::Timestamp;
        match self.flavor {
            Flavor::Sqlite => {
                let name = if timestamp {
                    "consort_trunc_ts"
                } else {
                    "consort_trunc_date"
                };
                let _ = write!(self.sql, "{name}({}, ", trunc_code(unit));
                self.scalar(x, schema);
                self.raw(")");
            }
            Flavor::Postgres if timestamp => {
                let _ = write!(self.sql, "(date_trunc('{}', (", unit.name());
                self.scalar(x, schema);
                self.raw(") AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')");
            }
            Flavor::Postgres => {
                let _ = write!(self.sql, "CAST(date_trunc('{}', CAST(", unit.name());
                self.scalar(x, schema);
                self.raw(" AS TIMESTAMP)) AS DATE)");
            }
            Flavor::Mysql => {
                // The day: the date itself, or a timestamp's (UTC) date.
                let day = |r: &mut Self| {
                    if timestamp {
                        r.raw("CAST(");
                        r.scalar(x, schema);
                        r.raw(" AS DATE)");
                    } else {
                        r.scalar(x, schema);
                    }
                };
                if timestamp {
                    self.raw("CAST(");
                }
                // MAKEDATE would read years below 100 as 20xx: only day arithmetic here.
                let back = |r: &mut Self, f: &str| {
                    r.raw("(");
                    day(r);
                    r.raw(" - INTERVAL (");
                    let _ = write!(r.sql, "{f}(");
                    day(r);
                    r.raw(") - 1) DAY)");
                };
                match unit {
                    TruncUnit::Year => back(self, "DAYOFYEAR"),
                    TruncUnit::Month => back(self, "DAYOFMONTH"),
                    TruncUnit::Quarter => {
                        self.raw("(");
                        back(self, "DAYOFMONTH");
                        self.raw(" - INTERVAL ((MONTH(");
                        day(self);
                        self.raw(") - 1) % 3) MONTH)");
                    }
                    TruncUnit::Week => {
                        self.raw("(");
                        day(self);
                        self.raw(" - INTERVAL WEEKDAY(");
                        day(self);
                        self.raw(") DAY)");
                    }
                    TruncUnit::Day => day(self),
                }
                if timestamp {
                    self.raw(" AS DATETIME(6))");
                }
            }
        }
    }

    fn add_interval(&mut self, x: &ScalarExpr, unit: IntervalUnit, amount: i64, schema: &Schema) {
        if self.flavor == Flavor::Sqlite {
            let name = match unit {
                IntervalUnit::Day => "consort_add_days",
                IntervalUnit::Month => "consort_add_months",
            };
            let _ = write!(self.sql, "{name}(");
            self.scalar(x, schema);
            let _ = write!(self.sql, ", {amount})");
            return;
        }
        let Some((first, last)) = interval_domain(unit, amount) else {
            self.typed_null(ColumnType::Date);
            return;
        };
        self.raw("CASE WHEN ");
        self.scalar(x, schema);
        self.raw(" BETWEEN ");
        self.plain_param(Value::Date(first));
        self.raw(" AND ");
        self.plain_param(Value::Date(last));
        self.raw(" THEN ");
        match (self.flavor, unit) {
            (Flavor::Postgres, IntervalUnit::Day) => {
                self.raw("(");
                self.scalar(x, schema);
                let _ = write!(self.sql, " + ({amount}))");
            }
            (Flavor::Postgres, IntervalUnit::Month) => {
                self.raw("CAST(");
                self.scalar(x, schema);
                let _ = write!(self.sql, " + ({amount}) * INTERVAL '1 month' AS DATE)");
            }
            (_, unit) => {
                self.raw("(");
                self.scalar(x, schema);
                let _ = write!(self.sql, " + INTERVAL ({amount}) {})", unit.name());
            }
        }
        self.raw(" END");
    }

    fn cast(&mut self, x: &ScalarExpr, to: ColumnType, schema: &Schema) {
        use ColumnType as T;
        let from = Self::ty(x, schema);
        let (pg, my) = (
            self.flavor == Flavor::Postgres,
            self.flavor == Flavor::Mysql,
        );
        let int = if my {
            "SIGNED"
        } else if pg {
            "BIGINT"
        } else {
            "INTEGER"
        };
        match (from, to, self.flavor) {
            (T::Float, T::Integer, Flavor::Sqlite) => {
                self.call("consort_float_to_int", &[x], schema)
            }
            (T::Text, T::Integer, Flavor::Sqlite) => self.call("consort_text_to_int", &[x], schema),
            (T::Float, T::Integer, _) => {
                // In range: the rounded float as an integer; out of it (and -2^63, which
                // MySQL refuses): a conversion the database refuses.
                self.raw("CASE WHEN ");
                self.round_float(x, 0, schema);
                self.raw(" > -9223372036854775808e0 AND ");
                self.round_float(x, 0, schema);
                let _ = write!(self.sql, " < 9223372036854775808e0 THEN CAST(");
                self.round_float(x, 0, schema);
                let _ = write!(self.sql, " AS {int}) ELSE ");
                if my {
                    self.round_float(x, 0, schema);
                    self.raw(" DIV 1 END");
                } else {
                    self.raw("CAST(");
                    self.round_float(x, 0, schema);
                    self.raw(" * 2 AS BIGINT) END");
                }
            }
            (T::Text, T::Integer, _) => {
                let matches = if pg { " ~ " } else { " REGEXP " };
                let end = if pg { "$" } else { "\\z" };
                self.raw("CASE WHEN ");
                self.scalar(x, schema);
                self.raw(matches);
                self.plain_param(Value::Text(format!("^[+-]?[0-9]{{1,19}}{end}").into()));
                self.raw(" THEN CASE WHEN CAST(");
                self.scalar(x, schema);
                let decimal = if pg { "NUMERIC" } else { "DECIMAL(20, 0)" };
                let _ = write!(
                    self.sql,
                    " AS {decimal}) BETWEEN -9223372036854775808 AND 9223372036854775807 THEN CAST("
                );
                self.scalar(x, schema);
                let _ = write!(self.sql, " AS {int}) END END");
            }
            (T::Boolean, T::Integer, _) => {
                if self.flavor != Flavor::Sqlite {
                    self.raw("CAST(");
                }
                self.raw("CASE WHEN ");
                self.scalar(x, schema);
                self.raw(" THEN 1 WHEN NOT ");
                self.scalar(x, schema);
                self.raw(" THEN 0 END");
                if self.flavor != Flavor::Sqlite {
                    let _ = write!(self.sql, " AS {int})");
                }
            }
            (T::Integer, T::Boolean, _) => {
                self.raw("(");
                self.scalar(x, schema);
                self.raw(" <> 0)");
            }
            (T::Boolean, T::Text, _) => {
                self.raw("CASE WHEN ");
                self.scalar(x, schema);
                self.raw(" THEN 'true' WHEN NOT ");
                self.scalar(x, schema);
                self.raw(" THEN 'false' END");
            }
            (T::Date, T::Text, Flavor::Sqlite) => self.scalar(x, schema),
            (T::Date, T::Text, Flavor::Postgres) => {
                self.raw("to_char(");
                self.scalar(x, schema);
                self.raw(", 'YYYY-MM-DD')");
            }
            (T::Date, T::Text, Flavor::Mysql) => {
                self.raw("DATE_FORMAT(");
                self.scalar(x, schema);
                self.raw(", '%Y-%m-%d')");
            }
            (T::Timestamp, T::Text, Flavor::Sqlite) => {
                self.raw("(substr(");
                self.scalar(x, schema);
                self.raw(", 1, 10) || ' ' || substr(");
                self.scalar(x, schema);
                self.raw(", 12, 15))");
            }
            (T::Timestamp, T::Text, Flavor::Postgres) => {
                self.raw("to_char((");
                self.scalar(x, schema);
                self.raw(") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')");
            }
            (T::Timestamp, T::Text, Flavor::Mysql) => {
                self.raw("DATE_FORMAT(");
                self.scalar(x, schema);
                self.raw(", '%Y-%m-%d %H:%i:%s.%f')");
            }
            (T::Timestamp, T::Date, Flavor::Sqlite) => {
                self.raw("substr(");
                self.scalar(x, schema);
                self.raw(", 1, 10)");
            }
            (T::Timestamp, T::Date, Flavor::Postgres) => {
                self.raw("CAST((");
                self.scalar(x, schema);
                self.raw(") AT TIME ZONE 'UTC' AS DATE)");
            }
            (T::Timestamp, T::Date, Flavor::Mysql) => {
                self.raw("CAST(");
                self.scalar(x, schema);
                self.raw(" AS DATE)");
            }
            (T::Date, T::Timestamp, Flavor::Sqlite) => {
                self.raw("(");
                self.scalar(x, schema);
                self.raw(" || 'T00:00:00.000000Z')");
            }
            (T::Date, T::Timestamp, Flavor::Postgres) => {
                self.raw("(CAST(");
                self.scalar(x, schema);
                self.raw(" AS TIMESTAMP) AT TIME ZONE 'UTC')");
            }
            (T::Date, T::Timestamp, Flavor::Mysql) => {
                self.raw("CAST(");
                self.scalar(x, schema);
                self.raw(" AS DATETIME(6))");
            }
            // Refused by the typing rule before rendering.
            _ => self.typed_null(to),
        }
    }
}
