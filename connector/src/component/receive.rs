//! Receiving: `export`. A request is a message from the partner or the
//! asynchronous MDN of one we sent; the engine processes it, the
//! lifecycle ([`crate::inbox::settle`], [`crate::outbox::match_async_mdn`])
//! decides what becomes of it, and this module hands that to the host.

use std::time::SystemTime;

use crate::config::Checked;
use crate::headers::Headers;
use crate::inbox::{self, Reply};
use crate::mdn::Disposition;
use crate::message;
use crate::outbox::MdnMatch;

use super::bindings::as2::connector::log::{self, Level};
use super::bindings::as2::connector::secrets;
use super::bindings::exports::as2::connector::connector as api;
use super::convert::{from_headers, outcome, to_headers, wit_disposition, wit_level, wit_mic};
use super::host::{BlobSink, BlobSource, BlobSpools, HostCrypto, HostKey, SPOOL_HOLD_LIMIT};
use super::records;
use super::{to_wit_error, wit, wit_error};

fn empty_ok() -> wit::HttpResponse {
    wit::HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

pub fn export(config: &str, request: wit::HttpRequest) -> Result<api::ExportResult, wit::Error> {
    let connection = super::connection::checked(config)?;
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
    check_credentials(&connection, &headers)?;
    records::note_features(&connection.connection.partner.as2_id, &headers);
    // A message is read where it lies, a piece at a time; a small one (an
    // MDN, a message of a few MB) is read into memory first, which is faster.
    let source = BlobSource::new(&request.body);
    if crate::mdn::is_mdn(&headers, &source).map_err(|e| to_wit_error(&e))? {
        let whole = crate::bytes::read_all(&source).map_err(|e| to_wit_error(&e))?;
        return receive_async_mdn(&connection, &headers, &whole);
    }
    let in_memory = match crate::bytes::Source::len(&source) <= SPOOL_HOLD_LIMIT {
        true => Some(crate::bytes::read_all(&source).map_err(|e| to_wit_error(&e))?),
        false => None,
    };
    let body: &dyn crate::bytes::Source = match &in_memory {
        Some(bytes) => bytes,
        None => &source,
    };
    let inbound = receive_message(&connection, &headers, body)?;
    // The message is read: its memory goes to what is built next.
    drop(in_memory);
    drop(request);
    let mut reception = inbox::settle(inbound, crate::outbox::unix_millis(SystemTime::now()));
    // A certificate exchange message is kept as an exchange, not delivered.
    if let Some(received) = &reception.document
        && crate::cem::is_cem(&received.document.content_type)
    {
        let documents = received
            .documents()
            .map(|document| {
                Ok(message::Document {
                    file_name: document.file_name.clone(),
                    content_type: document.content_type.clone(),
                    content: document.content.to_vec()?,
                })
            })
            .collect::<Result<Vec<_>, crate::Error>>()
            .map_err(|e| to_wit_error(&e))?;
        let documents: Vec<&message::Document> = documents.iter().collect();
        if super::cem::receive(&connection, &documents)? {
            reception.document = None;
        }
    }
    hand_over(reception)
}

fn check_credentials(connection: &Checked, headers: &Headers) -> Result<(), wit::Error> {
    crate::auth::check_inbound(
        connection.connection.station.basic_auth.as_ref(),
        headers.get("Authorization"),
        &mut |name| {
            secrets::reveal(name)
                .map_err(|e| crate::Error::config("/station/basic_auth/password", e.message))
        },
    )
    .map_err(|e| to_wit_error(&e))
}

/// Processes a message with the station's keys: the current one, and the
/// next one during a certificate rollover.
fn receive_message(
    connection: &Checked,
    headers: &Headers,
    body: &dyn crate::bytes::Source,
) -> Result<message::Inbound, wit::Error> {
    let key = super::connection::open_station_key(connection)?;
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
    let partner = &connection.connection.partner.as2_id;
    message::receive_from(
        connection,
        headers,
        body,
        keys,
        &mut |message_id: &str| records::received_before(partner, message_id),
        SystemTime::now(),
        &HostCrypto,
        &BlobSpools::default(),
    )
    .map_err(|e| to_wit_error(&e))
}

/// The export result of a processed message: its document and record for
/// the host to store, and the reply.
fn hand_over(mut reception: inbox::Reception) -> Result<api::ExportResult, wit::Error> {
    log::emit(wit_level(reception.log.0), &reception.log.1);
    let commit = match &reception.record {
        Some(record) => vec![records::received_entry(record)?],
        None => Vec::new(),
    };
    let mut documents = Vec::new();
    if let Some(received) = reception.document.take() {
        let message::Received {
            document,
            attachments,
            mic,
            signed,
            encrypted,
        } = received;
        // Each document of the message (one, or several: RFC 6362) on its own.
        for document in std::iter::once(document).chain(attachments) {
            documents.push(api::ReceivedDocument {
                message_id: reception.message_id.clone(),
                partner: reception.partner.clone(),
                document: wit::Document {
                    file_name: document.file_name,
                    content_type: document.content_type,
                    content: into_blob(document.content)?,
                },
                mic: wit_mic(&mic),
                signed,
                encrypted,
            });
        }
    }
    let (response, async_mdn) = match reception.reply {
        Reply::Empty => (empty_ok(), None),
        Reply::SyncMdn(mdn) => {
            let response = wit::HttpResponse {
                status: 200,
                headers: from_headers(&mdn.headers),
                body: mdn.body,
            };
            (response, None)
        }
        Reply::AsyncMdn { url, message } => {
            let owed = api::AsyncMdn {
                url,
                original_message_id: reception.message_id.clone(),
                headers: from_headers(&message.headers),
                body: message.body,
            };
            (empty_ok(), Some(owed))
        }
    };
    Ok(api::ExportResult {
        documents,
        disposition: wit_disposition(&reception.disposition),
        response,
        async_mdn,
        commit,
        receipt: None,
    })
}

/// A document's bytes handed to the host a piece at a time, so that it
/// never holds them twice over: the host may write each piece to a file
/// as it comes.
fn into_blob(content: message::Content) -> Result<wit::Blob, wit::Error> {
    let blob = wit::Blob::new();
    crate::bytes::copy(&content.source(), &mut BlobSink(&blob)).map_err(|e| to_wit_error(&e))?;
    Ok(blob)
}

/// An asynchronous MDN POSTed to our endpoint (RFC 4130 §7.3): verified,
/// matched to the message it acknowledges, and recorded.
fn receive_async_mdn(
    connection: &Checked,
    headers: &Headers,
    body: &[u8],
) -> Result<api::ExportResult, wit::Error> {
    message::check_addressing(connection, headers).map_err(|e| to_wit_error(&e))?;
    let mdn = crate::mdn::parse(headers, body, &connection.partner_cert, &HostCrypto)
        .map_err(|e| to_wit_error(&e))?;
    let original = mdn.original_message_id.trim().to_string();
    let stored = records::load_sent(&original)?;
    let matched = crate::outbox::match_async_mdn(connection, mdn, stored.as_ref())
        .map_err(|e| to_wit_error(&e))?;
    let record = match matched {
        MdnMatch::Unknown(message) => return Err(wit_error(wit::ErrorCode::NotFound, message)),
        MdnMatch::Settles(change) => settle_with_mdn(&original, &change)?,
        MdnMatch::Repeat => {
            // The first MDN decided; a repeat (the partner resending it) changes nothing.
            let line = format!("another MDN for {original}, already settled; kept the first");
            log::emit(Level::Info, &line);
            stored.ok_or_else(|| {
                wit_error(wit::ErrorCode::Internal, "a settled record went missing")
            })?
        }
    };
    Ok(api::ExportResult {
        documents: Vec::new(),
        disposition: wit_disposition(&Disposition::processed()),
        response: empty_ok(),
        async_mdn: None,
        commit: Vec::new(),
        receipt: Some(outcome(&record)?),
    })
}

/// Records what an asynchronous MDN decides about `original`.
fn settle_with_mdn(
    original: &str,
    change: &crate::outbox::Change,
) -> Result<crate::outbox::SentRecord, wit::Error> {
    if let crate::outbox::Change::AsyncMdn(verdict) = change {
        for warning in &verdict.mdn.warnings {
            log::emit(Level::Warn, &format!("MDN for {original}: {warning}"));
        }
    }
    let open = |r: &crate::outbox::SentRecord| r.awaits_mdn();
    let (record, _) = records::update_record(original, open, change)?;
    let disposition = record
        .mdn
        .as_ref()
        .map_or("", |mdn| mdn.disposition.as_str());
    log::emit(
        Level::Info,
        &format!("asynchronous MDN for {original}: {disposition}"),
    );
    Ok(record)
}
