//! HTTP authentication and rate limits towards the partner, over real
//! loopback HTTP through the component, against small servers in front of
//! GLOBEX: a gate that enforces Basic and token authentication, expires
//! tokens and serves a token refresh endpoint, and a throttle that answers
//! "too fast".

use std::sync::{Arc, Mutex};

use as2_harness::demo::{SAMPLE_X12_850, disposition_text};
use as2_harness::runtime::api::{self, MessageState};
use as2_harness::runtime::{Document, ErrorCode};
use as2_tests::{Pair, loopback_server, post, runtime};

const BASIC: &str = "Basic YWNtZTpzM2NyZXQgcGFzcw=="; // acme:s3cret pass
const GOOD_TOKEN: &str = "tok-good-5f2a9c1e";
const EXPIRED_TOKEN: &str = "tok-expired-7d1e4b0a";
const REFRESH_TOKEN: &str = "refresh-3c9a0f81";
const DENIED_TOKEN: &str = "deny-me";

/// What the gate saw of each request: the credentials it carried.
type Seen = Arc<Mutex<Vec<String>>>;

/// The gate: forwards authorized AS2 POSTs to `target`; refuses the rest
/// with 401 (or, for [`DENIED_TOKEN`], with 200 and a JSON error body);
/// answers `POST /oauth/token` with a new token for the right refresh token.
async fn gate(target: String) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let url = loopback_server(move |request| {
        let (target, log) = (target.clone(), log.clone());
        async move {
            let respond =
                |status: u16, body: &str| Some((status, Vec::new(), body.as_bytes().to_vec()));
            if request.path == "/oauth/token" {
                let refresh: serde_json::Value =
                    serde_json::from_slice(&request.body).unwrap_or_default();
                log.lock().unwrap().push(format!("refresh {refresh}"));
                if refresh["refresh_token"] == REFRESH_TOKEN
                    && refresh["grant_type"] == "refresh_token"
                {
                    return respond(
                        200,
                        &format!(r#"{{"data":{{"access_token":"{GOOD_TOKEN}"}}}}"#),
                    );
                }
                return respond(400, r#"{"error":"invalid_grant"}"#);
            }
            let authorization = request.header("authorization").map(str::to_string);
            let query_token = request.query.as_deref().and_then(|q| {
                q.split('&')
                    .find_map(|pair| pair.strip_prefix("access_token="))
                    .map(str::to_string)
            });
            let credentials = authorization
                .clone()
                .or(query_token.clone().map(|t| format!("url {t}")))
                .unwrap_or_else(|| "none".into());
            log.lock().unwrap().push(credentials);
            let bearer = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::to_string);
            let token = bearer.or(query_token);
            if token.as_deref() == Some(DENIED_TOKEN) {
                return respond(200, r#"{"error":{"code":"access_denied"}}"#);
            }
            if authorization.as_deref() != Some(BASIC) && token.as_deref() != Some(GOOD_TOKEN) {
                return respond(401, "unauthorized");
            }
            if request.header("message-id").is_none() {
                // test-connection's probe: no document, nothing to forward.
                return respond(200, "AS2 endpoint");
            }
            let headers: Vec<(String, String)> = request
                .headers
                .into_iter()
                .filter(|(n, _)| n != "authorization")
                .collect();
            Some(post(&target, &headers, request.body).await)
        }
    })
    .await;
    (format!("{url}/as2"), seen)
}

fn purchase_order() -> Document {
    Document {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    }
}

/// ACME's connection through the gate at `url`, with `auth` (`null`: none).
fn config(pair: &Pair, url: &str, auth: serde_json::Value) -> String {
    let mut config: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
    config["partner"]["url"] = url.into();
    let config = config.to_string();
    if auth.is_null() {
        config
    } else {
        with_field(&config, "auth", auth)
    }
}

/// `config` with its top-level `field` set to `value`.
fn with_field(config: &str, field: &str, value: serde_json::Value) -> String {
    let mut config: serde_json::Value = serde_json::from_str(config).unwrap();
    config[field] = value;
    config.to_string()
}

/// Each arrival came at least `at_least` after the one before.
fn assert_spaced(arrivals: &[std::time::Instant], at_least: std::time::Duration) {
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= at_least,
            "closer than {at_least:?}: {arrivals:?}"
        );
    }
}

