//! The station's durable state: the component's key-value records (the
//! `state` import, with compare-and-swap) and the host's inbound journal
//! (received documents on their way into the inbox, the asynchronous MDNs
//! owed to partners), in one database so that one transaction records a
//! message as received, its document as stored and its MDN as owed.
//!
//! [`StateStore`] is that database; its operations are the same for every
//! engine behind it.

mod postgres;
mod sqlite;

use std::path::Path;

use as2_connector::inbox::{OwedMdnState, after_mdn_attempt};

pub use postgres::{PostgresStore, masked as masked_url};
pub use sqlite::SqliteStore;

/// Why the state store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database cannot be reached now; the same request may succeed later.
    #[error("the state database is unreachable: {0}")]
    Unavailable(String),
    /// The database refused or failed the operation.
    #[error("the state database: {0}")]
    Failed(String),
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        StateError::Failed(e.to_string())
    }
}

/// What [`StateStore`]'s operations return.
pub type StateResult<T> = Result<T, StateError>;

/// A received document as it is recorded, staged.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// The partner's AS2 identifier.
    pub partner: String,
    /// The message it came in.
    pub message_id: String,
    /// Its file's name in `staging/`.
    pub staged: String,
    /// The file name it gets in the inbox.
    pub file_name: String,
    /// Its size.
    pub bytes: u64,
    /// The first path it will be linked under.
    pub path: String,
}

/// A recorded delivery, as recovery and the inbox read it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// Its file's name in `staging/`.
    pub staged: String,
    /// The file name it gets in the inbox.
    pub file_name: String,
    /// The path it is (or is about to be) linked under.
    pub path: Option<String>,
    /// Whether it is in the inbox.
    pub delivered: bool,
}

/// An asynchronous MDN owed to a partner, as it is recorded.
#[derive(Debug, Clone)]
pub struct OwedMdnRecord {
    /// The partner's AS2 identifier.
    pub partner: String,
    /// The Message-ID it answers.
    pub original_message_id: String,
    /// Where it goes.
    pub url: String,
    /// The POST's header fields, as a JSON list of pairs.
    pub headers_json: String,
    /// The MDN.
    pub body: Vec<u8>,
}

/// An asynchronous MDN owed to a partner, leased for an attempt.
#[derive(Debug, Clone)]
pub struct OwedMdn {
    /// Its journal row.
    pub id: i64,
    /// Where it goes.
    pub url: String,
    /// The POST's header fields.
    pub headers: Vec<(String, String)>,
    /// The MDN.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The partner it answers (AS2 identifier).
    pub partner: String,
}

/// A row of the asynchronous MDN journal, for people.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MdnDelivery {
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Where it goes.
    pub url: String,
}

/// Everything a store holds, row for row: what `state migrate` copies.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    /// The component's records: key, value, last update (Unix seconds).
    pub state: Vec<(String, Vec<u8>, i64)>,
    /// The received documents' journal.
    pub deliveries: Vec<DeliveryDump>,
    /// The asynchronous MDNs owed, delivered or given up.
    pub owed_mdns: Vec<OwedMdnDump>,
}

/// A row of the deliveries journal, column for column.
#[derive(Debug, Clone)]
pub struct DeliveryDump {
    pub partner: String,
    pub message_id: String,
    pub staged: String,
    pub file_name: String,
    pub path: Option<String>,
    pub bytes: i64,
    pub state: String,
    pub received_at: i64,
}

/// A row of the owed-MDN journal, column for column.
#[derive(Debug, Clone)]
pub struct OwedMdnDump {
    pub id: i64,
    pub partner: String,
    pub original_message_id: String,
    pub url: String,
    pub headers: String,
    pub body: Vec<u8>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub settled_at: Option<i64>,
}

/// An owed MDN's attempts, next attempt time (when it stays pending) and
/// state after one more attempt at `now` that failed with `error` (or
/// succeeded): the engine's rule, the same for every store.
fn after_attempt(attempts: u32, error: Option<&str>, now: i64) -> (u32, Option<i64>, &'static str) {
    let (attempts, state) = after_mdn_attempt(attempts, error.is_none(), now);
    let next_attempt_at = match state {
        OwedMdnState::Pending { next_attempt_at } => Some(next_attempt_at),
        OwedMdnState::Delivered | OwedMdnState::Failed => None,
    };
    (attempts, next_attempt_at, state.as_str())
}

/// The station's state database.
pub struct StateStore {
    engine: Engine,
}

