//! `console`: the web console on its own; `serve --console` runs it beside
//! the AS2 endpoint (see [`super::serve`]).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use as2_harness::console::{self, Console};

use super::args::{Cli, ConsoleArgs};
use super::connector;

/// `console [--listen]`.
pub async fn console(cli: &Cli, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let listener = bind(&args.listen).await?;
    let console = Console::new(
        connector(cli)?,
        listener.local_addr()?,
        args.max_upload_mib << 20,
    )?;
    announce(&listener)?;
    tokio::select! {
        result = console::serve(listener, Arc::new(console), std::future::pending()) => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The console's listener on `address`.
pub async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address} for the console"))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        eprintln!(
            "warning: the console listens on {local}, beyond this machine; it has no login of its own (docs/console.md)"
        );
    }
    Ok(listener)
}

/// Prints where the console is.
pub fn announce(listener: &TcpListener) -> anyhow::Result<()> {
    eprintln!("console at http://{}/", listener.local_addr()?);
    Ok(())
}
