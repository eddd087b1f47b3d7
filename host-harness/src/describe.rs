//! The component's answers as text for people and for JSON lines: error
//! codes, problems, message states, dispositions, verdicts. The CLI, the
//! server's logs and the demo print the same words, so they share this one
//! place rather than each spelling them.

use crate::inbox::Inbox;
use crate::runtime::bindings::as2::connector::types::{
    DispositionType, ModifierKind, SignatureVerdict,
};
use crate::runtime::{ConnectorError, Disposition, api};

/// The stable text code of an error, e.g. `CERT_HAS_EXPIRED`.
pub fn error_code(error: &ConnectorError) -> String {
    // The generated Debug text is `ErrorCode::CertHasExpired`: keep the variant.
    let debug = format!("{:?}", error.code);
    let variant = debug.rsplit("::").next().unwrap_or_default();
    let mut code = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            code.push('_');
        }
        code.push(c.to_ascii_uppercase());
    }
    code
}

/// `error` or `warning`.
pub fn severity_text(severity: api::Severity) -> &'static str {
    match severity {
        api::Severity::Error => "error",
        api::Severity::Warning => "warning",
    }
}

/// The stable text code of a problem, e.g. `CERT_HAS_EXPIRED`.
pub fn problem_code(problem: &api::Problem) -> String {
    error_code(&ConnectorError {
        code: problem.code,
        message: String::new(),
        field: None,
    })
}

/// `error INVALID_CONFIG at /partner/url: …`, for people.
pub fn describe_problem(problem: &api::Problem) -> String {
    let (severity, code) = (severity_text(problem.severity), problem_code(problem));
    let at = if problem.field.is_empty() {
        String::new()
    } else {
        format!(" at {}", problem.field)
    };
    format!("{severity} {code}{at}: {}", problem.message)
}

/// A problem as the console's API and `messages` write it.
pub fn problem_json(problem: &api::Problem) -> serde_json::Value {
    serde_json::json!({
        "severity": severity_text(problem.severity),
        "code": problem_code(problem),
        "field": problem.field,
        "message": problem.message,
    })
}

/// Whether any problem is an error (warnings leave the connection usable).
pub fn has_errors(problems: &[api::Problem]) -> bool {
    problems
        .iter()
        .any(|problem| matches!(problem.severity, api::Severity::Error))
}

/// `CODE: message (field …)`, for people.
pub fn describe(error: &ConnectorError) -> String {
    match &error.field {
        Some(field) => format!("{}: {} (field {field})", error_code(error), error.message),
        None => format!("{}: {}", error_code(error), error.message),
    }
}

/// `pending`, `acknowledged`, `failed` or `received`.
pub fn state_text(state: api::MessageState) -> &'static str {
    match state {
        api::MessageState::Pending => "pending",
        api::MessageState::Acknowledged => "acknowledged",
        api::MessageState::Failed => "failed",
        api::MessageState::Received => "received",
    }
}

/// `processed`, `processed/error: decryption-failed`, …
pub fn disposition_text(disposition: &Disposition) -> String {
    let mut text = match disposition.disposition_type {
        DispositionType::Processed => "processed".to_string(),
        DispositionType::Failed => "failed".to_string(),
    };
    if let Some(modifier) = &disposition.modifier {
        let kind = match modifier.kind {
            ModifierKind::Error => "error",
            ModifierKind::Warning => "warning",
            ModifierKind::Failure => "failure",
        };
        text.push_str(&format!("/{kind}: {}", modifier.description));
    }
    text
}

/// The stable text of a verdict, e.g. `AUTH_FAILED`.
pub fn verdict_text(verdict: api::Verdict) -> &'static str {
    match verdict {
        api::Verdict::Ok => "OK",
        api::Verdict::InvalidConfig => "INVALID_CONFIG",
        api::Verdict::CertHasExpired => "CERT_HAS_EXPIRED",
        api::Verdict::AuthFailed => "AUTH_FAILED",
        api::Verdict::Unreachable => "UNREACHABLE",
        api::Verdict::TlsError => "TLS_ERROR",
    }
}

/// An MDN's signature for people: `verified` or `not signed`.
pub fn signature_text(verdict: SignatureVerdict) -> &'static str {
    match verdict {
        SignatureVerdict::Verified => "verified",
        SignatureVerdict::Unsigned => "not signed",
    }
}

/// An MDN's signature in JSON: `verified` or `unsigned` (stable values).
pub fn signature_code(verdict: SignatureVerdict) -> &'static str {
    match verdict {
        SignatureVerdict::Verified => "verified",
        SignatureVerdict::Unsigned => "unsigned",
    }
}