enum Engine {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// One operation, on whichever engine the store is.
macro_rules! on_engine {
    ($store:expr, $db:ident => $call:expr) => {
        match &$store.engine {
            Engine::Sqlite($db) => Ok($call?),
            Engine::Postgres($db) => $call,
        }
    };
}

impl StateStore {
    /// Opens (creating and migrating) the embedded SQLite database of `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Ok(StateStore {
            engine: Engine::Sqlite(SqliteStore::open(data_dir)?),
        })
    }

    /// Connects to the PostgreSQL database at `url` (its password from the
    /// URL, or `password`), creating and migrating its schema.
    pub fn open_postgres(url: &str, password: Option<&str>) -> anyhow::Result<Self> {
        Ok(StateStore {
            engine: Engine::Postgres(PostgresStore::open(url, password)?),
        })
    }

    /// Where the state is, for people: the SQLite file, or the database URL
    /// with its password masked.
    pub fn location(&self) -> String {
        match &self.engine {
            Engine::Sqlite(db) => db.path().display().to_string(),
            Engine::Postgres(db) => db.shown().to_string(),
        }
    }

    /// Copies everything this store holds into `target`, which must be
    /// empty: moving a station from SQLite to PostgreSQL. The counts of
    /// records, deliveries and owed MDNs copied.
    pub fn copy_into(&self, target: &StateStore) -> anyhow::Result<(usize, usize, usize)> {
        let dump = match &self.engine {
            Engine::Sqlite(db) => db.dump()?,
            Engine::Postgres(_) => {
                anyhow::bail!("copying is from the SQLite file of a data folder")
            }
        };
        match &target.engine {
            Engine::Postgres(db) => db.load(&dump)?,
            Engine::Sqlite(_) => anyhow::bail!("copying is into a PostgreSQL database"),
        }
        Ok((
            dump.state.len(),
            dump.deliveries.len(),
            dump.owed_mdns.len(),
        ))
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> StateResult<Option<Vec<u8>>> {
        on_engine!(self, db => db.get(key))
    }

    /// Stores `value` under `key`, durably before returning.
    pub fn set(&self, key: &str, value: &[u8]) -> StateResult<()> {
        on_engine!(self, db => db.set(key, value))
    }

    /// Stores every `(key, value)` in one transaction: all or none.
    pub fn set_all(&self, entries: &[(String, Vec<u8>)]) -> StateResult<()> {
        on_engine!(self, db => db.set_all(entries))
    }

    /// Stores `value` under `key` only if the current value is `expected`
    /// (`None`: absent), atomically. Returns whether it stored.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StateResult<bool> {
        on_engine!(self, db => db.compare_and_swap(key, expected, value))
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) -> StateResult<()> {
        on_engine!(self, db => db.delete(key))
    }

    /// Keys starting with `prefix`, sorted.
    pub fn list_keys(&self, prefix: &str) -> StateResult<Vec<String>> {
        on_engine!(self, db => db.list_keys(prefix))
    }

    /// Records a received message in one transaction: its `commit`
    /// entries, its documents as staged, the asynchronous MDN owed (its
    /// row's id). `None` when an entry of `commit` exists already (a copy
    /// of the message was recorded first): nothing is written then.
    pub fn record_received(
        &self,
        commit: &[(String, Vec<u8>)],
        deliveries: &[DeliveryRecord],
        mdn: Option<&OwedMdnRecord>,
    ) -> StateResult<Option<Option<i64>>> {
        on_engine!(self, db => db.record_received(commit, deliveries, mdn))
    }

    /// The delivery row of `message_id` from `partner`.
    pub fn delivery(&self, partner: &str, message_id: &str) -> StateResult<Option<DeliveryRow>> {
        on_engine!(self, db => db.delivery(partner, message_id))
    }

    /// Records the path a delivery is about to be linked under.
    pub fn set_delivery_path(
        &self,
        partner: &str,
        message_id: &str,
        path: &str,
    ) -> StateResult<()> {
        on_engine!(self, db => db.set_delivery_path(partner, message_id, path))
    }

    /// Marks a delivery done (it is in the inbox).
    pub fn mark_delivered(&self, partner: &str, message_id: &str) -> StateResult<()> {
        on_engine!(self, db => db.mark_delivered(partner, message_id))
    }

    /// Makes every owed MDN that a stopped process had leased due at `now`.
    pub fn release_mdn_leases(&self, now: i64) -> StateResult<()> {
        on_engine!(self, db => db.release_mdn_leases(now))
    }

    /// The deliveries recorded but not yet in the inbox, oldest first:
    /// `(partner, message_id, staged file)`.
    pub fn staged_deliveries(&self) -> StateResult<Vec<(String, String, String)>> {
        on_engine!(self, db => db.staged_deliveries())
    }

    /// The newest owed MDN for `message_id` from `partner`.
    pub fn mdn_delivery(
        &self,
        partner: &str,
        message_id: &str,
    ) -> StateResult<Option<MdnDelivery>> {
        on_engine!(self, db => db.mdn_delivery(partner, message_id))
    }

    /// Owed MDNs due at `now`, each leased until `now + lease` seconds.
    pub fn lease_due_mdns(&self, now: i64, lease: i64) -> StateResult<Vec<OwedMdn>> {
        on_engine!(self, db => db.lease_due_mdns(now, lease))
    }

    /// Records one delivery attempt of the owed MDN `id` at `now`: delivered
    /// (no `error`), or failed and due again until the attempts run out.
    /// Its state after: `pending`, `delivered` or `failed`.
    pub fn mdn_attempted(
        &self,
        id: i64,
        error: Option<&str>,
        now: i64,
    ) -> StateResult<&'static str> {
        on_engine!(self, db => db.mdn_attempted(id, error, now))
    }
}
