//! SPDY/3 header blocks: the name/value pairs, and the zlib stream (one per direction per
//! connection, primed with the SPDY dictionary) that carries them, each block ending in a sync
//! flush. Decompression is bounded, so a small block cannot inflate into a large allocation.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;
use crate::error::FrameError;

/// Largest header block we inflate (kubelet's clients send a few hundred bytes).
pub(crate) const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// A stream's headers: lower-case names; a value with NULs is several values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (n, v) in &self.0 {
            for s in [n.to_ascii_lowercase().as_str(), v.as_str()] {
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    fn decode(mut b: &[u8]) -> Result<Headers, FrameError> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
            if b.len() < n {
                return Err(FrameError::HeaderBlock("truncated".into()));
            }
            let (head, rest) = b.split_at(n);
            *b = rest;
            Ok(head)
        }
        fn u32_of(b: &mut &[u8]) -> Result<usize, FrameError> {
            Ok(u32::from_be_bytes(take(b, 4)?.try_into().expect("4 bytes")) as usize)
        }
        let count = u32_of(&mut b)?;
        // Each pair takes at least 8 bytes: a count larger than the block allows is a lie.
        if count > b.len() / 8 {
            return Err(FrameError::HeaderBlock(format!(
                "{count} pairs in {} bytes",
                b.len()
            )));
        }
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            let n = u32_of(&mut b)?;
            let name = take(&mut b, n)?;
            let n = u32_of(&mut b)?;
            let value = take(&mut b, n)?;
            let name = std::str::from_utf8(name)
                .map_err(|_| FrameError::HeaderBlock("header name is not UTF-8".into()))?;
            if name.is_empty() {
                return Err(FrameError::HeaderBlock("empty header name".into()));
            }
            pairs.push((
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        if !b.is_empty() {
            return Err(FrameError::HeaderBlock(format!(
                "{} bytes after the last pair",
                b.len()
            )));
        }
        Ok(Headers(pairs))
    }
}

/// Our side's header compression context.
pub(crate) struct Compressor(Compress);

impl Compressor {
    pub fn new() -> Compressor {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(dictionary())
            .expect("a fresh deflate stream accepts a dictionary");
        Compressor(z)
    }

    /// The compressed block of `headers`, sync-flushed.
    pub fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let input = headers.encode();
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            out.reserve(256);
            let before = self.0.total_in();
            self.0
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .expect("deflate of a live stream");
            consumed += (self.0.total_in() - before) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// The peer's header compression context.
pub(crate) struct Decompressor(Decompress);

impl Decompressor {
    pub fn new() -> Decompressor {
        Decompressor(Decompress::new(true))
    }

    /// Inflates one header block (at most [`MAX_HEADER_BLOCK`] bytes) and parses it.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let mut out = Vec::with_capacity(512);
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::HeaderBlock(format!(
                        "inflates past {MAX_HEADER_BLOCK} bytes"
                    )));
                }
                out.reserve((MAX_HEADER_BLOCK - out.len()).min(4096));
            }
            let (before_in, before_out) = (self.0.total_in(), out.len());
            match self
                .0
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    return Err(FrameError::HeaderBlock("the zlib stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| FrameError::HeaderBlock(format!("dictionary: {e}")))?;
                }
                Err(e) => return Err(FrameError::HeaderBlock(format!("inflate: {e}"))),
            }
            consumed += (self.0.total_in() - before_in) as usize;
            let progressed = self.0.total_in() != before_in || out.len() != before_out;
            if consumed == block.len() && out.len() < out.capacity() {
                break;
            }
            if !progressed && consumed == block.len() {
                break;
            }
        }
        Headers::decode(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn blocks_round_trip_on_one_stream() {
        let (mut c, mut d) = (Compressor::new(), Decompressor::new());
        for block in [
            h(&[("streamtype", "error")]),
            h(&[]),
            h(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
        ] {
            let z = c.compress(&block);
            assert_eq!(d.decompress(&z).unwrap(), block);
        }
    }

    #[test]
    fn the_first_block_names_the_spdy_dictionary() {
        let z = Compressor::new().compress(&h(&[("a", "b")]));
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(z[1] & 0x20, 0x20);
        let mut dict = Decompress::new(true);
        let mut out = Vec::with_capacity(64);
        let err = dict
            .decompress_vec(&z, &mut out, FlushDecompress::Sync)
            .unwrap_err();
        assert!(err.needs_dictionary().is_some());
    }

    #[test]
    fn a_lying_pair_count_or_garbage_is_refused() {
        assert!(Headers::decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Headers::decode(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(Decompressor::new().decompress(b"not zlib at all").is_err());
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let mut c = Compressor::new();
        let big = "x".repeat(MAX_HEADER_BLOCK * 2);
        let z = c.compress(&h(&[("a", &big)]));
        assert!(z.len() < 4096, "compresses well: {}", z.len());
        assert!(matches!(
            Decompressor::new().decompress(&z),
            Err(FrameError::HeaderBlock(_))
        ));
    }
}
