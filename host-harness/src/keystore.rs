//! The file-backed key store: station private keys and their certificates,
//! used by the component only through handles. Key bytes never leave this module
//! except to the files they are stored in.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use as2_connector::crypto::rustcrypto::{SoftwareKey, generate_station_key};
use der::{Decode, DecodePem, Encode};

/// Key store rooted at `<data-dir>/keys`.
pub struct KeyStore {
    dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<SoftwareKey>>>,
    /// Private-key operations performed for the component (signatures).
    pub signatures: AtomicU64,
    /// Private-key operations performed for the component (key decryptions).
    pub decryptions: AtomicU64,
}

/// Why a key could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key of that name.
    #[error(
        "no key named {0:?} in the key store (create one with `as2-harness keys generate {0}`)"
    )]
    NotFound(String),
    /// The name is not a plain file name.
    #[error("invalid key name {0:?}: use letters, digits, '.', '_' and '-'")]
    InvalidName(String),
    /// The files do not parse.
    #[error("key {name:?} is unusable: {reason}")]
    Unusable {
        /// The key's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

fn check_name(name: &str) -> Result<(), KeyError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(KeyError::InvalidName(name.to_string()))
    }
}

impl KeyStore {
    /// Opens (and creates) the key store in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("keys");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(KeyStore {
            dir,
            loaded: Mutex::new(HashMap::new()),
            signatures: AtomicU64::new(0),
            decryptions: AtomicU64::new(0),
        })
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key.pem"))
    }

    /// The certificate file of key `name`.
    pub fn certificate_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.cert.pem"))
    }

    /// Loads key `name` (cached after the first load).
    pub fn get(&self, name: &str) -> Result<Arc<SoftwareKey>, KeyError> {
        check_name(name)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = loaded.get(name) {
            return Ok(key.clone());
        }
        let key_path = self.key_path(name);
        if !key_path.exists() {
            return Err(KeyError::NotFound(name.to_string()));
        }
        let unusable = |reason: String| KeyError::Unusable {
            name: name.to_string(),
            reason,
        };
        let key_pem = fs::read_to_string(&key_path).map_err(|e| unusable(e.to_string()))?;
        let cert_pem = fs::read_to_string(self.certificate_path(name))
            .map_err(|e| unusable(format!("certificate: {e}")))?;
        let key = load_pair(&key_pem, &cert_pem).map_err(|e| unusable(e.to_string()))?;
        let key = Arc::new(key);
        loaded.insert(name.to_string(), key.clone());
        Ok(key)
    }

    /// Generates an RSA-2048 key and a self-signed certificate valid for
    /// `valid_for`, stores them as `name`, and returns the certificate PEM.
    pub fn generate(
        &self,
        name: &str,
        common_name: &str,
        valid_for: Duration,
    ) -> anyhow::Result<String> {
        check_name(name)?;
        if self.key_path(name).exists() {
            bail!(
                "a key named {name:?} already exists; choose another name or delete {}",
                self.key_path(name).display()
            );
        }
        // Back-date a little so a partner's clock running behind still accepts it.
        let not_before = SystemTime::now() - Duration::from_secs(3600);
        let generated = generate_station_key(common_name, not_before, valid_for)?;
        self.store(name, &generated.private_key_pem, &generated.certificate_pem)?;
        Ok(generated.certificate_pem)
    }

    /// Imports a PKCS#8 PEM private key and its PEM certificate as `name`.
    pub fn import(&self, name: &str, key_pem: &str, cert_pem: &str) -> anyhow::Result<()> {
        check_name(name)?;
        load_pair(key_pem, cert_pem)?;
        self.store(name, key_pem, cert_pem)
    }

    fn store(&self, name: &str, key_pem: &str, cert_pem: &str) -> anyhow::Result<()> {
        write_private(&self.key_path(name), key_pem.as_bytes())?;
        crate::files::write_durably(&self.certificate_path(name), cert_pem.as_bytes())?;
        Ok(())
    }

    /// The names of the stored keys.
    pub fn list(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)?
            .filter_map(|entry| {
                entry
                    .ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".key.pem")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

fn load_pair(key_pem: &str, cert_pem: &str) -> anyhow::Result<SoftwareKey> {
    let (label, der) =
        der::pem::decode_vec(key_pem.trim().as_bytes()).context("the private key is not PEM")?;
    if label != "PRIVATE KEY" {
        bail!(
            "the private key is PEM {label:?}; convert it to unencrypted PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`)"
        );
    }
    let certificate = x509_cert::Certificate::from_pem(cert_pem.trim().as_bytes())
        .context("the certificate is not a PEM X.509 certificate")?;
    let cert_der = certificate.to_der()?;
    let key = SoftwareKey::from_pkcs8_der(&der, cert_der.clone())?;
    // The certificate must belong to the key, or partners could not decrypt or verify.
    let cert_spki = x509_cert::Certificate::from_der(&cert_der)?
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;
    if key.public_key_der()? != cert_spki {
        bail!("the certificate does not belong to the private key");
    }
    Ok(key)
}

/// Writes a private file: mode 0600 from creation, fsynced, renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::files::write_durably_with_mode(path, bytes, 0o600)
}

/// Counts a private-key operation.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
