//! Connection validation: a table of bad configurations, each with every
//! problem it must report (severity, code, JSON pointer, message).

use std::time::{Duration, SystemTime};

use as2_connector::ErrorCode;
use as2_connector::crypto::rustcrypto::generate_station_key;
use as2_connector::validate::{Severity, validate};

const DAY: Duration = Duration::from_secs(86400);

fn certificate(cn: &str, not_before: SystemTime, validity: Duration) -> String {
    generate_station_key(cn, not_before, validity)
        .unwrap()
        .certificate_pem
}

/// A valid configuration with `edit` applied to its JSON value.
fn config(partner_cert: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value = serde_json::json!({
        "name": "ACME to GLOBEX",
        "station": { "as2_id": "ACME", "private_key": "acme", "url": "https://as2.acme.example/as2" },
        "partner": {
            "as2_id": "GLOBEX",
            "url": "https://as2.globex.example/receive",
            "certificate": partner_cert,
        }
    });
    edit(&mut value);
    value.to_string()
}

struct Expected {
    severity: Severity,
    code: ErrorCode,
    field: &'static str,
    message: &'static str,
}

fn error(code: ErrorCode, field: &'static str, message: &'static str) -> Expected {
    Expected {
        severity: Severity::Error,
        code,
        field,
        message,
    }
}

fn warning(field: &'static str, message: &'static str) -> Expected {
    Expected {
        severity: Severity::Warning,
        code: ErrorCode::InvalidConfig,
        field,
        message,
    }
}

