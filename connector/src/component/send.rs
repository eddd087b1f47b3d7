//! Sending: `import`, `build-message` and `resume`. The lifecycle is
//! [`crate::outbox::Delivery`]'s; this module performs what it asks for
//! (the state store, the send slot, HTTP, the token refresh, the clock)
//! and answers with the record.

use std::time::SystemTime;

use crate::config::Checked;
use crate::message::{self, Attachment, DocumentInfo};
use crate::outbox::{
    self, Action, CallBudget, Delivery, Event, Finish, ResumeStep, SentRecord, UnixMillis,
};

use super::bindings::as2::connector::log::{self, Level};
use super::bindings::as2::connector::secrets;
use super::bindings::exports::as2::connector::connector as api;
use super::connection::{authorize, checked, open_station_key, reveal};
use super::convert::{outcome, wit_level};
use super::host::{BlobSink, BlobSource, HostCrypto, HostKey};
use super::records::{self, Outgoing};
use super::{to_wit_error, wit, wit_code, wit_error};

type SendResults = Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error>;

fn now_ms() -> UnixMillis {
    outbox::unix_millis(SystemTime::now())
}

/// The budget of the call starting now, as the host tells it.
pub fn call_budget() -> CallBudget {
    let told = std::env::var(outbox::CALL_BUDGET_VARIABLE).ok();
    CallBudget::starting(now_ms(), told.as_deref())
}

fn sleep_until(at: UnixMillis) {
    let nanos = at.saturating_sub(now_ms()).saturating_mul(1_000_000);
    if nanos > 0 {
        super::bindings::wasi::clocks::monotonic_clock::subscribe_duration(nanos).block();
    }
}

fn no_refresh() -> wit::Error {
    wit_error(wit::ErrorCode::AuthFailed, "no token refresh is configured")
}