/// ACME's secret store gets the password GLOBEX expects ("globex-password")
/// and a wrong one ("wrong-password").
fn store_basic_passwords(pair: &Pair) {
    let secrets = &pair.acme.station.secrets;
    secrets
        .set("globex-password", &as2_tests::secret("s3cret pass"))
        .unwrap();
    secrets
        .set("wrong-password", &as2_tests::secret("guess-wrong-71c4"))
        .unwrap();
}

/// Basic authentication as user "acme" with the password stored as `secret`.
fn basic(secret: &str) -> serde_json::Value {
    serde_json::json!({ "type": "basic", "username": "acme", "password": { "secret": secret } })
}

fn assert_processed(outcome: &api::SendOutcome) {
    assert!(
        matches!(outcome.state, MessageState::Acknowledged),
        "{outcome:?}"
    );
    let mdn = outcome.mdn.as_ref().expect("an MDN");
    assert_eq!(disposition_text(&mdn.disposition), "processed");
}

fn stored(pair: &Pair) -> usize {
    std::fs::read_dir(pair.inbox.join("ACME")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_from_the_secret_store_get_through_and_wrong_ones_fail_with_auth_failed()
{
    let pair = Pair::start(runtime(), runtime()).await;
    as2_tests::secret(&BASIC["Basic ".len()..]);
    let (url, seen) = gate(pair.url.clone()).await;
    store_basic_passwords(&pair);

    let outcome = pair
        .send_with(
            &config(&pair, &url, basic("globex-password")),
            purchase_order(),
        )
        .await;
    assert_processed(&outcome);
    assert_eq!(seen.lock().unwrap().as_slice(), [BASIC]);
    assert_eq!(stored(&pair), 1);

    let wrong = config(&pair, &url, basic("wrong-password"));
    let result = pair.try_send_with(&wrong, purchase_order()).await;
    let error = result.expect_err("refused credentials fail the send");
    assert!(matches!(error.code, ErrorCode::AuthFailed), "{error:?}");
    assert!(
        error.message.contains("refused our credentials (HTTP 401)"),
        "{}",
        error.message
    );
    assert!(
        !error.message.contains("guess-wrong-71c4"),
        "no secret in errors"
    );
    // A refusal is final: not resent.
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(stored(&pair), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_travel_in_a_header_with_a_scheme_or_as_a_url_parameter() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, seen) = gate(pair.url.clone()).await;
    pair.acme
        .station
        .secrets
        .set("globex-token", &as2_tests::secret(GOOD_TOKEN))
        .unwrap();
    for location in ["header", "url"] {
        let auth = serde_json::json!({
            "type": "token", "token": { "secret": "globex-token" }, "location": location
        });
        let outcome = pair
            .send_with(&config(&pair, &url, auth), purchase_order())
            .await;
        assert!(
            matches!(outcome.state, MessageState::Acknowledged),
            "{location}"
        );
    }
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("Bearer {GOOD_TOKEN}"), format!("url {GOOD_TOKEN}")]
    );
    assert_eq!(stored(&pair), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_stored_and_the_message_sent_once_more() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, seen) = gate(pair.url.clone()).await;
    let secrets = &pair.acme.station.secrets;
    secrets
        .set("globex-token", &as2_tests::secret(EXPIRED_TOKEN))
        .unwrap();
    secrets
        .set("globex-refresh", &as2_tests::secret(REFRESH_TOKEN))
        .unwrap();
    let auth = serde_json::json!({
        "type": "token",
        "token": { "secret": "globex-token" },
        "refresh": {
            "refresh_token": { "secret": "globex-refresh" },
            "relative_uri": "/oauth/token",
            "token_path": "/data/access_token"
        }
    });
    let outcome = pair
        .send_with(&config(&pair, &url, auth), purchase_order())
        .await;
    assert!(matches!(outcome.state, MessageState::Acknowledged));
    assert_eq!(outcome.attempts, 2);
    assert!(
        outcome.events.iter().any(|e| e.contains("got a new one")),
        "{:?}",
        outcome.events
    );
    assert_eq!(secrets.get("globex-token").unwrap(), GOOD_TOKEN);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], format!("Bearer {EXPIRED_TOKEN}"));
    assert!(seen[1].starts_with("refresh ") && seen[1].contains(REFRESH_TOKEN));
    assert_eq!(seen[2], format!("Bearer {GOOD_TOKEN}"));
    assert_eq!(stored(&pair), 1);
    for event in &outcome.events {
        assert!(!event.contains(GOOD_TOKEN) && !event.contains(REFRESH_TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_told_by_a_value_in_the_response_body_is_auth_failed() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, _) = gate(pair.url.clone()).await;
    pair.acme
        .station
        .secrets
        .set("globex-token", &as2_tests::secret(DENIED_TOKEN))
        .unwrap();
    let auth = serde_json::json!({
        "type": "token",
        "token": { "secret": "globex-token" },
        "fail": { "path": "/error/code", "values": ["access_denied", "expired"] }
    });
    let config = config(&pair, &url, auth);
    let error = pair
        .try_send_with(&config, purchase_order())
        .await
        .expect_err("refused");
    assert!(matches!(error.code, ErrorCode::AuthFailed), "{error:?}");
    assert_eq!(stored(&pair), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_missing_from_the_store_is_named_in_a_clear_error() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, seen) = gate(pair.url.clone()).await;
    let auth = serde_json::json!({
        "type": "basic", "username": "acme", "password": { "secret": "not-there" }
    });
    let config = config(&pair, &url, auth);
    let error = pair
        .try_send_with(&config, purchase_order())
        .await
        .expect_err("no password");
    assert!(matches!(error.code, ErrorCode::InvalidConfig), "{error:?}");
    assert!(error.message.contains("\"not-there\""), "{}", error.message);
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
}

/// `test-connection` through the component: one verdict per situation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_answers_one_verdict_per_situation() {
    use as2_harness::runtime::api::Verdict;
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, seen) = gate(pair.url.clone()).await;
    store_basic_passwords(&pair);
    let test = |config: String| {
        let acme = pair.acme.clone();
        async move {
            tokio::task::spawn_blocking(move || acme.test_connection(&config))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let now = std::time::SystemTime::now();
    let expired = as2_connector::crypto::rustcrypto::generate_station_key(
        "OLD GLOBEX",
        now - std::time::Duration::from_secs(10 * 86400),
        std::time::Duration::from_secs(86400),
    )
    .unwrap()
    .certificate_pem;
    let mut expired_config: serde_json::Value =
        serde_json::from_str(&config(&pair, &url, basic("globex-password"))).unwrap();
    expired_config["partner"]["certificate"] = expired.into();

    let cases = [
        ("ok", config(&pair, &url, basic("globex-password")), "OK"),
        (
            "wrong password",
            config(&pair, &url, basic("wrong-password")),
            "AUTH_FAILED",
        ),
        (
            "no credentials",
            config(&pair, &url, serde_json::Value::Null),
            "AUTH_FAILED",
        ),
        (
            "nobody listening",
            config(&pair, "http://127.0.0.1:9/as2", serde_json::Value::Null),
            "UNREACHABLE",
        ),
        (
            "expired partner certificate",
            expired_config.to_string(),
            "CERT_HAS_EXPIRED",
        ),
        (
            "TLS to a server that speaks plain HTTP",
            config(
                &pair,
                &url.replace("http://", "https://"),
                serde_json::Value::Null,
            ),
            "TLS_ERROR",
        ),
        (
            "invalid configuration",
            config(&pair, "ftp://x", serde_json::Value::Null),
            "INVALID_CONFIG",
        ),
    ];
    for (name, config, expected) in cases {
        let result = test(config).await;
        let verdict = match result.verdict {
            Verdict::Ok => "OK",
            Verdict::InvalidConfig => "INVALID_CONFIG",
            Verdict::CertHasExpired => "CERT_HAS_EXPIRED",
            Verdict::AuthFailed => "AUTH_FAILED",
            Verdict::Unreachable => "UNREACHABLE",
            Verdict::TlsError => "TLS_ERROR",
        };
        assert_eq!(
            verdict, expected,
            "{name}: {} {:?}",
            result.summary, result.checks
        );
        assert!(!result.summary.contains("s3cret") && !result.summary.contains("guess-wrong-71c4"));
    }
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|seen| !seen.starts_with("refresh")),
        "test-connection sends no document and refreshes nothing"
    );

    // A partner certificate that expires in 20 days: OK, with a dated
    // warning beside the verdict, within the default 30 days; none when the
    // connection's warning period is shorter.
    let soon = as2_connector::crypto::rustcrypto::generate_station_key(
        "GLOBEX SOON",
        now - std::time::Duration::from_secs(86400),
        std::time::Duration::from_secs(21 * 86400),
    )
    .unwrap()
    .certificate_pem;
    let mut soon_config: serde_json::Value =
        serde_json::from_str(&config(&pair, &url, basic("globex-password"))).unwrap();
    soon_config["partner"]["certificate"] = soon.into();
    let result = test(soon_config.to_string()).await;
    assert!(matches!(result.verdict, Verdict::Ok), "{}", result.summary);
    assert_eq!(result.warnings.len(), 1, "{:?}", result.warnings);
    let warning = &result.warnings[0];
    assert_eq!(warning.field, "/partner/certificate");
    assert!(
        warning
            .message
            .contains("the partner certificate (CN=GLOBEX SOON) expires on"),
        "{}",
        warning.message
    );
    assert!(
        warning.message.contains(", in 19 days"),
        "{}",
        warning.message
    );
    assert!(
        result
            .summary
            .contains("; warning: the partner certificate"),
        "{}",
        result.summary
    );
    soon_config["advanced"] = serde_json::json!({ "certificate_expiry_warning_days": 14 });
    let result = test(soon_config.to_string()).await;
    assert!(matches!(result.verdict, Verdict::Ok));
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
}

