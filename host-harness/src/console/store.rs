//! The connections the console manages: one JSON file each in
//! `<data-dir>/connections/`, named by the connection's name made safe
//! (its id). What the browser is sent of one is its write-only view:
//! secret *names* stay, secret values and pasted keys never leave the host.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use as2_connector::config::Connection;
use as2_connector::validate::secret_fields;

use crate::connections::slug;

/// The folder of connection files.
pub struct ConnectionStore {
    dir: PathBuf,
}

/// A saved connection, as the list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The id the console's URLs use: the file's name without `.json`.
    pub id: String,
    /// The connection's name.
    pub name: String,
    /// Our AS2 identifier.
    pub station: String,
    /// The partner's AS2 identifier.
    pub partner: String,
    /// The partner's AS2 URL.
    pub url: String,
}

impl ConnectionStore {
    /// The connections under `data_dir`.
    pub fn open(data_dir: &Path) -> Self {
        ConnectionStore {
            dir: data_dir.join("connections"),
        }
    }

    /// The id a connection named `name` gets.
    pub fn id_for(name: &str) -> String {
        slug(name)
    }

    /// Where the connection `id` is kept.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Whether a connection `id` is saved.
    pub fn exists(&self, id: &str) -> bool {
        valid_id(id) && self.path(id).is_file()
    }

    /// The saved configuration `id`, as the component reads it; `None`
    /// when there is none.
    pub fn load(&self, id: &str) -> anyhow::Result<Option<String>> {
        if !valid_id(id) {
            return Ok(None);
        }
        match std::fs::read_to_string(self.path(id)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading connection {id}")),
        }
    }

    /// Every saved connection's configuration with its id, by id; files
    /// that do not parse are left out (and logged).
    pub fn all(&self) -> anyhow::Result<Vec<(String, String)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context("listing the saved connections"),
        };
        let mut all = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|id| valid_id(id))
            else {
                continue;
            };
            match std::fs::read_to_string(&path) {
                Ok(text) => all.push((id.to_string(), text)),
                Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
            }
        }
        all.sort();
        Ok(all)
    }

    /// What the list shows of every saved connection.
    pub fn summaries(&self) -> anyhow::Result<Vec<Summary>> {
        Ok(self
            .all()?
            .into_iter()
            .filter_map(|(id, text)| {
                let connection = Connection::from_json(&text).ok()?;
                Some(Summary {
                    id,
                    name: connection.name,
                    station: connection.station.as2_id,
                    partner: connection.partner.as2_id,
                    url: connection.partner.url,
                })
            })
            .collect())
    }

    /// Writes the configuration `saved` (secrets already moved into the
    /// stores) as connection `id`, durably, replacing what was there.
    pub fn write(&self, id: &str, saved: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        crate::files::write_durably(&self.path(id), format!("{saved}\n").as_bytes())
    }
}

/// Ids are what [`slug`] makes: lower-case letters, digits and dashes, so
/// an id from a URL never names a file outside the folder.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The configuration `saved` as the browser may see it: every secret as
/// its name only, no pasted key.
pub fn write_only_view(saved: &str) -> anyhow::Result<Value> {
    let mut value: Value =
        serde_json::from_str(saved).context("the saved connection is not JSON")?;
    // The station key is in the key store: the form shows its field as a
    // stored secret, named by its entry, like a password.
    if let Some(station) = value.get_mut("station").and_then(Value::as_object_mut) {
        station.remove("private_key_pem");
        if let Some(name) = station
            .get("private_key")
            .and_then(Value::as_str)
            .filter(|name| !name.trim().is_empty())
        {
            let stored = json!({ "secret": name });
            station.insert("private_key_pem".into(), stored);
        }
    }
    if let Ok(connection) = Connection::from_json(saved) {
        for (pointer, _) in secret_fields(&connection) {
            if let Some(secret) = value.pointer_mut(pointer).and_then(Value::as_object_mut) {
                secret.remove("value");
            }
        }
    }
    // The refresh token may be in a section the connection has switched off.
    if let Some(refresh_token) = value
        .pointer_mut("/auth/refresh/refresh_token")
        .and_then(Value::as_object_mut)
    {
        refresh_token.remove("value");
    }
    Ok(value)
}

