//! The optional plain-HTTP listener redirects to HTTPS on the TLS
//! listener's port, and the optional HSTS header is added to responses.

mod common;

use common::embedded::Embedded;
use common::{Backend, PlainClient, TestProxy};

fn plain(addr: std::net::SocketAddr, raw: &[u8]) -> common::Response {
    let mut c = PlainClient::connect(addr).expect("connect redirect listener");
    c.send(raw).expect("send");
    c.read_response(false).expect("response")
}

#[test]
fn plain_http_is_redirected_to_https() {
    let backend = Backend::start("b");
    let e = Embedded::start(
        &[backend.addr()],
        vec![Box::new(|s| {
            s.redirect.enabled = true;
            s.redirect.address = "127.0.0.1:0".parse().expect("addr");
        })],
    );
    let parts = e.proxy(0);
    let addr = parts.redirect_addr.expect("redirect listener started");
    let https_port = parts.addr.port();
    let r = plain(addr, b"GET /some/path?q=1 HTTP/1.1\r\nHost: Example.test:80\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("https://example.test:{https_port}/some/path?q=1").as_str()));
    assert_eq!(r.header("connection"), Some("close"));

    // Hostile or missing Host: 400, nothing forwarded.
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: evil.test/x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
    ] {
        assert_eq!(plain(addr, raw).status, 400, "{raw:?}");
    }
    assert_eq!(backend.requests(), 0, "the redirect listener never forwards");
}

#[test]
fn redirect_status_308_keeps_the_method() {
    let backend = Backend::start("b");
    let e = Embedded::start(
        &[backend.addr()],
        vec![Box::new(|s| {
            s.redirect.enabled = true;
            s.redirect.address = "127.0.0.1:0".parse().expect("addr");
            s.redirect.status = 308;
        })],
    );
    let addr = e.proxy(0).redirect_addr.expect("redirect listener started");
    let r = plain(addr, b"POST /form HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 308);
    assert!(r.header("location").is_some_and(|l| l.starts_with("https://[::1]:") && l.ends_with("/form")));
}

#[test]
fn redirect_listener_is_off_by_default() {
    let backend = Backend::start("b");
    let e = Embedded::start(&[backend.addr()], vec![Box::new(|_| {})]);
    assert_eq!(e.proxy(0).redirect_addr, None);
}

#[test]
fn hsts_is_added_to_proxied_responses() {
    let backend = Backend::start("b");
    let plain_proxy = TestProxy::start(&[backend.addr()]);
    assert_eq!(plain_proxy.get("/").header("strict-transport-security"), None, "off by default");

    let value = "max-age=31536000; includeSubDomains";
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.listener.hsts = value.to_owned());
    let r = proxy.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_named("strict-transport-security"), vec![value]);
    let r = proxy.get("/status/404");
    assert_eq!(r.headers_named("strict-transport-security"), vec![value]);
    // The proxy's own error responses carry it too.
    let mut c = proxy.client();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 400);
    assert_eq!(r.headers_named("strict-transport-security"), vec![value]);
}
