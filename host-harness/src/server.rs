//! `serve`: the inbound AS2 endpoint. One URL for many connections: each
//! request goes to the connection whose AS2 identifiers it names (as a
//! platform's shared AS2 URL does), through the component's `export`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use as2_connector::config::Connection;
use as2_connector::headers::as2_id_from_header;

use crate::connector::{Connector, describe};
use crate::runtime::{ErrorCode, Header, HttpRequest, api};

/// A connection served on the endpoint.
#[derive(Clone)]
pub struct Route {
    /// The configuration as given to the component.
    pub config_json: String,
    /// Our AS2 identifier in it.
    pub station_id: String,
    /// The partner's AS2 identifier in it.
    pub partner_id: String,
}

impl Route {
    /// A route from a configuration's JSON text.
    pub fn from_json(config_json: String) -> anyhow::Result<Self> {
        let connection = Connection::from_json(&config_json).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Route {
            station_id: connection.station.as2_id,
            partner_id: connection.partner.as2_id,
            config_json,
        })
    }
}

/// The endpoint's settings and state.
pub struct Endpoint {
    /// The component for this station.
    pub connector: Connector,
    /// The connections served.
    pub routes: Vec<Route>,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Where received documents are written.
    pub inbox: PathBuf,
}

/// Serves the endpoint on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a connection")?,
            () = &mut shutdown => return Ok(()),
        };
        tokio::spawn(serve_connection(stream, peer, endpoint.clone()));
    }
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the endpoint over TLS on `listener` until `shutdown` completes:
/// each connection's handshake with `acceptor` (which may require a client
/// certificate), then the same HTTP service as [`serve`].
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a connection")?,
            () = &mut shutdown => return Ok(()),
        };
        let (acceptor, endpoint) = (acceptor.clone(), endpoint.clone());
        // The handshake runs in the connection's task, so a slow client holds up no other.
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, endpoint).await,
                Ok(Err(e)) => tracing::info!(%peer, "TLS handshake refused: {e}"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Serves HTTP/1.1 on one accepted connection, plain or TLS.
async fn serve_connection<S>(stream: S, peer: SocketAddr, endpoint: Arc<Endpoint>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| handle(endpoint.clone(), peer, request));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut message = message.into();
    message.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn handle(
    endpoint: Arc<Endpoint>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match request.method().as_str() {
        "POST" => receive(&endpoint, peer, request).await,
        "GET" | "HEAD" => text(StatusCode::OK, "AS2 endpoint: POST AS2 messages here."),
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "AS2 messages are sent with POST.",
        ),
    })
}

