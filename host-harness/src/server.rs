//! `serve`: the inbound AS2 endpoint. One URL for many connections: each
//! request goes to the connection whose AS2 identifiers it names (as a
//! platform's shared AS2 URL does), through the component's `export`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use as2_connector::config::Connection;
use as2_connector::headers::as2_id_from_header;

use crate::blobs::Blob;
use crate::connector::{Connector, Exported, InboundRequest};
use crate::describe::{describe, state_text};
use crate::inbox::{Accepted, Inbox};
use crate::runtime::{ErrorCode, Header};

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

/// The connections an endpoint serves, replaced whole while it serves
/// (a request works with the set it started with).
pub struct Routes(std::sync::RwLock<Arc<Vec<Route>>>);

impl Routes {
    /// The set `routes`.
    pub fn new(routes: Vec<Route>) -> Self {
        Routes(std::sync::RwLock::new(Arc::new(routes)))
    }

    /// The connections served now.
    pub fn current(&self) -> Arc<Vec<Route>> {
        match self.0.read() {
            Ok(routes) => routes.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `routes` from now on.
    pub fn replace(&self, routes: Vec<Route>) {
        let routes = Arc::new(routes);
        match self.0.write() {
            Ok(mut slot) => *slot = routes,
            Err(poisoned) => *poisoned.into_inner() = routes,
        }
    }
}

/// The endpoint's settings and state.
pub struct Endpoint {
    /// The component for this station.
    pub connector: Connector,
    /// The connections served; the console replaces them when it saves one.
    pub routes: Routes,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Where received documents go, and the MDNs owed.
    pub inbox: Inbox,
    /// How often to send again what the connections still owe partners
    /// (`resume`): interrupted sends, overdue asynchronous MDNs.
    pub resume_every: Duration,
    /// Wakes the MDN courier when an asynchronous MDN is owed.
    mdn_owed: Notify,
    /// The background work runs once, however many listeners serve the endpoint.
    background: tokio::sync::OnceCell<()>,
}

impl Endpoint {
    /// An endpoint for `routes` on `connector`'s station.
    pub fn new(connector: Connector, routes: Vec<Route>, max_body: usize) -> Self {
        Endpoint {
            inbox: Inbox::new(connector.station.clone()),
            connector,
            routes: Routes::new(routes),
            max_body,
            resume_every: Duration::from_secs(10),
            mdn_owed: Notify::new(),
            background: tokio::sync::OnceCell::new(),
        }
    }
}

/// Work the endpoint does besides answering: first finishing what a stop
/// interrupted, then delivering owed asynchronous MDNs and resuming owed
/// sends, until the process ends.
async fn start_background(endpoint: &Arc<Endpoint>) -> anyhow::Result<()> {
    endpoint
        .background
        .get_or_try_init(|| start_background_once(endpoint))
        .await?;
    Ok(())
}

async fn start_background_once(endpoint: &Arc<Endpoint>) -> anyhow::Result<()> {
    let inbox = endpoint.inbox.clone();
    let finished = tokio::task::spawn_blocking(move || inbox.recover()).await??;
    if !finished.is_empty() {
        tracing::warn!(
            "finished {} deliveries interrupted by the last stop",
            finished.len()
        );
    }
    tokio::spawn(deliver_owed_mdns(endpoint.clone()));
    tokio::spawn(resume_sends(endpoint.clone()));
    Ok(())
}

/// Serves the endpoint on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    accept_loop(listener, None, endpoint, shutdown).await
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the endpoint over TLS on `listener` until `shutdown` completes:
/// each connection's handshake with `acceptor` (which may require a client
/// certificate), then the same HTTP service as [`serve`].
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    accept_loop(listener, Some(acceptor), endpoint, shutdown).await
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    start_background(&endpoint).await?;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a connection")?,
            () = &mut shutdown => return Ok(()),
        };
        let endpoint = endpoint.clone();
        let Some(acceptor) = acceptor.clone() else {
            tokio::spawn(serve_connection(stream, peer, endpoint));
            continue;
        };
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
    // Half-close: a client may shut its write side while it waits for the MDN.
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .half_close(true)
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

/// How long a partner is asked to wait before sending again a message the
/// station could not record.
const RETRY_AFTER_SECONDS: u32 = 30;

/// 503 with Retry-After: nothing was recorded and no MDN is given, so the
/// partner sends the message again (RFC 9110 §15.6.4, §10.2.3).
fn retry_later(why: &str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{why}: nothing was recorded; send the message again in {RETRY_AFTER_SECONDS} s"),
    );
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(RETRY_AFTER_SECONDS),
    );
    response
}

