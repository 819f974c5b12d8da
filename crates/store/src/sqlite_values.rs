//! consort's SQLite functions for the second set of scalar functions: each reads its
//! arguments as model values, calls the reference semantics (`scalar_funcs`) and
//! returns the value in SQLite's storage form (dates and timestamps as their fixed-width
//! text). SQLite therefore computes exactly what the reference evaluator computes.

use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

use chrono::{NaiveDate, NaiveDateTime};
use consort_model::scalar::{IntervalUnit, TruncUnit};
use consort_model::value::{ColumnType, Value};
use rusqlite::ffi;

use super::scalar_funcs as funcs;

/// How a function reads its arguments: `Float` reads numbers as floats, `Date` and
/// `Timestamp` read text as dates or timestamps (integers stay integers).
#[derive(Clone, Copy)]
enum Read {
    Plain,
    Float,
    Date,
    Timestamp,
}

type ValueFn = fn(&[Value]) -> Result<Value, String>;

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Integer(i) => Ok(*i),
        // `Read::Float` reads every number as a float; the constants are small integers.
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(*f as i64),
        v => Err(format!("expected an integer constant, got {v:?}")),
    }
}

fn digits(v: &Value) -> Result<i32, String> {
    i32::try_from(int(v)?).map_err(|_| "ROUND digits out of range".to_string())
}

/// The code of a `DATE_TRUNC` unit in the SQL (`consort_trunc_date(code, x)`).
pub(crate) fn trunc_code(unit: TruncUnit) -> i64 {
    match unit {
        TruncUnit::Year => 0,
        TruncUnit::Quarter => 1,
        TruncUnit::Month => 2,
        TruncUnit::Week => 3,
        TruncUnit::Day => 4,
    }
}

fn trunc_unit(v: &Value) -> Result<TruncUnit, String> {
    Ok(match int(v)? {
        0 => TruncUnit::Year,
        1 => TruncUnit::Quarter,
        2 => TruncUnit::Month,
        3 => TruncUnit::Week,
        4 => TruncUnit::Day,
        n => return Err(format!("unknown DATE_TRUNC unit {n}")),
    })
}

fn iso_week(a: &[Value]) -> Result<Value, String> {
    Ok(match &a[0] {
        Value::Date(d) => Value::Integer(funcs::iso_week(*d)),
        _ => Value::Null,
    })
}

const FUNCTIONS: [(&CStr, c_int, Read, ValueFn); 13] = [
    (c"consort_round_f", 2, Read::Float, |a| {
        funcs::round(&a[0], digits(&a[1])?)
    }),
    (c"consort_round_i", 2, Read::Plain, |a| {
        funcs::round(&a[0], digits(&a[1])?)
    }),
    (c"consort_power", 2, Read::Float, |a| {
        funcs::power(&a[0], &a[1])
    }),
    (c"consort_greatest", -1, Read::Plain, |a| {
        funcs::extreme(true, a)
    }),
    (c"consort_least", -1, Read::Plain, |a| {
        funcs::extreme(false, a)
    }),
    (c"consort_trunc_date", 2, Read::Date, |a| {
        funcs::date_trunc(trunc_unit(&a[0])?, &a[1])
    }),
    (c"consort_trunc_ts", 2, Read::Timestamp, |a| {
        funcs::date_trunc(trunc_unit(&a[0])?, &a[1])
    }),
    (c"consort_add_days", 2, Read::Date, |a| {
        funcs::interval(&a[0], IntervalUnit::Day, int(&a[1])?)
    }),
    (c"consort_add_months", 2, Read::Date, |a| {
        funcs::interval(&a[0], IntervalUnit::Month, int(&a[1])?)
    }),
    (c"consort_date_diff", 2, Read::Date, |a| {
        funcs::date_diff(&a[0], &a[1])
    }),
    (c"consort_iso_week", 1, Read::Date, iso_week),
    (c"consort_float_to_int", 1, Read::Float, |a| {
        funcs::cast(&a[0], ColumnType::Integer)
    }),
    (c"consort_text_to_int", 1, Read::Plain, |a| {
        funcs::cast(&a[0], ColumnType::Integer)
    }),
];

/// Registers the functions on `db`.
pub(crate) fn register(db: NonNull<ffi::sqlite3>) -> Result<(), String> {
    for (index, (name, args, _, _)) in FUNCTIONS.iter().enumerate() {
        super::sqlite_functions::create(db, name, *args, index, call)?;
    }
    Ok(())
}

