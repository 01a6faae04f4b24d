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
/// Default time a write to the client may wait for the client to take bytes.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time the previous ticket key still decrypts after
/// `listener.ticket_key_file` changed: the ticket lifetime, so every ticket
/// issued before the change resumes until it would expire anyway.
pub const DEFAULT_TICKET_KEY_GRACE: Duration = crate::tls::tickets::LIFETIME;
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
/// Default deadline for the upstream's response head (504 when it is late).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on idle pooled upstream connections, per backend and worker.
pub const DEFAULT_POOL_MAX_IDLE: usize = 128;
/// Default idle timeout of pooled upstream connections. Shorter than the
/// common backend keep-alive timeouts (Apache and Node.js: 5 s, nginx: 75 s)
/// so that Terminus, not the backend, closes an idle connection.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Default time a backend stays marked down after a connect failure.
pub const DEFAULT_DOWN_BACKOFF: Duration = Duration::from_secs(5);

/// Default decay time of the peak-EWMA latency estimate (as in linkerd).
pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);
/// Default deadline for each read of a response body (idle between body bytes).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for `upstream.send_timeout`.
pub const DEFAULT_UPSTREAM_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest time a backend stays ejected, however often it failed.
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(60);
/// Default share of backends that passive health may eject at once.
pub const DEFAULT_MAX_EJECTED_PERCENT: u32 = 50;
/// Default consecutive refused or failed connects that eject a backend: a
/// backend that refuses connections cannot serve, so one is enough.
pub const DEFAULT_CONSECUTIVE_CONNECT_FAILURES: u32 = 1;
/// Default consecutive errors (resets, timeouts, 5xx) that eject a backend.
pub const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;
/// Default active health check interval.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Default active health check timeout: a probe that has not answered by then failed.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Default random spread added to each check interval, so that checks of
/// many proxies do not arrive in step.
pub const DEFAULT_HEALTH_JITTER: Duration = Duration::from_millis(500);
/// Default successful checks in a row that mark a down backend up.
pub const DEFAULT_HEALTH_RISE: u32 = 2;
/// Default failed checks in a row that mark an up backend down.
pub const DEFAULT_HEALTH_FALL: u32 = 3;
/// Default retries of one request on other backends (connect failures not counted).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Default retry budget: retries in flight may be this share of requests in flight.
pub const DEFAULT_RETRY_BUDGET_PERCENT: u32 = 20;
/// Default retries in flight always allowed, whatever the budget says (low traffic).
pub const DEFAULT_RETRY_BUDGET_MIN: u32 = 3;
/// Default name of the sticky-session cookie.
pub const DEFAULT_STICKY_COOKIE: &str = "terminus_sticky";

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
    /// The plain-HTTP listener that redirects to HTTPS.
    pub redirect: RedirectSettings,
}

/// The plain-HTTP listener that redirects every request to HTTPS (`[redirect]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectSettings {
    /// Off by default.
    pub enabled: bool,
    /// Plain-HTTP listen address; port 0 picks a free port.
    pub address: SocketAddr,
    /// 301 (Moved Permanently) or 308 (Permanent Redirect, keeps the method).
    pub status: u16,
}

/// Default plain-HTTP redirect listener address.
pub const DEFAULT_REDIRECT_ADDRESS: &str = "127.0.0.1:8080";

impl Default for RedirectSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            // Invariant: the constant is a valid socket address literal.
            address: DEFAULT_REDIRECT_ADDRESS.parse().expect("valid default redirect address"),
            status: 301,
        }
    }
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
    /// Further certificates chosen by the client's server name (SNI); `cert`
    /// and `key` stay the default for names none of them covers.
    pub certificates: Vec<CertificateSettings>,
    /// Protocol preset: `modern` (TLS 1.3 only) or `intermediate` (TLS 1.2
    /// with forward-secret AEAD suites, and TLS 1.3).
    pub tls_policy: TlsPolicy,
    /// Overrides the preset's versions: `"1.2"`, `"1.3"` (empty: the preset's).
    pub tls_versions: Vec<String>,
    /// Overrides the preset's cipher suites by IANA name, e.g.
    /// `"TLS13_AES_128_GCM_SHA256"` (empty: all the preset allows).
    pub cipher_suites: Vec<String>,
    /// `Strict-Transport-Security` value added to responses that carry none,
    /// e.g. `"max-age=31536000; includeSubDomains"` (empty: none).
    pub hsts: String,
    /// DER OCSP response stapled for the default certificate (empty: none);
    /// re-read with the certificate files.
    pub ocsp: PathBuf,
    /// Stateless session tickets (TLS 1.2 and 1.3) under a key rustls
    /// rotates every 6 hours; off: resumption from the in-memory session
    /// cache only.
    pub session_tickets: bool,
    /// File whose contents (at least 32 bytes) key the session tickets, so
    /// instances sharing it accept each other's tickets; implies tickets.
    pub ticket_key_file: PathBuf,
    /// How long after `ticket_key_file` changed the previous key still
    /// decrypts tickets (never encrypts); zero: old tickets fall back to a
    /// full handshake at once (e.g. after a key leak). At most the ticket
    /// lifetime (12 h).
    #[serde(deserialize_with = "duration")]
    pub ticket_key_grace: Duration,
    /// Client-certificate authentication (`[listener.client_auth]`).
    pub client_auth: ClientAuthSettings,
}

