//! # Terminus engine
//!
//! `terminus-actors` is the embeddable engine of Terminus, a TLS-offloading
//! reverse proxy: clients speak HTTPS to it, it terminates TLS with rustls,
//! forwards plain HTTP/1.1 to a pool of backends over pooled keep-alive
//! connections, balances load across the healthy ones and encrypts the
//! responses on the way back.
//!
//! # Layout
//!
//! | module | role |
//! |---|---|
//! | [`runtime`] | the only module that names async-std / async-io and the worker threads |
//! | [`actors`] | `Listener`, `TlsSession`, `Balancer`, `BackendPool`, `HealthChecker`, `Control`, `Admin` (one per file), the supervisor and pool control messages |
//! | [`health`] | health policy: probe outcomes and passive signals to transitions (pure) |
//! | [`supervision`] | restart policy, budget and backoff (pure) |
//! | [`metrics`] | per-worker counters, summed on scrape |
//! | [`access_log`] | `combined` and JSON access log lines |
//! | [`http1`] | sans-I/O HTTP/1.1 codec on `httparse`: parsing, framing, forwarding headers |
//! | [`tls`] | rustls server configuration and PEM loading |
//! | [`balance`] | balancing strategies over immutable pool snapshots (pure) |
//! | [`health`] | health policy: probes, ejection, panic mode, slow start (pure) |
//! | [`limits`] | per-client admission policy: CIDR lists, connections and request rate per IP (pure) |
//! | [`io`] | body relaying between streams with framing conversion |
//! | [`upstream`] | per-worker idle upstream connection pool |
//! | [`settings`] | typed settings and their validation |
//!
//! # Threads
//!
//! The control plane (`BackendPool`, `Control`, `Admin`) runs on an actix Arbiter of the
//! caller's System. The data path runs on `runtime.workers` threads that
//! each drive the async-io reactor and host that worker's Listener, Balancer
//! and sessions; a request never crosses threads.
//!
//! # Starting a proxy
//!
//! ```no_run
//! use terminus_actors::{Proxy, Settings};
//!
//! # fn settings() -> Settings { unimplemented!() }
//! actix::System::new().block_on(async {
//!     let proxy = Proxy::start(settings()).expect("proxy starts");
//!     println!("listening on {}", proxy.local_addr());
//!     proxy.shutdown().await;
//! });
//! ```
#![warn(missing_docs)]

pub mod access_log;
pub mod actors;
pub mod balance;
pub mod health;
pub mod http1;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod runtime;
pub mod settings;
mod slab;
pub mod supervision;
pub mod tls;
pub mod upstream;
mod worker;

use std::io as stdio;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use log::info;

pub use crate::actors::admin::Admin;
#[cfg(any(test, feature = "fault-injection"))]
pub use crate::actors::backend_pool::InjectCheckerPanic;
pub use crate::actors::backend_pool::{
    BackendPool, BackendStatus, DrainBackend, PoolError, PoolStatus, SnapshotPublished, Subscribe, TransitionRecord,
    Why, WhyBackend,
};
pub use crate::actors::balancer::Balancer;
pub use crate::actors::control::{
    ApplyError, ApplyReport, ApplySettings, Control, ProxyStatus, ReplaceCertificates, Shutdown, Status,
};
pub use crate::actors::listener::{Listener, Spread};
pub use crate::actors::pool_control::{AddBackend, PoolControlError, PoolMembers, RemoveBackend, SetWeight};
pub use crate::actors::supervisor::Fatal;
#[cfg(any(test, feature = "fault-injection"))]
pub use crate::actors::supervisor::{InjectPanic, PANIC_PATH};
pub use crate::actors::tls_session::ACCESS_LOG_TARGET;
pub use crate::health::{HealthState, TransitionKind};
pub use crate::settings::{AccessLogFormat, BackendSettings, HashKey, Settings, SettingsError, StrategyKind};
pub use crate::supervision::{RestartKind, RestartPolicy};
pub use crate::tls::TlsError;

/// How long in-flight sessions may finish after [`ProxyHandle::shutdown`]
/// (the default of `shutdown.drain_timeout`).
pub const DEFAULT_DRAIN: Duration = settings::DEFAULT_DRAIN_TIMEOUT;

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The settings are invalid.
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
    /// The certificate or key cannot be used.
    #[error("{keys}{0}", keys = .0.keys())]
    Tls(#[from] TlsError),
    /// The listen address cannot be bound.
    #[error("`listener.address`: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: stdio::Error,
    },
    /// The redirect listener's address cannot be bound.
    #[error("`redirect.address`: cannot listen on {addr}: {source}")]
    RedirectBind {
        /// The configured address.
        addr: SocketAddr,
        /// Why binding failed.
        source: stdio::Error,
    },
    /// The admin address cannot be bound.
    #[error("`admin.address`: cannot listen on {addr}: {source}")]
    AdminBind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: stdio::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Worker(stdio::Error),
}

