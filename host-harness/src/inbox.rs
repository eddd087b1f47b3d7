//! The inbound side's durable journal: received documents on their way into
//! the inbox folder, and the asynchronous MDNs owed to partners. Both live in
//! the station's database beside the component's state, so that one
//! transaction records a message as received, its document as stored, and
//! its MDN as owed.
//!
//! A document goes in three steps: its bytes are written and synced to
//! `staging/`; one transaction records it (with the component's `commit`
//! entries that make a resend a duplicate); then it is linked into
//! `inbox/<partner>/` under its own file name. The MDN leaves only after the
//! transaction. A crash before it leaves nothing recorded, so the partner's
//! resend is processed in full; a crash after it is finished by
//! [`Inbox::recover`] on the next start, and the resend is a duplicate.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use as2_connector::inbox::{OwedMdnState, after_mdn_attempt};
use rusqlite::{OptionalExtension, params};
use sha2::Digest as _;

use crate::connector::Exported;
use crate::faults::pause_point;
use crate::files;
use crate::station::Station;

/// The station's inbox and its journal.
#[derive(Clone)]
pub struct Inbox {
    station: Arc<Station>,
    /// `<data-dir>/inbox`: one folder per partner.
    pub dir: PathBuf,
    staging: PathBuf,
}

/// What became of an accepted export result.
#[derive(Debug)]
pub enum Accepted {
    /// Recorded: the documents are in the inbox, the MDN (if any) is owed.
    Stored {
        /// Where each document now is.
        paths: Vec<PathBuf>,
        /// The journal row of the asynchronous MDN to deliver.
        owed_mdn: Option<i64>,
    },
    /// A copy of the same message was recorded first; nothing was stored.
    /// Ask the component again: it will answer this one as a duplicate.
    Raced,
}

/// An asynchronous MDN owed to a partner.
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

/// While an MDN is being POSTed, nobody else picks it up for this long.
const MDN_LEASE_SECONDS: i64 = 120;

/// A received document's row, staged; a retried message keeps the first.
const RECORD_DELIVERY: &str =
    "INSERT INTO deliveries (partner, message_id, staged, file_name, bytes, path, state)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'staged')
     ON CONFLICT (partner, message_id) DO NOTHING";

/// An asynchronous MDN owed to a partner, due at once.
const RECORD_OWED_MDN: &str =
    "INSERT INTO outbound_mdns (partner, original_message_id, url, headers, body, state)
     VALUES (?1, ?2, ?3, ?4, ?5, 'pending')";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A staging file name no other write shares: the message's hash plus a
