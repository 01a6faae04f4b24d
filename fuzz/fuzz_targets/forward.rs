//! `write_upstream_request` over every head `RequestHead::parse` accepts.
//! The forwarded head must itself parse strictly, as exactly one head, with
//! the same method, path and body framing: whatever ambiguity a client
//! sends, the backend sees one unambiguous request.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use terminus_fuzz::http1::{Forwarding, Limits, RequestHead, write_upstream_request};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut head = RequestHead::new();
    let Ok(Some(_)) = head.parse(data, &limits) else {
        return;
    };
    let fwd = Forwarding {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        proto: "https",
        default_host: "backend:80",
        via: Some("terminus"),
        identity_header: "X-Client-Identity",
        identity: Some("O=Fuzz,CN=client"),
    };
    let mut out = Vec::new();
    write_upstream_request(&head, &fwd, &mut out);
    let mut back = RequestHead::new();
    // The forwarded head adds a few fields; allow for them.
    let roomy = Limits { max_head_bytes: out.len() + 1, max_headers: 128 };
    match back.parse(&out, &roomy) {
        Ok(Some(n)) => assert_eq!(n, out.len(), "forwarded head is not exactly one head"),
        other => panic!("forwarded head does not reparse: {other:?}\n{}", String::from_utf8_lossy(&out)),
    }
    assert_eq!(back.method(), head.method());
    assert_eq!(back.path(), head.path());
    assert_eq!(back.body(), head.body());
    // HTTP/1.0 without Host: the backend gets the default authority.
    assert_eq!(back.host(), Some(head.host().unwrap_or(fwd.default_host)));
});
