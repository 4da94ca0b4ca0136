//! Reading CRI container log files (`<RFC3339Nano> <stdout|stderr> <F|P> <text>` per line):
//! a tail that prints what was appended since the last call, for `wasmlet run` and
//! `wasmlet node logs -f`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One parsed line: stream, text, and whether the text ends a line (`F`) or continues (`P`).
pub fn parse_line(line: &str) -> Option<(Stream, &str, bool)> {
    let mut parts = line.splitn(4, ' ');
    let _ts = parts.next()?;
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = parts.next()? != "P";
    Some((stream, parts.next().unwrap_or(""), full))
}

/// Follows one CRI log file.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
}

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            pending: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `out` with each complete line appended since the last call (a missing file is empty).
    pub fn pump(&mut self, mut out: impl FnMut(Stream, &str, bool)) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        self.pending.extend_from_slice(&buf);
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some((stream, text, full)) = parse_line(&line) {
                out(stream, text, full);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut t = Tail::new(p.clone());
        let mut got = Vec::new();
        t.pump(|s, l, f| got.push((s, l.to_string(), f)));
        assert!(got.is_empty());
        std::fs::write(&p, "2024-01-01T00:00:00.000000000Z stdout F hello world\n2024-01-01T00:00:00Z stderr P par").unwrap();
        t.pump(|s, l, f| got.push((s, l.to_string(), f)));
        assert_eq!(got, [(Stream::Stdout, "hello world".to_string(), true)]);
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"tial\n")
            .unwrap();
        t.pump(|s, l, f| got.push((s, l.to_string(), f)));
        assert_eq!(got[1], (Stream::Stderr, "partial".to_string(), false));
    }
}
