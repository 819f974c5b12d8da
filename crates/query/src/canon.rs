//! Canonical byte encoding of values, predicates and rows, shared by the plan hash, the
//! result-table hash and the query protocol's public messages. Built on
//! `consort_crypto::encoding` (big-endian fixed width, u32-length-prefixed strings).
//!
//! A value is one tag byte then its payload: 0 NULL; 1 integer (i64 as u64); 2 float
//! (IEEE-754 bits as u64); 3 boolean (one byte); 4 text (string); 5 date (days since
//! 0001-01-01 as i64 as u64); 6 timestamp (microseconds since the Unix epoch as u64).

use chrono::{DateTime, Datelike, NaiveDate};
use consort_crypto::encoding::{Reader, Writer};
use consort_crypto::DecodeError;
use consort_model::local_query::{CmpOp, Predicate};
use consort_model::Value;

pub(crate) fn put_value(w: &mut Writer, v: &Value) {
    match v {
        Value::Null => {
            w.u8(0);
        }
        Value::Integer(i) => {
            w.u8(1).u64(*i as u64);
        }
        Value::Float(f) => {
            w.u8(2).u64(f.to_bits());
        }
        Value::Boolean(b) => {
            w.u8(3).bool(*b);
        }
        Value::Text(s) => {
            w.u8(4).string(s);
        }
        Value::Date(d) => {
            w.u8(5).u64(i64::from(d.num_days_from_ce()) as u64);
        }
        Value::Timestamp(t) => {
            w.u8(6).u64(t.timestamp_micros() as u64);
        }
    }
}

pub(crate) fn get_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    Ok(match r.u8()? {
        0 => Value::Null,
        1 => Value::Integer(r.u64()? as i64),
        2 => Value::Float(f64::from_bits(r.u64()?)),
        3 => Value::Boolean(r.bool()?),
        4 => Value::Text(r.string()?.into()),
        5 => {
            let days = r.u64()? as i64;
            let d = i32::try_from(days)
                .ok()
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| r.error("date out of range"))?;
            Value::Date(d)
        }
        6 => {
            let t = DateTime::from_timestamp_micros(r.u64()? as i64)
                .ok_or_else(|| r.error("timestamp out of range"))?;
            Value::Timestamp(t)
        }
        t => return Err(r.error(format!("unknown value tag {t}"))),
    })
}

pub(crate) fn put_row(w: &mut Writer, row: &[Value]) {
    w.length_prefix(row.len());
    for v in row {
        put_value(w, v);
    }
}

pub(crate) fn get_row(r: &mut Reader<'_>) -> Result<Vec<Value>, DecodeError> {
    // Every value takes at least one byte, so the count is bounded by the input left.
    let n = r.count(1)?;
    (0..n).map(|_| get_value(r)).collect()
}

pub(crate) fn put_rows(w: &mut Writer, rows: &[Vec<Value>]) {
    w.length_prefix(rows.len());
    for row in rows {
        put_row(w, row);
    }
}

pub(crate) fn get_rows(r: &mut Reader<'_>) -> Result<Vec<Vec<Value>>, DecodeError> {
    let n = r.count(4)?;
    (0..n).map(|_| get_row(r)).collect()
}

pub(crate) fn cmp_code(op: CmpOp) -> u8 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::NotEq => 1,
        CmpOp::Lt => 2,
        CmpOp::LtEq => 3,
        CmpOp::Gt => 4,
        CmpOp::GtEq => 5,
    }
}

pub(crate) fn put_predicate(w: &mut Writer, p: &Predicate) {
    match p {
        Predicate::Compare { column, op, value } => {
            w.u8(0).string(column).u8(cmp_code(*op));
            put_value(w, value);
        }
        Predicate::And(ps) | Predicate::Or(ps) => {
            w.u8(if matches!(p, Predicate::And(_)) { 1 } else { 2 });
            w.length_prefix(ps.len());
            for q in ps {
                put_predicate(w, q);
            }
        }
        Predicate::Not(q) => {
            w.u8(3);
            put_predicate(w, q);
        }
        Predicate::In {
            column,
            values,
            negated,
        } => {
            w.u8(4).string(column).bool(*negated);
            put_row(w, values);
        }
        Predicate::Between {
            column,
            low,
            high,
            negated,
        } => {
            w.u8(5).string(column).bool(*negated);
            put_value(w, low);
            put_value(w, high);
        }
        Predicate::Like {
            column,
            pattern,
            negated,
        } => {
            w.u8(6).string(column).bool(*negated).string(pattern);
        }
        Predicate::IsNull { column, negated } => {
            w.u8(7).string(column).bool(*negated);
        }
    }
}

/// The order of group keys, ORDER BY and join keys: the model's one order on values
/// (`consort_model::value::compare_values`), which the stores use too.
pub(crate) use consort_model::value::{compare_rows as cmp_rows, compare_values as cmp_values};
