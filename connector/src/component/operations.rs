//! The exported operations: WIT in, engine calls, WIT out.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::{Checked, Connection, MdnDelivery, MdnMode};
use crate::headers::Headers;
use crate::mdn::{Disposition, DispositionType, Mdn, ModifierKind};
use crate::message::{self, DocumentInfo, MdnVerdict};
use crate::mic::Mic;
use crate::smime::Cert;

use super::bindings::as2::connector::log::{self, Level};
use super::bindings::as2::connector::{secrets, state};
use super::bindings::exports::as2::connector::connector as api;
use super::host::{BlobSink, BlobSource, HostCrypto, HostKey};
use super::{Component, to_wit_error, wit, wit_error};

/// How long to wait on the partner before giving up on an HTTP exchange.
const HTTP_TIMEOUT_SECONDS: u64 = 60;

fn checked(config: &str) -> Result<Checked, wit::Error> {
    Connection::check(config, SystemTime::now()).map_err(|e| to_wit_error(&e))
}

fn open_station_key(connection: &Checked) -> Result<HostKey, wit::Error> {
    let key = HostKey::open(&connection.connection.station.private_key).map_err(|mut e| {
        // A missing key is the configuration's fault, not the message's.
        if matches!(e.code, wit::ErrorCode::NotFound) {
            e.code = wit::ErrorCode::InvalidConfig;
        }
        e.field = Some("/station/private_key".into());
        e
    })?;
    let cert = Cert::from_der(&crate::crypto::PrivateKey::certificate_der(&key))
        .map_err(|e| to_wit_error(&e))?;
    cert.check_validity(SystemTime::now(), "station")
        .map_err(|e| to_wit_error(&e))?;
    Ok(key)
}

fn to_headers(headers: &[wit::Header]) -> Headers {
    headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect()
}

