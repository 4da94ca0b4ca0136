//! `cpu-burner [MILLIS]`: keeps one CPU busy, for CPU-limit and
//! interruption tests.
//!
//! Prints `burning`, then spins on integer arithmetic. Every ~1 s of wall
//! time it prints `progress N` (N from 1). With MILLIS it stops after that
//! many milliseconds of wall time, prints `done` and exits 0; without, it
//! runs forever. A non-numeric MILLIS prints an error to stderr and exits 2.

use std::hint::black_box;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// Iterations between two looks at the clock.
const BATCH: u32 = 1 << 20;

fn main() -> io::Result<()> {
    let limit = match std::env::args().nth(1).map(|raw| (raw.parse::<u64>(), raw)) {
        None => None,
        Some((Ok(millis), _)) => Some(Duration::from_millis(millis)),
        Some((Err(err), raw)) => {
            eprintln!("cpu-burner: invalid MILLIS {raw:?}: {err}");
            std::process::exit(2);
        }
    };
    say("burning")?;

    let start = Instant::now();
    let mut progress: u32 = 0;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    loop {
        for _ in 0..BATCH {
            // xorshift64: cheap, and black_box stops it being folded away.
            state = black_box(state);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        black_box(state);

        let elapsed = start.elapsed();
        if elapsed.as_secs() > u64::from(progress) {
            progress += 1;
            say(&format!("progress {progress}"))?;
        }
        if limit.is_some_and(|limit| elapsed >= limit) {
            return say("done");
        }
    }
}

fn say(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