/// A time in seconds since the Unix epoch as RFC 3339, in UTC
/// (`2026-12-07T05:24:55Z`) or with the system time zone's offset
/// (`2026-12-07T06:24:55+01:00`).
pub fn time_text(unix_seconds: u64, local: bool) -> String {
    let Ok(timestamp) = i64::try_from(unix_seconds)
        .map_err(|_| ())
        .and_then(|s| jiff::Timestamp::from_second(s).map_err(|_| ()))
    else {
        return format!("{unix_seconds} (seconds since the Unix epoch)");
    };
    if local {
        timestamp
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    } else {
        timestamp.to_string()
    }
}

/// `out` or `in`.
pub fn direction_text(direction: api::Direction) -> &'static str {
    match direction {
        api::Direction::Outbound => "out",
        api::Direction::Inbound => "in",
    }
}

/// A message's status as one JSON object (`messages`, the console).
pub fn message_json(status: &api::MessageStatus, inbox: &Inbox) -> serde_json::Value {
    let inbound = matches!(status.direction, api::Direction::Inbound);
    serde_json::json!({
        "message_id": status.message_id,
        "direction": direction_text(status.direction),
        "partner": status.partner,
        "file_name": status.file_name,
        "created": status.created,
        "state": state_text(status.state),
        "attempts": status.attempts,
        "mic": format!("{}, {}", status.mic.digest, status.mic.algorithm),
        "mdn": status.mdn.as_ref().map(|mdn| serde_json::json!({
            "disposition": disposition_text(&mdn.disposition),
            "signature": signature_code(mdn.signature),
            "received_mic": mdn.received_mic.as_ref().map(|mic| format!("{}, {}", mic.digest, mic.algorithm)),
            "warnings": mdn.warnings,
        })),
        "answered": status.answered.as_ref().map(disposition_text),
        "stored_at": inbound.then(|| inbox.stored_path(&status.partner, &status.message_id)).flatten().map(|p| p.display().to_string()),
        "async_mdn_delivery": inbound.then(|| inbox.mdn_delivery(&status.partner, &status.message_id)).flatten(),
        "reason": status.reason,
    })
}

/// One JSON line for a sent message's outcome (`send`, `resume`, the console).
pub fn sent_json(file: Option<&str>, outcome: &api::SendOutcome) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "message_id": outcome.message_id,
        "state": state_text(outcome.state),
        "attempts": outcome.attempts,
        "events": outcome.events,
        "mic": format!("{}, {}", outcome.mic.digest, outcome.mic.algorithm),
        "disposition": outcome.mdn.as_ref().map(|mdn| disposition_text(&mdn.disposition)),
        "mdn_signed": outcome.mdn.as_ref().map(|mdn| matches!(mdn.signature, SignatureVerdict::Verified)),
        "mic_matched": outcome.mic_matched,
        "warnings": outcome.mdn.as_ref().map(|mdn| mdn.warnings.clone()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ErrorCode;

    #[test]
    fn times_print_as_rfc_3339() {
        assert_eq!(time_text(1_796_589_659, false), "2026-12-06T20:40:59Z");
        assert_eq!(time_text(0, false), "1970-01-01T00:00:00Z");
        let local = time_text(1_796_589_659, true);
        assert_eq!(local.len(), "2026-12-06T20:40:59+00:00".len(), "{local}");
        assert_eq!(
            time_text(u64::MAX, false),
            "18446744073709551615 (seconds since the Unix epoch)"
        );
    }

    #[test]
    fn signature_verdicts_are_words() {
        assert_eq!(signature_text(SignatureVerdict::Verified), "verified");
        assert_eq!(signature_text(SignatureVerdict::Unsigned), "not signed");
        assert_eq!(signature_code(SignatureVerdict::Unsigned), "unsigned");
    }

    #[test]
    fn error_codes_print_in_their_stable_text_form() {
        let error = |code| ConnectorError {
            code,
            message: "m".into(),
            field: None,
        };
        assert_eq!(
            error_code(&error(ErrorCode::CertHasExpired)),
            "CERT_HAS_EXPIRED"
        );
        assert_eq!(error_code(&error(ErrorCode::NotFound)), "NOT_FOUND");
        assert_eq!(
            describe(&ConnectorError {
                field: Some("/partner/url".into()),
                ..error(ErrorCode::InvalidConfig)
            }),
            "INVALID_CONFIG: m (field /partner/url)"
        );
    }
}
