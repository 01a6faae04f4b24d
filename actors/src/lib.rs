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
//! | [`actors`] | `Listener`, `TlsSession`, `Balancer`, `BackendPool` (one per file) |
//! | [`http1`] | sans-I/O HTTP/1.1 codec on `httparse`: parsing, framing, forwarding headers |
//! | [`tls`] | rustls server configuration and PEM loading |
//! | [`balance`] | balancing strategies over immutable pool snapshots (pure) |
//! | [`limits`] | per-client admission policy: CIDR lists, connections and request rate per IP (pure) |
//! | [`io`] | body relaying between streams with framing conversion |
//! | [`upstream`] | per-worker idle upstream connection pool |
//! | [`settings`] | typed settings and their validation |
//!
//! # Threads
//!
//! The control plane (the `BackendPool`) runs on an actix Arbiter of the
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

pub mod actors;
pub mod balance;
pub mod http1;
pub mod io;
pub mod limits;
pub mod runtime;
pub mod settings;
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

pub use crate::actors::backend_pool::{BackendPool, BackendStatus, PoolStatus};
pub use crate::actors::tls_session::ACCESS_LOG_TARGET;
pub use crate::settings::{BackendSettings, Settings, SettingsError, StrategyKind};
pub use crate::tls::TlsError;

/// How long in-flight sessions may finish after [`ProxyHandle::shutdown`].
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The settings are invalid.
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
    /// The certificate or key cannot be used.
    #[error("{keys}: {0}", keys = tls_keys(.0))]
    Tls(#[from] TlsError),
    /// The listen address cannot be bound.
    #[error("`listener.address`: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: stdio::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Worker(stdio::Error),
}

/// The settings keys a TLS error is about.
fn tls_keys(e: &TlsError) -> &'static str {
    match e {
        TlsError::Certificate { .. } => "`listener.cert`",
        TlsError::Key { .. } => "`listener.key`",
        _ => "`listener.cert`, `listener.key`",
    }
}

/// Entry point: starts proxies.
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// Starts a proxy inside the current actix System: validates the
    /// settings, loads the certificate, binds the listener, starts the
    /// BackendPool on a new Arbiter and the worker threads.
    ///
    /// Must be called from within a running actix System. Several proxies
    /// may run in one System; they share nothing.
    pub fn start(settings: Settings) -> Result<ProxyHandle, StartError> {
        settings.validate()?;
        let tls = tls::server_config(&settings.listener.cert, &settings.listener.key)?;
        let addr = settings.listener.address;
        let socket = runtime::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = socket.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let settings = Arc::new(settings);

        let control = Arbiter::new();
        let pool_state = BackendPool::new(&settings.upstream);
        let snapshot = pool_state.snapshot();
        let pool = Supervisor::start_in_arbiter(&control.handle(), move |_| pool_state);

        let timers = runtime::TimerRuntime::new().map_err(StartError::Worker)?;
        let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
        let cursor = balance::SharedCursor::default();
        let clients = Arc::new(limits::ClientLimits::from_settings(&settings.listener));
        let mut workers = Vec::new();
        for index in 0..settings.worker_count() {
            let clone = socket.try_clone().map_err(|source| StartError::Bind { addr, source })?;
            let spec = worker::WorkerSpec {
                index,
                settings: settings.clone(),
                tls: tls.clone(),
                listeners: vec![clone],
                pool: pool.clone(),
                snapshot: snapshot.clone(),
                shutdown: shutdown_rx.clone(),
                cursor: cursor.clone(),
                clients: clients.clone(),
                drain: DEFAULT_DRAIN,
            };
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let thread =
                runtime::spawn_worker(format!("terminus-worker-{index}"), &timers, move || worker::run(spec, ready_tx))
                    .map_err(StartError::Worker)?;
            match ready_rx.recv() {
                Ok(Ok(())) => workers.push(thread),
                Ok(Err(e)) => return Err(StartError::Worker(e)),
                Err(_) => return Err(StartError::Worker(stdio::Error::other("worker thread died at start"))),
            }
        }
        drop(socket);
        info!(
            "proxy started listen={local_addr} workers={} backends={}",
            workers.len(),
            settings.upstream.backends.len()
        );
        Ok(ProxyHandle { local_addr, pool, control, shutdown: shutdown_tx, workers, _timers: timers })
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    pool: Addr<BackendPool>,
    control: Arbiter,
    shutdown: async_channel::Sender<()>,
    workers: Vec<JoinHandle<()>>,
    _timers: runtime::TimerRuntime,
}

impl ProxyHandle {
    /// The address the TLS listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The BackendPool actor, for [`PoolStatus`] queries.
    pub fn pool(&self) -> &Addr<BackendPool> {
        &self.pool
    }

    /// Stops accepting, lets in-flight requests finish (up to
    /// [`DEFAULT_DRAIN`]), closes idle connections and stops every thread.
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
        self.control.stop();
        info!("proxy stopped listen={}", self.local_addr);
    }
}

/// The README's embedding example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme_doctest {}
