//! The message state store: an embedded SQLite database in the data folder,
//! serving the component's `state` import.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the component's key-value state.
    "CREATE TABLE state (
        key TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL,
        updated_at INTEGER NOT NULL DEFAULT (unixepoch())
    ) STRICT",
    // 2: the host's own records: received documents on their way into the
    // inbox, and the asynchronous MDNs owed to partners.
    "CREATE TABLE deliveries (
        partner TEXT NOT NULL,
        message_id TEXT NOT NULL,
        staged TEXT NOT NULL,
        file_name TEXT NOT NULL,
        path TEXT,
        bytes INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('staged', 'delivered')),
        received_at INTEGER NOT NULL DEFAULT (unixepoch()),
        PRIMARY KEY (partner, message_id)
    ) STRICT;
    CREATE TABLE outbound_mdns (
        id INTEGER PRIMARY KEY,
        partner TEXT NOT NULL,
        original_message_id TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT (unixepoch()),
        last_error TEXT,
        created_at INTEGER NOT NULL DEFAULT (unixepoch()),
        settled_at INTEGER
    ) STRICT;
    CREATE INDEX outbound_mdns_pending ON outbound_mdns (state, next_attempt_at);",
];

/// Durable key-value state in `<data-dir>/state.sqlite`.
pub struct StateStore {
    db: Mutex<Connection>,
}

impl StateStore {
    /// Opens (creating and migrating) the database.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("state.sqlite");
        let mut db =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // WAL + FULL: a committed write survives a crash or power loss.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        let applied: usize = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if applied > MIGRATIONS.len() {
            anyhow::bail!(
                "{} was written by a newer version (schema {applied}, this one knows {})",
                path.display(),
                MIGRATIONS.len()
            );
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = db.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", index + 1)?;
            tx.commit()?;
        }
        Ok(StateStore { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` in one immediate transaction, committed if it returns `Ok`.
    pub fn transaction<R>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let result = work(&tx)?;
        tx.commit()?;
        Ok(result)
    }

    /// Runs a read (or a single-statement write) on the database.
    pub fn read<R>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        work(&self.db())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.db()
            .query_row(
                "SELECT value FROM state WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
    }

    /// Stores `value` under `key`, committed before returning.
    pub fn set(&self, key: &str, value: &[u8]) -> rusqlite::Result<()> {
        self.set_all(&[(key.to_string(), value.to_vec())])
    }

    /// Stores every `(key, value)` in one transaction: all or none.
    pub fn set_all(&self, entries: &[(String, Vec<u8>)]) -> rusqlite::Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        for (key, value) in entries {
            tx.execute(
                "INSERT INTO state (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = unixepoch()",
                params![key, value],
            )?;
        }
        tx.commit()
    }

    /// Stores `value` under `key` only if the current value is `expected`
    /// (`None`: absent), atomically. Returns whether it stored.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> rusqlite::Result<bool> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM state WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO state (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = unixepoch()",
            params![key, value],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) -> rusqlite::Result<()> {
        self.db()
            .execute("DELETE FROM state WHERE key = ?1", params![key])?;
        Ok(())
    }

    /// Keys starting with `prefix`, sorted.
    pub fn list_keys(&self, prefix: &str) -> rusqlite::Result<Vec<String>> {
        let db = self.db();
        let mut statement =
            db.prepare("SELECT key FROM state WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key")?;
        let keys = statement.query_map(params![prefix], |row| row.get(0))?;
        keys.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening_and_prefix_listing_is_exact() {
        let dir = std::env::temp_dir().join(format!("as2-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = StateStore::open(&dir).unwrap();
            store.set("sent/<a@x>", b"1").unwrap();
            store.set("sent/<b@x>", b"2").unwrap();
            store.set("sentinel", b"3").unwrap();
            store.set("sent/<a@x>", b"4").unwrap();
        }
        let store = StateStore::open(&dir).unwrap();
        assert_eq!(store.get("sent/<a@x>").unwrap(), Some(b"4".to_vec()));
        assert_eq!(
            store.list_keys("sent/").unwrap(),
            vec!["sent/<a@x>", "sent/<b@x>"]
        );
        assert!(
            !store
                .compare_and_swap("sent/<b@x>", Some(b"1"), b"5")
                .unwrap()
        );
        assert!(
            store
                .compare_and_swap("sent/<b@x>", Some(b"2"), b"5")
                .unwrap()
        );
        assert!(
            !store
                .compare_and_swap("sent/<new@x>", Some(b"5"), b"6")
                .unwrap()
        );
        assert!(store.compare_and_swap("sent/<new@x>", None, b"6").unwrap());
        assert!(!store.compare_and_swap("sent/<new@x>", None, b"7").unwrap());
        assert_eq!(store.get("sent/<b@x>").unwrap(), Some(b"5".to_vec()));
        assert_eq!(store.get("sent/<new@x>").unwrap(), Some(b"6".to_vec()));
        store.delete("sent/<a@x>").unwrap();
        assert_eq!(store.get("sent/<a@x>").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
