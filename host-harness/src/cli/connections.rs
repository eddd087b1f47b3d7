//! `connections save`: a connection as the form gives it, its typed-in
//! secrets moved into the secret store before the file is written.

use std::path::Path;
use std::process::ExitCode;

use as2_harness::endpoint_info::EndpointInfo;
use as2_harness::keystore::KeyStore;
use as2_harness::secrets::{MasterKey, SecretStore};

use super::args::Cli;
use super::{blocking, connector, read_config, report_problems};

/// `connections save FORM --out OUT`.
pub async fn save(cli: &Cli, form: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let master_key = MasterKey::from_env()?;
    let secrets = SecretStore::open(&cli.data_dir, master_key.clone());
    let keys = KeyStore::open(&cli.data_dir, master_key)?;
    let (saved, names) = as2_harness::connections::save(&read_config(form)?, &secrets, &keys)?;
    let saved = with_endpoint_info(&cli.data_dir, saved)?;
    as2_harness::files::write_durably(out, format!("{saved}\n").as_bytes())?;
    for name in &names {
        eprintln!("moved a secret into the store as {name:?}");
    }
    eprintln!("saved {}", out.display());
    let connector = connector(cli)?;
    let problems = blocking(move || connector.validate_config(&saved)).await??;
    if report_problems(&problems) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `saved` with the station's addresses filled in from where `serve` last
/// listened, when it has.
fn with_endpoint_info(data_dir: &Path, saved: String) -> anyhow::Result<String> {
    Ok(match EndpointInfo::load(data_dir) {
        Some(info) => {
            let mut value: serde_json::Value = serde_json::from_str(&saved)?;
            info.fill_config(&mut value);
            serde_json::to_string_pretty(&value)?
        }
        None => saved,
    })
}
