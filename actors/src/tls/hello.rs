//! A first look at the records that carry the ClientHello, before rustls
//! parses them.
//!
//! rustls accepts a few ClientHellos that the RFCs say to refuse, and refuses
//! a few plaintext ones without sending an alert. Terminus reads the
//! ClientHello's records itself, answers these cases with a plaintext alert,
//! and hands everything else, byte for byte, to rustls:
//!
//! - a record longer than 2^14 bytes: `record_overflow` (RFC 8446 5.1);
//! - a record of another type between the ClientHello's fragments:
//!   `unexpected_message` (RFC 8446 5.1);
//! - `legacy_version` 0x0300 or lower: `protocol_version` (RFC 8446 D.5);
//! - a ClientHello longer than rustls' handshake message limit (64 KiB):
//!   `decode_error`, the alert rustls means for it but does not send.
//!
//! A connection that starts with an uppercase letter is plain HTTP (no TLS
//! record type is a letter): it gets a plain HTTP 400 that says so, the
//! way nginx answers it, instead of an alert a browser cannot show.
//!
//! Sans-I/O: [`HelloScan::feed`] looks at the bytes read so far and says
//! whether to read more, pass them on, or refuse.

/// Largest plaintext record (RFC 8446 5.1).
const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest ClientHello body rustls accepts.
const MAX_HELLO: usize = 0xffff;
/// Bytes buffered at most before the scan gives up and lets rustls decide
/// (a ClientHello of 64 KiB in small fragments).
pub const MAX_SCAN: usize = 96 * 1024;
/// Bytes of the handshake message the checks need: type, length, version.
const HEAD: usize = 6;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;

/// A TLS alert description Terminus sends itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Alert {
    /// `unexpected_message` (10).
    UnexpectedMessage = 10,
    /// `record_overflow` (22).
    RecordOverflow = 22,
    /// `handshake_failure` (40).
    HandshakeFailure = 40,
    /// `decode_error` (50).
    DecodeError = 50,
    /// `protocol_version` (70).
    ProtocolVersion = 70,
}

impl Alert {
    /// The alert as a plaintext fatal alert record.
    pub fn record(self) -> [u8; 7] {
        [21, 3, 3, 0, 2, 2, self as u8]
    }

    /// The alert that describes a rustls error that rustls did not send one for.
    pub fn for_error(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidMessage(_) => Self::DecodeError,
            rustls::Error::PeerMisbehaved(_) | rustls::Error::InappropriateMessage { .. } => Self::UnexpectedMessage,
            rustls::Error::PeerSentOversizedRecord => Self::RecordOverflow,
            _ => Self::HandshakeFailure,
        }
    }
}

/// What to do with the bytes read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The ClientHello is incomplete: read more.
    NeedMore,
    /// Hand the bytes to rustls.
    Pass,
    /// Answer with this alert and close.
    Refuse(Alert),
    /// The client speaks plain HTTP: answer in plain HTTP (a 400 that says
    /// why) and close.
    PlainHttp,
}

/// Scan state over the ClientHello's records.
#[derive(Debug, Default)]
pub struct HelloScan {
    /// Offset of the next record header.
    pos: usize,
    /// The first bytes of the handshake message.
    head: [u8; HEAD],
    head_len: usize,
    /// Handshake bytes seen so far, over all fragments.
    seen: usize,
}

impl HelloScan {
    /// A scan at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at `buf`, every byte read from the connection so far (the same
    /// prefix each time, longer). Records already scanned are not looked at
    /// again.
    pub fn feed(&mut self, buf: &[u8]) -> Verdict {
        if self.pos == 0 && buf.first().is_some_and(u8::is_ascii_uppercase) {
            return Verdict::PlainHttp;
        }
        loop {
            let Some(header) = buf.get(self.pos..self.pos + 5) else {
                return self.need_more(buf);
            };
            let (typ, len) = (header[0], usize::from(u16::from_be_bytes([header[3], header[4]])));
            if typ != CONTENT_HANDSHAKE {
                // Not TLS at all (rustls answers that), or a record slipped
                // between the ClientHello's fragments.
                return if self.pos == 0 { Verdict::Pass } else { Verdict::Refuse(Alert::UnexpectedMessage) };
            }
            if len > MAX_PLAINTEXT {
                return Verdict::Refuse(Alert::RecordOverflow);
            }
            if len == 0 {
                return Verdict::Pass;
            }
            let Some(body) = buf.get(self.pos + 5..self.pos + 5 + len) else {
                return self.need_more(buf);
            };
            self.pos += 5 + len;
            let take = (HEAD - self.head_len).min(body.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&body[..take]);
            self.head_len += take;
            self.seen += len;
            if self.head_len < 4 {
                continue;
            }
            if self.head[0] != HANDSHAKE_CLIENT_HELLO {
                return Verdict::Pass;
            }
            let hello_len =
                usize::from(self.head[1]) << 16 | usize::from(self.head[2]) << 8 | usize::from(self.head[3]);
            if hello_len > MAX_HELLO {
                return Verdict::Refuse(Alert::DecodeError);
            }
            if self.head_len == HEAD && u16::from_be_bytes([self.head[4], self.head[5]]) <= 0x0300 {
                return Verdict::Refuse(Alert::ProtocolVersion);
            }
            if self.seen >= 4 + hello_len {
                return Verdict::Pass;
            }
        }
    }

