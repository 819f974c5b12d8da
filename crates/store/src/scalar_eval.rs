//! The reference evaluator of row expressions (`consort_model::scalar`), which the memory
//! store runs to compute derived columns; the SQL backends are tested against it. An
//! integer result outside 64 bits is an error (the SQL backends refuse it too), never a
//! wrapped value.

use std::cmp::Ordering;

use chrono::{Datelike, Timelike};
use consort_model::local_query::CmpOp;
use consort_model::scalar::{ArithOp, DatePart, Derived, MathFunc, ScalarExpr};
use consort_model::value::{compare_values, Row, Schema, Value};

use super::scalar_funcs as funcs;
use super::StoreError;

/// The row with every derived column appended, in order.
pub(crate) fn extend_row(
    table: &str,
    schema: &Schema,
    derived: &[Derived],
    row: &Row,
) -> Result<Row, StoreError> {
    let mut out = row.clone();
    for d in derived {
        let v = eval(&d.expr, schema, row).map_err(|e| {
            StoreError::Database(format!("table {table}: computing {}: {e}", d.name))
        })?;
        out.push(v);
    }
    Ok(out)
}

type Eval = Result<Value, String>;

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Boolean(b) => Some(*b),
        _ => None,
    }
}

fn boolean(t: Option<bool>) -> Value {
    t.map_or(Value::Null, Value::Boolean)
}

