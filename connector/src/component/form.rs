//! The connection form's operations: its schemas, `validate-config` (the
//! engine's checks plus the key store's) and `test-connection`.

use std::time::SystemTime;

use crate::config::Checked;
use crate::smime::Cert;

use super::bindings::exports::as2::connector::connector as api;
use super::connection::{authorize, checked, station_certificate};
use super::convert::wit_problem;
use super::host::HostKey;
use super::wit;

/// What is wrong with the key store entry `name` (at `field`): it does not
/// open, it is not the key of the configured certificate `expected` (PEM),
/// or its certificate has expired or expires soon.
fn key_problems(
    name: &str,
    field: &str,
    expected: Option<&str>,
    now: SystemTime,
    warn_within: std::time::Duration,
) -> Vec<api::Problem> {
    let problem = |code, message| {
        vec![api::Problem {
            severity: api::Severity::Error,
            code,
            field: field.into(),
            message,
        }]
    };
    let key = match HostKey::open(name) {
        Ok(key) => key,
        Err(e) => return problem(wit::ErrorCode::InvalidConfig, e.message),
    };
    let cert = match station_certificate(&key) {
        Ok(cert) => cert,
        Err(e) => {
            let message = format!("the key store's certificate for this key: {e}");
            return problem(wit::ErrorCode::KeystoreFailed, message);
        }
    };
    let configured = expected.and_then(|pem| Cert::from_pem(pem).ok());
    if let Some(configured) = configured
        && configured.public_key_der().ok() != cert.public_key_der().ok()
    {
        let message = format!(
            "the private key {name:?} does not match /station/certificate ({}): it belongs to {}",
            configured.subject(),
            cert.subject()
        );
        return problem(wit::ErrorCode::InvalidConfig, message);
    }
    crate::validate::certificate_problems(&cert, now, warn_within, "station", field)
        .iter()
        .map(wit_problem)
        .collect()
}

pub fn validate_config(config: &str) -> Vec<api::Problem> {
    let now = SystemTime::now();
    let report = crate::validate::validate(config, now);
    let mut problems: Vec<api::Problem> = report.problems.iter().map(wit_problem).collect();
    if let Some(connection) = &report.checked {
        let station = &connection.connection.station;
        let warn_within = connection.connection.advanced.expiry_warning();
        problems.extend(key_problems(
            &station.private_key,
            "/station/private_key",
            station.certificate.as_deref(),
            now,
            warn_within,
        ));
        if let Some(next) = &station.next_private_key {
            let field = "/station/next_private_key";
            problems.extend(key_problems(next, field, None, now, warn_within));
        }
    }
    problems
}

fn check(name: &str, passed: bool, detail: String) -> api::Check {
    api::Check {
        name: name.into(),
        passed,
        detail,
    }
}

fn conclude(
    verdict: api::Verdict,
    summary: String,
    checks: Vec<api::Check>,
) -> api::ConnectionTest {
    api::ConnectionTest {
        verdict,
        summary,
        checks,
        warnings: Vec::new(),
    }
}

/// The configuration's verdict, when it stops the test: an expired
/// certificate first, then the first error.
fn configuration_verdict(problems: &[api::Problem]) -> Option<(api::Verdict, String)> {
    let errors: Vec<&api::Problem> = problems
        .iter()
        .filter(|p| matches!(p.severity, api::Severity::Error))
        .collect();
    let expired = errors.iter().find(|p| {
        matches!(
            p.code,
            wit::ErrorCode::CertHasExpired | wit::ErrorCode::CertNotYetValid
        )
    });
    if let Some(expired) = expired {
        return Some((api::Verdict::CertHasExpired, expired.message.clone()));
    }
    errors.first().map(|first| {
        let summary = format!("{}: {}", first.field, first.message);
        (api::Verdict::InvalidConfig, summary)
    })
}

fn configuration_check(problems: &[api::Problem], passed: bool) -> api::Check {
    let detail = if problems.is_empty() {
        "valid; both certificates are current and the station key opens".into()
    } else {
        problems
            .iter()
            .map(|p| format!("{} {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    check("configuration", passed, detail)
}

/// [`run_test`], with the configuration's warnings (a certificate that
/// expires soon) beside the verdict, and in its summary when it passed.
pub fn test_connection(config: &str) -> api::ConnectionTest {
    let problems = validate_config(config);
    let warnings: Vec<api::Problem> = problems
        .iter()
        .filter(|p| matches!(p.severity, api::Severity::Warning))
        .cloned()
        .collect();
    let mut test = run_test(config, &problems);
    if matches!(test.verdict, api::Verdict::Ok) && !warnings.is_empty() {
        let said: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
        test.summary = format!("{}; warning: {}", test.summary, said.join("; "));
    }
    test.warnings = warnings;
    test
}

fn run_test(config: &str, problems: &[api::Problem]) -> api::ConnectionTest {
    let stop = configuration_verdict(problems);
    let mut checks = vec![configuration_check(problems, stop.is_none())];
    if let Some((verdict, summary)) = stop {
        return conclude(verdict, summary, checks);
    }
    let connection = match checked(config) {
        Ok(connection) => connection,
        Err(e) => return conclude(api::Verdict::InvalidConfig, e.message, checks),
    };
    let url = &connection.connection.partner.url;
    let authorized = match authorize(&connection, url) {
        Ok(authorized) => authorized,
        Err(e) => return conclude(api::Verdict::InvalidConfig, e.message, checks),
    };
    let response = super::http::send("GET", &authorized.url, &authorized.headers, &Vec::new(), 15);
    let response = match response {
        Ok(response) => response,
        Err(failure) => {
            let verdict = match failure.kind {
                super::http::FailureKind::Tls => api::Verdict::TlsError,
                _ => api::Verdict::Unreachable,
            };
            let detail = format!("{url}: {failure}");
            checks.push(check("partner endpoint reachable", false, detail.clone()));
            return conclude(verdict, detail, checks);
        }
    };
    let detail = format!("{url} answered HTTP {}", response.status);
    checks.push(check("partner endpoint reachable", true, detail));
    judge_credentials(&connection, &response, checks)
}

/// The partner's answer to the test request: refused credentials, or ready.
fn judge_credentials(
    connection: &Checked,
    response: &super::http::Response,
    mut checks: Vec<api::Check>,
) -> api::ConnectionTest {
    let auth = &connection.connection.auth;
    let url = &connection.connection.partner.url;
    let failure = auth.failure();
    let refused = crate::auth::is_refusal(failure, response.status, &response.body)
        || (failure.is_none() && matches!(response.status, 401 | 407));
    if refused {
        let detail = if failure.is_none() {
            format!(
                "{url} asks for credentials (HTTP {}); configure the authentication",
                response.status
            )
        } else {
            format!("{url} refused our credentials (HTTP {})", response.status)
        };
        checks.push(check(
            "partner accepts our credentials",
            false,
            detail.clone(),
        ));
        return conclude(api::Verdict::AuthFailed, detail, checks);
    }
    if !auth.is_none() {
        checks.push(check(
            "partner accepts our credentials",
            true,
            "no refusal".into(),
        ));
    }
    conclude(
        api::Verdict::Ok,
        format!("{url} is reachable and the configuration is ready to send"),
        checks,
    )
}
