//! `reader DIR [--write NAME CONTENT]`: lists and reads a (preopened)
//! directory, and optionally writes a file into it.
//!
//! Prints one `entry NAME` line per entry of DIR, sorted by name, with a
//! trailing `/` for directories. Then, for each regular file in the same
//! order, prints `file NAME: CONTENT` (content with trailing newlines
//! trimmed); files larger than 4 KiB print `file NAME: <SIZE bytes>` instead.
//! With `--write NAME CONTENT` it then writes CONTENT to DIR/NAME and prints
//! `wrote NAME`; if that fails it prints `write failed: ERR` to stderr and
//! exits 3. A missing or unreadable DIR, or bad arguments, print an error to
//! stderr and exit 2.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::exit;

const MAX_SHOWN: u64 = 4 * 1024;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, write) = match args.as_slice() {
        [dir] => (dir, None),
        [dir, flag, name, content] if flag == "--write" => (dir, Some((name, content))),
        _ => usage(),
    };
    let dir = Path::new(dir);

    let mut entries = match fs::read_dir(dir).and_then(|it| it.collect::<io::Result<Vec<_>>>()) {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("reader: cannot read directory {}: {err}", dir.display());
            exit(2);
        }
    };
    entries.sort_by_key(|entry| entry.file_name());

    let mut out = io::stdout().lock();
    let mut files = Vec::new();
    for entry in &entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type()?;
        let slash = if file_type.is_dir() { "/" } else { "" };
        writeln!(out, "entry {name}{slash}")?;
        if file_type.is_file() {
            files.push((name, entry.path()));
        }
    }
    for (name, path) in files {
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_SHOWN {
            writeln!(out, "file {name}: <{size} bytes>")?;
            continue;
        }
        match fs::read(&path) {
            Ok(bytes) => {
                let content = String::from_utf8_lossy(&bytes);
                writeln!(
                    out,
                    "file {name}: {}",
                    content.trim_end_matches(['\n', '\r'])
                )?;
            }
            Err(err) => eprintln!("reader: cannot read {name}: {err}"),
        }
    }
    out.flush()?;

    if let Some((name, content)) = write {
        if let Err(err) = fs::write(dir.join(name), content) {
            eprintln!("write failed: {err}");
            exit(3);
        }
        writeln!(out, "wrote {name}")?;
        out.flush()?;
    }
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: reader DIR [--write NAME CONTENT]");
    exit(2);
}
