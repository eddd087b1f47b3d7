//! The sandbox: keys stay in the host, a failing guest does not take the host
//! down, and the schema the component publishes is valid JSON Schema.

use std::collections::BTreeSet;
use std::time::Duration;

use as2_harness::demo::{SAMPLE_X12_850, disposition_text};
use as2_harness::runtime::{COMPONENT_WASM, Document, Limits};
use as2_tests::{Pair, post, runtime, runtime_with};

fn purchase_order() -> Document {
    Document {
        file_name: Some("po.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    }
}

/// The key store interface the component imports offers exactly these
/// functions: open a handle, read the (public) certificate, sign a digest,
/// decrypt a key-transport blob. None returns private key material.
#[test]
fn keystore_interface_has_no_way_to_read_a_private_key() {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, COMPONENT_WASM).unwrap();
    let ty = component.component_type();
    let (_, keystore) = ty
        .imports(&engine)
        .find(|(name, _)| name.starts_with("as2:connector/keystore"))
        .expect("the component imports the key store");
    let wasmtime::component::types::ComponentItem::ComponentInstance(instance) = keystore.ty else {
        panic!("the key store import is an instance");
    };
    let functions: BTreeSet<String> = instance
        .exports(&engine)
        .filter(|(_, item)| {
            matches!(
                item.ty,
                wasmtime::component::types::ComponentItem::ComponentFunc(_)
            )
        })
        .map(|(name, _)| name.to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "[static]private-key.open",
        "[method]private-key.certificate",
        "[method]private-key.sign-digest",
        "[method]private-key.decrypt-key",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(functions, expected);
}

/// A full exchange signs (message and MDN) and decrypts through key handles:
/// the host counts each private-key operation it performed for the guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_and_decryption_go_through_the_hosts_key_handles() {
    let pair = Pair::start(runtime(), runtime()).await;
    let outcome = pair.send(purchase_order()).await;
    assert_eq!(
        disposition_text(&outcome.mdn.unwrap().disposition),
        "processed"
    );
    let count =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        count(&pair.acme.station.keys.signatures),
        1,
        "ACME signs the message"
    );
    assert_eq!(
        count(&pair.globex.station.keys.decryptions),
        1,
        "GLOBEX decrypts the content key"
    );
    assert_eq!(
        count(&pair.globex.station.keys.signatures),
        1,
        "GLOBEX signs the MDN"
    );
}

/// Documents larger than the call's memory cap are sent and received, for
/// every way a message is secured: each layer (ciphertext, plaintext, the
/// inflated entity, the payload) stays in host blobs and only pieces pass
/// through the guest's memory. The stored document is the one sent, and
/// the MDN says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_larger_than_the_calls_memory_cap_are_sent_and_received_in_pieces() {
    let capped = || {
        runtime_with(Limits {
            memory_bytes: 48 << 20,
            deadline: Duration::from_secs(240),
            ..Default::default()
        })
    };
    let pair = Pair::start_with(
        capped(),
        capped(),
        &serde_json::json!({"require_encrypted": false}),
    )
    .await;
    // 64 MiB of varied bytes: more than the cap, and no zlib bomb.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let content: Vec<u8> = (0..(64usize << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let alphabet = b"ISA*00~ST*850*0123456789\r\n";
            alphabet[(state % alphabet.len() as u64) as usize]
        })
        .collect();
    for (profile, settings) in [
        ("signed", serde_json::json!({"encryption": "none"})),
        ("cbc", serde_json::json!({"encryption": "aes256-cbc"})),
        ("gcm", serde_json::json!({"encryption": "aes256-gcm"})),
        (
            "compressed",
            serde_json::json!({"encryption": "aes256-cbc", "compression": "before-signing"}),
        ),
    ] {
        let mut config: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
        for (name, value) in settings.as_object().unwrap() {
            config["partner"][name] = value.clone();
        }
        let name = format!("large-{profile}.bin");
        let document = Document {
            file_name: Some(name.clone()),
            content_type: "application/octet-stream".into(),
            content: content.clone(),
        };
        let outcome = pair.send_with(&config.to_string(), document).await;
        let mdn = outcome.mdn.expect("a synchronous MDN");
        assert_eq!(disposition_text(&mdn.disposition), "processed", "{profile}");
        assert!(outcome.mic_matched, "{profile}");
        let stored = std::fs::read(pair.inbox.join("ACME").join(&name)).unwrap();
        assert!(
            stored == content,
            "{profile}: the stored document differs from the one sent"
        );
    }
}

