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
    /// Restart policy of the supervised actors.
    pub supervision: SupervisionSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// The operator's HTTP endpoint (status, metrics, dashboard).
    pub admin: AdminSettings,
    /// Logging choices.
    pub log: LogSettings,
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
    /// How often the certificate and key files are checked for changes and
    /// reloaded (zero: never; SIGHUP and `ReplaceCertificates` still work).
    #[serde(deserialize_with = "duration")]
    pub cert_watch_interval: Duration,
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
            cert_watch_interval: Duration::ZERO,
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
        self.validate_ops()
    }

    /// Worker threads to start: `runtime.workers`, or one per core when 0.
    pub fn worker_count(&self) -> usize {
        match self.runtime.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Default admin listener address (loopback only).
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";
/// Default time in-flight requests get to finish after SIGTERM or shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Restart policy of the supervised actors (Listener, Balancer, BackendPool,
/// control and admin actors); see [`crate::supervision`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionSettings {
    /// `permanent` (restart after panics and stops), `transient` (after
    /// panics only) or `temporary` (never).
    pub policy: crate::supervision::RestartKind,
    /// Restarts allowed within `window`; one more escalates (the binary exits 1).
    pub max_restarts: u32,
    /// The window restarts are counted over.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// Wait before the first restart; doubles per restart in the window.
    #[serde(deserialize_with = "duration")]
    pub backoff_initial: Duration,
    /// Cap on the wait before a restart.
    #[serde(deserialize_with = "duration")]
    pub backoff_max: Duration,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        let p = crate::supervision::RestartPolicy::default();
        Self {
            policy: p.kind,
            max_restarts: p.max_restarts,
            window: p.window,
            backoff_initial: p.backoff_initial,
            backoff_max: p.backoff_max,
        }
    }
}

impl SupervisionSettings {
    /// The policy these settings describe.
    pub fn policy(&self) -> crate::supervision::RestartPolicy {
        crate::supervision::RestartPolicy {
            kind: self.policy,
            max_restarts: self.max_restarts,
            window: self.window,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSettings {
    /// How long in-flight requests may take to finish after shutdown starts.
    #[serde(deserialize_with = "duration")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { drain_timeout: DEFAULT_DRAIN_TIMEOUT }
    }
}

/// The admin listener: plain HTTP for operators and their tools.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Off by default.
    pub enabled: bool,
    /// Loopback address, or any address when `token` is set.
    pub address: SocketAddr,
    /// When not empty, every endpoint but `/healthz` and `/readyz` wants
    /// `Authorization: Bearer <token>` (the dashboard also takes `?token=`).
    pub token: String,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            // Invariant: the constant is a valid socket address literal.
            address: DEFAULT_ADMIN_ADDRESS.parse().expect("valid default admin address"),
            token: String::new(),
        }
    }
}

/// Format of the access log (target `terminus::access`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// `key=value` pairs, like every other Terminus log line.
    #[default]
    Logfmt,
    /// Apache/nginx combined log format.
    Combined,
    /// One JSON object per line.
    Json,
}

/// Logging choices.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `logfmt`, `combined` or `json`.
    pub access_format: AccessLogFormat,
}

impl Settings {
    /// The operations sections' rules (supervision, shutdown, admin).
    fn validate_ops(&self) -> Result<(), SettingsError> {
        let s = &self.supervision;
        if s.window.is_zero() {
            return Err(SettingsError::new("supervision.window", "must be greater than zero"));
        }
        if s.backoff_max < s.backoff_initial {
            return Err(SettingsError::new("supervision.backoff_max", "must not be below supervision.backoff_initial"));
        }
        if self.admin.enabled && !self.admin.address.ip().is_loopback() && self.admin.token.is_empty() {
            return Err(SettingsError::new(
                "admin.address",
                format!("{} is not a loopback address; set admin.token to expose it", self.admin.address),
            ));
        }
        Ok(())
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
            ("upstream.connect_timeout", |s| s.upstream.connect_timeout = Duration::ZERO),
            ("supervision.window", |s| s.supervision.window = Duration::ZERO),
            ("supervision.backoff_max", |s| s.supervision.backoff_max = Duration::ZERO),
            ("admin.address", |s| {
                s.admin.enabled = true;
                s.admin.address = "0.0.0.0:9901".parse().unwrap()
            }),
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
