//! Reading container logs the way kubelet does, strictly: every line must be a CRI log record
//! `<RFC3339Nano UTC> <stdout|stderr> <P|F> <text>`.

use std::path::Path;

/// One record of a CRI container log: `<RFC3339Nano> <stdout|stderr> <P|F> <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The timestamp in nanoseconds since the epoch.
    pub time: i64,
    pub stream: String,
    pub tag: String,
    pub text: String,
}

/// Reads a CRI log file, asserting every complete line is in the CRI format (an unterminated
/// last line, still being written, is left out). A missing file reads as no records.
pub fn read_log(path: &Path) -> Vec<LogRecord> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("reading log {}: {e}", path.display()),
    };
    let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("log {} is not UTF-8: {e}", path.display()));
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => return Vec::new(),
    };
    complete
        .split('\n')
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (Some(ts), Some(stream), Some(tag), Some(rest)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                panic!("log {}: line {line:?} is not `<time> <stream> <tag> <text>`", path.display());
            };
            let time =
                parse_rfc3339_utc(ts).unwrap_or_else(|| panic!("log {}: bad RFC3339Nano UTC timestamp {ts:?} in {line:?}", path.display()));
            assert!(stream == "stdout" || stream == "stderr", "log {}: bad stream {stream:?} in {line:?}", path.display());
            assert!(tag == "F" || tag == "P", "log {}: bad tag {tag:?} in {line:?}", path.display());
            LogRecord { time, stream: stream.into(), tag: tag.into(), text: rest.into() }
        })
        .collect()
}

/// The texts of a log's stdout records.
pub fn stdout_lines(path: &Path) -> Vec<String> {
    read_log(path).into_iter().filter(|r| r.stream == "stdout").map(|r| r.text).collect()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (Go's RFC3339Nano in UTC) into nanoseconds.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let body = s.strip_suffix('Z')?;
    let (date, time) = body.split_once('T')?;
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else { return None };
    let (y, mo, da) = (num(y, 4)?, num(mo, 2)?, num(da, 2)?);
    let (clock, frac) = match time.split_once('.') {
        Some((c, f)) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            (c, f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32))
        }
        Some(_) => return None,
        None => (time, 0),
    };
    let t: Vec<&str> = clock.split(':').collect();
    let [h, mi, se] = t.as_slice() else { return None };
    let (h, mi, se) = (num(h, 2)?, num(mi, 2)?, num(se, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000) + frac)
}

#[test]
fn rfc3339_parser_matches_go_format() {
    assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339_utc("2023-11-14T22:13:20.123456789Z"), Some(1_700_000_000_123_456_789));
    assert_eq!(parse_rfc3339_utc("2000-02-29T00:00:00.5Z"), Some(951_782_400_500_000_000));
    assert_eq!(parse_rfc3339_utc("2023-11-14T22:13:20+00:00"), None);
    assert_eq!(parse_rfc3339_utc("2023-11-14 22:13:20Z"), None);
    assert_eq!(parse_rfc3339_utc("2023-11-14T22:13:20.Z"), None);
}
