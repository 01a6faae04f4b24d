//! Key exchange: the post-quantum hybrid X25519MLKEM768 is negotiated with
//! clients that offer it, and classical clients still connect.

mod common;

use std::sync::Arc;

use common::{Backend, TestProxy, TlsClient};
use rustls::{ClientConfig, NamedGroup, RootCertStore};

fn client_with_groups(proxy: &TestProxy, groups: &[NamedGroup]) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups.retain(|g| groups.contains(&g.name()));
    provider.kx_groups.sort_by_key(|g| groups.iter().position(|n| *n == g.name()));
    let mut roots = RootCertStore::empty();
    roots.add(proxy.certs.ca_der.clone()).expect("CA");
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[test]
fn hybrid_post_quantum_key_exchange_is_negotiated_when_offered() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    // (client groups in preference order, expected negotiated group)
    let cases: &[(&[NamedGroup], NamedGroup)] = &[
        (&[NamedGroup::X25519MLKEM768, NamedGroup::X25519], NamedGroup::X25519MLKEM768),
        // A key share for X25519 only: rustls takes it rather than spend a
        // HelloRetryRequest round trip on the hybrid.
        (&[NamedGroup::X25519, NamedGroup::X25519MLKEM768], NamedGroup::X25519),
        (&[NamedGroup::X25519MLKEM768], NamedGroup::X25519MLKEM768),
        (&[NamedGroup::X25519], NamedGroup::X25519),
        (&[NamedGroup::secp256r1], NamedGroup::secp256r1),
    ];
    for (groups, want) in cases {
        let mut c = TlsClient::connect(proxy.addr(), client_with_groups(&proxy, groups)).expect("handshake");
        let got = c.get_ref().conn.negotiated_key_exchange_group().map(|g| g.name());
        assert_eq!(got, Some(*want), "client groups {groups:?}");
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
        assert_eq!(c.read_response(false).expect("response").status, 200);
    }
}
