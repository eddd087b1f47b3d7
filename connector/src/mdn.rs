//! Message Disposition Notifications: the AS2 receipt (RFC 3798, RFC 4130 §7.4).

use std::time::SystemTime;

use crate::crypto::{CryptoProvider, DigestAlgorithm, PrivateKey};
use crate::error::Error;
use crate::headers::{self, Headers};
use crate::mic::{Mic, ReportedMic};
use crate::mime::{self, Entity};
use crate::signed::{self, SigningParams};
use crate::smime::Cert;

/// RFC 3798 §3.2.6 disposition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispositionType {
    /// `processed`
    Processed,
    /// `failed`
    Failed,
}

/// RFC 3798 §3.2.6.3 modifier kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModifierKind {
    /// `error`
    Error,
    /// `warning`
    Warning,
    /// `failure`
    Failure,
}

/// The `Disposition` field of an MDN (RFC 3798 §3.2.6, RFC 4130 §7.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `processed` or `failed`.
    pub disposition_type: DispositionType,
    /// e.g. `(Error, "decryption-failed")`.
    pub modifier: Option<(ModifierKind, String)>,
}

impl Disposition {
    /// `processed`: the document was received and stored.
    pub fn processed() -> Self {
        Disposition {
            disposition_type: DispositionType::Processed,
            modifier: None,
        }
    }

    /// `processed/error: <description>`.
    pub fn error(description: &str) -> Self {
        Disposition {
            disposition_type: DispositionType::Processed,
            modifier: Some((ModifierKind::Error, description.to_string())),
        }
    }

    /// `processed/warning: <description>`.
    pub fn warning(description: &str) -> Self {
        Disposition {
            disposition_type: DispositionType::Processed,
            modifier: Some((ModifierKind::Warning, description.to_string())),
        }
    }

    /// `failed/failure: <description>`.
    pub fn failure(description: &str) -> Self {
        Disposition {
            disposition_type: DispositionType::Failed,
            modifier: Some((ModifierKind::Failure, description.to_string())),
        }
    }

    /// Whether this acknowledges receipt: `processed`, plain or with a warning.
    pub fn is_positive(&self) -> bool {
        self.disposition_type == DispositionType::Processed
            && !matches!(self.modifier, Some((ModifierKind::Error, _)))
    }

    /// `processed/warning: duplicate-document`: the partner had the message already.
    pub fn is_duplicate_document(&self) -> bool {
        matches!(
            &self.modifier,
            Some((ModifierKind::Warning, description)) if description.eq_ignore_ascii_case("duplicate-document")
        ) && self.disposition_type == DispositionType::Processed
    }

    /// The disposition for a message that failed with `error` (RFC 4130 §7.4.3).
    pub fn for_error(error: &Error) -> Self {
        match error {
            Error::Decryption(_)
            | Error::NotEncryptedForUs(_)
            | Error::UnsupportedEncryption(_) => Disposition::error("decryption-failed"),
            Error::Authentication(_)
            | Error::CertificateExpired(_)
            | Error::CertificateNotYetValid(_)
            | Error::UnsupportedSignature(_) => Disposition::error("authentication-failed"),
            Error::Integrity(_) => Disposition::error("integrity-check-failed"),
            Error::InsufficientSecurity(_) => Disposition::error("insufficient-message-security"),
            Error::UnsupportedFormat(_) => Disposition::failure("unsupported format"),
            // RFC 5402 §5.
            Error::Decompression(_) => Disposition::error("decompression-failed"),
            Error::UnsupportedMic(_) => Disposition::failure("unsupported MIC-algorithms"),
            _ => Disposition::error("unexpected-processing-error"),
        }
    }

