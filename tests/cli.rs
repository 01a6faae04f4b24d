//! The `terminus` binary: demo mode, configuration errors, `check`, signals.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{https_get, test_certs};

fn terminus() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_terminus"));
    c.env_remove("RUST_LOG");
    c
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

#[test]
fn bad_configuration_names_file_key_and_reason() {
    let certs = test_certs();
    let cert = certs.cert_path.display().to_string();
    let key = certs.key_path.display().to_string();
    let other = test_certs();
    let other_key = other.key_path.display().to_string();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown.toml", "[listener]\nadress = \"127.0.0.1:0\"\n".into(), vec!["unknown.toml", "adress", "unknown"]),
        ("nobackends.toml", format!("[listener]\ncert = \"{cert}\"\nkey = \"{key}\"\n"), vec!["upstream.backends", "at least one"]),
        (
            "missingcert.toml",
            "[listener]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[upstream]\nbackends = [\"127.0.0.1:1\"]\n".into(),
            vec!["missingcert.toml", "listener.cert", "/nonexistent/c.pem", "No such file"],
        ),
        (
            "mismatch.toml",
            format!("[listener]\naddress = \"127.0.0.1:0\"\ncert = \"{cert}\"\nkey = \"{other_key}\"\n[upstream]\nbackends = [\"127.0.0.1:1\"]\n"),
            vec!["mismatch.toml", "does not match"],
        ),
        ("badduration.toml", "[upstream]\nconnect_timeout = \"fast\"\n".into(), vec!["upstream.connect_timeout", "fast"]),
    ];
    for (name, text, wants) in cases {
        let path = write(&certs.dir, name, &text);
        let out = terminus().arg("--config").arg(&path).output().expect("run terminus");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        for want in wants {
            assert!(stderr.contains(want), "{name}: {want:?} not in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn port_in_use_is_reported() {
    let certs = test_certs();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = terminus()
        .args(["--listen", &addr.to_string(), "--backend", "127.0.0.1:1"])
        .arg("--cert")
        .arg(&certs.cert_path)
        .arg("--key")
        .arg(&certs.key_path)
        .output()
        .expect("run terminus");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("listener.address") && stderr.contains(&addr.to_string()), "{stderr}");
}

#[test]
fn check_validates_without_starting() {
    let certs = test_certs();
    let good = write(
        &certs.dir,
        "good.toml",
        &format!(
            "[listener]\ncert = \"{}\"\nkey = \"{}\"\n[upstream]\nbackends = [\"127.0.0.1:1\"]\n",
            certs.cert_path.display(),
            certs.key_path.display()
        ),
    );
    let out = terminus().arg("check").arg("--config").arg(&good).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
}

#[test]
fn demo_mode_serves_and_sigterm_exits_cleanly() {
    // The demo certificate is self-signed and unknown to us: the probe
    // trusts any certificate.
    let cfg = common::insecure_client_config();
    let (status, _) = with_demo(&[], |addr| {
        let first = https_get(addr, &cfg, "/").text();
        let second = https_get(addr, &cfg, "/").text();
        assert!(first.starts_with("hello from demo-"), "{first}");
        assert_ne!(first[..17].to_owned(), second[..17].to_owned(), "the two demo backends take turns");
    });
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// Starts the demo with extra environment, reads the bound address from the
/// banner, runs `f` against it, sends SIGTERM and returns the exit status and
/// stderr (the run fails if the process does not exit within 10 s).
fn with_demo(env: &[(&str, &str)], f: impl FnOnce(std::net::SocketAddr)) -> (std::process::ExitStatus, String) {
    let mut cmd = terminus();
    cmd.env("TERMINUS__LISTENER__ADDRESS", "127.0.0.1:0").stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start terminus");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("banner line").expect("read");
        if let Some(url) = line.trim().strip_prefix("listening") {
            let url = url.trim().trim_start_matches("https://").trim_end_matches('/');
            break url.parse::<std::net::SocketAddr>().expect("address in banner");
        }
    };
    f(addr);
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "terminus did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn access_log_formats_are_selectable() {
    let cfg = common::insecure_client_config();
    let cases: &[(&str, fn(&str) -> bool)] = &[
        ("logfmt", |l| l.contains("\"GET /logged?x=1\" status=200") && l.contains("upstream=127.0.0.1:")),
        ("combined", |l| l.contains("127.0.0.1 - - [") && l.contains("\"GET /logged?x=1 HTTP/1.1\" 200 ")),
        ("json", |l| l.contains("{\"") && l.contains("\"status\":200") && l.contains("/logged?x=1")),
    ];
    for (format, check) in cases {
        let (_, stderr) =
            with_demo(&[("RUST_LOG", "off,terminus::access=info"), ("TERMINUS__LOG__ACCESS_FORMAT", format)], |addr| {
                let r = https_get(addr, &cfg, "/logged?x=1");
                assert_eq!(r.status, 200);
            });
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("/logged")).collect();
        assert_eq!(lines.len(), 1, "{format}: one access line per request:\n{stderr}");
        assert!(check(lines[0]), "{format}: unexpected line: {}", lines[0]);
    }
}
