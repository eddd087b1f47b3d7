//! Saving a connection as a flow builder's form produces it: every secret
//! typed into the form (`{"value": …}`) moves into the secret store, a pasted
//! private key into the key store, and the saved configuration keeps only
//! their names. Reading a saved connection never returns a secret; changing
//! one means typing it again.

use anyhow::{Context, bail};

use as2_connector::config::Connection;
use as2_connector::validate::secret_fields;

use crate::keystore::KeyStore;
use crate::secrets::SecretStore;

/// The configuration `form` with its typed-in secrets moved into `secrets`
/// and its pasted private key into `keys`, and the names they were stored under.
pub fn save(
    form: &str,
    secrets: &SecretStore,
    keys: &KeyStore,
) -> anyhow::Result<(String, Vec<String>)> {
    let connection = Connection::from_json(form).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(form).context("the form is not JSON")?;
    let slug = slug(&connection.name);
    let mut stored = Vec::new();
    let station = &connection.station;
    if let Some(pem) = station
        .private_key_pem
        .as_ref()
        .and_then(|k| k.value.as_ref())
    {
        let certificate = station.certificate.as_deref().context(
            "/station/certificate: paste the certificate that goes with the private key",
        )?;
        let name = if station.private_key.trim().is_empty() {
            format!("{slug}-key")
        } else {
            station.private_key.clone()
        };
        keys.import(&name, pem, certificate)
            .with_context(|| format!("/station/private_key_pem: storing it as key {name:?}"))?;
        value["station"]["private_key"] = serde_json::Value::String(name.clone());
        if let Some(object) = value["station"].as_object_mut() {
            object.remove("private_key_pem");
        }
        stored.push(name);
    }
    for (pointer, secret) in secret_fields(&connection) {
        let Some(typed) = &secret.value else {
            continue;
        };
        if secret.secret.is_some() {
            bail!("{pointer} holds both a secret name and a value: keep one");
        }
        let field = pointer.rsplit('/').next().unwrap_or("secret");
        let name = format!("{slug}-{}", field.replace('_', "-"));
        secrets.set(&name, typed)?;
        let slot = value
            .pointer_mut(pointer)
            .with_context(|| format!("{pointer} is missing"))?;
        *slot = serde_json::json!({ "secret": name });
        stored.push(name);
    }
    let saved = serde_json::to_string_pretty(&value)?;
    Ok((saved, stored))
}

/// A name for secret-store entries from a connection's name: lower-case
/// letters, digits and dashes.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').chars().take(40).collect::<String>();
    if slug.is_empty() {
        "connection".into()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MasterKey;

    #[test]
    fn typed_secrets_move_into_the_store_and_only_their_names_stay() {
        let dir = crate::files::empty_test_dir("as2-save");
        let secrets = SecretStore::open(&dir, Some(MasterKey::generate().unwrap()));
        let keys = KeyStore::open(&dir, Some(MasterKey::generate().unwrap())).unwrap();
        let form = serde_json::json!({
            "name": "ACME to GLOBEX",
            "station": { "as2_id": "ACME", "private_key": "acme" },
            "partner": { "as2_id": "GLOBEX", "url": "https://x.example/as2", "certificate": "-" },
            "auth": {
                "type": "token",
                "token": { "value": "tok-123" },
                "refresh": { "relative_uri": "/t", "refresh_token": { "value": "ref-456" } }
            }
        })
        .to_string();
        let (saved, names) = save(&form, &secrets, &keys).unwrap();
        assert_eq!(
            names,
            vec!["acme-to-globex-token", "acme-to-globex-refresh-token"]
        );
        assert!(!saved.contains("tok-123") && !saved.contains("ref-456"));
        let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
        assert_eq!(
            saved["auth"]["token"],
            serde_json::json!({ "secret": "acme-to-globex-token" })
        );
        assert_eq!(secrets.get("acme-to-globex-token").unwrap(), "tok-123");
        assert_eq!(
            secrets.get("acme-to-globex-refresh-token").unwrap(),
            "ref-456"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pasted_private_key_moves_into_the_key_store_only_with_its_own_certificate() {
        let dir = crate::files::empty_test_dir("as2-save-key");
        let secrets = SecretStore::open(&dir, Some(MasterKey::generate().unwrap()));
        let keys = KeyStore::open(&dir, Some(MasterKey::generate().unwrap())).unwrap();
        let year = std::time::Duration::from_secs(365 * 86400);
        let now = std::time::SystemTime::now();
        let ours =
            as2_connector::crypto::rustcrypto::generate_station_key("ACME", now, year).unwrap();
        let other =
            as2_connector::crypto::rustcrypto::generate_station_key("X", now, year).unwrap();
        let form = |cert: &str| {
            serde_json::json!({
                "name": "ACME to GLOBEX",
                "station": {
                    "as2_id": "ACME",
                    "certificate": cert,
                    "private_key_pem": { "value": ours.private_key_pem }
                },
                "partner": { "as2_id": "GLOBEX", "url": "https://x.example/as2", "certificate": "-" }
            })
            .to_string()
        };
        let error = save(&form(&other.certificate_pem), &secrets, &keys).unwrap_err();
        assert!(
            format!("{error:#}").contains("the certificate does not belong to the private key"),
            "{error:#}"
        );
        let (saved, names) = save(&form(&ours.certificate_pem), &secrets, &keys).unwrap();
        assert_eq!(names, vec!["acme-to-globex-key"]);
        assert!(!saved.contains("PRIVATE KEY"));
        let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
        assert_eq!(saved["station"]["private_key"], "acme-to-globex-key");
        assert!(saved["station"].get("private_key_pem").is_none());
        assert!(keys.get("acme-to-globex-key").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