/// Client-certificate authentication of the listener.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthSettings {
    /// `off`, `optional` (a certificate, if sent, must verify) or `required`.
    pub mode: ClientAuthMode,
    /// PEM bundle of the CAs client certificates must chain to.
    pub ca: PathBuf,
    /// Request header carrying the verified client's subject to backends
    /// (empty: none). A client's own copy is always removed.
    pub identity_header: String,
    /// Certificate revocation lists (PEM, or one DER CRL per file) of the
    /// client CAs; re-read with the certificate files. A client certificate
    /// whose serial one of them lists is refused (empty: no revocation check).
    pub crl: Vec<PathBuf>,
    /// With `crl` set, also accept client certificates whose issuer has no
    /// CRL among them (unchecked). Off: such certificates are refused, so a
    /// CRL of the wrong CA cannot silently disable revocation.
    pub allow_issuers_without_crl: bool,
}

/// Whether clients must present a certificate (`listener.client_auth.mode`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// No client certificates asked for.
    #[default]
    Off,
    /// Asked for; a client without one is served, one with a bad one refused.
    Optional,
    /// Without a valid certificate the handshake fails.
    Required,
}

/// TLS protocol preset (`listener.tls_policy`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TlsPolicy {
    /// TLS 1.3 only.
    Modern,
    /// TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305) and TLS 1.3.
    #[default]
    Intermediate,
}

/// One SNI certificate of the listener (`listener.certificates`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CertificateSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key.
    pub key: PathBuf,
    /// Server names it serves (`*.example.com` matches one label); empty
    /// means the DNS names of the certificate.
    pub names: Vec<String>,
    /// DER OCSP response stapled to handshakes (empty: none).
    pub ocsp: PathBuf,
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
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            request_burst: DEFAULT_REQUEST_BURST,
            allow: Vec::new(),
            deny: Vec::new(),
            certificates: Vec::new(),
            tls_policy: TlsPolicy::default(),
            tls_versions: Vec::new(),
            cipher_suites: Vec::new(),
            hsts: String::new(),
            ocsp: PathBuf::new(),
            session_tickets: false,
            ticket_key_file: PathBuf::new(),
            ticket_key_grace: DEFAULT_TICKET_KEY_GRACE,
            client_auth: ClientAuthSettings::default(),
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
    /// How long a write to the client may wait while the client takes no
    /// bytes; then the connection is closed (a client that stops reading
    /// would otherwise hold its session and upstream connection).
    #[serde(deserialize_with = "duration")]
    pub send_timeout: Duration,
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
            send_timeout: DEFAULT_SEND_TIMEOUT,
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
    /// Fewest requests in flight relative to weight.
    LeastConnections,
    /// Power of two random choices over in-flight requests and peak-EWMA latency.
    #[serde(rename = "p2c")]
    PowerOfTwoChoices,
    /// Consistent hashing (Maglev) over `upstream.hash_key`.
    Maglev,
    /// Sticky sessions: a signed cookie names the backend; `upstream.sticky.fallback` picks the first.
    Sticky,
}

impl StrategyKind {
    /// Every strategy, in declaration order (tests and benchmarks cover each).
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::RoundRobin,
        StrategyKind::WeightedRoundRobin,
        StrategyKind::LeastConnections,
        StrategyKind::PowerOfTwoChoices,
        StrategyKind::Maglev,
        StrategyKind::Sticky,
    ];
}

