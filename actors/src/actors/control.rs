//! The Control actor: the proxy's control plane for operators and embedders.
//!
//! - **Owns**: the settings in force, the addresses of the pool and of every
//!   worker's Listener, the shutdown switch, and the health transitions it
//!   sees in the pool's snapshots.
//! - **Receives**: [`ApplySettings`] (reload: validated first, then applied
//!   as a diff), [`ReplaceCertificates`], [`ProxyStatus`], [`Shutdown`], and
//!   [`SnapshotPublished`] from the BackendPool.
//! - **Sends**: pool control messages ([`AddBackend`], [`RemoveBackend`],
//!   [`SetWeight`]) to the BackendPool, [`SetTls`] to each Listener.
//! - **Restart policy**: supervised (`supervision.*`); a restart keeps every
//!   field (nothing in it is per-incarnation).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use log::{info, warn};

use crate::actors::backend_pool::{BackendPool, BackendStatus, PoolStatus, SnapshotPublished};
use crate::actors::listener::{Listener, SetSockets, SetTls};
use crate::actors::pool_control::{AddBackend, PoolControlError, PoolMembers, RemoveBackend, SetWeight};
use crate::metrics::{Event, Metrics, Totals};
use crate::runtime;
use crate::settings::{ClientAuthMode, Settings, SettingsError};
use crate::tls::{self, TlsError};