fn from_headers(headers: &Headers) -> Vec<wit::Header> {
    headers
        .iter()
        .map(|(name, value)| wit::Header {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

/// What is wrong with the key store entry `name` (at `field`): it does not
/// open, it is not the key of the configured certificate `expected` (PEM),
/// or its certificate has expired or expires soon.
fn key_problems(
    name: &str,
    field: &str,
    expected: Option<&str>,
    now: SystemTime,
) -> Vec<api::Problem> {
    let problem = |code, message| api::Problem {
        severity: api::Severity::Error,
        code,
        field: field.into(),
        message,
    };
    match HostKey::open(name) {
        Ok(key) => match Cert::from_der(&crate::crypto::PrivateKey::certificate_der(&key)) {
            Ok(cert) => {
                let configured = expected.and_then(|pem| Cert::from_pem(pem).ok());
                if let Some(configured) = configured
                    && configured.public_key_der().ok() != cert.public_key_der().ok()
                {
                    return vec![problem(
                        wit::ErrorCode::InvalidConfig,
                        format!(
                            "the private key {name:?} does not match /station/certificate ({}): it belongs to {}",
                            configured.subject(),
                            cert.subject()
                        ),
                    )];
                }
                crate::validate::certificate_problems(&cert, now, "station", field)
                    .iter()
                    .map(wit_problem)
                    .collect()
            }
            Err(e) => vec![problem(
                wit::ErrorCode::KeystoreFailed,
                format!("the key store's certificate for this key: {e}"),
            )],
        },
        Err(e) => vec![problem(wit::ErrorCode::InvalidConfig, e.message)],
    }
}

fn wit_problem(problem: &crate::validate::Problem) -> api::Problem {
    api::Problem {
        severity: match problem.severity {
            crate::validate::Severity::Error => api::Severity::Error,
            crate::validate::Severity::Warning => api::Severity::Warning,
        },
        code: to_wit_error(&problem.error).code,
        field: problem.field.clone(),
        message: problem.message(),
    }
}

fn wit_mic(mic: &Mic) -> wit::Mic {
    wit::Mic {
        digest: mic.digest_base64(),
        algorithm: mic.spelling.clone(),
    }
}

fn wit_disposition(disposition: &Disposition) -> wit::Disposition {
    wit::Disposition {
        disposition_type: match disposition.disposition_type {
            DispositionType::Processed => wit::DispositionType::Processed,
            DispositionType::Failed => wit::DispositionType::Failed,
        },
        modifier: disposition.modifier.as_ref().map(|(kind, description)| {
            wit::DispositionModifier {
                kind: match kind {
                    ModifierKind::Error => wit::ModifierKind::Error,
                    ModifierKind::Warning => wit::ModifierKind::Warning,
                    ModifierKind::Failure => wit::ModifierKind::Failure,
                },
                description: description.clone(),
            }
        }),
    }
}

fn wit_mdn(mdn: &Mdn) -> wit::MdnSummary {
    wit::MdnSummary {
        message_id: mdn.message_id.clone(),
        original_message_id: mdn.original_message_id.clone(),
        disposition: wit_disposition(&mdn.disposition),
        received_mic: mdn.received_mic.as_ref().map(|mic| wit::Mic {
            digest: mic.digest_base64.clone(),
            algorithm: mic.algorithm_text.clone().unwrap_or_default(),
        }),
        signature: if mdn.signed {
            wit::SignatureVerdict::Verified
        } else {
            wit::SignatureVerdict::Unsigned
        },
        warnings: mdn.warnings.clone(),
    }
}

/// What the state store keeps of a sent message (`sent/<Message-ID>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SentRecord {
    message_id: String,
    partner: String,
    mic_digest: Vec<u8>,
    mic_algorithm: String,
    state: SentState,
    attempts: u32,
    mdn: Option<StoredMdn>,
    reason: Option<String>,
    /// Resends, token refreshes: what happened on the way.
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    file_name: Option<String>,
    /// When it was recorded, in seconds since the Unix epoch.
    #[serde(default)]
    created: u64,
    /// Every HTTP attempt, oldest first.
    #[serde(default)]
    history: Vec<AttemptRecord>,
    /// Until when (ms since the Unix epoch) the call that sends it is
    /// expected to act on it: `resume` leaves it alone before then.
    #[serde(default)]
    lease_until_ms: u64,
    /// The partner took it (HTTP 2xx) and the MDN is to come asynchronously.
    #[serde(default)]
    awaiting_async_mdn: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttemptRecord {
    number: u32,
    started: u64,
    outcome: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SentState {
    Pending,
    Acknowledged,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMdn {
    message_id: Option<String>,
    original_message_id: String,
    disposition: String,
    received_mic: Option<String>,
    signed: bool,
    warnings: Vec<String>,
    #[serde(default)]
    mic_matched: bool,
}

fn state_key(message_id: &str) -> String {
    format!("sent/{message_id}")
}

/// The exact bytes of a message still being sent (`outbox/<Message-ID>`),
/// so that a resend after a restart is the same message.
fn outbox_key(message_id: &str) -> String {
    format!("outbox/{message_id}")
}

/// Index of the messages not yet settled (`pending/<Message-ID>`, value:
/// the partner), so `resume` need not read every record.
fn pending_key(message_id: &str) -> String {
    format!("pending/{message_id}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_seconds() -> u64 {
    now_ms() / 1000
}

/// Slack added to every lease, for clocks and scheduling.
const LEASE_SLACK_MS: u64 = 5_000;

/// A message on its way: what goes over the wire, again and again.
struct Outgoing {
    message_id: String,
    headers: Headers,
    /// The exact bytes, kept by the host under the message's `outbox/` name.
    body: wit::Blob,
    mic: Mic,
}

impl Outgoing {
    /// `outbox/` record: the header fields as one JSON line. The body is the
    /// blob kept under the same name.
    fn encode_headers(&self) -> Result<Vec<u8>, wit::Error> {
        let fields: Vec<(&str, &str)> = self.headers.iter().collect();
        let mut bytes = serde_json::to_vec(&fields)
            .map_err(|e| wit_error(wit::ErrorCode::Internal, format!("encoding a message: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Makes the message durable before it first goes out: its bytes, then
    /// its header fields.
    fn keep(&self) -> Result<(), wit::Error> {
        let key = outbox_key(&self.message_id);
        self.body.keep(&key)?;
        state::set(&key, &self.encode_headers()?)
    }

    /// The stored message of `record`, or `None` when its copy is gone.
    /// Records written before bodies were kept as blobs carry the body
    /// after the header line.
    fn load(record: &SentRecord) -> Result<Option<Self>, wit::Error> {
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
            mic: record_mic(record),
        }))
    }
}

fn encode(record: &SentRecord) -> Result<Vec<u8>, wit::Error> {
    serde_json::to_vec(record)
        .map_err(|e| wit_error(wit::ErrorCode::Internal, format!("encoding a record: {e}")))
}

fn decode(bytes: &[u8], message_id: &str) -> Result<SentRecord, wit::Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        wit_error(
            wit::ErrorCode::StorageFailed,
            format!("the stored record of {message_id} is unreadable: {e}"),
        )
    })
}

/// How often an update retries when another call changed the record first.
const MAX_UPDATE_RACES: usize = 16;

/// Applies `change` to the stored record of `message_id` while it is still
/// pending, as one compare-and-swap, and returns the record as it now
/// stands. A send still retrying and the asynchronous MDN that answers it
/// update one record at the same time: neither write is lost, and a settled
/// record (acknowledged or failed) is never changed again.
fn update_pending(
    message_id: &str,
    change: impl FnMut(&mut SentRecord),
) -> Result<SentRecord, wit::Error> {
    update_record(message_id, |r| r.state == SentState::Pending, change).map(|(r, _)| r)
}

/// [`update_pending`] for records `open` accepts; also says whether this
/// call made the change. Settling a record drops its stored copy and its
/// pending mark.
fn update_record(
    message_id: &str,
    open: impl Fn(&SentRecord) -> bool,
    mut change: impl FnMut(&mut SentRecord),
) -> Result<(SentRecord, bool), wit::Error> {
    let key = state_key(message_id);
    for _ in 0..MAX_UPDATE_RACES {
        let current = state::get(&key)?.ok_or_else(|| {
            wit_error(
                wit::ErrorCode::StorageFailed,
                format!("the record of {message_id} disappeared from the state store"),
            )
        })?;
        let mut record = decode(&current, message_id)?;
        if !open(&record) {
            return Ok((record, false));
        }
        let was_pending = record.state == SentState::Pending;
        change(&mut record);
        if state::compare_and_swap(&key, Some(&current), &encode(&record)?)? {
            if was_pending && record.state != SentState::Pending {
                state::delete(&outbox_key(message_id))?;
                wit::Blob::forget(&outbox_key(message_id))?;
                state::delete(&pending_key(message_id))?;
            }
            return Ok((record, true));
        }
    }
    Err(wit_error(
        wit::ErrorCode::StorageFailed,
        format!("the record of {message_id} kept changing while it was being updated"),
    ))
}

/// Notes what came of the latest attempt.
fn note_attempt(record: &mut SentRecord, outcome: &str) {
    if let Some(last) = record.history.last_mut() {
        last.outcome = outcome.to_string();
    }
}

/// What the state store keeps of a received message (`received/<partner>/<Message-ID>`),
/// written by the host once the document is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReceivedRecord {
    message_id: String,
    partner: String,
    file_name: Option<String>,
    mic: String,
    #[serde(default)]
    received: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    disposition: Option<String>,
}

fn received_key(partner: &str, message_id: &str) -> String {
    format!("received/{partner}/{message_id}")
}

/// Pause before resend `attempt` (1-based): 1 s, 2 s, 4 s, … at most 30 s.
fn resend_delay_seconds(attempt: u32) -> u64 {
    (1u64 << attempt.saturating_sub(1).min(5)).min(30)
}

/// How long one `import` or `resume` call may keep sending, unless the host
/// says otherwise: hosts give a call at least 300 s (the reference host's
/// default deadline), so a resend that would end later is left to `resume`
/// instead of being cut off.
const DEFAULT_CALL_BUDGET_MS: u64 = 240_000;

/// The environment variable (wasi:cli/environment) in which a host tells
/// how many milliseconds a call may take, its own deadline less a margin.
const CALL_BUDGET_VARIABLE: &str = "AS2_CALL_BUDGET_MS";

/// When the current call started and how long it may keep sending (ms);
/// each instance serves one call.
static CALL_STARTED_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CALL_BUDGET_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_CALL_BUDGET_MS);

fn start_call_budget() {
    let budget = std::env::var(CALL_BUDGET_VARIABLE)
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_CALL_BUDGET_MS);
    CALL_BUDGET_MS.store(budget, std::sync::atomic::Ordering::Relaxed);
    CALL_STARTED_MS.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
}

/// Whether `seconds` more still fit in this call's budget.
fn call_budget_allows(seconds: u64) -> bool {
    let started = CALL_STARTED_MS.load(std::sync::atomic::Ordering::Relaxed);
    let budget = CALL_BUDGET_MS.load(std::sync::atomic::Ordering::Relaxed);
    let ends = now_ms().saturating_add(seconds.saturating_mul(1000));
    started == 0 || ends <= started.saturating_add(budget)
}

fn sleep(duration: std::time::Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    super::bindings::wasi::clocks::monotonic_clock::subscribe_duration(nanos).block();
}

/// Waits for this partner's next free send slot under `limit`. The slot is
/// claimed in the state store by compare-and-swap, so concurrent sends (other
/// calls, other processes on the same store) keep to the limit together.
fn wait_for_send_slot(partner: &str, limit: &crate::config::RateLimit) -> Result<(), wit::Error> {
    let key = format!("pace/{partner}");
    let spacing = crate::pace::spacing(limit);
    for _ in 0..MAX_UPDATE_RACES {
        let current = state::get(&key)?;
        let stored = current
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok());
        let now_ms = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (slot, next) = crate::pace::claim_slot(stored, now_ms, spacing);
        if state::compare_and_swap(&key, current.as_deref(), next.to_string().as_bytes())? {
            if slot > now_ms {
                sleep(std::time::Duration::from_millis(slot - now_ms));
            }
            return Ok(());
        }
    }
    Err(wit_error(
        wit::ErrorCode::StorageFailed,
        format!("could not claim a send slot for {partner}: too many concurrent sends"),
    ))
}

