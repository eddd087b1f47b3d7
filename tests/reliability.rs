//! Reliability over real loopback HTTP, both stations through the component:
//! repeated Message-IDs answered `duplicate-document` and stored once, resends
//! under the same Message-ID after a dropped MDN, and asynchronous MDNs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use as2_connector::crypto::rustcrypto::RustCryptoProvider;
use as2_connector::headers::Headers;
use as2_connector::mdn::{self, Disposition, MdnFields};
use as2_connector::message::{self, Document as EngineDocument};
use as2_connector::signed::SigningParams;
use as2_harness::demo::{SAMPLE_X12_850, disposition_text};
use as2_harness::runtime::Document;
use as2_harness::runtime::api::{MessageState, MessageStatus};
use as2_harness::runtime::bindings::as2::connector::types::SignatureVerdict;
use as2_tests::{Pair, loopback_server, post, runtime, settled};

fn purchase_order() -> Document {
    Document {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    }
}

/// The files GLOBEX has stored from ACME.
fn stored_files(pair: &Pair) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(pair.inbox.join("ACME")) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn pairs(headers: &Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A signed MDN from GLOBEX for `original`, reporting `mic`, built natively.
fn mdn_from_globex(
    pair: &Pair,
    original: &str,
    mic: Option<&as2_connector::mic::Mic>,
) -> mdn::HttpMessage {
    let globex_key = pair.globex.station.keys.get("globex").unwrap();
    let fields = MdnFields {
        reporter: "GLOBEX",
        recipient: "ACME",
        original_message_id: original,
        message_id: "<mdn-1@GLOBEX>",
        disposition: &Disposition::processed(),
        mic,
        explanation: "processed",
    };
    let params = SigningParams {
        algorithm: as2_connector::crypto::DigestAlgorithm::Sha256,
        scheme: as2_connector::crypto::SignatureScheme::RsaPkcs1v15,
        micalg: "sha-256",
        binary_signature: false,
    };
    mdn::build(
        &fields,
        Some((globex_key.as_ref(), params)),
        SystemTime::now(),
        &RustCryptoProvider,
    )
    .unwrap()
}

async fn lookup(pair: &Pair, config: &str, message_id: &str) -> MessageStatus {
    as2_tests::lookup(&pair.acme, config, message_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_message_is_answered_duplicate_document_and_stored_once() {
    let pair = Pair::start(runtime(), runtime()).await;
    let provider = RustCryptoProvider;
    let document = EngineDocument {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    };
    let (checked, outbound) = pair.build_natively(&pair.acme_config, &document);
    let mut dispositions = Vec::new();
    for _ in 0..2 {
        let (status, headers, body) =
            post(&pair.url, &pairs(&outbound.headers), outbound.body.clone()).await;
        assert_eq!(status, 200);
        let verdict = message::check_mdn(
            &checked,
            &outbound.message_id,
            &outbound.mic,
            &headers.into_iter().collect(),
            &body,
            &provider,
        )
        .unwrap();
        assert!(verdict.mdn.signed && verdict.mic_matched && verdict.proves_receipt);
        dispositions.push(verdict.mdn.disposition);
    }
    assert_eq!(
        dispositions,
        vec![
            Disposition::processed(),
            Disposition::warning("duplicate-document")
        ]
    );
    let files = stored_files(&pair);
    assert_eq!(files.len(), 1, "stored once: {files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), document.content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_of_one_message_arriving_at_once_are_stored_once() {
    let pair = Pair::start(runtime(), runtime()).await;
    let document = EngineDocument {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    };
    let (checked, outbound) = pair.build_natively(&pair.acme_config, &document);
    let copies = (0..4).map(|_| {
        let (url, headers, body) = (
            pair.url.clone(),
            pairs(&outbound.headers),
            outbound.body.clone(),
        );
        tokio::spawn(async move { post(&url, &headers, body).await })
    });
    let mut dispositions = Vec::new();
    for copy in copies.collect::<Vec<_>>() {
        let (status, headers, body) = copy.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let verdict = message::check_mdn(
            &checked,
            &outbound.message_id,
            &outbound.mic,
            &headers.into_iter().collect(),
            &body,
            &RustCryptoProvider,
        )
        .unwrap();
        assert!(verdict.proves_receipt);
        dispositions.push(verdict.mdn.disposition.to_string());
    }
    dispositions.sort();
    assert_eq!(
        dispositions,
        [
            "processed",
            "processed/warning: duplicate-document",
            "processed/warning: duplicate-document",
            "processed/warning: duplicate-document"
        ],
        "one copy is processed, the others are duplicates"
    );
    let files = stored_files(&pair);
    assert_eq!(files.len(), 1, "stored once: {files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), document.content);
}

/// What the proxy in front of GLOBEX does to GLOBEX's answers.
#[derive(Clone, Copy)]
enum Fault {
    /// Drop the connection instead of returning the first answer, as a
    /// network failure after delivery would.
    DropFirstAnswer,
    /// Hold every answer back this long.
    DelayAnswers(Duration),
}

/// An HTTP proxy in front of GLOBEX that forwards every request and applies
/// `fault` to the answers. Records each request's Message-ID.
async fn faulty_proxy(target: String, fault: Fault) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let url = loopback_server(move |request| {
        let (target, log) = (target.clone(), log.clone());
        async move {
            let first = {
                let mut log = log.lock().unwrap();
                log.push(request.header("message-id").unwrap_or_default().to_string());
                log.len() == 1
            };
            let answer = post(&target, &request.headers, request.body).await;
            match fault {
                Fault::DropFirstAnswer if first => None,
                Fault::DropFirstAnswer => Some(answer),
                Fault::DelayAnswers(delay) => {
                    tokio::time::sleep(delay).await;
                    Some(answer)
                }
            }
        }
    })
    .await;
    (format!("{url}/as2"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_mdn_is_followed_by_a_resend_under_the_same_message_id_and_one_delivery() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (proxy_url, seen) = faulty_proxy(pair.url.clone(), Fault::DropFirstAnswer).await;
    let config = pair.acme_config.replace(&pair.url, &proxy_url);
    let outcome = pair.send_with(&config, purchase_order()).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one send and one resend");
    assert_eq!(seen[0], outcome.message_id);
    assert_eq!(seen[1], outcome.message_id);
    assert_eq!(outcome.attempts, 2);
    assert!(matches!(outcome.state, MessageState::Acknowledged));
    let mdn = outcome.mdn.expect("the resend's MDN");
    assert_eq!(
        disposition_text(&mdn.disposition),
        "processed/warning: duplicate-document"
    );
    assert!(matches!(mdn.signature, SignatureVerdict::Verified));
    assert!(outcome.mic_matched);
    assert_eq!(stored_files(&pair).len(), 1, "delivered exactly once");

    let status = lookup(&pair, &config, &outcome.message_id).await;
    assert_eq!(status.attempts, 2);
    assert!(matches!(status.state, MessageState::Acknowledged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_mdn_arrives_at_the_senders_endpoint_and_settles_the_message() {
    let pair = Pair::start(runtime(), runtime()).await;
    let config = pair.acme_config.replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"mdn_delivery\":\"async\"",
    );
    assert!(config.contains("\"mdn_delivery\":\"async\""));
    let outcome = pair.send_with(&config, purchase_order()).await;
    // Pending, unless the MDN overtook the HTTP answer.
    assert!(matches!(
        outcome.state,
        MessageState::Pending | MessageState::Acknowledged
    ));

    let status = settled(
        &pair.acme,
        &config,
        &outcome.message_id,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        matches!(status.state, MessageState::Acknowledged),
        "{status:?}"
    );
    let mdn = status.mdn.expect("the asynchronous MDN is recorded");
    assert_eq!(disposition_text(&mdn.disposition), "processed");
    assert!(matches!(mdn.signature, SignatureVerdict::Verified));
    assert_eq!(mdn.received_mic.unwrap().digest, outcome.mic.digest);
    assert_eq!(mdn.original_message_id, outcome.message_id);
    let files = stored_files(&pair);
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), SAMPLE_X12_850.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_mdn_that_overtakes_the_http_answer_is_not_lost() {
    let pair = Pair::start(runtime(), runtime()).await;
    // GLOBEX's MDN reaches ACME's endpoint while ACME still waits for the 200.
    let (proxy_url, _) = faulty_proxy(
        pair.url.clone(),
        Fault::DelayAnswers(Duration::from_secs(2)),
    )
    .await;
    let config = pair.acme_config.replace(&pair.url, &proxy_url).replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"mdn_delivery\":\"async\"",
    );
    let outcome = pair.send_with(&config, purchase_order()).await;
    assert_eq!(outcome.attempts, 1);
    let status = lookup(&pair, &config, &outcome.message_id).await;
    assert!(
        matches!(status.state, MessageState::Acknowledged),
        "the MDN's verdict was overwritten: {status:?}"
    );
    assert_eq!(status.attempts, 1);
    let mdn = status.mdn.expect("the MDN is recorded");
    assert_eq!(disposition_text(&mdn.disposition), "processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mdn_for_a_message_never_sent_is_refused_with_not_found() {
    let pair = Pair::start(runtime(), runtime()).await;
    let forged = mdn_from_globex(&pair, "<never-sent@ACME>", None);
    let (status, _, body) = post(&pair.acme_url, &pairs(&forged.headers), forged.body).await;
    assert_eq!(status, 404);
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("NOT_FOUND:"), "{body}");
    assert!(body.contains("<never-sent@ACME>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_names_are_kept_made_safe_and_never_overwrite_each_other() {
    let pair = Pair::start(runtime(), runtime()).await;
    let named = |name: &str, content: &[u8]| Document {
        file_name: Some(name.into()),
        content_type: "application/edi-x12".into(),
        content: content.to_vec(),
    };
    for (name, content) in [
        ("../../outside.x12", b"first".as_slice()),
        ("..\\..\\outside.x12", b"second"),
        ("Bestellung März.x12", b"third"),
        ("CON.x12", b"fourth"),
    ] {
        let outcome = pair.send(named(name, content)).await;
        assert!(
            matches!(outcome.state, MessageState::Acknowledged),
            "{name}"
        );
    }
    let mut stored: Vec<(String, Vec<u8>)> = stored_files(&pair)
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    stored.sort();
    let names: Vec<&str> = stored.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    // A reserved device name gives way to the Message-ID.
    assert!(
        names[0].ends_with("@ACME") && !names[0].contains(['<', '>']),
        "{names:?}"
    );
    assert_eq!(stored[0].1, b"fourth");
    assert_eq!(
        names[1..],
        ["Bestellung März.x12", "outside (2).x12", "outside.x12"]
    );
    assert_eq!(stored[1].1, b"third");
    assert_eq!(stored[2].1, b"second");
    assert_eq!(stored[3].1, b"first");
    assert!(
        !pair.inbox.parent().unwrap().join("outside.x12").exists()
            && !pair.inbox.join("outside.x12").exists(),
        "nothing outside the partner's folder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_asynchronous_mdn_in_time_means_a_resend_with_the_same_bytes_then_failed() {
    let pair = Pair::start(runtime(), runtime()).await;
    // A partner that takes every message and never sends the MDN.
    // (Message-ID, body) of every request.
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let partner = loopback_server(move |received| {
        let log = log.clone();
        async move {
            let id = received
                .header("message-id")
                .unwrap_or_default()
                .to_string();
            log.lock().unwrap().push((id, received.body));
            Some((200, Vec::new(), Vec::new()))
        }
    })
    .await;
    let config = pair.acme_config.replace(&pair.url, &partner).replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"mdn_delivery\":\"async\",\"mdn_timeout_seconds\":1,\"send_attempts\":2",
    );
    assert!(config.contains("mdn_timeout_seconds"));
    let outcome = pair.send_with(&config, purchase_order()).await;
    assert!(matches!(outcome.state, MessageState::Pending));
    let resume = |config: String| {
        let acme = pair.acme.clone();
        async move {
            tokio::task::spawn_blocking(move || acme.resume(&config))
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        }
    };
    // Still within the timeout: nothing is owed yet.
    assert!(resume(config.clone()).await.is_empty());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resent = resume(config.clone()).await;
    assert_eq!(resent.len(), 1);
    let resent = resent[0].as_ref().unwrap();
    assert_eq!(resent.message_id, outcome.message_id);
    assert!(matches!(resent.state, MessageState::Pending));
    assert_eq!(resent.attempts, 2);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0], seen[1],
            "the resend is the same message, byte for byte"
        );
        assert_eq!(seen[0].0, outcome.message_id);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let given_up = resume(config.clone()).await;
    assert_eq!(given_up.len(), 1);
    assert!(matches!(
        given_up[0].as_ref().unwrap().state,
        MessageState::Failed
    ));
    assert_eq!(seen.lock().unwrap().len(), 2, "no third attempt");
    let status = lookup(&pair, &config, &outcome.message_id).await;
    assert!(matches!(status.state, MessageState::Failed));
    assert_eq!(
        status.reason.as_deref(),
        Some("no asynchronous MDN within 1 s after 2 attempts")
    );
    assert_eq!(status.history.len(), 2);
    assert!(
        status.history[1]
            .outcome
            .contains("awaiting the asynchronous MDN"),
        "{:?}",
        status.history
    );
    assert!(resume(config.clone()).await.is_empty());

    // The partner's MDN comes after all: it settles the message.
    let mic = as2_connector::mic::Mic {
        digest: base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            &outcome.mic.digest,
        )
        .unwrap(),
        algorithm: as2_connector::crypto::DigestAlgorithm::Sha256,
        spelling: outcome.mic.algorithm.clone(),
    };
    let late = mdn_from_globex(&pair, &outcome.message_id, Some(&mic));
    let (code, _, _) = post(&pair.acme_url, &pairs(&late.headers), late.body).await;
    assert_eq!(code, 200);
    let status = lookup(&pair, &config, &outcome.message_id).await;
    assert!(
        matches!(status.state, MessageState::Acknowledged),
        "{status:?}"
    );
    assert_eq!(status.reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_mdn_whose_mic_does_not_match_fails_the_message() {
    let pair = Pair::start(runtime(), runtime()).await;
    // A partner that takes the message and leaves the MDN to us.
    let partner = loopback_server(|_| async { Some((200, Vec::new(), Vec::new())) }).await;
    let config = pair.acme_config.replace(&pair.url, &partner).replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"mdn_delivery\":\"async\"",
    );
    let outcome = pair.send_with(&config, purchase_order()).await;
    assert!(matches!(outcome.state, MessageState::Pending));
    let wrong = as2_connector::mic::Mic {
        digest: vec![0x42; 32],
        algorithm: as2_connector::crypto::DigestAlgorithm::Sha256,
        spelling: "sha-256".into(),
    };
    let mdn = mdn_from_globex(&pair, &outcome.message_id, Some(&wrong));
    let (code, _, _) = post(&pair.acme_url, &pairs(&mdn.headers), mdn.body).await;
    assert_eq!(code, 200, "the MDN itself is taken");
    let status = lookup(&pair, &config, &outcome.message_id).await;
    assert!(matches!(status.state, MessageState::Failed), "{status:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some("the MDN's Received-Content-MIC does not match the MIC sent")
    );
    let recorded = status.mdn.expect("the MDN is kept");
    assert_eq!(disposition_text(&recorded.disposition), "processed");
}

/// A partner that answers every request 503; how many requests it saw.
async fn unavailable_partner() -> (String, Arc<Mutex<usize>>) {
    let seen = Arc::new(Mutex::new(0));
    let count = seen.clone();
    let url = loopback_server(move |_| {
        *count.lock().unwrap() += 1;
        async { Some((503, Vec::new(), b"down for maintenance".to_vec())) }
    })
    .await;
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_that_would_outlast_the_hosts_deadline_is_left_to_resume() {
    // A host deadline of 8 s tells the component a budget of 6.4 s. With a
    // 5 s MDN wait, the first resend (after 1 s) fits and the second (after
    // 2 s more) does not: the call returns the message pending, no trap.
    let short = as2_tests::runtime_with(as2_harness::runtime::Limits {
        deadline: Duration::from_secs(8),
        ..Default::default()
    });
    let pair = Pair::start(short, runtime()).await;
    let (partner, seen) = unavailable_partner().await;
    let config = pair.acme_config.replace(&pair.url, &partner).replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"mdn_timeout_seconds\":5,\"send_attempts\":3",
    );
    assert!(config.contains("\"send_attempts\":3"));
    let outcome = pair.send_with(&config, purchase_order()).await;
    assert!(
        matches!(outcome.state, MessageState::Pending),
        "{outcome:?}"
    );
    assert_eq!(outcome.attempts, 2);
    assert_eq!(*seen.lock().unwrap(), 2);
    let last = outcome.events.last().expect("events");
    assert!(last.contains("outside this call (resume)"), "{last}");

    // Under the default deadline (300 s) the same send makes all three attempts.
    let pair = Pair::start(runtime(), runtime()).await;
    let (partner, seen) = unavailable_partner().await;
    let config = pair.acme_config.replace(&pair.url, &partner).replace(
        "\"mdn\":\"signed\"",
        "\"mdn\":\"signed\",\"mdn_timeout_seconds\":5,\"send_attempts\":3",
    );
    let error = pair
        .try_send_with(&config, purchase_order())
        .await
        .expect_err("the partner never takes it");
    assert!(
        error.message.contains("gave up after 3 failed attempts"),
        "{error:?}"
    );
    assert_eq!(*seen.lock().unwrap(), 3);
}