/// Entry point: starts proxies.
#[derive(Debug)]
pub struct Proxy;

/// Optional hooks of an embedded proxy.
#[derive(Debug, Default, Clone)]
pub struct Hooks {
    /// Receives [`Fatal`] when a supervised actor exhausts its restart
    /// budget. Without it the proxy only logs the failure.
    pub on_fatal: Option<Recipient<Fatal>>,
}

impl Proxy {
    /// Starts a proxy inside the current actix System: validates the
    /// settings, loads the certificate, binds the listener, starts the
    /// control plane (BackendPool, Control, and Admin when enabled) on a new
    /// Arbiter and the worker threads.
    ///
    /// Must be called from within a running actix System. Several proxies
    /// may run in one System; they share nothing.
    pub fn start(settings: Settings) -> Result<ProxyHandle, StartError> {
        Self::start_with(settings, Hooks::default())
    }

    /// [`Proxy::start`] with hooks (e.g. a [`Fatal`] recipient).
    pub fn start_with(settings: Settings, hooks: Hooks) -> Result<ProxyHandle, StartError> {
        settings.validate()?;
        let tls = tls::listener_tls(&settings.listener, None)?;
        let addr = settings.listener.address;
        let socket = runtime::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = socket.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let admin_socket = if settings.admin.enabled {
            let addr = settings.admin.address;
            let s = runtime::bind(addr).map_err(|source| StartError::AdminBind { addr, source })?;
            let bound = s.local_addr().map_err(|source| StartError::AdminBind { addr, source })?;
            Some((runtime::listener(s).map_err(|source| StartError::AdminBind { addr, source })?, bound))
        } else {
            None
        };
        let redirect_socket = if settings.redirect.enabled {
            let addr = settings.redirect.address;
            let s = runtime::bind(addr).map_err(|source| StartError::RedirectBind { addr, source })?;
            let bound = s.local_addr().map_err(|source| StartError::RedirectBind { addr, source })?;
            Some((runtime::listener(s).map_err(|source| StartError::RedirectBind { addr, source })?, bound))
        } else {
            None
        };
        let settings = Arc::new(settings);
        let metrics = Arc::new(metrics::Metrics::default());
        let policy = settings.supervision.policy();
        let spec = |name: &str| actors::supervisor::SupervisorSpec {
            name: name.to_owned(),
            policy,
            on_fatal: hooks.on_fatal.clone(),
            metrics: metrics.clone(),
        };
        let control = Arbiter::new();
        let mut pool_state = BackendPool::new(&settings.upstream);
        let checker_spec = spec("health_checker");
        pool_state.supervise_checkers(Box::new(move || checker_spec.clone()));
        let snapshot = pool_state.snapshot();
        let pool = actors::supervisor::start_in_arbiter(&control.handle(), spec("backend_pool"), move |_| pool_state);
        let timers = runtime::TimerRuntime::new().map_err(StartError::Worker)?;
        let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
        let cursor = balance::SharedCursor::default();
        let clients = Arc::new(limits::ClientLimits::from_settings(&settings.listener));
        let spread = actors::listener::Spread::new(settings.worker_count());
        let mut workers = Vec::new();
        let mut worker_addrs = Vec::new();
        for index in 0..settings.worker_count() {
            let clone = socket.try_clone().map_err(|source| StartError::Bind { addr, source })?;
            let spec = worker::WorkerSpec {
                index,
                settings: settings.clone(),
                tls: tls.config.clone(),
                listeners: vec![clone],
                pool: pool.clone(),
                snapshot: snapshot.clone(),
                shutdown: shutdown_rx.clone(),
                cursor: cursor.clone(),
                drain: settings.shutdown.drain_timeout,
                policy,
                on_fatal: hooks.on_fatal.clone(),
                metrics: metrics.clone(),
                clients: clients.clone(),
                spread: spread.clone(),
            };
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let thread =
                runtime::spawn_worker(format!("terminus-worker-{index}"), &timers, move || worker::run(spec, ready_tx))
                    .map_err(StartError::Worker)?;
            match ready_rx.recv() {
                Ok(Ok(addrs)) => {
                    workers.push(thread);
                    worker_addrs.push(addrs);
                }
                Ok(Err(e)) => return Err(StartError::Worker(e)),
                Err(_) => return Err(StartError::Worker(stdio::Error::other("worker thread died at start"))),
            }
        }
        drop(socket);
        spread.set_listeners(worker_addrs.iter().map(|w| w.listener.clone().recipient()).collect());
        let control_state = Control::new(
            settings.clone(),
            local_addr,
            pool.clone(),
            worker_addrs.iter().map(|w| w.listener.clone()).collect(),
            shutdown_tx.clone(),
            metrics.clone(),
            tls,
        );
        let control_addr =
            actors::supervisor::start_in_arbiter(&control.handle(), spec("control"), move |_| control_state);
        pool.do_send(Subscribe(control_addr.clone().recipient()));
        let admin = admin_socket.map(|(s, bound)| {
            let (control_addr, token) = (control_addr.clone(), settings.admin.token.clone());
            let socket = Arc::new(s);
            let admin = actors::supervisor::start_in_arbiter(&control.handle(), spec("admin"), move |_| {
                Admin::new(socket, control_addr, &token)
            });
            info!("admin listener started listen={bound}");
            (admin, bound)
        });
        let redirect = redirect_socket.map(|(s, bound)| {
            let (socket, port, status) = (Arc::new(s), local_addr.port(), settings.redirect.status);
            let redirect = actors::supervisor::start_in_arbiter(&control.handle(), spec("redirect"), move |_| {
                actors::redirect::Redirect::new(socket, port, status)
            });
            info!("redirect listener started listen={bound} https_port={port}");
            (redirect, bound)
        });
        info!(
            "proxy started listen={local_addr} workers={} backends={}",
            workers.len(),
            settings.upstream.backends.len()
        );
        Ok(ProxyHandle {
            local_addr,
            pool,
            control: control_addr,
            admin,
            redirect,
            worker_addrs,
            spread,
            arbiter: control,
            shutdown: shutdown_tx,
            workers,
            _timers: timers,
        })
    }
}