/// Why new settings were not applied. The old ones keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The settings are invalid.
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
    /// The certificate or key cannot be used.
    #[error("{keys}{0}", keys = .0.keys())]
    Tls(#[from] TlsError),
    /// The pool refused a change (the changes before it were applied).
    #[error("backend change refused: {0}")]
    Pool(#[from] PoolControlError),
    /// An actor did not answer.
    #[error("internal: {0}")]
    Internal(#[from] MailboxError),
    /// The new listen address cannot be bound.
    #[error("`listener.address`: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// What [`ApplySettings`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Backends added.
    pub added: Vec<SocketAddr>,
    /// Backends removed.
    pub removed: Vec<SocketAddr>,
    /// Backends whose weight changed.
    pub reweighted: Vec<SocketAddr>,
    /// The listener's new address, when `listener.address` changed: new
    /// connections are accepted there, the old socket is closed, and
    /// connections accepted on it carry on.
    pub moved_listener: Option<SocketAddr>,
    /// Sections that changed but take effect only after a restart.
    pub restart_required: Vec<&'static str>,
}

/// Apply new settings: validate them and load their certificate first (a
/// bad configuration changes nothing), then add, remove and re-weight
/// backends and swap the certificate. Established connections are kept.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ApplyReport, ApplyError>")]
pub struct ApplySettings(pub Settings);

/// Load a new certificate chain and key and use them for new handshakes.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), TlsError>")]
pub struct ReplaceCertificates {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Begin a graceful shutdown: stop accepting, let in-flight requests finish
/// (up to `shutdown.drain_timeout`), close idle connections. Await
/// [`crate::ProxyHandle::shutdown`] to wait for the end.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Query: the whole proxy's state.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Status, MailboxError>")]
pub struct ProxyStatus;

/// The proxy's state, as [`ProxyStatus`] reports it.
#[derive(Debug, Clone)]
pub struct Status {
    /// The TLS listener's address.
    pub listen: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Whether a shutdown has begun.
    pub shutting_down: bool,
    /// Every backend.
    pub backends: Vec<BackendStatus>,
    /// Summed counters.
    pub totals: Totals,
    /// Recent actor restarts, oldest first.
    pub restarts: Vec<Event>,
    /// Recent backend health transitions, oldest first.
    pub transitions: Vec<Event>,
}

/// The control plane of one proxy.
pub struct Control {
    settings: Arc<Settings>,
    listen: SocketAddr,
    pool: Addr<BackendPool>,
    listeners: Vec<Addr<Listener>>,
    shutdown: async_channel::Sender<()>,
    metrics: Arc<Metrics>,
    started_at: Instant,
    last_up: HashMap<SocketAddr, bool>,
    /// The TLS configuration in force (its ticket key is carried into the next one).
    tls: tls::ListenerTls,
    /// Modification time and size of the files last loaded (certificates,
    /// keys, OCSP responses, ticket key, client CAs and CRLs).
    cert_stamp: Option<FileStamp>,
}

/// What identifies a version of the files the TLS configuration is built from.
type FileStamp = Vec<(SystemTime, u64)>;

fn stamp(settings: &Settings) -> Option<FileStamp> {
    let one = |p: &std::path::Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    let l = &settings.listener;
    let sni = l.certificates.iter().flat_map(|c| [&c.cert, &c.key, &c.ocsp]);
    // The client CAs and CRLs are read only when client certificates are asked for.
    let auth = &l.client_auth;
    let client = (auth.mode != ClientAuthMode::Off).then(|| std::iter::once(&auth.ca).chain(&auth.crl));
    [&l.cert, &l.key, &l.ocsp, &l.ticket_key_file]
        .into_iter()
        .chain(sni)
        .chain(client.into_iter().flatten())
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| one(p))
        .collect()
}

impl Control {
    /// A control actor over a started proxy's parts.
    pub(crate) fn new(
        settings: Arc<Settings>,
        listen: SocketAddr,
        pool: Addr<BackendPool>,
        listeners: Vec<Addr<Listener>>,
        shutdown: async_channel::Sender<()>,
        metrics: Arc<Metrics>,
        tls: tls::ListenerTls,
    ) -> Self {
        let last_up = settings.upstream.backends.iter().map(|b| (b.address, true)).collect();
        let cert_stamp = stamp(&settings);
        let started_at = Instant::now();
        Self { settings, listen, pool, listeners, shutdown, metrics, started_at, last_up, tls, cert_stamp }
    }

    /// Reloads the certificate when its files changed since the last load.
    /// Files caught mid-write fail to load and are tried again next time.
    fn reload_changed_certificates(&mut self) {
        let now = stamp(&self.settings);
        if now.is_none() || now == self.cert_stamp {
            return;
        }
        let settings = self.settings.clone();
        match tls::listener_tls(&settings.listener, Some(&self.tls)) {
            Ok(config) => {
                self.swap_tls(config);
                self.cert_stamp = now;
                info!("certificate reloaded after file change cert={}", settings.listener.cert.display());
            }
            Err(e) => warn!("changed certificate not loaded, the old one keeps serving: {e}"),
        }
    }

    fn swap_tls(&mut self, tls: tls::ListenerTls) {
        for l in &self.listeners {
            l.do_send(SetTls(tls.config.clone()));
        }
        self.tls = tls;
    }
}

impl Actor for Control {
    type Context = Context<Self>;

    /// Runs at first start and after each restart (a restart clears timers).
    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = self.settings.listener.cert_watch_interval;
        if !every.is_zero() {
            ctx.run_interval(every, |control, _| control.reload_changed_certificates());
        }
    }
}

impl Supervised for Control {}

/// Sections whose change needs a restart (everything but backends and certificates).
fn restart_required(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut out = Vec::new();
    let (mut ol, mut nl) = (old.listener.clone(), new.listener.clone());
    (ol.cert, ol.key, nl.cert, nl.key) = Default::default();
    (ol.certificates, nl.certificates) = Default::default();
    (ol.tls_policy, ol.tls_versions, ol.cipher_suites) = Default::default();
    (nl.tls_policy, nl.tls_versions, nl.cipher_suites) = Default::default();
    // Applied by the rebuilt TLS configuration; hsts and identity_header need a restart.
    (ol.ocsp, ol.session_tickets, ol.client_auth.mode, ol.client_auth.ca) = Default::default();
    (nl.ocsp, nl.session_tickets, nl.client_auth.mode, nl.client_auth.ca) = Default::default();
    (ol.client_auth.crl, ol.client_auth.allow_issuers_without_crl) = Default::default();
    (nl.client_auth.crl, nl.client_auth.allow_issuers_without_crl) = Default::default();
    (ol.ticket_key_file, ol.ticket_key_grace, nl.ticket_key_file, nl.ticket_key_grace) = Default::default();
    (ol.cert_watch_interval, nl.cert_watch_interval) = Default::default();
    (ol.address, nl.address) = (old.listener.address, old.listener.address);
    let (mut ou, mut nu) = (old.upstream.clone(), new.upstream.clone());
    (ou.backends, nu.backends) = Default::default();
    let checks = [
        ("runtime", old.runtime != new.runtime),
        ("listener", ol != nl),
        ("http", old.http != new.http),
        ("upstream", ou != nu),
        ("supervision", old.supervision != new.supervision),
        ("shutdown", old.shutdown != new.shutdown),
        ("admin", old.admin != new.admin),
        ("redirect", old.redirect != new.redirect),
        ("log", old.log != new.log),
    ];
    for (section, changed) in checks {
        if changed {
            out.push(section);
        }
    }
    out
}

impl Handler<ApplySettings> for Control {
    type Result = ResponseActFuture<Self, Result<ApplyReport, ApplyError>>;

    fn handle(&mut self, msg: ApplySettings, _: &mut Context<Self>) -> Self::Result {
        let new = msg.0;
        let prepared = new
            .validate()
            .map_err(ApplyError::from)
            .and_then(|()| Ok(tls::listener_tls(&new.listener, Some(&self.tls))?));
        // A moved listener is bound before anything changes: a busy address
        // rejects the whole reload.
        let moved = new.listener.address != self.settings.listener.address;
        let prepared = prepared.and_then(|tls| {
            let socket = if moved {
                let addr = new.listener.address;
                let bound = runtime::bind(addr).and_then(|s| Ok((s.local_addr()?, s)));
                Some(bound.map_err(|source| ApplyError::Bind { addr, source })?)
            } else {
                None
            };
            Ok((tls, socket))
        });
        let (tls, socket) = match prepared {
            Ok(ready) => ready,
            Err(e) => {
                warn!("reload rejected reason={e}");
                return Box::pin(fut::ready(Err(e)));
            }
        };
        let pool = self.pool.clone();
        let wanted: Vec<(SocketAddr, u32)> = new.upstream.backends.iter().map(|b| (b.address, b.weight)).collect();
        let mut report = ApplyReport { restart_required: restart_required(&self.settings, &new), ..Default::default() };
        let work = async move {
            let current = pool.send(PoolMembers).await?;
            for &(address, weight) in &wanted {
                match current.iter().find(|(a, _)| *a == address) {
                    None => {
                        pool.send(AddBackend { address, weight }).await??;
                        report.added.push(address);
                    }
                    Some(&(_, w)) if w != weight => {
                        pool.send(SetWeight { address, weight }).await??;
                        report.reweighted.push(address);
                    }
                    Some(_) => {}
                }
            }
            for &(address, _) in &current {
                if !wanted.iter().any(|(a, _)| *a == address) {
                    pool.send(RemoveBackend { address }).await??;
                    report.removed.push(address);
                }
            }
            Ok::<_, ApplyError>(report)
        };
        Box::pin(work.into_actor(self).map(move |result, act, _| {
            let mut report = result.inspect_err(|e| warn!("reload partly applied reason={e}"))?;
            act.swap_tls(tls);
            if let Some((bound, socket)) = socket {
                for listener in &act.listeners {
                    match socket.try_clone() {
                        Ok(clone) => listener.do_send(SetSockets(vec![clone])),
                        Err(e) => warn!("listener not moved worker socket clone failed error={e}"),
                    }
                }
                info!("listener moved from={} to={bound}", act.listen);
                act.listen = bound;
                report.moved_listener = Some(bound);
            }
            info!(
                "reload applied added={:?} removed={:?} reweighted={:?} restart_required={:?}",
                report.added, report.removed, report.reweighted, report.restart_required
            );
            act.settings = Arc::new(new);
            act.cert_stamp = stamp(&act.settings);
            Ok(report)
        }))
    }
}

impl Handler<ReplaceCertificates> for Control {
    type Result = Result<(), TlsError>;

    fn handle(&mut self, msg: ReplaceCertificates, _: &mut Context<Self>) -> Self::Result {
        let mut s = (*self.settings).clone();
        (s.listener.cert, s.listener.key) = (msg.cert, msg.key);
        let config = tls::listener_tls(&s.listener, Some(&self.tls))?;
        self.swap_tls(config);
        self.settings = Arc::new(s);
        self.cert_stamp = stamp(&self.settings);
        info!("certificates replaced");
        Ok(())
    }
}

impl Handler<Shutdown> for Control {
    type Result = ();
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        if !self.shutdown.is_closed() {
            info!("shutdown requested listen={}", self.listen);
        }
        self.shutdown.close();
    }
}

