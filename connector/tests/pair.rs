//! Two stations driven against each other through the engine, no IO
//! (as quinn-proto's `Pair` tests do): send, receive, MDN, MIC check.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use as2_connector::ErrorCode;
use as2_connector::config::{Checked, Connection};
use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::crypto::{
    Cbc, Cipher, CryptoError, CryptoProvider, DigestAlgorithm, Gcm, Hasher, KeyTransport,
    PrivateKey, SignedDigest,
};
use as2_connector::headers::Headers;
use as2_connector::mdn::Disposition;
use as2_connector::message::{self, Document, Inbound, MdnVerdict, Outbound};

struct Station {
    generated: GeneratedKey,
}

fn stations() -> &'static (Station, Station, Station) {
    static STATIONS: OnceLock<(Station, Station, Station)> = OnceLock::new();
    STATIONS.get_or_init(|| {
        let now = SystemTime::now() - Duration::from_secs(3600);
        let year = Duration::from_secs(365 * 86400);
        let make = |cn| Station {
            generated: generate_station_key(cn, now, year).unwrap(),
        };
        (make("ACME"), make("GLOBEX"), make("INTRUDER"))
    })
}

fn connection(ours: &str, theirs: &str, their_cert: &str, extra: &str) -> Checked {
    let json = format!(
        r#"{{"name":"test","station":{{"as2_id":"{ours}","private_key":"k","url":"http://127.0.0.1/as2"}},
            "partner":{{"as2_id":"{theirs}","url":"http://127.0.0.1/as2","certificate":{cert}{extra}}}}}"#,
        cert = serde_json::to_string(their_cert).unwrap()
    );
    Connection::check(&json, SystemTime::now()).unwrap()
}

fn document() -> Document {
    Document {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GLOBEX         *261128*0400*U*00401*000000001*0*P*>~\nST*850*0001~\nSE*2*0001~\n".to_vec(),
    }
}

/// ACME's connection to GLOBEX (partner fields `sender_extra`) and GLOBEX's
/// from ACME (partner fields `receiver_extra`).
fn connections(sender_extra: &str, receiver_extra: &str) -> (Checked, Checked) {
    let (acme, globex, _) = stations();
    (
        connection(
            "ACME",
            "GLOBEX",
            &globex.generated.certificate_pem,
            sender_extra,
        ),
        connection(
            "GLOBEX",
            "ACME",
            &acme.generated.certificate_pem,
            receiver_extra,
        ),
    )
}

/// ACME builds the message for `document()`, signing with `signer`.
fn send(sender: &Checked, signer: &dyn PrivateKey) -> Outbound {
    send_document(sender, &document(), signer)
}

/// ACME builds the message for `document`, signing with `signer`.
fn send_document(sender: &Checked, document: &Document, signer: &dyn PrivateKey) -> Outbound {
    message::build(
        sender,
        document,
        signer,
        SystemTime::now(),
        &RustCryptoProvider,
    )
    .unwrap()
}

/// GLOBEX receives a request it has not seen before.
fn deliver(
    receiver: &Checked,
    headers: &Headers,
    body: &[u8],
) -> Result<Inbound, as2_connector::Error> {
    deliver_with_history(receiver, headers, body, &mut |_| Ok(false))
}

/// GLOBEX receives a request, asking `received_before` about its Message-ID.
fn deliver_with_history(
    receiver: &Checked,
    headers: &Headers,
    body: &[u8],
    received_before: &mut dyn FnMut(&str) -> Result<bool, as2_connector::Error>,
) -> Result<Inbound, as2_connector::Error> {
    let globex = &stations().1;
    message::receive(
        receiver,
        headers,
        body,
        message::StationKeys::single(&globex.generated.key),
        received_before,
        SystemTime::now(),
        &RustCryptoProvider,
    )
}

/// ACME checks GLOBEX's MDN for `outbound`.
fn check(sender: &Checked, outbound: &Outbound, inbound: &Inbound) -> MdnVerdict {
    let mdn = inbound.mdn.as_ref().expect("an MDN was asked for");
    message::check_mdn(
        sender,
        &outbound.message_id,
        &outbound.mic,
        &mdn.message.headers,
        &mdn.message.body,
        &RustCryptoProvider,
    )
    .unwrap()
}

/// The headers with `edit` applied to each (name, value); `None` drops the field.
fn edit_headers(
    headers: &Headers,
    edit: impl Fn(&str, &str) -> Option<(String, String)>,
) -> Headers {
    headers.iter().filter_map(|(n, v)| edit(n, v)).collect()
}

#[test]
fn signed_encrypted_message_is_received_byte_for_byte_and_the_signed_mdn_proves_receipt() {
    let (sender, receiver) = connections("", "");
    let outbound = send(&sender, &stations().0.generated.key);
    assert!(
        outbound
            .headers
            .get("Content-Type")
            .unwrap()
            .starts_with("application/pkcs7-mime")
    );
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(inbound.disposition, Disposition::processed());
    assert!(inbound.mdn.as_ref().unwrap().async_url.is_none());
    let received = inbound.result.as_ref().unwrap();
    assert_eq!(received.document, document());
    assert!(received.signed && received.encrypted);
    assert_eq!(received.mic, outbound.mic);
    let verdict = check(&sender, &outbound, &inbound);
    assert!(verdict.mdn.signed && verdict.mic_matched && verdict.proves_receipt);
    assert_eq!(verdict.mdn.disposition, Disposition::processed());
}