/// Fetches a new token with the configured refresh request and stores it in
/// the secret store in place of the refused one. Returns what was done.
fn refresh_token(connection: &Checked) -> Result<String, wit::Error> {
    let crate::config::Auth::Token(token) = &connection.connection.auth else {
        return Err(no_refresh());
    };
    let refresh = token.refresh.as_ref().ok_or_else(no_refresh)?;
    let request =
        crate::auth::refresh_request(refresh, &connection.connection.partner.url, &mut reveal)
            .map_err(|e| to_wit_error(&e))?;
    let response = super::http::send(
        request.method,
        &request.url,
        &request.headers,
        &request.body,
        outbox::HTTP_TIMEOUT_SECONDS,
    )
    .map_err(|reason| {
        let message = format!(
            "the token refresh request to {} failed: {reason}",
            request.url
        );
        wit_error(wit::ErrorCode::AuthFailed, message)
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

/// Builds the message for `document` with the host's primitives and key,
/// its body written into a new blob as it is made.
fn build_outgoing(
    connection: &Checked,
    key: &HostKey,
    documents: &[Part<'_>],
) -> Result<Outgoing, wit::Error> {
    let sources: Vec<BlobSource<'_>> = documents
        .iter()
        .map(|part| BlobSource::new(&part.document.content))
        .collect();
    let attachments: Vec<Attachment<'_>> = documents
        .iter()
        .zip(&sources)
        .map(|(part, source)| Attachment {
            info: DocumentInfo {
                file_name: part.document.file_name.as_deref(),
                content_type: &part.document.content_type,
            },
            content: source,
            content_id: part.content_id,
        })
        .collect();
    let body = wit::Blob::new();
    let head = message::build_attachments_into(
        connection,
        &attachments,
        &mut BlobSink(&body),
        key,
        SystemTime::now(),
        &HostCrypto,
        &super::host::BlobSpools::default(),
    )
    .map_err(|e| to_wit_error(&e))?;
    Ok(Outgoing {
        message_id: head.message_id,
        headers: head.headers,
        body,
        mic: head.mic,
        mic_variants: head.mic_variants,
    })
}

/// A document of a message to send, and the Content-ID another part may
/// refer to it by.
pub struct Part<'a> {
    pub document: &'a wit::OutgoingDocument,
    pub content_id: Option<&'a str>,
}

impl<'a> Part<'a> {
    fn plain(document: &'a wit::OutgoingDocument) -> [Part<'a>; 1] {
        [Part {
            document,
            content_id: None,
        }]
    }
}

/// Sends `parts` as one AS2 message (one document, or several under
/// RFC 6362) and drives it to its outcome.
pub fn send_message(
    connection: &Checked,
    key: &HostKey,
    budget: CallBudget,
    parts: &[Part<'_>],
) -> Result<api::SendOutcome, wit::Error> {
    let config = &connection.connection;
    let outgoing = build_outgoing(connection, key, parts)?;
    let documents: Vec<&wit::OutgoingDocument> = parts.iter().map(|p| p.document).collect();
    let partner = &config.partner.as2_id;
    let names: Vec<&str> = documents
        .iter()
        .map(|d| d.file_name.as_deref().unwrap_or("document"))
        .collect();
    let file_name = match documents.as_slice() {
        [single] => single.file_name.clone(),
        _ => Some(names.join(", ")),
    };
    let mut record = SentRecord::new(
        &outgoing.message_id,
        partner,
        &outgoing.mic,
        file_name,
        now_ms(),
    );
    record.mic_variants = outgoing.mic_variants.clone();
    record.signed_mdn_requested = Some(config.partner.mdn == crate::config::MdnMode::Signed);
    // A missing secret is the configuration's fault: refused before any record.
    authorize(connection, &config.partner.url)?;
    // Recorded before it goes out, bytes first, so a crash mid-send never
    // loses track of it and `resume` can send the very same message again.
    outgoing.keep()?;
    records::record_new(&record)?;
    let bytes: u64 = documents.iter().map(|d| d.content.size()).sum();
    log::emit(
        Level::Info,
        &format!(
            "sending {} ({bytes} bytes) to {partner} as {}",
            names.join(", "),
            outgoing.message_id,
        ),
    );
    deliver(connection, &outgoing, 0, budget)
}

/// Drives the delivery of `outgoing` to its end, `spent` failed attempts
/// having been made on it: performs each action the state machine asks for
/// and hands it what came of it.
fn deliver(
    connection: &Checked,
    outgoing: &Outgoing,
    spent: u32,
    budget: CallBudget,
) -> Result<api::SendOutcome, wit::Error> {
    let config = &connection.connection;
    let id = &outgoing.message_id;
    let mut authorized = authorize(connection, &config.partner.url)?;
    let mut delivery = Delivery::new(config, id, spent, budget, now_ms());
    let mut record = None;
    loop {
        let Some(action) = delivery.poll() else {
            return Err(wit_error(
                wit::ErrorCode::Internal,
                format!("the delivery of {id} stopped without an outcome"),
            ));
        };
        let event = match action {
            Action::Log(level, line) => {
                log::emit(wit_level(level), &line);
                continue;
            }
            Action::Finish(finish) => return finished(finish, record.as_ref()),
            Action::Record(change) => {
                let stored = records::update_pending(id, &change)?;
                let (state, attempts) = (stored.state, stored.attempts);
                record = Some(stored);
                Event::Recorded { state, attempts }
            }
            Action::ClaimSendSlot => match &config.rate_limit {
                Some(limit) => Event::SlotClaimed {
                    at: records::claim_send_slot(&config.partner.as2_id, limit, now_ms())?,
                },
                None => Event::SlotClaimed { at: 0 },
            },
            Action::WaitUntil(at) => {
                sleep_until(at);
                Event::TimerFired
            }
            Action::Send { timeout_seconds } => post(outgoing, &authorized, timeout_seconds),
            Action::RefreshToken => {
                let done = refresh_token(connection)?;
                authorized = authorize(connection, &config.partner.url)?;
                Event::TokenRefreshed(done)
            }
            Action::CheckMdn(response) => {
                records::note_features(&config.partner.as2_id, &response.headers);
                let checked = message::check_mdn(
                    connection,
                    id,
                    &outgoing.mic,
                    &response.headers,
                    &response.body,
                    &HostCrypto,
                );
                Event::MdnChecked(checked.map(|mut verdict| {
                    let variants = outgoing.mic_variants.as_deref();
                    crate::doctor::consult(connection, &mut verdict, &outgoing.mic, variants);
                    verdict
                }))
            }
        };
        delivery.handle(now_ms(), event);
    }
}

/// POSTs the stored message with the credentials, for the state machine.
fn post(outgoing: &Outgoing, authorized: &crate::auth::Authorized, timeout: u64) -> Event {
    let mut headers = outgoing.headers.clone();
    for (name, value) in authorized.headers.iter() {
        headers.push(name, value);
    }
    let body = BlobSource::new(&outgoing.body);
    match super::http::send("POST", &authorized.url, &headers, &body, timeout) {
        Ok(response) => Event::Answered(response),
        Err(reason) => Event::Unreachable(reason.to_string()),
    }
}

fn finished(finish: Finish, record: Option<&SentRecord>) -> Result<api::SendOutcome, wit::Error> {
    match (finish, record) {
        (Finish::Outcome, Some(record)) => outcome(record),
        (Finish::Outcome, None) => Err(wit_error(
            wit::ErrorCode::Internal,
            "a delivery finished before its record was read",
        )),
        (Finish::GaveUp { code, message }, _) => Err(wit_error(wit_code(code), message)),
        (Finish::InvalidMdn(error), _) => Err(to_wit_error(&error)),
    }
}

/// Sends again what this connection still owes its partner.
fn resume(connection: &Checked, budget: CallBudget) -> SendResults {
    let partner = &connection.connection.partner;
    let mut outcomes = Vec::new();
    for message_id in records::pending_for(&partner.as2_id)? {
        let Some(record) = records::load_sent(&message_id)? else {
            // Settled between the listing and now.
            continue;
        };
        match outbox::resume_step(&record, partner, &budget, now_ms()) {
            ResumeStep::Leave => {}
            // What this call cannot finish, the next `resume` takes up.
            ResumeStep::LaterCall => break,
            ResumeStep::GiveUp { change, log } => {
                if let Some(result) = take_over(&record, &change, &log) {
                    outcomes.push(result.and_then(|record| outcome(&record)));
                }
            }
            ResumeStep::SendAgain { claim, log, spent } => {
                if let Some(result) = take_over(&record, &claim, &log) {
                    outcomes
                        .push(result.and_then(|_| send_again(connection, &record, spent, budget)));
                }
            }
        }
    }
    Ok(outcomes)
}

/// Applies a resuming call's `change` to `record` while its lease is still
/// expired: one resumer wins the compare-and-swap, the others see the new
/// lease and leave it (`None`).
fn take_over(
    record: &SentRecord,
    change: &outbox::Change,
    line: &str,
) -> Option<Result<SentRecord, wit::Error>> {
    let expired = |r: &SentRecord| r.lease_expired(now_ms());
    match records::update_record(&record.message_id, expired, change) {
        Ok((record, true)) => {
            log::emit(Level::Warn, line);
            Some(Ok(record))
        }
        Ok((_, false)) => None,
        Err(e) => Some(Err(e)),
    }
}

fn send_again(
    connection: &Checked,
    record: &SentRecord,
    spent: u32,
    budget: CallBudget,
) -> Result<api::SendOutcome, wit::Error> {
    match Outgoing::load(record)? {
        Some(outgoing) => deliver(connection, &outgoing, spent, budget),
        None => outcome(&records::update_pending(
            &record.message_id,
            &outbox::copy_lost(),
        )?),
    }
}

pub fn import(config: &str, documents: Vec<wit::OutgoingDocument>) -> SendResults {
    let budget = call_budget();
    let connection = checked(config)?;
    #[cfg(feature = "fault-switch")]
    super::faults::trip(&connection.connection.name);
    let key = open_station_key(&connection)?;
    Ok(documents
        .iter()
        .map(|document| send_message(&connection, &key, budget, &Part::plain(document)))
        .collect())
}

/// `import-together`: the documents in one message when the partner reads
/// several (RFC 6362), else each in its own, as `import` sends them.
pub fn import_together(config: &str, documents: Vec<wit::OutgoingDocument>) -> SendResults {
    let budget = call_budget();
    let connection = checked(config)?;
    let key = open_station_key(&connection)?;
    let partner = &connection.connection.partner;
    let together = match partner.multiple_attachments {
        crate::config::MultipleAttachments::Always => true,
        crate::config::MultipleAttachments::Never => false,
        crate::config::MultipleAttachments::Announced => {
            records::partner_announces(&partner.as2_id, "multiple-attachments")?
        }
    };
    if together && documents.len() > 1 {
        let parts: Vec<Part<'_>> = documents
            .iter()
            .map(|document| Part {
                document,
                content_id: None,
            })
            .collect();
        return Ok(vec![send_message(&connection, &key, budget, &parts)]);
    }
    if documents.len() > 1 {
        log::emit(
            Level::Info,
            &format!(
                "{} has not announced multiple-attachments (EDIINT-Features): one message per document",
                partner.as2_id
            ),
        );
    }
    Ok(documents
        .iter()
        .map(|document| send_message(&connection, &key, budget, &Part::plain(document)))
        .collect())
}

pub fn build_message(
    config: &str,
    document: wit::OutgoingDocument,
) -> Result<api::BuiltMessage, wit::Error> {
    let connection = checked(config)?;
    let key = open_station_key(&connection)?;
    let outgoing = build_outgoing(&connection, &key, &Part::plain(&document))?;
    Ok(api::BuiltMessage {
        message_id: outgoing.message_id,
        headers: super::convert::from_headers(&outgoing.headers),
        body: outgoing.body,
        mic: super::convert::wit_mic(&outgoing.mic),
    })
}

pub fn resume_sends(config: &str) -> SendResults {
    let budget = call_budget();
    let connection = checked(config)?;
    resume(&connection, budget)
}
