//! The web console: the reference "flow-builder host". A page that renders
//! the connection form from the component's own `config-schema` and
//! `config-ui-schema`, validates while a person types, saves (secrets into
//! the stores, never back to the browser), tests the connection, and uses
//! it as a source (documents received), a destination (files sent) and a
//! lookup (a message's status).
//!
//! It is a local tool: it listens on loopback by default, answers only
//! requests addressed to its own host name (no DNS rebinding), and takes a
//! state-changing request only from its own origin with the per-process
//! token the page was served with (no cross-site request forgery). A
//! platform puts its own authentication in front (docs/console.md).

mod api;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::connector::Connector;
use crate::inbox::Inbox;
use crate::server::{Endpoint, Route};

use store::ConnectionStore;

/// The console's settings and what it works on.
pub struct Console {
    connector: Connector,
    store: ConnectionStore,
    inbox: Inbox,
    /// The per-process token every state-changing request carries.
    token: String,
    /// `Host` values the console answers: its own address by IP and as `localhost`.
    hosts: Vec<String>,
    /// Where it listens.
    address: SocketAddr,
    /// Largest file accepted for sending.
    max_upload: usize,
    /// The AS2 endpoint of the same process (`serve --console`): the
    /// connections it receives for follow what the console saves.
    endpoint: Option<(Arc<Endpoint>, Vec<Route>)>,
}

/// The `Host` values a server on `address` answers to.
fn hosts_for(address: SocketAddr) -> Vec<String> {
    let port = address.port();
    let mut hosts = vec![address.to_string()];
    if address.ip().is_loopback() {
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ] {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

impl Console {
    /// A console for `connector`'s station, to be served on `address`.
    pub fn new(
        connector: Connector,
        address: SocketAddr,
        max_upload: usize,
    ) -> anyhow::Result<Self> {
        let mut token = [0u8; 24];
        if connector.station.secrets.is_locked() {
            tracing::warn!(
                "AS2_MASTER_KEY is not set: passwords and tokens typed into the console cannot be saved"
            );
        }
        getrandom::fill(&mut token)
            .map_err(|e| anyhow::anyhow!("no randomness for the console token: {e}"))?;
        Ok(Console {
            store: ConnectionStore::open(&connector.station.data_dir),
            inbox: Inbox::new(connector.station.clone()),
            connector,
            token: token.iter().map(|b| format!("{b:02x}")).collect(),
            hosts: hosts_for(address),
            address,
            max_upload,
            endpoint: None,
        })
    }

    /// Ties the console to the AS2 `endpoint` of the same process: it
    /// serves `fixed` (the configuration files it was started with) and
    /// every connection the console has saved, from now on and after each save.
    pub fn with_endpoint(mut self, endpoint: Arc<Endpoint>, fixed: Vec<Route>) -> Self {
        self.endpoint = Some((endpoint, fixed));
        self.reload_routes();
        self
    }

    /// Whether a request for `host` (its `Host` header) is for the console:
    /// its own address, `localhost`, or, listening on every address, any
    /// IP address with its port. A name other than `localhost` never is, so
    /// a page elsewhere whose name resolves to this machine cannot read it.
    fn answers_host(&self, host: &str) -> bool {
        host_is_ours(&self.hosts, self.address, host)
    }

    /// Makes the endpoint serve the saved connections as they are now.
    fn reload_routes(&self) {
        if let Some((endpoint, fixed)) = &self.endpoint {
            endpoint
                .routes
                .replace(saved_routes(&self.connector.station.data_dir, fixed));
        }
    }
}

/// [`Console::answers_host`] for a console on `address` known as `hosts`.
fn host_is_ours(hosts: &[String], address: SocketAddr, host: &str) -> bool {
    if hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return true;
    }
    address.ip().is_unspecified()
        && host
            .parse::<SocketAddr>()
            .is_ok_and(|asked| asked.port() == address.port())
}

/// `fixed` and, after them, every connection saved in `data_dir`'s
/// `connections/` that parses (the same pair of identifiers once).
pub fn saved_routes(data_dir: &Path, fixed: &[Route]) -> Vec<Route> {
    let mut routes = fixed.to_vec();
    let saved = ConnectionStore::open(data_dir).all().unwrap_or_else(|e| {
        tracing::warn!("reading the saved connections: {e:#}");
        Vec::new()
    });
    for (id, text) in saved {
        match Route::from_json(text) {
            Ok(route)
                if !routes.iter().any(|r| {
                    r.station_id == route.station_id && r.partner_id == route.partner_id
                }) =>
            {
                routes.push(route)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("saved connection {id} is not served: {e:#}"),
        }
    }
    routes
}

/// Serves the console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    console: Arc<Console>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a console connection")?,
            () = &mut shutdown => return Ok(()),
        };
        let console = console.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(console.clone(), request));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "console connection ended: {e}");
            }
        });
    }
}

async fn handle(
    console: Arc<Console>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let response = match api::route(&console, request).await {
        Ok(response) => response,
        Err(error) => error.response(),
    };
    Ok(response)
}

/// An answer the page shows as a typed error: the HTTP status, a stable
/// code, a sentence for people, and any problems found in a form.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    problems: Option<serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: None,
        }
    }

    fn response(self) -> Response<Full<Bytes>> {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(problems) = self.problems {
            error["problems"] = problems;
        }
        json_response(self.status, &serde_json::json!({ "error": error }))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        tracing::warn!("console: {error:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "HOST_ERROR",
            format!("{error:#}"),
        )
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        "application/json".parse().expect("a header value"),
    );
    headers.insert("cache-control", "no-store".parse().expect("a header value"));
    headers.insert(
        "x-content-type-options",
        "nosniff".parse().expect("a header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_answers_its_own_addresses_and_no_other_name() {
        let loopback: SocketAddr = "127.0.0.1:4090".parse().unwrap();
        let hosts = hosts_for(loopback);
        assert_eq!(hosts, ["127.0.0.1:4090", "localhost:4090", "[::1]:4090"]);
        for host in ["127.0.0.1:4090", "LOCALHOST:4090", "[::1]:4090"] {
            assert!(host_is_ours(&hosts, loopback, host), "{host}");
        }
        for host in ["evil.example:4090", "127.0.0.1:4091", "10.0.0.5:4090", ""] {
            assert!(!host_is_ours(&hosts, loopback, host), "{host}");
        }
        let everywhere: SocketAddr = "0.0.0.0:4090".parse().unwrap();
        let hosts = hosts_for(everywhere);
        assert!(host_is_ours(&hosts, everywhere, "10.0.0.5:4090"));
        assert!(!host_is_ours(&hosts, everywhere, "10.0.0.5:80"));
        assert!(!host_is_ours(
            &hosts,
            everywhere,
            "console.evil.example:4090"
        ));
    }
}
