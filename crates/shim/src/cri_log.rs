//! The CRI container log format that kubelet reads (`kubectl logs`, `crictl logs`):
//! `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>\n`, one record per line the guest wrote.
//! A line longer than [`MAX_LINE`] is split into `P` (partial) records ending with an `F` (full)
//! one, as containerd does; an unterminated last line is written as `F` when the guest exits.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::Error;

/// containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One container's log file, shared by its stdout and stderr.
pub struct CriLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    /// Bytes of an unfinished line, per stream.
    partial: [Vec<u8>; 2],
}

impl CriLog {
    /// Creates (or appends to) the log file, making its directory if needed.
    pub fn open(path: &Path) -> Result<CriLog, Error> {
        Ok(CriLog {
            path: path.to_owned(),
            inner: Mutex::new(Inner { file: open_log(path)?, partial: [Vec::new(), Vec::new()] }),
        })
    }

    /// Appends what the guest wrote; complete lines are written at once.
    pub fn write(&self, stream: LogStream, mut bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        let idx = stream as usize;
        let mut out = Vec::new();
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let partial = &mut inner.partial[idx];
            partial.extend_from_slice(&bytes[..nl]);
            emit(&mut out, stream, partial, true);
            partial.clear();
            bytes = &bytes[nl + 1..];
        }
        let partial = &mut inner.partial[idx];
        partial.extend_from_slice(bytes);
        while partial.len() >= MAX_LINE {
            let rest = partial.split_off(MAX_LINE);
            emit(&mut out, stream, partial, false);
            *partial = rest;
        }
        if !out.is_empty()
            && let Err(e) = inner.file.write_all(&out)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "writing container log");
        }
    }

    /// Writes any unterminated line as a full record (called when the guest exits).
    pub fn finish(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (idx, stream) in [LogStream::Stdout, LogStream::Stderr].into_iter().enumerate() {
            if !inner.partial[idx].is_empty() {
                let line = std::mem::take(&mut inner.partial[idx]);
                emit(&mut out, stream, &line, true);
            }
        }
        if !out.is_empty() {
            let _ = inner.file.write_all(&out);
        }
    }

    /// Reopens the file at the same path (after kubelet rotated it away).
    pub fn reopen(&self) -> Result<(), Error> {
        let file = open_log(&self.path)?;
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).file = file;
        Ok(())
    }
}

fn open_log(path: &Path) -> Result<File, Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating log directory", dir))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io("opening log file", path))
}

fn emit(out: &mut Vec<u8>, stream: LogStream, text: &[u8], full: bool) {
    out.extend_from_slice(rfc3339_nano(crate::protocol::now_nanos()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Formats nanoseconds since the epoch as Go's `time.RFC3339Nano` in UTC
/// (`2006-01-02T15:04:05.999999999Z`: trailing zeros of the fraction dropped).
pub fn rfc3339_nano(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(rfc3339_nano(951_782_400_500_000_000), "2000-02-29T00:00:00.5Z");
        assert_eq!(rfc3339_nano(4_102_444_799_000_000_010), "2099-12-31T23:59:59.00000001Z");
    }

    fn records(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let ts = it.next().unwrap();
                assert!(ts.ends_with('Z') && ts.len() >= 20, "{ts}");
                (it.next().unwrap().into(), it.next().unwrap().into(), it.next().unwrap_or("").into())
            })
            .collect()
    }

    #[test]
    fn splits_lines_streams_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/0.log");
        let log = CriLog::open(&path).unwrap();
        log.write(LogStream::Stdout, b"hel");
        log.write(LogStream::Stderr, b"oops\n");
        log.write(LogStream::Stdout, b"lo\n\nsecond\nthi");
        let long = vec![b'x'; MAX_LINE + 10];
        log.write(LogStream::Stderr, &long);
        log.write(LogStream::Stderr, b"\n");
        log.finish();
        let r = records(&path);
        let expect = [
            ("stderr", "F", "oops".to_string()),
            ("stdout", "F", "hello".to_string()),
            ("stdout", "F", String::new()),
            ("stdout", "F", "second".to_string()),
            ("stderr", "P", "x".repeat(MAX_LINE)),
            ("stderr", "F", "x".repeat(10)),
            ("stdout", "F", "thi".to_string()),
        ];
        assert_eq!(r.len(), expect.len(), "{r:?}");
        for (got, want) in r.iter().zip(expect.iter()) {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), (want.0, want.1, want.2.as_str()));
        }
    }

    #[test]
    fn reopen_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let log = CriLog::open(&path).unwrap();
        log.write(LogStream::Stdout, b"one\n");
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        log.reopen().unwrap();
        log.write(LogStream::Stdout, b"two\n");
        assert_eq!(records(&path)[0].2, "two");
        assert_eq!(records(&dir.path().join("0.log.1"))[0].2, "one");
    }
}
