//! The MIC doctor end to end: a partner on loopback that computes its MDN's
//! MIC in one of the known wrong ways, from the bytes it received, and the
//! connector naming that way in the send's outcome, the message record
//! (lookup) and the log; and `partner.accept_mic_variants` accepting it.

use std::sync::Arc;
use std::time::SystemTime;

use as2_connector::crypto::rustcrypto::RustCryptoProvider;
use as2_connector::crypto::{CryptoProvider, DigestAlgorithm, PrivateKey, SignatureScheme};
use as2_connector::mdn::{self, Disposition, MdnFields};
use as2_connector::mic::Mic;
use as2_connector::mime::{self, Entity};
use as2_connector::signed::{SigningParams, canonicalize_line_ends};
use as2_harness::runtime::Document;
use as2_tests::{Pair, Received, loopback_server, runtime};

/// A payload with bare LF line ends and a final CRLF, so that every
/// line-end fault changes its digest.
const PAYLOAD: &[u8] =
    b"ISA*00*          *00*          *ZZ*ACME*ZZ*GLOBEX~\nGS*PO*ACME*GLOBEX~\nST*850*0001~\r\n";

fn document() -> Document {
    Document {
        file_name: Some("po.x12".into()),
        content_type: "application/edi-x12".into(),
        content: PAYLOAD.to_vec(),
    }
}

/// The first part of a multipart/signed HTTP body: the signed entity, as sent.
fn signed_entity(request: &Received) -> Vec<u8> {
    let content_type = request.header("content-type").expect("a Content-Type");
    let boundary = as2_connector::headers::ParameterizedValue::parse(content_type)
        .param("boundary")
        .expect("a boundary")
        .to_string();
    let parts = mime::split_multipart(&request.body, &boundary).expect("a multipart/signed body");
    parts[0].to_vec()
}

/// What the faulty partner digests, and with which algorithm, for `fault`.
fn faulty_digest(fault: &str, request: &Received) -> (DigestAlgorithm, Vec<u8>) {
    let provider = RustCryptoProvider;
    let sha256 = |bytes: &[u8]| provider.digest(DigestAlgorithm::Sha256, bytes);
    let digest = match fault {
        "without-headers" => sha256(Entity::parse(&signed_entity(request)).unwrap().body),
        "canonical-line-ends" => sha256(&canonicalize_line_ends(&signed_entity(request))),
        "trailing-crlf-added" => {
            let mut entity = signed_entity(request);
            entity.extend_from_slice(b"\r\n");
            sha256(&entity)
        }
        "trailing-crlf-dropped" => {
            let entity = signed_entity(request);
            sha256(
                entity
                    .strip_suffix(b"\r\n")
                    .expect("the entity ends with CRLF"),
            )
        }
        "other-digest" => {
            let entity = signed_entity(request);
            return (
                DigestAlgorithm::Sha1,
                provider.digest(DigestAlgorithm::Sha1, &entity),
            );
        }
        "uncompressed" => {
            let entity = signed_entity(request);
            let compressed = Entity::parse(&entity).unwrap();
            let inner = as2_connector::compress::decompress(compressed.body, 1 << 20)
                .expect("a compressed entity");
            sha256(&inner)
        }
        "encrypted-body" => sha256(&request.body),
        "altered" => sha256(b"not what was sent"),
        other => panic!("no such fault: {other}"),
    };
    (DigestAlgorithm::Sha256, digest)
}

/// A partner that answers each message with a signed MDN, `processed`,
/// whose MIC is computed the way the request's path names.
async fn faulty_partner(key: Arc<as2_harness::hostkey::HostKey>) -> String {
    loopback_server(move |request: Received| {
        let key = key.clone();
        async move {
            let fault = request.path.trim_start_matches('/').to_string();
            let (algorithm, digest) = faulty_digest(&fault, &request);
            // Labelled as asked, whatever was digested: the usual mislabel.
            let mut mic = Mic::new(algorithm, digest);
            mic.spelling = "sha-256".into();
            let original = request.header("message-id").unwrap_or_default().to_string();
            let disposition = Disposition::processed();
            let fields = MdnFields {
                reporter: "GLOBEX",
                recipient: "ACME",
                original_message_id: &original,
                message_id: "<mdn-fault@globex>",
                disposition: &disposition,
                mic: Some(&mic),
                explanation: "received",
            };
            let params = SigningParams {
                algorithm: DigestAlgorithm::Sha256,
                scheme: SignatureScheme::RsaPkcs1v15,
                micalg: "sha-256",
                binary_signature: false,
            };
            let built = mdn::build(
                &fields,
                Some((key.as_ref() as &dyn PrivateKey, params)),
                SystemTime::now(),
                &RustCryptoProvider,
            )
            .expect("the MDN builds");
            let headers = built
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            Some((200, headers, built.body))
        }
    })
    .await
}

