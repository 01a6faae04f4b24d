//! 200 MB each way, streamed with the process's memory staying flat.

mod common;

use common::{Backend, TestProxy, pattern_bytes, pattern_checksum, rss_kib};

const SIZE: u64 = 200 * 1024 * 1024;
/// Growth allowed for the whole process (proxy, backend and client share it).
const MAX_GROWTH_KIB: u64 = 24 * 1024;

#[test]
fn large_download_and_upload_stream_in_constant_memory() {
    let b = Backend::start("big");
    let proxy = TestProxy::start(&[b.addr()]);
    let mut c = proxy.client();
    // Warm up buffers and pools first, then measure.
    c.send(b"GET /bytes?n=1000000 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    c.read_response(false).expect("warm-up");
    let before = rss_kib();

    c.send(format!("GET /bytes?n={SIZE} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).expect("send");
    let mut offset = 0u64;
    let mut expected = vec![0u8; 256 * 1024];
    let mut peak = before;
    let r = c
        .read_response_streaming(|chunk| {
            let want = &mut expected[..chunk.len()];
            pattern_bytes(offset, want);
            assert!(chunk == &want[..], "byte mismatch at offset {offset}");
            offset += chunk.len() as u64;
            if offset % (16 * 1024 * 1024) < chunk.len() as u64 {
                peak = peak.max(rss_kib());
            }
        })
        .expect("download");
    assert_eq!(r.status, 200);
    assert_eq!(offset, SIZE);

    c.send_streaming(
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
        SIZE,
        64 * 1024,
    )
    .expect("upload");
    let r = c.read_response(false).expect("upload response");
    assert_eq!(r.text(), format!("{SIZE} {}", pattern_checksum(SIZE)));
    peak = peak.max(rss_kib());
    assert!(peak - before < MAX_GROWTH_KIB, "RSS grew by {} KiB moving 400 MB", peak - before);
}
