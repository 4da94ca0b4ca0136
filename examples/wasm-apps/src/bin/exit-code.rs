//! `exit-code [N] [MESSAGE]` or `exit-code trap`: exits the way it is told.
//!
//! Prints `exiting with N` to stdout (and MESSAGE, if given, to stderr), then
//! calls `std::process::exit(N)`. Without N it exits 0. A non-numeric N
//! prints an error to stderr and exits 2.
//!
//! `exit-code trap` prints `about to trap` and then executes the wasm
//! `unreachable` instruction, so the guest ends with a trap rather than an
//! exit code.
//!
//! Note: WASI preview 1 `proc_exit` only carries codes below 126 cleanly, and
//! WASI preview 2 `wasi:cli/exit` only distinguishes success from failure, so
//! what a host reports for large or non-zero N depends on the target.

use std::io::{self, Write};

fn main() {
    let mut args = std::env::args().skip(1);
    let code_arg = args.next();
    let message = args.next();

    if code_arg.as_deref() == Some("trap") {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "about to trap");
        let _ = out.flush();
        trap();
    }

    let code: i32 = match code_arg.as_deref().map(str::parse).transpose() {
        Ok(code) => code.unwrap_or(0),
        Err(err) => {
            eprintln!(
                "exit-code: invalid exit code {:?}: {err}",
                code_arg.unwrap_or_default()
            );
            std::process::exit(2);
        }
    };

    let mut out = io::stdout().lock();
    let _ = writeln!(out, "exiting with {code}");
    let _ = out.flush();
    drop(out);
    if let Some(message) = message {
        eprintln!("{message}");
    }
    std::process::exit(code);
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    std::arch::wasm32::unreachable()
}

// Lets the guests be type-checked on the host too (e.g. by an IDE).
#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}
