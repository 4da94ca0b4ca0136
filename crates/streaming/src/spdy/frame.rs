//! SPDY/3.1 frames: parsing from a buffer that fills as bytes arrive, and encoding. Lengths are
//! checked against our limits from the 8-byte frame header, before any payload is buffered, so an
//! oversized frame costs nothing but its header.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::zlib::{Compressor, Decompressor, Headers};
use crate::error::FrameError;

pub(crate) const FLAG_FIN: u8 = 0x01;
/// Largest data frame accepted (Go clients write what `io.Copy` reads: 32 KiB).
pub(crate) const MAX_DATA: usize = 1 << 20;
/// Largest control frame accepted (a compressed header block and a few words).
pub(crate) const MAX_CONTROL: usize = 64 * 1024;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes we send.
pub(crate) const RST_PROTOCOL_ERROR: u32 = 1;
pub(crate) const RST_REFUSED: u32 = 3;
/// GOAWAY status codes.
pub(crate) const GOAWAY_OK: u32 = 0;
pub(crate) const GOAWAY_PROTOCOL_ERROR: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame of a type this version does not define: skipped, as the spec asks.
    Unknown(u16),
}

fn word(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Takes the next whole frame out of `buf`; `Ok(None)` until enough bytes have arrived.
pub(crate) fn parse(
    buf: &mut BytesMut,
    headers: &mut Decompressor,
) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let first = word(&buf[0..4]);
    let flags = buf[4];
    let len = (word(&buf[4..8]) & 0x00ff_ffff) as usize;
    let control = first & 0x8000_0000 != 0;
    let (kind, limit) = if control {
        ("control", MAX_CONTROL)
    } else {
        ("data", MAX_DATA)
    };
    if len > limit {
        return Err(FrameError::TooLarge { kind, len, limit });
    }
    if control {
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != 3 {
            return Err(FrameError::Version(version));
        }
    }
    if buf.len() < 8 + len {
        buf.reserve(8 + len - buf.len());
        return Ok(None);
    }
    buf.advance(8);
    let mut payload = buf.split_to(len);
    if !control {
        let stream_id = first & 0x7fff_ffff;
        if stream_id == 0 {
            return Err(FrameError::ZeroStreamId("DATA"));
        }
        return Ok(Some(Frame::Data {
            stream_id,
            fin: flags & FLAG_FIN != 0,
            data: payload.freeze(),
        }));
    }
    let fin = flags & FLAG_FIN != 0;
    let stream_id_of = |p: &[u8], what: &'static str| -> Result<u32, FrameError> {
        match word(p) & 0x7fff_ffff {
            0 => Err(FrameError::ZeroStreamId(what)),
            id => Ok(id),
        }
    };
    let frame = match (first & 0xffff) as u16 {
        SYN_STREAM => {
            if len < 10 {
                return Err(FrameError::Malformed("SYN_STREAM"));
            }
            let stream_id = stream_id_of(&payload, "SYN_STREAM")?;
            let headers = headers.decompress(&payload[10..])?;
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            }
        }
        SYN_REPLY | HEADERS => {
            if len < 4 {
                return Err(FrameError::Malformed("SYN_REPLY/HEADERS"));
            }
            let stream_id = stream_id_of(&payload, "SYN_REPLY/HEADERS")?;
            let h = headers.decompress(&payload[4..])?;
            if (first & 0xffff) as u16 == SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: h,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    fin,
                    headers: h,
                }
            }
        }
        RST_STREAM => {
            if len != 8 {
                return Err(FrameError::Malformed("RST_STREAM"));
            }
            let stream_id = stream_id_of(&payload, "RST_STREAM")?;
            Frame::RstStream {
                stream_id,
                status: word(&payload[4..]),
            }
        }
        SETTINGS => {
            if len < 4 || (len - 4) != word(&payload) as usize * 8 {
                return Err(FrameError::Malformed("SETTINGS"));
            }
            Frame::Settings
        }
        PING => {
            if len != 4 {
                return Err(FrameError::Malformed("PING"));
            }
            Frame::Ping(word(&payload))
        }
        GOAWAY => {
            if len != 8 {
                return Err(FrameError::Malformed("GOAWAY"));
            }
            Frame::GoAway {
                last_good: word(&payload) & 0x7fff_ffff,
                status: word(&payload[4..]),
            }
        }
        WINDOW_UPDATE => {
            if len != 8 {
                return Err(FrameError::Malformed("WINDOW_UPDATE"));
            }
            Frame::WindowUpdate {
                stream_id: word(&payload) & 0x7fff_ffff,
                delta: word(&payload[4..]) & 0x7fff_ffff,
            }
        }
        other => {
            payload.clear();
            Frame::Unknown(other)
        }
    };
    Ok(Some(frame))
}

fn control_header(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u32(0x8000_0000 | (3 << 16) | kind as u32);
    out.put_u32(((flags as u32) << 24) | len as u32);
}

