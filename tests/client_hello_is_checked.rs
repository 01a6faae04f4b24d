//! The ClientHello's records are checked before rustls parses them: the
//! cases RFC 8446 says to refuse get the RFC's alert, in plaintext, before
//! the close, and other connections are not affected.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Backend, TestProxy, client_config};

/// The first flight of a real rustls client: one record holding its ClientHello.
fn client_hello(proxy: &TestProxy) -> Vec<u8> {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(client_config(&proxy.certs.ca_der), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write_tls");
    }
    assert_eq!(out[0], 22, "a handshake record");
    assert_eq!(out[5], 1, "holding a ClientHello");
    out
}

/// Splits one handshake record into records of `size` bytes.
fn fragments(record: &[u8], size: usize) -> Vec<Vec<u8>> {
    record[5..]
        .chunks(size)
        .map(|chunk| {
            let mut r = vec![22, 3, 1];
            r.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            r.extend_from_slice(chunk);
            r
        })
        .collect()
}

/// Sends `bytes` and returns everything the proxy answers until it closes.
fn answer(proxy: &TestProxy, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // The proxy may close before it has read everything: the answer still counts.
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

fn alert(description: u8) -> Vec<u8> {
    vec![21, 3, 3, 0, 2, 2, description]
}

#[test]
fn client_hellos_the_rfc_refuses_get_its_alert() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    let hello = client_hello(&proxy);

    let mut ssl3 = hello.clone();
    ssl3[9..11].copy_from_slice(&[3, 0]);

    let parts = fragments(&hello, 2);
    let mut interleaved = parts[0].clone();
    interleaved.extend_from_slice(&[23, 3, 3, 0, 0]);
    interleaved.extend(parts[1..].concat());

    let mut oversized_record = vec![22, 3, 1, 0x40, 0x01];
    oversized_record.extend(std::iter::repeat_n(0, 0x4001));

    let mut oversized_hello = vec![22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00, 3, 3];
    oversized_hello.extend(std::iter::repeat_n(0, 0x4000 - 6));

    let cases: &[(&str, &[u8], u8)] = &[
        ("legacy_version 0x0300 (RFC 8446 D.5)", &ssl3, 70),
        ("application data between fragments (RFC 8446 5.1)", &interleaved, 10),
        ("a record over 2^14 bytes (RFC 8446 5.1)", &oversized_record, 22),
        ("a ClientHello over 64 KiB", &oversized_hello, 50),
    ];
    for (what, bytes, description) in cases {
        assert_eq!(answer(&proxy, bytes), alert(*description), "{what}");
    }

    // The same ClientHello, intact or in 2-byte fragments, gets a ServerHello.
    for bytes in [hello.clone(), parts.concat()] {
        let mut s = TcpStream::connect(proxy.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(&bytes).expect("send");
        let mut head = [0u8; 6];
        s.read_exact(&mut head).expect("server hello");
        assert_eq!((head[0], head[5]), (22, 2), "a ServerHello record");
    }

    assert_eq!(proxy.get("/").status, 200, "the proxy still serves");
}
