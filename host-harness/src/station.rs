//! A station's host-side services: its key store, state store and secret
//! store, opened together from one data folder. It sits below both the
//! runtime and the host interfaces (`outgoing` takes the TLS client key from
//! it), so that neither has to name the other to reach a station.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::keystore::KeyStore;
use crate::secrets::{MasterKey, SecretStore};
use crate::state::StateStore;

/// A station's host-side services: its key store and its state store.
pub struct Station {
    /// A label for logs (usually the data folder).
    pub label: String,
    /// Where files of this station live.
    pub data_dir: PathBuf,
    /// Private keys.
    pub keys: KeyStore,
    /// Durable message state.
    pub state: StateStore,
    /// Passwords and tokens, encrypted at rest.
    pub secrets: SecretStore,
}

impl Station {
    /// Opens the station whose files live in `data_dir`; its secret store is
    /// unlocked by the master key in `AS2_MASTER_KEY`, when that is set.
    pub fn open(data_dir: &Path) -> anyhow::Result<Arc<Self>> {
        Self::open_with(data_dir, MasterKey::from_env()?)
    }

    /// [`Station::open`] with its state in `state` instead of the data
    /// folder's SQLite file, when given: a PostgreSQL URL, whose password
    /// is the URL's or, when it has none, the secret store's entry
    /// `password_secret`.
    pub fn open_with_state(
        data_dir: &Path,
        state: Option<&str>,
        password_secret: Option<&str>,
    ) -> anyhow::Result<Arc<Self>> {
        let master_key = MasterKey::from_env()?;
        let Some(url) = state else {
            return Self::open_with(data_dir, master_key);
        };
        let secrets = SecretStore::open(data_dir, master_key.clone());
        let password = match password_secret {
            Some(name) => Some(secrets.get(name).map_err(|e| {
                anyhow::anyhow!("the state database's password (secret {name:?}): {e}")
            })?),
            None => None,
        };
        let state = StateStore::open_postgres(url, password.as_deref())?;
        Self::assemble(data_dir, master_key, state)
    }

    /// [`Station::open`] with the secret store's master key given.
    pub fn open_with(data_dir: &Path, master_key: Option<MasterKey>) -> anyhow::Result<Arc<Self>> {
        let state = StateStore::open(data_dir)?;
        Self::assemble(data_dir, master_key, state)
    }

    fn assemble(
        data_dir: &Path,
        master_key: Option<MasterKey>,
        state: StateStore,
    ) -> anyhow::Result<Arc<Self>> {
        let removed = crate::blobs::remove_stray(&data_dir.join("blobs"))?;
        if removed > 0 {
            tracing::info!(removed, "removed spill files of stopped processes");
        }
        Ok(Arc::new(Station {
            label: data_dir.display().to_string(),
            data_dir: data_dir.to_path_buf(),
            keys: KeyStore::open(data_dir, master_key.clone())?,
            state,
            secrets: SecretStore::open(data_dir, master_key),
        }))
    }
}
