//! `upcase [PREFIX]`: an interactive filter for attach. Prints `upcase ready` to stderr, then
//! for each line read from stdin prints it upper-cased (after PREFIX, if given) to stdout (to
//! stderr, without its `!`, if it starts with `!`), and at
//! the end of stdin prints `upcase: eof after N lines` to stderr and exits 0. A guest whose
//! container was created without stdin reads EOF at once.

use std::io::{self, BufRead, Write};

fn main() -> io::Result<()> {
    let prefix = std::env::args().nth(1).unwrap_or_default();
    eprintln!("upcase ready");
    let mut out = io::stdout().lock();
    let mut lines = 0;
    for line in io::stdin().lock().lines() {
        let line = line?;
        match line.strip_prefix('!') {
            Some(rest) => eprintln!("{prefix}{}", rest.to_uppercase()),
            None => {
                writeln!(out, "{prefix}{}", line.to_uppercase())?;
                out.flush()?;
            }
        }
        lines += 1;
    }
    eprintln!("upcase: eof after {lines} lines");
    Ok(())
}