/// Records what an MDN says about a sent message.
fn apply_verdict(record: &mut SentRecord, verdict: &MdnVerdict) {
    record.mdn = Some(StoredMdn {
        message_id: verdict.mdn.message_id.clone(),
        original_message_id: verdict.mdn.original_message_id.clone(),
        disposition: verdict.mdn.disposition.to_string(),
        received_mic: verdict.mdn.received_mic.as_ref().map(ToString::to_string),
        signed: verdict.mdn.signed,
        warnings: verdict.mdn.warnings.clone(),
        mic_matched: verdict.mic_matched,
    });
    if verdict.proves_receipt {
        record.state = SentState::Acknowledged;
        record.reason = None;
    } else {
        record.state = SentState::Failed;
        record.reason = Some(if !verdict.mdn.disposition.is_positive() {
            format!("the partner reported {}", verdict.mdn.disposition)
        } else if !verdict.mic_matched {
            "the MDN's Received-Content-MIC does not match the MIC sent".to_string()
        } else {
            "the MDN is not signed although a signed MDN was requested".to_string()
        });
    }
}

fn log_mdn_warnings(message_id: &str, verdict: &MdnVerdict) {
    for warning in &verdict.mdn.warnings {
        log::emit(Level::Warn, &format!("MDN for {message_id}: {warning}"));
    }
}

fn outcome(record: &SentRecord) -> Result<api::SendOutcome, wit::Error> {
    Ok(api::SendOutcome {
        message_id: record.message_id.clone(),
        state: wit_state(record.state),
        attempts: record.attempts,
        events: record.events.clone(),
        mic: stored_mic(record),
        mdn: record.mdn.as_ref().map(stored_mdn_summary).transpose()?,
        mic_matched: record.mdn.as_ref().is_some_and(|mdn| mdn.mic_matched),
    })
}

fn wit_state(state: SentState) -> api::MessageState {
    match state {
        SentState::Pending => api::MessageState::Pending,
        SentState::Acknowledged => api::MessageState::Acknowledged,
        SentState::Failed => api::MessageState::Failed,
    }
}

fn record_mic(record: &SentRecord) -> Mic {
    let algorithm = crate::crypto::DigestAlgorithm::from_micalg(&record.mic_algorithm)
        .unwrap_or(crate::crypto::DigestAlgorithm::Sha256);
    Mic {
        digest: record.mic_digest.clone(),
        algorithm,
        spelling: record.mic_algorithm.clone(),
    }
}

fn stored_mic(record: &SentRecord) -> wit::Mic {
    wit_mic(&record_mic(record))
}

/// Why one HTTP attempt did not bring an answer worth keeping.
enum AttemptFailure {
    /// Worth sending again: unreachable, 5xx, dropped before the MDN.
    Retry(String),
    /// The partner refused our credentials (the configured failure rule).
    CredentialsRefused(u16),
    /// The partner says we send too fast; wait this long before trying again.
    TooFast(u16, std::time::Duration),
    /// Final: the partner refused the message.
    Refused(u16),
}

/// A secret from the host's store, for HTTP authentication.
fn reveal(name: &str) -> Result<String, crate::Error> {
    secrets::reveal(name).map_err(|e| crate::Error::config("/auth", e.message))
}

/// The credentials applied to a request for `url`.
fn authorize(connection: &Checked, url: &str) -> Result<crate::auth::Authorized, wit::Error> {
    crate::auth::authorize(&connection.connection.auth, url, &mut reveal)
        .map_err(|e| to_wit_error(&e))
}

/// Fetches a new token with the configured refresh request and stores it in
/// the secret store in place of the refused one. Returns what was done, for
/// the send result.
fn refresh_token(connection: &Checked) -> Result<String, wit::Error> {
    let crate::config::Auth::Token(token) = &connection.connection.auth else {
        return Err(wit_error(
            wit::ErrorCode::AuthFailed,
            "no token refresh is configured",
        ));
    };
    let Some(refresh) = &token.refresh else {
        return Err(wit_error(
            wit::ErrorCode::AuthFailed,
            "no token refresh is configured",
        ));
    };
    let request =
        crate::auth::refresh_request(refresh, &connection.connection.partner.url, &mut reveal)
            .map_err(|e| to_wit_error(&e))?;
    let response = crate::component::http::send(
        request.method,
        &request.url,
        &request.headers,
        &request.body,
        HTTP_TIMEOUT_SECONDS,
    )
    .map_err(|reason| {
        wit_error(
            wit::ErrorCode::AuthFailed,
            format!(
                "the token refresh request to {} failed: {reason}",
                request.url
            ),
        )
    })?;
    let new_token =
        crate::auth::token_from_response(&refresh.token_path, response.status, &response.body)
            .map_err(|e| to_wit_error(&e))?;
    let name = token
        .token
        .name("/auth/token")
        .map_err(|e| to_wit_error(&e))?;
    secrets::replace(name, &new_token)?;
    Ok(format!(
        "the partner refused the access token; got a new one from {} and stored it as secret {name:?}",
        request.url
    ))
}

fn has_refresh(connection: &Checked) -> bool {
    matches!(&connection.connection.auth, crate::config::Auth::Token(token) if token.refresh.is_some())
}

/// Builds the message for `document` with the host's primitives and key,
/// its body written into a new blob as it is made.
fn build_outgoing(
    connection: &Checked,
    key: &HostKey,
    document: &wit::OutgoingDocument,
) -> Result<Outgoing, wit::Error> {
    let info = DocumentInfo {
        file_name: document.file_name.as_deref(),
        content_type: &document.content_type,
    };
    let body = wit::Blob::new();
    let head = message::build_into(
        connection,
        info,
        &BlobSource::new(&document.content),
        &mut BlobSink(&body),
        key,
        SystemTime::now(),
        &HostCrypto,
    )
    .map_err(|e| to_wit_error(&e))?;
    Ok(Outgoing {
        message_id: head.message_id,
        headers: head.headers,
        body,
        mic: head.mic,
    })
}