    /// Parses the part after the action modes, e.g. `processed/error: decryption-failed`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        // Skip `automatic-action/MDN-sent-automatically;`.
        let outcome = value.split_once(';').map_or(value, |(_, rest)| rest).trim();
        let (kind, modifier) = match outcome.split_once('/') {
            Some((kind, modifier)) => (kind.trim(), Some(modifier.trim())),
            None => (outcome, None),
        };
        let disposition_type = if kind.eq_ignore_ascii_case("processed") {
            DispositionType::Processed
        } else if kind.eq_ignore_ascii_case("failed") {
            DispositionType::Failed
        } else {
            return Err(Error::malformed(format!(
                "unknown MDN disposition type {:?}",
                headers::truncate(kind, 40)
            )));
        };
        let modifier = match modifier {
            None => None,
            Some(modifier) => {
                let (kind, description) = modifier.split_once(':').unwrap_or((modifier, ""));
                let kind = match kind.trim().to_ascii_lowercase().as_str() {
                    "error" => ModifierKind::Error,
                    "warning" => ModifierKind::Warning,
                    "failure" => ModifierKind::Failure,
                    other => {
                        return Err(Error::malformed(format!(
                            "unknown MDN disposition modifier {:?}",
                            headers::truncate(other, 40)
                        )));
                    }
                };
                Some((kind, description.trim().to_string()))
            }
        };
        Ok(Disposition {
            disposition_type,
            modifier,
        })
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.disposition_type {
            DispositionType::Processed => "processed",
            DispositionType::Failed => "failed",
        })?;
        if let Some((kind, description)) = &self.modifier {
            let kind = match kind {
                ModifierKind::Error => "error",
                ModifierKind::Warning => "warning",
                ModifierKind::Failure => "failure",
            };
            write!(f, "/{kind}: {description}")?;
        }
        Ok(())
    }
}

/// What the sender asked for in Disposition-Notification-To/-Options and
/// Receipt-Delivery-Option (RFC 4130 §7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnRequest {
    /// A signed MDN is asked for (signed-receipt-protocol=pkcs7-signature).
    pub signed: bool,
    /// The first signed-receipt-micalg we support, spelled as the sender
    /// spelled it: the MIC's digest and the MDN signature's.
    pub micalg: Option<(DigestAlgorithm, String)>,
    /// Deliver asynchronously to this URL rather than in the HTTP response.
    pub async_url: Option<String>,
    /// The MIC algorithms asked for were all unknown to us.
    pub unsupported_micalg: Option<String>,
}

impl MdnRequest {
    /// Reads the request from the message's headers; `None` when no MDN is wanted.
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        headers.get("Disposition-Notification-To")?;
        let mut request = MdnRequest {
            signed: false,
            micalg: None,
            async_url: headers
                .get("Receipt-Delivery-Option")
                .map(|url| url.trim().to_string())
                .filter(|url| !url.is_empty()),
            unsupported_micalg: None,
        };
        let options = headers
            .get("Disposition-Notification-Options")
            .unwrap_or("");
        let mut wants_signature = false;
        let mut micalgs: Vec<&str> = Vec::new();
        for option in options.split(';') {
            let Some((name, value)) = option.split_once('=') else {
                continue;
            };
            let mut values = value.split(',').map(str::trim);
            let _importance = values.next();
            let name = name.trim();
            if name.eq_ignore_ascii_case("signed-receipt-protocol") {
                wants_signature = values.any(|v| v.eq_ignore_ascii_case("pkcs7-signature"));
            } else if name.eq_ignore_ascii_case("signed-receipt-micalg") {
                micalgs = values.filter(|v| !v.is_empty()).collect();
            }
        }
        request.signed = wants_signature;
        // RFC 4130 §7.3: the list is in order of preference; take the first we support.
        request.micalg = micalgs
            .iter()
            .find_map(|name| DigestAlgorithm::from_micalg(name).map(|alg| (alg, name.to_string())));
        if request.micalg.is_none() && !micalgs.is_empty() {
            request.unsupported_micalg = Some(micalgs.join(", "));
        }
        Some(request)
    }

    /// The Disposition-Notification-Options value asking for a signed MDN with `algorithm`.
    pub fn signed_options(algorithm: DigestAlgorithm) -> String {
        format!(
            "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, {}",
            algorithm.micalg()
        )
    }
}

