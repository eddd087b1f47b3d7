//! The secret store: passwords and tokens for partner authentication, in
//! `<data-dir>/secrets.json`, each value encrypted at rest with AES-256-GCM
//! under a master key the user supplies (never stored beside the data).
//! Without the master key the file is useless: values cannot be read, and a
//! wrong key or an altered file is detected by the GCM tag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The environment variable that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_VARIABLE: &str = "AS2_MASTER_KEY";

/// A 256-bit key that encrypts the secret store. Its bytes are never logged.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(MasterKey(key))
    }

    /// Parses the base64 text of 32 bytes.
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .context("the master key is not base64")?;
        let key: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!(
                "the master key must be 32 bytes, this one has {}; make one with `as2-harness secrets new-master-key`",
                bytes.len()
            )
        })?;
        Ok(MasterKey(key))
    }

    /// The key from `AS2_MASTER_KEY`, if that is set.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        match std::env::var(MASTER_KEY_VARIABLE) {
            Ok(text) => Self::from_base64(&text)
                .with_context(|| format!("in {MASTER_KEY_VARIABLE}"))
                .map(Some),
            Err(_) => Ok(None),
        }
    }

    /// AES-256-GCM of `plain` with `aad` bound in: 12-byte nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(&self.0).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|e| anyhow::anyhow!("encrypting: {e}"))?;
        Ok([nonce.as_slice(), &ciphertext].concat())
    }

    /// Reverses [`MasterKey::seal`]; `None` when the key is wrong, the
    /// `aad` differs or the bytes were altered.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(&self.0).ok()?;
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let nonce = Nonce::try_from(nonce).ok()?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }

    /// The base64 text, to hand to the user once.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    /// name → base64(12-byte nonce ‖ ciphertext ‖ 16-byte tag); the name is the AAD.
    secrets: BTreeMap<String, String>,
}

/// Why a secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No master key was given.
    #[error(
        "the secret store is locked: set {MASTER_KEY_VARIABLE} to your master key (make one with `as2-harness secrets new-master-key`)"
    )]
    Locked,
    /// No secret of that name.
    #[error(
        "no secret named {0:?} in the secret store (add it with `as2-harness secrets set {0}`)"
    )]
    NotFound(String),
    /// Decryption failed: wrong master key, or the file was altered.
    #[error("secret {0:?} does not decrypt: wrong master key, or the secret store was altered")]
    Undecryptable(String),
    /// The file could not be read or written.
    #[error("the secret store: {0:#}")]
    Io(anyhow::Error),
}

/// Passwords and tokens, encrypted at rest.
pub struct SecretStore {
    path: PathBuf,
    key: Option<MasterKey>,
    lock: Mutex<()>,
}

impl SecretStore {
    /// The store of `data_dir`, unlocked by `key` when given.
    pub fn open(data_dir: &Path, key: Option<MasterKey>) -> Self {
        SecretStore {
            path: data_dir.join("secrets.json"),
            key,
            lock: Mutex::new(()),
        }
    }

    /// Whether the store has no master key, so it can neither read nor keep a secret.
    pub fn is_locked(&self) -> bool {
        self.key.is_none()
    }

    fn key(&self) -> Result<&MasterKey, SecretError> {
        self.key.as_ref().ok_or(SecretError::Locked)
    }

    fn read(&self) -> Result<File, SecretError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                SecretError::Io(anyhow::anyhow!("{} is not valid: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(SecretError::Io(
                anyhow::Error::new(e).context(format!("reading {}", self.path.display())),
            )),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Result<String, SecretError> {
        let key = self.key()?;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.read()?;
        let sealed = file
            .secrets
            .get(name)
            .ok_or_else(|| SecretError::NotFound(name.to_string()))?;
        let undecryptable = || SecretError::Undecryptable(name.to_string());
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| undecryptable())?;
        let plain = key
            .open(name.as_bytes(), &sealed)
            .ok_or_else(undecryptable)?;
        String::from_utf8(plain).map_err(|_| undecryptable())
    }

    /// Stores `value` under `name`, durably (file fsynced, mode 0600).
    pub fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        let key = self.key()?;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = self.read()?;
        let sealed = key
            .seal(name.as_bytes(), value.as_bytes())
            .map_err(SecretError::Io)?;
        file.secrets.insert(
            name.to_string(),
            base64::engine::general_purpose::STANDARD.encode(sealed),
        );
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| SecretError::Io(anyhow::anyhow!("encoding: {e}")))?;
        crate::files::write_durably_with_mode(&self.path, &bytes, 0o600).map_err(SecretError::Io)
    }

    /// The names stored, sorted (no values).
    pub fn names(&self) -> Result<Vec<String>, SecretError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.read()?.secrets.into_keys().collect())
    }
}

/// Checks a secret name the way key names are checked: a plain identifier.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        bail!("invalid secret name {name:?}: use letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encrypted_at_rest_and_useless_without_the_master_key() {
        let dir = crate::files::empty_test_dir("as2-secrets");
        let key = MasterKey::generate().unwrap();
        let store = SecretStore::open(&dir, Some(key.clone()));
        store
            .set("globex-password", "correct horse battery")
            .unwrap();
        assert_eq!(
            store.get("globex-password").unwrap(),
            "correct horse battery"
        );

        let on_disk = std::fs::read_to_string(dir.join("secrets.json")).unwrap();
        assert!(!on_disk.contains("correct horse"));
        assert!(on_disk.contains("globex-password"));

        let locked = SecretStore::open(&dir, None);
        assert!(matches!(
            locked.get("globex-password"),
            Err(SecretError::Locked)
        ));
        let wrong = SecretStore::open(&dir, Some(MasterKey::generate().unwrap()));
        assert!(matches!(
            wrong.get("globex-password"),
            Err(SecretError::Undecryptable(_))
        ));
        // A value moved to another name does not decrypt: the name is bound in.
        let moved = on_disk.replace("globex-password", "other");
        std::fs::write(dir.join("secrets.json"), moved).unwrap();
        let store = SecretStore::open(&dir, Some(key));
        assert!(matches!(
            store.get("other"),
            Err(SecretError::Undecryptable(_))
        ));
        assert!(matches!(
            store.get("globex-password"),
            Err(SecretError::NotFound(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn master_keys_must_be_32_bytes_of_base64() {
        let key = MasterKey::generate().unwrap();
        assert!(MasterKey::from_base64(&key.to_base64()).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}