fn send_one(
    connection: &Checked,
    key: &HostKey,
    document: wit::OutgoingDocument,
) -> Result<api::SendOutcome, wit::Error> {
    let config = &connection.connection;
    let outgoing = build_outgoing(connection, key, &document)?;
    let message_id = outgoing.message_id.clone();
    let record = SentRecord {
        message_id: message_id.clone(),
        partner: config.partner.as2_id.clone(),
        mic_digest: outgoing.mic.digest.clone(),
        mic_algorithm: outgoing.mic.spelling.clone(),
        state: SentState::Pending,
        attempts: 0,
        mdn: None,
        reason: None,
        events: Vec::new(),
        file_name: document.file_name.clone(),
        created: now_seconds(),
        history: Vec::new(),
        lease_until_ms: now_ms() + LEASE_SLACK_MS,
        awaiting_async_mdn: false,
    };
    // A missing secret is the configuration's fault: refused before any record.
    authorize(connection, &config.partner.url)?;
    // Recorded before it goes out, bytes first, so a crash mid-send never
    // loses track of it and `resume` can send the very same message again.
    outgoing.keep()?;
    state::set(&pending_key(&message_id), config.partner.as2_id.as_bytes())?;
    state::set(&state_key(&message_id), &encode(&record)?)?;
    log::emit(
        Level::Info,
        &format!(
            "sending {} ({} bytes) to {} as {message_id}",
            document.file_name.as_deref().unwrap_or("document"),
            document.content.size(),
            config.partner.as2_id,
        ),
    );
    deliver(connection, &outgoing, 0)
}

/// Sends `outgoing` until the partner has it (and the synchronous MDN is
/// read), resending under the same Message-ID after failures; `failures`
/// were already spent on it. Every step is in its record first.
fn deliver(
    connection: &Checked,
    outgoing: &Outgoing,
    mut failures: u32,
) -> Result<api::SendOutcome, wit::Error> {
    let config = &connection.connection;
    let message_id = &outgoing.message_id;
    let expects_sync_mdn =
        config.partner.mdn != MdnMode::None && config.partner.mdn_delivery == MdnDelivery::Sync;
    let timeout_seconds = attempt_seconds(&config.partner);
    let mut authorized = authorize(connection, &config.partner.url)?;
    let mut refreshed = false;
    // Resends after failures count against `send_attempts`; retries after
    // "too fast" against their own bound.
    let mut too_fast = 0u32;
    let response = loop {
        let record = update_pending(message_id, |r| {
            r.attempts += 1;
            r.reason = None;
            r.awaiting_async_mdn = false;
            r.lease_until_ms = now_ms() + timeout_seconds * 1000 + LEASE_SLACK_MS;
            r.history.push(AttemptRecord {
                number: r.attempts,
                started: now_seconds(),
                outcome: "in progress".into(),
            });
        })?;
        if record.state != SentState::Pending {
            // An asynchronous MDN for an earlier attempt settled it meanwhile.
            return outcome(&record);
        }
        let mut headers = outgoing.headers.clone();
        for (name, value) in authorized.headers.iter() {
            headers.push(name, value);
        }
        if let Some(limit) = &config.rate_limit {
            wait_for_send_slot(&config.partner.as2_id, limit)?;
        }
        let attempt = crate::component::http::send(
            "POST",
            &authorized.url,
            &headers,
            &BlobSource::new(&outgoing.body),
            timeout_seconds,
        )
        .map_err(|reason| AttemptFailure::Retry(format!("HTTP: {reason}")))
        .and_then(|response| match response.status {
            status if crate::auth::is_refusal(config.auth.failure(), status, &response.body) => {
                Err(AttemptFailure::CredentialsRefused(status))
            }
            status
                if config.advanced.auto_recover_rate_limits
                    && crate::pace::is_too_fast(
                        config.rate_limit.as_ref(),
                        status,
                        &response.headers,
                        &response.body,
                    ) =>
            {
                Err(AttemptFailure::TooFast(
                    status,
                    crate::pace::wait_before_retry(
                        &response.headers,
                        too_fast + 1,
                        SystemTime::now(),
                    ),
                ))
            }
            200..=299 if expects_sync_mdn && response.body.is_empty() => {
                Err(AttemptFailure::Retry(format!(
                    "the partner answered HTTP {} without the MDN",
                    response.status
                )))
            }
            200..=299 => Ok(response),
            500..=599 => Err(AttemptFailure::Retry(format!(
                "the partner answered HTTP {}",
                response.status
            ))),
            status => Err(AttemptFailure::Refused(status)),
        });
        let attempts = record.attempts;
        if matches!(attempt, Err(AttemptFailure::Retry(_))) {
            failures += 1;
        }
        let (reason, code) = match attempt {
            Ok(response) => break response,
            Err(AttemptFailure::TooFast(status, wait))
                if too_fast < crate::pace::MAX_RATE_LIMIT_RETRIES =>
            {
                too_fast += 1;
                let event = format!(
                    "attempt {attempts}: the partner answered HTTP {status} (too fast); waited {} ms and sent again",
                    wait.as_millis()
                );
                log::emit(Level::Warn, &format!("{message_id}: {event}"));
                let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                update_pending(message_id, |r| {
                    note_attempt(r, &format!("HTTP {status}: too fast"));
                    r.events.push(event.clone());
                    r.lease_until_ms = now_ms().saturating_add(wait_ms) + LEASE_SLACK_MS;
                })?;
                sleep(wait);
                continue;
            }
            Err(AttemptFailure::TooFast(status, _)) => (
                format!(
                    "the partner still answered HTTP {status} (too fast) after {too_fast} waits"
                ),
                wit::ErrorCode::RateLimited,
            ),
            Err(AttemptFailure::Retry(reason))
                if failures < config.partner.send_attempts
                    && !call_budget_allows(resend_delay_seconds(failures) + timeout_seconds) =>
            {
                // The next attempt would outlast this call: `resume` makes it
                // after the pause, under the same Message-ID.
                let delay = resend_delay_seconds(failures);
                let event = format!(
                    "attempt {attempts} failed ({reason}); the next attempt follows in {delay} s, outside this call (resume)"
                );
                log::emit(Level::Warn, &format!("{message_id}: {event}"));
                let record = update_pending(message_id, |r| {
                    note_attempt(r, &reason);
                    r.reason = Some(reason.clone());
                    r.events.push(event.clone());
                    r.lease_until_ms = now_ms() + delay * 1000;
                })?;
                return outcome(&record);
            }
            Err(AttemptFailure::Retry(reason)) if failures < config.partner.send_attempts => {
                let delay = resend_delay_seconds(failures);
                log::emit(
                    Level::Warn,
                    &format!(
                        "attempt {attempts} of {} for {message_id} failed ({reason}); sending it again under the same Message-ID in {delay} s",
                        config.partner.send_attempts
                    ),
                );
                let event = format!(
                    "attempt {attempts} failed ({reason}); sent again under the same Message-ID after {delay} s"
                );
                update_pending(message_id, |r| {
                    note_attempt(r, &reason);
                    r.reason = Some(reason.clone());
                    r.events.push(event.clone());
                    r.lease_until_ms = now_ms() + delay * 1000 + LEASE_SLACK_MS;
                })?;
                sleep(std::time::Duration::from_secs(delay));
                continue;
            }
            Err(AttemptFailure::CredentialsRefused(status))
                if !refreshed && has_refresh(connection) =>
            {
                refreshed = true;
                let event = refresh_token(connection)?;
                log::emit(Level::Info, &format!("{message_id}: {event}"));
                update_pending(message_id, |r| {
                    note_attempt(r, &format!("HTTP {status}: credentials refused"));
                    r.events.push(event.clone());
                })?;
                authorized = authorize(connection, &config.partner.url)?;
                continue;
            }
            Err(AttemptFailure::CredentialsRefused(status)) => (
                format!(
                    "the partner refused our credentials (HTTP {status}); check the {} settings",
                    if refreshed {
                        "token refresh"
                    } else {
                        "authentication"
                    }
                ),
                wit::ErrorCode::AuthFailed,
            ),
            Err(AttemptFailure::Retry(reason)) => (
                format!("{reason}; gave up after {failures} failed attempts"),
                wit::ErrorCode::TransportFailed,
            ),
            Err(AttemptFailure::Refused(status)) => (
                format!("the partner answered HTTP {status}"),
                match status {
                    401 | 403 => wit::ErrorCode::AuthFailed,
                    429 => wit::ErrorCode::RateLimited,
                    _ => wit::ErrorCode::TransportFailed,
                },
            ),
        };
        let record = update_pending(message_id, |r| {
            note_attempt(r, &reason);
            r.state = SentState::Failed;
            r.reason = Some(reason.clone());
        })?;
        if record.state == SentState::Acknowledged {
            return outcome(&record);
        }
        return Err(wit_error(
            code,
            format!("sending {message_id} to {}: {reason}", config.partner.url),
        ));
    };
    let status = response.status;
    if config.partner.mdn == MdnMode::None {
        let record = update_pending(message_id, |r| {
            note_attempt(r, &format!("HTTP {status}; no MDN requested"));
            r.state = SentState::Acknowledged;
        })?;
        return outcome(&record);
    }
    if !expects_sync_mdn {
        // The MDN comes later, POSTed to our endpoint; `export` matches it,
        // and `resume` sends again if it does not come in time.
        let wait_ms = u64::from(config.partner.mdn_timeout_seconds()) * 1000;
        let record = update_pending(message_id, |r| {
            note_attempt(r, &format!("HTTP {status}; awaiting the asynchronous MDN"));
            r.awaiting_async_mdn = true;
            r.lease_until_ms = now_ms() + wait_ms;
        })?;
        log::emit(
            Level::Info,
            &format!("{message_id} accepted; awaiting the asynchronous MDN"),
        );
        return outcome(&record);
    }
    let verdict = message::check_mdn(
        connection,
        message_id,
        &outgoing.mic,
        &response.headers,
        &response.body,
        &HostCrypto,
    );
    let record = match verdict {
        Ok(verdict) => {
            log_mdn_warnings(message_id, &verdict);
            update_pending(message_id, |r| {
                note_attempt(
                    r,
                    &format!("HTTP {status}; MDN: {}", verdict.mdn.disposition),
                );
                apply_verdict(r, &verdict);
            })?
        }
        Err(error) => {
            update_pending(message_id, |r| {
                note_attempt(r, &format!("HTTP {status}; the MDN is not valid"));
                r.state = SentState::Failed;
                r.reason = Some(format!("the MDN is not valid: {error}"));
            })?;
            return Err(to_wit_error(&error));
        }
    };
    outcome(&record)
}

