//! Standard output for consort's results (the CLI's, the demo's and the benchmarks'). A
//! reader that stops early (`consort queries | head -1`) closes the pipe; the command then
//! stops quietly with the conventional status 141 (128 + SIGPIPE), as a C tool killed by
//! SIGPIPE would, instead of panicking as `std::println!` does. Work already done (a
//! dataset registered, a transaction submitted) stays done: output is only ever written
//! after it.
//!
//! Each crate that prints shadows `println!` at its root with a macro that calls [`line`].

use std::fmt;
use std::io::{ErrorKind, Write};

use serde_json::Value;

/// Exit status of a command whose output pipe was closed.
pub const CLOSED_PIPE_STATUS: i32 = 141;

/// Writes one line to standard output; on a closed pipe, ends the process quietly.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(CLOSED_PIPE_STATUS),
        // Nowhere left to report it (a full disk behind a redirect, say): say so on stderr
        // and stop, as a failed command does.
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: writing to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// Writes `value` as pretty-printed JSON, one document, through [`line`].
pub fn print_json(value: &Value) {
    line(format_args!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    ));
}
