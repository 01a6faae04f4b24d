//! Typed, validated settings of one proxy.
//!
//! These are plain serde types: the engine never reads files or the
//! environment itself. The `terminus` binary layers `config/default.toml`,
//! the operator's file and `TERMINUS__SECTION__KEY` variables into them with
//! the `config` crate; an embedder may build them in code. Every key has a
//! default here (named constants with units) so a partial file is complete.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Default listen address of the TLS listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default TLS handshake deadline: a client that has not finished its
/// handshake by then is disconnected.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for reading a whole request head once its first byte arrived.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time an idle client keep-alive connection is held open.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default deadline for each read of a request body from the client.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on concurrent client connections per worker.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default limit on a request or response head, in bytes (431 above it).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Default limit on the number of header fields (431 above it).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default limit on the request-target length in bytes (414 above it).
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Default limit on a request body in bytes; 0 means no limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 0;
/// Default cap on concurrent connections from one client IP (all workers
/// together); 0 means no cap.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 0;
/// Default sustained request rate per client IP, per second; 0 means no limit.
pub const DEFAULT_REQUESTS_PER_SECOND: f64 = 0.0;
/// Default burst of requests a client IP may send above its rate.
pub const DEFAULT_REQUEST_BURST: u32 = 50;
/// Default upstream connect deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default deadline for the upstream's response head, and for each read of
/// its body (504 when the head is late).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on idle pooled upstream connections, per backend and worker.
pub const DEFAULT_POOL_MAX_IDLE: usize = 128;
/// Default idle timeout of pooled upstream connections. Shorter than the
/// common backend keep-alive timeouts (Apache and Node.js: 5 s, nginx: 75 s)
/// so that Terminus, not the backend, closes an idle connection.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Default time a backend stays marked down after a connect failure.
pub const DEFAULT_DOWN_BACKOFF: Duration = Duration::from_secs(5);

/// Everything one proxy needs.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Worker threads.
    pub runtime: RuntimeSettings,
    /// The TLS listener.
    pub listener: ListenerSettings,
    /// Client-side HTTP limits and timeouts.
    pub http: HttpSettings,
    /// The backends and how to reach them.
    pub upstream: UpstreamSettings,
}

/// Worker threads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Number of worker threads; 0 means one per CPU core.
    pub workers: usize,
}

/// The TLS listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerSettings {
    /// Address to listen on; port 0 picks a free port.
    pub address: SocketAddr,
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Deadline for the TLS handshake.
    #[serde(deserialize_with = "duration")]
    pub handshake_timeout: Duration,
    /// Cap on concurrent client connections per worker; connections over it
    /// are closed at once.
    pub max_connections: usize,
    /// Cap on concurrent connections from one client IP across all workers
    /// (0: none); connections over it are closed at once.
    pub max_connections_per_ip: u32,
    /// Requests per second one client IP may sustain (token bucket; 0: no
    /// limit). Requests over it get 429 with `Retry-After`.
    pub requests_per_second: f64,
    /// Requests one client IP may send at once above its rate (bucket size).
    pub request_burst: u32,
    /// CIDR blocks allowed to connect; empty allows every address not denied.
    pub allow: Vec<String>,
    /// CIDR blocks refused (checked before `allow`).
    pub deny: Vec<String>,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            // Invariant: the constant is a valid socket address literal.
            address: DEFAULT_LISTEN.parse().expect("valid default listen address"),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            request_burst: DEFAULT_REQUEST_BURST,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// Client-side HTTP limits and timeouts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest accepted request head in bytes; larger ones get 431.
    pub max_head_bytes: usize,
    /// Most header fields in a request; more get 431.
    pub max_headers: usize,
    /// Longest accepted request-target in bytes; longer ones get 414.
    pub max_uri_bytes: usize,
    /// Largest accepted request body in bytes (0: no limit). A larger
    /// Content-Length gets 413 at once; a chunked body that grows past it is
    /// cut off with 413 and the connection closed.
    pub max_body_bytes: u64,
    /// Deadline for a request head once its first byte arrived (408 after it).
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// How long an idle keep-alive client connection is held open.
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    /// Deadline for each read of a request body.
    #[serde(deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Add a `Via: 1.1 terminus` header to requests and responses.
    pub via: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            via: false,
        }
    }
}