#[test]
fn tampered_signed_body_yields_integrity_check_failed() {
    let (sender, receiver) =
        connections(r#","encryption":"none""#, r#","require_encrypted":false"#);
    let outbound = send(&sender, &stations().0.generated.key);
    let mut body = outbound.body.clone();
    let at = body.windows(6).position(|w| w == b"ST*850").unwrap();
    body[at + 3] = b'9';
    let inbound = deliver(&receiver, &outbound.headers, &body).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("integrity-check-failed")
    );
    assert_eq!(
        inbound.result.as_ref().unwrap_err().code(),
        ErrorCode::IntegrityCheckFailed
    );
    // The MDN still goes back, signed, and tells the sender it failed.
    let verdict = check(&sender, &outbound, &inbound);
    assert!(!verdict.proves_receipt);
    assert_eq!(
        verdict.mdn.disposition,
        Disposition::error("integrity-check-failed")
    );
}

#[test]
fn message_for_another_certificate_yields_decryption_failed() {
    let (acme, _, intruder) = stations();
    // ACME encrypts to INTRUDER's certificate, but GLOBEX receives it.
    let sender = connection("ACME", "GLOBEX", &intruder.generated.certificate_pem, "");
    let (_, receiver) = connections("", "");
    let outbound = send(&sender, &acme.generated.key);
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(inbound.disposition, Disposition::error("decryption-failed"));
}

#[test]
fn signature_from_an_unknown_signer_yields_authentication_failed() {
    let (sender, receiver) = connections("", "");
    // Signed with INTRUDER's key while claiming to be ACME.
    let outbound = send(&sender, &stations().2.generated.key);
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("authentication-failed")
    );
}

#[test]
fn unsigned_message_when_signing_is_required_yields_insufficient_message_security() {
    let (sender, receiver) = connections(r#","signing":"none""#, "");
    let outbound = send(&sender, &stations().0.generated.key);
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("insufficient-message-security")
    );
}

#[test]
fn unknown_as2_to_is_an_error_not_an_mdn() {
    let (acme, globex, _) = stations();
    let sender = connection(
        "ACME",
        "SOMEONE-ELSE",
        &globex.generated.certificate_pem,
        "",
    );
    let (_, receiver) = connections("", "");
    let outbound = send(&sender, &acme.generated.key);
    let err = deliver(&receiver, &outbound.headers, &outbound.body).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownPartner);
}

#[test]
fn expired_partner_certificate_is_rejected_with_cert_has_expired() {
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 365 * 86400);
    let old = generate_station_key("OLD", long_ago, Duration::from_secs(86400)).unwrap();
    let json = format!(
        r#"{{"name":"t","station":{{"as2_id":"A","private_key":"k"}},"partner":{{"as2_id":"B","url":"https://b.example","certificate":{}}}}}"#,
        serde_json::to_string(&old.certificate_pem).unwrap()
    );
    let err = Connection::check(&json, SystemTime::now()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CertHasExpired);
    assert_eq!(err.code().as_str(), "CERT_HAS_EXPIRED");
}