/// A body the guest reads a piece at a time is never in its memory whole:
/// 64 MiB of garbage that claims to be CMS, past the call's 48 MiB cap, is
/// answered with an error MDN, and the next message is served normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_the_guests_memory_is_answered_and_the_next_request_is_served() {
    let small = runtime_with(Limits {
        memory_bytes: 48 << 20,
        deadline: Duration::from_secs(60),
        ..Default::default()
    });
    let pair = Pair::start(runtime(), small).await;
    let headers = vec![
        ("AS2-From".to_string(), "ACME".to_string()),
        ("AS2-To".to_string(), "GLOBEX".to_string()),
        ("Message-ID".to_string(), "<huge@ACME>".to_string()),
        (
            "Disposition-Notification-To".to_string(),
            "edi@acme.example".to_string(),
        ),
        (
            "Content-Type".to_string(),
            "application/pkcs7-mime; smime-type=enveloped-data".to_string(),
        ),
    ];
    let (status, _, body) = post(&pair.url, &headers, vec![b'x'; 64 << 20]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("decryption-failed"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let outcome = pair.send(purchase_order()).await;
    assert_eq!(
        disposition_text(&outcome.mdn.unwrap().disposition),
        "processed"
    );
    assert!(outcome.mic_matched);
}

/// The schema is valid JSON Schema 2020-12, and the demo's configuration
/// conforms to it while a broken one does not.
#[test]
fn config_schema_is_valid_json_schema_and_accepts_a_real_configuration() {
    let station =
        as2_harness::runtime::Station::open(&as2_tests::TempDir::new("schema").0).unwrap();
    let connector = as2_harness::connector::Connector::new(runtime(), station);
    let schema: serde_json::Value =
        serde_json::from_str(&connector.config_schema().unwrap()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).expect("the schema conforms to the 2020-12 meta-schema");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let config: serde_json::Value = serde_json::from_str(&as2_harness::demo::connection_json(
        "n",
        "A",
        "k",
        "B",
        "https://b.example/as2",
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
    ))
    .unwrap();
    assert!(validator.is_valid(&config));
    let mut broken = config.clone();
    broken["partner"]["encryption"] = "rot13".into();
    assert!(!validator.is_valid(&broken));

    // The conditionals: asynchronous MDNs need the station URL.
    let mut asynchronous = config.clone();
    asynchronous["partner"]["mdn_delivery"] = "async".into();
    assert!(!validator.is_valid(&asynchronous));
    asynchronous["station"]["url"] = "https://a.example/as2".into();
    assert!(validator.is_valid(&asynchronous));
    // A token cannot travel in an AS2 message body.
    let mut token = config.clone();
    token["auth"] =
        serde_json::json!({ "type": "token", "token": { "secret": "t" }, "location": "body" });
    assert!(!validator.is_valid(&token));
    token["auth"]["location"] = "url".into();
    assert!(validator.is_valid(&token));
    // Typed-in secrets are write-only; choices carry labels.
    let text = schema.to_string();
    assert!(text.contains("\"writeOnly\":true"));
    assert_eq!(
        schema["$defs"]["Digest"]["oneOf"][2]["title"],
        "SHA-256 (recommended)"
    );

    let ui: serde_json::Value =
        serde_json::from_str(&connector.config_ui_schema().unwrap()).unwrap();
    assert_eq!(ui["type"], "Categorization");
    let labels: Vec<&str> = ui["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|category| category["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "General",
            "Your AS2 station",
            "Partner AS2 station",
            "Authentication",
            "Rate limits",
            "Advanced"
        ]
    );
}

/// A connector build with its fault switch, under tight limits.
fn faulty_runtime() -> std::sync::Arc<as2_harness::runtime::Runtime> {
    std::sync::Arc::new(
        as2_harness::runtime::Runtime::with_component(
            as2_harness::runtime::FAULT_COMPONENT_WASM,
            Some(&as2_tests::cache_dir()),
            Limits {
                memory_bytes: 64 << 20,
                deadline: Duration::from_secs(3),
                ..Default::default()
            },
        )
        .expect("loading the fault-switch component"),
    )
}