/// Reads one SQLite value as a model value.
///
/// # Safety
/// `value` must be a valid SQLite value of the current call.
unsafe fn read(value: *mut ffi::sqlite3_value, how: Read) -> Result<Value, String> {
    // SAFETY: the caller passes a valid value; the text pointer is valid for the length
    // SQLite reports until the value changes, and is copied at once.
    let v = unsafe {
        match ffi::sqlite3_value_type(value) {
            ffi::SQLITE_NULL => Value::Null,
            ffi::SQLITE_INTEGER => match how {
                Read::Float => Value::Float(ffi::sqlite3_value_double(value)),
                _ => Value::Integer(ffi::sqlite3_value_int64(value)),
            },
            ffi::SQLITE_FLOAT => Value::Float(ffi::sqlite3_value_double(value)),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_value_text(value);
                let n = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
                let bytes = if p.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(p, n)
                };
                let s = std::str::from_utf8(bytes).map_err(|_| "text that is not UTF-8")?;
                match how {
                    Read::Date => Value::Date(
                        NaiveDate::parse_from_str(s, "%Y-%m-%d")
                            .map_err(|_| format!("bad stored date {s:?}"))?,
                    ),
                    Read::Timestamp => Value::Timestamp(
                        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ")
                            .map_err(|_| format!("bad stored timestamp {s:?}"))?
                            .and_utc(),
                    ),
                    _ => Value::Text(s.into()),
                }
            }
            _ => return Err("a binary value".into()),
        }
    };
    Ok(v)
}

/// Sets the call's result to `v` in SQLite's storage form.
///
/// # Safety
/// `ctx` must be the valid context of the current call.
unsafe fn answer(ctx: *mut ffi::sqlite3_context, v: Value) {
    let text = |ctx: *mut ffi::sqlite3_context, s: &str| {
        let n = c_int::try_from(s.len()).unwrap_or(c_int::MAX);
        // SAFETY: SQLite copies the text (SQLITE_TRANSIENT) before returning.
        unsafe { ffi::sqlite3_result_text(ctx, s.as_ptr().cast(), n, ffi::SQLITE_TRANSIENT()) };
    };
    // SAFETY: `ctx` is valid (the caller's contract).
    unsafe {
        match v {
            Value::Null => ffi::sqlite3_result_null(ctx),
            Value::Integer(i) => ffi::sqlite3_result_int64(ctx, i),
            Value::Float(f) => ffi::sqlite3_result_double(ctx, f),
            Value::Boolean(b) => ffi::sqlite3_result_int64(ctx, i64::from(b)),
            Value::Text(t) => text(ctx, t.as_str()),
            Value::Date(d) => text(ctx, &d.format("%Y-%m-%d").to_string()),
            Value::Timestamp(t) => text(ctx, &t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        }
    }
}

/// The one entry point; the user data says which function.
unsafe extern "C" fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY (whole body): SQLite passes a valid context and `argc` valid values.
    let index = unsafe { ffi::sqlite3_user_data(ctx) } as usize;
    let Some((_, arity, how, f)) = FUNCTIONS.get(index) else {
        unsafe { ffi::sqlite3_result_error(ctx, c"unknown consort function".as_ptr(), -1) };
        return;
    };
    // SQLite checks the number of arguments against the registration; checked again so
    // that no function can index past its arguments.
    if *arity >= 0 && argc != *arity {
        let msg = c"a consort function called with the wrong number of arguments";
        unsafe { ffi::sqlite3_result_error(ctx, msg.as_ptr(), -1) };
        return;
    }
    let mut args = Vec::with_capacity(usize::try_from(argc).unwrap_or(0));
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        match unsafe { read(*argv.add(i), *how) } {
            Ok(v) => args.push(v),
            Err(e) => {
                let n = c_int::try_from(e.len()).unwrap_or(c_int::MAX);
                unsafe { ffi::sqlite3_result_error(ctx, e.as_ptr().cast(), n) };
                return;
            }
        }
    }
    match f(&args) {
        Ok(v) => unsafe { answer(ctx, v) },
        Err(e) => {
            let n = c_int::try_from(e.len()).unwrap_or(c_int::MAX);
            unsafe { ffi::sqlite3_result_error(ctx, e.as_ptr().cast(), n) };
        }
    }
}
