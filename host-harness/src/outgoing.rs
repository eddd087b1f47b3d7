//! The component's outgoing HTTP (`wasi:http/outgoing-handler`), with the
//! connection's TLS settings.
//!
//! `wasi:http` has no TLS options: a guest can say neither which CA
//! certificates to trust nor which client certificate to present. The TLS
//! settings belong to the connection all the same (a partner's private CA,
//! mutual TLS), so the host reads them from the call's configuration and
//! applies them here, on every `https://` request of that call. Plain
//! `http://` requests go through wasmtime-wasi-http's own sender unchanged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::http;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as WasiErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::station::Station;
use crate::tls::{ClientTls, wasi_tls_error, wasi_tls_io_error};

/// Options of one call into the component that the host applies itself.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// TLS settings for the call's outgoing https requests.
    pub tls: ClientTls,
}

impl CallOptions {
    /// The options of a call for the connection configured by `config_json`.
    pub fn for_config(config_json: &str) -> Self {
        CallOptions {
            tls: ClientTls::from_config_json(config_json),
        }
    }
}

/// What the timeouts are when the guest sets none (as wasmtime-wasi-http's
/// own sender; the call's deadline bounds everything anyway).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The `wasi:http` hooks of one call.
pub struct HttpHooks {
    tls: ClientTls,
    station: Arc<Station>,
    /// Built on the call's first https request, then reused by the others.
    client_config: Option<Arc<rustls::ClientConfig>>,
}

impl HttpHooks {
    /// Hooks applying `options` for `station` (whose key store holds the
    /// TLS client key).
    pub fn new(options: &CallOptions, station: Arc<Station>) -> Self {
        HttpHooks {
            tls: options.tls.clone(),
            station,
            client_config: None,
        }
    }

    fn client_config(&mut self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        if let Some(config) = &self.client_config {
            return Ok(config.clone());
        }
        let config = self.tls.client_config(Some(&self.station.keys))?;
        self.client_config = Some(config.clone());
        Ok(config)
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        _ = fut;
        if request.uri().scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Box::new(async move {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        let config = match self.client_config() {
            Ok(config) => config,
            Err(e) => {
                // The message names the key store entry, never key material.
                let message = format!("{e:#}");
                tracing::warn!(station = %self.station.label, "TLS setup failed: {message}");
                let failed: SendResult = Err(Error::InternalError(Some(message)));
                return Box::new(async move { failed });
            }
        };
        Box::new(send_https(request, options, config))
    }

    fn p2_error_from_tls(&mut self, err: &std::io::Error) -> WasiErrorCode {
        wasi_code(wasi_tls_io_error(err))
    }

    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> WasiErrorCode {
        // A TLS 1.3 server checks our client certificate after the client's
        // side of the handshake is done: its refusal arrives as an alert
        // while hyper reads the response.
        match wasi_tls_error(err) {
            Some(tls) => wasi_code(tls),
            None => {
                tracing::debug!("HTTP error: {err}");
                WasiErrorCode::HttpProtocolError
            }
        }
    }
}

fn wasi_code(error: Error) -> WasiErrorCode {
    match error {
        Error::TlsCertificateError => WasiErrorCode::TlsCertificateError,
        Error::TlsAlertReceived {
            alert_id,
            alert_message,
        } => WasiErrorCode::TlsAlertReceived(
            wasmtime_wasi_http::p2::bindings::http::types::TlsAlertReceivedPayload {
                alert_id,
                alert_message,
            },
        ),
        _ => WasiErrorCode::TlsProtocolError,
    }
}

/// A hyper error as a `wasi:http` error: a TLS failure inside it as its TLS
/// error, anything else as the hyper error.
fn hyper_error(error: hyper::Error) -> Error {
    if error.is_timeout() {
        return Error::HttpResponseTimeout;
    }
    wasi_tls_error(&error).unwrap_or(Error::Hyper(error))
}

/// Sends an https request over a rustls connection with `config`, keeping
/// the timeouts of the request options (connect, first byte, between
/// bytes) as wasmtime-wasi-http's own sender does.
async fn send_https(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    config: Arc<rustls::ClientConfig>,
) -> SendResult {
    let uri = request.uri();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let host = authority.host().trim_matches(['[', ']']).to_string();
    let port = authority.port_u16().unwrap_or(443);
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
        // A zero interval panics in tokio; one nanosecond is as good as zero.
        .max(Duration::from_nanos(1));

    let server_name = rustls::pki_types::ServerName::try_from(host.as_str())
        .map_err(Error::InvalidDnsNameError)?
        .to_owned();
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(Error::Connect)?;
        tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                tracing::debug!(%host, port, "TLS handshake failed: {e}");
                wasi_tls_io_error(&e)
            })
    };
    let stream = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(hyper_error)?;

    // On a direct connection the request line carries only the path.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

    // The connection task runs beside the request; its failure (a TLS alert
    // after the handshake, a reset) reaches the guest through the returned
    // future, as with wasmtime-wasi-http's own sender.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = done_tx.send(connection.await);
    });
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(hyper_error)?;
    let mut timeout = tokio::time::interval(between_bytes_timeout);
    timeout.reset();
    let response = response.map(|incoming| {
        TimedBody {
            incoming,
            timeout,
            // The sender keeps the connection open until the body is read.
            _sender: sender,
        }
        .boxed_unsync()
    });
    let io = async move {
        match done_rx.await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(e)) => Err(hyper_error(e)),
        }
    };
    Ok((response, Box::new(io)))
}

/// A response body that fails when no frame arrives within the
/// between-bytes timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
    _sender: hyper::client::conn::http1::SendRequest<WasiBody>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(hyper_error(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.size_hint()
    }
}
