//! Request keys for consistent hashing and cookie lookup. Pure.

use std::net::IpAddr;

use crate::http1::RequestHead;
use crate::settings::HashKey;

/// Seed of request-key hashes (any constant: keys only need to spread).
const KEY_SEED: u64 = 0x7465_726d_696e_7573;

/// A fast 64-bit hash (FNV-1a, then the SplitMix64 finalizer so the low
/// bits are well mixed). Stable across builds and platforms, unlike std's
/// `DefaultHasher`, so tables built on different workers agree.
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

fn ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash64(KEY_SEED, &v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash64(KEY_SEED, &v4.octets()),
            None => hash64(KEY_SEED, &v6.octets()),
        },
    }
}

/// The key hash of one request under `spec`; `None` when the request has
/// no such header or cookie (the strategy then spreads it at random).
pub fn request_key(spec: &HashKey, req: &RequestHead, client: IpAddr) -> Option<u64> {
    match spec {
        HashKey::ClientIp => Some(ip_hash(client)),
        HashKey::Path => Some(hash64(KEY_SEED, req.path().as_bytes())),
        HashKey::Header(name) => req.header(name).map(|v| hash64(KEY_SEED, v.trim_ascii())),
        HashKey::Cookie(name) => cookie(req, name).map(|v| hash64(KEY_SEED, v)),
    }
}

/// The key hash of a key given as text (the `WhyBackend` query): the same
/// hash a request carrying that value gets.
pub fn value_key(spec: &HashKey, value: &str) -> u64 {
    match (spec, value.trim().parse::<IpAddr>()) {
        (HashKey::ClientIp, Ok(ip)) => ip_hash(ip),
        _ => hash64(KEY_SEED, value.trim().as_bytes()),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(req: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    req.headers().filter(|(n, _)| n.eq_ignore_ascii_case("cookie")).find_map(|(_, v)| cookie_in(v, name))
}

/// The value of cookie `name` in one `Cookie` header value
/// (`a=1; b=2`). Names are case-sensitive, as in RFC 6265.
pub fn cookie_in<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        (n == name.as_bytes()).then(|| v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Limits;

    fn head(raw: &str) -> RequestHead {
        let mut h = RequestHead::new();
        let limits = Limits { max_head_bytes: 8192, max_headers: 32 };
        assert!(h.parse(raw.as_bytes(), &limits).expect("valid head").is_some());
        h
    }

    #[test]
    fn cookies_are_found() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("a=1; b=2", "b", Some("2")),
            ("a=1;b=2", "a", Some("1")),
            ("a=\"q\"", "a", Some("q")),
            ("ab=1", "a", None),
            ("A=1", "a", None),
            ("a", "a", None),
            ("", "a", None),
            ("x=; a=", "a", Some("")),
        ];
        for (header, name, want) in cases {
            let got = cookie_in(header.as_bytes(), name).map(|v| String::from_utf8_lossy(v).into_owned());
            assert_eq!(got.as_deref(), *want, "case {header:?} {name}");
        }
    }

    #[test]
    fn request_keys_follow_the_spec() {
        let ip: IpAddr = "10.1.2.3".parse().expect("ip");
        let req = head("GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-User: alice \r\nCookie: s=1; sid=abc\r\n\r\n");
        let bare = head("GET /p HTTP/1.1\r\nHost: h\r\n\r\n");
        let cases: &[(HashKey, &RequestHead, Option<u64>)] = &[
            (HashKey::ClientIp, &req, Some(value_key(&HashKey::ClientIp, "10.1.2.3"))),
            (HashKey::Path, &req, Some(value_key(&HashKey::Path, "/p?q=1"))),
            (HashKey::Header("x-user".into()), &req, Some(value_key(&HashKey::Path, "alice"))),
            (HashKey::Cookie("sid".into()), &req, Some(value_key(&HashKey::Path, "abc"))),
            (HashKey::Header("x-user".into()), &bare, None),
            (HashKey::Cookie("sid".into()), &bare, None),
        ];
        for (spec, req, want) in cases {
            assert_eq!(request_key(spec, req, ip), *want, "{spec:?}");
        }
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(request_key(&HashKey::ClientIp, &bare, mapped), request_key(&HashKey::ClientIp, &bare, ip));
    }

    #[test]
    fn hash_spreads_and_is_stable() {
        assert_eq!(hash64(1, b"abc"), hash64(1, b"abc"));
        assert_ne!(hash64(1, b"abc"), hash64(2, b"abc"));
        let mut buckets = [0u32; 8];
        for i in 0..8000u32 {
            buckets[(hash64(0, &i.to_le_bytes()) % 8) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (850..=1150).contains(&b)), "{buckets:?}");
    }
}