/// A running proxy: its addresses and its control actors.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    pool: Addr<BackendPool>,
    control: Addr<Control>,
    admin: Option<(Addr<Admin>, SocketAddr)>,
    redirect: Option<(Addr<actors::redirect::Redirect>, SocketAddr)>,
    worker_addrs: Vec<worker::WorkerAddrs>,
    spread: Arc<actors::listener::Spread>,
    arbiter: Arbiter,
    shutdown: async_channel::Sender<()>,
    workers: Vec<JoinHandle<()>>,
    _timers: runtime::TimerRuntime,
}

impl ProxyHandle {
    /// The address the TLS listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The BackendPool actor: [`PoolStatus`], [`AddBackend`],
    /// [`RemoveBackend`], [`DrainBackend`], [`SetWeight`], [`Subscribe`].
    pub fn pool(&self) -> &Addr<BackendPool> {
        &self.pool
    }

    /// The Control actor: [`ApplySettings`], [`ReplaceCertificates`],
    /// [`ProxyStatus`], [`Shutdown`].
    pub fn control(&self) -> &Addr<Control> {
        &self.control
    }

    /// The admin listener's address, when `admin.enabled`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, a)| *a)
    }

    /// The plain-HTTP redirect listener's address, when `redirect.enabled`.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().map(|(_, a)| *a)
    }

    /// The Admin actor, when `admin.enabled`.
    pub fn admin(&self) -> Option<&Addr<Admin>> {
        self.admin.as_ref().map(|(a, _)| a)
    }

    /// Each worker's Listener.
    pub fn listeners(&self) -> Vec<Addr<Listener>> {
        self.worker_addrs.iter().map(|w| w.listener.clone()).collect()
    }

    /// How the workers share connections: [`Spread::sessions`] gives each
    /// worker's open sessions (from any thread).
    pub fn spread(&self) -> Arc<Spread> {
        self.spread.clone()
    }

    /// Each worker's Balancer.
    pub fn balancers(&self) -> Vec<Addr<Balancer>> {
        self.worker_addrs.iter().map(|w| w.balancer.clone()).collect()
    }

    /// Stops accepting, lets in-flight requests finish (up to
    /// `shutdown.drain_timeout`), closes idle connections and stops every
    /// thread.
    pub async fn shutdown(self) {
        self.shutdown.close();
        let workers = self.workers;
        let (done_tx, done_rx) = async_channel::bounded::<()>(1);
        std::thread::spawn(move || {
            for w in workers {
                let _ = w.join();
            }
            let _ = done_tx.send_blocking(());
        });
        let _ = done_rx.recv().await;
        self.arbiter.stop();
        info!("proxy stopped listen={}", self.local_addr);
    }
}

/// The README's embedding example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme_doctest {}