/// How long one HTTP attempt may wait: for the synchronous MDN, the MDN
/// timeout; otherwise the plain HTTP timeout.
fn attempt_seconds(partner: &crate::config::Partner) -> u64 {
    if partner.mdn != MdnMode::None && partner.mdn_delivery == MdnDelivery::Sync {
        u64::from(partner.mdn_timeout_seconds())
    } else {
        HTTP_TIMEOUT_SECONDS
    }
}

/// `resume`: sends again what this connection still owes its partner.
fn resume(connection: &Checked) -> Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error> {
    let partner = &connection.connection.partner;
    let mut outcomes = Vec::new();
    for key in state::list_keys("pending/")? {
        let Some(message_id) = key.strip_prefix("pending/") else {
            continue;
        };
        if state::get(&key)?.as_deref() != Some(partner.as2_id.as_bytes()) {
            continue;
        }
        let Some(record) = load_sent(message_id)? else {
            // Settled between the listing and now.
            continue;
        };
        if record.state != SentState::Pending || record.lease_until_ms > now_ms() {
            continue;
        }
        // What this call cannot finish, the next `resume` takes up.
        if !call_budget_allows(attempt_seconds(&connection.connection.partner)) {
            break;
        }
        if let Some(result) = resume_one(connection, record) {
            outcomes.push(result);
        }
    }
    Ok(outcomes)
}

