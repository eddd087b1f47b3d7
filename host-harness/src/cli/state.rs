//! `state migrate`: a station's state from its SQLite file into PostgreSQL.

use std::process::ExitCode;

use anyhow::Context;

use as2_harness::secrets::{MasterKey, SecretStore};
use as2_harness::state::{StateStore, masked_url};

use super::args::Cli;

/// `state migrate --to URL`.
pub fn migrate(cli: &Cli, to: &str) -> anyhow::Result<ExitCode> {
    let file = cli.data_dir.join("state.sqlite");
    if !file.is_file() {
        anyhow::bail!("{} does not exist: nothing to migrate", file.display());
    }
    let password = match &cli.state_password_secret {
        Some(name) => Some(
            SecretStore::open(&cli.data_dir, MasterKey::from_env()?)
                .get(name)
                .with_context(|| format!("the state database's password (secret {name:?})"))?,
        ),
        None => None,
    };
    // The PostgreSQL client blocks on a runtime of its own: not on an async thread.
    let (records, deliveries, mdns) = tokio::task::block_in_place(|| {
        let source = StateStore::open(&cli.data_dir)?;
        let target = StateStore::open_postgres(to, password.as_deref())?;
        source.copy_into(&target)
    })?;
    eprintln!(
        "copied {records} records, {deliveries} deliveries and {mdns} owed MDNs from {} into {}",
        file.display(),
        masked_url(to)
    );
    eprintln!(
        "run the station with --state-url (or AS2_STATE_URL) from now on; {} is no longer read",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}
