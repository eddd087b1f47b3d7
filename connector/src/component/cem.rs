//! Certificate exchange (EDIINT CEM): `cem-request`, `cem-answer`,
//! `cem-list`, what a received request or response does, and the switch
//! to an exchanged certificate at its respond-by date. The messages are
//! [`crate::cem`]'s; this module keeps the exchanges in the state store
//! and sends through [`super::send::send_message`].

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cem::{
    self, CertificateId, Direction, Exchange, ExchangeState, Request, Response, Status, Switches,
    TrustRequest, TrustResponse, Usage,
};
use crate::config::Checked;
use crate::crypto::CryptoProvider;
use crate::smime::Cert;

use super::bindings::as2::connector::log::{self, Level};
use super::bindings::as2::connector::state;
use super::bindings::exports::as2::connector::connector as api;
use super::connection::{checked, open_station_key, station_certificate};
use super::host::{HostCrypto, HostKey};
use super::send::{Part, call_budget, send_message};
use super::{to_wit_error, wit, wit_error};

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn load<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, wit::Error> {
    match state::get(key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            wit_error(
                wit::ErrorCode::Internal,
                format!("the record {key} does not read: {e}"),
            )
        }),
        None => Ok(None),
    }
}

fn store<T: serde::Serialize>(key: &str, value: &T) -> Result<(), wit::Error> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| wit_error(wit::ErrorCode::Internal, format!("encoding {key}: {e}")))?;
    state::set(key, &bytes)
}

/// The switches accepted exchanges made for `partner`.
fn switches(partner: &str) -> Result<Switches, wit::Error> {
    Ok(load(&cem::switches_key(partner))?.unwrap_or_default())
}

/// `connection` with the partner's certificate from an accepted exchange,
/// once its respond-by date has come.
pub fn with_exchanged_certificate(mut connection: Checked) -> Result<Checked, wit::Error> {
    let partner = connection.connection.partner.as2_id.clone();
    if let Some(pem) = switches(&partner)?.partner_certificate_at(now_seconds()) {
        connection.partner_cert = Cert::from_pem(pem).map_err(|e| to_wit_error(&e))?;
    }
    Ok(connection)
}

/// The key store entry to sign with: our next key once the partner has
/// accepted it and its respond-by date has come, else the configured one.
pub fn signing_key_name(connection: &Checked) -> Result<String, wit::Error> {
    let partner = &connection.connection.partner.as2_id;
    Ok(switches(partner)?
        .station_key_at(now_seconds())
        .map(str::to_string)
        .unwrap_or_else(|| connection.connection.station.private_key.clone()))
}

fn blob_of(bytes: &[u8]) -> Result<wit::Blob, wit::Error> {
    let blob = wit::Blob::new();
    for piece in bytes.chunks(crate::bytes::PIECE) {
        blob.append(piece)?;
    }
    Ok(blob)
}