/// Takes over one pending record whose lease has run out: fails it when
/// its attempts are used up, else sends it again. `None` when another call
/// took it first.
fn resume_one(
    connection: &Checked,
    record: SentRecord,
) -> Option<Result<api::SendOutcome, wit::Error>> {
    let partner = &connection.connection.partner;
    let message_id = record.message_id.clone();
    let expired = |r: &SentRecord| r.state == SentState::Pending && r.lease_until_ms <= now_ms();
    if record.awaiting_async_mdn && record.attempts >= partner.send_attempts {
        let reason = format!(
            "no asynchronous MDN within {} s after {} attempts",
            partner.mdn_timeout_seconds(),
            record.attempts
        );
        return match update_record(&message_id, expired, |r| {
            r.state = SentState::Failed;
            r.reason = Some(reason.clone());
            r.events.push(reason.clone());
        }) {
            Ok((record, true)) => {
                log::emit(Level::Warn, &format!("{message_id} failed: {reason}"));
                Some(outcome(&record))
            }
            Ok((_, false)) => None,
            Err(e) => Some(Err(e)),
        };
    }
    let why = if record.awaiting_async_mdn {
        format!(
            "no asynchronous MDN within {} s; sent again under the same Message-ID",
            partner.mdn_timeout_seconds()
        )
    } else {
        "sending was interrupted (the host stopped); sent again under the same Message-ID"
            .to_string()
    };
    // Claim it: one resumer wins the compare-and-swap, others see the new lease.
    let claim = update_record(&message_id, expired, |r| {
        r.lease_until_ms = now_ms() + LEASE_SLACK_MS;
        r.events.push(why.clone());
    });
    match claim {
        Ok((_, true)) => {}
        Ok((_, false)) => return None,
        Err(e) => return Some(Err(e)),
    }
    log::emit(Level::Warn, &format!("{message_id}: {why}"));
    let outgoing = match Outgoing::load(&record) {
        Ok(Some(outgoing)) => outgoing,
        Ok(None) => {
            let reason = "its stored copy is gone, so it cannot be sent again".to_string();
            return Some(
                update_pending(&message_id, |r| {
                    r.state = SentState::Failed;
                    r.reason = Some(reason.clone());
                })
                .and_then(|record| outcome(&record)),
            );
        }
        Err(e) => return Some(Err(e)),
    };
    // At least one more attempt after an interruption, which was not the
    // partner's fault; an overdue asynchronous MDN counts against the bound.
    let spent = if record.awaiting_async_mdn {
        record.attempts
    } else {
        record.attempts.min(partner.send_attempts.saturating_sub(1))
    };
    Some(deliver(connection, &outgoing, spent))
}

fn load_sent(message_id: &str) -> Result<Option<SentRecord>, wit::Error> {
    state::get(&state_key(message_id))?
        .map(|bytes| decode(&bytes, message_id))
        .transpose()
}

/// An asynchronous MDN POSTed to our endpoint (RFC 4130 §7.3): verified,
/// matched to the message it acknowledges, and recorded.
/// `bytes` handed to the host a piece at a time, so that it never holds
/// them twice over: the host may write each piece to a file as it comes.
fn into_blob(bytes: Vec<u8>) -> Result<wit::Blob, wit::Error> {
    let blob = wit::Blob::new();
    let mut sink = BlobSink(&blob);
    for piece in bytes.chunks(crate::bytes::PIECE) {
        crate::bytes::Sink::write(&mut sink, piece).map_err(|e| to_wit_error(&e))?;
    }
    Ok(blob)
}

fn receive_async_mdn(
    connection: &Checked,
    headers: &Headers,
    body: &[u8],
) -> Result<api::ExportResult, wit::Error> {
    message::check_addressing(connection, headers).map_err(|e| to_wit_error(&e))?;
    let mdn = crate::mdn::parse(headers, body, &connection.partner_cert, &HostCrypto)
        .map_err(|e| to_wit_error(&e))?;
    let original = mdn.original_message_id.trim().to_string();
    let mut record = load_sent(&original)?
        .filter(|record| record.partner == connection.connection.partner.as2_id)
        .ok_or_else(|| {
            wit_error(
                wit::ErrorCode::NotFound,
                format!(
                    "the MDN acknowledges {}, which was not sent through this connection",
                    crate::headers::truncate(&original, 200)
                ),
            )
        })?;
    // Pending, or failed only because no MDN came in time: this MDN decides.
    let undecided = |r: &SentRecord| {
        r.state == SentState::Pending || (r.state == SentState::Failed && r.mdn.is_none())
    };
    if undecided(&record) {
        let verdict = message::judge_mdn(connection, mdn, &original, &record_mic(&record))
            .map_err(|e| to_wit_error(&e))?;
        log_mdn_warnings(&original, &verdict);
        let late = record.state == SentState::Failed;
        record = update_record(&original, undecided, |r| {
            if late {
                r.events.push(format!(
                    "the asynchronous MDN came after the message was given up ({})",
                    r.reason.as_deref().unwrap_or("no reason recorded")
                ));
            }
            apply_verdict(r, &verdict);
        })?
        .0;
        log::emit(
            Level::Info,
            &format!(
                "asynchronous MDN for {original}: {}",
                record
                    .mdn
                    .as_ref()
                    .map_or("", |mdn| mdn.disposition.as_str())
            ),
        );
    } else {
        // The first MDN decided; a repeat (the partner resending it) changes nothing.
        log::emit(
            Level::Info,
            &format!("another MDN for {original}, already settled; kept the first"),
        );
    }
    Ok(api::ExportResult {
        documents: Vec::new(),
        disposition: wit_disposition(&Disposition::processed()),
        response: wit::HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        },
        async_mdn: None,
        commit: Vec::new(),
        receipt: Some(outcome(&record)?),
    })
}

fn stored_mdn_summary(mdn: &StoredMdn) -> Result<wit::MdnSummary, wit::Error> {
    let disposition = Disposition::parse(&mdn.disposition).map_err(|e| to_wit_error(&e))?;
    let received = mdn
        .received_mic
        .as_deref()
        .map(crate::mic::ReportedMic::parse);
    Ok(wit_mdn(&Mdn {
        message_id: mdn.message_id.clone(),
        original_message_id: mdn.original_message_id.clone(),
        disposition,
        received_mic: received,
        signed: mdn.signed,
        warnings: mdn.warnings.clone(),
    }))
}

impl api::Guest for Component {
    fn config_schema() -> String {
        crate::config::schema_json()
    }

    fn config_ui_schema() -> String {
        crate::config::UI_SCHEMA.to_string()
    }

    fn validate_config(config: String) -> Vec<api::Problem> {
        let now = SystemTime::now();
        let report = crate::validate::validate(&config, now);
        let mut problems: Vec<api::Problem> = report.problems.iter().map(wit_problem).collect();
        if let Some(connection) = &report.checked {
            let station = &connection.connection.station;
            let keys = std::iter::once(("/station/private_key", station.private_key.as_str()))
                .chain(
                    station
                        .next_private_key
                        .as_deref()
                        .map(|name| ("/station/next_private_key", name)),
                );
            for (field, name) in keys {
                let expected = (field == "/station/private_key")
                    .then_some(station.certificate.as_deref())
                    .flatten();
                problems.extend(key_problems(name, field, expected, now));
            }
        }
        problems
    }

