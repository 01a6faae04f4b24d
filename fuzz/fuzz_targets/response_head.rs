//! `ResponseHead::parse` on arbitrary bytes. Invariants: no panic, consumed
//! length within the input, deterministic reparse, and body framing is
//! answerable for GET and HEAD. A head that parses is relayed
//! (`write_downstream_response`), and what the client would get must itself
//! parse as exactly one head with the same status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terminus_fuzz::http1::{Limits, ResponseHead, Version, write_downstream_response};

fuzz_target!(|data: &[u8]| {
    let mut head = ResponseHead::new();
    for limits in [Limits::default(), Limits { max_head_bytes: 64, max_headers: 3 }] {
        let first = head.parse(data, &limits);
        if let Ok(Some(n)) = first {
            assert!(n <= data.len() && n <= limits.max_head_bytes);
            let _ = (head.status(), head.body(false), head.body(true), head.keep_alive());
            let mut out = Vec::new();
            write_downstream_response(&head, false, Version::Http11, true, Some("terminus"), &mut out);
            let mut back = ResponseHead::new();
            let roomy = Limits { max_head_bytes: out.len() + 1, max_headers: 128 };
            match back.parse(&out, &roomy) {
                Ok(Some(m)) => assert_eq!(m, out.len(), "relayed head is not exactly one head"),
                other => panic!("relayed head does not reparse: {other:?}\n{}", String::from_utf8_lossy(&out)),
            }
            assert_eq!(back.status(), head.status());
        }
        assert_eq!(first, head.parse(data, &limits), "reparse differs");
    }
});
