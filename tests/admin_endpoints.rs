//! The admin listener: health, readiness, status JSON, Prometheus metrics,
//! the bearer token, and the dashboard rendered by headless Chromium.

mod common;

use std::process::Command;
use std::time::Duration;

use common::embedded::Embedded;
use common::{Backend, PlainClient, http_get, wait_until};

fn admin(token: &'static str) -> Box<dyn FnOnce(&mut terminus_actors::Settings) + Send> {
    Box::new(move |s| {
        s.admin.enabled = true;
        s.admin.address = "127.0.0.1:0".parse().unwrap();
        s.admin.token = token.to_owned();
    })
}

fn get_with(addr: std::net::SocketAddr, path: &str, auth: &str) -> common::Response {
    let mut c = PlainClient::connect(addr).expect("connect admin");
    c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: {auth}\r\n\r\n").as_bytes()).unwrap();
    c.read_response(false).expect("admin response")
}

#[test]
fn admin_is_off_by_default() {
    let a = Backend::start("a");
    let e = Embedded::start(&[a.addr()], vec![Box::new(|_| {})]);
    assert_eq!(e.proxy(0).admin_addr, None);
}

#[test]
fn health_readiness_status_and_metrics() {
    let a = Backend::start("a");
    let e = Embedded::start(&[a.addr()], vec![admin("")]);
    let addr = e.proxy(0).admin_addr.expect("admin enabled");
    assert!(addr.ip().is_loopback());
    for _ in 0..3 {
        assert_eq!(e.get(0, "/").status, 200);
    }
    assert_eq!(e.get(0, "/status/503").status, 503);
    assert_eq!(http_get(addr, "/healthz").status, 200);
    assert_eq!(http_get(addr, "/readyz").status, 200);
    assert_eq!(http_get(addr, "/nope").status, 404);

    let status = http_get(addr, "/status");
    assert_eq!(status.header("content-type"), Some("application/json"));
    let json = status.text();
    for want in [
        format!("\"address\":\"{}\"", a.addr()),
        "\"state\":\"up\"".into(),
        "\"2xx\":3".into(),
        "\"5xx\":1".into(),
        "\"requests\":4".into(),
    ] {
        assert!(json.contains(&want), "{want} in {json}");
    }

    let metrics = http_get(addr, "/metrics").text();
    for want in [
        "terminus_requests_total{class=\"2xx\"} 3",
        "terminus_requests_total{class=\"5xx\"} 1",
        "terminus_upstream_latency_seconds_count 4",
        "terminus_upstream_latency_seconds_bucket{le=\"+Inf\"} 4",
        "terminus_tls_handshakes_total 4",
        "terminus_tls_handshake_failures_total{reason=\"protocol\"} 0",
        "terminus_active_connections 0",
        "terminus_backend_ejections_total 0",
        "terminus_retries_total 0",
        "# TYPE terminus_restarts_total counter",
    ] {
        assert!(metrics.contains(want), "{want} in\n{metrics}");
    }
    assert!(metrics.contains(&format!("terminus_backend_up{{backend=\"{}\"}} 1", a.addr())), "{metrics}");

    // A backend that refuses connections is ejected: readiness and metrics follow.
    a.stop();
    let _ = e.get(0, "/");
    assert!(wait_until(Duration::from_secs(3), || http_get(addr, "/readyz").status == 503));
    let metrics = http_get(addr, "/metrics").text();
    assert!(metrics.contains("terminus_backend_ejections_total 1"), "{metrics}");
    assert!(http_get(addr, "/status").text().contains("\"what\":\"down\""));
}

#[test]
fn token_guards_everything_but_probes() {
    let a = Backend::start("a");
    let e = Embedded::start(&[a.addr()], vec![admin("s3cret")]);
    let addr = e.proxy(0).admin_addr.unwrap();
    assert_eq!(http_get(addr, "/healthz").status, 200);
    assert_eq!(http_get(addr, "/readyz").status, 200);
    for path in ["/", "/status", "/metrics"] {
        assert_eq!(http_get(addr, path).status, 401, "{path}");
        assert_eq!(get_with(addr, path, "Bearer wrong").status, 401, "{path}");
        assert_eq!(get_with(addr, path, "Bearer s3cret").status, 200, "{path}");
    }
    assert_eq!(http_get(addr, "/?token=s3cret").status, 200);
    assert_eq!(http_get(addr, "/status?token=s3cret").status, 401, "only the page takes the token in the URL");
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| Command::new(b).arg("--version").output().is_ok())
}

#[test]
fn dashboard_renders_backend_rows_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install -y chromium)");
        return;
    };
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let e = Embedded::start(&[a.addr(), b.addr()], vec![admin("t0ken")]);
    for _ in 0..4 {
        assert_eq!(e.get(0, "/").status, 200);
    }
    let addr = e.proxy(0).admin_addr.unwrap();
    let profile = common::fresh_temp_dir("terminus-chromium");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://{addr}/?token=t0ken"))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    for backend in [a.addr(), b.addr()] {
        let row = format!("<tr class=\"backend\" data-addr=\"{backend}\">");
        assert!(
            dom.contains(&row),
            "row for {backend} in the rendered page:\n{dom}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dom.contains("<td class=\"up\">up</td>"), "{dom}");
    assert!(dom.contains("<p id=\"error\"></p>"), "no fetch error shown: {dom}");
    assert!(dom.contains("<td>2</td><td>0</td></tr>"), "each backend's request count (2) is shown: {dom}");
}
