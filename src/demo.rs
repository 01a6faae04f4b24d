//! The embedded default: a self-signed certificate and two demo backends, so
//! that `terminus` with no arguments is a working proxy to try at once.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use log::debug;

/// Writes a fresh self-signed certificate for `localhost` and 127.0.0.1 and
/// its key into a private temporary directory; returns (cert, key) paths.
pub fn self_signed_cert() -> anyhow::Result<(PathBuf, PathBuf)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    let dir = std::env::temp_dir().join(format!("terminus-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
    std::fs::write(&key, certified.key_pair.serialize_pem()).with_context(|| format!("writing {}", key.display()))?;
    Ok((cert, key))
}

/// Starts a tiny HTTP/1.1 backend on 127.0.0.1 (a free port) that answers
/// every request with `hello from {name}`. Thread per connection, keep-alive.
pub fn start_backend(name: &'static str) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::Builder::new().name(format!("demo-{name}")).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = thread::Builder::new().spawn(move || {
                if let Err(e) = serve(stream, name) {
                    debug!("demo backend connection ended backend={name} error={e}");
                }
            });
        }
    })?;
    Ok(addr)
}

fn serve(stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let is_head = line.starts_with("HEAD ");
        let mut content_length = 0u64;
        let mut chunked = false;
        let mut forwarded_for = String::from("-");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.to_ascii_lowercase().contains("chunked");
                } else if k.eq_ignore_ascii_case("x-forwarded-for") {
                    forwarded_for = v.trim().to_owned();
                }
            }
        }
        if chunked {
            drain_chunked(&mut reader)?;
        } else {
            io::copy(&mut (&mut reader).take(content_length), &mut io::sink())?;
        }
        let body = format!("hello from {name}: you asked for {target} (client {forwarded_for})\n");
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: {name}\r\n\r\n",
            body.len()
        );
        if !is_head {
            response.push_str(&body);
        }
        writer.write_all(response.as_bytes())?;
    }
}

/// Reads and drops a chunked body, its trailers included.
fn drain_chunked(reader: &mut impl BufRead) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim_end().split(';').next().unwrap_or_default().trim();
        let size =
            u64::from_str_radix(size, 16).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        io::copy(&mut reader.take(size), &mut io::sink())?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunked body with binary data and a trailer is drained to its end,
    /// and what follows (the next request) is left unread.
    #[test]
    fn chunked_bodies_are_drained() {
        let mut wire = b"3\r\n\xff\x00\xfe\r\n10;ext=1\r\n".to_vec();
        wire.extend_from_slice(&[0x80; 16]);
        wire.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next HTTP/1.1\r\n");
        let mut reader = BufReader::new(&wire[..]);
        drain_chunked(&mut reader).expect("drained");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("rest");
        assert_eq!(rest, "GET /next HTTP/1.1\r\n");
        assert!(drain_chunked(&mut BufReader::new(&b"zz\r\n"[..])).is_err(), "a bad size is an error");
    }
}