    fn test_connection(config: String) -> api::ConnectionTest {
        let check = |name: &str, passed: bool, detail: String| api::Check {
            name: name.into(),
            passed,
            detail,
        };
        let conclude = |verdict, summary: String, checks| api::ConnectionTest {
            verdict,
            summary,
            checks,
        };
        let problems = Self::validate_config(config.clone());
        let errors: Vec<&api::Problem> = problems
            .iter()
            .filter(|p| matches!(p.severity, api::Severity::Error))
            .collect();
        let mut checks = vec![check(
            "configuration",
            errors.is_empty(),
            if problems.is_empty() {
                "valid; both certificates are current and the station key opens".into()
            } else {
                problems
                    .iter()
                    .map(|p| format!("{} {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        )];
        if let Some(expired) = errors.iter().find(|p| {
            matches!(
                p.code,
                wit::ErrorCode::CertHasExpired | wit::ErrorCode::CertNotYetValid
            )
        }) {
            return conclude(
                api::Verdict::CertHasExpired,
                expired.message.clone(),
                checks,
            );
        }
        if let Some(first) = errors.first() {
            return conclude(
                api::Verdict::InvalidConfig,
                format!("{}: {}", first.field, first.message),
                checks,
            );
        }
        let connection = match checked(&config) {
            Ok(connection) => connection,
            Err(e) => return conclude(api::Verdict::InvalidConfig, e.message, checks),
        };
        let url = &connection.connection.partner.url;
        let authorized = match authorize(&connection, url) {
            Ok(authorized) => authorized,
            Err(e) => return conclude(api::Verdict::InvalidConfig, e.message, checks),
        };
        let response = crate::component::http::send(
            "GET",
            &authorized.url,
            &authorized.headers,
            &Vec::new(),
            15,
        );
        let response = match response {
            Ok(response) => response,
            Err(failure) => {
                let verdict = match failure.kind {
                    crate::component::http::FailureKind::Tls => api::Verdict::TlsError,
                    _ => api::Verdict::Unreachable,
                };
                let detail = format!("{url}: {failure}");
                checks.push(check("partner endpoint reachable", false, detail.clone()));
                return conclude(verdict, detail, checks);
            }
        };
        checks.push(check(
            "partner endpoint reachable",
            true,
            format!("{url} answered HTTP {}", response.status),
        ));
        let failure = connection.connection.auth.failure();
        let refused = crate::auth::is_refusal(failure, response.status, &response.body)
            || (failure.is_none() && matches!(response.status, 401 | 407));
        if refused {
            let detail = if failure.is_none() {
                format!(
                    "{url} asks for credentials (HTTP {}); configure the authentication",
                    response.status
                )
            } else {
                format!("{url} refused our credentials (HTTP {})", response.status)
            };
            checks.push(check(
                "partner accepts our credentials",
                false,
                detail.clone(),
            ));
            return conclude(api::Verdict::AuthFailed, detail, checks);
        }
        if !connection.connection.auth.is_none() {
            checks.push(check(
                "partner accepts our credentials",
                true,
                "no refusal".into(),
            ));
        }
        conclude(
            api::Verdict::Ok,
            format!("{url} is reachable and the configuration is ready to send"),
            checks,
        )
    }

    fn export(config: String, request: wit::HttpRequest) -> Result<api::ExportResult, wit::Error> {
        let connection = checked(&config)?;
        #[cfg(feature = "fault-switch")]
        super::faults::trip(&connection.connection.name);
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(wit_error(
                wit::ErrorCode::MalformedMessage,
                format!("AS2 messages are POSTed; got {}", request.method),
            ));
        }
        let headers = to_headers(&request.headers);
        // The partner's credentials first, before anything of the message is read.
        crate::auth::check_inbound(
            connection.connection.station.basic_auth.as_ref(),
            headers.get("Authorization"),
            &mut |name| {
                secrets::reveal(name)
                    .map_err(|e| crate::Error::config("/station/basic_auth/password", e.message))
            },
        )
        .map_err(|e| to_wit_error(&e))?;
        // An encrypted or compressed message is read where it lies, a piece
        // at a time; anything else (an MDN, a message only signed) whole.
        let source = BlobSource::new(&request.body);
        let in_memory = match message::body_is_cms(&headers) {
            true => None,
            false => Some(crate::bytes::read_all(&source).map_err(|e| to_wit_error(&e))?),
        };
        let body: &dyn crate::bytes::Source = match &in_memory {
            Some(bytes) => bytes,
            None => &source,
        };
        // CMS is never an MDN, so its unread body is not looked at here.
        let whole = in_memory.as_deref().unwrap_or_default();
        if crate::mdn::is_mdn(&headers, whole) {
            return receive_async_mdn(&connection, &headers, whole);
        }
        let key = open_station_key(&connection)?;
        let partner = connection.connection.partner.as2_id.clone();
        let mut received_before = |message_id: &str| {
            state::get(&received_key(&partner, message_id))
                .map(|found| found.is_some())
                .map_err(|e| crate::Error::Storage(e.message))
        };
        let next_key = match &connection.connection.station.next_private_key {
            Some(name) => Some(HostKey::open(name).map_err(|mut e| {
                e.field = Some("/station/next_private_key".into());
                e
            })?),
            None => None,
        };
        let keys = message::StationKeys {
            current: &key,
            next: next_key
                .as_ref()
                .map(|key| key as &dyn crate::crypto::PrivateKey),
        };
        let mut inbound = message::receive_from(
            &connection,
            &headers,
            body,
            keys,
            &mut received_before,
            SystemTime::now(),
            &HostCrypto,
        )
        .map_err(|e| to_wit_error(&e))?;
        // The message is read: its memory goes to what is built next.
        drop(in_memory);
        drop(request);
        let mut commit = Vec::new();
        let documents = match &mut inbound.result {
            Ok(_) if inbound.duplicate => {
                log::emit(
                    Level::Warn,
                    &format!(
                        "message {} from {} was received before; not delivered again",
                        inbound.message_id, inbound.partner
                    ),
                );
                Vec::new()
            }
            Ok(received) => {
                let record = ReceivedRecord {
                    message_id: inbound.message_id.clone(),
                    partner: inbound.partner.clone(),
                    file_name: received.document.file_name.clone(),
                    mic: received.mic.header_value(),
                    received: now_seconds(),
                    bytes: received.document.content.len() as u64,
                    disposition: Some(inbound.disposition.to_string()),
                };
                commit.push(wit::StateEntry {
                    key: received_key(&inbound.partner, &inbound.message_id),
                    value: serde_json::to_vec(&record).map_err(|e| {
                        wit_error(wit::ErrorCode::Internal, format!("encoding a record: {e}"))
                    })?,
                });
                log::emit(
                    Level::Info,
                    &format!(
                        "received {} ({} bytes) from {} as {}",
                        received.document.file_name.as_deref().unwrap_or("document"),
                        received.document.content.len(),
                        inbound.partner,
                        inbound.message_id
                    ),
                );
                vec![api::ReceivedDocument {
                    message_id: inbound.message_id.clone(),
                    partner: inbound.partner.clone(),
                    document: wit::Document {
                        file_name: received.document.file_name.clone(),
                        content_type: received.document.content_type.clone(),
                        content: into_blob(std::mem::take(&mut received.document.content))?,
                    },
                    mic: wit_mic(&received.mic),
                    signed: received.signed,
                    encrypted: received.encrypted,
                }]
            }
            Err(error) => {
                log::emit(
                    Level::Warn,
                    &format!(
                        "message {} from {} rejected: {error}",
                        inbound.message_id, inbound.partner
                    ),
                );
                Vec::new()
            }
        };
        let empty_ok = wit::HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        };
        let (response, async_mdn) = match inbound.mdn {
            None => (empty_ok, None),
            Some(mdn) => match mdn.async_url {
                None => (
                    wit::HttpResponse {
                        status: 200,
                        headers: from_headers(&mdn.message.headers),
                        body: mdn.message.body,
                    },
                    None,
                ),
                Some(url) => (
                    empty_ok,
                    Some(api::AsyncMdn {
                        url,
                        original_message_id: inbound.message_id.clone(),
                        headers: from_headers(&mdn.message.headers),
                        body: mdn.message.body,
                    }),
                ),
            },
        };
        Ok(api::ExportResult {
            documents,
            disposition: wit_disposition(&inbound.disposition),
            response,
            async_mdn,
            commit,
            receipt: None,
        })
    }

    fn import(
        config: String,
        documents: Vec<wit::OutgoingDocument>,
    ) -> Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error> {
        start_call_budget();
        let connection = checked(&config)?;
        #[cfg(feature = "fault-switch")]
        super::faults::trip(&connection.connection.name);
        let key = open_station_key(&connection)?;
        Ok(documents
            .into_iter()
            .map(|document| send_one(&connection, &key, document))
            .collect())
    }

    fn build_message(
        config: String,
        document: wit::OutgoingDocument,
    ) -> Result<api::BuiltMessage, wit::Error> {
        let connection = checked(&config)?;
        let key = open_station_key(&connection)?;
        let outgoing = build_outgoing(&connection, &key, &document)?;
        Ok(api::BuiltMessage {
            message_id: outgoing.message_id,
            headers: from_headers(&outgoing.headers),
            body: outgoing.body,
            mic: wit_mic(&outgoing.mic),
        })
    }

    fn resume(config: String) -> Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error> {
        start_call_budget();
        let connection = checked(&config)?;
        resume(&connection)
    }

    fn lookup_message(
        config: String,
        message_id: String,
    ) -> Result<api::MessageStatus, wit::Error> {
        let connection = checked(&config)?;
        let partner = &connection.connection.partner.as2_id;
        let message_id = message_id.trim();
        if let Some(record) = load_sent(message_id)?.filter(|record| &record.partner == partner) {
            return sent_status(record);
        }
        if let Some(record) = load_received(partner, message_id)? {
            return received_status(record);
        }
        Err(wit_error(
            wit::ErrorCode::NotFound,
            format!("no message {message_id} was sent or received through this connection"),
        ))
    }

    fn list_messages(
        config: String,
        filter: api::MessageFilter,
    ) -> Result<Vec<api::MessageStatus>, wit::Error> {
        let connection = checked(&config)?;
        let partner = &connection.connection.partner.as2_id;
        let mut found = Vec::new();
        if !matches!(filter.direction, Some(api::Direction::Inbound)) {
            for key in state::list_keys("sent/")? {
                let Some(bytes) = state::get(&key)? else {
                    continue;
                };
                let record = decode(&bytes, &key)?;
                if &record.partner == partner {
                    found.push(sent_status(record)?);
                }
            }
        }
        if !matches!(filter.direction, Some(api::Direction::Outbound)) {
            let prefix = received_key(partner, "");
            for key in state::list_keys(&prefix)? {
                let message_id = &key[prefix.len()..];
                if let Some(record) = load_received(partner, message_id)? {
                    found.push(received_status(record)?);
                }
            }
        }
        found.retain(|status| {
            filter
                .state
                .is_none_or(|state| same_state(state, status.state))
                && filter.since.is_none_or(|since| status.created >= since)
                && filter.until.is_none_or(|until| status.created < until)
        });
        found.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then_with(|| b.message_id.cmp(&a.message_id))
        });
        found.truncate(filter.limit as usize);
        Ok(found)
    }
}

fn same_state(a: api::MessageState, b: api::MessageState) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

fn load_received(partner: &str, message_id: &str) -> Result<Option<ReceivedRecord>, wit::Error> {
    let Some(bytes) = state::get(&received_key(partner, message_id))? else {
        return Ok(None);
    };
    let record: ReceivedRecord = serde_json::from_slice(&bytes).map_err(|e| {
        wit_error(
            wit::ErrorCode::StorageFailed,
            format!("the stored record of {message_id} is unreadable: {e}"),
        )
    })?;
    // `received/A/` also lists partner `A/B`'s records: keep only this partner's.
    Ok((record.partner == partner).then_some(record))
}

fn sent_status(record: SentRecord) -> Result<api::MessageStatus, wit::Error> {
    Ok(api::MessageStatus {
        mic: stored_mic(&record),
        direction: api::Direction::Outbound,
        state: wit_state(record.state),
        mdn: record.mdn.as_ref().map(stored_mdn_summary).transpose()?,
        answered: None,
        history: record
            .history
            .iter()
            .map(|attempt| api::Attempt {
                number: attempt.number,
                started: attempt.started,
                outcome: attempt.outcome.clone(),
            })
            .collect(),
        created: record.created,
        file_name: record.file_name,
        message_id: record.message_id,
        partner: record.partner,
        attempts: record.attempts,
        reason: record.reason,
    })
}

fn received_status(record: ReceivedRecord) -> Result<api::MessageStatus, wit::Error> {
    let (digest, algorithm) = record
        .mic
        .split_once(',')
        .map(|(digest, algorithm)| (digest.trim(), algorithm.trim()))
        .unwrap_or((record.mic.as_str(), ""));
    let answered = record
        .disposition
        .as_deref()
        .map(Disposition::parse)
        .transpose()
        .map_err(|e| to_wit_error(&e))?;
    Ok(api::MessageStatus {
        mic: wit::Mic {
            digest: digest.to_string(),
            algorithm: algorithm.to_string(),
        },
        direction: api::Direction::Inbound,
        state: api::MessageState::Received,
        mdn: None,
        answered: answered.as_ref().map(wit_disposition),
        history: Vec::new(),
        created: record.received,
        file_name: record.file_name,
        message_id: record.message_id,
        partner: record.partner,
        attempts: 0,
        reason: None,
    })
}