/// A component that spins forever, allocates without bound or panics is
/// stopped and reported, each in its own call, while a message for another
/// connection on the same host is processed at the same time; the host
/// itself never panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_looping_hoarding_or_panicking_component_is_stopped_and_others_are_unaffected() {
    use as2_harness::runtime::CallError;

    let faulty = faulty_runtime();
    let pair = Pair::start(runtime(), faulty.clone()).await;
    let globex = pair.globex.clone();
    let renamed = |name: &str| {
        let mut config: serde_json::Value = serde_json::from_str(&pair.globex_config).unwrap();
        config["name"] = name.into();
        config.to_string()
    };
    let request = as2_harness::connector::InboundRequest::new(
        "POST",
        "/as2",
        vec![
            as2_harness::runtime::Header {
                name: "AS2-From".into(),
                value: "ACME".into(),
            },
            as2_harness::runtime::Header {
                name: "AS2-To".into(),
                value: "GLOBEX".into(),
            },
        ],
        Vec::new(),
        &std::env::temp_dir(),
    );
    for (fault, expected) in [
        ("fault: loop", "ran past its deadline of 3s"),
        ("fault: allocate", "reached its memory cap of 64 MiB"),
        ("fault: panic", "panicked"),
    ] {
        let (globex, config, request) = (globex.clone(), renamed(fault), request.clone());
        let started = std::time::Instant::now();
        let misbehaving = tokio::task::spawn_blocking(move || globex.export(&config, &request));
        // Meanwhile a good message for the well-behaved connection goes through.
        let outcome = pair.send(purchase_order()).await;
        assert_eq!(
            disposition_text(&outcome.mdn.as_ref().unwrap().disposition),
            "processed",
            "{fault}: the other connection is unaffected"
        );
        let result = misbehaving.await.expect("the host did not panic");
        let Err(CallError::Trap {
            reason,
            guest_output,
        }) = result
        else {
            panic!("{fault}: the call was not stopped: {result:?}");
        };
        assert!(
            reason.contains(expected),
            "{fault}: {reason} / {guest_output}"
        );
        if fault == "fault: panic" {
            assert!(
                guest_output.contains("the fault switch asked for a panic"),
                "{guest_output}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{fault}: stopped in {:?}",
            started.elapsed()
        );
    }

    // Through the endpoint: the stopped call is a 500, and the endpoint carries on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/as2", listener.local_addr().unwrap());
    let endpoint = std::sync::Arc::new(as2_harness::server::Endpoint::new(
        pair.globex.clone(),
        vec![as2_harness::server::Route::from_json(renamed("fault: panic")).unwrap()],
        16 << 20,
    ));
    tokio::spawn(as2_harness::server::serve(
        listener,
        endpoint,
        std::future::pending(),
    ));
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .chain([("Message-ID".to_string(), "<x@ACME>".to_string())])
        .collect();
    let (status, _, body) = post(&url, &headers, b"anything".to_vec()).await;
    assert_eq!(status, 500);
    assert!(
        String::from_utf8_lossy(&body).contains("the connector component stopped: it panicked"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let outcome = pair.send(purchase_order()).await;
    assert!(outcome.mic_matched);
}

/// A call may write only so much to blobs: a message larger than the
/// allowance is refused with `STORAGE_FAILED`, nothing is recorded for it,
/// and a small one still goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_calls_blob_allowance_is_refused_with_storage_failed() {
    let tight = runtime_with(Limits {
        blob_bytes: 1 << 20,
        ..Default::default()
    });
    let pair = Pair::start(tight, runtime()).await;
    let large = Document {
        file_name: Some("large.bin".into()),
        content_type: "application/octet-stream".into(),
        content: vec![b'x'; 2 << 20],
    };
    let refused = pair
        .try_send_with(&pair.acme_config, large)
        .await
        .expect_err("the message is larger than the allowance");
    assert_eq!(
        as2_harness::connector::error_code(&refused),
        "STORAGE_FAILED"
    );
    assert!(refused.message.contains("1 MiB"), "{}", refused.message);
    let everything = as2_harness::runtime::api::MessageFilter {
        direction: None,
        state: None,
        since: None,
        until: None,
        limit: 100,
    };
    let listed = pair
        .acme
        .list_messages(&pair.acme_config, &everything)
        .unwrap()
        .unwrap();
    assert!(listed.is_empty(), "{} messages recorded", listed.len());

    let outcome = pair.send(purchase_order()).await;
    assert_eq!(
        disposition_text(&outcome.mdn.unwrap().disposition),
        "processed"
    );
}