/// Where a request's consistent-hashing key comes from: `"client_ip"`,
/// `"path"`, `"header:NAME"` or `"cookie:NAME"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// The request path (origin form, with the query).
    Path,
    /// The value of a request header.
    Header(String),
    /// The value of a cookie.
    Cookie(String),
}

impl std::str::FromStr for HashKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not client_ip, path, header:NAME or cookie:NAME");
        match s.split_once(':') {
            None if s == "client_ip" => Ok(Self::ClientIp),
            None if s == "path" => Ok(Self::Path),
            Some(("header", name)) if is_token(name) => Ok(Self::Header(name.to_owned())),
            Some(("cookie", name)) if is_token(name) => Ok(Self::Cookie(name.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        String::deserialize(de)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is a non-empty HTTP token (header or cookie name).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
    /// Deadline for the response head (first byte) after the request was
    /// sent; body reads use `idle_timeout`.
    #[serde(deserialize_with = "duration")]
    pub response_timeout: Duration,
    /// Idle keep-alive connections kept per backend and worker.
    pub pool_max_idle: usize,
    /// How long an idle pooled connection may be reused.
    #[serde(deserialize_with = "duration")]
    pub pool_idle_timeout: Duration,
    /// How long a backend that refused or reset a connection is skipped:
    /// the base ejection time of passive health, multiplied by the number
    /// of recent ejections (capped by `outlier.max_ejection`).
    #[serde(deserialize_with = "duration")]
    pub down_backoff: Duration,
    /// The consistent-hashing key of the `maglev` strategy.
    pub hash_key: HashKey,
    /// A backend that comes back ramps its weight from 10% to 100% over
    /// this window (weighted strategies); zero turns slow start off.
    #[serde(deserialize_with = "duration")]
    pub slow_start: Duration,
    /// When fewer than this share (0.0 to 1.0) of backends are healthy,
    /// balance across all of them (panic mode); 0 turns it off.
    pub panic_threshold: f64,
    /// Decay time of the peak-EWMA latency estimate used by `p2c`.
    #[serde(deserialize_with = "duration")]
    pub ewma_decay: Duration,
    /// Deadline for each read of a response body once its head arrived.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// How long a write of a request body may wait while the backend takes
    /// no bytes (neither reading nor answering): 504 after it.
    #[serde(deserialize_with = "duration")]
    pub send_timeout: Duration,
    /// Deadline for a whole exchange, retries included; zero means none.
    #[serde(deserialize_with = "duration")]
    pub total_timeout: Duration,
    /// Circuit breaker: requests in flight per backend; zero means no limit.
    pub max_connections: u32,
    /// Circuit breaker: connects in progress per backend; zero means no limit.
    pub max_pending: u32,
    /// Active health checks.
    pub health: HealthSettings,
    /// Passive health: outlier detection and ejection.
    pub outlier: OutlierSettings,
    /// Retries on other backends.
    pub retry: RetrySettings,
    /// The `sticky` strategy's cookie.
    pub sticky: StickySettings,
}

/// Active health checks: one HTTP probe per backend per interval.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Whether backends are probed at all.
    pub enabled: bool,
    /// Request path of the probe.
    pub path: String,
    /// Request method of the probe.
    pub method: String,
    /// Host header of the probe; empty means the backend's address.
    pub host: String,
    /// Statuses that count as healthy: `"200-399"` or a single `"200"`.
    pub expect_status: String,
    /// Time between probes of one backend.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// A probe that has not answered by then failed.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Random spread added to each interval (0 to this).
    #[serde(deserialize_with = "duration")]
    pub jitter: Duration,
    /// Successful probes in a row that mark a down backend up.
    pub rise: u32,
    /// Failed probes in a row that mark an up backend down.
    pub fall: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "/".to_owned(),
            method: "GET".to_owned(),
            host: String::new(),
            expect_status: "200-399".to_owned(),
            interval: DEFAULT_HEALTH_INTERVAL,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            jitter: DEFAULT_HEALTH_JITTER,
            rise: DEFAULT_HEALTH_RISE,
            fall: DEFAULT_HEALTH_FALL,
        }
    }
}