/// How long a refused request's body is read and thrown away before the
/// answer: a client that writes its whole body before reading would
/// otherwise lose the answer to the reset of a connection closed with
/// unread data (lingering close, as web servers do). Nothing is kept.
const LINGER: Duration = Duration::from_secs(2);

async fn linger(mut body: Incoming) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

fn too_large(max_body: usize) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the message is larger than the {max_body} bytes allowed"),
    );
    // The rest of the body is not read: the connection cannot carry another request.
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
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
        "GET" | "HEAD" => probe(&endpoint, &request),
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "AS2 messages are sent with POST.",
        ),
    })
}

/// The answer to a GET (a partner's `test-connection`, a monitor): 200,
/// unless the connections served require HTTP Basic credentials and the
/// request carries none of theirs, then 401, as for a message.
fn probe(endpoint: &Endpoint, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let required: Vec<(String, Option<String>)> = endpoint
        .routes
        .current()
        .iter()
        .filter_map(|route| {
            Connection::from_json(&route.config_json)
                .ok()?
                .station
                .basic_auth
        })
        .map(|basic| (basic.username, basic.password.secret))
        .collect();
    if required.is_empty() {
        return text(StatusCode::OK, "AS2 endpoint: POST AS2 messages here.");
    }
    let given = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|v| String::from_utf8(v).ok());
    let accepted = given
        .as_deref()
        .and_then(|v| v.split_once(':'))
        .is_some_and(|(user, password)| {
            required.iter().any(|(username, secret)| {
                let stored = secret
                    .as_deref()
                    .and_then(|name| endpoint.connector.station.secrets.get(name).ok());
                username == user
                    && stored.is_some_and(|stored| {
                        bool::from(subtle::ConstantTimeEq::ct_eq(
                            stored.as_bytes(),
                            password.as_bytes(),
                        ))
                    })
            })
        });
    if accepted {
        return text(StatusCode::OK, "AS2 endpoint: POST AS2 messages here.");
    }
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "AUTH_FAILED: this AS2 endpoint requires the HTTP Basic credentials of a partner connection",
    );
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"AS2\", charset=\"UTF-8\""),
    );
    response
}

/// Why a request body was not read whole.
enum BodyError {
    TooLarge,
    Broken(hyper::Error),
    /// The host could not hold it (a full disk).
    Unstored(anyhow::Error),
}

