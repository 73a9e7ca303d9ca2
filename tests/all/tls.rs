//! https egress: a loopback TLS server with a certificate made in the test,
//! trusted through `RuntimeBuilder::tls_root_certificates`, never through a
//! switch that skips verification.

use std::{net::TcpListener, sync::Arc};

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};
use warden_runtime::{Runtime, TenantId};

use crate::harness::Env;

/// A certificate authority made for one test.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A server configuration for `names` (IP addresses or DNS names).
    fn server(&self, names: &[&str]) -> Arc<ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        Arc::new(config)
    }
}

/// A TLS server on an ephemeral loopback port answering every request
/// with `hello`; returns the port and a count of requests it answered.
fn serve(config: Arc<ServerConfig>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let acceptor = TlsAcceptor::from(config);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                let _ = tls.write_all(reply).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, answered)
}

/// Runs the egress guest once with an https grant for 127.0.0.1:`port`,
/// trusting `root` when given.
async fn get(env: &Env, root: Option<&Ca>, port: u16) -> (String, Vec<Value>) {
    let mut builder = Runtime::builder(env.data_dir());
    builder.pool_instances(4);
    if let Some(ca) = root {
        builder.tls_root_certificates(ca.cert.pem().as_bytes());
    }
    let runtime = builder.build().unwrap();
    let manifest = env.dir.path().join("tls.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"tls\"\ncomponent = {:?}\n[[grants.http]]\nscheme = \"https\"\n\
             host = \"127.0.0.1\"\nport = {port}\n",
            warden_test_programs::EGRESS
        ),
    )
    .unwrap();
    let agent = runtime.load_agent(&manifest).unwrap();
    env.allow("acme", agent.manifest());
    let tenant = TenantId::new("acme").unwrap();
    let input = format!("get https://127.0.0.1:{port}/hello\n");
    let out = runtime
        .invoke(&tenant, &agent, input.as_bytes(), "test")
        .await
        .unwrap();
    drop(runtime);
    let events = env
        .events("acme")
        .into_iter()
        .filter(|e| {
            e["body"]["type"]
                .as_str()
                .unwrap_or("")
                .starts_with("http-")
        })
        .map(|e| e["body"].clone())
        .collect();
    (String::from_utf8(out).unwrap(), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_granted_address_verifies_the_certificate_and_succeeds() {
    let ca = Ca::new();
    let (port, answered) = serve(ca.server(&["127.0.0.1"]));
    let env = Env::new();
    let (out, events) = get(&env, Some(&ca), port).await;
    assert!(out.contains("ok status 200 location  body hello"), "{out}");
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(events[0]["decision"], "allow");
    assert_eq!(events[0]["url"], format!("https://127.0.0.1:{port}/hello"));
    assert_eq!(events[1]["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_an_untrusted_root_is_refused_and_audited() {
    let ca = Ca::new();
    let (port, answered) = serve(ca.server(&["127.0.0.1"]));
    let env = Env::new();
    let (out, events) = get(&env, None, port).await;
    assert!(out.contains("err ErrorCode::TlsCertificateError"), "{out}");
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 0);
    let error = events[1]["error"].as_str().unwrap();
    assert!(error.contains("TLS handshake failed"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_certificate_for_another_host_is_refused() {
    // Signed by a trusted root, but for another name: the certificate must
    // name the host the guest asked for.
    let ca = Ca::new();
    let (port, answered) = serve(ca.server(&["api.other.test", "127.0.0.2"]));
    let env = Env::new();
    let (out, events) = get(&env, Some(&ca), port).await;
    assert!(out.contains("err ErrorCode::TlsCertificateError"), "{out}");
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(
        events[1]["error"]
            .as_str()
            .unwrap()
            .contains("TLS handshake failed"),
        "{events:?}"
    );
}
