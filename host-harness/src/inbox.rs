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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sha2::Digest as _;

use crate::connector::Exported;
use crate::faults::pause_point;
use crate::files;
use crate::state::{DeliveryRecord, OwedMdnRecord, StateError};
use crate::station::Station;

pub use crate::state::{MdnDelivery, OwedMdn};

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

/// While an MDN is being POSTed, nobody else picks it up for this long.
const MDN_LEASE_SECONDS: i64 = 120;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The journal's key of each document of one message: its Message-ID, and
/// for the second and later documents of a message that carried several
/// (RFC 6362) `<Message-ID>#2`, `#3`…, so that the journal keeps one row
/// per document under (partner, key) and a lookup by Message-ID finds the
/// first.
fn delivery_ids(documents: &[crate::connector::Delivered]) -> Vec<String> {
    documents
        .iter()
        .enumerate()
        .map(|(index, received)| match index {
            0 => received.message_id.clone(),
            n => format!("{}#{}", received.message_id, n + 1),
        })
        .collect()
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

/// Whether the staging file `name` (see [`staging_name`]) belongs to a
/// process still running on this machine (this one, or an instance sharing
/// the folder), which finishes it itself.
fn staged_by_a_live_process(name: &str) -> bool {
    let Some(pid) = name
        .split('-')
        .nth(1)
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    Path::new(&format!("/proc/{pid}")).exists()
}

fn db_error(e: StateError) -> anyhow::Error {
    anyhow::Error::new(e)
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
        let ids = delivery_ids(&result.documents);
        for (received, id) in result.documents.iter_mut().zip(&ids) {
            let name = staging_name(&received.partner, id);
            if let Err(e) = received.content.persist(&self.staging.join(&name)) {
                self.discard(&staged);
                return Err(e.context("staging a received document"));
            }
            staged.push(name);
        }
        pause_point("receive:staged");
        let commit: Vec<(String, Vec<u8>)> = result
            .commit
            .iter()
            .map(|entry| (entry.key.clone(), entry.value.clone()))
            .collect();
        let deliveries: Vec<DeliveryRecord> = result
            .documents
            .iter()
            .zip(&staged)
            .zip(&ids)
            .map(|((received, staged), id)| {
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
                DeliveryRecord {
                    partner: received.partner.clone(),
                    message_id: id.clone(),
                    staged: staged.clone(),
                    file_name,
                    bytes: received.content.len(),
                    path: path.to_string_lossy().into_owned(),
                }
            })
            .collect();
        let mdn = result.async_mdn.as_ref().map(|mdn| {
            let headers: Vec<(&str, &str)> = mdn
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_str()))
                .collect();
            OwedMdnRecord {
                partner: partner.to_string(),
                original_message_id: mdn.original_message_id.clone(),
                url: mdn.url.clone(),
                headers_json: serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into()),
                body: mdn.body.clone(),
            }
        });
        let recorded = self
            .station
            .state
            .record_received(&commit, &deliveries, mdn.as_ref());
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
        for (received, id) in result.documents.iter().zip(&ids) {
            paths.push(self.finish(&received.partner, id)?);
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
        let row = state.delivery(partner, message_id).map_err(db_error)?;
        let Some(row) = row else {
            anyhow::bail!("no delivery of {message_id} from {partner} is recorded");
        };
        let (staged, file_name, path) = (row.staged, row.file_name, row.path);
        let staged = self.staging.join(staged);
        if row.delivered
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
                    .set_delivery_path(partner, message_id, &candidate.to_string_lossy())
                    .map_err(db_error)?;
                Ok(())
            })?,
        };
        pause_point("receive:linked");
        state
            .mark_delivered(partner, message_id)
            .map_err(db_error)?;
        let _ = std::fs::remove_file(&staged);
        tracing::info!(%message_id, path = %linked.display(), "document stored");
        Ok(linked)
    }

    /// Finishes what a crash interrupted: documents recorded but not yet in
    /// the inbox are moved there; staging files no record refers to (a
    /// crash before the transaction) are removed; owed MDNs a stopped
    /// process had taken up are due again at once. Returns the paths finished.
    /// What another running process on this machine staged, or what an
    /// instance with another folder recorded, is left to it.
    pub fn recover(&self) -> anyhow::Result<Vec<PathBuf>> {
        self.station
            .state
            .release_mdn_leases(unix_now())
            .map_err(db_error)?;
        self.finish_orphans()
    }

    /// Finishes the deliveries that processes which have stopped left
    /// between their record and the inbox, and removes their stray staging
    /// files; safe at any time, as what a running process staged is left
    /// to it. `serve` runs it at start and then every few seconds, so that
    /// an instance sharing the folder finishes what a killed one left.
    pub fn finish_orphans(&self) -> anyhow::Result<Vec<PathBuf>> {
        let state = &self.station.state;
        let unfinished = state.staged_deliveries().map_err(db_error)?;
        let mut finished = Vec::new();
        for (partner, message_id, staged) in &unfinished {
            let linked = state
                .delivery(partner, message_id)
                .map_err(db_error)?
                .and_then(|row| row.path)
                .is_some_and(|path| PathBuf::from(path).exists());
            if !self.staging.join(staged).exists() && !linked {
                // Several instances share the database, each with its own
                // folder: this one is another's to finish.
                tracing::info!(%message_id, "a delivery staged in another folder is left to its instance");
                continue;
            }
            if staged_by_a_live_process(staged) {
                // An instance sharing this folder is finishing it now.
                continue;
            }
            let path = self
                .finish(partner, message_id)
                .with_context(|| format!("finishing the delivery of {message_id}"))?;
            tracing::warn!(%message_id, path = %path.display(), "finished a delivery a stop had interrupted");
            finished.push(path);
        }
        if let Ok(entries) = std::fs::read_dir(&self.staging) {
            let referenced: Vec<String> = state
                .staged_deliveries()
                .map_err(db_error)?
                .into_iter()
                .map(|(_, _, staged)| staged)
                .collect();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(&name) && !staged_by_a_live_process(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(finished)
    }

    /// Where the document of `message_id` from `partner` was stored, once
    /// it is in the inbox.
    pub fn stored_path(&self, partner: &str, message_id: &str) -> Option<PathBuf> {
        let row = self.station.state.delivery(partner, message_id).ok()??;
        row.delivered.then_some(row.path?).map(PathBuf::from)
    }

    /// The asynchronous MDN owed for `message_id` from `partner`, latest first.
    pub fn mdn_delivery(&self, partner: &str, message_id: &str) -> Option<MdnDelivery> {
        self.station
            .state
            .mdn_delivery(partner, message_id)
            .ok()
            .flatten()
    }

    /// Asynchronous MDNs due for an attempt now, each leased to the caller
    /// for a while so that the next look does not pick it up again.
    pub fn due_mdns(&self) -> anyhow::Result<Vec<OwedMdn>> {
        self.station
            .state
            .lease_due_mdns(unix_now(), MDN_LEASE_SECONDS)
            .map_err(db_error)
    }

    /// Records one delivery attempt of an owed MDN: delivered, or failed with
    /// `error` and retried later until
    /// [`MDN_ATTEMPTS`](as2_connector::inbox::MDN_ATTEMPTS). Returns the state now.
    pub fn mdn_attempted(&self, id: i64, error: Option<&str>) -> anyhow::Result<&'static str> {
        self.station
            .state
            .mdn_attempted(id, error, unix_now())
            .map_err(db_error)
    }
}
