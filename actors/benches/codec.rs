//! Cost of the HTTP/1.1 codec on the hot path: parsing a request head,
//! writing it upstream, parsing a response head, writing it downstream,
//! and decoding a chunked body. `cargo bench -p terminus-actors --bench codec`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use terminus_actors::http1::{
    ChunkedDecoder, Decoded, Forwarding, Limits, RequestHead, ResponseHead, Version, write_downstream_response,
    write_upstream_request,
};

const SMALL_REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: h2load nghttp2/1.52.0\r\nAccept: */*\r\n\r\n";

const BROWSER_REQUEST: &[u8] = b"GET /articles/2026/11/some-long-slug?utm_source=feed&page=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/\r\n\
Cookie: session=8b1f0c3e9a2d4f7c; theme=dark; consent=yes\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Connection: keep-alive\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 21:00:00 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-Backend: b1\r\n\r\nok";

fn request_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("request_head");
    for (name, raw) in [("small", SMALL_REQUEST), ("browser", BROWSER_REQUEST)] {
        let mut head = RequestHead::new();
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| black_box(head.parse(black_box(raw), &limits)).ok());
        });
        head.parse(raw, &limits).expect("valid").expect("complete");
        let fwd = Forwarding {
            client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            proto: "https",
            default_host: "127.0.0.1:8080",
            via: None,
            identity_header: "",
            identity: None,
        };
        let mut out = Vec::with_capacity(4096);
        group.bench_function(format!("write_upstream/{name}"), |b| {
            b.iter(|| {
                out.clear();
                write_upstream_request(black_box(&head), &fwd, &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn response_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut head = ResponseHead::new();
    let mut group = c.benchmark_group("response_head");
    group.bench_function("parse", |b| b.iter(|| black_box(head.parse(black_box(RESPONSE), &limits)).ok()));
    head.parse(RESPONSE, &limits).expect("valid").expect("complete");
    let mut out = Vec::with_capacity(4096);
    group.bench_function("write_downstream", |b| {
        b.iter(|| {
            out.clear();
            black_box(write_downstream_response(black_box(&head), false, Version::Http11, true, None, &mut out))
        });
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend(std::iter::repeat_n(b'x', 4096));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\nX-Checksum: 42\r\n\r\n");
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_64k", |b| {
        let mut decoder = ChunkedDecoder::new(4096);
        b.iter(|| {
            decoder.reset();
            let mut input = &body[..];
            let mut payload = 0usize;
            loop {
                match decoder.decode(input) {
                    Ok((used, Decoded::Data(range))) => {
                        payload += range.len();
                        input = &input[used..];
                    }
                    Ok((used, Decoded::NeedMore)) => input = &input[used..],
                    Ok((_, Decoded::Done)) | Err(_) => break,
                }
            }
            black_box(payload)
        });
    });
    group.finish();
}

criterion_group!(benches, request_heads, response_heads, chunked);
criterion_main!(benches);