async fn receive(
    endpoint: &Arc<Endpoint>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(as2_id_from_header)
    };
    let (from, to) = (header("as2-from"), header("as2-to"));
    let Some(route) = endpoint
        .routes
        .iter()
        .find(|route| {
            Some(&route.partner_id) == from.as_ref() && Some(&route.station_id) == to.as_ref()
        })
        .cloned()
    else {
        tracing::warn!(%peer, ?from, ?to, "no connection for this AS2-From / AS2-To");
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "UNKNOWN_PARTNER: no connection here receives from AS2-From {:?} to AS2-To {:?}",
                from.unwrap_or_default(),
                to.unwrap_or_default()
            ),
        );
    };
    let body = match Limited::new(body, endpoint.max_body).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the message is larger than the {} bytes allowed",
                    endpoint.max_body
                ),
            );
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            );
        }
    };
    let headers: Vec<Header> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some(Header {
                name: name.as_str().to_string(),
                value: value.to_str().ok()?.to_string(),
            })
        })
        .collect();
    let request = HttpRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        headers,
        body: body.to_vec(),
    };
    let connector = endpoint.connector.clone();
    let config = route.config_json.clone();
    let outcome = tokio::task::spawn_blocking(move || connector.export(&config, &request)).await;
    let result = match outcome {
        Ok(Ok(Ok(result))) => result,
        Ok(Ok(Err(error))) => {
            tracing::warn!(%peer, "rejected: {}", describe(&error));
            let status = match error.code {
                // An MDN for a message this connection never sent.
                ErrorCode::UnknownPartner | ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::InvalidConfig
                | ErrorCode::KeystoreFailed
                | ErrorCode::StorageFailed
                | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::CertHasExpired | ErrorCode::CertNotYetValid => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return text(status, describe(&error));
        }
        Ok(Err(call_error)) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the message could not be processed: {call_error}"),
            );
        }
        Err(join_error) => {
            tracing::error!("the export task failed: {join_error}");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the message could not be processed",
            );
        }
    };
    // Store before answering: a positive MDN must never leave for a document we do not have.
    for received in &result.documents {
        if let Err(e) = store_document(&endpoint.inbox, received) {
            tracing::error!(message_id = %received.message_id, "storing the received document failed: {e:#}");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the document could not be stored; send it again later",
            );
        }
    }
    // Then the record that makes a resend a duplicate, in one transaction.
    let commit: Vec<(String, Vec<u8>)> = result
        .commit
        .into_iter()
        .map(|entry| (entry.key, entry.value))
        .collect();
    if let Err(e) = endpoint.connector.station.state.set_all(&commit) {
        tracing::error!("recording the received message failed: {e}");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the message could not be recorded; send it again later",
        );
    }
    if let Some(receipt) = &result.receipt {
        tracing::info!(
            message_id = %receipt.message_id,
            state = crate::demo::state_text(receipt.state),
            "asynchronous MDN received"
        );
    }
    if let Some(mdn) = result.async_mdn {
        tokio::spawn(deliver_async_mdn(mdn, route, endpoint.clone()));
    }
    let mut response = Response::new(Full::new(Bytes::from(result.response.body)));
    *response.status_mut() = StatusCode::from_u16(result.response.status).unwrap_or(StatusCode::OK);
    for header in result.response.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(header.name.as_bytes()),
            hyper::header::HeaderValue::from_str(&header.value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Delivery attempts for one asynchronous MDN, and the first pause between them.
const ASYNC_MDN_ATTEMPTS: u32 = 5;
const ASYNC_MDN_FIRST_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// POSTs an asynchronous MDN (RFC 4130 §7.3) to the partner, retrying with
/// doubling pauses until a 2xx answer or the last attempt. An https URL is
/// reached with the TLS settings of the message's connection `route`.
async fn deliver_async_mdn(mdn: api::AsyncMdn, route: Route, endpoint: Arc<Endpoint>) {
    let headers: Vec<(String, String)> =
        mdn.headers.into_iter().map(|h| (h.name, h.value)).collect();
    let tls = if mdn.url.starts_with("https://") {
        match crate::tls::ClientTls::from_config_json(&route.config_json)
            .client_config(Some(&endpoint.connector.station.keys))
        {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!(url = %mdn.url, "asynchronous MDN not delivered: {e:#}");
                return;
            }
        }
    } else {
        None
    };
    let mut pause = ASYNC_MDN_FIRST_RETRY;
    for attempt in 1..=ASYNC_MDN_ATTEMPTS {
        let sent = crate::client::post_with(&mdn.url, &headers, mdn.body.clone(), tls.clone());
        let failure = match sent.await {
            Ok(status) if (200..300).contains(&status) => {
                tracing::info!(url = %mdn.url, status, attempt, "asynchronous MDN delivered");
                return;
            }
            Ok(status) => format!("HTTP {status}"),
            Err(e) => format!("{e:#}"),
        };
        tracing::warn!(url = %mdn.url, attempt, "asynchronous MDN not delivered: {failure}");
        if attempt < ASYNC_MDN_ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    tracing::error!(url = %mdn.url, "asynchronous MDN given up after {ASYNC_MDN_ATTEMPTS} attempts");
}

/// Writes a received document to `<inbox>/<partner>/<file name>`, fsynced,
/// never overwriting. Returns the path.
pub fn store_document(
    inbox: &std::path::Path,
    received: &api::ReceivedDocument,
) -> anyhow::Result<PathBuf> {
    let partner = crate::files::sanitize_file_name(&received.partner, "partner");
    let fallback =
        crate::files::sanitize_file_name(received.message_id.trim_matches(['<', '>']), "document");
    let name = match &received.document.file_name {
        Some(name) => crate::files::sanitize_file_name(name, &fallback),
        None => fallback,
    };
    let path =
        crate::files::store_new_file(&inbox.join(partner), &name, &received.document.content)?;
    tracing::info!(message_id = %received.message_id, path = %path.display(), bytes = received.document.content.len(), "document stored");
    Ok(path)
}
