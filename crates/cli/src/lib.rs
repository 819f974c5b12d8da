//! The consort command-line tool: argument parsing ([`args`]), dispatch and the commands
//! that talk to a member's node through its API or read files ([`commands`], [`dataset`],
//! [`member`], [`query`]), with human or JSON output. `consort demo` and the local clusters
//! are `consort-demo`'s, `consort bench` is `consort-bench`'s; this crate only turns their
//! arguments into options.

/// Every `println!` of this crate goes through [`consort_demo::output::line`], which ends
/// the command quietly when standard output is a closed pipe (`consort queries | head -1`)
/// where the standard macro would panic. Defined before the modules so that it shadows the
/// prelude's macro in all of them.
macro_rules! println {
    () => {
        consort_demo::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        consort_demo::output::line(format_args!($($arg)*))
    };
}

pub mod args;
pub mod commands;
pub mod dataset;
pub mod member;
pub mod query;

use clap::Parser;

/// Runs the CLI and returns the process exit code: 0 on success, 1 on a user error (printed
/// as one line), 2 on a usage error.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match args::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
        }
    };
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn init_tracing(cli: &args::Cli) {
    let default = if matches!(cli.command, args::Command::Node { .. }) {
        "info,openraft=warn"
    } else {
        "warn,openraft=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONSORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
