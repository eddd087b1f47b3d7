//! AS2 messages (RFC 4130 §5–7): building what we send, processing what we
//! receive, and checking the MDN that comes back. No IO: the caller moves the
//! bytes and supplies the clock, the keys and the crypto provider.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Checked, MdnMode};
use crate::crypto::{CryptoProvider, DigestAlgorithm, PrivateKey};
use crate::error::Error;
use crate::headers::{self, Headers};
use crate::mdn::{self, Disposition, HttpMessage, Mdn, MdnFields, MdnRequest};
use crate::mic::Mic;
use crate::mime::{self, Entity};
use crate::signed;
use crate::smime;

/// A business document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// File name for Content-Disposition, if any.
    pub file_name: Option<String>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// An AS2 message ready to POST, and what must be remembered to check its MDN.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The Message-ID, angle brackets included.
    pub message_id: String,
    /// HTTP header fields.
    pub headers: Headers,
    /// HTTP body.
    pub body: Vec<u8>,
    /// The MIC the partner's MDN must return.
    pub mic: Mic,
}

/// A fresh RFC 5322 Message-ID: time, randomness, and our AS2 id as the domain.
pub fn new_message_id(station_id: &str, now: SystemTime, provider: &dyn CryptoProvider) -> String {
    let mut random = [0u8; 8];
    provider.fill_random(&mut random);
    let millis = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let domain: String = station_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("<{millis}.{random}@{domain}>")
}

/// The Content-Disposition of a payload: its file name, quoted (RFC 2183).
fn content_disposition(file_name: Option<&str>) -> String {
    match file_name {
        Some(name) => format!("attachment; filename={}", headers::quote_if_needed(name)),
        None => "attachment".to_string(),
    }
}