impl HealthSettings {
    /// The healthy status range, parsed from `expect_status`.
    pub fn status_range(&self) -> Option<std::ops::RangeInclusive<u16>> {
        let (lo, hi) = match self.expect_status.split_once('-') {
            Some((lo, hi)) => (lo.trim().parse().ok()?, hi.trim().parse().ok()?),
            None => {
                let one = self.expect_status.trim().parse().ok()?;
                (one, one)
            }
        };
        ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some(lo..=hi)
    }
}

/// Passive health: which failures count, when a backend is ejected, for how long.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierSettings {
    /// Consecutive failed connects that eject a backend (0: never).
    pub consecutive_connect_failures: u32,
    /// Consecutive errors (the kinds counted below) that eject a backend (0: never).
    pub consecutive_errors: u32,
    /// Count a connection reset before any response byte as an error.
    pub count_resets: bool,
    /// Count a response head later than `upstream.response_timeout` as an error.
    pub count_timeouts: bool,
    /// Count a 5xx response as an error.
    pub count_5xx: bool,
    /// Longest ejection, however often the backend was ejected.
    #[serde(deserialize_with = "duration")]
    pub max_ejection: Duration,
    /// At most this share of backends (percent) is ejected for errors at
    /// once; backends refusing connections are always ejected.
    pub max_ejected_percent: u32,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self {
            consecutive_connect_failures: DEFAULT_CONSECUTIVE_CONNECT_FAILURES,
            consecutive_errors: DEFAULT_CONSECUTIVE_ERRORS,
            count_resets: true,
            count_timeouts: true,
            count_5xx: true,
            max_ejection: DEFAULT_MAX_EJECTION,
            max_ejected_percent: DEFAULT_MAX_EJECTED_PERCENT,
        }
    }
}

/// Retries on other backends.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retries of one request after it reached a backend (a failed connect
    /// is always retried on another backend and is not counted).
    pub max_retries: u32,
    /// Also retry requests whose method is not idempotent.
    pub non_idempotent: bool,
    /// Response statuses retried on another backend (idempotent requests only).
    pub on_status: Vec<u16>,
    /// Retries in flight may be at most this percentage of requests in flight.
    pub budget_percent: u32,
    /// Retries in flight always allowed regardless of the budget.
    pub budget_min: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            non_idempotent: false,
            on_status: vec![500, 502, 503, 504],
            budget_percent: DEFAULT_RETRY_BUDGET_PERCENT,
            budget_min: DEFAULT_RETRY_BUDGET_MIN,
        }
    }
}

/// The `sticky` strategy's cookie.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StickySettings {
    /// Cookie name.
    pub cookie: String,
    /// HMAC key of the cookie; empty means a random key per start (cookies
    /// then do not survive a restart).
    pub secret: String,
    /// Strategy for requests without a valid cookie (not `sticky`).
    pub fallback: StrategyKind,
}

impl Default for StickySettings {
    fn default() -> Self {
        Self {
            cookie: DEFAULT_STICKY_COOKIE.to_owned(),
            secret: String::new(),
            fallback: StrategyKind::LeastConnections,
        }
    }
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
            hash_key: HashKey::default(),
            slow_start: Duration::ZERO,
            panic_threshold: 0.0,
            ewma_decay: DEFAULT_EWMA_DECAY,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            send_timeout: DEFAULT_UPSTREAM_SEND_TIMEOUT,
            total_timeout: Duration::ZERO,
            max_connections: 0,
            max_pending: 0,
            health: HealthSettings::default(),
            outlier: OutlierSettings::default(),
            retry: RetrySettings::default(),
            sticky: StickySettings::default(),
        }
    }
}

