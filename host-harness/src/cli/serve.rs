//! `serve`: receive for one or more connections on one URL, over HTTP and
//! optionally HTTPS, until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use as2_harness::connector::{Connector, describe_problem, has_errors};
use as2_harness::console::{self, Console};
use as2_harness::endpoint_info::EndpointInfo;
use as2_harness::runtime::api;
use as2_harness::server::{self, Endpoint, Route};

use super::args::{Cli, ServeArgs};
use super::{blocking, connector, read_config};

/// `serve CONFIG… [--listen] [--tls-listen --tls-key …]`.
pub async fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let connector = connector(cli)?;
    let fixed = routes(&connector, &args.configs).await?;
    let routes = console::saved_routes(&cli.data_dir, &fixed);
    if routes.is_empty() && args.console.is_none() {
        bail!(
            "nothing to receive for: give connection files, or save connections with `as2-harness console` (or `serve --console`)"
        );
    }
    let console_listener = match &args.console {
        Some(address) => Some(super::console::bind(address).await?),
        None => None,
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    let tls = tls_listener(&connector, args).await?;
    let tls_address = match &tls {
        Some((tls_listener, _)) => Some(tls_listener.local_addr()?),
        None => None,
    };
    let mut listening = vec![("http", address)];
    listening.extend(tls_address.map(|address| ("https", address)));
    let info = EndpointInfo::for_listeners(&listening);
    info.save(&cli.data_dir)?;
    eprintln!(
        "partners connect to {} (station.ip_addresses of these connections)",
        info.ip_addresses.join(", ")
    );
    let client_certificates = args.tls_client_ca.is_some();
    announce(&routes, address, tls_address, client_certificates);
    let mut endpoint = Endpoint::new(connector.clone(), routes, args.max_body_mib << 20);
    endpoint.resume_every = Duration::from_secs(args.resume_every_secs.max(1));
    let endpoint = Arc::new(endpoint);
    tokio::spawn(follow_saved_connections(
        endpoint.clone(),
        cli.data_dir.clone(),
        fixed.clone(),
    ));
    tokio::spawn(watch_certificates(endpoint.clone()));
    let console = match console_listener {
        Some(console_listener) => {
            let console = Console::new(
                connector,
                console_listener.local_addr()?,
                args.max_upload_mib << 20,
            )?
            .with_endpoint(endpoint.clone(), fixed);
            super::console::announce(&console_listener)?;
            Some((console_listener, Arc::new(console)))
        }
        None => None,
    };
    run(endpoint, listener, tls, console).await?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the connections saved in `<data-dir>/connections/` as they
/// change there (a `console` in another process saves them), checking
/// every two seconds.
async fn follow_saved_connections(endpoint: Arc<Endpoint>, data_dir: PathBuf, fixed: Vec<Route>) {
    let folder = data_dir.join("connections");
    let mut seen = folder_signature(&folder);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = folder_signature(&folder);
        if now != seen {
            seen = now;
            let routes = console::saved_routes(&data_dir, &fixed);
            tracing::info!(connections = routes.len(), "the saved connections changed");
            endpoint.routes.replace(routes);
        }
    }
}

/// How often a running `serve` looks at its connections' certificates again.
const CERTIFICATE_WATCH: Duration = Duration::from_secs(12 * 3600);

/// Logs a warning for every certificate of a served connection that
/// expires within its warning period (and an error for one that has
/// expired), at start and twice a day: a station runs for months, and a
/// certificate that nobody renews stops it.
async fn watch_certificates(endpoint: Arc<Endpoint>) {
    // The saved connections are read a moment after start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    loop {
        for route in endpoint.routes.current().iter() {
            let (check, config) = (endpoint.connector.clone(), route.config_json.clone());
            let problems = match blocking(move || check.validate_config(&config)).await {
                Ok(Ok(problems)) => problems,
                _ => continue,
            };
            let name = as2_connector::config::Connection::from_json(&route.config_json)
                .map(|c| c.name)
                .unwrap_or_default();
            for problem in problems
                .iter()
                .filter(|p| p.field.contains("certificate") || p.field.contains("private_key"))
            {
                match problem.severity {
                    api::Severity::Warning => {
                        tracing::warn!(connection = %name, field = %problem.field, "{}", problem.message)
                    }
                    api::Severity::Error => {
                        tracing::error!(connection = %name, field = %problem.field, "{}", problem.message)
                    }
                }
            }
        }
        tokio::time::sleep(CERTIFICATE_WATCH).await;
    }
}

