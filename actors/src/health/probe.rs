//! The active health probe: one HTTP/1.1 request on a fresh connection,
//! read until the status line. Protocol only: generic over the stream, no
//! actix, no timers (the caller bounds it with the probe timeout).

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Most bytes read looking for the status line.
const MAX_STATUS_LINE: usize = 1024;

/// Why a probe failed before a status arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Connecting, writing or reading failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The backend closed the connection before a status line.
    #[error("connection closed before a status line")]
    Closed,
    /// What came back is not an HTTP/1.x status line.
    #[error("not an HTTP/1.x status line")]
    BadResponse,
}

/// The probe request: `Connection: close`, no body.
pub fn request(method: &str, path: &str, host: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: terminus-health\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Parses `HTTP/1.x NNN ...` at the start of `buf`: `None` until the line
/// is complete.
pub fn parse_status(buf: &[u8]) -> Option<Result<u16, ProbeError>> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let parsed = line
        .strip_prefix(b"HTTP/1.")
        .filter(|rest| rest.len() >= 5 && matches!(rest[0], b'0' | b'1') && rest[1] == b' ')
        .map(|rest| &rest[2..5])
        .filter(|code| code.iter().all(u8::is_ascii_digit) && line.get(12).is_none_or(|&b| b == b' '))
        .map(|code| code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')));
    Some(parsed.filter(|c| (100..=599).contains(c)).ok_or(ProbeError::BadResponse))
}

/// Sends `request` and returns the response status.
pub async fn probe<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8]) -> Result<u16, ProbeError> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    loop {
        if let Some(result) = parse_status(&buf[..len]) {
            return result;
        }
        if len == buf.len() {
            return Err(ProbeError::BadResponse);
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(ProbeError::Closed);
        }
        len += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        let cases: &[(&str, Option<Option<u16>>)] = &[
            ("HTTP/1.1 200 OK\r\n", Some(Some(200))),
            ("HTTP/1.0 503 Service Unavailable\r\n", Some(Some(503))),
            ("HTTP/1.1 204\r\n", Some(Some(204))),
            ("HTTP/1.1 200 OK", None),
            ("HTTP/2 200\r\n", Some(None)),
            ("HTTP/1.1 2000 OK\r\n", Some(None)),
            ("HTTP/1.1 099 x\r\n", Some(None)),
            ("SSH-2.0-OpenSSH\r\n", Some(None)),
        ];
        for (text, want) in cases {
            let got = parse_status(text.as_bytes()).map(Result::ok);
            assert_eq!(got, *want, "case {text:?}");
        }
    }

    /// A stream that replays `input` and records what is written.
    struct Script {
        input: futures_lite::io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.input).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Script {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn probe_sends_the_request_and_reads_the_status() {
        let req = request("HEAD", "/healthz", "svc.local");
        let cases: &[(&str, Result<u16, &str>)] = &[
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Ok(200)),
            ("HTTP/1.1 500 Oops\r\n\r\n", Ok(500)),
            ("", Err("closed")),
            ("garbage\n", Err("bad")),
        ];
        for (reply, want) in cases {
            let mut s = Script { input: futures_lite::io::Cursor::new(reply.as_bytes().to_vec()), written: Vec::new() };
            let got = futures_lite::future::block_on(probe(&mut s, &req));
            match (got, want) {
                (Ok(code), Ok(w)) => assert_eq!(code, *w),
                (Err(ProbeError::Closed), Err("closed")) | (Err(ProbeError::BadResponse), Err("bad")) => {}
                (got, want) => panic!("reply {reply:?}: got {got:?}, want {want:?}"),
            }
            assert!(s.written.starts_with(b"HEAD /healthz HTTP/1.1\r\nHost: svc.local\r\n"));
        }
    }
}