/// Every outbound option the engine offers, sent and received through the
/// engine: the document arrives intact and the signed MDN proves receipt.
/// Every outbound option the engine offers, sent and received through the
/// engine: the document arrives intact and the signed MDN proves receipt.
#[test]
fn every_algorithm_combination_round_trips_with_a_matching_mic() {
    let mut cases = Vec::new();
    for signing in ["none", "sha1", "sha224", "sha256", "sha384", "sha512"] {
        for encryption in [
            "none",
            "3des",
            "aes128-cbc",
            "aes192-cbc",
            "aes256-cbc",
            "aes128-gcm",
            "aes192-gcm",
            "aes256-gcm",
        ] {
            cases.push(format!(
                r#","signing":"{signing}","encryption":"{encryption}""#
            ));
        }
    }
    for scheme in ["pkcs1v15", "pss"] {
        for transport in ["rsa-pkcs1v15", "rsa-oaep-sha1", "rsa-oaep-sha256"] {
            cases.push(format!(
                r#","signature_scheme":"{scheme}","key_transport":"{transport}""#
            ));
        }
    }
    for compression in ["before-signing", "after-signing"] {
        for encryption in ["none", "aes256-cbc"] {
            for encoding in ["binary", "base64"] {
                cases.push(format!(r#","compression":"{compression}","encryption":"{encryption}","encoding":"{encoding}""#));
            }
        }
    }
    cases.push(r#","encryption":"none","signature_encoding":"binary""#.to_string());
    cases.push(r#","encoding":"base64""#.to_string());
    cases.push(r#","mdn":"unsigned""#.to_string());
    cases.push(r#","mdn_micalg":"sha512""#.to_string());
    for case in cases {
        let (sender, receiver) = connections(
            &case,
            r#","require_signed":false,"require_encrypted":false"#,
        );
        let outbound = send(&sender, &stations().0.generated.key);
        let inbound = deliver(&receiver, &outbound.headers, &outbound.body)
            .unwrap_or_else(|e| panic!("{case}: receive: {e}"));
        let received = inbound
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(received.document, document(), "{case}");
        assert_eq!(received.mic, outbound.mic, "{case}");
        assert!(check(&sender, &outbound, &inbound).proves_receipt, "{case}");
        // Read a short piece at a time with every layer spooled, as a
        // document too large to hold is: the same document and MIC.
        let spooled = receive_from(
            &receiver,
            &outbound.headers,
            &Trickle(outbound.body.clone()),
        )
        .unwrap_or_else(|e| panic!("{case}: spooled receive: {e}"));
        let spooled = spooled
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{case}: spooled: {e}"));
        assert!(
            matches!(spooled.document.content, message::Content::Spooled { .. }),
            "{case}: the document was held, not spooled"
        );
        assert_eq!(spooled.document, document(), "{case}: spooled");
        assert_eq!(spooled.mic, outbound.mic, "{case}: spooled");
    }
}

#[test]
fn lf_only_copy_of_a_crlf_signed_text_part_verifies_unless_canonicalization_is_prevented() {
    use as2_connector::crypto::SignatureScheme;
    use as2_connector::signed::{self, SigningParams};
    let (acme, _, _) = stations();
    let provider = RustCryptoProvider;
    let signed_text = b"Content-Type: text/plain\r\n\r\nline one\r\nline two\r\n".to_vec();
    let params = SigningParams {
        algorithm: as2_connector::crypto::DigestAlgorithm::Sha256,
        scheme: SignatureScheme::RsaPkcs1v15,
        micalg: "sha-256",
        binary_signature: false,
    };
    let entity = signed::sign_entity(
        &signed_text,
        &acme.generated.key,
        params,
        SystemTime::now(),
        &provider,
    )
    .unwrap();
    // A relay rewrote CRLF to LF in the text part.
    let lf_body: Vec<u8> = {
        let text = String::from_utf8(entity.body().to_vec()).unwrap();
        text.replacen(
            "Content-Type: text/plain\r\n\r\nline one\r\nline two",
            "Content-Type: text/plain\n\nline one\nline two",
            1,
        )
        .into_bytes()
    };
    let mut headers = Headers::new();
    headers.push("Content-Type", entity.content_type.clone());
    let outer = as2_connector::mime::Entity::from_parts(headers, &lf_body);
    let partner = as2_connector::smime::Cert::from_pem(&acme.generated.certificate_pem).unwrap();
    let verified = signed::verify_entity(&outer, &partner, false, &provider).unwrap();
    assert_eq!(verified.content.as_ref(), signed_text.as_slice());
    let err = signed::verify_entity(&outer, &partner, true, &provider).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityCheckFailed);
}

#[test]
fn unsigned_mdn_where_a_signed_one_was_asked_is_a_warning_and_not_proof() {
    let (sender, receiver) = connections("", "");
    let outbound = send(&sender, &stations().0.generated.key);
    // A partner that ignores Disposition-Notification-Options answers unsigned.
    let headers = edit_headers(&outbound.headers, |n, v| {
        (!n.eq_ignore_ascii_case("Disposition-Notification-Options"))
            .then(|| (n.to_string(), v.to_string()))
    });
    let inbound = deliver(&receiver, &headers, &outbound.body).unwrap();
    let verdict = check(&sender, &outbound, &inbound);
    assert!(!verdict.mdn.signed);
    assert!(verdict.mic_matched);
    assert!(!verdict.proves_receipt);
    assert!(
        verdict
            .mdn
            .warnings
            .iter()
            .any(|w| w.contains("not proof of receipt")),
        "{:?}",
        verdict.mdn.warnings
    );
}

#[test]
fn legacy_x_pkcs7_content_types_and_lower_case_header_names_are_accepted() {
    let (sender, receiver) = connections("", "");
    let outbound = send(&sender, &stations().0.generated.key);
    let headers = edit_headers(&outbound.headers, |n, v| {
        Some((
            n.to_ascii_lowercase(),
            v.replace("application/pkcs7-mime", "application/x-pkcs7-mime"),
        ))
    });
    let inbound = deliver(&receiver, &headers, &outbound.body).unwrap();
    assert_eq!(inbound.result.unwrap().document, document());
}

#[test]
fn opaque_signed_data_gets_failed_unsupported_format() {
    let acme = &stations().0;
    let provider = RustCryptoProvider;
    let now = SystemTime::now();
    let (_, receiver) = connections("", r#","require_encrypted":false"#);
    let sha256 = as2_connector::crypto::DigestAlgorithm::Sha256;
    let signature = as2_connector::smime::sign_detached_digest(
        provider.digest(sha256, b"x"),
        &acme.generated.key,
        as2_connector::crypto::DigestAlgorithm::Sha256,
        as2_connector::crypto::SignatureScheme::RsaPkcs1v15,
        now,
        &provider,
    )
    .unwrap();
    let mut headers = Headers::new();
    for (n, v) in [
        ("AS2-From", "ACME"),
        ("AS2-To", "GLOBEX"),
        ("Message-ID", "<opaque@ACME>"),
        (
            "Content-Type",
            "application/pkcs7-mime; smime-type=signed-data",
        ),
        ("Disposition-Notification-To", "x@y"),
    ] {
        headers.push(n, v);
    }
    let inbound = deliver(&receiver, &headers, &signature).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::failure("unsupported format")
    );
}

#[test]
fn a_repeated_message_id_is_answered_duplicate_document_with_the_mic_and_not_delivered() {
    let (sender, receiver) = connections("", "");
    let outbound = send(&sender, &stations().0.generated.key);
    let mut asked = Vec::new();
    let inbound = deliver_with_history(&receiver, &outbound.headers, &outbound.body, &mut |id| {
        asked.push(id.to_string());
        Ok(true)
    })
    .unwrap();
    assert_eq!(asked, vec![outbound.message_id.clone()]);
    assert!(inbound.duplicate);
    assert_eq!(
        inbound.disposition,
        Disposition::warning("duplicate-document")
    );
    let verdict = check(&sender, &outbound, &inbound);
    assert_eq!(
        verdict.mdn.disposition,
        Disposition::warning("duplicate-document")
    );
    // The repeat proves receipt: the first copy was stored.
    assert!(verdict.mic_matched && verdict.proves_receipt);
}

#[test]
fn a_forged_repeat_is_not_taken_for_a_duplicate() {
    let (sender, receiver) = connections("", "");
    let forged = send(&sender, &stations().2.generated.key);
    let mut asked = false;
    let inbound = deliver_with_history(&receiver, &forged.headers, &forged.body, &mut |_| {
        asked = true;
        Ok(true)
    })
    .unwrap();
    assert!(!asked, "history is consulted only for messages that verify");
    assert!(!inbound.duplicate);
    assert_eq!(
        inbound.disposition,
        Disposition::error("authentication-failed")
    );
}

#[test]
fn async_mdn_request_names_the_station_url_and_the_mdn_goes_there() {
    let (sender, receiver) = connections(r#","mdn_delivery":"async""#, "");
    let outbound = send(&sender, &stations().0.generated.key);
    assert_eq!(
        outbound.headers.get("Receipt-Delivery-Option"),
        Some("http://127.0.0.1/as2")
    );
    assert_eq!(
        outbound.headers.get("EDIINT-Features"),
        Some("AS2-Reliability, multiple-attachments, CEM")
    );
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    let mdn = inbound.mdn.as_ref().unwrap();
    assert_eq!(mdn.async_url.as_deref(), Some("http://127.0.0.1/as2"));
    assert!(as2_connector::mdn::is_mdn(&mdn.message.headers, &mdn.message.body).unwrap());
    assert!(!as2_connector::mdn::is_mdn(&outbound.headers, &outbound.body).unwrap());
    // A signed MDN is told from its first part's header block alone.
    let signed_mdn = &mdn.message;
    assert!(
        signed_mdn
            .headers
            .content_type()
            .value
            .starts_with("multipart/signed")
    );
    let verdict = check(&sender, &outbound, &inbound);
    assert!(verdict.proves_receipt);
}

#[test]
fn async_mdn_without_a_station_url_is_a_configuration_error() {
    let (_, globex, _) = stations();
    let json = format!(
        r#"{{"name":"t","station":{{"as2_id":"ACME","private_key":"k"}},
            "partner":{{"as2_id":"GLOBEX","url":"http://127.0.0.1/as2","certificate":{},"mdn_delivery":"async"}}}}"#,
        serde_json::to_string(&globex.generated.certificate_pem).unwrap()
    );
    let error = Connection::check(&json, SystemTime::now()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidConfig);
    assert_eq!(error.field(), Some("/station/url"));
}

#[test]
fn without_a_requested_micalg_the_mic_uses_the_signers_digest() {
    // An unsigned receipt names no micalg: the MIC follows the signature (SHA-1 here), as senders compute it.
    let (sender, receiver) = connections(r#","signing":"sha1","mdn":"unsigned""#, "");
    let outbound = send(&sender, &stations().0.generated.key);
    assert!(
        outbound
            .headers
            .get("Disposition-Notification-Options")
            .is_none()
    );
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    let received = inbound.result.as_ref().unwrap();
    assert_eq!(
        received.mic.algorithm,
        as2_connector::crypto::DigestAlgorithm::Sha1
    );
    let verdict = check(&sender, &outbound, &inbound);
    assert!(verdict.mic_matched && verdict.proves_receipt);
}

#[test]
fn a_signed_receipt_without_micalg_for_an_unsigned_message_uses_the_stations_mdn_digest() {
    let (sender, mut receiver) = connections(r#","signing":"none""#, r#","require_signed":false"#);
    receiver.connection.station.mdn_signing = as2_connector::config::Digest::Sha384;
    let outbound = send(&sender, &stations().0.generated.key);
    let headers = edit_headers(&outbound.headers, |name, value| {
        let value = if name.eq_ignore_ascii_case("Disposition-Notification-Options") {
            "signed-receipt-protocol=optional, pkcs7-signature"
        } else {
            value
        };
        Some((name.to_string(), value.to_string()))
    });
    let inbound = deliver(&receiver, &headers, &outbound.body).unwrap();
    let received = inbound.result.as_ref().unwrap();
    assert_eq!(
        received.mic.algorithm,
        as2_connector::crypto::DigestAlgorithm::Sha384
    );
    let mdn = &inbound.mdn.as_ref().unwrap().message;
    let content_type = mdn.headers.get("Content-Type").unwrap();
    assert!(
        content_type.starts_with("multipart/signed"),
        "{content_type}"
    );
    assert!(content_type.contains("micalg=sha-384"), "{content_type}");
    let verdict = check(&sender, &outbound, &inbound);
    assert!(verdict.mdn.signed);
    assert_eq!(verdict.mdn.disposition, Disposition::processed());
}

#[test]
fn during_a_rollover_messages_for_the_next_certificate_decrypt_and_mdns_keep_the_current_key() {
    let (acme, globex, next) = stations();
    let (sender, receiver) = connections("", "");
    // The partner already encrypts to GLOBEX's next certificate.
    let to_next = connection("ACME", "GLOBEX", &next.generated.certificate_pem, "");
    let outbound = send(&to_next, &acme.generated.key);

    let without = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(without.disposition, Disposition::error("decryption-failed"));

    let keys = message::StationKeys {
        current: &globex.generated.key,
        next: Some(&next.generated.key),
    };
    let inbound = message::receive(
        &receiver,
        &outbound.headers,
        &outbound.body,
        keys,
        &mut |_| Ok(false),
        SystemTime::now(),
        &RustCryptoProvider,
    )
    .unwrap();
    assert_eq!(inbound.disposition, Disposition::processed());
    assert_eq!(inbound.result.as_ref().unwrap().document, document());
    // The MDN is signed with the current key: it verifies with GLOBEX's current certificate.
    let verdict = check(&sender, &outbound, &inbound);
    assert!(verdict.mdn.signed && verdict.proves_receipt);
}

#[test]
fn a_signature_with_another_digest_than_required_gets_insufficient_message_security() {
    let (sender, mut receiver) = connections(r#","signing":"sha256""#, "");
    receiver.connection.station.signature_verification =
        as2_connector::config::DigestRequirement::Sha512;
    let outbound = send(&sender, &stations().0.generated.key);
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("insufficient-message-security")
    );
    let error = inbound.result.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("signed with sha-256; this connection requires sha512"),
        "{error}"
    );
}

#[test]
fn a_configured_async_mdn_url_wins_over_the_one_the_message_names() {
    let (sender, receiver) = connections(
        r#","mdn_delivery":"async""#,
        r#","async_mdn_url":"https://mdn.acme.example/as2""#,
    );
    let outbound = send(&sender, &stations().0.generated.key);
    assert_eq!(
        outbound.headers.get("Receipt-Delivery-Option"),
        Some("http://127.0.0.1/as2")
    );
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(
        inbound.mdn.unwrap().async_url.as_deref(),
        Some("https://mdn.acme.example/as2")
    );
}

#[test]
fn an_encryption_other_than_required_gets_insufficient_message_security() {
    let (sender, mut receiver) = connections(r#","encryption":"aes128-cbc""#, "");
    receiver.connection.station.decryption =
        as2_connector::config::EncryptionRequirement::Aes256Cbc;
    let outbound = send(&sender, &stations().0.generated.key);
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("insufficient-message-security")
    );
    let error = inbound.result.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("encrypted with AES-128-CBC; this connection requires aes256-cbc"),
        "{error}"
    );
    receiver.connection.station.decryption = as2_connector::config::EncryptionRequirement::Any;
    let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
    assert_eq!(inbound.disposition, Disposition::processed());
}

#[test]
fn file_names_travel_both_ways_including_names_beyond_ascii() {
    let (sender, receiver) = connections(
        r#","signing":"none","encryption":"none""#,
        r#","require_signed":false,"require_encrypted":false"#,
    );
    for name in [
        "po 4711 (final).x12",
        "Bestellung März €.x12",
        "../../etc/passwd",
    ] {
        let document = Document {
            file_name: Some(name.into()),
            ..document()
        };
        let outbound = send_document(&sender, &document, &stations().0.generated.key);
        let disposition = outbound.headers.get("Content-Disposition").unwrap();
        assert!(disposition.is_ascii(), "{disposition}");
        let inbound = deliver(&receiver, &outbound.headers, &outbound.body).unwrap();
        let received = inbound.result.as_ref().unwrap();
        // The engine passes the name on as sent; the host makes it safe as a path.
        assert_eq!(received.document.file_name.as_deref(), Some(name));
    }
}

/// A document that hands out at most 1,000 bytes per read, as a slow host might.
struct Trickle(Vec<u8>);

impl as2_connector::bytes::Source for Trickle {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, as2_connector::Error> {
        let start = (offset as usize).min(self.0.len());
        let n = buf.len().min(1000).min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

#[test]
fn a_large_document_read_in_short_pieces_round_trips_in_every_profile() {
    // Several of the engine's pieces, and not a whole number of them.
    let content: Vec<u8> = (0..700_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for case in [
        "",
        r#","encoding":"base64""#,
        r#","encryption":"none""#,
        r#","encryption":"none","signature_encoding":"binary""#,
        r#","signing":"none""#,
        r#","signing":"none","encryption":"none""#,
        r#","mdn_micalg":"sha512""#,
        r#","encryption":"aes128-gcm""#,
        r#","compression":"before-signing""#,
        r#","compression":"after-signing","encryption":"none""#,
    ] {
        let (sender, receiver) =
            connections(case, r#","require_signed":false,"require_encrypted":false"#);
        let (head, body) = build_catalogue(&sender, &content, case);
        let in_memory = deliver(&receiver, &head.headers, &body)
            .unwrap_or_else(|e| panic!("{case}: receive: {e}"));
        // And read from where it lies, a short piece at a time, as the
        // component reads the host's request body.
        let trickled = receive_from(&receiver, &head.headers, &Trickle(body.clone()))
            .unwrap_or_else(|e| panic!("{case}: receive in pieces: {e}"));
        for inbound in [in_memory, trickled] {
            let received = inbound
                .result
                .as_ref()
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert!(
                received.document.content == content,
                "{case}: content differs"
            );
            assert_eq!(received.mic, head.mic, "{case}");
        }
    }
}

/// ACME builds a message for `content` as `catalogue.bin`, reading it a
/// short piece at a time; `case` names the connection in a failure.
fn build_catalogue(
    sender: &Checked,
    content: &[u8],
    case: &str,
) -> (message::OutboundHead, Vec<u8>) {
    let mut body = Vec::new();
    let head = message::build_into(
        sender,
        message::DocumentInfo {
            file_name: Some("catalogue.bin"),
            content_type: "application/octet-stream",
        },
        &Trickle(content.to_vec()),
        &mut body,
        &stations().0.generated.key,
        SystemTime::now(),
        &RustCryptoProvider,
        &as2_connector::bytes::InMemory::default(),
    )
    .unwrap_or_else(|e| panic!("{case}: build: {e}"));
    (head, body)
}

/// GLOBEX receives a request whose body is read from `body`, holding no
/// layer in memory: every layer it makes goes to a spool, and a document
/// is left there, as a document too large to hold is.
fn receive_from(
    receiver: &Checked,
    headers: &Headers,
    body: &dyn as2_connector::bytes::Source,
) -> Result<Inbound, as2_connector::Error> {
    message::receive_from(
        receiver,
        headers,
        body,
        message::StationKeys::single(&stations().1.generated.key),
        &mut |_| Ok(false),
        SystemTime::now(),
        &RustCryptoProvider,
        &as2_connector::bytes::InMemory { hold_limit: 0 },
    )
}

/// `der`, an EnvelopedData, encoded again as a streaming BER encoder
/// writes it: every container of indefinite length, the ciphertext in
/// chunks of `chunk` bytes (X.690 §8.1.3.6, §8.7.3.2).
fn as_streaming_ber(der: &[u8], chunk: usize) -> Vec<u8> {
    use cms::content_info::ContentInfo;
    use cms::enveloped_data::EnvelopedData;
    use der::{Decode, Encode};
    let info = ContentInfo::from_der(der).unwrap();
    let enveloped: EnvelopedData = info.content.decode_as().unwrap();
    let encrypted = &enveloped.encrypted_content;
    let ciphertext = encrypted.encrypted_content.as_ref().unwrap().as_bytes();
    let end = [0u8, 0];
    let mut out = vec![0x30, 0x80];
    out.extend(info.content_type.to_der().unwrap());
    out.extend([0xa0, 0x80, 0x30, 0x80]);
    out.extend(enveloped.version.to_der().unwrap());
    out.extend(enveloped.recip_infos.to_der().unwrap());
    out.extend([0x30, 0x80]);
    out.extend(encrypted.content_type.to_der().unwrap());
    out.extend(encrypted.content_enc_alg.to_der().unwrap());
    out.extend([0xa0, 0x80]);
    for piece in ciphertext.chunks(chunk) {
        out.extend(
            der::asn1::OctetString::new(piece)
                .unwrap()
                .to_der()
                .unwrap(),
        );
    }
    for _ in 0..5 {
        out.extend(end);
    }
    out
}

#[test]
fn an_envelope_in_streaming_ber_decrypts_a_piece_at_a_time() {
    let (sender, receiver) = connections(r#","signing":"none""#, r#","require_signed":false"#);
    let content: Vec<u8> = (0..300_007u32).map(|i| (i % 251) as u8).collect();
    let document = Document {
        content: content.clone(),
        ..document()
    };
    let outbound = send_document(&sender, &document, &stations().0.generated.key);
    for chunk in [1000, 4096, 1 << 20] {
        let ber = as_streaming_ber(&outbound.body, chunk);
        assert_ne!(ber, outbound.body);
        assert!(
            as2_connector::smime::EnvelopeLayout::read(&ber.as_slice())
                .unwrap()
                .is_some(),
            "chunks of {chunk}: the layout is not found"
        );
        for inbound in [
            deliver(&receiver, &outbound.headers, &ber).unwrap(),
            receive_from(&receiver, &outbound.headers, &Trickle(ber.clone())).unwrap(),
        ] {
            let received = inbound.result.as_ref().unwrap();
            assert!(received.document.content == content, "chunks of {chunk}");
            assert!(received.encrypted);
            assert_eq!(received.mic, outbound.mic);
        }
    }
    // A chunk that claims more than its container holds is refused, not read past.
    let mut ber = as_streaming_ber(&outbound.body, 4096);
    let cut = ber.len() - 5000;
    ber.truncate(cut);
    let inbound = receive_from(&receiver, &outbound.headers, &Trickle(ber)).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("decryption-failed"),
        "{:?}",
        inbound.result.err()
    );
}

/// Past a megabyte the signed part is digested while it is decrypted
/// (`signed::EarlyDigest`): the MIC must still be the sender's, whether the
/// body is in memory or read a short piece at a time, and whatever the
/// signature's digest.
#[test]
fn a_multi_megabyte_signed_and_encrypted_document_verifies_with_the_senders_mic() {
    let content: Vec<u8> = (0..3_000_017u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    for case in ["", r#","signing":"sha512""#, r#","signing":"sha1""#] {
        let (sender, receiver) = connections(case, "");
        let (head, body) = build_catalogue(&sender, &content, case);
        let in_memory = deliver(&receiver, &head.headers, &body).unwrap();
        let watching = LargestDigest::default();
        let trickled = message::receive_from(
            &receiver,
            &head.headers,
            &Trickle(body.clone()),
            message::StationKeys::single(&stations().1.generated.key),
            &mut |_| Ok(false),
            SystemTime::now(),
            &watching,
            &as2_connector::bytes::InMemory::default(),
        )
        .unwrap();
        // The part was digested while it was decrypted, not in one go after.
        let largest = watching.0.get();
        assert!(
            largest < 1 << 20,
            "{case}: a {largest}-byte digest after decryption"
        );
        for inbound in [in_memory, trickled] {
            assert_eq!(inbound.disposition, Disposition::processed(), "{case}");
            let received = inbound.result.as_ref().unwrap();
            assert!(received.signed && received.encrypted, "{case}");
            assert!(
                received.document.content == content,
                "{case}: content differs"
            );
            assert_eq!(received.mic, head.mic, "{case}");
        }
    }
}

/// RustCrypto, remembering the largest buffer it was asked to digest in one
/// call (a digest fed in pieces, through `hasher`, is not counted).
#[derive(Default)]
struct LargestDigest(std::cell::Cell<usize>);

impl CryptoProvider for LargestDigest {
    fn hasher(&self, algorithm: DigestAlgorithm) -> Box<dyn Hasher + Send> {
        RustCryptoProvider.hasher(algorithm)
    }

    fn digest(&self, algorithm: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
        self.0.set(self.0.get().max(data.len()));
        RustCryptoProvider.digest(algorithm, data)
    }

    fn cipher(&self, cbc: Cbc<'_>) -> Result<Box<dyn Cipher + Send>, CryptoError> {
        RustCryptoProvider.cipher(cbc)
    }

    fn rsa_encrypt(
        &self,
        subject_public_key_info: &[u8],
        scheme: KeyTransport,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        RustCryptoProvider.rsa_encrypt(subject_public_key_info, scheme, data)
    }

    fn rsa_verify(&self, spki: &[u8], signed: SignedDigest<'_>) -> Result<bool, CryptoError> {
        RustCryptoProvider.rsa_verify(spki, signed)
    }

    fn aead(
        &self,
        gcm: Gcm<'_>,
        direction: as2_connector::crypto::Direction,
    ) -> Result<Box<dyn as2_connector::crypto::Aead + Send>, CryptoError> {
        RustCryptoProvider.aead(gcm, direction)
    }

    fn aead_seal(&self, gcm: Gcm<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        RustCryptoProvider.aead_seal(gcm, plaintext)
    }

    fn aead_open(&self, gcm: Gcm<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        RustCryptoProvider.aead_open(gcm, sealed)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        RustCryptoProvider.fill_random(buf)
    }
}

/// ACME's AES-128-GCM message re-carried as some stacks send it: an
/// EnvelopedData whose content-encryption algorithm is id-aes128-GCM with
/// GCM parameters and whose encrypted content ends with the tag, `tag_len`
/// bytes of it (a GCM tag cut short is the first bytes of the full tag,
/// NIST SP 800-38D §5.2.1.2). Returns the headers and the DER body.
fn gcm_in_enveloped_data(outbound: &Outbound, tag_len: u8) -> (Headers, Vec<u8>) {
    use cms::authenveloped_data::AuthEnvelopedData;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData};
    use der::{Any, Decode, Encode};

    let info = ContentInfo::from_der(&outbound.body).unwrap();
    let auth: AuthEnvelopedData = info.content.decode_as().unwrap();
    let mut alg = auth.auth_encrypted_content_info.content_enc_alg.clone();
    // GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING (12), aes-ICVlen INTEGER }
    let params = alg.parameters.as_ref().unwrap().to_der().unwrap();
    assert_eq!(&params[2..4], [0x04, 12], "a 12-byte nonce comes first");
    let nonce = &params[4..16];
    let params = [&[0x30, 0x11, 0x04, 0x0c][..], nonce, &[0x02, 0x01, tag_len]].concat();
    alg.parameters = Some(Any::from_der(&params).unwrap());
    let mut sealed = auth
        .auth_encrypted_content_info
        .encrypted_content
        .as_ref()
        .unwrap()
        .as_bytes()
        .to_vec();
    sealed.extend_from_slice(&auth.mac.as_bytes()[..usize::from(tag_len)]);
    let enveloped = EnvelopedData {
        version: CmsVersion::V2,
        originator_info: None,
        recip_infos: auth.recip_infos.clone(),
        encrypted_content: EncryptedContentInfo {
            content_type: auth.auth_encrypted_content_info.content_type,
            content_enc_alg: alg,
            encrypted_content: Some(der::asn1::OctetString::new(sealed).unwrap()),
        },
        unprotected_attrs: None,
    };
    let body = ContentInfo {
        content_type: as2_connector::crypto::oids::ENVELOPED_DATA,
        content: Any::encode_from(&enveloped).unwrap(),
    }
    .to_der()
    .unwrap();
    let headers = edit_headers(&outbound.headers, |name, value| {
        Some(if name.eq_ignore_ascii_case("Content-Type") {
            (
                name.to_string(),
                "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m".to_string(),
            )
        } else {
            (name.to_string(), value.to_string())
        })
    });
    (headers, body)
}

#[test]
fn aes_gcm_carried_in_enveloped_data_is_read_with_the_tag_length_its_parameters_give() {
    let (sender, receiver) = connections(r#","encryption":"aes128-gcm""#, "");
    let outbound = send(&sender, &stations().0.generated.key);
    assert_eq!(outbound.body[0], 0x30, "the body is DER, sent in binary");
    for tag_len in [16, 12] {
        let (headers, body) = gcm_in_enveloped_data(&outbound, tag_len);
        let inbound = deliver(&receiver, &headers, &body).unwrap();
        assert_eq!(inbound.disposition, Disposition::processed(), "{tag_len}");
        let received = inbound.result.as_ref().unwrap();
        assert_eq!(received.document, document());
        assert!(received.signed && received.encrypted);
        assert_eq!(received.mic, outbound.mic);
        // One altered byte of the tag, and the content does not decrypt.
        let mut altered = body.clone();
        *altered.last_mut().unwrap() ^= 1;
        let inbound = deliver(&receiver, &headers, &altered).unwrap();
        assert_eq!(inbound.disposition, Disposition::error("decryption-failed"));
    }
    // The policy sees AES-128-GCM, in whichever structure it came.
    let mut strict = receiver.clone();
    strict.connection.station.decryption = as2_connector::config::EncryptionRequirement::Aes256Cbc;
    let (headers, body) = gcm_in_enveloped_data(&outbound, 16);
    let inbound = deliver(&strict, &headers, &body).unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("insufficient-message-security")
    );
}

/// RFC 6362: several documents in one message, each received with its own
/// file name, type and bytes; the MIC over the whole multipart/related
/// proves receipt; in every protection, compression included.
#[test]
fn several_documents_travel_in_one_message_and_arrive_each_on_its_own() {
    let documents = [
        (
            "po-1.x12",
            "application/edi-x12",
            b"ISA*00*first~\nST*850~\r\n".to_vec(),
        ),
        (
            "invoice.xml",
            "application/xml",
            b"<invoice n=\"2\"/>".to_vec(),
        ),
        (
            "blob.bin",
            "application/octet-stream",
            (0..=255u8).cycle().take(70_000).collect(),
        ),
    ];
    let sources: Vec<&[u8]> = documents
        .iter()
        .map(|(_, _, bytes)| bytes.as_slice())
        .collect();
    let attachments: Vec<message::Attachment<'_>> = documents
        .iter()
        .zip(&sources)
        .map(|((name, content_type, _), source)| message::Attachment {
            info: message::DocumentInfo {
                file_name: Some(name),
                content_type,
            },
            content: source as &dyn as2_connector::bytes::Source,
            content_id: None,
        })
        .collect();
    for extra in [
        "",
        r#","encryption":"none""#,
        r#","signing":"none""#,
        r#","compression":"before-signing""#,
        r#","compression":"after-signing","encryption":"aes256-gcm""#,
    ] {
        let receiver_extra = r#","require_signed":false,"require_encrypted":false"#;
        let (sender, receiver) = connections(extra, receiver_extra);
        let mut body = Vec::new();
        let head = message::build_attachments_into(
            &sender,
            &attachments,
            &mut body,
            &stations().0.generated.key,
            SystemTime::now(),
            &RustCryptoProvider,
            &as2_connector::bytes::InMemory::default(),
        )
        .unwrap();
        assert_eq!(
            head.headers.get("Subject"),
            Some("AS2 message po-1.x12, invoice.xml, blob.bin"),
            "{extra}"
        );
        let inbound = deliver(&receiver, &head.headers, &body).unwrap();
        let received = inbound.result.as_ref().expect("processed");
        let arrived = |received: &message::Received| -> Vec<(Option<String>, String, Vec<u8>)> {
            received
                .documents()
                .map(|d| {
                    (
                        d.file_name.clone(),
                        d.content_type.clone(),
                        d.content.to_vec().unwrap(),
                    )
                })
                .collect()
        };
        let sent: Vec<(Option<String>, String, Vec<u8>)> = documents
            .iter()
            .map(|(name, content_type, bytes)| {
                (
                    Some(name.to_string()),
                    content_type.to_string(),
                    bytes.to_vec(),
                )
            })
            .collect();
        assert_eq!(arrived(received), sent, "{extra}");
        // And with every layer spooled, each document left in its spool.
        let spooled = receive_from(&receiver, &head.headers, &Trickle(body.clone())).unwrap();
        let spooled = spooled.result.as_ref().expect("processed when spooled");
        assert_eq!(arrived(spooled), sent, "{extra}: spooled");
        let outbound = Outbound {
            message_id: head.message_id.clone(),
            headers: head.headers.clone(),
            body: body.clone(),
            mic: head.mic.clone(),
        };
        let verdict = check(&sender, &outbound, &inbound);
        assert!(
            verdict.mic_matched && verdict.proves_receipt,
            "{extra}: {verdict:?}"
        );
    }
}

#[test]
fn a_message_names_too_many_documents_or_none_and_is_refused() {
    let (sender, _) = connections("", "");
    let content: &[u8] = b"x";
    let one = message::Attachment {
        info: message::DocumentInfo {
            file_name: Some("x"),
            content_type: "text/plain",
        },
        content: &content,
        content_id: None,
    };
    for count in [0, message::MAX_ATTACHMENTS + 1] {
        let attachments = vec![one; count];
        let error = message::build_attachments_into(
            &sender,
            &attachments,
            &mut Vec::new(),
            &stations().0.generated.key,
            SystemTime::now(),
            &RustCryptoProvider,
            &as2_connector::bytes::InMemory::default(),
        )
        .unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidConfig, "{count}: {error}");
    }
}
