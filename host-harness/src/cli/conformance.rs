//! `conformance`: the interoperability matrix against a partner, or
//! against two stations of our own (`--against-self`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use as2_harness::conformance::{self, Options, Report};
use as2_harness::connector::Connector;
use as2_harness::demo::TwoStations;
use as2_harness::runtime::{Limits, Runtime};
use as2_harness::server::{self, Endpoint, Route};

use super::args::{Cli, ConformanceArgs};
use super::{blocking, connector, read_config};

/// `conformance CONFIG [--against-self] [--json FILE] [--listen ADDR]`.
pub async fn conformance(cli: &Cli, args: &ConformanceArgs) -> anyhow::Result<ExitCode> {
    let options = Options {
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        ..Options::default()
    };
    let report = if args.against_self {
        against_self(options).await?
    } else {
        let path = args
            .config
            .as_ref()
            .context("give the connection file of the partner to test")?;
        let config = read_config(path)?;
        let connector = connector(cli)?;
        // Asynchronous MDNs come to station.url: served here when asked.
        let _receiver = match &args.listen {
            Some(address) => Some(receive_at(&connector, &config, address).await?),
            None => None,
        };
        run(connector, config, options).await?
    };
    print!("{}", conformance::table(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        as2_harness::files::write_durably(path, &json)?;
        eprintln!("wrote the report to {}", path.display());
    }
    Ok(if report.strongest.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the matrix, one line of progress per profile on stderr.
async fn run(connector: Connector, config: String, options: Options) -> anyhow::Result<Report> {
    blocking(move || {
        conformance::run(&connector, &config, &options, &mut |done, total, row| {
            eprintln!(
                "[{done:>2}/{total}] {:<7} {} ({} ms){}",
                row.result,
                row.name,
                row.millis,
                if row.result == "pass" {
                    String::new()
                } else {
                    format!(": {}", row.detail)
                }
            );
        })
    })
    .await?
}

/// An endpoint on `address` for the connection `config`, receiving its
/// asynchronous MDNs until dropped.
async fn receive_at(
    connector: &Connector,
    config: &str,
    address: &str,
) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address} for the asynchronous MDNs"))?;
    eprintln!(
        "receiving asynchronous MDNs on http://{}",
        listener.local_addr()?
    );
    let route = Route::from_json(config.to_string())?;
    let endpoint = Arc::new(Endpoint::new(connector.clone(), vec![route], 64 << 20));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, endpoint, async move {
        let _ = stopped.await;
    }));
    Ok(stop)
}

/// The matrix from one station of ours to another, on loopback, in a
/// temporary folder.
async fn against_self(options: Options) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("as2-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let report = async {
        let runtime = Arc::new(
            blocking({
                let cache = dir.join("cache");
                move || Runtime::new(Some(&cache), Limits::default())
            })
            .await??,
        );
        // GLOBEX takes anything, so that the table shows what the engine
        // reads rather than what a station's policy refuses.
        let anything = serde_json::json!({ "require_signed": false, "require_encrypted": false });
        let stations = TwoStations::start_with(&dir, runtime.clone(), runtime, &anything).await?;
        eprintln!(
            "against ourselves: ACME sends to GLOBEX at {}, which accepts unsigned and unencrypted messages; asynchronous MDNs come back to {}",
            stations.url, stations.acme_url
        );
        let report = run(stations.acme.clone(), stations.acme_config.clone(), options).await;
        stations.stop().await?;
        report
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    report
}
