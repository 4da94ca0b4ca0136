//! `logger [INTERVAL_MS=1000] [COUNT]`: a long-running guest that logs.
//!
//! Prints `tick 1`, `tick 2`, ... to stdout, one line every INTERVAL_MS
//! milliseconds (the first line immediately), flushing after each line.
//! Runs forever unless COUNT is given, in which case it exits 0 right after
//! printing `tick COUNT`. A non-numeric argument prints an error to stderr
//! and exits 2.

use std::io::{self, Write};
use std::time::Duration;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let interval_ms = parse_arg(&args, 1, "INTERVAL_MS").unwrap_or(1000);
    let count = parse_arg(&args, 2, "COUNT");

    let mut n: u64 = 0;
    while count.is_none_or(|count| n < count) {
        n += 1;
        let mut out = io::stdout().lock();
        writeln!(out, "tick {n}")?;
        out.flush()?;
        drop(out);
        if count != Some(n) {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    Ok(())
}

/// Parses `args[index]` as a number; absent → `None`, malformed → exit 2.
fn parse_arg(args: &[String], index: usize, what: &str) -> Option<u64> {
    let raw = args.get(index)?;
    match raw.parse() {
        Ok(value) => Some(value),
        Err(err) => {
            eprintln!("logger: invalid {what} {raw:?}: {err}");
            std::process::exit(2);
        }
    }
}
