//! Two stations over real loopback HTTP, both through the component.

use as2_connector::crypto::rustcrypto::RustCryptoProvider;
use as2_connector::headers::Headers;
use as2_connector::mdn::Disposition;
use as2_connector::message::{self, Document as EngineDocument};
use as2_harness::demo::{SAMPLE_X12_850, disposition_text};
use as2_harness::runtime::Document;
use as2_harness::runtime::bindings::as2::connector::types::SignatureVerdict;
use as2_tests::{Pair, post, runtime};

/// The HTTP request that carries `outbound` with `body`, as the host hands it to `export`.
fn http_request(
    outbound: &as2_connector::message::Outbound,
    body: Vec<u8>,
) -> as2_harness::connector::InboundRequest {
    let headers = outbound
        .headers
        .iter()
        .map(|(n, v)| as2_harness::runtime::Header {
            name: n.into(),
            value: v.into(),
        })
        .collect();
    as2_harness::connector::InboundRequest::new(
        "POST",
        "/as2",
        headers,
        body,
        &std::env::temp_dir(),
    )
}

/// The header fields of the response `export` built.
fn response_headers(result: &as2_harness::connector::Exported) -> Headers {
    result
        .response
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect()
}

fn purchase_order() -> Document {
    Document {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_arrives_byte_for_byte_and_the_signed_mdn_verifies() {
    let pair = Pair::start(runtime(), runtime()).await;
    let outcome = pair.send(purchase_order()).await;
    let mdn = outcome.mdn.expect("a synchronous MDN");
    assert_eq!(disposition_text(&mdn.disposition), "processed");
    assert!(matches!(mdn.signature, SignatureVerdict::Verified));
    assert!(outcome.mic_matched);
    assert_eq!(
        mdn.received_mic.as_ref().unwrap().digest,
        outcome.mic.digest
    );
    assert_eq!(mdn.original_message_id, outcome.message_id);

    let stored = std::fs::read(pair.inbox.join("ACME").join("po-4711.x12")).unwrap();
    assert_eq!(stored, SAMPLE_X12_850.as_bytes());

    // The sender's record shows the acknowledged message.
    let status = as2_tests::lookup(&pair.acme, &pair.acme_config, &outcome.message_id).await;
    assert_eq!(status.attempts, 1);
    assert!(matches!(
        status.state,
        as2_harness::runtime::api::MessageState::Acknowledged
    ));
    assert!(status.mdn.is_some());
}

/// The receiver runs in the component; the sender is the native engine with
/// the station's key loaded directly, and verifies the MDN natively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natively_built_message_gets_an_mdn_that_verifies_natively() {
    let pair = Pair::start(runtime(), runtime()).await;
    let provider = RustCryptoProvider;
    let document = EngineDocument {
        file_name: Some("invoice.x12".into()),
        content_type: "application/edi-x12".into(),
        content: b"ST*810*0001~\nSE*2*0001~\n".to_vec(),
    };
    let (checked, outbound) = pair.build_natively(&pair.acme_config, &document);
    let headers: Vec<(String, String)> = outbound
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let (status, response_headers, body) = post(&pair.url, &headers, outbound.body.clone()).await;
    assert_eq!(status, 200);
    let response_headers: Headers = response_headers.into_iter().collect();
    let verdict = message::check_mdn(
        &checked,
        &outbound.message_id,
        &outbound.mic,
        &response_headers,
        &body,
        &provider,
    )
    .unwrap();
    assert!(verdict.mdn.signed);
    assert!(verdict.mic_matched);
    assert!(verdict.proves_receipt);
    assert_eq!(verdict.mdn.disposition, Disposition::processed());
    assert_eq!(
        std::fs::read(pair.inbox.join("ACME").join("invoice.x12")).unwrap(),
        document.content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_message_through_the_component_gets_integrity_check_failed_and_no_document() {
    let pair = Pair::start(runtime(), runtime()).await;
    let provider = RustCryptoProvider;
    // Signed but not encrypted, so the content can be altered in transit.
    let config = pair.acme_config.replace("\"aes256-cbc\"", "\"none\"");
    let globex_config = pair.globex_config.replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"require_encrypted\":false",
    );
    let globex_route = as2_harness::server::Route::from_json(globex_config).unwrap();
    assert!(globex_route.config_json.contains("require_encrypted"));
    let document = EngineDocument {
        file_name: Some("po.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    };
    let (checked, outbound) = pair.build_natively(&config, &document);
    let mut body = outbound.body.clone();
    let at = body.windows(6).position(|w| w == b"PO-471").unwrap();
    body[at + 5] = b'9';
    let request = http_request(&outbound, body);
    let globex = pair.globex.clone();
    let result =
        tokio::task::spawn_blocking(move || globex.export(&globex_route.config_json, &request))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    assert!(result.documents.is_empty());
    assert_eq!(
        disposition_text(&result.disposition),
        "processed/error: integrity-check-failed"
    );
    let verdict = message::check_mdn(
        &checked,
        &outbound.message_id,
        &outbound.mic,
        &response_headers(&result),
        &result.response.body,
        &provider,
    )
    .unwrap();
    assert!(!verdict.proves_receipt);
    assert_eq!(
        verdict.mdn.disposition,
        Disposition::error("integrity-check-failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_an_unknown_partner_gets_404_with_the_error_code() {
    let pair = Pair::start(runtime(), runtime()).await;
    let headers = vec![
        ("AS2-From".to_string(), "\"SOMEONE ELSE\"".to_string()),
        ("AS2-To".to_string(), "GLOBEX".to_string()),
        ("Message-ID".to_string(), "<x@y>".to_string()),
        (
            "Content-Type".to_string(),
            "application/edi-x12".to_string(),
        ),
    ];
    let (status, _, body) = post(&pair.url, &headers, b"ISA*...".to_vec()).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).starts_with("UNKNOWN_PARTNER:"));
}

/// A certificate rollover through the component: the partner already
/// encrypts to GLOBEX's next certificate; GLOBEX decrypts with its next key
/// and still signs the MDN with the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rollover_the_component_decrypts_with_the_next_key_and_signs_with_the_current() {
    let pair = Pair::start(runtime(), runtime()).await;
    let next_cert = pair
        .globex
        .station
        .keys
        .generate(
            "globex-next",
            "GLOBEX",
            std::time::Duration::from_secs(730 * 86400),
        )
        .unwrap();
    let mut to_next: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
    to_next["partner"]["certificate"] = next_cert.into();
    let document = EngineDocument {
        file_name: Some("po-next.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    };
    let (_, outbound) = pair.build_natively(&to_next.to_string(), &document);
    let mut globex_config: serde_json::Value = serde_json::from_str(&pair.globex_config).unwrap();
    let request = http_request(&outbound, outbound.body.clone());
    let export = |config: String| {
        let (globex, request) = (pair.globex.clone(), request.clone());
        async move {
            tokio::task::spawn_blocking(move || globex.export(&config, &request))
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        }
    };
    let before = export(globex_config.to_string()).await;
    assert_eq!(
        disposition_text(&before.disposition),
        "processed/error: decryption-failed"
    );
    globex_config["station"]["next_private_key"] = "globex-next".into();
    let result = export(globex_config.to_string()).await;
    assert_eq!(disposition_text(&result.disposition), "processed");
    assert_eq!(result.documents.len(), 1);
    assert_eq!(
        result.documents[0].content.to_vec().unwrap(),
        document.content
    );
    let checked =
        as2_connector::config::Connection::check(&pair.acme_config, std::time::SystemTime::now())
            .unwrap();
    let verdict = message::check_mdn(
        &checked,
        &outbound.message_id,
        &outbound.mic,
        &response_headers(&result),
        &result.response.body,
        &RustCryptoProvider,
    )
    .unwrap();
    assert!(verdict.mdn.signed && verdict.proves_receipt);
}

/// `build-message`: the message `import` would send, built through the
/// component and posted by the test itself: GLOBEX processes it, the MDN
/// returns its MIC, and ACME has recorded nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_built_without_sending_is_processed_when_delivered_and_leaves_no_record() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (acme, config) = (pair.acme.clone(), pair.acme_config.clone());
    let built = tokio::task::spawn_blocking(move || acme.build_message(&config, &purchase_order()))
        .await
        .unwrap()
        .unwrap()
        .expect("the message builds");
    let headers: Vec<(String, String)> = built
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("message-id") && *v == built.message_id)
    );
    let (status, response_headers, body) =
        post(&pair.url, &headers, built.body.into_bytes().unwrap()).await;
    assert_eq!(status, 200);
    let (checked, _) = pair.build_natively(
        &pair.acme_config,
        &EngineDocument {
            file_name: None,
            content_type: "text/plain".into(),
            content: Vec::new(),
        },
    );
    let mic = as2_connector::mic::Mic {
        digest: base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            &built.mic.digest,
        )
        .unwrap(),
        algorithm: as2_connector::crypto::DigestAlgorithm::Sha256,
        spelling: built.mic.algorithm.clone(),
    };
    let verdict = message::check_mdn(
        &checked,
        &built.message_id,
        &mic,
        &response_headers.into_iter().collect(),
        &body,
        &RustCryptoProvider,
    )
    .unwrap();
    assert_eq!(verdict.mdn.disposition, Disposition::processed());
    assert!(verdict.mic_matched && verdict.proves_receipt);
    assert_eq!(
        std::fs::read(pair.inbox.join("ACME").join("po-4711.x12")).unwrap(),
        SAMPLE_X12_850.as_bytes()
    );
    // Not recorded: a lookup does not know it.
    let (acme, config, id) = (
        pair.acme.clone(),
        pair.acme_config.clone(),
        built.message_id.clone(),
    );
    let lookup = tokio::task::spawn_blocking(move || acme.lookup_message(&config, &id))
        .await
        .unwrap()
        .unwrap();
    let error = lookup.expect_err("ACME recorded nothing of it");
    assert!(
        matches!(error.code, as2_harness::runtime::ErrorCode::NotFound),
        "{error:?}"
    );
}

/// A document larger than what a blob holds in memory goes out from its
/// file: the message is built into a spill file, kept for resending while
/// it is pending and forgotten once acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_document_is_sent_from_its_file_and_its_kept_copy_is_gone_once_acknowledged() {
    let pair = Pair::start(runtime(), runtime()).await;
    let size = as2_harness::blobs::SPILL_BYTES + 3 * 1024 * 1024 + 17;
    let content: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let dir = as2_tests::TempDir::new("large-document");
    let path = dir.0.join("catalogue.bin");
    std::fs::write(&path, &content).unwrap();
    let document = as2_harness::connector::SendDocument {
        file_name: Some("catalogue.bin".into()),
        content_type: "application/octet-stream".into(),
        content: as2_harness::connector::Content::File(path),
    };
    let (acme, config) = (pair.acme.clone(), pair.acme_config.clone());
    let outcome = tokio::task::spawn_blocking(move || acme.send(&config, vec![document]))
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .remove(0)
        .unwrap();
    let mdn = outcome.mdn.expect("a synchronous MDN");
    assert_eq!(disposition_text(&mdn.disposition), "processed");
    assert!(outcome.mic_matched);
    let stored = std::fs::read(pair.inbox.join("ACME").join("catalogue.bin")).unwrap();
    assert!(
        stored == content,
        "the stored file differs from the sent one"
    );
    let blobs = pair.acme.station.data_dir.join("blobs");
    let left: Vec<_> = std::fs::read_dir(&blobs)
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", blobs.display());
}