/// Builds the AS2 message for `document` as the connection says: payload
/// entity, signed (multipart/signed) and/or encrypted (application/pkcs7-mime),
/// with the AS2 headers (RFC 4130 §6).
pub fn build(
    connection: &Checked,
    document: &Document,
    station_key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<Outbound, Error> {
    let config = &connection.connection;
    let partner = &config.partner;
    let mut payload_headers = Headers::new();
    payload_headers.push("Content-Type", document.content_type.clone());
    // Binary: the payload is hashed and carried byte for byte, so no
    // canonicalization can make the partner's MIC differ from ours.
    payload_headers.push("Content-Transfer-Encoding", "binary");
    payload_headers.push(
        "Content-Disposition",
        content_disposition(document.file_name.as_deref()),
    );
    let payload = mime::entity(&payload_headers, &document.content);

    // (Content-Type, body) of the entity that goes on, and the MIC (RFC 4130 §7.3.1).
    let (mut content_type, mut body, mic) = match partner.signing.digest() {
        Some(algorithm) => {
            let mic = Mic::new(algorithm, provider.digest(algorithm, &payload));
            let signed = signed::sign_entity(
                &payload,
                station_key,
                algorithm,
                algorithm.micalg(),
                now,
                provider,
            )?;
            (signed.content_type, signed.body, mic)
        }
        None => {
            let algorithm = DigestAlgorithm::Sha256;
            // Encrypted-only: the MIC covers the MIME entity; plain: the content alone.
            let covered: &[u8] = if partner.encryption.cipher().is_some() {
                &payload
            } else {
                &document.content
            };
            let mic = Mic::new(algorithm, provider.digest(algorithm, covered));
            (document.content_type.clone(), document.content.clone(), mic)
        }
    };
    let mut transfer_encoding = None;
    if partner.signing.digest().is_none() {
        transfer_encoding = Some("binary");
    }
    if let Some(cipher) = partner.encryption.cipher() {
        let inner = match partner.signing.digest() {
            Some(_) => {
                let mut headers = Headers::new();
                headers.push("Content-Type", content_type.clone());
                mime::entity(&headers, &body)
            }
            None => payload,
        };
        body = smime::encrypt(
            &inner,
            &connection.partner_cert,
            cipher,
            partner.encryption.key_transport(),
            provider,
        )?;
        content_type =
            "application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"".to_string();
        transfer_encoding = Some("binary");
    }

    let message_id = new_message_id(&config.station.as2_id, now, provider);
    let mut http = Headers::new();
    http.push("AS2-Version", "1.2");
    http.push("AS2-From", headers::as2_id_header(&config.station.as2_id));
    http.push("AS2-To", headers::as2_id_header(&partner.as2_id));
    http.push("Message-ID", message_id.clone());
    http.push("Date", httpdate::fmt_http_date(now));
    http.push(
        "Subject",
        format!(
            "AS2 message{}",
            document
                .file_name
                .as_deref()
                .map(|name| format!(" {name}"))
                .unwrap_or_default()
        ),
    );
    http.push("MIME-Version", "1.0");
    http.push("Content-Type", content_type);
    if let Some(encoding) = transfer_encoding {
        http.push("Content-Transfer-Encoding", encoding);
    }
    http.push(
        "Content-Disposition",
        content_disposition(document.file_name.as_deref()),
    );
    if partner.mdn != MdnMode::None {
        let reply_to = config
            .station
            .url
            .clone()
            .unwrap_or_else(|| config.station.as2_id.clone());
        http.push("Disposition-Notification-To", reply_to);
    }
    if partner.mdn == MdnMode::Signed {
        http.push(
            "Disposition-Notification-Options",
            MdnRequest::signed_options(mic.algorithm),
        );
    }
    Ok(Outbound {
        message_id,
        headers: http,
        body,
        mic,
    })
}

/// What checking a partner's MDN concluded.
#[derive(Debug, Clone)]
pub struct MdnVerdict {
    /// The MDN as parsed.
    pub mdn: Mdn,
    /// Whether its Received-Content-MIC equals the MIC we computed.
    pub mic_matched: bool,
    /// Whether the MDN proves receipt: positive disposition, matching MIC,
    /// signed when we asked for a signed one.
    pub proves_receipt: bool,
}

/// Checks the partner's MDN for a message we sent (RFC 4130 §7.4): the
/// signature, the Original-Message-ID, and the MIC.
pub fn check_mdn(
    connection: &Checked,
    sent_message_id: &str,
    sent_mic: &Mic,
    http_headers: &Headers,
    body: &[u8],
    provider: &dyn CryptoProvider,
) -> Result<MdnVerdict, Error> {
    let mut mdn = mdn::parse(http_headers, body, &connection.partner_cert, provider)?;
    if mdn.original_message_id.trim() != sent_message_id {
        return Err(Error::malformed(format!(
            "the MDN acknowledges {}, not the message sent ({sent_message_id})",
            headers::truncate(&mdn.original_message_id, 200)
        )));
    }
    let mic_matched = mdn
        .received_mic
        .as_ref()
        .is_some_and(|reported| reported.matches(sent_mic));
    if mdn.received_mic.is_none() && mdn.disposition.is_positive() {
        mdn.warnings
            .push("the MDN reports no Received-Content-MIC".into());
    }
    let signature_ok = mdn.signed || connection.connection.partner.mdn != MdnMode::Signed;
    if !signature_ok {
        mdn.warnings.push(
            "a signed MDN was requested but an unsigned one came back: not proof of receipt".into(),
        );
    }
    let proves_receipt = mdn.disposition.is_positive() && mic_matched && signature_ok;
    Ok(MdnVerdict {
        mdn,
        mic_matched,
        proves_receipt,
    })
}

/// A document received and verified.
#[derive(Debug, Clone)]
pub struct Received {
    /// The document.
    pub document: Document,
    /// Its MIC, as reported in the MDN.
    pub mic: Mic,
    /// Whether it was signed (and verified).
    pub signed: bool,
    /// Whether it was encrypted.
    pub encrypted: bool,
}

/// The outcome of processing one inbound AS2 request.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The message's Message-ID.
    pub message_id: String,
    /// AS2-From, unquoted.
    pub partner: String,
    /// The document, when the message was processed; the error otherwise.
    pub result: Result<Received, Error>,
    /// The disposition reported in the MDN.
    pub disposition: Disposition,
    /// The MDN, if the sender asked for one, with where it goes.
    pub mdn: Option<OutgoingMdn>,
}

/// An MDN to deliver.
#[derive(Debug, Clone)]
pub struct OutgoingMdn {
    /// The MDN message.
    pub message: HttpMessage,
    /// Where to POST it; `None` means in the HTTP response (synchronous).
    pub async_url: Option<String>,
}

