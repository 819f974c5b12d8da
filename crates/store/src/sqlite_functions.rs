//! Functions consort adds to every SQLite connection that runs owner-local queries.
//!
//! SQLite turns an integer `+`, `-` or `*` that overflows 64 bits into a float, and
//! reading that float back as an integer would truncate it: a silent wrong answer. The
//! row expressions of a query therefore use `consort_add`, `consort_sub`, `consort_mul`,
//! `consort_div` and `consort_neg` for integer arithmetic, which raise "integer overflow"
//! instead, as PostgreSQL and MySQL do (`i64::MIN / -1` included). NULL in gives NULL out.

use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

use consort_model::scalar::MathFunc;
use consort_model::value::Value;
use rusqlite::ffi;

/// Each function: name, number of arguments, and the checked operation.
type Op = fn(i64, i64) -> Option<i64>;

const FUNCTIONS: [(&CStr, c_int, Op); 5] = [
    (c"consort_add", 2, |a, b| a.checked_add(b)),
    (c"consort_sub", 2, |a, b| a.checked_sub(b)),
    (c"consort_mul", 2, |a, b| a.checked_mul(b)),
    // The divisor arrives as NULLIF(divisor, 0), so it is never 0 here.
    (c"consort_div", 2, |a, b| a.checked_div(b)),
    (c"consort_neg", 1, |a, _| a.checked_neg()),
];

/// The float functions of row expressions (`MathFunc`), evaluated exactly as the
/// reference evaluator does; the bundled SQLite has no math functions.
const FLOAT_FUNCTIONS: [(&CStr, MathFunc); 5] = [
    (c"consort_sqrt", MathFunc::Sqrt),
    (c"consort_ln", MathFunc::Ln),
    (c"consort_exp", MathFunc::Exp),
    (c"consort_floor", MathFunc::Floor),
    (c"consort_ceil", MathFunc::Ceil),
];

type Callback =
    unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);

pub(crate) fn create(
    db: NonNull<ffi::sqlite3>,
    name: &CStr,
    args: c_int,
    index: usize,
    callback: Callback,
) -> Result<(), String> {
    // SAFETY: `db` is an open connection the caller holds locked; the name is a static C
    // string; the user-data pointer is an index smuggled as an address and never
    // dereferenced; no destructor is needed.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db.as_ptr(),
            name.as_ptr(),
            args,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
            index as *mut std::ffi::c_void,
            Some(callback),
            None,
            None,
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!(
            "registering {} failed (SQLite code {rc})",
            name.to_string_lossy()
        ))
    }
}

/// Registers the functions on `db`; fails with SQLite's message if it refuses.
pub(crate) fn register(db: NonNull<ffi::sqlite3>) -> Result<(), String> {
    for (index, (name, _)) in FLOAT_FUNCTIONS.iter().enumerate() {
        create(db, name, 1, index, call_float)?;
    }
    create(db, c"consort_sign", 1, 0, call_sign)?;
    for (index, (name, args, _)) in FUNCTIONS.iter().enumerate() {
        create(db, name, *args, index, call)?;
    }
    super::sqlite_values::register(db)
}

/// The one entry point of the checked integer functions; the user data says which.
unsafe extern "C" fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY (whole body): SQLite passes a valid context and `argc` valid values.
    let index = unsafe { ffi::sqlite3_user_data(ctx) } as usize;
    let Some((_, _, op)) = FUNCTIONS.get(index) else {
        unsafe { ffi::sqlite3_result_error(ctx, c"unknown consort function".as_ptr(), -1) };
        return;
    };
    let mut operands = [0i64; 2];
    for (i, slot) in operands
        .iter_mut()
        .enumerate()
        .take(argc.clamp(0, 2) as usize)
    {
        let value = unsafe { *argv.add(i) };
        match unsafe { ffi::sqlite3_value_type(value) } {
            ffi::SQLITE_NULL => {
                unsafe { ffi::sqlite3_result_null(ctx) };
                return;
            }
            ffi::SQLITE_INTEGER => *slot = unsafe { ffi::sqlite3_value_int64(value) },
            _ => {
                let msg = c"integer arithmetic on a value that is not an integer";
                unsafe { ffi::sqlite3_result_error(ctx, msg.as_ptr(), -1) };
                return;
            }
        }
    }
    match op(operands[0], operands[1]) {
        Some(r) => unsafe { ffi::sqlite3_result_int64(ctx, r) },
        None => unsafe { ffi::sqlite3_result_error(ctx, c"integer overflow".as_ptr(), -1) },
    }
}

/// `consort_sqrt` … `consort_ceil`: a float (or an integer, read as a float) in; NULL in
/// gives NULL out.
unsafe extern "C" fn call_float(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY (whole body): SQLite passes a valid context and `argc` (1) valid values.
    let index = unsafe { ffi::sqlite3_user_data(ctx) } as usize;
    let Some((_, func)) = FLOAT_FUNCTIONS.get(index).filter(|_| argc == 1) else {
        unsafe { ffi::sqlite3_result_error(ctx, c"unknown consort function".as_ptr(), -1) };
        return;
    };
    let value = unsafe { *argv };
    let x = match unsafe { ffi::sqlite3_value_type(value) } {
        ffi::SQLITE_NULL => {
            unsafe { ffi::sqlite3_result_null(ctx) };
            return;
        }
        ffi::SQLITE_FLOAT | ffi::SQLITE_INTEGER => unsafe { ffi::sqlite3_value_double(value) },
        _ => {
            let msg = c"a math function of a value that is not a number";
            unsafe { ffi::sqlite3_result_error(ctx, msg.as_ptr(), -1) };
            return;
        }
    };
    match super::scalar_eval::math(*func, x) {
        Ok(Value::Float(r)) => unsafe { ffi::sqlite3_result_double(ctx, r) },
        Ok(_) => unsafe { ffi::sqlite3_result_null(ctx) },
        Err(_) => unsafe { ffi::sqlite3_result_error(ctx, c"float overflow".as_ptr(), -1) },
    }
}

/// `consort_sign`: -1, 0 or 1 as an integer for a number (0 for -0.0).
unsafe extern "C" fn call_sign(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY (whole body): SQLite passes a valid context and `argc` (1) valid values.
    if argc != 1 {
        unsafe { ffi::sqlite3_result_error(ctx, c"consort_sign takes one value".as_ptr(), -1) };
        return;
    }
    let value = unsafe { *argv };
    let sign = match unsafe { ffi::sqlite3_value_type(value) } {
        ffi::SQLITE_NULL => {
            unsafe { ffi::sqlite3_result_null(ctx) };
            return;
        }
        ffi::SQLITE_INTEGER => unsafe { ffi::sqlite3_value_int64(value) }.signum(),
        ffi::SQLITE_FLOAT => {
            let f = unsafe { ffi::sqlite3_value_double(value) };
            if f > 0.0 {
                1
            } else if f < 0.0 {
                -1
            } else {
                0
            }
        }
        _ => {
            let msg = c"SIGN of a value that is not a number";
            unsafe { ffi::sqlite3_result_error(ctx, msg.as_ptr(), -1) };
            return;
        }
    };
    unsafe { ffi::sqlite3_result_int64(ctx, sign) };
}
