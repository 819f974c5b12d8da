//! Canonical byte encoding of values, predicates and rows, shared by the plan hash, the
//! result-table hash and the query protocol's public messages. Built on
//! `consort_crypto::encoding` (big-endian fixed width, u32-length-prefixed strings).
//!
//! A value is encoded as the data model's one canonical value encoding
//! (`consort_model::canonical`, FORMAT.md §2): the encoding dataset commitments use.

use consort_crypto::encoding::{Reader, Writer};
use consort_crypto::DecodeError;
use consort_model::local_query::{CmpOp, Predicate};
use consort_model::Value;

pub(crate) use consort_model::canonical::{read_value as get_value, write_value as put_value};

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
