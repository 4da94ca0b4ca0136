//! `mem-grower [STEP_MIB=1] [INTERVAL_MS=100] [MAX_MIB]`: grows its memory,
//! for memory-limit tests.
//!
//! Every INTERVAL_MS it allocates another STEP_MIB MiB, writes to every page
//! of it, keeps it alive, and prints `allocated N MiB` (N = the running
//! total). With MAX_MIB it stops once the total reaches MAX_MIB (the last
//! step is shortened so the final line says exactly `allocated MAX_MIB MiB`)
//! and then sleeps forever without printing anything more. A failed
//! allocation prints `allocation failed at N MiB` to stderr and aborts, which
//! in wasm is a trap. Bad arguments print an error to stderr and exit 2.

use std::hint::black_box;
use std::io::{self, Write};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let step = parse_arg(&args, 1, "STEP_MIB").unwrap_or(1);
    let interval = Duration::from_millis(parse_arg(&args, 2, "INTERVAL_MS").unwrap_or(100));
    let max = parse_arg(&args, 3, "MAX_MIB");
    if step == 0 {
        eprintln!("mem-grower: STEP_MIB must be at least 1");
        std::process::exit(2);
    }

    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut total: u64 = 0;
    while max.is_none_or(|max| total < max) {
        let this_step = max.map_or(step, |max| step.min(max - total));
        let bytes = usize::try_from(this_step)
            .unwrap_or(usize::MAX)
            .saturating_mul(MIB);
        let mut block = Vec::new();
        if block.try_reserve_exact(bytes).is_err() {
            eprintln!("allocation failed at {total} MiB");
            std::process::abort();
        }
        // Fill with a non-zero byte so every page is really written, not
        // just reserved.
        block.resize(bytes, 0xa5);
        blocks.push(block);
        black_box(&blocks);
        total += this_step;

        let mut out = io::stdout().lock();
        writeln!(out, "allocated {total} MiB")?;
        out.flush()?;
        drop(out);

        if max.is_none_or(|max| total < max) {
            std::thread::sleep(interval);
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Parses `args[index]` as a number; absent → `None`, malformed → exit 2.
fn parse_arg(args: &[String], index: usize, what: &str) -> Option<u64> {
    let raw = args.get(index)?;
    match raw.parse() {
        Ok(value) => Some(value),
        Err(err) => {
            eprintln!("mem-grower: invalid {what} {raw:?}: {err}");
            std::process::exit(2);
        }
    }
}
