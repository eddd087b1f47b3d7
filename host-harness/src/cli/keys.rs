//! `keys`: the station's private keys and certificates in its key store.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use as2_harness::keystore::KeyStore;
use as2_harness::secrets::{MASTER_KEY_VARIABLE, MasterKey};

use super::args::KeysCommand;

/// `keys generate | import | list | show`.
pub fn run(data_dir: &Path, command: &KeysCommand) -> anyhow::Result<ExitCode> {
    let master_key = MasterKey::from_env()?;
    if master_key.is_none()
        && matches!(
            command,
            KeysCommand::Generate { .. } | KeysCommand::Import { .. }
        )
    {
        eprintln!(
            "note: {MASTER_KEY_VARIABLE} is not set, so the private key is stored unencrypted (readable by you only); set it to store keys sealed"
        );
    }
    let keys = KeyStore::open(data_dir, master_key)?;
    match command {
        KeysCommand::Generate {
            name,
            common_name,
            days,
        } => generate(&keys, name, common_name.as_deref(), *days)?,
        KeysCommand::Import { name, key, cert } => {
            let key_pem = read(key)?;
            let cert_pem = read(cert)?;
            keys.import(name, &key_pem, &cert_pem)?;
            eprintln!("imported key {name:?}");
        }
        KeysCommand::List => {
            for name in keys.list()? {
                println!("{name}");
            }
        }
        KeysCommand::Show { name } => {
            let path = keys.certificate_path(name);
            print!(
                "{}",
                std::fs::read_to_string(&path).with_context(|| format!(
                    "no certificate for key {name:?} ({})",
                    path.display()
                ))?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A new RSA-2048 key `name` with a self-signed certificate for `common_name`
/// (the key's name when none), valid `days`; prints the certificate.
fn generate(
    keys: &KeyStore,
    name: &str,
    common_name: Option<&str>,
    days: u64,
) -> anyhow::Result<()> {
    let cn = common_name.unwrap_or(name);
    let pem = keys.generate(name, cn, Duration::from_secs(days * 86400))?;
    eprintln!(
        "generated key {name:?} (RSA-2048) with a self-signed certificate for CN={cn}, valid {days} days"
    );
    eprintln!(
        "give your partners this certificate (also in {}):",
        keys.certificate_path(name).display()
    );
    print!("{pem}");
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
