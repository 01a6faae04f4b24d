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
                } else if k.eq_ignore_ascii_case("x-forwarded-for") {
                    forwarded_for = v.trim().to_owned();
                }
            }
        }
        io::copy(&mut (&mut reader).take(content_length), &mut io::sink())?;
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
