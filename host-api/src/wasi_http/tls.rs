//! TLS for `https` egress: rustls with the ring provider, certificates
//! checked against the Mozilla roots (webpki-roots) plus any roots the
//! operator adds, and the name the guest asked for.
//!
//! The connection is made to the address the egress check passed; TLS then
//! runs over it with SNI and certificate verification for the canonical
//! host (a DNS name, or the IP address itself for an IP literal). There is
//! no switch that turns verification off: a private service is reached by
//! adding its root with [`client_config`], never by trusting any
//! certificate.

use std::sync::Arc;

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use wasmtime_wasi_http::Error;

use super::scope::{Host, Target};

/// A root certificate could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS root certificate {index} cannot be used: {reason}")]
pub struct TlsRootError {
    /// Its position among the extra roots, from 0.
    pub index: usize,
    /// Why, in one phrase.
    pub reason: String,
}

/// The client configuration https egress uses: the Mozilla roots from
/// webpki-roots plus `extra_roots`, TLS 1.2 and 1.3 with the ring
/// provider, and ALPN `http/1.1` (the host speaks HTTP/1.1 only).
///
/// # Errors
///
/// Returns [`TlsRootError`] naming an extra root rustls refuses.
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsRootError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (index, root) in extra_roots.iter().enumerate() {
        roots.add(root.clone()).map_err(|e| TlsRootError {
            index,
            reason: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsRootError {
            index: 0,
            reason: format!("no TLS version available: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs the TLS handshake over `stream` for `target`'s canonical host.
/// Errors carry the guest's code and the reason for the audit trail.
pub(super) async fn connect(
    config: Arc<ClientConfig>,
    target: &Target,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, (Error, String)> {
    let name = match &target.host {
        Host::Name(name) => ServerName::try_from(name.clone()).map_err(|_| {
            (
                Error::TlsProtocolError,
                format!("{name} is not a name TLS can verify"),
            )
        })?,
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
    };
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| {
            let reason = format!("TLS handshake failed: {e}");
            let code = match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(rustls::Error::InvalidCertificate(_)) => Error::TlsCertificateError,
                Some(rustls::Error::AlertReceived(alert)) => Error::TlsAlertReceived {
                    alert_id: Some(u8::from(*alert)),
                    alert_message: Some(format!("{alert:?}")),
                },
                _ => Error::TlsProtocolError,
            };
            (code, reason)
        })
}