/// A throttle in front of GLOBEX: answers the first `refusals` requests with
/// 429 and `Retry-After: 1`, forwards the rest; records when each arrived.
async fn throttle(
    target: String,
    refusals: usize,
) -> (String, Arc<Mutex<Vec<std::time::Instant>>>) {
    let arrivals: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let log = arrivals.clone();
    let url = loopback_server(move |request| {
        let (target, log) = (target.clone(), log.clone());
        async move {
            let count = {
                let mut log = log.lock().unwrap();
                log.push(std::time::Instant::now());
                log.len()
            };
            if count <= refusals {
                let headers = vec![("retry-after".to_string(), "1".to_string())];
                return Some((429, headers, b"slow down".to_vec()));
            }
            Some(post(&target, &request.headers, request.body).await)
        }
    })
    .await;
    (format!("{url}/as2"), arrivals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_fast_answers_are_waited_out_per_retry_after_and_each_retry_is_in_the_result() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, arrivals) = throttle(pair.url.clone(), 2).await;
    let outcome = pair
        .send_with(
            &config(&pair, &url, serde_json::Value::Null),
            purchase_order(),
        )
        .await;
    assert!(matches!(outcome.state, MessageState::Acknowledged));
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.events.len(), 2, "{:?}", outcome.events);
    for event in &outcome.events {
        assert!(
            event.contains("HTTP 429 (too fast); waited 1000 ms"),
            "{event}"
        );
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 3);
    // Retry-After: 1 is honoured (a little less for timer granularity).
    assert_spaced(&arrivals, std::time::Duration::from_millis(950));
    assert_eq!(stored(&pair), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_recovery_a_too_fast_answer_fails_with_rate_limited() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, arrivals) = throttle(pair.url.clone(), 1).await;
    let config = with_field(
        &config(&pair, &url, serde_json::Value::Null),
        "advanced",
        serde_json::json!({ "auto_recover_rate_limits": false }),
    );
    let error = pair
        .try_send_with(&config, purchase_order())
        .await
        .expect_err("refused as too fast");
    assert!(matches!(error.code, ErrorCode::RateLimited), "{error:?}");
    assert_eq!(arrivals.lock().unwrap().len(), 1, "not retried");
    assert_eq!(stored(&pair), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_spaces_the_sends() {
    let pair = Pair::start(runtime(), runtime()).await;
    let (url, arrivals) = throttle(pair.url.clone(), 0).await;
    let config = with_field(
        &config(&pair, &url, serde_json::Value::Null),
        "rate_limit",
        serde_json::json!({ "limit": 2, "interval_seconds": 1 }),
    );
    let documents: Vec<Document> = (0..3)
        .map(|n| Document {
            file_name: Some(format!("po-{n}.x12")),
            ..purchase_order()
        })
        .collect();
    let acme = pair.acme.clone();
    let outcomes = tokio::task::spawn_blocking(move || acme.import(&config, &documents))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(outcomes.iter().all(|o| o.is_ok()));
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 3);
    // Two per second: at least 500 ms apart (a little less for timer granularity).
    assert_spaced(&arrivals, std::time::Duration::from_millis(450));
    assert_eq!(stored(&pair), 3);
}

