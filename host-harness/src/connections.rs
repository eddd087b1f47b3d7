//! Saving a connection as a flow builder's form produces it: every secret
//! typed into the form (`{"value": …}`) moves into the secret store, and the
//! saved configuration keeps only its name (`{"secret": …}`). Reading a saved
//! connection never returns a secret; changing one means typing it again.

use anyhow::{Context, bail};

use as2_connector::config::Connection;
use as2_connector::validate::secret_fields;

use crate::secrets::SecretStore;

/// The configuration `form` with its typed-in secrets moved into `secrets`,
/// and the names they were stored under.
pub fn save(form: &str, secrets: &SecretStore) -> anyhow::Result<(String, Vec<String>)> {
    let connection = Connection::from_json(form).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(form).context("the form is not JSON")?;
    let slug = slug(&connection.name);
    let mut stored = Vec::new();
    for (pointer, secret) in secret_fields(&connection.auth) {
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
fn slug(name: &str) -> String {
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
        let dir = std::env::temp_dir().join(format!("as2-save-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let secrets = SecretStore::open(&dir, Some(MasterKey::generate().unwrap()));
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
        let (saved, names) = save(&form, &secrets).unwrap();
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
}
