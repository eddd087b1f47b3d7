//! Outgoing HTTP through the standard `wasi:http/outgoing-handler`.

use crate::bytes::{self, Source};
use crate::headers::Headers;

use super::bindings::wasi::http::outgoing_handler;
use super::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use super::bindings::wasi::io::streams::{OutputStream, StreamError};

pub use crate::outbox::Response;

/// Bound on a response body (an MDN is a few KB), against hostile partners.
const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Sends a request and reads the whole response. `timeout_seconds` bounds the
/// connection, the wait for the first byte and each pause between bytes.
pub fn send(
    method: &str,
    url: &str,
    headers: &Headers,
    body: &dyn Source,
    timeout_seconds: u64,
) -> Result<Response, HttpFailure> {
    let request = new_request(method, url, headers, body.len())?;
    let options = RequestOptions::new();
    let timeout = Some(timeout_seconds * NANOS_PER_SECOND);
    // A host may not support a timeout; the request still goes out with its defaults.
    let _ = options.set_connect_timeout(timeout);
    let _ = options.set_first_byte_timeout(timeout);
    let _ = options.set_between_bytes_timeout(timeout);

    let outgoing_body = request
        .body()
        .map_err(|()| "request body unavailable".to_string())?;
    // Hand the request to the host before writing the body: the host streams
    // the body as it is written, so a large body cannot fill a buffer nobody drains.
    let future = outgoing_handler::handle(request, Some(options)).map_err(describe)?;
    // A failed write usually means the exchange itself failed: the response
    // future then says why (refused, reset, answered early), so ask it first.
    let sent = write_body(&outgoing_body, body).and_then(|()| {
        OutgoingBody::finish(outgoing_body, None).map_err(|code| describe(code).message)
    });

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(describe(code)),
        Some(Err(())) | None => {
            return Err(HttpFailure::from(
                "the HTTP response was not available".to_string(),
            ));
        }
    };
    if let Err(e) = sent {
        // An early 4xx/5xx explains itself; a 2xx after a broken body does not count.
        if (200..300).contains(&response.status()) {
            return Err(format!("sending the body failed: {e}").into());
        }
    }
    read_response(response)
}

/// The request for `url`, with the header fields and the body's length.
fn new_request(
    method: &str,
    url: &str,
    headers: &Headers,
    body_len: u64,
) -> Result<OutgoingRequest, HttpFailure> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("{url:?} is not an http:// or https:// URL").into());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .chain(std::iter::once((
            "content-length".to_string(),
            body_len.to_string().into_bytes(),
        )))
        .collect();
    let fields =
        Fields::from_list(&entries).map_err(|e| format!("invalid request header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => Method::Other(other.to_string()),
    };
    request
        .set_method(&method)
        .map_err(|()| "invalid method".to_string())?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme".to_string())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid host {authority:?}"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| format!("invalid path {path:?}"))?;
    Ok(request)
}

/// The response's status, header fields and whole body (at most 16 MiB).
fn read_response(response: IncomingResponse) -> Result<Response, HttpFailure> {
    let status = response.status();
    let headers: Headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| "response body unavailable".to_string())?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| "response body stream unavailable".to_string())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_RESPONSE_BODY {
                        return Err(HttpFailure::from(
                            "the response body is larger than 16 MiB".to_string(),
                        ));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(error) => return Err(stream_error(error).into()),
            }
        }
    }
    let _trailers = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn write_body(outgoing_body: &OutgoingBody, body: &dyn Source) -> Result<(), String> {
    let stream = outgoing_body
        .write()
        .map_err(|()| "request body stream unavailable".to_string())?;
    // The stream's failure, kept apart from a failure to read the body.
    let mut failure = None;
    let read = bytes::for_each_piece(body, |piece| {
        write_all(&stream, piece).map_err(|e| {
            failure = Some(e);
            crate::Error::Storage("the request body stream failed".into())
        })
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    read.map_err(|e| format!("reading the message to send: {e}"))?;
    match stream.blocking_flush() {
        // Every byte was written; the host may close the stream as soon as the
        // Content-Length is reached and the response is under way.
        Ok(()) | Err(StreamError::Closed) => Ok(()),
        Err(error) => Err(stream_error(error)),
    }
}

fn write_all(stream: &OutputStream, mut remaining: &[u8]) -> Result<(), String> {
    while !remaining.is_empty() {
        let permitted = loop {
            let permitted = stream.check_write().map_err(stream_error)?;
            if permitted > 0 {
                break permitted;
            }
            stream.subscribe().block();
        };
        let take = remaining
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&remaining[..take]).map_err(stream_error)?;
        remaining = &remaining[take..];
    }
    Ok(())
}

fn stream_error(error: StreamError) -> String {
    match error {
        StreamError::Closed => "the connection closed early".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// What kind of failure an HTTP exchange met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The partner could not be reached: name, connection, timeout, denied.
    Unreachable,
    /// The TLS handshake failed (certificate not trusted, protocol).
    Tls,
    /// Anything else (the exchange started, then broke).
    Other,
}

/// Why an HTTP exchange failed, for people, with its kind.
#[derive(Debug, Clone)]
pub struct HttpFailure {
    /// The kind.
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
}

impl From<String> for HttpFailure {
    fn from(message: String) -> Self {
        HttpFailure {
            kind: FailureKind::Other,
            message,
        }
    }
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn describe(code: ErrorCode) -> HttpFailure {
    let kind = match &code {
        ErrorCode::DnsError(_)
        | ErrorCode::DnsTimeout
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::HttpRequestDenied => FailureKind::Unreachable,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => FailureKind::Tls,
        _ => FailureKind::Other,
    };
    let message = match code {
        ErrorCode::DnsError(_) => "the partner's host name does not resolve".to_string(),
        ErrorCode::ConnectionRefused => "the partner refused the connection".to_string(),
        ErrorCode::ConnectionTimeout => "connecting to the partner timed out".to_string(),
        ErrorCode::ConnectionReadTimeout => "the partner did not answer in time".to_string(),
        ErrorCode::TlsCertificateError => {
            "the partner's TLS certificate is not trusted (if a private CA issued it, add that CA to partner.tls_ca_certificates)".to_string()
        }
        ErrorCode::TlsAlertReceived(alert) => format!(
            "the partner refused the TLS handshake ({}; when it requires a client certificate, name one in station.tls_client_key)",
            alert.alert_message.as_deref().unwrap_or("alert")
        ),
        ErrorCode::TlsProtocolError => "the TLS handshake with the partner failed".to_string(),
        ErrorCode::HttpRequestDenied => {
            "the host does not allow requests to this address".to_string()
        }
        other => format!("{other:?}"),
    };
    HttpFailure { kind, message }
}
