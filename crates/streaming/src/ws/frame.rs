//! WebSocket frames as a server reads them (masked, possibly fragmented, with control frames
//! between fragments) and writes them (unmasked, whole). Every length is checked from the frame
//! header before its payload is buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::WsError;

pub(crate) const OP_TEXT: u8 = 1;
pub(crate) const OP_BINARY: u8 = 2;
pub(crate) const OP_CLOSE: u8 = 8;
pub(crate) const OP_PING: u8 = 9;
pub(crate) const OP_PONG: u8 = 10;

/// A whole message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Binary(Bytes),
    Text(Bytes),
    Ping(Bytes),
    Pong,
    /// The client's close code, if it sent one.
    Close(Option<u16>),
}

/// Reassembles messages from frames.
pub(crate) struct Parser {
    max_message: usize,
    /// The opcode and bytes of a fragmented message in progress.
    partial: Option<(u8, BytesMut)>,
}

impl Parser {
    pub fn new(max_message: usize) -> Parser {
        Parser {
            max_message,
            partial: None,
        }
    }

    /// The next whole message in `buf`; `Ok(None)` until enough bytes have arrived.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            let Some((fin, opcode, payload)) = self.frame(buf)? else {
                return Ok(None);
            };
            match opcode {
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    if payload.len() == 1 {
                        return Err(WsError::Protocol("close frame with a one-byte payload"));
                    }
                    return Ok(Some(Message::Close(code)));
                }
                OP_PING => return Ok(Some(Message::Ping(payload))),
                OP_PONG => return Ok(Some(Message::Pong)),
                0 => {
                    let Some((op, mut data)) = self.partial.take() else {
                        return Err(WsError::Protocol(
                            "continuation frame without a message to continue",
                        ));
                    };
                    data.extend_from_slice(&payload);
                    if fin {
                        return finish(op, data.freeze()).map(Some);
                    }
                    self.partial = Some((op, data));
                }
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(WsError::Protocol(
                            "new message before the fragmented one ended",
                        ));
                    }
                    if fin {
                        return finish(opcode, payload).map(Some);
                    }
                    self.partial = Some((opcode, BytesMut::from(&payload[..])));
                }
                _ => return Err(WsError::Protocol("unknown opcode")),
            }
        }
    }

    /// One frame's FIN bit, opcode and unmasked payload.
    fn frame(&mut self, buf: &mut BytesMut) -> Result<Option<(bool, u8, Bytes)>, WsError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol(
                "reserved bits set without a negotiated extension",
            ));
        }
        if b1 & 0x80 == 0 {
            return Err(WsError::Protocol("client frames must be masked"));
        }
        let (len, mut at) = match b1 & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
                10,
            ),
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if opcode >= 8 && (!fin || len > 125) {
            return Err(WsError::Protocol(
                "control frames must be whole and at most 125 bytes",
            ));
        }
        if len >> 63 != 0 {
            return Err(WsError::Protocol("64-bit length with the top bit set"));
        }
        let so_far = self.partial.as_ref().map_or(0, |(_, d)| d.len() as u64);
        if len + so_far > self.max_message as u64 {
            return Err(WsError::TooLarge {
                len: len + so_far,
                limit: self.max_message,
            });
        }
        let len = len as usize;
        if buf.len() < at + 4 + len {
            buf.reserve(at + 4 + len - buf.len());
            return Ok(None);
        }
        let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        buf.advance(at);
        let mut payload = buf.split_to(len);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        Ok(Some((fin, opcode, payload.freeze())))
    }
}

fn finish(opcode: u8, data: Bytes) -> Result<Message, WsError> {
    if opcode == OP_TEXT {
        std::str::from_utf8(&data).map_err(|_| WsError::InvalidUtf8)?;
        Ok(Message::Text(data))
    } else {
        Ok(Message::Binary(data))
    }
}

/// Appends one whole, unmasked frame (a server's) to `out`.
pub(crate) fn encode(opcode: u8, payload: &[u8], out: &mut BytesMut) {
    out.put_u8(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= u16::MAX as usize => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
}

/// A client's frame (masked), for tests here and in the session.
#[cfg(test)]
pub(crate) fn encode_masked(fin: bool, opcode: u8, payload: &[u8], out: &mut BytesMut) {
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.put_u8(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n if n < 126 => out.put_u8(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.put_u8(0x80 | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(0x80 | 127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8], max: usize) -> Result<Vec<Message>, WsError> {
        let mut p = Parser::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in bytes {
            buf.put_u8(*b);
            while let Some(m) = p.parse(&mut buf)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    #[test]
    fn masked_fragmented_messages_with_a_ping_between() {
        let mut b = BytesMut::new();
        encode_masked(false, OP_BINARY, b"\x00hel", &mut b);
        encode_masked(true, OP_PING, b"p", &mut b);
        encode_masked(true, 0, b"lo", &mut b);
        encode_masked(true, OP_TEXT, "1aGk=".as_bytes(), &mut b);
        encode_masked(true, OP_BINARY, &vec![7u8; 70_000], &mut b);
        encode_masked(true, OP_CLOSE, &1000u16.to_be_bytes(), &mut b);
        let got = parse_all(&b, 1 << 20).unwrap();
        assert_eq!(got[0], Message::Ping(Bytes::from_static(b"p")));
        assert_eq!(got[1], Message::Binary(Bytes::from_static(b"\x00hello")));
        assert_eq!(got[2], Message::Text(Bytes::from_static(b"1aGk=")));
        assert_eq!(got[3], Message::Binary(Bytes::from(vec![7u8; 70_000])));
        assert_eq!(got[4], Message::Close(Some(1000)));
    }

    #[test]
    fn hostile_frames_get_their_close_codes() {
        let frame = |fin, op, payload: &[u8]| {
            let mut b = BytesMut::new();
            encode_masked(fin, op, payload, &mut b);
            b.to_vec()
        };
        let unmasked = {
            let mut b = BytesMut::new();
            encode(OP_BINARY, b"x", &mut b);
            b.to_vec()
        };
        let huge_len = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked, 1002),
            (frame(true, 3, b"x"), 1002),
            (frame(true, 0, b"x"), 1002),
            (frame(false, OP_PING, b"x"), 1002),
            (frame(true, OP_PING, &[0; 126]), 1002),
            (frame(true, OP_TEXT, &[0xff, 0xfe]), 1007),
            (frame(true, OP_BINARY, &[0; 2048]), 1009),
            (
                [
                    frame(false, OP_BINARY, &[0; 600]),
                    frame(true, 0, &[0; 600]),
                ]
                .concat(),
                1009,
            ),
            (
                [frame(false, OP_BINARY, b"a"), frame(true, OP_BINARY, b"b")].concat(),
                1002,
            ),
            (vec![0xc2, 0x81, 0, 0, 0, 0, 0], 1002),
            (huge_len, 1002),
        ];
        for (bytes, code) in cases {
            let err = parse_all(&bytes, 1024).expect_err(&format!("{bytes:02x?}"));
            assert_eq!(err.close_code(), code, "{err} for {bytes:02x?}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_payload_arrives() {
        let mut p = Parser::new(1024);
        let mut buf = BytesMut::from(&[0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(p.parse(&mut buf), Err(WsError::TooLarge { .. })));
    }
}