/// How backends are chosen.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Each healthy backend in turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (nginx's algorithm).
    WeightedRoundRobin,
}

/// One backend: `"host:port"` or `{ address = "host:port", weight = 3 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// The backend's plain-HTTP address.
    pub address: SocketAddr,
    /// Relative share of requests under weighted strategies (1 to 1000).
    pub weight: u32,
}

impl<'de> Deserialize<'de> for BackendSettings {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Address(String),
            Table {
                address: String,
                #[serde(default = "one")]
                weight: u32,
            },
        }
        fn one() -> u32 {
            1
        }
        let (address, weight) = match Raw::deserialize(de)? {
            Raw::Address(a) => (a, 1),
            Raw::Table { address, weight } => (address, weight),
        };
        let address = address
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{address}` is not an IP:port socket address")))?;
        Ok(Self { address, weight })
    }
}

/// The backends and how to reach them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// How a backend is chosen for each request.
    pub strategy: StrategyKind,
    /// The backends (at least one).
    pub backends: Vec<BackendSettings>,
    /// Deadline for connecting to a backend.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Deadline for the response head after the request was sent, and for
    /// each read of the response body.
    #[serde(deserialize_with = "duration")]
    pub response_timeout: Duration,
    /// Idle keep-alive connections kept per backend and worker.
    pub pool_max_idle: usize,
    /// How long an idle pooled connection may be reused.
    #[serde(deserialize_with = "duration")]
    pub pool_idle_timeout: Duration,
    /// How long a backend that refused or reset a connection is skipped.
    #[serde(deserialize_with = "duration")]
    pub down_backoff: Duration,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::default(),
            backends: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            pool_max_idle: DEFAULT_POOL_MAX_IDLE,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            down_backoff: DEFAULT_DOWN_BACKOFF,
        }
    }
}

/// A setting that is present but wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct SettingsError {
    /// The dotted key, e.g. `upstream.backends`.
    pub key: String,
    /// Why the value is rejected.
    pub reason: String,
}

impl SettingsError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self { key: key.to_owned(), reason: reason.into() }
    }
}

impl Settings {
    /// Checks what serde cannot: ranges, required lists, cross-field rules.
    /// File contents (certificates) are checked when the proxy starts.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let up = &self.upstream;
        if up.backends.is_empty() {
            return Err(SettingsError::new("upstream.backends", "at least one backend is required"));
        }
        for (i, b) in up.backends.iter().enumerate() {
            if !(1..=1000).contains(&b.weight) {
                return Err(SettingsError::new(
                    &format!("upstream.backends[{i}].weight"),
                    format!("{} is outside 1..=1000", b.weight),
                ));
            }
            if up.backends[..i].iter().any(|o| o.address == b.address) {
                return Err(SettingsError::new(
                    &format!("upstream.backends[{i}]"),
                    format!("{} is listed twice", b.address),
                ));
            }
        }
        if self.listener.cert.as_os_str().is_empty() {
            return Err(SettingsError::new("listener.cert", "a certificate file is required"));
        }
        if self.listener.key.as_os_str().is_empty() {
            return Err(SettingsError::new("listener.key", "a private key file is required"));
        }
        if self.listener.max_connections == 0 {
            return Err(SettingsError::new("listener.max_connections", "must be at least 1"));
        }
        if self.http.max_uri_bytes < 16 {
            return Err(SettingsError::new("http.max_uri_bytes", "must be at least 16"));
        }
        let l = &self.listener;
        if !l.requests_per_second.is_finite() || l.requests_per_second < 0.0 {
            return Err(SettingsError::new("listener.requests_per_second", "must be a number >= 0"));
        }
        if l.requests_per_second > 0.0 && l.request_burst == 0 {
            return Err(SettingsError::new("listener.request_burst", "must be at least 1 when a rate is set"));
        }
        for (key, list) in [("listener.allow", &l.allow), ("listener.deny", &l.deny)] {
            for (i, net) in list.iter().enumerate() {
                if let Err(e) = net.parse::<crate::limits::IpNet>() {
                    return Err(SettingsError::new(&format!("{key}[{i}]"), e.to_string()));
                }
            }
        }
        if self.http.max_head_bytes < 1024 {
            return Err(SettingsError::new("http.max_head_bytes", "must be at least 1024"));
        }
        if !(1..=MAX_HEADERS_CEILING).contains(&self.http.max_headers) {
            return Err(SettingsError::new("http.max_headers", format!("must be within 1..={MAX_HEADERS_CEILING}")));
        }
        let timeouts = [
            ("listener.handshake_timeout", self.listener.handshake_timeout),
            ("http.header_timeout", self.http.header_timeout),
            ("http.keepalive_timeout", self.http.keepalive_timeout),
            ("http.body_timeout", self.http.body_timeout),
            ("upstream.connect_timeout", up.connect_timeout),
            ("upstream.response_timeout", up.response_timeout),
            ("upstream.pool_idle_timeout", up.pool_idle_timeout),
            ("upstream.down_backoff", up.down_backoff),
        ];
        for (key, value) in timeouts {
            if value.is_zero() {
                return Err(SettingsError::new(key, "must be greater than zero"));
            }
        }
        Ok(())
    }

    /// Worker threads to start: `runtime.workers`, or one per core when 0.
    pub fn worker_count(&self) -> usize {
        match self.runtime.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// The most header fields the parser can hold (its fixed stack array).
pub const MAX_HEADERS_CEILING: usize = crate::http1::MAX_HEADERS_CAP;

/// Deserializes `"250ms"`, `"10s"`, `"5m"`, `"1h"`, or a bare number of seconds.
fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).ok_or_else(|| {
            serde::de::Error::custom(format!("`{t}` is not a duration (use e.g. \"250ms\", \"10s\", \"5m\")"))
        }),
    }
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit.trim() {
        "" | "s" => n.checked_mul(1000)?,
        "ms" => n,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let cases: &[(&str, Option<u64>)] = &[
            ("250ms", Some(250)),
            ("10s", Some(10_000)),
            ("10", Some(10_000)),
            ("5m", Some(300_000)),
            ("1h", Some(3_600_000)),
            (" 2s ", Some(2_000)),
            ("", None),
            ("s", None),
            ("-1s", None),
            ("1.5s", None),
            ("10 parsecs", None),
            ("99999999999999999999s", None),
        ];
        for (text, want) in cases {
            let got = parse_duration(text).map(|d| d.as_millis() as u64);
            assert_eq!(got, *want, "case {text:?}");
        }
    }

    fn valid() -> Settings {
        let mut s = Settings::default();
        s.listener.cert = "c.pem".into();
        s.listener.key = "k.pem".into();
        s.upstream.backends = vec![BackendSettings { address: "127.0.0.1:1".parse().unwrap(), weight: 1 }];
        s
    }

    #[test]
    fn validation_names_the_key() {
        type Edit = fn(&mut Settings);
        let cases: &[(&str, Edit)] = &[
            ("upstream.backends", |s| s.upstream.backends.clear()),
            ("upstream.backends[0].weight", |s| s.upstream.backends[0].weight = 0),
            ("upstream.backends[1]", |s| {
                let b = s.upstream.backends[0].clone();
                s.upstream.backends.push(b)
            }),
            ("listener.cert", |s| s.listener.cert = "".into()),
            ("listener.key", |s| s.listener.key = "".into()),
            ("listener.max_connections", |s| s.listener.max_connections = 0),
            ("http.max_head_bytes", |s| s.http.max_head_bytes = 10),
            ("http.max_headers", |s| s.http.max_headers = 0),
            ("http.max_uri_bytes", |s| s.http.max_uri_bytes = 3),
            ("listener.requests_per_second", |s| s.listener.requests_per_second = -1.0),
            ("listener.requests_per_second", |s| s.listener.requests_per_second = f64::NAN),
            ("listener.request_burst", |s| {
                s.listener.requests_per_second = 5.0;
                s.listener.request_burst = 0;
            }),
            ("listener.allow[1]", |s| s.listener.allow = vec!["10.0.0.0/8".into(), "10.0.0.0/40".into()]),
            ("listener.deny[0]", |s| s.listener.deny = vec!["example.com".into()]),
            ("upstream.connect_timeout", |s| s.upstream.connect_timeout = Duration::ZERO),
        ];
        assert_eq!(valid().validate(), Ok(()));
        for (key, edit) in cases {
            let mut s = valid();
            edit(&mut s);
            let err = s.validate().expect_err(key);
            assert_eq!(err.key, *key);
        }
    }
}
