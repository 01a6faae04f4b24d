//! Proxies started through the embedding API inside one test-owned actix
//! System, with their control actors' addresses and a [`Fatal`] inbox.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use rustls::ClientConfig;
use terminus_actors::{
    Admin, BackendPool, Balancer, Control, Fatal, Hooks, Listener, Proxy, ProxyStatus, Settings, Status,
};

use super::certs::{TestCerts, client_config, test_certs};
use super::client::{Response, TlsClient};
use super::proxy::settings;

/// The addresses of one embedded proxy.
#[derive(Clone)]
pub struct Parts {
    /// TLS listener.
    pub addr: SocketAddr,
    /// Admin listener, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The plain-HTTP redirect listener, when `redirect.enabled`.
    pub redirect_addr: Option<SocketAddr>,
    /// Control actors.
    pub pool: Addr<BackendPool>,
    /// The Control actor.
    pub control: Addr<Control>,
    /// The Admin actor.
    pub admin: Option<Addr<Admin>>,
    /// Each worker's Listener.
    pub listeners: Vec<Addr<Listener>>,
    /// Each worker's Balancer.
    pub balancers: Vec<Addr<Balancer>>,
}

/// Forwards [`Fatal`] events to a std channel.
struct FatalInbox(Sender<Fatal>);
impl Actor for FatalInbox {
    type Context = Context<Self>;
}
impl Handler<Fatal> for FatalInbox {
    type Result = ();
    fn handle(&mut self, f: Fatal, _: &mut Context<Self>) {
        let _ = self.0.send(f);
    }
}

/// One System hosting several proxies.
pub struct Embedded {
    /// Each proxy, in the order of the settings given.
    pub proxies: Vec<Parts>,
    /// `Fatal` events of all proxies.
    pub fatal: Receiver<Fatal>,
    /// Trusts the proxies' certificate.
    pub tls: Arc<ClientConfig>,
    /// Certificates (kept alive while the proxies run).
    pub certs: TestCerts,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Starts one proxy per `edit` over `backends` (shared certificate).
    pub fn start(backends: &[SocketAddr], edits: Vec<Box<dyn FnOnce(&mut Settings) + Send>>) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let certs = test_certs();
        let all: Vec<Settings> = edits
            .into_iter()
            .map(|edit| {
                let mut s = settings(&certs, backends);
                edit(&mut s);
                s
            })
            .collect();
        let (ready_tx, ready_rx) = channel();
        let (fatal_tx, fatal_rx) = channel();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let inbox = FatalInbox(fatal_tx).start().recipient();
                let mut handles = Vec::new();
                for s in all {
                    match Proxy::start_with(s, Hooks { on_fatal: Some(inbox.clone()) }) {
                        Ok(h) => handles.push(h),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
                let parts = handles
                    .iter()
                    .map(|h| Parts {
                        addr: h.local_addr(),
                        admin_addr: h.admin_addr(),
                        redirect_addr: h.redirect_addr(),
                        pool: h.pool().clone(),
                        control: h.control().clone(),
                        admin: h.admin().cloned(),
                        listeners: h.listeners(),
                        balancers: h.balancers(),
                    })
                    .collect();
                let _ = ready_tx.send(Ok(parts));
                let _ = stop_rx.recv().await;
                for h in handles {
                    h.shutdown().await;
                }
            });
        });
        let proxies =
            ready_rx.recv_timeout(Duration::from_secs(10)).expect("proxy thread answers").expect("proxies start");
        let tls = client_config(&certs.ca_der);
        Self { proxies, fatal: fatal_rx, tls, certs, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// One proxy's parts.
    pub fn proxy(&self, i: usize) -> &Parts {
        &self.proxies[i]
    }

    /// A new TLS connection to proxy `i`.
    pub fn client(&self, i: usize) -> TlsClient {
        TlsClient::connect(self.proxies[i].addr, self.tls.clone()).expect("TLS connect to the proxy")
    }

    /// One GET on a fresh connection to proxy `i`.
    pub fn get(&self, i: usize, path: &str) -> Response {
        super::client::https_get(self.proxies[i].addr, &self.tls, path)
    }

    /// Proxy `i`'s status.
    pub fn status(&self, i: usize) -> Status {
        block(self.proxies[i].control.send(ProxyStatus)).expect("control answers").expect("pool answers")
    }

    /// Shuts every proxy down and waits.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            s.close();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for an actor request from outside the System (5 s at most).
pub fn block<F: std::future::Future>(fut: F) -> F::Output {
    futures_lite::future::block_on(futures_lite::future::or(async { Some(fut.await) }, async {
        async_io_sleep(Duration::from_secs(5)).await;
        None
    }))
    .expect("actor answered within 5 s")
}

async fn async_io_sleep(d: Duration) {
    let (tx, rx) = async_channel::bounded::<()>(1);
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send_blocking(());
    });
    let _ = rx.recv().await;
}
