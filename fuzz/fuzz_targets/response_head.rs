//! `ResponseHead::parse` on arbitrary bytes. Invariants: no panic, consumed
//! length within the input, deterministic reparse, and body framing is
//! answerable for GET and HEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terminus_fuzz::http1::{Limits, ResponseHead};

fuzz_target!(|data: &[u8]| {
    let mut head = ResponseHead::new();
    for limits in [Limits::default(), Limits { max_head_bytes: 64, max_headers: 3 }] {
        let first = head.parse(data, &limits);
        if let Ok(Some(n)) = first {
            assert!(n <= data.len() && n <= limits.max_head_bytes);
            let _ = (head.status(), head.body(false), head.body(true), head.keep_alive());
        }
        assert_eq!(first, head.parse(data, &limits), "reparse differs");
    }
});
