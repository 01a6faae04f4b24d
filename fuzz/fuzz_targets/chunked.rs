//! `ChunkedDecoder::decode` on arbitrary bytes. The first byte picks a split
//! point: decoding the rest in one piece and in two pieces must yield the
//! same payload, the same error-or-success and the same trailers, and
//! every returned range must lie inside its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terminus_fuzz::http1::{ChunkedDecoder, Decoded, Http1Error};

/// Decodes `pieces` in order; returns the payload and whether it finished.
fn run(pieces: &[&[u8]]) -> (Vec<u8>, Result<bool, Http1Error>, Vec<u8>) {
    let mut dec = ChunkedDecoder::new(256);
    let mut payload = Vec::new();
    for piece in pieces {
        let mut at = 0;
        loop {
            let rest = &piece[at..];
            match dec.decode(rest) {
                Err(e) => return (payload, Err(e), Vec::new()),
                Ok((n, decoded)) => {
                    assert!(n <= rest.len(), "consumed past input");
                    match decoded {
                        Decoded::Data(r) => {
                            assert!(r.start < r.end && r.end <= n, "data range {r:?} outside consumed {n}");
                            payload.extend_from_slice(&rest[r]);
                        }
                        Decoded::NeedMore => assert_eq!(n, rest.len(), "NeedMore left input"),
                        Decoded::Done => return (payload, Ok(true), dec.trailers().to_vec()),
                    }
                    at += n;
                    if at >= piece.len() {
                        break;
                    }
                }
            }
        }
    }
    (payload, Ok(false), dec.trailers().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(body.len());
    let whole = run(&[body]);
    let parts = run(&[&body[..split], &body[split..]]);
    // Errors may differ in reason only if both fail.
    match (&whole.1, &parts.1) {
        (Err(_), Err(_)) => {}
        _ => assert_eq!(whole, parts, "split at {split} changes the result"),
    }
});
