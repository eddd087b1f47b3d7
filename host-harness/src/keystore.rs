//! The file-backed key store: station private keys and their certificates,
//! used by the component only through handles. Key bytes never leave this
//! process: they go only to the files they are stored in and to the
//! libraries here that use them (OpenSSL for the private-key operations,
//! `hostkey.rs`; rustls for TLS). With a master key, each private key
//! is stored sealed (AES-256-GCM, `<name>.key.sealed`) and is useless without
//! it; without one it is an unencrypted PKCS#8 file readable by its owner only.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use as2_connector::crypto::rustcrypto::generate_station_key;

use crate::hostkey::HostKey;
use crate::secrets::MasterKey;
use der::{Decode, DecodePem, Encode};

/// Key store rooted at `<data-dir>/keys`.
pub struct KeyStore {
    dir: PathBuf,
    master_key: Option<MasterKey>,
    loaded: Mutex<HashMap<String, Arc<HostKey>>>,
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
    /// The key is sealed and no master key was given.
    #[error("key {0:?} is encrypted: set AS2_MASTER_KEY to the master key it was stored with")]
    Locked(String),
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
    /// Opens (and creates) the key store in `data_dir`; private keys are
    /// sealed under `master_key` when one is given.
    pub fn open(data_dir: &Path, master_key: Option<MasterKey>) -> anyhow::Result<Self> {
        let dir = data_dir.join("keys");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(KeyStore {
            dir,
            master_key,
            loaded: Mutex::new(HashMap::new()),
            signatures: AtomicU64::new(0),
            decryptions: AtomicU64::new(0),
        })
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key.pem"))
    }

    fn sealed_key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key.sealed"))
    }

    fn exists(&self, name: &str) -> bool {
        self.key_path(name).exists() || self.sealed_key_path(name).exists()
    }

    /// The additional data bound into a sealed key: its name, so that a
    /// sealed file renamed to another key does not open.
    fn aad(name: &str) -> Vec<u8> {
        format!("as2-key:{name}").into_bytes()
    }

    fn read_key_pem(&self, name: &str) -> Result<String, KeyError> {
        let unusable = |reason: String| KeyError::Unusable {
            name: name.to_string(),
            reason,
        };
        let sealed_path = self.sealed_key_path(name);
        if sealed_path.exists() {
            let master_key = self
                .master_key
                .as_ref()
                .ok_or_else(|| KeyError::Locked(name.to_string()))?;
            let sealed = fs::read(&sealed_path).map_err(|e| unusable(e.to_string()))?;
            let plain = master_key.open(&Self::aad(name), &sealed).ok_or_else(|| {
                unusable("it does not decrypt: wrong master key, or the file was altered".into())
            })?;
            return String::from_utf8(plain).map_err(|_| unusable("not PEM text".into()));
        }
        fs::read_to_string(self.key_path(name)).map_err(|e| unusable(e.to_string()))
    }

    /// The certificate file of key `name`.
    pub fn certificate_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.cert.pem"))
    }

    /// Loads key `name` (cached after the first load).
    pub fn get(&self, name: &str) -> Result<Arc<HostKey>, KeyError> {
        check_name(name)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = loaded.get(name) {
            return Ok(key.clone());
        }
        if !self.exists(name) {
            return Err(KeyError::NotFound(name.to_string()));
        }
        let unusable = |reason: String| KeyError::Unusable {
            name: name.to_string(),
            reason,
        };
        let key_pem = self.read_key_pem(name)?;
        let cert_pem = fs::read_to_string(self.certificate_path(name))
            .map_err(|e| unusable(format!("certificate: {e}")))?;
        let key = load_pair(&key_pem, &cert_pem).map_err(|e| unusable(e.to_string()))?;
        let key = Arc::new(key);
        loaded.insert(name.to_string(), key.clone());
        Ok(key)
    }

    /// Key `name` and its certificate as rustls takes them, for the TLS
    /// handshakes the host does itself (the server certificate of
    /// `serve --tls-listen`, a TLS client certificate). The only way key
    /// bytes leave the key store other than to its files: to rustls, in this
    /// process. The component never sees them (it has key handles only).
    pub fn tls_identity(
        &self,
        name: &str,
    ) -> Result<
        (
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        KeyError,
    > {
        // Loads and checks the pair (the certificate belongs to the key).
        let key = self.get(name)?;
        let unusable = |reason: String| KeyError::Unusable {
            name: name.to_string(),
            reason,
        };
        let key_pem = self.read_key_pem(name)?;
        let (_, der) =
            der::pem::decode_vec(key_pem.trim().as_bytes()).map_err(|e| unusable(e.to_string()))?;
        let private_key = rustls::pki_types::PrivatePkcs8KeyDer::from(der);
        Ok((
            vec![rustls::pki_types::CertificateDer::from(
                as2_connector::crypto::PrivateKey::certificate_der(key.as_ref()),
            )],
            private_key.into(),
        ))
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
        if self.exists(name) {
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
        match &self.master_key {
            Some(master_key) => write_private(
                &self.sealed_key_path(name),
                &master_key.seal(&Self::aad(name), key_pem.as_bytes())?,
            )?,
            None => write_private(&self.key_path(name), key_pem.as_bytes())?,
        }
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
                    .to_str()
                    .and_then(|n| n.strip_suffix(".key.pem").or(n.strip_suffix(".key.sealed")))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Whether `key_pem` (unencrypted PKCS#8) and `cert_pem` make a key store
/// entry: both parse and the certificate belongs to the key.
pub fn check_pair(key_pem: &str, cert_pem: &str) -> anyhow::Result<()> {
    load_pair(key_pem, cert_pem).map(drop)
}

fn load_pair(key_pem: &str, cert_pem: &str) -> anyhow::Result<HostKey> {
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
    let key = HostKey::from_pkcs8_der(&der, cert_der.clone())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_master_key_private_keys_are_sealed_and_useless_without_it() {
        let dir = std::env::temp_dir().join(format!("as2-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let master_key = MasterKey::generate().unwrap();
        let keys = KeyStore::open(&dir, Some(master_key.clone())).unwrap();
        keys.generate("acme", "ACME", Duration::from_secs(86400))
            .unwrap();
        let sealed = fs::read(keys.sealed_key_path("acme")).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        assert!(!keys.key_path("acme").exists());
        assert_eq!(keys.list().unwrap(), vec!["acme"]);
        assert!(keys.get("acme").is_ok());

        let locked = KeyStore::open(&dir, None).unwrap();
        assert!(matches!(locked.get("acme"), Err(KeyError::Locked(_))));
        let wrong = KeyStore::open(&dir, Some(MasterKey::generate().unwrap())).unwrap();
        assert!(matches!(wrong.get("acme"), Err(KeyError::Unusable { .. })));
        // A sealed key renamed to another name does not open under it.
        fs::copy(keys.sealed_key_path("acme"), keys.sealed_key_path("other")).unwrap();
        fs::copy(
            keys.certificate_path("acme"),
            keys.certificate_path("other"),
        )
        .unwrap();
        let reopened = KeyStore::open(&dir, Some(master_key)).unwrap();
        assert!(matches!(
            reopened.get("other"),
            Err(KeyError::Unusable { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