/// The names, sizes and times of the files in `folder`: what changes when one is saved.
fn folder_signature(
    folder: &Path,
) -> Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)> {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            Some((entry.file_name(), metadata.len(), metadata.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

/// The route of each configuration file, refusing to start while any has
/// an error.
async fn routes(connector: &Connector, configs: &[PathBuf]) -> anyhow::Result<Vec<Route>> {
    let mut routes = Vec::new();
    for path in configs {
        let route = Route::from_json(read_config(path)?)
            .with_context(|| format!("in {}", path.display()))?;
        let (check, config) = (connector.clone(), route.config_json.clone());
        let problems = blocking(move || check.validate_config(&config)).await??;
        for problem in &problems {
            eprintln!("{}: {}", path.display(), describe_problem(problem));
        }
        if has_errors(&problems) {
            bail!("{}: fix the errors above first", path.display());
        }
        routes.push(route);
    }
    Ok(routes)
}

/// The HTTPS listener and its TLS settings, when `--tls-listen` asks for one.
async fn tls_listener(
    connector: &Connector,
    args: &ServeArgs,
) -> anyhow::Result<Option<(TcpListener, TlsAcceptor)>> {
    let (Some(tls_listen), Some(tls_key)) = (&args.tls_listen, &args.tls_key) else {
        return Ok(None);
    };
    let acceptor = as2_harness::tls::acceptor(
        &connector.station.keys,
        tls_key,
        read_pem(&args.tls_chain)?.as_deref(),
        read_pem(&args.tls_client_ca)?.as_deref(),
    )
    .context("setting up --tls-listen (see `as2-harness keys --help`)")?;
    let tls_listener = TcpListener::bind(tls_listen)
        .await
        .with_context(|| format!("listening on {tls_listen}"))?;
    Ok(Some((tls_listener, acceptor)))
}

fn read_pem(path: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    path.as_deref()
        .map(|path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        })
        .transpose()
}

/// Tells where each connection receives.
fn announce(
    routes: &[Route],
    address: SocketAddr,
    tls_address: Option<SocketAddr>,
    client_certificates: bool,
) {
    for route in routes {
        eprintln!(
            "receiving for {} from {} at http://{address}/",
            route.station_id, route.partner_id
        );
        if let Some(tls_address) = tls_address {
            let client_certificates = if client_certificates {
                " (client certificate required)"
            } else {
                ""
            };
            eprintln!(
                "receiving for {} from {} at https://{tls_address}/{client_certificates}",
                route.station_id, route.partner_id
            );
        }
    }
}

/// The listeners until Ctrl-C; any failing stops the harness.
async fn run(
    endpoint: Arc<Endpoint>,
    listener: TcpListener,
    tls: Option<(TcpListener, TlsAcceptor)>,
    console: Option<(TcpListener, Arc<Console>)>,
) -> anyhow::Result<()> {
    let http = server::serve(listener, endpoint.clone(), std::future::pending());
    let https = async {
        match tls {
            Some((tls_listener, acceptor)) => {
                server::serve_tls(tls_listener, acceptor, endpoint, std::future::pending()).await
            }
            None => std::future::pending().await,
        }
    };
    let console = async {
        match console {
            Some((console_listener, console)) => {
                console::serve(console_listener, console, std::future::pending()).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = http => result?,
        result = https => result.context("the HTTPS listener")?,
        result = console => result.context("the console")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
