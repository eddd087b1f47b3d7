//! The host's own outgoing HTTP, for asynchronous MDN delivery.

use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// POSTs `body` to an `http://` or `https://` URL and returns the status
/// code; https trusts the system's root certificates.
pub async fn post(url: &str, headers: &[(String, String)], body: Vec<u8>) -> anyhow::Result<u16> {
    post_with(url, headers, body, None).await
}

/// [`post`] with the TLS client configuration of a connection (its extra
/// CA certificates and client certificate, see
/// [`ClientTls`](crate::tls::ClientTls)) for an https URL; `None`: the
/// system's root certificates only.
pub async fn post_with(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> anyhow::Result<u16> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!("only http:// and https:// URLs are supported: {url}"),
    };
    let host = uri.host().context("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let mut request = Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", format!("{host}:{port}"));
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    if !https {
        return exchange(stream, request).await;
    }
    let config = match tls {
        Some(config) => config,
        None => crate::tls::ClientTls::default().client_config(None)?,
    };
    let server_name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']))
        .with_context(|| format!("{host:?} is not a valid TLS server name"))?
        .to_owned();
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .with_context(|| format!("TLS handshake with {host}:{port}"))?;
    exchange(stream, request).await
}

/// Sends `request` over `stream` (HTTP/1.1) and returns the status code,
/// after reading the response body so the exchange completes.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> anyhow::Result<u16>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}