/// The fields of an MDN to build.
#[derive(Debug, Clone)]
pub struct MdnFields<'a> {
    /// Our AS2 identifier (the MDN's AS2-From and Final-Recipient).
    pub reporter: &'a str,
    /// The partner's AS2 identifier (AS2-To).
    pub recipient: &'a str,
    /// Message-ID of the message acknowledged.
    pub original_message_id: &'a str,
    /// The MDN's own Message-ID.
    pub message_id: &'a str,
    /// The disposition.
    pub disposition: &'a Disposition,
    /// The MIC of what was received, when computed.
    pub mic: Option<&'a Mic>,
    /// A sentence for people, in the text part.
    pub explanation: &'a str,
}

/// An HTTP message: header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMessage {
    /// The header fields.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

/// Builds an MDN (RFC 3798 §3, RFC 4130 §7.4.2): a multipart/report, signed
/// when `signer` is given, with the AS2 headers for the HTTP response or the
/// asynchronous POST.
pub fn build(
    fields: &MdnFields<'_>,
    signer: Option<(&dyn PrivateKey, SigningParams<'_>)>,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<HttpMessage, Error> {
    let mut notification = Headers::new();
    notification.push(
        "Reporting-UA",
        concat!("as2-connector/", env!("CARGO_PKG_VERSION")),
    );
    notification.push(
        "Original-Recipient",
        format!("rfc822; {}", headers::as2_id_header(fields.reporter)),
    );
    notification.push(
        "Final-Recipient",
        format!("rfc822; {}", headers::as2_id_header(fields.reporter)),
    );
    notification.push("Original-Message-ID", fields.original_message_id);
    notification.push(
        "Disposition",
        format!(
            "automatic-action/MDN-sent-automatically; {}",
            fields.disposition
        ),
    );
    if let Some(mic) = fields.mic {
        notification.push("Received-Content-MIC", mic.header_value());
    }
    let mut notification_body = Vec::new();
    notification.write_to(&mut notification_body);

    let mut random = [0u8; 12];
    provider.fill_random(&mut random);
    let boundary = mime::new_boundary(&random);
    let mut text_headers = Headers::new();
    text_headers.push("Content-Type", "text/plain; charset=us-ascii");
    text_headers.push("Content-Transfer-Encoding", "7bit");
    let text_part = mime::entity(
        &text_headers,
        format!("{}\r\n", fields.explanation).as_bytes(),
    );
    let mut dn_headers = Headers::new();
    dn_headers.push("Content-Type", "message/disposition-notification");
    dn_headers.push("Content-Transfer-Encoding", "7bit");
    let dn_part = mime::entity(&dn_headers, &notification_body);
    let mut report_body = Vec::new();
    mime::write_multipart(&boundary, &[&text_part, &dn_part], &mut report_body);
    let mut report_headers = Headers::new();
    report_headers.push(
        "Content-Type",
        format!("multipart/report; report-type=disposition-notification; boundary=\"{boundary}\""),
    );

    let (content_type, body) = match signer {
        None => (
            report_headers
                .get("Content-Type")
                .unwrap_or_default()
                .to_string(),
            report_body,
        ),
        Some((key, params)) => {
            let report = mime::entity(&report_headers, &report_body);
            let signed = signed::sign_entity(&report, key, params, now, provider)?;
            (signed.content_type.clone(), signed.body().to_vec())
        }
    };
    let mut http = Headers::new();
    http.push("AS2-Version", "1.2");
    http.push("AS2-From", headers::as2_id_header(fields.reporter));
    http.push("AS2-To", headers::as2_id_header(fields.recipient));
    http.push("Message-ID", fields.message_id);
    http.push("Date", httpdate::fmt_http_date(now));
    http.push("Subject", "AS2 Message Disposition Notification");
    http.push("EDIINT-Features", crate::message::FEATURES);
    http.push("MIME-Version", "1.0");
    http.push("Content-Type", content_type);
    Ok(HttpMessage {
        headers: http,
        body,
    })
}

/// A parsed MDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mdn {
    /// The MDN's own Message-ID.
    pub message_id: Option<String>,
    /// The message it acknowledges.
    pub original_message_id: String,
    /// The disposition.
    pub disposition: Disposition,
    /// The Received-Content-MIC, if any.
    pub received_mic: Option<ReportedMic>,
    /// Whether the MDN was signed (and verified: an MDN whose signature fails is an error).
    pub signed: bool,
    /// Deviations from RFC 4130 that were tolerated.
    pub warnings: Vec<String>,
}

