//! The client's TLS stream record by record: key updates in both
//! directions, requests cut into tiny records, pipelined requests in one
//! flight, and a clean close_notify exchange.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::{Backend, TestProxy, TlsClient, client_config, client_config_tls12, pattern_bytes};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn key_updates_from_the_client_are_answered_and_traffic_goes_on() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    let mut c = TlsClient::connect(proxy.addr(), client_config(&proxy.certs.ca_der)).expect("connect");
    for round in 0..4 {
        // The client asks for the server's update too: the response only
        // decrypts if the server's KeyUpdate went out before it, in order.
        c.get_mut().conn.refresh_traffic_keys().expect("key update");
        c.send(GET).expect("send");
        let resp = c.read_response(false).expect("response");
        assert_eq!(resp.status, 200, "round {round}");
    }
}

#[test]
fn requests_in_tiny_records_and_large_bodies_arrive_whole() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    for base in [client_config(&proxy.certs.ca_der), client_config_tls12(&proxy.certs.ca_der)] {
        let mut cfg = (*base).clone();
        cfg.max_fragment_size = Some(64);
        let mut c = TlsClient::connect(proxy.addr(), Arc::new(cfg)).expect("connect");
        let len = 100 * 1024;
        let head = format!("POST /echo-body HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n");
        c.send_streaming(head.as_bytes(), len, 7000).expect("send");
        let resp = c.read_response(false).expect("response");
        assert_eq!(resp.status, 200);
        let mut expected = vec![0; len as usize];
        pattern_bytes(0, &mut expected);
        assert_eq!(resp.body.len(), expected.len(), "the whole body, sent as {} records", len / 64);
        assert!(resp.body == expected, "in order");
    }
}

#[test]
fn pipelined_requests_in_one_flight_get_every_response() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    let mut c = TlsClient::connect(proxy.addr(), client_config(&proxy.certs.ca_der)).expect("connect");
    let n = 40;
    let flight: Vec<u8> =
        (0..n).flat_map(|i| format!("GET /?i={i} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()).collect();
    c.send(&flight).expect("send");
    for i in 0..n {
        let resp = c.read_response(false).expect("response");
        assert_eq!(resp.status, 200, "response {i}");
    }
    let targets: Vec<String> = backend.requests_log().iter().map(|r| r.target.clone()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("/?i={i}")).collect();
    assert_eq!(targets, expected, "each request once, in order");
}

#[test]
fn close_notify_is_answered_with_close_notify() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    let mut c = TlsClient::connect(proxy.addr(), client_config(&proxy.certs.ca_der)).expect("connect");
    c.send(GET).expect("send");
    assert_eq!(c.read_response(false).expect("response").status, 200);

    let stream = c.get_mut();
    stream.conn.send_close_notify();
    stream.flush().expect("flush");
    let mut rest = Vec::new();
    // rustls reports a close without close_notify as UnexpectedEof.
    stream.read_to_end(&mut rest).expect("a clean TLS close");
    assert!(rest.is_empty());
}
