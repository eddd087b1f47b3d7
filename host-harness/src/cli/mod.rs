//! The verbs of `as2-harness`, one module per group. `main` parses the
//! command line ([`args`]) and calls one function here per verb; each
//! returns the process's exit code, or an error that `main` prints.

pub mod args;
pub mod cem;
pub mod config;
pub mod conformance;
pub mod connections;
pub mod console;
pub mod demo;
pub mod keys;
pub mod secrets;
pub mod send;
pub mod serve;
pub mod state;
pub mod status;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use as2_harness::connector::{Connector, describe_problem, has_errors};
use as2_harness::runtime::{Limits, Runtime, Station, api};

use args::Cli;

/// The text of the configuration file at `path`.
fn read_config(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration {}", path.display()))
}

/// The component for the station in `--data-dir`, under the call limits of
/// the global options.
fn connector(cli: &Cli) -> anyhow::Result<Connector> {
    let limits = Limits {
        memory_bytes: cli.memory_limit_mib << 20,
        deadline: Duration::from_secs(cli.deadline_secs),
        ..Limits::default()
    };
    let runtime = Runtime::new(Some(&cli.data_dir.join("cache")), limits)?;
    // Off the async threads: the PostgreSQL client blocks on its own runtime.
    let station = tokio::task::block_in_place(|| {
        Station::open_with_state(
            &cli.data_dir,
            cli.state_url.as_deref(),
            cli.state_password_secret.as_deref(),
        )
    })?;
    Ok(Connector::new(Arc::new(runtime), station))
}

/// Runs `f` off the async threads: component calls block until they end.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

/// Prints every problem of a configuration to stderr; whether any is an
/// error (warnings leave the connection usable).
fn report_problems(problems: &[api::Problem]) -> bool {
    for problem in problems {
        eprintln!("{}", describe_problem(problem));
    }
    has_errors(problems)
}