/// Appends `frame`'s bytes to `out`. Data longer than [`MAX_DATA`] is the caller's to split.
pub(crate) fn encode(frame: &Frame, headers: &mut Compressor, out: &mut BytesMut) {
    let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
    match frame {
        Frame::SynStream {
            stream_id,
            fin,
            headers: h,
        } => {
            let block = headers.compress(h);
            control_header(out, SYN_STREAM, fin_flag(*fin), 10 + block.len());
            out.put_u32(*stream_id);
            out.put_u32(0);
            out.put_u16(0);
            out.put_slice(&block);
        }
        Frame::SynReply {
            stream_id,
            fin,
            headers: h,
        }
        | Frame::Headers {
            stream_id,
            fin,
            headers: h,
        } => {
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                SYN_REPLY
            } else {
                HEADERS
            };
            let block = headers.compress(h);
            control_header(out, kind, fin_flag(*fin), 4 + block.len());
            out.put_u32(*stream_id);
            out.put_slice(&block);
        }
        Frame::RstStream { stream_id, status } => {
            control_header(out, RST_STREAM, 0, 8);
            out.put_u32(*stream_id);
            out.put_u32(*status);
        }
        Frame::Settings => {
            control_header(out, SETTINGS, 0, 4);
            out.put_u32(0);
        }
        Frame::Ping(id) => {
            control_header(out, PING, 0, 4);
            out.put_u32(*id);
        }
        Frame::GoAway { last_good, status } => {
            control_header(out, GOAWAY, 0, 8);
            out.put_u32(*last_good);
            out.put_u32(*status);
        }
        Frame::WindowUpdate { stream_id, delta } => {
            control_header(out, WINDOW_UPDATE, 0, 8);
            out.put_u32(*stream_id);
            out.put_u32(*delta);
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            out.put_u32(*stream_id & 0x7fff_ffff);
            out.put_u32(((fin_flag(*fin) as u32) << 24) | data.len() as u32);
            out.put_slice(data);
        }
        Frame::Unknown(_) => {}
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

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let (mut c, mut d) = (Compressor::new(), Decompressor::new());
        let mut buf = BytesMut::new();
        for f in frames {
            encode(f, &mut c, &mut buf);
        }
        // Fed one byte at a time, as a slow network would.
        let all = buf.split().freeze();
        let mut parsed = Vec::new();
        for b in all.iter() {
            buf.put_u8(*b);
            while let Some(f) = parse(&mut buf, &mut d).unwrap() {
                parsed.push(f);
            }
        }
        assert!(buf.is_empty());
        parsed
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                fin: false,
                headers: h(&[("streamtype", "error")]),
            },
            Frame::SynStream {
                stream_id: 3,
                fin: true,
                headers: h(&[("streamtype", "stdin")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: h(&[]),
            },
            Frame::Headers {
                stream_id: 1,
                fin: true,
                headers: h(&[("x", "y")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_REFUSED,
            },
            Frame::Settings,
            Frame::Ping(7),
            Frame::GoAway {
                last_good: 3,
                status: GOAWAY_OK,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 65536,
            },
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::new(),
            },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn a_data_frame_as_a_go_client_writes_it() {
        // stream 3, FIN, 2 bytes "hi"
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i'][..]);
        let f = parse(&mut buf, &mut Decompressor::new()).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from_static(b"hi")
            }
        );
    }

    #[test]
    fn oversized_lengths_are_refused_from_the_header_alone() {
        let mut d = Decompressor::new();
        let mut data = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            parse(&mut data, &mut d),
            Err(FrameError::TooLarge { kind: "data", .. })
        ));
        let mut ctl = BytesMut::from(&[0x80, 3, 0, 1, 0, 0x10, 0, 0][..]);
        assert!(matches!(
            parse(&mut ctl, &mut d),
            Err(FrameError::TooLarge {
                kind: "control",
                ..
            })
        ));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut d = Decompressor::new();
        let cases: Vec<(&[u8], FrameError)> = vec![
            (
                &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1],
                FrameError::Version(2),
            ),
            (
                &[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1],
                FrameError::Malformed("PING"),
            ),
            (
                &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1],
                FrameError::ZeroStreamId("RST_STREAM"),
            ),
            (
                &[0x80, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1],
                FrameError::Malformed("SYN_STREAM"),
            ),
            (&[0, 0, 0, 0, 0, 0, 0, 0], FrameError::ZeroStreamId("DATA")),
            (
                &[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9],
                FrameError::Malformed("SETTINGS"),
            ),
        ];
        for (bytes, want) in cases {
            let mut buf = BytesMut::from(bytes);
            assert_eq!(parse(&mut buf, &mut d), Err(want), "{bytes:?}");
        }
        // A SYN_STREAM whose header block is not zlib.
        let mut buf = BytesMut::from(
            &[
                0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'j', b'u', b'n', b'k',
            ][..],
        );
        assert!(matches!(
            parse(&mut buf, &mut d),
            Err(FrameError::HeaderBlock(_))
        ));
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        let mut buf =
            BytesMut::from(&[0x80, 3, 0, 0x0a, 0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        let mut d = Decompressor::new();
        assert_eq!(parse(&mut buf, &mut d).unwrap(), Some(Frame::Unknown(10)));
        assert_eq!(
            parse(&mut buf, &mut d).unwrap(),
            Some(Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::new()
            })
        );
    }
}