/// Reads the whole body once, into a blob: in memory when small (its buffer
/// sized from the announced length), in a spill file past
/// [`crate::blobs::SPILL_BYTES`], so that a message of hundreds of megabytes
/// costs the page cache rather than the process.
async fn read_body(
    mut body: Incoming,
    max_body: usize,
    announced: Option<u64>,
    dir: &std::path::Path,
) -> Result<Blob, BodyError> {
    let expected = announced.map_or(0, |length| {
        length.min(max_body.min(crate::blobs::SPILL_BYTES) as u64) as usize
    });
    let mut buffer = Vec::new();
    // Should even that be refused (a small host), the buffer grows as
    // bytes come rather than the process aborting.
    let _ = buffer.try_reserve_exact(expected);
    let mut out = Blob::from_bytes(dir, buffer);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() as u64 > max_body as u64 {
                return Err(BodyError::TooLarge);
            }
            out.append(&data).map_err(BodyError::Unstored)?;
        }
    }
    Ok(out)
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
        .current()
        .iter()
        .find(|route| {
            Some(&route.partner_id) == from.as_ref() && Some(&route.station_id) == to.as_ref()
        })
        .cloned()
    else {
        tracing::warn!(%peer, ?from, ?to, "no connection for this AS2-From / AS2-To");
        linger(body).await;
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "UNKNOWN_PARTNER: no connection here receives from AS2-From {:?} to AS2-To {:?}",
                from.unwrap_or_default(),
                to.unwrap_or_default()
            ),
        );
    };
    // Refused on its announced length, before a byte of the body is read.
    let announced = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > endpoint.max_body as u64) {
        linger(body).await;
        return too_large(endpoint.max_body);
    }
    let dir = endpoint.connector.station.data_dir.join("blobs");
    let body = match read_body(body, endpoint.max_body, announced, &dir).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(endpoint.max_body),
        Err(BodyError::Broken(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            );
        }
        Err(BodyError::Unstored(e)) => {
            tracing::error!("holding a request body: {e:#}");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the message could not be held for processing; send it again later",
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
    let request = InboundRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        headers,
        body: Arc::new(body),
    };
    // Twice at most: when a copy of the same message was recorded first,
    // the second call answers this one as the duplicate it is.
    let mut accepted = None;
    for _ in 0..2 {
        let result = match export(endpoint, &route, &request).await {
            Ok(result) => result,
            Err(response) => return response,
        };
        let (inbox, partner) = (endpoint.inbox.clone(), route.partner_id.clone());
        let stored = tokio::task::spawn_blocking(move || {
            let mut result = result;
            let stored = inbox.accept(&partner, &mut result);
            (result, stored)
        })
        .await;
        match stored {
            Ok((_, Ok(Accepted::Raced))) => {
                tracing::info!(
                    "a copy of this message was recorded first; answering this one as a duplicate"
                );
                continue;
            }
            Ok((result, Ok(Accepted::Stored { owed_mdn, .. }))) => {
                accepted = Some((result, owed_mdn));
                break;
            }
            Ok((_, Err(e))) => {
                tracing::error!("storing the received message failed: {e:#}");
                if e.chain().any(|cause| {
                    matches!(
                        cause.downcast_ref(),
                        Some(crate::state::StateError::Unavailable(_))
                    )
                }) {
                    return retry_later("the state database is unreachable");
                }
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the message could not be stored; send it again later",
                );
            }
            Err(join_error) => {
                tracing::error!("the storing task failed: {join_error}");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the message could not be stored; send it again later",
                );
            }
        }
    }
    let Some((result, owed_mdn)) = accepted else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the message is being received on another connection right now; send it again later",
        );
    };
    if let Some(receipt) = &result.receipt {
        tracing::info!(
            message_id = %receipt.message_id,
            state = state_text(receipt.state),
            "asynchronous MDN received"
        );
    }
    if owed_mdn.is_some() {
        endpoint.mdn_owed.notify_one();
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

/// One `export` call, off the async threads; an error becomes the response.
async fn export(
    endpoint: &Arc<Endpoint>,
    route: &Route,
    request: &InboundRequest,
) -> Result<Exported, Response<Full<Bytes>>> {
    let connector = endpoint.connector.clone();
    let (config, request) = (route.config_json.clone(), request.clone());
    let outcome = tokio::task::spawn_blocking(move || connector.export(&config, &request)).await;
    match outcome {
        Ok(Ok(Ok(result))) => Ok(result),
        Ok(Ok(Err(error))) => {
            tracing::warn!("rejected: {}", describe(&error));
            let status = match error.code {
                // An MDN for a message this connection never sent.
                ErrorCode::UnknownPartner | ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::NotAllowed => StatusCode::FORBIDDEN,
                ErrorCode::AuthFailed => {
                    let mut response = text(StatusCode::UNAUTHORIZED, describe(&error));
                    response.headers_mut().insert(
                        hyper::header::WWW_AUTHENTICATE,
                        hyper::header::HeaderValue::from_static(
                            "Basic realm=\"AS2\", charset=\"UTF-8\"",
                        ),
                    );
                    return Err(response);
                }
                // The message could not be recorded (the state database is
                // down, the disk failed): no MDN, and the partner is told
                // when to send it again.
                ErrorCode::StorageFailed => return Err(retry_later(&describe(&error))),
                ErrorCode::InvalidConfig | ErrorCode::KeystoreFailed | ErrorCode::Internal => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                ErrorCode::CertHasExpired | ErrorCode::CertNotYetValid => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            Err(text(status, describe(&error)))
        }
        Ok(Err(call_error)) => Err(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the message could not be processed: {call_error}"),
        )),
        Err(join_error) => {
            tracing::error!("the export task failed: {join_error}");
            Err(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the message could not be processed",
            ))
        }
    }
}

