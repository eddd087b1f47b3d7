//! Two stations driven against each other through the engine, no IO
//! (as quinn-proto's `Pair` tests do): send, receive, MDN, MIC check.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use as2_connector::ErrorCode;
use as2_connector::config::{Checked, Connection};
use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::headers::Headers;
use as2_connector::mdn::Disposition;
use as2_connector::message::{self, Document};

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

fn to_headers(headers: &Headers) -> Headers {
    headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn signed_encrypted_message_is_received_byte_for_byte_and_the_signed_mdn_proves_receipt() {
    let (acme, globex, _) = stations();
    let provider = RustCryptoProvider;
    let sender = connection("ACME", "GLOBEX", &globex.generated.certificate_pem, "");
    let receiver = connection("GLOBEX", "ACME", &acme.generated.certificate_pem, "");
    let now = SystemTime::now();

    let outbound =
        message::build(&sender, &document(), &acme.generated.key, now, &provider).unwrap();
    assert!(
        outbound
            .headers
            .get("Content-Type")
            .unwrap()
            .starts_with("application/pkcs7-mime")
    );

    let inbound = message::receive(
        &receiver,
        &to_headers(&outbound.headers),
        &outbound.body,
        &globex.generated.key,
        now,
        &provider,
    )
    .unwrap();
    assert_eq!(inbound.disposition, Disposition::processed());
    let received = inbound.result.unwrap();
    assert_eq!(received.document, document());
    assert!(received.signed && received.encrypted);
    assert_eq!(received.mic, outbound.mic);

    let mdn = inbound.mdn.unwrap();
    assert!(mdn.async_url.is_none());
    let verdict = message::check_mdn(
        &sender,
        &outbound.message_id,
        &outbound.mic,
        &mdn.message.headers,
        &mdn.message.body,
        &provider,
    )
    .unwrap();
    assert!(verdict.mdn.signed);
    assert!(verdict.mic_matched);
    assert!(verdict.proves_receipt);
    assert_eq!(verdict.mdn.disposition, Disposition::processed());
}

#[test]
fn tampered_signed_body_yields_integrity_check_failed() {
    let (acme, globex, _) = stations();
    let provider = RustCryptoProvider;
    let sender = connection(
        "ACME",
        "GLOBEX",
        &globex.generated.certificate_pem,
        r#","encryption":"none""#,
    );
    let receiver = connection(
        "GLOBEX",
        "ACME",
        &acme.generated.certificate_pem,
        r#","require_encrypted":false"#,
    );
    let now = SystemTime::now();
    let outbound =
        message::build(&sender, &document(), &acme.generated.key, now, &provider).unwrap();
    let mut body = outbound.body.clone();
    let at = body.windows(6).position(|w| w == b"ST*850").unwrap();
    body[at + 3] = b'9';
    let inbound = message::receive(
        &receiver,
        &to_headers(&outbound.headers),
        &body,
        &globex.generated.key,
        now,
        &provider,
    )
    .unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("integrity-check-failed")
    );
    assert_eq!(
        inbound.result.unwrap_err().code(),
        ErrorCode::IntegrityCheckFailed
    );
    // The MDN still goes back, signed, and tells the sender it failed.
    let mdn = inbound.mdn.unwrap();
    let verdict = message::check_mdn(
        &sender,
        &outbound.message_id,
        &outbound.mic,
        &mdn.message.headers,
        &mdn.message.body,
        &provider,
    )
    .unwrap();
    assert!(!verdict.proves_receipt);
    assert_eq!(
        verdict.mdn.disposition,
        Disposition::error("integrity-check-failed")
    );
}

#[test]
fn message_for_another_certificate_yields_decryption_failed() {
    let (acme, globex, intruder) = stations();
    let provider = RustCryptoProvider;
    // ACME encrypts to INTRUDER's certificate, but GLOBEX receives it.
    let sender = connection("ACME", "GLOBEX", &intruder.generated.certificate_pem, "");
    let receiver = connection("GLOBEX", "ACME", &acme.generated.certificate_pem, "");
    let now = SystemTime::now();
    let outbound =
        message::build(&sender, &document(), &acme.generated.key, now, &provider).unwrap();
    let inbound = message::receive(
        &receiver,
        &to_headers(&outbound.headers),
        &outbound.body,
        &globex.generated.key,
        now,
        &provider,
    )
    .unwrap();
    assert_eq!(inbound.disposition, Disposition::error("decryption-failed"));
}

#[test]
fn signature_from_an_unknown_signer_yields_authentication_failed() {
    let (acme, globex, intruder) = stations();
    let provider = RustCryptoProvider;
    let sender = connection("ACME", "GLOBEX", &globex.generated.certificate_pem, "");
    let receiver = connection("GLOBEX", "ACME", &acme.generated.certificate_pem, "");
    let now = SystemTime::now();
    // Signed with INTRUDER's key while claiming to be ACME.
    let outbound = message::build(
        &sender,
        &document(),
        &intruder.generated.key,
        now,
        &provider,
    )
    .unwrap();
    let inbound = message::receive(
        &receiver,
        &to_headers(&outbound.headers),
        &outbound.body,
        &globex.generated.key,
        now,
        &provider,
    )
    .unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("authentication-failed")
    );
}

#[test]
fn unsigned_message_when_signing_is_required_yields_insufficient_message_security() {
    let (acme, globex, _) = stations();
    let provider = RustCryptoProvider;
    let sender = connection(
        "ACME",
        "GLOBEX",
        &globex.generated.certificate_pem,
        r#","signing":"none""#,
    );
    let receiver = connection("GLOBEX", "ACME", &acme.generated.certificate_pem, "");
    let now = SystemTime::now();
    let outbound =
        message::build(&sender, &document(), &acme.generated.key, now, &provider).unwrap();
    let inbound = message::receive(
        &receiver,
        &to_headers(&outbound.headers),
        &outbound.body,
        &globex.generated.key,
        now,
        &provider,
    )
    .unwrap();
    assert_eq!(
        inbound.disposition,
        Disposition::error("insufficient-message-security")
    );
}

#[test]
fn unknown_as2_to_is_an_error_not_an_mdn() {
    let (acme, globex, _) = stations();
    let provider = RustCryptoProvider;
    let sender = connection(
        "ACME",
        "SOMEONE-ELSE",
        &globex.generated.certificate_pem,
        "",
    );
    let receiver = connection("GLOBEX", "ACME", &acme.generated.certificate_pem, "");
    let now = SystemTime::now();
    let outbound =
        message::build(&sender, &document(), &acme.generated.key, now, &provider).unwrap();
    let err = message::receive(
        &receiver,
        &to_headers(&outbound.headers),
        &outbound.body,
        &globex.generated.key,
        now,
        &provider,
    )
    .unwrap_err();
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
