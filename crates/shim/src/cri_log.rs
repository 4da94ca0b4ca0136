//! A container's output as the shim keeps it: the CRI log file kubelet reads (`kubectl logs`,
//! `crictl logs`), the clients attached to it (`kubectl attach`), and its end.
//!
//! The log format is `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>\n`, one record per line
//! the container wrote. A line longer than [`MAX_LINE`] is split into `P` (partial) records ending
//! with an `F` (full) one, as containerd does; an unterminated last line is written as `F` when
//! the container exits. Everything written also goes, as is, to the attached clients' streams
//! (Wasm and Linux containers alike); [`CriLog::close`] ends them with the container's exit code,
//! which an attach waits for.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

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

/// One container's output: its log file (if it has one), shared by its stdout and stderr, and
/// the clients attached to it.
pub struct CriLog {
    /// `None`: output is discarded (no `log_path`), but still goes to attached clients.
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    sinks: Mutex<Sinks>,
    /// The exit code, once the output has ended.
    end: Mutex<Option<i32>>,
    ended: Condvar,
}

struct Inner {
    file: Option<File>,
    /// Bytes of an unfinished line, per stream.
    partial: [Vec<u8>; 2],
}

/// Attached clients' output streams, each with the token of its attach.
#[derive(Default)]
struct Sinks {
    last_token: u64,
    streams: Vec<(u64, LogStream, File)>,
}

impl CriLog {
    /// Creates (or appends to) the log file, making its directory if needed.
    pub fn open(path: &Path) -> Result<CriLog, Error> {
        Ok(CriLog::new(Some(path.to_owned()), Some(open_log(path)?)))
    }

    /// A container without a log file: its output only reaches attached clients.
    pub fn discard() -> CriLog {
        CriLog::new(None, None)
    }

    fn new(path: Option<PathBuf>, file: Option<File>) -> CriLog {
        CriLog {
            path,
            inner: Mutex::new(Inner { file, partial: [Vec::new(), Vec::new()] }),
            sinks: Mutex::new(Sinks::default()),
            end: Mutex::new(None),
            ended: Condvar::new(),
        }
    }

    /// Appends what the container wrote (complete lines are written at once) and passes it on to
    /// the attached clients.
    pub fn write(&self, stream: LogStream, bytes: &[u8]) {
        self.log(stream, bytes);
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        // A client that went away is dropped; a slow one slows the container, as with containerd.
        sinks.streams.retain_mut(|(_, s, f)| *s != stream || f.write_all(bytes).is_ok());
    }

    fn log(&self, stream: LogStream, mut bytes: &[u8]) {
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
            && let Some(file) = &mut inner.file
            && let Err(e) = file.write_all(&out)
        {
            let path = self.path.as_deref().unwrap_or(Path::new(""));
            tracing::warn!(path = %path.display(), error = %e, "writing container log");
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
        if !out.is_empty()
            && let Some(file) = &mut inner.file
        {
            let _ = file.write_all(&out);
        }
    }

    /// The output has ended (the container exited with `exit_code`): any unterminated line is
    /// logged, the attached clients' streams are closed and their attaches told the code.
    pub fn close(&self, exit_code: i32) {
        self.finish();
        // Under the sinks' lock, so no attach adds a stream after they are cleared.
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(exit_code);
        sinks.streams.clear();
        drop(sinks);
        self.ended.notify_all();
    }

    /// Reopens the file at the same path (after kubelet rotated it away).
    pub fn reopen(&self) -> Result<(), Error> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = open_log(path)?;
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).file = Some(file);
        Ok(())
    }

    /// Feeds the container's output from now on to an attached client: its stdout to `stdout`, its
    /// stderr to `stderr` (to `stdout` too when `merged`: a client with a terminal has one
    /// stream). Returns a token for [`detach`](Self::detach). After [`close`](Self::close) the
    /// streams are dropped at once.
    pub fn attach(&self, stdout: Option<OwnedFd>, stderr: Option<OwnedFd>, merged: bool) -> std::io::Result<u64> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.last_token += 1;
        let token = sinks.last_token;
        if self.end.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return Ok(token);
        }
        let stderr = match (stderr, &stdout) {
            (Some(fd), _) => Some(fd),
            (None, Some(out)) if merged => Some(out.try_clone()?),
            (None, _) => None,
        };
        for (stream, fd) in [(LogStream::Stdout, stdout), (LogStream::Stderr, stderr)] {
            if let Some(fd) = fd {
                sinks.streams.push((token, stream, File::from(fd)));
            }
        }
        Ok(token)
    }

    pub fn detach(&self, token: u64) {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).streams.retain(|(t, _, _)| *t != token);
    }

    /// Waits until the output has ended (the exit code) or `give_up` is set (`None`).
    pub fn wait_closed(&self, give_up: &AtomicBool) -> Option<i32> {
        let mut end = self.end.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(code) = *end {
                return Some(code);
            }
            if give_up.load(Ordering::SeqCst) {
                return None;
            }
            end = self.ended.wait_timeout(end, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
        }
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
    fn attached_clients_get_the_output_until_they_detach_or_it_ends() {
        use std::io::Read;
        let log = CriLog::discard();
        let (mut out_r, out_w) = std::io::pipe().unwrap();
        let (mut err_r, err_w) = std::io::pipe().unwrap();
        let (mut tty_r, tty_w) = std::io::pipe().unwrap();
        log.write(LogStream::Stdout, b"before\n");
        let plain = log.attach(Some(out_w.into()), Some(err_w.into()), false).unwrap();
        log.attach(Some(tty_w.into()), None, true).unwrap();
        log.write(LogStream::Stdout, b"out\n");
        log.write(LogStream::Stderr, b"err\n");
        log.detach(plain);
        log.write(LogStream::Stdout, b"after\n");
        let flag = AtomicBool::new(false);
        log.close(7);
        assert_eq!(log.wait_closed(&flag), Some(7));
        let read = |r: &mut std::io::PipeReader| {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        };
        assert_eq!(read(&mut out_r), "out\n", "from the attach on, until the detach");
        assert_eq!(read(&mut err_r), "err\n");
        assert_eq!(read(&mut tty_r), "out\nerr\nafter\n", "a terminal client gets both streams, until the end");
        let (_r, w) = std::io::pipe().unwrap();
        log.attach(Some(w.into()), None, false).unwrap();
        assert!(log.sinks.lock().unwrap().streams.is_empty(), "an attach after the end holds nothing");
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
