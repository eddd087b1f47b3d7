//! The embedded state store: SQLite in the data folder (the default).

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    DeliveryDump, DeliveryRecord, DeliveryRow, Dump, MdnDelivery, OwedMdn, OwedMdnDump,
    OwedMdnRecord,
};

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
///
/// Every write returns once it is on disk, and so does every read, once
/// what it saw is: nothing a caller acts on can be undone by a power loss.
/// Writers share the disk flush (a group commit): SQLite commits into its
/// write-ahead log without syncing it (`synchronous=NORMAL`, which keeps
/// the database consistent across a crash but not durable), and the store
/// then syncs the log itself, once for all the commits made while the
/// previous sync ran. With one flush per commit (`synchronous=FULL`), 25
/// concurrent messages queued behind each other's 0.35 ms fsync.
pub struct SqliteStore {
    db: Mutex<Connection>,
    log: WriteAheadLog,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating and migrating) the database.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("state.sqlite");
        let mut db =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // No flush at commit: `WriteAheadLog::wait_durable` flushes. SQLite
        // still syncs the log before each checkpoint and the database after.
        db.pragma_update(None, "synchronous", "NORMAL")?;
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
        let log = WriteAheadLog::new(data_dir.join("state.sqlite-wal"));
        // The log's own name in the folder must survive a power loss too.
        sync_log(&log.path).with_context(|| format!("syncing {}", log.path.display()))?;
        crate::files::sync_dir(data_dir)?;
        Ok(SqliteStore {
            db: Mutex::new(db),
            log,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` in one immediate transaction, committed if it returns
    /// `Ok`; returns once the commit is on disk.
    pub fn transaction<R>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let (result, commit) = self.commit(work)?;
        self.log.wait_durable(commit)?;
        Ok(result)
    }

    /// [`transaction`](Self::transaction) without waiting for the disk:
    /// only for a write that recovery redoes when a power loss takes it
    /// (the next synced write or read makes it durable anyway).
    pub fn transaction_unsynced<R>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        self.commit(work).map(|(result, _)| result)
    }

    /// Commits `work`; its result and the commit's number in the log.
    fn commit<R>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<(R, u64)> {
        let mut db = self.db();
        let changes_before = db.total_changes();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let result = work(&tx)?;
        tx.commit()?;
        // Numbered under the database lock: commit `n` is in the log
        // before any sync that reads `n` starts. One that changed
        // nothing wrote nothing, but may have read what others did.
        let commit = if db.total_changes() != changes_before {
            self.log.committed()
        } else {
            self.log.latest()
        };
        Ok((result, commit))
    }

    /// Runs a read on the database; returns once what it could see is on disk.
    pub fn read<R>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let (result, seen) = {
            let db = self.db();
            (work(&db)?, self.log.latest())
        };
        self.log.wait_durable(seen)?;
        Ok(result)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.read(|db| {
            db.prepare_cached("SELECT value FROM state WHERE key = ?1")?
                .query_row(params![key], |row| row.get(0))
                .optional()
        })
    }

    /// Stores `value` under `key`, durably before returning.
    pub fn set(&self, key: &str, value: &[u8]) -> rusqlite::Result<()> {
        self.set_all(&[(key.to_string(), value.to_vec())])
    }

    /// Stores every `(key, value)` in one transaction: all or none.
    pub fn set_all(&self, entries: &[(String, Vec<u8>)]) -> rusqlite::Result<()> {
        self.transaction(|tx| {
            for (key, value) in entries {
                upsert(tx, key, value)?;
            }
            Ok(())
        })
    }

    /// Stores `value` under `key` only if the current value is `expected`
    /// (`None`: absent), atomically. Returns whether it stored.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> rusqlite::Result<bool> {
        self.transaction(|tx| {
            let current: Option<Vec<u8>> = tx
                .prepare_cached("SELECT value FROM state WHERE key = ?1")?
                .query_row(params![key], |row| row.get(0))
                .optional()?;
            if current.as_deref() != expected {
                return Ok(false);
            }
            upsert(tx, key, value)?;
            Ok(true)
        })
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) -> rusqlite::Result<()> {
        self.transaction(|tx| {
            tx.prepare_cached("DELETE FROM state WHERE key = ?1")?
                .execute(params![key])
        })?;
        Ok(())
    }

    /// Keys starting with `prefix`, sorted.
    pub fn list_keys(&self, prefix: &str) -> rusqlite::Result<Vec<String>> {
        self.read(|db| {
            let mut statement = db.prepare(
                "SELECT key FROM state WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )?;
            let keys = statement.query_map(params![prefix], |row| row.get(0))?;
            keys.collect()
        })
    }

    /// Every row, in one read.
    pub fn dump(&self) -> rusqlite::Result<Dump> {
        self.read(|db| {
            let state = db
                .prepare("SELECT key, value, updated_at FROM state ORDER BY key")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let deliveries = db
                .prepare(
                    "SELECT partner, message_id, staged, file_name, path, bytes, state, received_at
                     FROM deliveries ORDER BY rowid",
                )?
                .query_map([], |row| {
                    Ok(DeliveryDump {
                        partner: row.get(0)?,
                        message_id: row.get(1)?,
                        staged: row.get(2)?,
                        file_name: row.get(3)?,
                        path: row.get(4)?,
                        bytes: row.get(5)?,
                        state: row.get(6)?,
                        received_at: row.get(7)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let owed_mdns = db
                .prepare(
                    "SELECT id, partner, original_message_id, url, headers, body, state, attempts,
                            next_attempt_at, last_error, created_at, settled_at
                     FROM outbound_mdns ORDER BY id",
                )?
                .query_map([], |row| {
                    Ok(OwedMdnDump {
                        id: row.get(0)?,
                        partner: row.get(1)?,
                        original_message_id: row.get(2)?,
                        url: row.get(3)?,
                        headers: row.get(4)?,
                        body: row.get(5)?,
                        state: row.get(6)?,
                        attempts: row.get(7)?,
                        next_attempt_at: row.get(8)?,
                        last_error: row.get(9)?,
                        created_at: row.get(10)?,
                        settled_at: row.get(11)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Dump {
                state,
                deliveries,
                owed_mdns,
            })
        })
    }

    /// Records a received message in one transaction: its `commit`
    /// entries, its documents as staged, the asynchronous MDN owed. `None`
    /// when an entry of `commit` exists already (a copy of the message was
    /// recorded first): nothing is written then.
    pub fn record_received(
        &self,
        commit: &[(String, Vec<u8>)],
        deliveries: &[DeliveryRecord],
        mdn: Option<&OwedMdnRecord>,
    ) -> rusqlite::Result<Option<Option<i64>>> {
        self.transaction(|tx| {
            // Immediate transaction: no other writer between this check and the inserts.
            for (key, _) in commit {
                let exists: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM state WHERE key = ?1")?
                    .query_row(params![key], |row| row.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Ok(None);
                }
            }
            for (key, value) in commit {
                tx.prepare_cached("INSERT INTO state (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, value])?;
            }
            for delivery in deliveries {
                // A retried message keeps the first row.
                tx.prepare_cached(
                    "INSERT INTO deliveries (partner, message_id, staged, file_name, bytes, path, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'staged')
                     ON CONFLICT (partner, message_id) DO NOTHING",
                )?
                .execute(params![
                    delivery.partner,
                    delivery.message_id,
                    delivery.staged,
                    delivery.file_name,
                    i64::try_from(delivery.bytes).unwrap_or(i64::MAX),
                    delivery.path
                ])?;
            }
            let owed = match mdn {
                Some(mdn) => {
                    tx.prepare_cached(
                        "INSERT INTO outbound_mdns (partner, original_message_id, url, headers, body, state)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
                    )?
                    .execute(params![
                        mdn.partner,
                        mdn.original_message_id,
                        mdn.url,
                        mdn.headers_json,
                        mdn.body
                    ])?;
                    Some(tx.last_insert_rowid())
                }
                None => None,
            };
            Ok(Some(owed))
        })
    }

    /// The delivery row of `message_id` from `partner`.
    pub fn delivery(
        &self,
        partner: &str,
        message_id: &str,
    ) -> rusqlite::Result<Option<DeliveryRow>> {
        self.read(|db| {
            db.prepare_cached(
                "SELECT staged, file_name, path, state FROM deliveries
                 WHERE partner = ?1 AND message_id = ?2",
            )?
            .query_row(params![partner, message_id], |row| {
                Ok(DeliveryRow {
                    staged: row.get(0)?,
                    file_name: row.get(1)?,
                    path: row.get(2)?,
                    delivered: row.get::<_, String>(3)? == "delivered",
                })
            })
            .optional()
        })
    }

    /// Records the path a delivery is about to be linked under.
    pub fn set_delivery_path(
        &self,
        partner: &str,
        message_id: &str,
        path: &str,
    ) -> rusqlite::Result<()> {
        self.transaction(|tx| {
            tx.prepare_cached(
                "UPDATE deliveries SET path = ?3 WHERE partner = ?1 AND message_id = ?2",
            )?
            .execute(params![partner, message_id, path])
        })
        .map(drop)
    }

    /// Marks a delivery done. Unsynced: if a power loss takes it, recovery
    /// finds the document linked and says so again.
    pub fn mark_delivered(&self, partner: &str, message_id: &str) -> rusqlite::Result<()> {
        self.transaction_unsynced(|tx| {
            tx.prepare_cached(
                "UPDATE deliveries SET state = 'delivered' WHERE partner = ?1 AND message_id = ?2",
            )?
            .execute(params![partner, message_id])
        })
        .map(drop)
    }

    /// Makes every owed MDN that a stopped process had leased due at `now`.
    pub fn release_mdn_leases(&self, now: i64) -> rusqlite::Result<()> {
        self.transaction(|tx| {
            tx.prepare_cached(
                "UPDATE outbound_mdns SET next_attempt_at = ?1
                 WHERE state = 'pending' AND next_attempt_at > ?1",
            )?
            .execute(params![now])
        })
        .map(drop)
    }

    /// The deliveries recorded but not yet in the inbox, oldest first:
    /// `(partner, message_id, staged file)`.
    pub fn staged_deliveries(&self) -> rusqlite::Result<Vec<(String, String, String)>> {
        self.read(|db| {
            let mut statement = db.prepare(
                "SELECT partner, message_id, staged FROM deliveries WHERE state = 'staged' ORDER BY rowid",
            )?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        })
    }

    /// The newest owed MDN for `message_id` from `partner`.
    pub fn mdn_delivery(
        &self,
        partner: &str,
        message_id: &str,
    ) -> rusqlite::Result<Option<MdnDelivery>> {
        self.read(|db| {
            db.prepare_cached(
                "SELECT state, attempts, last_error, url FROM outbound_mdns
                 WHERE partner = ?1 AND original_message_id = ?2 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![partner, message_id], |row| {
                Ok(MdnDelivery {
                    state: row.get(0)?,
                    attempts: row.get(1)?,
                    last_error: row.get(2)?,
                    url: row.get(3)?,
                })
            })
            .optional()
        })
    }

    /// Owed MDNs due at `now`, each leased until `now + lease` so that the
    /// next look does not pick it up again.
    pub fn lease_due_mdns(&self, now: i64, lease: i64) -> rusqlite::Result<Vec<OwedMdn>> {
        self.transaction(|tx| {
            let mut statement = tx.prepare(
                "SELECT id, url, headers, body, attempts, partner FROM outbound_mdns
                 WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT 64",
            )?;
            let rows = statement.query_map(params![now], |row| {
                let headers: String = row.get(2)?;
                Ok(OwedMdn {
                    id: row.get(0)?,
                    url: row.get(1)?,
                    headers: serde_json::from_str(&headers).unwrap_or_default(),
                    body: row.get(3)?,
                    attempts: row.get(4)?,
                    partner: row.get(5)?,
                })
            })?;
            let due: Vec<OwedMdn> = rows.collect::<rusqlite::Result<_>>()?;
            for mdn in &due {
                tx.prepare_cached("UPDATE outbound_mdns SET next_attempt_at = ?2 WHERE id = ?1")?
                    .execute(params![mdn.id, now + lease])?;
            }
            Ok(due)
        })
    }

    /// Records one delivery attempt of the owed MDN `id` at `now`; its state after.
    pub fn mdn_attempted(
        &self,
        id: i64,
        error: Option<&str>,
        now: i64,
    ) -> rusqlite::Result<&'static str> {
        self.transaction(|tx| {
            let attempts: u32 = tx
                .prepare_cached("SELECT attempts FROM outbound_mdns WHERE id = ?1")?
                .query_row(params![id], |row| row.get(0))?;
            let (attempts, next_attempt_at, state) = super::after_attempt(attempts, error, now);
            tx.prepare_cached(
                "UPDATE outbound_mdns SET attempts = ?2, state = ?3, last_error = ?4,
                     next_attempt_at = COALESCE(?5, next_attempt_at),
                     settled_at = CASE WHEN ?3 = 'pending' THEN NULL ELSE ?6 END
                 WHERE id = ?1",
            )?
            .execute(params![id, attempts, state, error, next_attempt_at, now])?;
            Ok(state)
        })
    }
}

fn upsert(tx: &rusqlite::Transaction<'_>, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO state (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = unixepoch()",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The database's write-ahead log and how far it is known to be on disk.
struct WriteAheadLog {
    path: PathBuf,
    progress: Mutex<LogProgress>,
    synced: Condvar,
}

#[derive(Default)]
struct LogProgress {
    /// Commits made into the log by this process, numbered from 1.
    committed: u64,
    /// Commits known to be on disk.
    durable: u64,
    /// A thread is syncing the log.
    syncing: bool,
    /// Why a sync failed. Once one has, a later sync that succeeds proves
    /// nothing (the kernel may have dropped the pages that failed), so the
    /// store refuses everything not known to be on disk from then on.
    failed: Option<String>,
}

impl WriteAheadLog {
    fn new(path: PathBuf) -> Self {
        WriteAheadLog {
            path,
            progress: Mutex::default(),
            synced: Condvar::new(),
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, LogProgress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a commit just made; its number.
    fn committed(&self) -> u64 {
        let mut progress = self.progress();
        progress.committed += 1;
        progress.committed
    }

    /// The number of the latest commit.
    fn latest(&self) -> u64 {
        self.progress().committed
    }

    /// Returns once commit `commit` (and every one before it) is on disk:
    /// at once if a sync already covered it; else after the sync under way,
    /// or one this thread runs for every commit made so far.
    fn wait_durable(&self, commit: u64) -> rusqlite::Result<()> {
        let mut progress = self.progress();
        loop {
            if progress.durable >= commit {
                return Ok(());
            }
            if let Some(reason) = &progress.failed {
                return Err(sync_failed(reason));
            }
            if progress.syncing {
                progress = self
                    .synced
                    .wait(progress)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            progress.syncing = true;
            let covered = progress.committed;
            drop(progress);
            let outcome = sync_log(&self.path);
            progress = self.progress();
            progress.syncing = false;
            match outcome {
                Ok(()) => progress.durable = progress.durable.max(covered),
                Err(e) => {
                    let reason = format!("syncing {}: {e}", self.path.display());
                    tracing::error!(%reason, "the state store takes no more writes until restarted");
                    progress.failed = Some(reason);
                }
            }
            self.synced.notify_all();
        }
    }
}

/// Flushes the log file to disk. A log that is gone was checkpointed into
/// the database and removed, and SQLite syncs the database at a checkpoint.
fn sync_log(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_failed(reason: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
        Some(reason.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening_and_prefix_listing_is_exact() {
        let dir = crate::files::empty_test_dir("as2-state");
        {
            let store = SqliteStore::open(&dir).unwrap();
            store.set("sent/<a@x>", b"1").unwrap();
            store.set("sent/<b@x>", b"2").unwrap();
            store.set("sentinel", b"3").unwrap();
            store.set("sent/<a@x>", b"4").unwrap();
        }
        let store = SqliteStore::open(&dir).unwrap();
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

    fn fresh_dir(name: &str) -> std::path::PathBuf {
        crate::files::empty_test_dir(&format!("as2-state-{name}"))
    }

    #[test]
    fn concurrent_writers_lose_no_update_and_return_only_once_durable() {
        let dir = fresh_dir("concurrent");
        let store = SqliteStore::open(&dir).unwrap();
        let (threads, increments) = (16, 25);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..increments {
                        // Compare-and-swap until this thread's increment lands.
                        loop {
                            let current = store.get("counter").unwrap();
                            let next = current
                                .as_deref()
                                .map_or(0, |v| u32::from_be_bytes(v.try_into().unwrap()))
                                + 1;
                            if store
                                .compare_and_swap(
                                    "counter",
                                    current.as_deref(),
                                    &next.to_be_bytes(),
                                )
                                .unwrap()
                            {
                                break;
                            }
                        }
                    }
                });
            }
        });
        let progress = store.log.progress();
        assert_eq!(progress.durable, progress.committed);
        drop(progress);
        drop(store);
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(
            store.get("counter").unwrap(),
            Some(((threads * increments) as u32).to_be_bytes().to_vec())
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_log_sync_refuses_every_later_write_and_unsynced_read() {
        let dir = fresh_dir("sync-failure");
        let store = SqliteStore::open(&dir).unwrap();
        store.set("before", b"1").unwrap();
        // SQLite keeps writing to the file it has open; the store's sync
        // opens the log by name and finds a folder there.
        let wal = dir.join("state.sqlite-wal");
        std::fs::rename(&wal, dir.join("moved-wal")).unwrap();
        std::fs::create_dir(&wal).unwrap();
        let error = store.set("after", b"2").unwrap_err();
        assert!(
            matches!(&error, rusqlite::Error::SqliteFailure(e, Some(reason))
                if e.extended_code == rusqlite::ffi::SQLITE_IOERR_FSYNC && reason.contains("state.sqlite-wal")),
            "{error:?}"
        );
        // Not even a sync that works again makes it trusted.
        std::fs::remove_dir(&wal).unwrap();
        std::fs::rename(dir.join("moved-wal"), &wal).unwrap();
        assert!(store.set("later", b"3").is_err());
        assert!(
            store.get("before").is_err(),
            "it may read what never reached the disk"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
