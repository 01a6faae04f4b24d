//! Access log line formats other than the default `key=value` one:
//! Apache/nginx `combined` and JSON lines. Pure formatting, no I/O.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use crate::http1::RequestHead;
use crate::settings::AccessLogFormat;

/// The line for `format`, or `None` for the default `logfmt` (which the
/// session writes itself).
pub fn line(
    format: AccessLogFormat,
    req: &RequestHead,
    peer: SocketAddr,
    status: u16,
    bytes: u64,
    upstream: &str,
    started: Instant,
) -> Option<String> {
    let header = |name| req.header(name).map(String::from_utf8_lossy).unwrap_or_default();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut out = String::with_capacity(256);
    match format {
        AccessLogFormat::Logfmt => return None,
        AccessLogFormat::Combined => {
            let _ = write!(
                out,
                "{} - - [{}] \"{} {} {}\" {status} {bytes} \"{}\" \"{}\"",
                peer.ip(),
                clf_time(now),
                req.method(),
                req.target(),
                if req.version() == crate::http1::Version::Http10 { "HTTP/1.0" } else { "HTTP/1.1" },
                quoted(&header("referer")),
                quoted(&header("user-agent")),
            );
        }
        AccessLogFormat::Json => {
            let _ = write!(
                out,
                "{{\"time\":{now},\"client\":\"{}\",\"method\":\"{}\",\"target\":\"{}\",\"status\":{status},\
                 \"bytes\":{bytes},\"upstream\":\"{}\",\"duration_us\":{},\"user_agent\":\"{}\"}}",
                peer.ip(),
                json_escape(req.method()),
                json_escape(req.target()),
                json_escape(upstream),
                started.elapsed().as_micros(),
                json_escape(&header("user-agent")),
            );
        }
    }
    Some(out)
}

/// `10/Oct/2000:13:55:36 +0000` for Unix seconds (UTC).
pub fn clf_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Escapes a string for a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A header value for a quoted combined-log field (`-` when absent).
fn quoted(s: &str) -> String {
    if s.is_empty() { "-".to_owned() } else { s.replace('\\', "\\\\").replace('"', "\\\"") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_dates() {
        let cases = [
            (0, "01/Jan/1970:00:00:00 +0000"),
            (971_186_136, "10/Oct/2000:13:55:36 +0000"),
            (1_709_208_000, "29/Feb/2024:12:00:00 +0000"),
        ];
        for (secs, want) in cases {
            assert_eq!(clf_time(secs), want);
        }
    }

    #[test]
    fn formats() {
        let mut req = RequestHead::new();
        let raw = b"GET /a?b=\"c\" HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nReferer: https://r/\r\n\r\n";
        let limits = crate::http1::Limits { max_head_bytes: 4096, max_headers: 10 };
        assert!(req.parse(raw, &limits).unwrap().is_some());
        let peer: SocketAddr = "10.0.0.1:5555".parse().unwrap();
        let line = |f| super::line(f, &req, peer, 200, 42, "127.0.0.1:80", Instant::now());
        assert_eq!(line(AccessLogFormat::Logfmt), None);
        let combined = line(AccessLogFormat::Combined).unwrap();
        assert!(combined.starts_with("10.0.0.1 - - ["), "{combined}");
        assert!(combined.ends_with("] \"GET /a?b=\"c\" HTTP/1.1\" 200 42 \"https://r/\" \"curl/8\""), "{combined}");
        let json = line(AccessLogFormat::Json).unwrap();
        for want in [
            "\"client\":\"10.0.0.1\"",
            "\"target\":\"/a?b=\\\"c\\\"\"",
            "\"status\":200",
            "\"bytes\":42",
            "\"user_agent\":\"curl/8\"",
        ] {
            assert!(json.contains(want), "{want} in {json}");
        }
    }

    #[test]
    fn json_escapes() {
        let cases = [("a", "a"), ("\"x\"", "\\\"x\\\""), ("a\\b", "a\\\\b"), ("\n", "\\u000a")];
        for (input, want) in cases {
            assert_eq!(json_escape(input), want);
        }
    }
}
