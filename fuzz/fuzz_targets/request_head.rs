//! `RequestHead::parse` on arbitrary bytes, with default and tiny limits.
//! Invariants: no panic; a parsed head never claims more bytes than given;
//! reparsing the same bytes gives the same answer (no state leaks across
//! reuse); an accepted head fits the head limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terminus_fuzz::http1::{Limits, RequestHead};

fuzz_target!(|data: &[u8]| {
    let mut head = RequestHead::new();
    for limits in [Limits::default(), Limits { max_head_bytes: 64, max_headers: 3 }] {
        let first = head.parse(data, &limits);
        if let Ok(Some(n)) = first {
            assert!(n <= data.len() && n <= limits.max_head_bytes);
            let _ = (head.method(), head.path(), head.host(), head.body(), head.keep_alive());
        }
        let again = head.parse(data, &limits);
        assert_eq!(first, again, "reparse differs");
    }
});