/// The form `form` as it is to be saved over `stored` (the configuration
/// saved before, if any): an empty or missing secret value keeps the
/// secret stored at that field, an empty pasted key keeps the key store
/// entry. Typed values stay for [`crate::connections::save`] to move.
pub fn keep_stored_secrets(form: &mut Value, stored: Option<&str>) {
    drop_empty_secret_values(form);
    // A key field left as the view showed it (the entry's name) pastes nothing.
    if let Some(station) = form.get_mut("station").and_then(Value::as_object_mut)
        && station
            .get("private_key_pem")
            .is_some_and(|pem| pem.get("value").is_none_or(|v| !v.is_string()))
    {
        station.remove("private_key_pem");
    }
    let Some(stored) = stored.and_then(|s| Connection::from_json(s).ok()) else {
        return;
    };
    for (pointer, secret) in secret_fields(&stored) {
        let Some(name) = &secret.secret else {
            continue;
        };
        let Some(slot) = form.pointer_mut(pointer) else {
            continue;
        };
        match slot.get("value").and_then(Value::as_str) {
            // A new value replaces the secret under its own name.
            Some(typed) => *slot = serde_json::json!({ "value": typed }),
            None => *slot = serde_json::json!({ "secret": name }),
        }
    }
    let form_key = form
        .pointer("/station/private_key")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pasted = form.pointer("/station/private_key_pem/value").is_some();
    if form_key.trim().is_empty() && !pasted && !stored.station.private_key.is_empty() {
        form["station"]["private_key"] = Value::String(stored.station.private_key.clone());
    }
}

/// Removes `value` members that are empty strings or null from every
/// secret of the form, and a pasted key that is empty.
fn drop_empty_secret_values(node: &mut Value) {
    match node {
        Value::Object(object) => {
            let empty = |v: &Value| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
            if object.get("value").is_some_and(empty) {
                object.remove("value");
            }
            object.values_mut().for_each(drop_empty_secret_values);
            if let Some(station) = object.get_mut("station").and_then(Value::as_object_mut)
                && station
                    .get("private_key_pem")
                    .is_some_and(|pem| pem.as_object().is_some_and(|o| o.is_empty()))
            {
                station.remove("private_key_pem");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty_secret_values),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_urls_never_leave_the_folder() {
        assert!(valid_id("acme-to-globex"));
        for bad in ["", "../x", "a/b", "A", "a.json", &"x".repeat(41)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_view_never_holds_a_secret_value_or_a_key() {
        let saved = serde_json::json!({
            "name": "n",
            "station": { "as2_id": "A", "private_key": "k", "private_key_pem": { "value": "KEY" } },
            "partner": { "as2_id": "B", "url": "http://x", "certificate": "-" },
            "auth": { "type": "basic", "username": "u", "password": { "secret": "n-password", "value": "PW" } }
        })
        .to_string();
        let view = write_only_view(&saved).unwrap();
        let text = view.to_string();
        assert!(!text.contains("KEY") && !text.contains("PW"), "{text}");
        assert_eq!(view["auth"]["password"], json!({ "secret": "n-password" }));
        assert_eq!(view["station"]["private_key_pem"], json!({ "secret": "k" }));
    }

    #[test]
    fn an_empty_secret_keeps_the_stored_one_and_a_typed_one_replaces_it() {
        let stored = serde_json::json!({
            "name": "n",
            "station": { "as2_id": "A", "private_key": "k" },
            "partner": { "as2_id": "B", "url": "http://x", "certificate": "-" },
            "auth": { "type": "basic", "username": "u", "password": { "secret": "n-password" } }
        })
        .to_string();
        let mut form = write_only_view(&stored).unwrap();
        form["auth"]["password"] = serde_json::json!({ "value": "" });
        form["station"]["private_key"] = "".into();
        keep_stored_secrets(&mut form, Some(&stored));
        assert_eq!(
            form["auth"]["password"],
            serde_json::json!({ "secret": "n-password" })
        );
        assert_eq!(form["station"]["private_key"], "k");
        assert!(form["station"].get("private_key_pem").is_none(), "{form}");
        form["auth"]["password"] = serde_json::json!({ "value": "new" });
        keep_stored_secrets(&mut form, Some(&stored));
        assert_eq!(
            form["auth"]["password"],
            serde_json::json!({ "value": "new" })
        );
    }
}