/// `cem-request`: offers the station's next certificate
/// (`station.next_private_key`) to the partner, to take over at `respond_by`.
pub fn request(config: &str, respond_by: u64) -> Result<api::CemSent, wit::Error> {
    let connection = checked(config)?;
    let station = &connection.connection.station;
    let next = station.next_private_key.clone().ok_or_else(|| {
        let mut e = wit_error(
            wit::ErrorCode::InvalidConfig,
            "set station.next_private_key to the key store entry whose certificate to announce",
        );
        e.field = Some("/station/next_private_key".into());
        e
    })?;
    let response_url = station.url.clone().ok_or_else(|| {
        let mut e = wit_error(
            wit::ErrorCode::InvalidConfig,
            "set station.url: the partner sends its CEM response there",
        );
        e.field = Some("/station/url".into());
        e
    })?;
    if respond_by <= now_seconds() {
        return Err(wit_error(
            wit::ErrorCode::InvalidConfig,
            "the respond-by date has passed; give a date to come",
        ));
    }
    let next_key = HostKey::open(&next)?;
    let certificate = station_certificate(&next_key).map_err(|e| to_wit_error(&e))?;
    let mut random = [0u8; 8];
    HostCrypto.fill_random(&mut random);
    let request_id: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let content_id = format!("cert-{request_id}@{}", station.as2_id);
    let request = Request {
        request_id: request_id.clone(),
        sender: station.as2_id.clone(),
        originated: cem::rfc3339(now_seconds()),
        trust: vec![TrustRequest {
            usages: vec![Usage::KeyEncipherment, Usage::DigitalSignature],
            respond_by: Some(cem::rfc3339(respond_by)),
            response_url: response_url.clone(),
            certificate: CertificateId::of(&certificate),
            content_id: content_id.clone(),
        }],
    };
    let partner = connection.connection.partner.as2_id.clone();
    let exchange = Exchange {
        request_id: request_id.clone(),
        partner: partner.clone(),
        direction: Direction::Sent,
        certificate_pem: certificate.to_pem().map_err(|e| to_wit_error(&e))?,
        key_name: Some(next),
        respond_by,
        response_url,
        state: ExchangeState::Pending,
        reason: None,
    };
    // Recorded before it goes out: a response that overtakes the send finds it.
    store(&cem::exchange_key(&partner, &request_id), &exchange)?;
    let xml = wit::OutgoingDocument {
        file_name: Some(format!("cem-request-{request_id}.xml")),
        content_type: cem::CONTENT_TYPE.into(),
        content: blob_of(request.to_xml().as_bytes())?,
    };
    let certs = wit::OutgoingDocument {
        file_name: Some(format!("cem-certificate-{request_id}.p7c")),
        content_type: cem::CERTS_ONLY.into(),
        content: blob_of(&cem::certs_only(&certificate).map_err(|e| to_wit_error(&e))?)?,
    };
    let parts = [
        Part {
            document: &xml,
            content_id: Some("request"),
        },
        Part {
            document: &certs,
            content_id: Some(&content_id),
        },
    ];
    let key = open_station_key(&connection)?;
    let outcome = send_message(&connection, &key, call_budget(), &parts)?;
    log::emit(
        Level::Info,
        &format!(
            "CEM request {request_id} sent to {partner}: certificate {} (serial {}), to take over at {}",
            certificate.subject(),
            certificate.serial_text(),
            cem::rfc3339(respond_by)
        ),
    );
    Ok(api::CemSent {
        request_id,
        outcome,
    })
}

/// What a received CEM request or response does: the exchange recorded
/// (a request, pending an answer) or settled (a response). Called with the
/// documents of a processed message; `false` when it is no CEM message.
pub fn receive(
    connection: &Checked,
    documents: &[&crate::message::Document],
) -> Result<bool, wit::Error> {
    let message = match cem::classify(documents) {
        Ok(Some(message)) => message,
        Ok(None) => return Ok(false),
        Err(e) => {
            log::emit(
                Level::Warn,
                &format!("a CEM message that does not read: {e}"),
            );
            return Ok(true);
        }
    };
    let partner = &connection.connection.partner.as2_id;
    match message {
        cem::Message::Request(request, certificates) => {
            for trust in &request.trust {
                let offered = match cem::offered(trust, &certificates) {
                    Ok(cert) => cert,
                    Err(e) => {
                        log::emit(
                            Level::Warn,
                            &format!("CEM request {}: {e}", request.request_id),
                        );
                        continue;
                    }
                };
                let respond_by = trust
                    .respond_by
                    .as_deref()
                    .and_then(cem::parse_rfc3339)
                    .unwrap_or_else(now_seconds);
                let exchange = Exchange {
                    request_id: request.request_id.clone(),
                    partner: partner.clone(),
                    direction: Direction::Received,
                    certificate_pem: offered.to_pem().map_err(|e| to_wit_error(&e))?,
                    key_name: None,
                    respond_by,
                    response_url: trust.response_url.clone(),
                    state: ExchangeState::Pending,
                    reason: None,
                };
                store(&cem::exchange_key(partner, &request.request_id), &exchange)?;
                log::emit(
                    Level::Info,
                    &format!(
                        "CEM request {} from {partner}: certificate {} (serial {}), to take over at {}; answer it with `as2-harness cem accept` or `cem reject`",
                        request.request_id,
                        offered.subject(),
                        offered.serial_text(),
                        cem::rfc3339(respond_by)
                    ),
                );
            }
        }
        cem::Message::Response(response) => settle(partner, &response)?,
    }
    Ok(true)
}

