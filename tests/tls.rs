//! HTTPS both ways: messages to `serve`'s TLS listener, the partner's CA
//! from the connection configuration, mutual TLS with a client certificate
//! from the key store, and an asynchronous MDN the host delivers over https.
//! The CA and every certificate are made at test time.

use std::sync::Arc;
use std::time::Duration;

use as2_harness::connector::Connector;
use as2_harness::demo::{LoopbackEndpoint, SAMPLE_X12_850, disposition_text};
use as2_harness::runtime::api::{MessageState, Verdict};
use as2_harness::runtime::bindings::as2::connector::types::SignatureVerdict;
use as2_harness::runtime::{Document, api};
use as2_harness::server::{self, Endpoint, Route};
use as2_tests::{Pair, runtime, settled};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// A throwaway certificate authority.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A CA whose certificate this CA issues (an intermediate).
    fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        TestCa {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a certificate for a fresh RSA key (the key store holds RSA
    /// keys) and imports both into `connector`'s key store as `name`.
    fn issue_into(&self, connector: &Connector, name: &str, usage: ExtendedKeyUsagePurpose) {
        let key_pem = as2_connector::crypto::rustcrypto::generate_station_key(
            name,
            std::time::SystemTime::now(),
            Duration::from_secs(86400),
        )
        .unwrap()
        .private_key_pem;
        let key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert_pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        connector
            .station
            .keys
            .import(name, &key_pem, &cert_pem)
            .unwrap();
    }
}

/// A station's endpoint on a loopback TLS port, `https://127.0.0.1:PORT/as2`,
/// presenting key store entry `key`; with `client_ca`, mutual TLS.
struct TlsEndpoint {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TlsEndpoint {
    /// A loopback port and its https URL.
    async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/as2", listener.local_addr().unwrap());
        (listener, url)
    }

    /// Serves `routes` for `connector` over TLS on `listener`.
    fn serve(
        listener: tokio::net::TcpListener,
        url: String,
        connector: &Connector,
        routes: Vec<Route>,
        key: &str,
        chain: Option<&str>,
        client_ca: Option<&str>,
    ) -> Self {
        let acceptor =
            as2_harness::tls::acceptor(&connector.station.keys, key, chain, client_ca).unwrap();
        let endpoint = Arc::new(Endpoint::new(connector.clone(), routes, 16 << 20));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve_tls(listener, acceptor, endpoint, async {
            let _ = stopped.await;
        }));
        TlsEndpoint {
            url,
            stop: Some(stop),
        }
    }

    async fn start(
        connector: &Connector,
        routes: Vec<Route>,
        key: &str,
        chain: Option<&str>,
        client_ca: Option<&str>,
    ) -> Self {
        let (listener, url) = Self::bind().await;
        Self::serve(listener, url, connector, routes, key, chain, client_ca)
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `config` with each field (a JSON pointer) set to its value.
fn with(config: &str, changes: &[(&str, serde_json::Value)]) -> String {
    let mut value: serde_json::Value = serde_json::from_str(config).unwrap();
    for (pointer, new) in changes {
        // The parent exists; the field itself may be absent (a default).
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        value
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{pointer}"))[key] = new.clone();
    }
    value.to_string()
}

/// GLOBEX serving HTTPS with a certificate from `ca`, for ACME's connection.
async fn globex_over_https(pair: &Pair, ca: &TestCa, client_ca: Option<&str>) -> TlsEndpoint {
    ca.issue_into(
        &pair.globex,
        "globex-tls",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    TlsEndpoint::start(
        &pair.globex,
        vec![Route::from_json(pair.globex_config.clone()).unwrap()],
        "globex-tls",
        None,
        client_ca,
    )
    .await
}

/// ACME's connection to `url`, trusting `ca_pem` when given.
fn acme_config_to(pair: &Pair, url: &str, ca_pem: Option<&str>) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
    value["partner"]["url"] = url.into();
    if let Some(pem) = ca_pem {
        value["partner"]["tls_ca_certificates"] = pem.into();
    }
    value.to_string()
}

fn purchase_order() -> Document {
    Document {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    }
}

async fn test_connection(pair: &Pair, config: &str) -> api::ConnectionTest {
    let (acme, config) = (pair.acme.clone(), config.to_string());
    tokio::task::spawn_blocking(move || acme.test_connection(&config))
        .await
        .unwrap()
        .unwrap()
}

/// ACME sends the purchase order over `config`: the outcome, or the error.
async fn send(pair: &Pair, config: &str) -> Result<api::SendOutcome, String> {
    let (acme, config) = (pair.acme.clone(), config.to_string());
    let result = tokio::task::spawn_blocking(move || acme.import(&config, &[purchase_order()]))
        .await
        .unwrap()
        .unwrap();
    match result {
        Ok(mut outcomes) => outcomes
            .remove(0)
            .map_err(|e| as2_harness::connector::describe(&e)),
        Err(e) => Err(as2_harness::connector::describe(&e)),
    }
}

fn stored_files(pair: &Pair) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(pair.inbox.join("ACME")) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn assert_processed_and_stored(pair: &Pair, outcome: &api::SendOutcome) {
    let mdn = outcome.mdn.as_ref().expect("a synchronous MDN");
    assert_eq!(disposition_text(&mdn.disposition), "processed");
    assert!(matches!(mdn.signature, SignatureVerdict::Verified));
    assert!(outcome.mic_matched);
    let stored = std::fs::read(pair.inbox.join("ACME").join("po-4711.x12")).unwrap();
    assert_eq!(stored, SAMPLE_X12_850.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_https_to_a_partner_with_a_configured_ca_arrives_intact_with_a_signed_mdn() {
    let pair = Pair::start(runtime(), runtime()).await;
    let ca = TestCa::new("Test TLS CA");
    let globex = globex_over_https(&pair, &ca, None).await;
    let config = acme_config_to(&pair, &globex.url, Some(&ca.pem));

    let test = test_connection(&pair, &config).await;
    assert!(
        matches!(test.verdict, Verdict::Ok),
        "{}: {:?}",
        test.summary,
        test.checks
    );
    let outcome = send(&pair, &config).await.expect("sent over https");
    assert_eq!(outcome.attempts, 1);
    assert_processed_and_stored(&pair, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_partners_ca_test_connection_says_tls_error_and_nothing_is_delivered() {
    let pair = Pair::start(runtime(), runtime()).await;
    let ca = TestCa::new("Test TLS CA");
    let globex = globex_over_https(&pair, &ca, None).await;
    let config = acme_config_to(&pair, &globex.url, None);

    let test = test_connection(&pair, &config).await;
    assert!(
        matches!(test.verdict, Verdict::TlsError),
        "{}: {:?}",
        test.summary,
        test.checks
    );
    // A CA that did not issue the server's certificate does not help either.
    let other = TestCa::new("Another CA");
    let test = test_connection(&pair, &acme_config_to(&pair, &globex.url, Some(&other.pem))).await;
    assert!(
        matches!(test.verdict, Verdict::TlsError),
        "{}",
        test.summary
    );

    let config = with(&config, &[("/partner/send_attempts", 1.into())]);
    let failure = send(&pair, &config).await.expect_err("the send fails");
    assert!(
        failure.contains("TLS certificate is not trusted"),
        "{failure}"
    );
    assert!(stored_files(&pair).is_empty(), "{:?}", stored_files(&pair));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_only_a_client_certificate_from_the_ca_gets_through() {
    let pair = Pair::start(runtime(), runtime()).await;
    let ca = TestCa::new("Test TLS CA");
    let client_ca = TestCa::new("Test client CA");
    let globex = globex_over_https(&pair, &ca, Some(&client_ca.pem)).await;
    let anonymous = with(
        &acme_config_to(&pair, &globex.url, Some(&ca.pem)),
        &[("/partner/send_attempts", 1.into())],
    );

    // No client certificate: refused at the handshake.
    let test = test_connection(&pair, &anonymous).await;
    assert!(
        matches!(test.verdict, Verdict::TlsError),
        "{}: {:?}",
        test.summary,
        test.checks
    );
    assert!(
        test.summary.contains("refused the TLS handshake"),
        "{}",
        test.summary
    );
    let failure = send(&pair, &anonymous)
        .await
        .expect_err("no client certificate, no delivery");
    assert!(failure.contains("tls_client_key"), "{failure}");
    assert!(stored_files(&pair).is_empty());

    // A certificate of another CA: refused too.
    let stranger = TestCa::new("Stranger CA");
    stranger.issue_into(
        &pair.acme,
        "acme-stranger",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut value: serde_json::Value = serde_json::from_str(&anonymous).unwrap();
    value["station"]["tls_client_key"] = "acme-stranger".into();
    let test = test_connection(&pair, &value.to_string()).await;
    assert!(
        matches!(test.verdict, Verdict::TlsError),
        "{}",
        test.summary
    );

    // A certificate issued by the client CA: accepted.
    client_ca.issue_into(&pair.acme, "acme-tls", ExtendedKeyUsagePurpose::ClientAuth);
    value["station"]["tls_client_key"] = "acme-tls".into();
    let config = value.to_string();
    let test = test_connection(&pair, &config).await;
    assert!(
        matches!(test.verdict, Verdict::Ok),
        "{}: {:?}",
        test.summary,
        test.checks
    );
    let outcome = send(&pair, &config)
        .await
        .expect("sent with a client certificate");
    assert_processed_and_stored(&pair, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_mdn_is_delivered_by_the_host_over_https_with_the_connections_ca() {
    let pair = Pair::start(runtime(), runtime()).await;
    let ca = TestCa::new("Test TLS CA");
    // ACME takes asynchronous MDNs on an HTTPS endpoint with a certificate from the CA.
    ca.issue_into(&pair.acme, "acme-tls", ExtendedKeyUsagePurpose::ServerAuth);
    let (listener, acme_url) = TlsEndpoint::bind().await;
    let acme_config = with(
        &pair.acme_config,
        &[
            ("/station/url", acme_url.clone().into()),
            ("/partner/mdn_delivery", "async".into()),
        ],
    );
    let _acme_endpoint = TlsEndpoint::serve(
        listener,
        acme_url.clone(),
        &pair.acme,
        vec![Route::from_json(acme_config.clone()).unwrap()],
        "acme-tls",
        None,
        None,
    );
    // GLOBEX receives over plain HTTP; its connection trusts the CA for ACME's https URL.
    let mut globex_config: serde_json::Value = serde_json::from_str(&pair.globex_config).unwrap();
    globex_config["partner"]["url"] = acme_url.clone().into();
    globex_config["partner"]["tls_ca_certificates"] = ca.pem.clone().into();
    let (listener, globex_url) = LoopbackEndpoint::bind().await.unwrap();
    let _globex_endpoint = LoopbackEndpoint::start(
        listener,
        globex_url.clone(),
        &pair.globex,
        vec![Route::from_json(globex_config.to_string()).unwrap()],
    );

    let config = with(&acme_config, &[("/partner/url", globex_url.into())]);
    let outcome = send(&pair, &config).await.expect("sent");
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
    assert_eq!(mdn.original_message_id, outcome.message_id);
    assert_eq!(
        std::fs::read(pair.inbox.join("ACME").join("po-4711.x12")).unwrap(),
        SAMPLE_X12_850.as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_intermediate_ca_is_trusted_only_with_its_chain() {
    let pair = Pair::start(runtime(), runtime()).await;
    let root = TestCa::new("Test root CA");
    let intermediate = root.intermediate("Test intermediate CA");
    intermediate.issue_into(
        &pair.globex,
        "globex-tls",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let routes = || vec![Route::from_json(pair.globex_config.clone()).unwrap()];

    // Served without the intermediate, a client trusting only the root cannot build a path.
    let bare = TlsEndpoint::start(&pair.globex, routes(), "globex-tls", None, None).await;
    let test = test_connection(&pair, &acme_config_to(&pair, &bare.url, Some(&root.pem))).await;
    assert!(
        matches!(test.verdict, Verdict::TlsError),
        "{}",
        test.summary
    );

    // With the intermediate as the chain (`serve --tls-chain`), it can.
    let chained = TlsEndpoint::start(
        &pair.globex,
        routes(),
        "globex-tls",
        Some(&intermediate.pem),
        None,
    )
    .await;
    let config = acme_config_to(&pair, &chained.url, Some(&root.pem));
    let outcome = send(&pair, &config).await.expect("sent over https");
    assert_processed_and_stored(&pair, &outcome);
}
