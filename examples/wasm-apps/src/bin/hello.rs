//! `hello [ARGS...]`: prints its argv and environment, to check what the
//! runtime passes to a guest.
//!
//! Stdout gets `hello from wasm`, then one `argv[I]=VALUE` line per argv
//! entry (including argv[0]), then one `env KEY=VALUE` line per environment
//! variable, sorted by key. Stderr gets the single line `hello stderr`.
//! Exits 0.

use std::io::{self, Write};

fn main() -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "hello from wasm")?;
    for (i, arg) in std::env::args_os().enumerate() {
        writeln!(out, "argv[{i}]={}", arg.to_string_lossy())?;
    }
    let mut vars: Vec<_> = std::env::vars_os().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in vars {
        writeln!(
            out,
            "env {}={}",
            key.to_string_lossy(),
            value.to_string_lossy()
        )?;
    }
    out.flush()?;
    eprintln!("hello stderr");
    Ok(())
}