#[test]
fn every_problem_is_reported_at_once_with_its_pointer_and_message() {
    let now = SystemTime::now();
    let good = certificate("GLOBEX", now - DAY, 365 * DAY);
    let expired = certificate("OLD GLOBEX", now - 10 * DAY, 5 * DAY);
    let expiring = certificate("GLOBEX SOON", now - DAY, 11 * DAY);
    let future = certificate("GLOBEX LATER", now + 5 * DAY, 365 * DAY);

    let cases: Vec<(&str, String, Vec<Expected>)> = vec![
        ("valid", config(&good, |_| {}), vec![]),
        (
            "not JSON",
            "{\"name\": ".to_string(),
            vec![error(ErrorCode::InvalidConfig, "", "is not JSON")],
        ),
        (
            "certificate text that is not PEM",
            config("MIIB-this-is-not-pem", |_| {}),
            vec![error(
                ErrorCode::InvalidConfig,
                "/partner/certificate",
                "paste the partner's certificate in PEM form",
            )],
        ),
        (
            "expired partner certificate",
            config(&expired, |_| {}),
            vec![error(
                ErrorCode::CertHasExpired,
                "/partner/certificate",
                "the partner certificate (CN=OLD GLOBEX) expired on",
            )],
        ),
        (
            "partner certificate not valid yet",
            config(&future, |_| {}),
            vec![error(
                ErrorCode::CertNotYetValid,
                "/partner/certificate",
                "is valid only from",
            )],
        ),
        (
            "partner certificate expiring within 30 days",
            config(&expiring, |_| {}),
            vec![warning(
                "/partner/certificate",
                "the partner certificate (CN=GLOBEX SOON) expires on",
            )],
        ),
        (
            "AS2 identifiers with illegal characters",
            config(&good, |v| {
                v["station"]["as2_id"] = "AC\tME".into();
                v["partner"]["as2_id"] = "GLO\u{e9}BEX".into();
            }),
            vec![
                error(
                    ErrorCode::InvalidConfig,
                    "/station/as2_id",
                    "printable ASCII",
                ),
                error(
                    ErrorCode::InvalidConfig,
                    "/partner/as2_id",
                    "printable ASCII",
                ),
            ],
        ),
        (
            "URLs that are not http(s)",
            config(&good, |v| {
                v["station"]["url"] = "ftp://as2.acme.example".into();
                v["partner"]["url"] = "as2.globex.example/receive".into();
            }),
            vec![
                error(
                    ErrorCode::InvalidConfig,
                    "/station/url",
                    "is not an http:// or https:// URL",
                ),
                error(
                    ErrorCode::InvalidConfig,
                    "/partner/url",
                    "is not an http:// or https:// URL",
                ),
            ],
        ),
        (
            "asynchronous MDN without the URL it is posted to",
            config(&good, |v| {
                v["station"].as_object_mut().unwrap().remove("url");
                v["partner"]["mdn_delivery"] = "async".into();
            }),
            vec![error(
                ErrorCode::InvalidConfig,
                "/station/url",
                "asynchronous MDNs are POSTed to your station URL",
            )],
        ),
        (
            "signature encoding set while encrypting",
            config(&good, |v| {
                v["partner"]["signature_encoding"] = "binary".into()
            }),
            vec![warning(
                "/partner/signature_encoding",
                "applies only to unencrypted messages",
            )],
        ),
        (
            "unknown fields at every level",
            config(&good, |v| {
                v["colour"] = "blue".into();
                v["station"]["passwrd"] = "x".into();
                v["partner"]["urll"] = "https://x".into();
            }),
            vec![
                error(
                    ErrorCode::InvalidConfig,
                    "/station/passwrd",
                    "unknown field",
                ),
                error(ErrorCode::InvalidConfig, "/partner/urll", "unknown field"),
                error(
                    ErrorCode::InvalidConfig,
                    "/colour",
                    "unknown field \"colour\"",
                ),
            ],
        ),
        (
            "many problems together",
            config(&expired, |v| {
                v["name"] = " ".into();
                v["partner"]["url"] = "mailto:as2@globex.example".into();
                v["partner"]["send_attempts"] = 0.into();
                v["partner"]["mdn_timeout_seconds"] = 0.into();
                v["extra"] = true.into();
            }),
            vec![
                error(
                    ErrorCode::InvalidConfig,
                    "/name",
                    "give the connection a name",
                ),
                error(ErrorCode::InvalidConfig, "/partner/url", "is not an http"),
                error(
                    ErrorCode::InvalidConfig,
                    "/partner/send_attempts",
                    "from 1 to 10",
                ),
                error(
                    ErrorCode::InvalidConfig,
                    "/partner/mdn_timeout_seconds",
                    "from 1 to 86400",
                ),
                error(
                    ErrorCode::CertHasExpired,
                    "/partner/certificate",
                    "expired on",
                ),
                error(ErrorCode::InvalidConfig, "/extra", "unknown field"),
            ],
        ),
        (
            "a token in the body of an AS2 message, and a misspelt auth field",
            config(&good, |v| {
                v["auth"] = serde_json::json!({
                    "type": "token", "token": { "secret": "t" }, "location": "body", "shceme": "Bearer"
                });
            }),
            vec![
                error(ErrorCode::InvalidConfig, "/auth/shceme", "unknown field"),
                error(
                    ErrorCode::InvalidConfig,
                    "/auth/location",
                    "cannot carry a token; use header or url",
                ),
            ],
        ),
        (
            "MDNs switched off, async MDNs without their URL, a station certificate that is not PEM",
            config(&good, |v| {
                v["station"]["require_mdn"] = false.into();
                v["station"]["certificate"] = "not a certificate".into();
                v["partner"]["requires_async_mdn"] = true.into();
            }),
            vec![
                error(
                    ErrorCode::InvalidConfig,
                    "/station/require_mdn",
                    "always required",
                ),
                error(
                    ErrorCode::InvalidConfig,
                    "/station/certificate",
                    "paste your certificate in PEM form",
                ),
                error(
                    ErrorCode::InvalidConfig,
                    "/partner/async_mdn_url",
                    "give the URL they go to",
                ),
            ],
        ),
        (
            "a password typed into the configuration instead of saved",
            config(&good, |v| {
                v["auth"] = serde_json::json!({
                    "type": "basic", "username": "acme", "password": { "value": "hunter2" }
                });
            }),
            vec![error(
                ErrorCode::InvalidConfig,
                "/auth/password",
                "save the connection (`as2-harness connections save`)",
            )],
        ),
        (
            "basic authentication with its secret reference",
            config(&good, |v| {
                v["auth"] = serde_json::json!({
                    "type": "basic", "username": "acme", "password": { "secret": "globex-password" },
                    "fail": { "status_code": 403, "path": "/error", "values": ["denied"] }
                });
            }),
            vec![],
        ),
        (
            "a field of the wrong type",
            config(&good, |v| v["partner"]["signing"] = "md5".into()),
            vec![error(
                ErrorCode::InvalidConfig,
                "/partner/signing",
                "unknown variant `md5`",
            )],
        ),
    ];

    for (name, json, expected) in cases {
        let report = validate(&json, now);
        let found: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{:?} {} {}: {}", p.severity, p.code(), p.field, p.message()))
            .collect();
        assert_eq!(
            report.problems.len(),
            expected.len(),
            "{name}: expected {} problems, found {found:#?}",
            expected.len()
        );
        for (problem, want) in report.problems.iter().zip(&expected) {
            assert_eq!(problem.severity, want.severity, "{name}: {found:#?}");
            assert_eq!(problem.code(), want.code, "{name}: {found:#?}");
            assert_eq!(problem.field, want.field, "{name}: {found:#?}");
            assert!(
                problem.message().contains(want.message),
                "{name}: {:?} does not say {:?}",
                problem.message(),
                want.message
            );
        }
        assert!(
            !found.iter().any(|text| text.contains("hunter2")),
            "{name}: a secret value in a message: {found:#?}"
        );
        let has_errors = expected.iter().any(|e| e.severity == Severity::Error);
        assert_eq!(report.checked.is_none(), has_errors, "{name}");
    }
}
