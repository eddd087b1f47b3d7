//! The records of the message lifecycle in the host's state store: reading
//! them, changing them by compare-and-swap, and the stored copy of a
//! message still being sent. The lifecycle decides what the records say
//! ([`crate::outbox`], [`crate::inbox`]); this module only keeps them.

use crate::headers::Headers;
use crate::inbox::{ReceivedRecord, received_key};
use crate::mic::Mic;
use crate::outbox::{Change, SentRecord, SentState, outbox_key, pending_key, record_key};

use super::bindings::as2::connector::state;
use super::{wit, wit_error};

/// How often an update retries when another call changed the record first.
const MAX_UPDATE_RACES: usize = 16;

fn encode(value: &impl serde::Serialize) -> Result<Vec<u8>, wit::Error> {
    serde_json::to_vec(value)
        .map_err(|e| wit_error(wit::ErrorCode::Internal, format!("encoding a record: {e}")))
}

fn unreadable(message_id: &str, detail: impl std::fmt::Display) -> wit::Error {
    wit_error(
        wit::ErrorCode::StorageFailed,
        format!("the stored record of {message_id} is unreadable: {detail}"),
    )
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], message_id: &str) -> Result<T, wit::Error> {
    serde_json::from_slice(bytes).map_err(|e| unreadable(message_id, e))
}

/// The record of a sent message, if there is one.
pub fn load_sent(message_id: &str) -> Result<Option<SentRecord>, wit::Error> {
    state::get(&record_key(message_id))?
        .map(|bytes| decode(&bytes, message_id))
        .transpose()
}

/// Every sent record, as stored.
pub fn all_sent() -> Result<Vec<SentRecord>, wit::Error> {
    let mut records = Vec::new();
    for key in state::list_keys("sent/")? {
        if let Some(bytes) = state::get(&key)? {
            records.push(decode(&bytes, &key)?);
        }
    }
    Ok(records)
}

/// The Message-IDs still pending for `partner`.
pub fn pending_for(partner: &str) -> Result<Vec<String>, wit::Error> {
    let mut pending = Vec::new();
    for key in state::list_keys(crate::outbox::PENDING_PREFIX)? {
        let Some(message_id) = key.strip_prefix(crate::outbox::PENDING_PREFIX) else {
            continue;
        };
        if state::get(&key)?.as_deref() == Some(partner.as_bytes()) {
            pending.push(message_id.to_string());
        }
    }
    Ok(pending)
}

/// Stores the record of a message about to go out, with its pending mark.
pub fn record_new(record: &SentRecord) -> Result<(), wit::Error> {
    state::set(&pending_key(&record.message_id), record.partner.as_bytes())?;
    state::set(&record_key(&record.message_id), &encode(record)?)
}

/// Applies `change` to the stored record of `message_id` while it is still
/// pending, as one compare-and-swap, and returns the record as it now
/// stands. A send still retrying and the asynchronous MDN that answers it
/// update one record at the same time: neither write is lost, and a settled
/// record is never changed again.
pub fn update_pending(message_id: &str, change: &Change) -> Result<SentRecord, wit::Error> {
    update_record(message_id, |r| r.state == SentState::Pending, change).map(|(r, _)| r)
}

/// [`update_pending`] for records `open` accepts; also says whether this
/// call made the change. Settling a record drops its stored copy and its
/// pending mark.
pub fn update_record(
    message_id: &str,
    open: impl Fn(&SentRecord) -> bool,
    change: &Change,
) -> Result<(SentRecord, bool), wit::Error> {
    let key = record_key(message_id);
    for _ in 0..MAX_UPDATE_RACES {
        let current = state::get(&key)?.ok_or_else(|| {
            wit_error(
                wit::ErrorCode::StorageFailed,
                format!("the record of {message_id} disappeared from the state store"),
            )
        })?;
        let mut record: SentRecord = decode(&current, message_id)?;
        if !open(&record) {
            return Ok((record, false));
        }
        let was_pending = record.state == SentState::Pending;
        change.apply(&mut record);
        if state::compare_and_swap(&key, Some(&current), &encode(&record)?)? {
            if was_pending && record.state != SentState::Pending {
                forget_copy(message_id)?;
            }
            return Ok((record, true));
        }
    }
    Err(wit_error(
        wit::ErrorCode::StorageFailed,
        format!("the record of {message_id} kept changing while it was being updated"),
    ))
}

fn forget_copy(message_id: &str) -> Result<(), wit::Error> {
    let key = outbox_key(message_id);
    state::delete(&key)?;
    wit::Blob::forget(&key)?;
    state::delete(&pending_key(message_id))
}

/// The record of a message received from `partner`, if there is one.
pub fn load_received(
    partner: &str,
    message_id: &str,
) -> Result<Option<ReceivedRecord>, wit::Error> {
    let Some(bytes) = state::get(&received_key(partner, message_id))? else {
        return Ok(None);
    };
    let record: ReceivedRecord = decode(&bytes, message_id)?;
    // `received/A/` also lists partner `A/B`'s records: keep only this partner's.
    Ok((record.partner == partner).then_some(record))
}