/// A partner's response to a request of ours.
fn settle(partner: &str, response: &Response) -> Result<(), wit::Error> {
    let key = cem::exchange_key(partner, &response.request_id);
    let Some(mut exchange) = load::<Exchange>(&key)? else {
        log::emit(
            Level::Warn,
            &format!(
                "a CEM response from {partner} to {}, which we did not send",
                response.request_id
            ),
        );
        return Ok(());
    };
    let ours = Cert::from_pem(&exchange.certificate_pem).map_err(|e| to_wit_error(&e))?;
    let answer = response
        .trust
        .iter()
        .find(|t| t.certificate == CertificateId::of(&ours));
    let Some(answer) = answer else {
        log::emit(
            Level::Warn,
            &format!(
                "the CEM response to {} does not name the certificate offered",
                response.request_id
            ),
        );
        return Ok(());
    };
    exchange.state = match answer.status {
        Status::Accepted => ExchangeState::Accepted,
        Status::Rejected => ExchangeState::Rejected,
    };
    exchange.reason = answer.reason.clone();
    store(&key, &exchange)?;
    if exchange.state == ExchangeState::Accepted {
        let mut switches = switches(partner)?;
        switches.accept(&exchange);
        store(&cem::switches_key(partner), &switches)?;
    }
    log::emit(
        Level::Info,
        &format!(
            "CEM response from {partner} to {}: {}{}",
            response.request_id,
            answer.status.name(),
            answer
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

/// `cem-answer`: accepts or rejects the partner's request `request_id`,
/// sending the response to the URL the request named.
pub fn answer(
    config: &str,
    request_id: &str,
    accept: bool,
    reason: Option<String>,
) -> Result<api::SendOutcome, wit::Error> {
    let mut connection = checked(config)?;
    let partner = connection.connection.partner.as2_id.clone();
    let key = cem::exchange_key(&partner, request_id);
    let mut exchange = load::<Exchange>(&key)?
        .filter(|e| e.direction == Direction::Received)
        .ok_or_else(|| {
            wit_error(
                wit::ErrorCode::NotFound,
                format!("no CEM request {request_id:?} from {partner}"),
            )
        })?;
    let offered = Cert::from_pem(&exchange.certificate_pem).map_err(|e| to_wit_error(&e))?;
    let station = &connection.connection.station;
    let response = Response {
        request_id: request_id.to_string(),
        sender: station.as2_id.clone(),
        originated: cem::rfc3339(now_seconds()),
        trust: vec![TrustResponse {
            status: if accept {
                Status::Accepted
            } else {
                Status::Rejected
            },
            reason: reason.clone().filter(|_| !accept),
            certificate: CertificateId::of(&offered),
        }],
    };
    let xml = wit::OutgoingDocument {
        file_name: Some(format!("cem-response-{request_id}.xml")),
        content_type: cem::CONTENT_TYPE.into(),
        content: blob_of(response.to_xml().as_bytes())?,
    };
    // The response goes where the request said, which may differ from the partner's URL.
    connection.connection.partner.url = exchange.response_url.clone();
    let station_key = open_station_key(&connection)?;
    let outcome = send_message(
        &connection,
        &station_key,
        call_budget(),
        &[Part {
            document: &xml,
            content_id: None,
        }],
    )?;
    exchange.state = if accept {
        ExchangeState::Accepted
    } else {
        ExchangeState::Rejected
    };
    exchange.reason = reason.filter(|_| !accept);
    store(&key, &exchange)?;
    if accept {
        let mut switches = switches(&partner)?;
        switches.accept(&exchange);
        store(&cem::switches_key(&partner), &switches)?;
    }
    Ok(outcome)
}

/// `cem-list`: this connection's exchanges, both ways.
pub fn list(config: &str) -> Result<Vec<api::CemExchange>, wit::Error> {
    let connection = checked(config)?;
    let partner = &connection.connection.partner.as2_id;
    let mut exchanges = Vec::new();
    for key in state::list_keys(&format!("cem/{partner}/"))? {
        let Some(exchange) = load::<Exchange>(&key)? else {
            continue;
        };
        let cert = Cert::from_pem(&exchange.certificate_pem).map_err(|e| to_wit_error(&e))?;
        exchanges.push(api::CemExchange {
            request_id: exchange.request_id,
            sent: exchange.direction == Direction::Sent,
            certificate_subject: cert.subject(),
            certificate_serial: cert.serial_text(),
            respond_by: exchange.respond_by,
            state: match exchange.state {
                ExchangeState::Pending => "pending",
                ExchangeState::Accepted => "accepted",
                ExchangeState::Rejected => "rejected",
            }
            .into(),
            reason: exchange.reason,
        });
    }
    Ok(exchanges)
}