/// Evaluates `e` on `row` (laid out as `schema`). Callers checked the types
/// (`ScalarExpr::result_type`); a mismatch here is reported, not assumed away.
pub(crate) fn eval(e: &ScalarExpr, schema: &Schema, row: &[Value]) -> Eval {
    let sub = |e: &ScalarExpr| eval(e, schema, row);
    Ok(match e {
        ScalarExpr::Column(name) => schema
            .index_of(name)
            .and_then(|i| row.get(i))
            .cloned()
            .ok_or_else(|| format!("unknown column {name:?}"))?,
        ScalarExpr::Literal { value, .. } => value.clone(),
        ScalarExpr::Arith { op, left, right } => arith(*op, &sub(left)?, &sub(right)?)?,
        ScalarExpr::Negate(x) => match sub(x)? {
            Value::Null => Value::Null,
            Value::Integer(i) => Value::Integer(i.checked_neg().ok_or("integer overflow")?),
            Value::Float(f) => Value::Float(-f),
            v => return Err(format!("sign of {v:?}")),
        },
        ScalarExpr::Abs(x) => match sub(x)? {
            Value::Null => Value::Null,
            Value::Integer(i) => Value::Integer(i.checked_abs().ok_or("integer overflow")?),
            Value::Float(f) => Value::Float(f.abs()),
            v => return Err(format!("ABS of {v:?}")),
        },
        ScalarExpr::Concat(l, r) => match (sub(l)?, sub(r)?) {
            (Value::Text(a), Value::Text(b)) => Value::Text(format!("{a}{b}").into()),
            (Value::Null, _) | (_, Value::Null) => Value::Null,
            (a, b) => return Err(format!("{a:?} || {b:?}")),
        },
        ScalarExpr::Compare { op, left, right } => compare(*op, &sub(left)?, &sub(right)?),
        ScalarExpr::And(parts) => {
            let mut acc = Some(true);
            for p in parts {
                acc = match (acc, truth(&sub(p)?)) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
            }
            boolean(acc)
        }
        ScalarExpr::Or(parts) => {
            let mut acc = Some(false);
            for p in parts {
                acc = match (acc, truth(&sub(p)?)) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
            }
            boolean(acc)
        }
        ScalarExpr::Not(x) => boolean(truth(&sub(x)?).map(|b| !b)),
        ScalarExpr::IsNull { expr, negated } => Value::Boolean(sub(expr)?.is_null() != *negated),
        ScalarExpr::Like {
            expr,
            pattern,
            negated,
        } => match sub(expr)? {
            Value::Text(s) => Value::Boolean(crate::local_eval::like(&s, pattern) != *negated),
            _ => Value::Null,
        },
        ScalarExpr::Case { whens, otherwise } => {
            for (cond, value) in whens {
                if truth(&sub(cond)?) == Some(true) {
                    return sub(value);
                }
            }
            match otherwise {
                Some(x) => sub(x)?,
                None => Value::Null,
            }
        }
        ScalarExpr::Coalesce(args) => {
            for a in args {
                let v = sub(a)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Value::Null
        }
        ScalarExpr::NullIf(a, b) => {
            let (a, b) = (sub(a)?, sub(b)?);
            if compare(CmpOp::Eq, &a, &b) == Value::Boolean(true) {
                Value::Null
            } else {
                a
            }
        }
        ScalarExpr::ToFloat(x) => match sub(x)? {
            Value::Integer(i) => Value::Float(i as f64),
            v => v,
        },
        ScalarExpr::IntegerToText(x) => match sub(x)? {
            Value::Integer(i) => Value::Text(i.to_string().into()),
            v => v,
        },
        ScalarExpr::Math { func, arg } => match sub(arg)? {
            Value::Null => Value::Null,
            Value::Float(x) => math(*func, x)?,
            v => return Err(format!("{}({v:?})", func.name())),
        },
        ScalarExpr::Sign(x) => match sub(x)? {
            Value::Null => Value::Null,
            Value::Integer(i) => Value::Integer(i.signum()),
            // -0.0 and 0.0 are both 0.
            Value::Float(f) => Value::Integer(if f > 0.0 {
                1
            } else if f < 0.0 {
                -1
            } else {
                0
            }),
            v => return Err(format!("SIGN of {v:?}")),
        },
        ScalarExpr::Length(x) => match sub(x)? {
            Value::Null => Value::Null,
            Value::Text(t) => Value::Integer(t.chars().count() as i64),
            v => return Err(format!("LENGTH of {v:?}")),
        },
        ScalarExpr::Extract { part, expr } => match sub(expr)? {
            Value::Null => Value::Null,
            Value::Date(d) => Value::Integer(date_part(*part, d, 0)?),
            Value::Timestamp(t) => {
                Value::Integer(date_part(*part, t.date_naive(), i64::from(t.hour()))?)
            }
            v => return Err(format!("EXTRACT from {v:?}")),
        },
        ScalarExpr::Round { arg, digits } => funcs::round(&sub(arg)?, *digits)?,
        ScalarExpr::Power(x, y) => funcs::power(&sub(x)?, &sub(y)?)?,
        ScalarExpr::Extreme { greatest, args } => {
            let values = args.iter().map(sub).collect::<Result<Vec<_>, _>>()?;
            funcs::extreme(*greatest, &values)?
        }
        ScalarExpr::CaseMap { upper, arg } => funcs::case_map(*upper, &sub(arg)?)?,
        ScalarExpr::Substr { arg, start, len } => funcs::substr(&sub(arg)?, *start, *len)?,
        ScalarExpr::Trim { arg, side, ch } => funcs::trim(&sub(arg)?, *side, *ch)?,
        ScalarExpr::Replace { arg, from, to } => {
            funcs::replace(&sub(arg)?, &sub(from)?, &sub(to)?)?
        }
        ScalarExpr::DateTrunc { unit, arg } => funcs::date_trunc(*unit, &sub(arg)?)?,
        ScalarExpr::AddInterval { arg, unit, amount } => {
            funcs::interval(&sub(arg)?, *unit, *amount)?
        }
        ScalarExpr::DateDiff(l, r) => funcs::date_diff(&sub(l)?, &sub(r)?)?,
        ScalarExpr::Cast { arg, to } => funcs::cast(&sub(arg)?, *to)?,
    })
}

/// A math function with the documented NULLs; a non-finite result is an error.
pub(crate) fn math(func: MathFunc, x: f64) -> Eval {
    let r = match func {
        MathFunc::Sqrt if x < 0.0 => return Ok(Value::Null),
        MathFunc::Ln if x <= 0.0 => return Ok(Value::Null),
        MathFunc::Sqrt => x.sqrt(),
        MathFunc::Ln => x.ln(),
        MathFunc::Exp => x.exp(),
        MathFunc::Floor => x.floor(),
        MathFunc::Ceil => x.ceil(),
    };
    if !r.is_finite() {
        return Err(format!("{} overflows a float", func.name()));
    }
    Ok(Value::Float(if r == 0.0 { 0.0 } else { r }))
}

fn date_part(part: DatePart, d: chrono::NaiveDate, hour: i64) -> Result<i64, String> {
    Ok(match part {
        DatePart::Year => i64::from(d.year()),
        DatePart::Quarter => i64::from(d.month0() / 3 + 1),
        DatePart::Month => i64::from(d.month()),
        DatePart::Day => i64::from(d.day()),
        DatePart::DayOfWeek => i64::from(d.weekday().num_days_from_sunday()),
        DatePart::DayOfYear => i64::from(d.ordinal()),
        DatePart::Hour => hour,
        DatePart::Week => funcs::iso_week(d),
    })
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Value {
    if a.is_null() || b.is_null() {
        return Value::Null;
    }
    // Integers and floats compare as numbers; the model's order ranks types otherwise.
    let o = match (a, b) {
        (Value::Integer(i), Value::Float(f)) => (*i as f64).partial_cmp(f),
        (Value::Float(f), Value::Integer(i)) => f.partial_cmp(&(*i as f64)),
        _ => Some(compare_values(a, b)),
    };
    let Some(o) = o else {
        return Value::Null;
    };
    Value::Boolean(match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::NotEq => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::LtEq => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::GtEq => o != Ordering::Less,
    })
}

fn arith(op: ArithOp, a: &Value, b: &Value) -> Eval {
    Ok(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        (Value::Integer(x), Value::Integer(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div if y == 0 => return Ok(Value::Null),
                ArithOp::Rem if y == 0 => return Ok(Value::Null),
                // i64::MIN % -1 is 0 in every backend, though the division overflows.
                ArithOp::Rem if y == -1 => Some(0),
                // Rust's `/` and `%` truncate toward zero, as SQL's do.
                ArithOp::Div => x.checked_div(y),
                ArithOp::Rem => x.checked_rem(y),
            };
            Value::Integer(r.ok_or("integer overflow")?)
        }
        (Value::Float(x), Value::Float(y)) => {
            let r = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div if *y == 0.0 => return Ok(Value::Null),
                ArithOp::Div => x / y,
                ArithOp::Rem => return Err("% of floats".into()),
            };
            if !r.is_finite() {
                return Err("float overflow".into());
            }
            Value::Float(if r == 0.0 { 0.0 } else { r })
        }
        (a, b) => return Err(format!("{a:?} {} {b:?}", op.symbol())),
    })
}
