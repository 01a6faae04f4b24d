//! With `listener.cert_watch_interval` set, changed certificate files are
//! loaded for new handshakes; files that fail to load leave the old pair in use.

mod common;

use std::time::Duration;

use common::{Backend, TestProxy, TlsClient, client_config, test_certs, wait_until};

#[test]
fn changed_certificate_files_are_reloaded_and_bad_ones_ignored() {
    let backend = Backend::start("w");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.cert_watch_interval = Duration::from_millis(100);
    });
    let mut established = proxy.client();

    // Replace the files in place with another CA's pair.
    let next = test_certs();
    let next_tls = client_config(&next.ca_der);
    assert!(TlsClient::connect(proxy.addr(), next_tls.clone()).is_err(), "the new CA is not in use yet");
    std::fs::copy(&next.key_path, &proxy.certs.key_path).expect("copy key");
    std::fs::copy(&next.cert_path, &proxy.certs.cert_path).expect("copy cert");
    assert!(
        wait_until(Duration::from_secs(5), || TlsClient::connect(proxy.addr(), next_tls.clone()).is_ok()),
        "the changed files were not picked up"
    );
    assert_eq!(common::https_get(proxy.addr(), &next_tls, "/").text(), "w");

    // A broken file is not loaded: the last good pair keeps serving.
    std::fs::write(&proxy.certs.cert_path, b"not a certificate").expect("write");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(common::https_get(proxy.addr(), &next_tls, "/").text(), "w");

    // Sessions established before any change are untouched.
    established.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    assert_eq!(established.read_response(false).expect("response").text(), "w");
}
