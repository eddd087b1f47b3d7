//! Messages that must be refused, sent over loopback HTTP to the component:
//! each gets the RFC 4130 disposition that names its fault, in an MDN that
//! verifies, and nothing reaches the inbox.

use std::time::{Duration, SystemTime};

use as2_connector::config::Connection;
use as2_connector::crypto::rustcrypto::{RustCryptoProvider, generate_station_key};
use as2_connector::headers::Headers;
use as2_connector::mdn::Disposition;
use as2_connector::message::{self, Document};
use as2_tests::{Pair, post, runtime};

fn document() -> Document {
    Document {
        file_name: Some("po.x12".into()),
        content_type: "application/edi-x12".into(),
        content: b"ST*850*0001~\r\nSE*2*0001~\r\n".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_messages_get_the_disposition_that_names_the_fault() {
    let pair = Pair::start(runtime(), runtime()).await;
    let provider = RustCryptoProvider;
    let now = SystemTime::now();
    let acme_key = pair.acme.station.keys.get("acme").unwrap();
    let intruder = generate_station_key(
        "INTRUDER",
        now - Duration::from_secs(60),
        Duration::from_secs(86400),
    )
    .unwrap();
    let sender = Connection::check(&pair.acme_config, now).unwrap();
    let to_intruder = pair.acme_config.replace(
        &serde_json::to_string(
            &Connection::from_json(&pair.acme_config)
                .unwrap()
                .partner
                .certificate,
        )
        .unwrap(),
        &serde_json::to_string(&intruder.certificate_pem).unwrap(),
    );
    let to_intruder = Connection::check(&to_intruder, now).unwrap();
    let unsigned = Connection::check(
        &pair
            .acme_config
            .replace("\"signing\":\"sha256\"", "\"signing\":\"none\""),
        now,
    )
    .unwrap();

    struct Case {
        name: &'static str,
        headers: Headers,
        body: Vec<u8>,
        expected: Disposition,
    }
    let build = |config: &as2_connector::config::Checked,
                 key: &dyn as2_connector::crypto::PrivateKey| {
        message::build(config, &document(), key, now, &provider).unwrap()
    };
    let mut cases = Vec::new();
    let wrong_recipient = build(&to_intruder, acme_key.as_ref());
    cases.push(Case {
        name: "encrypted for another certificate",
        headers: wrong_recipient.headers,
        body: wrong_recipient.body,
        expected: Disposition::error("decryption-failed"),
    });
    let forged = build(&sender, &intruder.key);
    cases.push(Case {
        name: "signed by an unknown key",
        headers: forged.headers,
        body: forged.body,
        expected: Disposition::error("authentication-failed"),
    });
    let plain = build(&unsigned, acme_key.as_ref());
    cases.push(Case {
        name: "unsigned where signing is required",
        headers: plain.headers,
        body: plain.body,
        expected: Disposition::error("insufficient-message-security"),
    });
    let mut corrupted = build(&sender, acme_key.as_ref());
    // The last byte of the next-to-last CBC block XORs into the padding length:
    // 0x55 makes it larger than a block, so the padding check must fail.
    let last = corrupted.body.len() - 17;
    corrupted.body[last] ^= 0x55;
    cases.push(Case {
        name: "ciphertext altered in transit",
        headers: corrupted.headers,
        body: corrupted.body,
        expected: Disposition::error("decryption-failed"),
    });
    let unknown_micalg = build(&sender, acme_key.as_ref());
    let headers: Headers = unknown_micalg
        .headers
        .iter()
        .map(|(n, v)| {
            let v = if n == "Disposition-Notification-Options" {
                "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, md5"
            } else {
                v
            };
            (n.to_string(), v.to_string())
        })
        .collect();
    cases.push(Case {
        name: "only an unsupported MIC algorithm asked for",
        headers,
        body: unknown_micalg.body,
        expected: Disposition::failure("unsupported MIC-algorithms"),
    });

    for case in cases {
        let message_id = case.headers.get("Message-ID").unwrap().to_string();
        let wire: Vec<(String, String)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let (status, response_headers, body) = post(&pair.url, &wire, case.body).await;
        assert_eq!(
            status, 200,
            "{}: the MDN travels in a 200 response",
            case.name
        );
        let response_headers: Headers = response_headers.into_iter().collect();
        let mdn = as2_connector::mdn::parse(
            &response_headers,
            &body,
            &Connection::check(&pair.acme_config, now)
                .unwrap()
                .partner_cert,
            &provider,
        )
        .unwrap_or_else(|e| panic!("{}: the MDN does not parse: {e}", case.name));
        assert_eq!(mdn.disposition, case.expected, "{}", case.name);
        assert_eq!(mdn.original_message_id, message_id, "{}", case.name);
        assert!(
            mdn.received_mic.is_none(),
            "{}: no MIC for a refused message",
            case.name
        );
        // An unsigned MDN only when the request could not name a usable algorithm.
        assert_eq!(
            mdn.signed,
            case.name != "only an unsupported MIC algorithm asked for",
            "{}",
            case.name
        );
    }
    assert!(
        !pair.inbox.exists()
            || std::fs::read_dir(pair.inbox.join("ACME"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    );
}

/// `validate-config` through the component: the key store's side of the
/// station (the key handle and its certificate) joins the form's problems.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_config_through_the_component_reports_every_problem_with_its_pointer() {
    use as2_harness::connector::describe_problem;
    use as2_harness::runtime::ErrorCode;
    use as2_harness::runtime::api::Severity;

    let pair = Pair::start(runtime(), runtime()).await;
    pair.globex
        .station
        .keys
        .generate("globex-soon", "GLOBEX", Duration::from_secs(10 * 86400))
        .unwrap();
    let validate = |config: String| {
        let globex = pair.globex.clone();
        async move {
            tokio::task::spawn_blocking(move || globex.validate_config(&config))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let with_key = |name: &str| {
        pair.globex_config.replace(
            "\"private_key\":\"globex\"",
            &format!("\"private_key\":\"{name}\""),
        )
    };
    assert!(pair.globex_config.contains("\"private_key\":\"globex\""));
    assert!(validate(pair.globex_config.clone()).await.is_empty());

    let problems = validate(with_key("globex-soon")).await;
    let text: Vec<String> = problems.iter().map(describe_problem).collect();
    assert_eq!(problems.len(), 1, "{text:?}");
    assert!(
        matches!(problems[0].severity, Severity::Warning),
        "{text:?}"
    );
    assert_eq!(problems[0].field, "/station/private_key");
    assert!(
        problems[0]
            .message
            .contains("the station certificate (CN=GLOBEX) expires on"),
        "{text:?}"
    );

    // The configured station certificate must be the key's.
    let with_certificate = |pem: &str| {
        let mut config: serde_json::Value = serde_json::from_str(&pair.globex_config).unwrap();
        config["station"]["certificate"] = pem.into();
        config.to_string()
    };
    let own = std::fs::read_to_string(pair.globex.station.keys.certificate_path("globex")).unwrap();
    assert!(validate(with_certificate(&own)).await.is_empty());
    let other = std::fs::read_to_string(pair.acme.station.keys.certificate_path("acme")).unwrap();
    let problems = validate(with_certificate(&other)).await;
    let text: Vec<String> = problems.iter().map(describe_problem).collect();
    assert_eq!(problems.len(), 1, "{text:?}");
    assert_eq!(problems[0].field, "/station/private_key");
    assert!(
        problems[0]
            .message
            .contains("does not match /station/certificate (CN=ACME)"),
        "{text:?}"
    );

    let problems = validate(with_key("nobody")).await;
    let text: Vec<String> = problems.iter().map(describe_problem).collect();
    assert_eq!(problems.len(), 1, "{text:?}");
    assert!(matches!(problems[0].code, ErrorCode::InvalidConfig));
    assert_eq!(problems[0].field, "/station/private_key", "{text:?}");
    assert!(problems[0].message.contains("nobody"), "{text:?}");

    let broken = pair
        .globex_config
        .replace("\"http://127.0.0.1:9/\"", "\"ftp://127.0.0.1:9/\"")
        .replace("\"name\":", "\"colour\":\"red\",\"name\":");
    let problems = validate(broken).await;
    let text: Vec<String> = problems.iter().map(describe_problem).collect();
    assert_eq!(
        text,
        vec![
            "error INVALID_CONFIG at /partner/url: \"ftp://127.0.0.1:9/\" is not an http:// or https:// URL",
            "error INVALID_CONFIG at /colour: unknown field \"colour\"; remove it (fields here: advanced, auth, configure_rate_limits, name, partner, rate_limit, station)",
        ]
    );
}