/// ACME's connection to the faulty partner at `url`, committing `fault`.
fn config_for(pair: &Pair, url: &str, fault: &str, accept: &[&str]) -> String {
    let mut config: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
    let partner = &mut config["partner"];
    partner["url"] = format!("{url}/{fault}").into();
    partner["encryption"] = "none".into();
    partner["mdn_micalg"] = "sha256".into();
    partner["send_attempts"] = 1.into();
    partner["compression"] = if fault == "uncompressed" {
        "before-signing"
    } else {
        "none"
    }
    .into();
    if fault == "encrypted-body" {
        partner["encryption"] = "aes256-cbc".into();
    }
    if !accept.is_empty() {
        partner["accept_mic_variants"] = serde_json::json!(accept);
    }
    config.to_string()
}

fn doctor_line(warnings: &[String]) -> &str {
    warnings
        .iter()
        .find(|w| w.starts_with("MIC doctor:"))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no MIC doctor line in {warnings:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_names_each_fault_a_partner_commits_and_the_setting_accepts_it() {
    let pair = Pair::start(runtime(), runtime()).await;
    let globex_key = pair
        .globex
        .station
        .keys
        .get("globex")
        .expect("GLOBEX's key");
    let url = faulty_partner(globex_key).await;

    let cases = [
        ("without-headers", "without its MIME header fields"),
        ("canonical-line-ends", "bare LF line ends into CRLF"),
        ("trailing-crlf-added", "with a CRLF added at its end"),
        ("trailing-crlf-dropped", "without its last CRLF"),
        (
            "other-digest",
            "with sha-1 instead of the sha-256 asked for in Disposition-Notification-Options (though it labelled it sha-256)",
        ),
        ("uncompressed", "after decompressing it"),
        ("encrypted-body", "before decrypting it"),
    ];
    for (fault, cause) in cases {
        let config = config_for(&pair, &url, fault, &[]);
        let outcome = pair.send_with(&config, document()).await;
        assert!(!outcome.mic_matched, "{fault}: the MIC differs");
        let mdn = outcome.mdn.as_ref().expect("a synchronous MDN");
        let line = doctor_line(&mdn.warnings);
        assert!(line.contains(cause), "{fault}: {line}");
        assert!(
            line.contains(&format!("add \"{fault}\" to partner.accept_mic_variants")),
            "{fault}: {line}"
        );
        // The message record says the same: what `status` and the console show.
        let (acme, id, lookup_config) = (
            pair.acme.clone(),
            outcome.message_id.clone(),
            config.clone(),
        );
        let status = tokio::task::spawn_blocking(move || acme.lookup_message(&lookup_config, &id))
            .await
            .unwrap()
            .unwrap()
            .expect("the record");
        let recorded = status.mdn.expect("the recorded MDN");
        assert_eq!(doctor_line(&recorded.warnings), line, "{fault}");
    }

    // A MIC over other bytes altogether matches no variant.
    let config = config_for(&pair, &url, "altered", &[]);
    let outcome = pair.send_with(&config, document()).await;
    let line = doctor_line(&outcome.mdn.as_ref().unwrap().warnings).to_string();
    assert!(line.contains("matches none of the"), "{line}");
    assert!(line.contains("altered on the way"), "{line}");

    // Accepted by the setting: the MDN proves receipt, with the warning kept.
    let config = config_for(&pair, &url, "without-headers", &["without-headers"]);
    let outcome = pair.send_with(&config, document()).await;
    assert!(
        outcome.mic_matched,
        "the accepted variant counts as matched"
    );
    let warnings = &outcome.mdn.as_ref().unwrap().warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("accepted as \"without-headers\"")),
        "{warnings:?}"
    );
    // Another variant than the one accepted still does not.
    let config = config_for(&pair, &url, "trailing-crlf-added", &["without-headers"]);
    let outcome = pair.send_with(&config, document()).await;
    assert!(!outcome.mic_matched);
}