/// Drummond's "BA" profile: GLOBEX's endpoint asks partners for HTTP Basic
/// credentials (`station.basic_auth`); missing or wrong ones get 401 with a
/// challenge before the message is read, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_with_basic_auth_refuses_missing_or_wrong_credentials_with_401() {
    let pair = Pair::start(runtime(), runtime()).await;
    pair.globex
        .station
        .secrets
        .set("acme-inbound", &as2_tests::secret("s3cret pass"))
        .unwrap();
    let mut receiving: serde_json::Value = serde_json::from_str(&pair.globex_config).unwrap();
    receiving["station"]["basic_auth"] =
        serde_json::json!({ "username": "acme", "password": { "secret": "acme-inbound" } });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/as2", listener.local_addr().unwrap());
    let endpoint = Arc::new(as2_harness::server::Endpoint::new(
        pair.globex.clone(),
        vec![as2_harness::server::Route::from_json(receiving.to_string()).unwrap()],
        16 << 20,
    ));
    let inbox = endpoint.inbox.dir.join("ACME");
    tokio::spawn(as2_harness::server::serve(
        listener,
        endpoint,
        std::future::pending(),
    ));
    let count = || std::fs::read_dir(&inbox).map_or(0, |d| d.count());

    store_basic_passwords(&pair);

    // No credentials at all: 401 with the challenge, before anything is parsed.
    let (checked, outbound) = pair.build_natively(
        &config(&pair, &url, serde_json::Value::Null),
        &as2_connector::message::Document {
            file_name: Some("po.x12".into()),
            content_type: "application/edi-x12".into(),
            content: SAMPLE_X12_850.as_bytes().to_vec(),
        },
    );
    let _ = checked;
    let headers: Vec<(String, String)> = outbound
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let (status, response_headers, body) = post(&url, &headers, outbound.body.clone()).await;
    assert_eq!(status, 401);
    let challenge = response_headers
        .iter()
        .find(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str());
    assert_eq!(challenge, Some("Basic realm=\"AS2\", charset=\"UTF-8\""));
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("AUTH_FAILED:"), "{body}");
    assert!(body.contains("no Authorization header"), "{body}");
    assert!(!body.contains("s3cret"), "{body}");
    assert_eq!(count(), 0);

    let refused = pair
        .try_send_with(
            &config(&pair, &url, basic("wrong-password")),
            purchase_order(),
        )
        .await
        .expect_err("wrong credentials are refused");
    assert!(matches!(refused.code, ErrorCode::AuthFailed), "{refused:?}");
    assert_eq!(count(), 0);

    let outcome = pair
        .send_with(
            &config(&pair, &url, basic("globex-password")),
            purchase_order(),
        )
        .await;
    assert_processed(&outcome);
    assert_eq!(count(), 1);
}
