//! `secrets`: passwords and tokens for partner authentication, stored
//! encrypted under the master key in `AS2_MASTER_KEY`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use as2_harness::secrets::{MASTER_KEY_VARIABLE, MasterKey, SecretStore, check_name};

use super::args::SecretsCommand;

/// `secrets new-master-key | list | set NAME`.
pub fn run(data_dir: &Path, command: &SecretsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretsCommand::NewMasterKey => new_master_key()?,
        SecretsCommand::List => {
            let store = SecretStore::open(data_dir, None);
            for name in store.names()? {
                println!("{name}");
            }
        }
        SecretsCommand::Set { name } => set(data_dir, name)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn new_master_key() -> anyhow::Result<()> {
    println!("{}", MasterKey::generate()?.to_base64());
    eprintln!(
        "keep it safe: without it the secret store cannot be read; pass it as {MASTER_KEY_VARIABLE}"
    );
    Ok(())
}

/// Stores the secret `name` with the value on standard input, so that it
/// never appears in the shell history or the process list.
fn set(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    let store = SecretStore::open(data_dir, MasterKey::from_env()?);
    let mut value = String::new();
    std::io::stdin().read_line(&mut value)?;
    let value = value.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        bail!(
            "no value on standard input; pipe it in: `printf %s \"$PASSWORD\" | as2-harness secrets set {name}`"
        );
    }
    store.set(name, value)?;
    eprintln!("stored secret {name:?}; refer to it as {{\"secret\": \"{name}\"}}");
    Ok(())
}