/// Every record of a message received from `partner`.
pub fn all_received(partner: &str) -> Result<Vec<ReceivedRecord>, wit::Error> {
    let prefix = received_key(partner, "");
    let mut records = Vec::new();
    for key in state::list_keys(&prefix)? {
        if let Some(record) = load_received(partner, &key[prefix.len()..])? {
            records.push(record);
        }
    }
    Ok(records)
}

/// The state entry that records a received message, for the host to
/// commit with its document.
pub fn received_entry(record: &ReceivedRecord) -> Result<wit::StateEntry, wit::Error> {
    Ok(wit::StateEntry {
        key: received_key(&record.partner, &record.message_id),
        value: encode(record)?,
    })
}

/// Whether a message from `partner` with this Message-ID was received before.
pub fn received_before(partner: &str, message_id: &str) -> Result<bool, crate::Error> {
    state::get(&received_key(partner, message_id))
        .map(|found| found.is_some())
        .map_err(|e| crate::Error::Storage(e.message))
}

/// The state store key of what `partner` last announced in EDIINT-Features.
fn features_key(partner: &str) -> String {
    format!("features/{partner}")
}

/// Keeps what `partner` announces in the EDIINT-Features of a message or
/// MDN it sent (RFC 6017), when it differs from what was kept. Best effort:
/// a store that fails here fails the next call that needs it.
pub fn note_features(partner: &str, headers: &Headers) {
    let Some(features) = headers.get("EDIINT-Features") else {
        return;
    };
    let key = features_key(partner);
    let value = crate::headers::truncate(features, 500).as_bytes().to_vec();
    if state::get(&key).ok().flatten().as_deref() != Some(value.as_slice()) {
        let _ = state::set(&key, &value);
    }
}

/// Whether `partner` announced `feature` the last time it said anything.
pub fn partner_announces(partner: &str, feature: &str) -> Result<bool, wit::Error> {
    Ok(state::get(&features_key(partner))?
        .map(|value| crate::message::announces(&String::from_utf8_lossy(&value), feature))
        .unwrap_or(false))
}

/// A message on its way: what goes over the wire, again and again.
pub struct Outgoing {
    pub message_id: String,
    pub headers: Headers,
    /// The exact bytes, kept by the host under the message's `outbox/` name.
    pub body: wit::Blob,
    pub mic: Mic,
    /// The MIC doctor's variants of `mic`.
    pub mic_variants: Option<Vec<crate::doctor::Fingerprint>>,
}

impl Outgoing {
    /// Makes the message durable before it first goes out: its bytes, then
    /// its header fields as one JSON line.
    pub fn keep(&self) -> Result<(), wit::Error> {
        let key = outbox_key(&self.message_id);
        self.body.keep(&key)?;
        let fields: Vec<(&str, &str)> = self.headers.iter().collect();
        let mut line = serde_json::to_vec(&fields)
            .map_err(|e| wit_error(wit::ErrorCode::Internal, format!("encoding a message: {e}")))?;
        line.push(b'\n');
        state::set(&key, &line)
    }

    /// The stored message of `record`, or `None` when its copy is gone.
    /// Records written before bodies were kept as blobs carry the body
    /// after the header line.
    pub fn load(record: &SentRecord) -> Result<Option<Self>, wit::Error> {
        let key = outbox_key(&record.message_id);
        let Some(bytes) = state::get(&key)? else {
            return Ok(None);
        };
        let unreadable = |detail: String| {
            wit_error(
                wit::ErrorCode::StorageFailed,
                format!(
                    "the stored copy of {} is unreadable: {detail}",
                    record.message_id
                ),
            )
        };
        let split = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| unreadable("no header line".into()))?;
        let fields: Vec<(String, String)> =
            serde_json::from_slice(&bytes[..split]).map_err(|e| unreadable(e.to_string()))?;
        let inline = &bytes[split + 1..];
        let body = match wit::Blob::open(&key)? {
            Some(body) => body,
            None if !inline.is_empty() => {
                let body = wit::Blob::new();
                body.append(inline)?;
                body
            }
            None => return Ok(None),
        };
        Ok(Some(Outgoing {
            message_id: record.message_id.clone(),
            headers: fields.into_iter().collect(),
            body,
            mic: record.mic(),
            mic_variants: record.mic_variants.clone(),
        }))
    }
}

/// Claims this partner's next send slot under its rate limit: the slot is
/// taken in the state store by compare-and-swap, so concurrent sends (other
/// calls, other processes on the same store) keep to the limit together.
/// Returns when the slot begins.
pub fn claim_send_slot(
    partner: &str,
    limit: &crate::config::RateLimit,
    now: crate::outbox::UnixMillis,
) -> Result<crate::outbox::UnixMillis, wit::Error> {
    let key = format!("pace/{partner}");
    let spacing = crate::pace::spacing(limit);
    for _ in 0..MAX_UPDATE_RACES {
        let current = state::get(&key)?;
        let stored = current
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok());
        let (slot, next) = crate::pace::claim_slot(stored, now, spacing);
        if state::compare_and_swap(&key, current.as_deref(), next.to_string().as_bytes())? {
            return Ok(slot);
        }
    }
    Err(wit_error(
        wit::ErrorCode::StorageFailed,
        format!("could not claim a send slot for {partner}: too many concurrent sends"),
    ))
}