/// Parses an MDN received as an HTTP response or POST, and verifies its
/// signature with the partner's certificate when it is signed.
pub fn parse(
    http_headers: &Headers,
    body: &[u8],
    partner: &Cert,
    provider: &dyn CryptoProvider,
) -> Result<Mdn, Error> {
    let mut warnings = Vec::new();
    if body.is_empty() {
        return Err(Error::malformed("the response carries no MDN (empty body)"));
    }
    let outer = Entity::from_parts(http_headers.clone(), body);
    let content_type = outer.content_type();
    let (report_owned, signed) = match content_type.value.as_str() {
        "multipart/signed" => {
            let verified = signed::verify_entity(&outer, partner, false, provider)?;
            (verified.content.to_vec(), true)
        }
        "multipart/report" => {
            warnings.push("the MDN is not signed".to_string());
            (
                mime::entity(&single_header("Content-Type", http_headers), body),
                false,
            )
        }
        other => {
            return Err(Error::malformed(format!(
                "the response is not an MDN: Content-Type {:?}",
                headers::truncate(other, 60)
            )));
        }
    };
    let report = Entity::parse(&report_owned)?;
    let report_type = report.content_type();
    if report_type.value != "multipart/report" {
        return Err(Error::malformed(format!(
            "the signed MDN holds {:?}, not multipart/report",
            headers::truncate(&report_type.value, 60)
        )));
    }
    let boundary = report_type
        .param("boundary")
        .ok_or_else(|| Error::malformed("the MDN's multipart/report has no boundary"))?;
    let notification = mime::split_multipart(report.body, boundary)?
        .into_iter()
        .map(Entity::parse)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|part| part.content_type().value == "message/disposition-notification")
        .ok_or_else(|| Error::malformed("the MDN has no message/disposition-notification part"))?;
    let body = notification.decoded_body()?;
    let (fields, _) = headers::parse_block(&body)?;
    let original_message_id = fields
        .get("Original-Message-ID")
        .ok_or_else(|| Error::malformed("the MDN has no Original-Message-ID"))?
        .to_string();
    let disposition = Disposition::parse(
        fields
            .get("Disposition")
            .ok_or_else(|| Error::malformed("the MDN has no Disposition"))?,
    )?;
    if fields.get("Original-Recipient").is_none() {
        // Optional in RFC 3798 §3.2.3, but most stacks send it; note it for support staff.
        warnings.push("the MDN has no Original-Recipient field".to_string());
    }
    let received_mic = fields.get("Received-Content-MIC").map(ReportedMic::parse);
    if let Some(mic) = &received_mic
        && mic.algorithm_text.is_none()
    {
        warnings.push("the MDN's Received-Content-MIC names no algorithm".to_string());
    }
    Ok(Mdn {
        message_id: http_headers.get("Message-ID").map(str::to_string),
        original_message_id,
        disposition,
        received_mic,
        signed,
        warnings,
    })
}

