//! sha256 digests: computing them, parsing `sha256:<hex>` safely (the hex becomes a file name), and a
//! writer that hashes what passes through it.

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `"sha256:<hex>"` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// True for exactly 64 lowercase hex characters (a sha256 hex, safe to use as a file name).
pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

/// True for a non-empty string of lowercase hex characters.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hex of a `sha256:<64 lowercase hex>` digest, or `None` for anything else (other algorithms,
/// uppercase, path tricks such as `sha256:../../etc/passwd`).
pub(crate) fn sha256_hex_of(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|hex| is_hex64(hex))
}

/// A writer that forwards to `inner` and hashes everything written.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer, the hex digest and the byte count of everything written.
    pub(crate) fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            hex::encode(self.hasher.finalize()),
            self.written,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashes() {
        assert_eq!(sha256_hex(b""), EMPTY);
        assert_eq!(sha256_digest(b""), format!("sha256:{EMPTY}"));
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"").unwrap();
        let (out, hex, n) = w.finish();
        assert_eq!((out.len(), hex.as_str(), n), (0, EMPTY, 0));
    }

    #[test]
    fn parses_only_safe_sha256_digests() {
        assert_eq!(sha256_hex_of(&format!("sha256:{EMPTY}")), Some(EMPTY));
        assert_eq!(
            sha256_hex_of(&format!("sha256:{}", EMPTY.to_uppercase())),
            None
        );
        assert_eq!(sha256_hex_of("sha256:../../../../etc/passwd"), None);
        assert_eq!(sha256_hex_of(&format!("sha512:{EMPTY}{EMPTY}")), None);
        assert_eq!(sha256_hex_of(&format!("sha256:{}", &EMPTY[1..])), None);
        assert!(is_lower_hex("abc123") && !is_lower_hex("") && !is_lower_hex("xyz"));
    }
}