    fn need_more(&self, buf: &[u8]) -> Verdict {
        if buf.len() >= MAX_SCAN { Verdict::Pass } else { Verdict::NeedMore }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello-shaped handshake message: type, length, version, body.
    fn hello(version: u16, body_len: usize) -> Vec<u8> {
        let len = 2 + body_len;
        let mut m = vec![1, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        m.extend_from_slice(&version.to_be_bytes());
        m.extend(std::iter::repeat_n(0xab, body_len));
        m
    }

    /// `msg` split into handshake records of `size` bytes.
    fn records(msg: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in msg.chunks(size) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// Feeds `bytes` in pieces of `step`, as reads would, to the end or a decision.
    fn scan(bytes: &[u8], step: usize) -> Verdict {
        let mut s = HelloScan::new();
        let mut end = 0;
        loop {
            end = (end + step).min(bytes.len());
            match s.feed(&bytes[..end]) {
                Verdict::NeedMore if end < bytes.len() => {}
                v => return v,
            }
        }
    }

    #[test]
    fn well_formed_hellos_pass_in_any_fragmentation_and_read_size() {
        let msg = hello(0x0303, 300);
        for size in [1, 2, 5, 7, 100, 16384] {
            for step in [1, 3, 64, 100_000] {
                assert_eq!(scan(&records(&msg, size), step), Verdict::Pass, "records of {size}, reads of {step}");
            }
        }
        // Bytes after the ClientHello (the next records) are fine.
        let mut more = records(&msg, 16384);
        more.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        assert_eq!(scan(&more, 100_000), Verdict::Pass);
    }

    #[test]
    fn incomplete_hellos_need_more() {
        let bytes = records(&hello(0x0303, 300), 100);
        for end in [0, 1, 4, 5, 9, 10, 11, 105, bytes.len() - 1] {
            assert_eq!(HelloScan::new().feed(&bytes[..end]), Verdict::NeedMore, "{end} bytes");
        }
    }

    #[test]
    fn refusals_name_the_rfc_alert() {
        let cases: &[(&str, Vec<u8>, Alert)] = &[
            ("legacy_version 0x0300", records(&hello(0x0300, 100), 16384), Alert::ProtocolVersion),
            ("legacy_version 0x0000", records(&hello(0x0000, 100), 16384), Alert::ProtocolVersion),
            ("legacy_version 0x0200 in 2-byte fragments", records(&hello(0x0200, 100), 2), Alert::ProtocolVersion),
            ("record over 2^14", records(&hello(0x0303, 17000), 17000), Alert::RecordOverflow),
            ("ClientHello over 64 KiB", records(&hello(0x0303, 70_000), 16384), Alert::DecodeError),
        ];
        for (what, bytes, alert) in cases {
            assert_eq!(scan(bytes, 1000), Verdict::Refuse(*alert), "{what}");
        }
        // A zero-length application data record between two fragments.
        let msg = hello(0x0303, 100);
        let mut bytes = records(&msg[..2], 2);
        bytes.extend_from_slice(&[23, 3, 3, 0, 0]);
        bytes.extend_from_slice(&records(&msg[2..], 16384));
        assert_eq!(scan(&bytes, 1000), Verdict::Refuse(Alert::UnexpectedMessage));
        // The oversized record is refused from its header alone.
        assert_eq!(HelloScan::new().feed(&[22, 3, 1, 0xff, 0xff]), Verdict::Refuse(Alert::RecordOverflow));
    }

    #[test]
    fn plain_http_is_known_by_its_first_byte() {
        for start in [&b"GET / HTTP/1.1\r\n"[..], b"P", b"OPTIONS * HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n"] {
            assert_eq!(HelloScan::new().feed(start), Verdict::PlainHttp, "{:?}", String::from_utf8_lossy(start));
        }
        // Lowercase (not a method) and control bytes are left to rustls.
        assert_eq!(HelloScan::new().feed(b"get / HTTP/1.1\r\n"), Verdict::Pass);
        assert_eq!(HelloScan::new().feed(b"\r\nGET /"), Verdict::Pass);
    }

    #[test]
    fn what_is_not_a_client_hello_is_left_to_rustls() {
        assert_eq!(HelloScan::new().feed(&[21, 3, 3, 0, 2, 2, 40]), Verdict::Pass);
        assert_eq!(scan(&records(&[2, 0, 0, 2, 3, 3], 16384), 100), Verdict::Pass, "a ServerHello");
        assert_eq!(scan(&[22, 3, 1, 0, 0], 100), Verdict::Pass, "empty handshake record");
        // A long run of tiny records stops being scanned at the bound.
        let bytes = records(&hello(0x0303, 60_000), 1);
        assert_eq!(scan(&bytes, 4096), Verdict::Pass);
    }
}