/// Whether an inbound HTTP request carries an MDN rather than an AS2 message:
/// a `multipart/report`, bare or as the first part of a `multipart/signed`.
/// RFC 4130 §7.3 has asynchronous MDNs POSTed like messages, often to the
/// same URL, so the endpoint must tell the two apart. Only the start of
/// `body` is read, so that a large message is not read to find out.
pub fn is_mdn(http_headers: &Headers, body: &dyn crate::bytes::Source) -> Result<bool, Error> {
    let content_type = http_headers.content_type();
    match content_type.value.as_str() {
        "multipart/report" => Ok(true),
        "multipart/signed" => {
            let Some(boundary) = content_type.param("boundary") else {
                return Ok(false);
            };
            let look = (headers::MAX_HEADER_BLOCK as u64 + (8 << 10)).min(body.len());
            let head = crate::bytes::read_all(&crate::bytes::Window::new(body, 0..look))?;
            let delimiter = [b"--", boundary.as_bytes()].concat();
            // The first part's header block follows the first delimiter line.
            let mut offset = 0;
            for line in head.split_inclusive(|&b| b == b'\n') {
                offset += line.len();
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                if mime::delimiter_line(line, &delimiter) == Some(false) {
                    let first = headers::parse_block(&head[offset..]).map(|(fields, _)| fields);
                    return Ok(
                        first.is_ok_and(|fields| fields.content_type().value == "multipart/report")
                    );
                }
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

fn single_header(name: &str, from: &Headers) -> Headers {
    let mut headers = Headers::new();
    if let Some(value) = from.get(name) {
        headers.push(name, value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_round_trip_through_text() {
        for text in [
            "processed",
            "processed/warning: duplicate-document",
            "processed/error: decryption-failed",
            "failed/failure: unsupported MIC-algorithms",
        ] {
            let parsed =
                Disposition::parse(&format!("automatic-action/MDN-sent-automatically; {text}"))
                    .unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        assert!(Disposition::processed().is_positive());
        assert!(Disposition::warning("duplicate-document").is_positive());
        assert!(!Disposition::error("decryption-failed").is_positive());
    }

    /// Every refusal names its cause (RFC 4130 §7.4.3, RFC 3798 §3.2.6.3);
    /// `docs/hardening.md` lists the same table.
    #[test]
    fn each_error_kind_gets_the_disposition_that_names_it() {
        let s = || "x".to_string();
        let table = [
            (Error::Decryption(s()), "processed/error: decryption-failed"),
            (
                Error::NotEncryptedForUs(s()),
                "processed/error: decryption-failed",
            ),
            (
                Error::UnsupportedEncryption(s()),
                "processed/error: decryption-failed",
            ),
            (
                Error::Authentication(s()),
                "processed/error: authentication-failed",
            ),
            (
                Error::CertificateExpired(s()),
                "processed/error: authentication-failed",
            ),
            (
                Error::CertificateNotYetValid(s()),
                "processed/error: authentication-failed",
            ),
            (
                Error::UnsupportedSignature(s()),
                "processed/error: authentication-failed",
            ),
            (
                Error::Integrity(s()),
                "processed/error: integrity-check-failed",
            ),
            (
                Error::InsufficientSecurity(s()),
                "processed/error: insufficient-message-security",
            ),
            (
                Error::Decompression(s()),
                "processed/error: decompression-failed",
            ),
            (
                Error::UnsupportedFormat(s()),
                "failed/failure: unsupported format",
            ),
            (
                Error::UnsupportedMic(s()),
                "failed/failure: unsupported MIC-algorithms",
            ),
            (
                Error::Malformed(s()),
                "processed/error: unexpected-processing-error",
            ),
            (
                Error::UnsupportedAlgorithm(s()),
                "processed/error: unexpected-processing-error",
            ),
            (
                Error::Storage(s()),
                "processed/error: unexpected-processing-error",
            ),
            (
                Error::KeyStore(s()),
                "processed/error: unexpected-processing-error",
            ),
        ];
        for (error, expected) in table {
            assert_eq!(
                Disposition::for_error(&error).to_string(),
                expected,
                "{error:?}"
            );
        }
        // The stage an unusable algorithm was met in decides which it is.
        let unusable = || Error::UnsupportedAlgorithm(s());
        assert_eq!(
            unusable().in_decryption(),
            Error::UnsupportedEncryption(s())
        );
        assert_eq!(
            unusable().in_verification(),
            Error::UnsupportedSignature(s())
        );
        assert_eq!(Error::Integrity(s()).in_decryption(), Error::Integrity(s()));
    }

    #[test]
    fn mdn_request_takes_the_first_supported_micalg_in_the_senders_spelling() {
        let mut headers = Headers::new();
        headers.push("Disposition-Notification-To", "mailto:as2@example.com");
        headers.push(
            "disposition-notification-options",
            "signed-receipt-micalg=optional, md5, SHA256, sha1; signed-receipt-protocol=optional, pkcs7-signature",
        );
        let request = MdnRequest::from_headers(&headers).unwrap();
        assert!(request.signed);
        assert_eq!(
            request.micalg,
            Some((DigestAlgorithm::Sha256, "SHA256".into()))
        );
        assert_eq!(request.async_url, None);
    }
}