/// serial, so two copies arriving at once never write one file.
fn staging_name(partner: &str, message_id: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let digest = sha2::Sha256::digest(format!("{partner}\n{message_id}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{}-{serial}", std::process::id())
}

fn db_error(e: rusqlite::Error) -> anyhow::Error {
    anyhow::anyhow!("the station database: {e}")
}

impl Inbox {
    /// The inbox of `station`, in its data folder.
    pub fn new(station: Arc<Station>) -> Self {
        let dir = station.data_dir.join("inbox");
        let staging = station.data_dir.join("staging");
        Inbox {
            station,
            dir,
            staging,
        }
    }

    /// Stores what `export` returned for a request from `partner`: stages
    /// the documents, records them with the result's `commit` entries and
    /// the owed asynchronous MDN in one transaction, then moves them into
    /// the inbox. When this returns `Stored`, the MDN may go.
    pub fn accept(&self, partner: &str, result: &mut Exported) -> anyhow::Result<Accepted> {
        let mut staged = Vec::new();
        for received in &mut result.documents {
            let name = staging_name(&received.partner, &received.message_id);
            if let Err(e) = received.content.persist(&self.staging.join(&name)) {
                self.discard(&staged);
                return Err(e.context("staging a received document"));
            }
            staged.push(name);
        }
        pause_point("receive:staged");
        let recorded = self.station.state.transaction(|tx| {
            // Immediate transaction: no other writer between this check and the inserts.
            for entry in &result.commit {
                let exists: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM state WHERE key = ?1")?
                    .query_row(params![entry.key], |row| row.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Ok(None);
                }
            }
            for entry in &result.commit {
                tx.prepare_cached("INSERT INTO state (key, value) VALUES (?1, ?2)")?
                    .execute(params![entry.key, entry.value])?;
            }
            for (received, staged) in result.documents.iter().zip(&staged) {
                let fallback = files::sanitize_file_name(
                    received.message_id.trim_matches(['<', '>']),
                    "document",
                );
                let file_name = match &received.file_name {
                    Some(name) => files::sanitize_file_name(name, &fallback),
                    None => fallback,
                };
                // The first name it will be linked under, recorded here
                // rather than in a commit of its own before the link.
                let path = self.folder_of(&received.partner).join(&file_name);
                tx.prepare_cached(RECORD_DELIVERY)?.execute(params![
                    received.partner,
                    received.message_id,
                    staged,
                    file_name,
                    received.content.len() as i64,
                    path.to_string_lossy()
                ])?;
            }
            let owed = match &result.async_mdn {
                Some(mdn) => {
                    let headers: Vec<(&str, &str)> = mdn
                        .headers
                        .iter()
                        .map(|h| (h.name.as_str(), h.value.as_str()))
                        .collect();
                    tx.prepare_cached(RECORD_OWED_MDN)?.execute(params![
                        partner,
                        mdn.original_message_id,
                        mdn.url,
                        serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into()),
                        mdn.body
                    ])?;
                    Some(tx.last_insert_rowid())
                }
                None => None,
            };
            Ok(Some(owed))
        });
        let owed_mdn = match recorded {
            Ok(Some(owed)) => owed,
            Ok(None) => {
                self.discard(&staged);
                return Ok(Accepted::Raced);
            }
            Err(e) => {
                self.discard(&staged);
                return Err(db_error(e).context("recording the received message"));
            }
        };
        pause_point("receive:committed");
        let mut paths = Vec::new();
        for received in &result.documents {
            paths.push(self.finish(&received.partner, &received.message_id)?);
        }
        Ok(Accepted::Stored { paths, owed_mdn })
    }

    /// The inbox folder of documents from `partner`.
    fn folder_of(&self, partner: &str) -> PathBuf {
        self.dir.join(files::sanitize_file_name(partner, "partner"))
    }

    fn discard(&self, staged: &[String]) {
        for name in staged {
            let _ = std::fs::remove_file(self.staging.join(name));
        }
    }

    /// Moves a recorded document from staging into the inbox, once: the
    /// chosen path is recorded before the link, so a second run after a
    /// crash finds the link made and does not make another.
    fn finish(&self, partner: &str, message_id: &str) -> anyhow::Result<PathBuf> {
        let state = &self.station.state;
        let row: Option<(String, String, Option<String>, String)> = state
            .read(|db| {
                db.prepare_cached(
                    "SELECT staged, file_name, path, state FROM deliveries
                     WHERE partner = ?1 AND message_id = ?2",
                )?
                .query_row(params![partner, message_id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()
            })
            .map_err(db_error)?;
        let Some((staged, file_name, path, row_state)) = row else {
            anyhow::bail!("no delivery of {message_id} from {partner} is recorded");
        };
        let staged = self.staging.join(staged);
        if row_state == "delivered"
            && let Some(path) = path
        {
            return Ok(PathBuf::from(path));
        }
        let recorded = path.map(PathBuf::from);
        let linked = match &recorded {
            Some(path) if files::same_file(&staged, path) => path.clone(),
            Some(path) if !staged.exists() && path.exists() => path.clone(),
            _ => files::link_as_new(&staged, &self.folder_of(partner), &file_name, |candidate| {
                if recorded.as_deref() == Some(candidate) {
                    return Ok(());
                }
                state
                    .transaction(|tx| {
                        tx.prepare_cached(
                            "UPDATE deliveries SET path = ?3
                             WHERE partner = ?1 AND message_id = ?2",
                        )?
                        .execute(params![
                            partner,
                            message_id,
                            candidate.to_string_lossy()
                        ])
                    })
                    .map_err(db_error)?;
                Ok(())
            })?,
        };
        pause_point("receive:linked");
        // Unsynced: if a power loss takes it, recovery finds the document
        // linked (or staging gone and the path there) and says so again.
        state
            .transaction_unsynced(|tx| {
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'delivered'
                     WHERE partner = ?1 AND message_id = ?2",
                )?
                .execute(params![partner, message_id])
            })
            .map_err(db_error)?;
        let _ = std::fs::remove_file(&staged);
        tracing::info!(%message_id, path = %linked.display(), "document stored");
        Ok(linked)
    }

    /// Finishes what a crash interrupted: documents recorded but not yet in
    /// the inbox are moved there; staging files no record refers to (a
    /// crash before the transaction) are removed; owed MDNs a stopped
    /// process had taken up are due again at once. Returns the paths finished.
    /// Call it when no other process serves this data folder.
    pub fn recover(&self) -> anyhow::Result<Vec<PathBuf>> {
        self.station
            .state
            .transaction(|tx| {
                tx.prepare_cached(
                    "UPDATE outbound_mdns SET next_attempt_at = ?1
                     WHERE state = 'pending' AND next_attempt_at > ?1",
                )?
                .execute(params![unix_now()])
            })
            .map_err(db_error)?;
        let unfinished: Vec<(String, String)> = self
            .station
            .state
            .read(|db| {
                let mut statement = db.prepare(
                    "SELECT partner, message_id FROM deliveries WHERE state = 'staged' ORDER BY rowid",
                )?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .map_err(db_error)?;
        let mut finished = Vec::new();
        for (partner, message_id) in unfinished {
            let path = self
                .finish(&partner, &message_id)
                .with_context(|| format!("finishing the delivery of {message_id}"))?;
            tracing::warn!(%message_id, path = %path.display(), "finished a delivery a stop had interrupted");
            finished.push(path);
        }
        if let Ok(entries) = std::fs::read_dir(&self.staging) {
            let referenced: Vec<String> = self
                .station
                .state
                .read(|db| {
                    let mut statement =
                        db.prepare("SELECT staged FROM deliveries WHERE state = 'staged'")?;
                    let rows = statement.query_map([], |row| row.get(0))?;
                    rows.collect()
                })
                .map_err(db_error)?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(finished)
    }

    /// Where the document of `message_id` from `partner` was stored, once
    /// it is in the inbox.
    pub fn stored_path(&self, partner: &str, message_id: &str) -> Option<PathBuf> {
        self.station
            .state
            .read(|db| {
                db.prepare_cached(
                    "SELECT path FROM deliveries
                     WHERE partner = ?1 AND message_id = ?2 AND state = 'delivered'",
                )?
                .query_row(params![partner, message_id], |row| {
                    row.get::<_, Option<String>>(0)
                })
                .optional()
            })
            .ok()
            .flatten()
            .flatten()
            .map(PathBuf::from)
    }

    /// The asynchronous MDN owed for `message_id` from `partner`, latest first.
    pub fn mdn_delivery(&self, partner: &str, message_id: &str) -> Option<MdnDelivery> {
        self.station
            .state
            .read(|db| {
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
            .ok()
            .flatten()
    }

    /// Asynchronous MDNs due for an attempt now, each leased to the caller
    /// for a while so that the next look does not pick it up again.
    pub fn due_mdns(&self) -> anyhow::Result<Vec<OwedMdn>> {
        let now = unix_now();
        self.station
            .state
            .transaction(|tx| {
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
                    tx.prepare_cached(
                        "UPDATE outbound_mdns SET next_attempt_at = ?2 WHERE id = ?1",
                    )?
                    .execute(params![mdn.id, now + MDN_LEASE_SECONDS])?;
                }
                Ok(due)
            })
            .map_err(db_error)
    }

    /// Records one delivery attempt of an owed MDN: delivered, or failed with
    /// `error` and retried later until
    /// [`MDN_ATTEMPTS`](as2_connector::inbox::MDN_ATTEMPTS). Returns the state now.
    pub fn mdn_attempted(&self, id: i64, error: Option<&str>) -> anyhow::Result<&'static str> {
        let now = unix_now();
        self.station
            .state
            .transaction(|tx| {
                let attempts: u32 = tx
                    .prepare_cached("SELECT attempts FROM outbound_mdns WHERE id = ?1")?
                    .query_row(params![id], |row| row.get(0))?;
                let (attempts, state) = after_mdn_attempt(attempts, error.is_none(), now);
                let next_attempt_at = match state {
                    OwedMdnState::Pending { next_attempt_at } => Some(next_attempt_at),
                    OwedMdnState::Delivered | OwedMdnState::Failed => None,
                };
                tx.prepare_cached(
                    "UPDATE outbound_mdns SET attempts = ?2, state = ?3, last_error = ?4,
                         next_attempt_at = COALESCE(?5, next_attempt_at),
                         settled_at = CASE WHEN ?3 = 'pending' THEN NULL ELSE ?6 END
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    attempts,
                    state.as_str(),
                    error,
                    next_attempt_at,
                    now
                ])?;
                Ok(state.as_str())
            })
            .map_err(db_error)
    }
}
