//! The real proxy, started in-process on 127.0.0.1:0 in its own actix System.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::Addr;
use rustls::ClientConfig;
use terminus_actors::{BackendPool, BackendSettings, BackendStatus, PoolStatus, Proxy, Settings, Spread};

use super::certs::{TestCerts, client_config, test_certs};
use super::client::{Response, TlsClient};

/// A running proxy with its own certificates and a trusting client config.
pub struct TestProxy {
    addr: SocketAddr,
    pool: Addr<BackendPool>,
    spread: Arc<Spread>,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// A client configuration that trusts the proxy's test CA.
    pub tls: Arc<ClientConfig>,
    /// The certificate files (kept alive while the proxy runs).
    pub certs: TestCerts,
}

/// Settings for a proxy on 127.0.0.1:0 with one worker in front of `backends`.
pub fn settings(certs: &TestCerts, backends: &[SocketAddr]) -> Settings {
    let mut s = Settings::default();
    s.runtime.workers = 1;
    s.listener.address = "127.0.0.1:0".parse().expect("addr");
    s.listener.cert = certs.cert_path.clone();
    s.listener.key = certs.key_path.clone();
    s.upstream.backends = backends.iter().map(|&address| BackendSettings { address, weight: 1 }).collect();
    s
}

impl TestProxy {
    /// Starts a proxy in front of `backends` with default settings.
    pub fn start(backends: &[SocketAddr]) -> Self {
        Self::start_with(backends, |_| {})
    }

    /// Starts a proxy after `edit` adjusted its settings.
    pub fn start_with(backends: &[SocketAddr], edit: impl FnOnce(&mut Settings)) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let certs = test_certs();
        let mut s = settings(&certs, backends);
        edit(&mut s);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                match Proxy::start(s) {
                    Ok(proxy) => {
                        let _ = ready_tx.send(Ok((proxy.local_addr(), proxy.pool().clone(), proxy.spread())));
                        let _ = stop_rx.recv().await;
                        proxy.shutdown().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let (addr, pool, spread) =
            ready_rx.recv_timeout(Duration::from_secs(10)).expect("proxy thread answers").expect("proxy starts");
        let tls = client_config(&certs.ca_der);
        Self { addr, pool, spread, stop: Some(stop_tx), thread: Some(thread), tls, certs }
    }

    /// The TLS listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new TLS connection to the proxy.
    pub fn client(&self) -> TlsClient {
        TlsClient::connect(self.addr, self.tls.clone()).expect("TLS connect to the proxy")
    }

    /// One GET on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        let mut c = self.client();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).expect("send");
        c.read_response(false).expect("response")
    }

    /// The BackendPool actor (drain commands, `WhyBackend` queries).
    pub fn pool(&self) -> &Addr<BackendPool> {
        &self.pool
    }

    /// Open client sessions of each worker.
    pub fn sessions_per_worker(&self) -> Vec<usize> {
        self.spread.sessions()
    }

    /// The BackendPool's view of the backends.
    pub fn pool_status(&self) -> Vec<BackendStatus> {
        futures_lite::future::block_on(self.pool.send(PoolStatus)).expect("pool answers")
    }

    /// Shuts the proxy down and waits for it.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.close();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
