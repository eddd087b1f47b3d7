//! Certificate exchange (EDIINT CEM) between two of our stations over real
//! loopback HTTP: ACME offers its next certificate in a CEM request, GLOBEX
//! records it and accepts it with a CEM response sent to the URL the request
//! named, and at the respond-by date both switch: ACME signs with its next
//! key, GLOBEX verifies with the new certificate and refuses the old one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use as2_harness::connector::describe;
use as2_harness::demo::SAMPLE_X12_850;
use as2_harness::runtime::Document;
use as2_harness::runtime::api::MessageState;
use as2_tests::{Pair, runtime};

fn document(name: &str) -> Document {
    Document {
        file_name: Some(name.into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cem_request_is_answered_and_both_stations_switch_at_the_respond_by_date() {
    let pair = Pair::start(runtime(), runtime()).await;
    let next_pem = pair
        .acme
        .station
        .keys
        .generate("acme-next", "ACME", Duration::from_secs(365 * 86400))
        .unwrap();
    let (_, next_key) = pair.acme.station.keys.tls_identity("acme-next").unwrap();
    as2_tests::secret_key(next_key.secret_der());
    let next_cert = as2_connector::smime::Cert::from_pem(&next_pem).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
    config["station"]["next_private_key"] = "acme-next".into();
    let acme_config = config.to_string();
    let (acme, globex) = (pair.acme.clone(), pair.globex.clone());
    let globex_config = pair.globex_config.clone();
    let respond_by = now() + 6;

    // 1. ACME offers its next certificate.
    let sent = {
        let (acme, config) = (acme.clone(), acme_config.clone());
        tokio::task::spawn_blocking(move || acme.cem_request(&config, respond_by))
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|e| panic!("{}", describe(&e)))
    };
    assert!(
        matches!(sent.outcome.state, MessageState::Acknowledged),
        "{:?}",
        sent.outcome
    );
    // The request is not delivered as documents.
    assert!(std::fs::read_dir(&pair.inbox).map_or(true, |mut d| d.next().is_none()));

    // 2. GLOBEX has it, pending, naming the new certificate.
    let list = |connector: as2_harness::connector::Connector, config: String| async move {
        tokio::task::spawn_blocking(move || connector.cem_list(&config))
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|e| panic!("{}", describe(&e)))
    };
    let received = list(globex.clone(), globex_config.clone()).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].request_id, sent.request_id);
    assert!(!received[0].sent);
    assert_eq!(received[0].state, "pending");
    assert_eq!(received[0].respond_by, respond_by);
    assert_eq!(received[0].certificate_serial, next_cert.serial_text());

    // 3. GLOBEX accepts: the response goes to ACME's station URL.
    let answered = {
        let (globex, config, id) = (
            globex.clone(),
            globex_config.clone(),
            sent.request_id.clone(),
        );
        tokio::task::spawn_blocking(move || globex.cem_answer(&config, &id, true, None))
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|e| panic!("{}", describe(&e)))
    };
    assert!(
        matches!(answered.state, MessageState::Acknowledged),
        "{answered:?}"
    );
    let ours = list(acme.clone(), acme_config.clone()).await;
    assert_eq!(ours.len(), 1);
    assert!(ours[0].sent);
    assert_eq!(ours[0].state, "accepted", "{ours:?}");
    assert_eq!(
        list(globex.clone(), globex_config.clone()).await[0].state,
        "accepted"
    );

    // 4. Before the date: the current key still signs, and GLOBEX verifies it.
    let before = pair.send_with(&acme_config, document("before.x12")).await;
    assert!(
        matches!(before.state, MessageState::Acknowledged),
        "{before:?}"
    );
    assert!(
        now() < respond_by,
        "the steps before the switch took too long"
    );

    // 5. After it: ACME signs with its next key, and GLOBEX takes it.
    tokio::time::sleep(Duration::from_secs(respond_by + 1 - now())).await;
    let after = pair.send_with(&acme_config, document("after.x12")).await;
    assert!(
        matches!(after.state, MessageState::Acknowledged),
        "{after:?}"
    );
    assert!(after.mic_matched);

    // GLOBEX has switched: a message signed with ACME's old key is refused.
    let (_, old_signed) = pair.build_natively(
        &pair.acme_config,
        &as2_connector::message::Document {
            file_name: Some("old-key.x12".into()),
            content_type: "application/edi-x12".into(),
            content: SAMPLE_X12_850.as_bytes().to_vec(),
        },
    );
    let headers: Vec<(String, String)> = old_signed
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let (status, _, body) = as2_tests::post(&pair.url, &headers, old_signed.body).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("authentication-failed"), "{text}");
}