/// Processes a received AS2 request (RFC 4130 §7): checks the addressing,
/// decrypts, verifies, extracts the document, computes the MIC, and builds
/// the MDN the sender asked for. Message-level failures become the matching
/// disposition; only requests no MDN can answer (unknown partner, no
/// Message-ID) are errors.
pub fn receive(
    connection: &Checked,
    http_headers: &Headers,
    body: &[u8],
    station_key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<Inbound, Error> {
    let config = &connection.connection;
    let from = http_headers
        .get("AS2-From")
        .map(headers::as2_id_from_header);
    let to = http_headers.get("AS2-To").map(headers::as2_id_from_header);
    if from.as_deref() != Some(config.partner.as2_id.as_str())
        || to.as_deref() != Some(config.station.as2_id.as_str())
    {
        return Err(Error::UnknownPartner(format!(
            "AS2-From {:?} / AS2-To {:?} do not match this connection ({:?} to {:?})",
            from.unwrap_or_default(),
            to.unwrap_or_default(),
            config.partner.as2_id,
            config.station.as2_id
        )));
    }
    let message_id = http_headers
        .get("Message-ID")
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::malformed("the message has no Message-ID header"))?;
    let request = MdnRequest::from_headers(http_headers);

    let mic_algorithm = request
        .as_ref()
        .and_then(|r| r.signed_with.clone())
        .unwrap_or((
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha256.micalg().to_string(),
        ));
    let result = match request.as_ref().and_then(|r| r.unsupported_micalg.clone()) {
        Some(asked) => Err(Error::UnsupportedAlgorithm(format!(
            "none of the MIC algorithms asked for ({asked}) is supported"
        ))),
        None => unpack(
            connection,
            http_headers,
            body,
            station_key,
            &mic_algorithm,
            provider,
        ),
    };
    let disposition = match &result {
        Ok(_) => Disposition::processed(),
        Err(error) => Disposition::for_error(error),
    };
    let mdn = match request {
        None => None,
        Some(request) => {
            let explanation = match &result {
                Ok(_) => format!("The AS2 message {message_id} was received and processed."),
                Err(error) => format!("The AS2 message {message_id} was not processed: {error}"),
            };
            let mdn_id = new_message_id(&config.station.as2_id, now, provider);
            let fields = MdnFields {
                reporter: &config.station.as2_id,
                recipient: &config.partner.as2_id,
                original_message_id: &message_id,
                message_id: &mdn_id,
                disposition: &disposition,
                mic: result.as_ref().ok().map(|received| &received.mic),
                explanation: &explanation,
            };
            let signer = request
                .signed_with
                .as_ref()
                .map(|(algorithm, spelling)| (station_key, *algorithm, spelling.as_str()));
            Some(OutgoingMdn {
                message: mdn::build(&fields, signer, now, provider)?,
                async_url: request.async_url,
            })
        }
    };
    Ok(Inbound {
        message_id,
        partner: config.partner.as2_id.clone(),
        result,
        disposition,
        mdn,
    })
}

/// Decrypts and verifies down to the payload.
fn unpack(
    connection: &Checked,
    http_headers: &Headers,
    body: &[u8],
    station_key: &dyn PrivateKey,
    (mic_algorithm, mic_spelling): &(DigestAlgorithm, String),
    provider: &dyn CryptoProvider,
) -> Result<Received, Error> {
    let partner = &connection.connection.partner;
    let outer = Entity::from_parts(http_headers.clone(), body);
    let outer_type = outer.content_type();
    let is_enveloped = matches!(
        outer_type.value.as_str(),
        "application/pkcs7-mime" | "application/x-pkcs7-mime"
    ) && outer_type
        .param("smime-type")
        .is_none_or(|t| t.eq_ignore_ascii_case("enveloped-data"));

    let decrypted;
    let entity = if is_enveloped {
        let ciphertext = outer.decoded_body()?;
        decrypted = smime::decrypt(&ciphertext, station_key, provider)?;
        Entity::parse(&decrypted)?
    } else {
        if partner.require_encrypted {
            return Err(Error::InsufficientSecurity(
                "the message is not encrypted and this connection requires encryption".into(),
            ));
        }
        outer
    };

    let mic_of = |bytes: &[u8]| Mic {
        digest: provider.digest(*mic_algorithm, bytes),
        algorithm: *mic_algorithm,
        spelling: mic_spelling.clone(),
    };
    let content_type = entity.content_type();
    let (payload_entity, mic, signed) = if content_type.value == "multipart/signed" {
        let verified = signed::verify_entity(&entity, &connection.partner_cert, provider)?;
        // RFC 4130 §7.3.1: the MIC covers the signed entity, headers included.
        let mic = mic_of(verified.content);
        (Entity::parse(verified.content)?, mic, true)
    } else {
        if partner.require_signed {
            return Err(Error::InsufficientSecurity(
                "the message is not signed and this connection requires signing".into(),
            ));
        }
        let mic = if is_enveloped {
            mic_of(entity.raw)
        } else {
            mic_of(entity.body)
        };
        (entity, mic, false)
    };
    let document = Document {
        file_name: payload_entity.file_name(),
        content_type: payload_entity.content_type().value,
        content: payload_entity.decoded_body()?.into_owned(),
    };
    Ok(Received {
        document,
        mic,
        signed,
        encrypted: is_enveloped,
    })
}
