//! The `terminus` daemon's signals: SIGHUP reloads (bad files rejected, the
//! old configuration keeps serving, established connections kept, zero
//! failed requests under load); SIGTERM drains in-flight requests and exits
//! 0; a second signal exits at once.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestCerts, TlsClient, test_certs, wait_until};

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn config(certs: &TestCerts, listen: SocketAddr, backends: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    format!(
        "[runtime]\nworkers = 1\n[listener]\naddress = \"{listen}\"\ncert = \"{}\"\nkey = \"{}\"\n[upstream]\nbackends = [{}]\n{extra}",
        certs.cert_path.display(),
        certs.key_path.display(),
        list.join(", ")
    )
}

struct Daemon {
    child: Child,
    file: PathBuf,
}

impl Daemon {
    fn start(file: &Path, addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_terminus"))
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start terminus");
        let d = Self { child, file: file.to_owned() };
        assert!(
            wait_until(Duration::from_secs(10), || TlsClient::connect(addr, tls.clone()).is_ok()),
            "terminus listens on {addr}"
        );
        d
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().expect("kill").success());
    }

    fn reload(&self, text: &str) {
        std::fs::write(&self.file, text).expect("write config");
        self.signal("-HUP");
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("terminus did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(c: &mut TlsClient, path: &str) -> Option<common::Response> {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).ok()?;
    c.read_response(false).ok()
}

#[test]
fn sighup_reload_applies_a_diff_rejects_bad_files_and_keeps_connections() {
    let certs = test_certs();
    let tls = common::client_config(&certs.ca_der);
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let listen = free_port();
    let file = certs.dir.join("terminus.toml");
    std::fs::write(&file, config(&certs, listen, &[a.addr()], "")).unwrap();
    let daemon = Daemon::start(&file, listen, &tls);

    let mut kept = TlsClient::connect(listen, tls.clone()).unwrap();
    assert_eq!(get(&mut kept, "/").unwrap().text(), "a");

    // Load: fresh connections and a keep-alive one, through every reload.
    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..2)
        .map(|i| {
            let (stop, ok, failed, tls) = (stop.clone(), ok.clone(), failed.clone(), tls.clone());
            std::thread::spawn(move || {
                let mut c = TlsClient::connect(listen, tls.clone()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let r = if i == 0 {
                        get(&mut c, "/")
                    } else {
                        TlsClient::connect(listen, tls.clone()).ok().and_then(|mut f| get(&mut f, "/"))
                    };
                    match r {
                        Some(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let fresh = |path: &str| common::https_get(listen, &tls, path).text();
    daemon.reload(&config(&certs, listen, &[a.addr(), b.addr()], ""));
    assert!(wait_until(Duration::from_secs(5), || fresh("/") == "b"), "backend b added by reload");

    // A bad file is rejected: both backends keep serving.
    daemon.reload(&config(&certs, listen, &[a.addr(), b.addr()], "[http]\nmax_headers = 0\n"));
    std::thread::sleep(Duration::from_millis(300));
    // Round robin per worker, interleaved with the load threads' requests:
    // sample until both backends answered (a dropped backend never would).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        seen.insert(fresh("/"));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "old configuration still serving after a bad reload: {seen:?}");
    daemon.reload("this is not toml [");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fresh("/status/204").len(), 0);

    // Remove a: only b from now on.
    daemon.reload(&config(&certs, listen, &[b.addr()], ""));
    assert!(wait_until(Duration::from_secs(5), || (0..4).all(|_| fresh("/") == "b")), "backend a removed");

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "no request failed across reloads ({ok} ok)");
    assert!(ok > 20, "load ran ({ok} ok)");
    let r = get(&mut kept, "/").expect("the connection established before the reloads still works");
    assert_eq!(r.text(), "b");
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let certs = test_certs();
    let tls = common::client_config(&certs.ca_der);
    let a = Backend::start("a");
    let listen = free_port();
    let file = certs.dir.join("terminus.toml");
    std::fs::write(&file, config(&certs, listen, &[a.addr()], "[shutdown]\ndrain_timeout = \"5s\"\n")).unwrap();
    let mut daemon = Daemon::start(&file, listen, &tls);
    let mut idle = TlsClient::connect(listen, tls.clone()).unwrap();
    assert_eq!(get(&mut idle, "/").unwrap().status, 200);
    let slow = {
        let tls = tls.clone();
        std::thread::spawn(move || {
            let mut c = TlsClient::connect(listen, tls).unwrap();
            get(&mut c, "/slow?ms=1500").map(|r| r.status)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    daemon.signal("-TERM");
    assert_eq!(slow.join().unwrap(), Some(200), "the in-flight request completes");
    assert!(idle.is_closed(), "idle keep-alive connections are closed");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(4), "exit follows the drain, not the deadline");
}

#[test]
fn second_signal_exits_at_once() {
    let certs = test_certs();
    let tls = common::client_config(&certs.ca_der);
    let a = Backend::start("a");
    let listen = free_port();
    let file = certs.dir.join("terminus.toml");
    std::fs::write(&file, config(&certs, listen, &[a.addr()], "[shutdown]\ndrain_timeout = \"30s\"\n")).unwrap();
    let mut daemon = Daemon::start(&file, listen, &tls);
    let _slow = {
        let tls = tls.clone();
        std::thread::spawn(move || {
            let mut c = TlsClient::connect(listen, tls).unwrap();
            let _ = get(&mut c, "/slow?ms=8000");
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal("-TERM");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    daemon.signal("-INT");
    assert_eq!(daemon.wait_exit(Duration::from_secs(3)), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(2));
}