impl UpstreamSettings {
    /// Ranges and cross-field rules of the balancing and health settings.
    fn validate_policies(&self) -> Result<(), SettingsError> {
        if !(0.0..=1.0).contains(&self.panic_threshold) {
            return Err(SettingsError::new("upstream.panic_threshold", "must be within 0.0..=1.0"));
        }
        let h = &self.health;
        if h.rise == 0 {
            return Err(SettingsError::new("upstream.health.rise", "must be at least 1"));
        }
        if h.fall == 0 {
            return Err(SettingsError::new("upstream.health.fall", "must be at least 1"));
        }
        if !h.path.starts_with('/') || h.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(SettingsError::new("upstream.health.path", "must start with / and hold no space or control"));
        }
        if !is_token(&h.method) {
            return Err(SettingsError::new("upstream.health.method", "must be an HTTP method token"));
        }
        if h.host.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(SettingsError::new("upstream.health.host", "must hold no space or control"));
        }
        if h.status_range().is_none() {
            return Err(SettingsError::new(
                "upstream.health.expect_status",
                "must be `NNN` or `NNN-NNN` within 100..=599",
            ));
        }
        if self.outlier.max_ejected_percent > 100 {
            return Err(SettingsError::new("upstream.outlier.max_ejected_percent", "must be within 0..=100"));
        }
        if self.outlier.max_ejection < self.down_backoff {
            return Err(SettingsError::new(
                "upstream.outlier.max_ejection",
                "must not be shorter than upstream.down_backoff",
            ));
        }
        if self.retry.budget_percent > 100 {
            return Err(SettingsError::new("upstream.retry.budget_percent", "must be within 0..=100"));
        }
        if let Some(bad) = self.retry.on_status.iter().find(|s| !(500..=599).contains(*s)) {
            return Err(SettingsError::new("upstream.retry.on_status", format!("{bad} is not a 5xx status")));
        }
        if !is_token(&self.sticky.cookie) {
            return Err(SettingsError::new("upstream.sticky.cookie", "must be a cookie name token"));
        }
        if self.sticky.fallback == StrategyKind::Sticky {
            return Err(SettingsError::new("upstream.sticky.fallback", "must be a strategy other than sticky"));
        }
        Ok(())
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
        let (no_cert, no_key) = (self.listener.cert.as_os_str().is_empty(), self.listener.key.as_os_str().is_empty());
        if no_cert && (self.listener.certificates.is_empty() || !no_key) {
            return Err(SettingsError::new("listener.cert", "a certificate file is required"));
        }
        if no_key && !no_cert {
            return Err(SettingsError::new("listener.key", "a private key file is required"));
        }
        if self.listener.hsts.bytes().any(|b| !(b == b' ' || b == b'\t' || b.is_ascii_graphic())) {
            return Err(SettingsError::new("listener.hsts", "must be a header value (visible ASCII, spaces, tabs)"));
        }
        let auth = &self.listener.client_auth;
        if auth.mode != ClientAuthMode::Off && auth.ca.as_os_str().is_empty() {
            return Err(SettingsError::new("listener.client_auth.ca", "a CA bundle is required when mode is not off"));
        }
        if !auth.identity_header.is_empty() && !auth.identity_header.bytes().all(crate::http1::is_tchar) {
            return Err(SettingsError::new("listener.client_auth.identity_header", "must be a header name"));
        }
        if self.listener.ticket_key_grace > crate::tls::tickets::LIFETIME {
            return Err(SettingsError::new(
                "listener.ticket_key_grace",
                "must not exceed the ticket lifetime (12h): older tickets are expired anyway",
            ));
        }
        if let Some(i) = auth.crl.iter().position(|p| p.as_os_str().is_empty()) {
            return Err(SettingsError::new(&format!("listener.client_auth.crl[{i}]"), "a file is required"));
        }
        if self.redirect.enabled && ![301, 308].contains(&self.redirect.status) {
            return Err(SettingsError::new("redirect.status", format!("{} is not 301 or 308", self.redirect.status)));
        }
        if let Err(e) = crate::tls::policy::resolve(&self.listener) {
            return Err(SettingsError::new(&e.key, e.reason));
        }
        for (i, c) in self.listener.certificates.iter().enumerate() {
            if c.cert.as_os_str().is_empty() {
                return Err(SettingsError::new(&format!("listener.certificates[{i}].cert"), "a file is required"));
            }
            if c.key.as_os_str().is_empty() {
                return Err(SettingsError::new(&format!("listener.certificates[{i}].key"), "a file is required"));
            }
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
            ("http.send_timeout", self.http.send_timeout),
            ("upstream.connect_timeout", up.connect_timeout),
            ("upstream.response_timeout", up.response_timeout),
            ("upstream.pool_idle_timeout", up.pool_idle_timeout),
            ("upstream.down_backoff", up.down_backoff),
            ("upstream.ewma_decay", up.ewma_decay),
            ("upstream.idle_timeout", up.idle_timeout),
            ("upstream.send_timeout", up.send_timeout),
            ("upstream.outlier.max_ejection", up.outlier.max_ejection),
            ("upstream.health.interval", up.health.interval),
            ("upstream.health.timeout", up.health.timeout),
        ];
        for (key, value) in timeouts {
            if value.is_zero() {
                return Err(SettingsError::new(key, "must be greater than zero"));
            }
        }
        up.validate_policies()?;
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

    #[test]
    fn hash_keys_parse() {
        let cases: &[(&str, Option<HashKey>)] = &[
            ("client_ip", Some(HashKey::ClientIp)),
            ("path", Some(HashKey::Path)),
            ("header:X-User", Some(HashKey::Header("X-User".into()))),
            ("cookie:sid", Some(HashKey::Cookie("sid".into()))),
            ("header:", None),
            ("cookie:a b", None),
            ("query:x", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<HashKey>().ok(), *want, "case {text:?}");
        }
    }

    #[test]
    fn status_ranges_parse() {
        let cases: &[(&str, Option<(u16, u16)>)] =
            &[("200-399", Some((200, 399))), ("204", Some((204, 204))), ("99", None), ("300-200", None), ("x", None)];
        for (text, want) in cases {
            let h = HealthSettings { expect_status: (*text).into(), ..Default::default() };
            assert_eq!(h.status_range().map(|r| (*r.start(), *r.end())), *want, "case {text:?}");
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
    fn sni_certificates_alone_need_no_default_pair() {
        let mut s = valid();
        (s.listener.cert, s.listener.key) = Default::default();
        s.listener.certificates = vec![CertificateSettings { cert: "a".into(), key: "b".into(), ..Default::default() }];
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_key() {
        type Edit = fn(&mut Settings);
        let cases: &[(&str, Edit)] = &[
            ("upstream.backends", |s| s.upstream.backends.clear()),
            ("listener.client_auth.ca", |s| s.listener.client_auth.mode = ClientAuthMode::Required),
            ("listener.client_auth.identity_header", |s| s.listener.client_auth.identity_header = "X Y".into()),
            ("listener.ticket_key_grace", |s| s.listener.ticket_key_grace = Duration::from_secs(13 * 3600)),
            ("listener.client_auth.crl[1]", |s| s.listener.client_auth.crl = vec!["a.crl".into(), "".into()]),
            ("listener.hsts", |s| s.listener.hsts = "max-age=1\r\nX-Evil: 1".into()),
            ("redirect.status", |s| (s.redirect.enabled, s.redirect.status) = (true, 302)),
            ("listener.certificates[0].key", |s| {
                s.listener.certificates = vec![CertificateSettings { cert: "a.pem".into(), ..Default::default() }]
            }),
            ("listener.certificates[0].cert", |s| {
                s.listener.certificates = vec![CertificateSettings { key: "a.pem".into(), ..Default::default() }]
            }),
            ("listener.key", |s| {
                s.listener.key = "".into();
                s.listener.certificates =
                    vec![CertificateSettings { cert: "a".into(), key: "b".into(), ..Default::default() }]
            }),
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
            ("supervision.window", |s| s.supervision.window = Duration::ZERO),
            ("supervision.backoff_max", |s| s.supervision.backoff_max = Duration::ZERO),
            ("admin.address", |s| {
                s.admin.enabled = true;
                s.admin.address = "0.0.0.0:9901".parse().unwrap()
            }),
            ("upstream.panic_threshold", |s| s.upstream.panic_threshold = 1.5),
            ("upstream.health.rise", |s| s.upstream.health.rise = 0),
            ("upstream.health.fall", |s| s.upstream.health.fall = 0),
            ("upstream.health.path", |s| s.upstream.health.path = "health".into()),
            ("upstream.health.method", |s| s.upstream.health.method = "G T".into()),
            ("upstream.health.expect_status", |s| s.upstream.health.expect_status = "300-200".into()),
            ("upstream.health.interval", |s| s.upstream.health.interval = Duration::ZERO),
            ("upstream.outlier.max_ejected_percent", |s| s.upstream.outlier.max_ejected_percent = 101),
            ("upstream.outlier.max_ejection", |s| s.upstream.outlier.max_ejection = Duration::from_millis(1)),
            ("upstream.retry.budget_percent", |s| s.upstream.retry.budget_percent = 200),
            ("upstream.retry.on_status", |s| s.upstream.retry.on_status = vec![404]),
            ("upstream.sticky.cookie", |s| s.upstream.sticky.cookie = "a b".into()),
            ("upstream.sticky.fallback", |s| s.upstream.sticky.fallback = StrategyKind::Sticky),
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