/// Delivers the asynchronous MDNs owed to partners (RFC 4130 §7.3), from
/// the journal: at once when one is owed, and again with growing pauses
/// after failures, until delivered or [`as2_connector::inbox::MDN_ATTEMPTS`] were
/// made. Each outcome is recorded; after a restart the journal still holds
/// what is owed.
async fn deliver_owed_mdns(endpoint: Arc<Endpoint>) {
    loop {
        let inbox = endpoint.inbox.clone();
        let due = match tokio::task::spawn_blocking(move || inbox.due_mdns()).await {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::error!("reading the owed MDNs: {e:#}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        for mdn in due {
            let (inbox, endpoint) = (endpoint.inbox.clone(), endpoint.clone());
            tokio::spawn(async move {
                tokio::task::spawn_blocking(|| crate::faults::pause_point("mdn:delivering"))
                    .await
                    .ok();
                let sent = match mdn_tls(&endpoint, &mdn) {
                    Ok(tls) => {
                        crate::client::post_with(&mdn.url, &mdn.headers, mdn.body.clone(), tls)
                            .await
                    }
                    Err(e) => Err(e),
                };
                let failure = match sent {
                    Ok(status) if (200..300).contains(&status) => None,
                    Ok(status) => Some(format!("HTTP {status}")),
                    Err(e) => Some(format!("{e:#}")),
                };
                let attempt = mdn.attempts + 1;
                let recorded = tokio::task::spawn_blocking(move || {
                    inbox
                        .mdn_attempted(mdn.id, failure.as_deref())
                        .map(|state| (state, failure))
                })
                .await;
                match recorded {
                    Ok(Ok(("delivered", _))) => {
                        tracing::info!(url = %mdn.url, attempt, "asynchronous MDN delivered");
                    }
                    Ok(Ok(("failed", failure))) => tracing::error!(
                        url = %mdn.url,
                        "asynchronous MDN given up after {attempt} attempts: {}",
                        failure.unwrap_or_default()
                    ),
                    Ok(Ok((_, failure))) => tracing::warn!(
                        url = %mdn.url,
                        attempt,
                        "asynchronous MDN not delivered: {}; trying again in {} s",
                        failure.unwrap_or_default(),
                        as2_connector::inbox::mdn_retry_delay_seconds(attempt)
                    ),
                    Ok(Err(e)) => tracing::error!("recording an MDN delivery: {e:#}"),
                    Err(_) => {}
                }
            });
        }
        // Wake for a new MDN, or look again for retries that came due.
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.mdn_owed.notified()).await;
    }
}

/// The TLS settings for POSTing `mdn`: for an https URL, those of the
/// connection it answers (its CAs, its client certificate).
fn mdn_tls(
    endpoint: &Endpoint,
    mdn: &crate::inbox::OwedMdn,
) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    if !mdn.url.starts_with("https://") {
        return Ok(None);
    }
    let route = endpoint
        .routes
        .current()
        .iter()
        .find(|route| route.partner_id == mdn.partner)
        .cloned();
    let tls = match route {
        Some(route) => crate::tls::ClientTls::from_config_json(&route.config_json),
        None => crate::tls::ClientTls::default(),
    };
    Ok(Some(
        tls.client_config(Some(&endpoint.connector.station.keys))?,
    ))
}

/// Periodically sends again what the served connections still owe their
/// partners: sends a stop interrupted, messages whose MDN is overdue.
async fn resume_sends(endpoint: Arc<Endpoint>) {
    loop {
        let inbox = endpoint.inbox.clone();
        match tokio::task::spawn_blocking(move || inbox.finish_orphans()).await {
            Ok(Ok(finished)) if !finished.is_empty() => tracing::warn!(
                "finished {} deliveries a stopped process had left",
                finished.len()
            ),
            Ok(Err(e)) => tracing::warn!("finishing deliveries a stopped process left: {e:#}"),
            _ => {}
        }
        for route in endpoint.routes.current().iter() {
            let (connector, config) = (endpoint.connector.clone(), route.config_json.clone());
            let outcome = tokio::task::spawn_blocking(move || connector.resume(&config)).await;
            match outcome {
                Ok(Ok(Ok(outcomes))) => {
                    for outcome in outcomes {
                        match outcome {
                            Ok(sent) => tracing::info!(
                                message_id = %sent.message_id,
                                state = state_text(sent.state),
                                attempts = sent.attempts,
                                "resumed a send"
                            ),
                            Err(e) => tracing::warn!("resuming a send: {}", describe(&e)),
                        }
                    }
                }
                Ok(Ok(Err(e))) => tracing::warn!(
                    partner = %route.partner_id,
                    "resuming sends: {}",
                    describe(&e)
                ),
                Ok(Err(e)) => tracing::error!("resuming sends: {e}"),
                Err(_) => {}
            }
        }
        tokio::time::sleep(endpoint.resume_every).await;
    }
}
