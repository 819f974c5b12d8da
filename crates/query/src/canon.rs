//! Canonical byte encoding of values, predicates and rows, shared by the plan hash, the
//! result-table hash and the query protocol's public messages. Built on
//! `consort_crypto::encoding` (big-endian fixed width, u32-length-prefixed strings).
//!
//! A value is encoded as the data model's one canonical value encoding
//! (`consort_model::canonical`, FORMAT.md §2): the encoding dataset commitments use.

use consort_crypto::encoding::{Reader, Writer};
use consort_crypto::DecodeError;
use consort_model::local_query::{CmpOp, Predicate};
use consort_model::scalar::{ArithOp, DatePart, Derived, MathFunc, ScalarExpr, TrimSide};
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

/// A signed integer as its 64-bit two's complement, big-endian.
fn put_int(w: &mut Writer, v: i64) {
    w.u64(u64::from_be_bytes(v.to_be_bytes()));
}

/// A derived column: its name, then its expression (a tag per node, operands after).
pub(crate) fn put_derived(w: &mut Writer, d: &Derived) {
    w.string(&d.name);
    put_scalar(w, &d.expr);
}

fn put_scalar(w: &mut Writer, e: &ScalarExpr) {
    match e {
        ScalarExpr::Column(name) => {
            w.u8(0).string(name);
        }
        ScalarExpr::Literal { value, ty } => {
            w.u8(1).string(ty.as_str());
            put_value(w, value);
        }
        ScalarExpr::Arith { op, left, right } => {
            let code = match op {
                ArithOp::Add => 0,
                ArithOp::Sub => 1,
                ArithOp::Mul => 2,
                ArithOp::Div => 3,
                ArithOp::Rem => 4,
            };
            w.u8(2).u8(code);
            put_scalar(w, left);
            put_scalar(w, right);
        }
        ScalarExpr::Negate(x) => {
            w.u8(3);
            put_scalar(w, x);
        }
        ScalarExpr::Concat(l, r) => {
            w.u8(4);
            put_scalar(w, l);
            put_scalar(w, r);
        }
        ScalarExpr::Compare { op, left, right } => {
            w.u8(5).u8(cmp_code(*op));
            put_scalar(w, left);
            put_scalar(w, right);
        }
        ScalarExpr::And(parts) | ScalarExpr::Or(parts) | ScalarExpr::Coalesce(parts) => {
            let tag = match e {
                ScalarExpr::And(_) => 6,
                ScalarExpr::Or(_) => 7,
                _ => 8,
            };
            w.u8(tag).length_prefix(parts.len());
            for p in parts {
                put_scalar(w, p);
            }
        }
        ScalarExpr::Not(x) => {
            w.u8(9);
            put_scalar(w, x);
        }
        ScalarExpr::IsNull { expr, negated } => {
            w.u8(10).bool(*negated);
            put_scalar(w, expr);
        }
        ScalarExpr::Like {
            expr,
            pattern,
            negated,
        } => {
            w.u8(31).bool(*negated).string(pattern);
            put_scalar(w, expr);
        }
        ScalarExpr::Case { whens, otherwise } => {
            w.u8(11).length_prefix(whens.len());
            for (c, v) in whens {
                put_scalar(w, c);
                put_scalar(w, v);
            }
            w.option(otherwise.as_deref(), put_scalar);
        }
        ScalarExpr::NullIf(a, b) => {
            w.u8(12);
            put_scalar(w, a);
            put_scalar(w, b);
        }
        ScalarExpr::Abs(x) => {
            w.u8(13);
            put_scalar(w, x);
        }
        ScalarExpr::ToFloat(x) => {
            w.u8(14);
            put_scalar(w, x);
        }
        ScalarExpr::IntegerToText(x) => {
            w.u8(15);
            put_scalar(w, x);
        }
        ScalarExpr::Extract { part, expr } => {
            let code = match part {
                DatePart::Year => 0,
                DatePart::Quarter => 1,
                DatePart::Month => 2,
                DatePart::Day => 3,
                DatePart::DayOfWeek => 4,
                DatePart::DayOfYear => 5,
                DatePart::Hour => 6,
                DatePart::Week => 7,
            };
            w.u8(16).u8(code);
            put_scalar(w, expr);
        }
        ScalarExpr::Math { func, arg } => {
            let code = match func {
                MathFunc::Sqrt => 0,
                MathFunc::Ln => 1,
                MathFunc::Exp => 2,
                MathFunc::Floor => 3,
                MathFunc::Ceil => 4,
            };
            w.u8(17).u8(code);
            put_scalar(w, arg);
        }
        ScalarExpr::Sign(x) => {
            w.u8(18);
            put_scalar(w, x);
        }
        ScalarExpr::Length(x) => {
            w.u8(19);
            put_scalar(w, x);
        }
        // Tags from 20 on: the second set of functions (earlier encodings are unchanged,
        // so earlier plans keep their hashes).
        ScalarExpr::Round { arg, digits } => {
            w.u8(20);
            put_int(w, i64::from(*digits));
            put_scalar(w, arg);
        }
        ScalarExpr::Power(x, y) => {
            w.u8(21);
            put_scalar(w, x);
            put_scalar(w, y);
        }
        ScalarExpr::Extreme { greatest, args } => {
            w.u8(22).bool(*greatest).length_prefix(args.len());
            for a in args {
                put_scalar(w, a);
            }
        }
        ScalarExpr::CaseMap { upper, arg } => {
            w.u8(23).bool(*upper);
            put_scalar(w, arg);
        }
        ScalarExpr::Substr { arg, start, len } => {
            w.u8(24);
            put_int(w, *start);
            w.option(len.as_ref(), |w, l| put_int(w, *l));
            put_scalar(w, arg);
        }
        ScalarExpr::Trim { arg, side, ch } => {
            let code = match side {
                TrimSide::Both => 0,
                TrimSide::Leading => 1,
                TrimSide::Trailing => 2,
            };
            w.u8(25).u8(code).string(ch.encode_utf8(&mut [0; 4]));
            put_scalar(w, arg);
        }
        ScalarExpr::Replace { arg, from, to } => {
            w.u8(26);
            put_scalar(w, arg);
            put_scalar(w, from);
            put_scalar(w, to);
        }
        ScalarExpr::DateTrunc { unit, arg } => {
            w.u8(27).string(unit.name());
            put_scalar(w, arg);
        }
        ScalarExpr::AddInterval { arg, unit, amount } => {
            w.u8(28).string(unit.name());
            put_int(w, *amount);
            put_scalar(w, arg);
        }
        ScalarExpr::DateDiff(l, r) => {
            w.u8(29);
            put_scalar(w, l);
            put_scalar(w, r);
        }
        ScalarExpr::Cast { arg, to } => {
            w.u8(30).string(to.as_str());
            put_scalar(w, arg);
        }
    }
}