impl Handler<ProxyStatus> for Control {
    type Result = ResponseFuture<Result<Status, MailboxError>>;

    fn handle(&mut self, _: ProxyStatus, _: &mut Context<Self>) -> Self::Result {
        let (restarts, transitions) = self.metrics.recent();
        let partial = Status {
            listen: self.listen,
            workers: self.listeners.len(),
            uptime_secs: self.started_at.elapsed().as_secs(),
            shutting_down: self.shutdown.is_closed(),
            backends: Vec::new(),
            totals: self.metrics.totals(),
            restarts,
            transitions,
        };
        let pool = self.pool.clone();
        Box::pin(async move { Ok(Status { backends: pool.send(PoolStatus).await?, ..partial }) })
    }
}

impl Handler<SnapshotPublished> for Control {
    type Result = ();
    fn handle(&mut self, msg: SnapshotPublished, _: &mut Context<Self>) {
        for b in msg.0.backends() {
            let before = self.last_up.insert(b.addr, b.eligible);
            if before.is_some_and(|up| up != b.eligible) {
                self.metrics.record_transition(b.addr, b.eligible);
            }
        }
        let present: Vec<SocketAddr> = msg.0.backends().iter().map(|b| b.addr).collect();
        self.last_up.retain(|a, _| present.contains(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TlsPolicy;

    #[test]
    fn tls_settings_apply_on_reload_and_the_rest_needs_a_restart() {
        type Edit = fn(&mut Settings);
        let cases: &[(Edit, &[&str])] = &[
            (|s| s.listener.tls_policy = TlsPolicy::Modern, &[]),
            (|s| s.listener.cipher_suites = vec!["TLS13_AES_128_GCM_SHA256".into()], &[]),
            (|s| s.listener.session_tickets = true, &[]),
            (|s| s.listener.ticket_key_grace = std::time::Duration::ZERO, &[]),
            (|s| s.listener.ocsp = "o.der".into(), &[]),
            (|s| s.listener.certificates = vec![Default::default()], &[]),
            (|s| s.listener.client_auth.mode = ClientAuthMode::Required, &[]),
            (|s| s.listener.client_auth.crl = vec!["c.crl".into()], &[]),
            (|s| s.listener.client_auth.allow_issuers_without_crl = true, &[]),
            (|s| s.listener.hsts = "max-age=1".into(), &["listener"]),
            (|s| s.listener.client_auth.identity_header = "X-Id".into(), &["listener"]),
            (|s| s.redirect.enabled = true, &["redirect"]),
        ];
        let old = Settings::default();
        for (i, (edit, want)) in cases.iter().enumerate() {
            let mut new = old.clone();
            edit(&mut new);
            assert_eq!(restart_required(&old, &new), *want, "case {i}");
        }
    }
}
