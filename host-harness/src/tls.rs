//! TLS for the host's HTTP, both ways (rustls with the ring provider).
//!
//! Outgoing: the component's requests (through `wasi:http`) and the host's
//! own asynchronous MDNs trust the system's root certificates plus the CA
//! certificates a connection names, and may present a client certificate
//! from the key store (mutual TLS). Incoming: `serve --tls-listen` presents
//! a key store entry's certificate and may require client certificates.
//! Private keys are read from the key store here, in the host; they never
//! enter the component.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use as2_connector::config::Connection;
use as2_connector::smime::Cert;

use crate::keystore::KeyStore;

/// The crypto provider of every TLS configuration here: ring, which
/// wasmtime-wasi-http already builds, so no second provider is compiled in.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's root certificates, read once per process (reading them
/// parses every file of the system store). When the system has none, the
/// Mozilla roots compiled into `webpki-roots`.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!("reading the system root certificates: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                "no usable system root certificates; trusting the bundled Mozilla roots instead"
            );
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else if ignored > 0 {
            tracing::debug!(added, ignored, "system root certificates loaded");
        }
        roots
    })
}

/// The DER certificates of a PEM text (a CA bundle, a chain).
pub fn certificates_from_pem(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    Cert::all_from_pem(pem)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .iter()
        .map(|cert| {
            cert.to_der()
                .map(CertificateDer::from)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect()
}

/// One connection's TLS settings for outgoing https requests.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA certificates trusted in addition to the system roots
    /// (`partner.tls_ca_certificates`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The key store entry presented as the TLS client certificate
    /// (`station.tls_client_key`).
    pub client_key: Option<String>,
}

impl ClientTls {
    /// The TLS settings of a parsed connection configuration.
    pub fn from_connection(connection: &Connection) -> anyhow::Result<Self> {
        let extra_roots = match &connection.partner.tls_ca_certificates {
            Some(pem) => certificates_from_pem(pem).context("partner.tls_ca_certificates")?,
            None => Vec::new(),
        };
        Ok(ClientTls {
            extra_roots,
            client_key: connection
                .station
                .tls_client_key
                .clone()
                .filter(|name| !name.trim().is_empty()),
        })
    }

    /// The TLS settings of a configuration's JSON text. A configuration that
    /// does not parse gets the defaults: the component refuses it anyway,
    /// and says which field is wrong, before it sends anything.
    pub fn from_config_json(config_json: &str) -> Self {
        Connection::from_json(config_json)
            .ok()
            .and_then(|connection| Self::from_connection(&connection).ok())
            .unwrap_or_default()
    }

    /// The rustls client configuration: system roots plus the extra roots,
    /// and the client certificate from `keys` when one is configured.
    pub fn client_config(&self, keys: Option<&KeyStore>) -> anyhow::Result<Arc<ClientConfig>> {
        let mut roots = system_roots().clone();
        for root in &self.extra_roots {
            roots
                .add(root.clone())
                .context("a CA certificate of partner.tls_ca_certificates is not usable")?;
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("setting up TLS")?
            .with_root_certificates(roots);
        let config = match &self.client_key {
            Some(name) => {
                let keys = keys.with_context(|| {
                    format!("no key store to take the TLS client key {name:?} from")
                })?;
                let (chain, key) = keys.tls_identity(name).with_context(|| {
                    format!("the TLS client certificate (station.tls_client_key {name:?})")
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .with_context(|| format!("the TLS client key {name:?} is not usable"))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The rustls server configuration of `serve --tls-listen`: `chain` (the
/// server certificate first, then intermediates) for `key`, and, with
/// `client_cas`, client certificates required and checked against them.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cas: Option<Vec<CertificateDer<'static>>>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let builder = match client_cas {
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca)
                    .context("a certificate of --tls-client-ca is not a usable CA certificate")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .context("setting up client certificate checks")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("the TLS server certificate does not match its key")?;
    // AS2 is HTTP/1.1 (RFC 4130 §5); say so to clients that negotiate ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a TLS failure is reported through `wasi:http`: a certificate the
/// peer or we refused is `TlsCertificateError`, an alert from the peer
/// `TlsAlertReceived` (a server refusing our client certificate sends one),
/// anything else `TlsProtocolError`. The component turns all three into its
/// `TLS_ERROR` verdict. `None` when `error` holds no TLS failure.
pub fn wasi_tls_error(
    error: &(dyn std::error::Error + 'static),
) -> Option<wasmtime_wasi_http::Error> {
    let mut source = Some(error);
    while let Some(mut error) = source {
        // An I/O error's `source()` skips the error it wraps (tokio-rustls
        // wraps rustls errors in I/O errors): look inside it.
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            error = inner;
        }
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType => {
                    wasmtime_wasi_http::Error::TlsCertificateError
                }
                rustls::Error::AlertReceived(alert) => {
                    wasmtime_wasi_http::Error::TlsAlertReceived {
                        alert_id: Some(u8::from(*alert)),
                        alert_message: Some(format!("{alert:?}")),
                    }
                }
                _ => wasmtime_wasi_http::Error::TlsProtocolError,
            });
        }
        source = error.source();
    }
    None
}

/// [`wasi_tls_error`] of an I/O error from a TLS stream; an I/O error
/// without a TLS cause there (the peer closed during the handshake) is a
/// protocol error.
pub fn wasi_tls_io_error(error: &std::io::Error) -> wasmtime_wasi_http::Error {
    error
        .get_ref()
        .and_then(|inner| wasi_tls_error(inner))
        .unwrap_or(wasmtime_wasi_http::Error::TlsProtocolError)
}

/// The TLS acceptor of `serve --tls-listen`: key store entry `key_name`
/// (its certificate is the server certificate), the PEM intermediates of
/// `chain_pem` after it, and with `client_ca_pem` client certificates
/// required, issued by one of its CAs (mutual TLS).
pub fn acceptor(
    keys: &KeyStore,
    key_name: &str,
    chain_pem: Option<&str>,
    client_ca_pem: Option<&str>,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let (mut chain, key) = keys
        .tls_identity(key_name)
        .with_context(|| format!("the TLS server key {key_name:?}"))?;
    if let Some(pem) = chain_pem {
        chain.extend(certificates_from_pem(pem).context("the TLS certificate chain")?);
    }
    let client_cas = client_ca_pem
        .map(|pem| certificates_from_pem(pem).context("the TLS client CA certificates"))
        .transpose()?;
    Ok(tokio_rustls::TlsAcceptor::from(server_config(
        chain, key, client_cas,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi_http::Error as WasiError;

    fn wrapped(error: rustls::Error) -> std::io::Error {
        // As tokio-rustls reports a failed handshake.
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn rustls_failures_become_the_wasi_http_tls_error_codes() {
        let untrusted = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(matches!(
            wasi_tls_io_error(&untrusted),
            WasiError::TlsCertificateError
        ));
        let refused = wrapped(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        match wasi_tls_io_error(&refused) {
            WasiError::TlsAlertReceived {
                alert_id: Some(116),
                alert_message: Some(message),
            } => assert_eq!(message, "CertificateRequired"),
            other => panic!("{other:?}"),
        }
        let garbled = wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(matches!(
            wasi_tls_io_error(&garbled),
            WasiError::TlsProtocolError
        ));
        // The peer hanging up mid-handshake carries no TLS error: a protocol error.
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            wasi_tls_io_error(&eof),
            WasiError::TlsProtocolError
        ));
        // An error without TLS in it is not a TLS error.
        assert!(wasi_tls_error(&std::io::Error::other("reset")).is_none());
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        assert!(certificates_from_pem("not PEM").is_err());
        assert!(ClientTls::default().client_config(None).is_ok());
        let tls = ClientTls {
            client_key: Some("acme-tls".into()),
            ..ClientTls::default()
        };
        let error = tls.client_config(None).unwrap_err();
        assert!(format!("{error:#}").contains("acme-tls"), "{error:#}");
    }
}
