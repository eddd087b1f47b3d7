//! Checking a connection configuration: every problem at once, each with the
//! JSON pointer (RFC 6901) of its field, so that a form can mark them all and
//! the user fixes the whole form in one round.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::{Checked, Connection, Encryption, MdnDelivery, MdnMode};
use crate::error::{Error, ErrorCode};
use crate::headers;
use crate::smime::Cert;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The connection cannot be used until this is fixed.
    Error,
    /// The connection works, but something needs attention soon.
    Warning,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The JSON pointer of the field concerned (`""` for the whole document).
    pub field: String,
    /// What is wrong, with its stable code (`CERT_HAS_EXPIRED`, `INVALID_CONFIG`, …).
    pub error: Error,
}

impl Problem {
    fn error(field: impl Into<String>, error: Error) -> Self {
        Problem {
            severity: Severity::Error,
            field: field.into(),
            error,
        }
    }

    fn config(field: &str, reason: impl Into<String>) -> Self {
        Problem::error(field, Error::config(field, reason))
    }

    fn warning(field: &str, reason: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            field: field.into(),
            error: Error::config(field, reason),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.error.code()
    }

    /// What is wrong and what to do, for people.
    pub fn message(&self) -> String {
        match &self.error {
            Error::InvalidConfig { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// What [`validate`] found: the checked configuration when nothing is an
/// error, and every problem.
#[derive(Debug, Clone)]
pub struct Report {
    /// The usable configuration; `None` when any problem is an error.
    pub checked: Option<Checked>,
    /// Errors and warnings, in the order of the form.
    pub problems: Vec<Problem>,
}

/// Checks everything that can be checked without the network or the key
/// store, at time `now`, and reports every problem.
pub fn validate(text: &str, now: SystemTime) -> Report {
    let mut problems = Vec::new();
    let mut value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            problems.push(Problem::config(
                "",
                format!("the configuration is not JSON: {e}"),
            ));
            return Report {
                checked: None,
                problems,
            };
        }
    };
    let schema = serde_json::to_value(schemars::schema_for!(Connection)).unwrap_or_default();
    remove_unknown_fields(&mut value, &schema, &schema, "", &mut problems);
    // Each missing required field is reported and stood in for, so the
    // rules of every field that is there are checked too: a form being
    // filled in sees all its problems at once, not the first one.
    let mut stand_ins = Vec::new();
    let connection = loop {
        let error = match Connection::from_value(&value) {
            Ok(connection) => break connection,
            Err(error) => error,
        };
        let at = error.field().unwrap_or_default().to_string();
        let missing = missing_field(&error.to_string()).map(|name| format!("{at}/{name}"));
        match missing {
            Some(field)
                if stand_ins.len() < 64
                    && !stand_ins.contains(&field)
                    && stand_in(&mut value, &schema, &field) =>
            {
                problems.push(Problem::config(
                    &field,
                    "fill in this field: it is required",
                ));
                stand_ins.push(field);
            }
            _ => {
                problems.push(Problem::error(at, error));
                return Report {
                    checked: None,
                    problems,
                };
            }
        }
    };
    let mut report = report(connection, &value, now, problems);
    // A stand-in's own problems are not the person's: the field is empty.
    report.problems.retain(|problem| {
        !stand_ins.contains(&problem.field) || problem.message().ends_with("it is required")
    });
    report
}

/// The field serde's "missing field `name`" error names.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.split("missing field `").nth(1)?;
    rest.split('`').next()
}

/// Puts a value of the schema's type at `pointer` of `value` (an empty
/// object, an empty string, the first choice, the minimum); whether the
/// schema knows the field.
fn stand_in(value: &mut Value, root: &Value, pointer: &str) -> bool {
    let mut node = root.clone();
    for name in pointer.split('/').skip(1) {
        match known_properties(&node, root).and_then(|properties| properties.get(name).cloned()) {
            Some(child) => node = child,
            None => return false,
        }
    }
    let node = resolve(&node, root);
    let first_choice = node
        .get("enum")
        .and_then(|e| e.get(0))
        .or_else(|| node.pointer("/oneOf/0/const"))
        .cloned();
    let placeholder = match (first_choice, node.get("type").and_then(Value::as_str)) {
        (Some(choice), _) => choice,
        (None, Some("string")) => Value::String(String::new()),
        (None, Some("integer" | "number")) => node.get("minimum").cloned().unwrap_or(1.into()),
        (None, Some("boolean")) => Value::Bool(false),
        (None, Some("array")) => Value::Array(Vec::new()),
        _ => Value::Object(serde_json::Map::new()),
    };
    let (parent, name) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    match value.pointer_mut(parent).and_then(Value::as_object_mut) {
        Some(object) => {
            object.insert(name.to_string(), placeholder);
            true
        }
        None => false,
    }
}

/// The field rules checked on a parsed `connection` (and its JSON `value`),
/// added to the `problems` found so far, in the order of the form.
pub(crate) fn report(
    connection: Connection,
    value: &Value,
    now: SystemTime,
    mut problems: Vec<Problem>,
) -> Report {
    let partner_cert = check_fields(&connection, value, now, &mut problems);
    problems.sort_by_key(|problem| form_position(&problem.field));
    let has_errors = problems.iter().any(|p| p.severity == Severity::Error);
    Report {
        checked: match (has_errors, partner_cert) {
            (false, Some(partner_cert)) => Some(Checked {
                connection,
                partner_cert,
            }),
            _ => None,
        },
        problems,
    }
}

/// Where a field's group comes on the form: whole document, name, your
/// station, the partner, anything else.
fn form_position(field: &str) -> u8 {
    let group = field.split('/').nth(1).unwrap_or_default();
    match group {
        "" => 0,
        "name" => 1,
        "station" => 2,
        "partner" => 3,
        "auth" => 4,
        _ => 5,
    }
}

impl Connection {
    /// Parses and checks everything that can be checked without the network
    /// or the key store: identifiers, URLs, the partner certificate and its
    /// validity at `now`. Fails with the first error (the same rules as
    /// [`validate`]); warnings do not fail.
    pub fn check(text: &str, now: SystemTime) -> Result<Checked, Error> {
        // Every call parses its configuration: serde rejects unknown fields
        // here, so the schema walk that lists all of them is left to
        // `validate` (the form's check), off the per-message path.
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config("", format!("the configuration is not JSON: {e}")))?;
        let connection = Connection::from_value(&value)?;
        let report = report(connection, &value, now, Vec::new());
        match report.checked {
            Some(checked) => Ok(checked),
            None => Err(report
                .problems
                .into_iter()
                .find(|problem| problem.severity == Severity::Error)
                .map(|problem| problem.error)
                .unwrap_or_else(|| Error::config("", "the configuration is not valid"))),
        }
    }
}

/// The schema `node` stands for, following local `$ref`s.
fn resolve<'a>(node: &'a Value, root: &'a Value) -> &'a Value {
    match node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix('#'))
        .and_then(|path| root.pointer(path))
    {
        Some(target) => resolve(target, root),
        None => node,
    }
}

/// The properties an object at `node` may have: its own, and those of every
/// choice of an `anyOf` / `oneOf` / `allOf` (an `Option<T>`, or a tagged
/// enum's variants, whose own checks then tell the variant's fields apart).
pub(crate) fn known_properties(
    node: &Value,
    root: &Value,
) -> Option<serde_json::Map<String, Value>> {
    let node = resolve(node, root);
    let mut known = node.get("properties").and_then(Value::as_object).cloned();
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for choice in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(properties) = known_properties(choice, root) {
                known
                    .get_or_insert_with(serde_json::Map::new)
                    .extend(properties);
            }
        }
    }
    known
}

/// Reports (and removes) every field the schema does not know, at any depth.
fn remove_unknown_fields(
    value: &mut Value,
    node: &Value,
    root: &Value,
    at: &str,
    problems: &mut Vec<Problem>,
) {
    let (Some(object), Some(properties)) = (value.as_object_mut(), known_properties(node, root))
    else {
        return;
    };
    let unknown: Vec<String> = object
        .keys()
        .filter(|key| !properties.contains_key(*key))
        .cloned()
        .collect();
    for key in unknown {
        object.remove(&key);
        let known: Vec<&str> = properties.keys().map(String::as_str).collect();
        problems.push(Problem::config(
            &format!("{at}/{key}"),
            format!(
                "unknown field {key:?}; remove it (fields here: {})",
                known.join(", ")
            ),
        ));
    }
    for (key, child) in object.iter_mut() {
        if let Some(child_schema) = properties.get(key) {
            remove_unknown_fields(child, child_schema, root, &format!("{at}/{key}"), problems);
        }
    }
}

/// The field rules beyond the types; returns the partner certificate when it parses.
fn check_fields(
    connection: &Connection,
    value: &Value,
    now: SystemTime,
    problems: &mut Vec<Problem>,
) -> Option<Cert> {
    let (station, partner) = (&connection.station, &connection.partner);
    let warn_within = connection.advanced.expiry_warning();
    if connection.name.trim().is_empty() {
        problems.push(Problem::config("/name", "give the connection a name"));
    }
    if let Err(reason) = headers::check_as2_id(&station.as2_id) {
        problems.push(Problem::config("/station/as2_id", reason));
    }
    if let Some(url) = &station.url
        && let Err(reason) = check_url(url)
    {
        problems.push(Problem::config("/station/url", reason));
    }
    if station.private_key_pem.is_some() {
        problems.push(Problem::config(
            "/station/private_key_pem",
            "the private key was pasted into the configuration: save the connection (`as2-harness connections save`) so it moves into the key store",
        ));
    } else if station.private_key.trim().is_empty() {
        problems.push(Problem::config(
            "/station/private_key",
            "name the key store entry that holds your private key, or paste the key on the form",
        ));
    }
    if !station.require_mdn {
        problems.push(Problem::config(
            "/station/require_mdn",
            "MDNs are always required: a message without one proves nothing",
        ));
    }
    if let Some(url) = &partner.async_mdn_url
        && let Err(reason) = check_url(url)
    {
        problems.push(Problem::config("/partner/async_mdn_url", reason));
    }
    if partner.requires_async_mdn && partner.async_mdn_url.is_none() {
        problems.push(Problem::config(
            "/partner/async_mdn_url",
            "the partner requires asynchronous MDNs: give the URL they go to",
        ));
    }
    if let Err(reason) = headers::check_as2_id(&partner.as2_id) {
        problems.push(Problem::config("/partner/as2_id", reason));
    }
    if let Err(reason) = check_url(&partner.url) {
        problems.push(Problem::config("/partner/url", reason));
    }
    if !(1..=10).contains(&partner.send_attempts) {
        problems.push(Problem::config(
            "/partner/send_attempts",
            "give a number of send attempts from 1 to 10",
        ));
    }
    if partner
        .mdn_timeout_seconds
        .is_some_and(|seconds| !(1..=86400).contains(&seconds))
    {
        problems.push(Problem::config(
            "/partner/mdn_timeout_seconds",
            "give the MDN timeout in seconds, from 1 to 86400 (one day)",
        ));
    }
    if partner.mdn_delivery == MdnDelivery::Async
        && partner.mdn != MdnMode::None
        && station.url.is_none()
    {
        problems.push(Problem::config(
            "/station/url",
            "asynchronous MDNs are POSTed to your station URL: fill it in, or ask for synchronous MDNs",
        ));
    }
    let signature_encoding_given = value
        .pointer("/partner/signature_encoding")
        .is_some_and(|v| !v.is_null());
    if signature_encoding_given && partner.encryption != Encryption::None {
        problems.push(Problem::warning(
            "/partner/signature_encoding",
            "the signature encoding applies only to unencrypted messages; with encryption on it is not used",
        ));
    }
    for (field, secret) in secret_fields(connection) {
        if let Err(error) = secret.name(field) {
            problems.push(Problem::error(field, error));
        }
    }
    if station
        .basic_auth
        .as_ref()
        .is_some_and(|basic| basic.username.trim().is_empty() || basic.username.contains(':'))
    {
        problems.push(Problem::config(
            "/station/basic_auth/username",
            "give the user name partners send; it cannot be empty or hold a colon (RFC 7617)",
        ));
    }
    if let crate::config::Auth::Token(token) = &connection.auth
        && token.location == crate::config::TokenLocation::Body
    {
        problems.push(Problem::config(
            "/auth/location",
            "an AS2 message body is the signed and encrypted S/MIME entity and cannot carry a token; use header or url",
        ));
    }
    if connection.configure_rate_limits == Some(true) && connection.rate_limit.is_none() {
        problems.push(Problem::config(
            "/rate_limit/limit",
            "give the most calls per interval, or uncheck \"Configure API rate limits\"",
        ));
    }
    if let crate::config::Auth::Token(token) = &connection.auth
        && token.configure_refresh == Some(true)
        && token.refresh.is_none()
    {
        problems.push(Problem::config(
            "/auth/refresh/relative_uri",
            "give the path of the refresh endpoint, or uncheck \"Configure token refresh\"",
        ));
    }
    if let Some(pem) = &station.certificate {
        match Cert::from_pem(pem) {
            Ok(cert) => problems.extend(certificate_problems(
                &cert,
                now,
                warn_within,
                "station",
                "/station/certificate",
            )),
            Err(e) => problems.push(Problem::config(
                "/station/certificate",
                format!("{e}; paste your certificate in PEM form (-----BEGIN CERTIFICATE----- …)"),
            )),
        }
    }
    if let Some(name) = &station.tls_client_key
        && name.trim().is_empty()
    {
        problems.push(Problem::config(
            "/station/tls_client_key",
            "name the key store entry whose certificate you present to the partner over TLS, or leave the field out",
        ));
    }
    if let Some(pem) = &partner.tls_ca_certificates {
        // Not tied to `url` being https: asynchronous MDNs to the partner
        // may go to an https URL too, reached with the same CAs.
        if let Err(e) = Cert::all_from_pem(pem) {
            problems.push(Problem::config(
                "/partner/tls_ca_certificates",
                format!("{e}; paste the CA certificates that issued the partner's TLS server certificate, in PEM form (-----BEGIN CERTIFICATE----- …)"),
            ));
        }
    }
    match Cert::from_pem(&partner.certificate) {
        Ok(cert) => {
            problems.extend(certificate_problems(
                &cert,
                now,
                warn_within,
                "partner",
                "/partner/certificate",
            ));
            Some(cert)
        }
        Err(e) => {
            problems.push(Problem::config(
                "/partner/certificate",
                format!("{e}; paste the partner's certificate in PEM form (-----BEGIN CERTIFICATE----- …)"),
            ));
            None
        }
    }
}

/// The secrets of an authentication setting, with their JSON pointers.
pub fn secret_fields(
    connection: &crate::config::Connection,
) -> Vec<(&'static str, &crate::config::SecretRef)> {
    let mut fields = outbound_secret_fields(&connection.auth);
    if let Some(basic) = &connection.station.basic_auth {
        fields.push(("/station/basic_auth/password", &basic.password));
    }
    fields
}

/// The secrets of the partner authentication `auth`, with their pointers.
fn outbound_secret_fields(
    auth: &crate::config::Auth,
) -> Vec<(&'static str, &crate::config::SecretRef)> {
    match auth {
        crate::config::Auth::None => Vec::new(),
        crate::config::Auth::Basic(basic) => vec![("/auth/password", &basic.password)],
        crate::config::Auth::Token(token) => {
            let mut fields = vec![("/auth/token", &token.token)];
            if let Some(refresh) = token
                .refresh
                .as_ref()
                .and_then(|r| r.refresh_token.as_ref())
            {
                fields.push(("/auth/refresh/refresh_token", refresh));
            }
            fields
        }
    }
}

/// An expired or not yet valid certificate is an error; one that expires
/// within `warn_within` a warning (none when it is zero). `role` says whose
/// it is, `field` where.
pub fn certificate_problems(
    cert: &Cert,
    now: SystemTime,
    warn_within: Duration,
    role: &str,
    field: &str,
) -> Vec<Problem> {
    if let Err(error) = cert.check_validity(now, role) {
        return vec![Problem::error(field, error)];
    }
    let (_, not_after) = cert.validity();
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let left = not_after.saturating_sub(now);
    if left < warn_within {
        return vec![Problem::warning(
            field,
            format!(
                "the {role} certificate ({}) expires on {}, in {} days; arrange its renewal now",
                cert.subject(),
                cert.not_after_text(),
                left.as_secs() / 86400
            ),
        )];
    }
    Vec::new()
}

/// An http:// or https:// URL with a host and no spaces.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains spaces or control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("https://as2.example.com/receive").is_ok());
        assert!(check_url("http://127.0.0.1:4080").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("http:///path").is_err());
    }

    fn config_with(station: Value, partner: Value) -> String {
        let cert = crate::crypto::rustcrypto::generate_station_key(
            "GLOBEX",
            SystemTime::now() - Duration::from_secs(3600),
            Duration::from_secs(365 * 86400),
        )
        .unwrap()
        .certificate_pem;
        let mut config = serde_json::json!({
            "name": "n",
            "station": { "as2_id": "ACME", "private_key": "acme" },
            "partner": { "as2_id": "GLOBEX", "url": "https://globex.example/as2", "certificate": cert }
        });
        for (key, value) in station.as_object().unwrap() {
            config["station"][key] = value.clone();
        }
        for (key, value) in partner.as_object().unwrap() {
            config["partner"][key] = value.clone();
        }
        config.to_string()
    }

    #[test]
    fn a_form_half_filled_in_gets_every_problem_at_once() {
        let report = validate(
            r#"{"name":"x","station":{"as2_id":"ACMÉ"},"partner":{"url":"ftp://x"}}"#,
            SystemTime::now(),
        );
        let fields: Vec<&str> = report.problems.iter().map(|p| p.field.as_str()).collect();
        for field in [
            "/station/as2_id",
            "/partner/as2_id",
            "/partner/url",
            "/partner/certificate",
        ] {
            assert!(fields.contains(&field), "{field} in {:#?}", report.problems);
        }
        let required = |field: &str| {
            report
                .problems
                .iter()
                .filter(|p| p.field == field)
                .map(|p| p.message())
                .collect::<Vec<_>>()
        };
        // One problem for an empty field: that it is required.
        assert_eq!(
            required("/partner/certificate"),
            ["fill in this field: it is required"]
        );
        assert!(report.checked.is_none());
    }

    #[test]
    fn an_unchecked_configure_box_turns_its_section_off_and_a_checked_one_needs_it() {
        let with = |extra: Value| {
            let mut config: Value =
                serde_json::from_str(&config_with(serde_json::json!({}), serde_json::json!({})))
                    .unwrap();
            for (key, value) in extra.as_object().unwrap() {
                config[key] = value.clone();
            }
            config.to_string()
        };
        let rate_limit = serde_json::json!({ "limit": 5 });
        let off =
            with(serde_json::json!({ "configure_rate_limits": false, "rate_limit": rate_limit }));
        assert_eq!(Connection::from_json(&off).unwrap().rate_limit, None);
        let implied = with(serde_json::json!({ "rate_limit": rate_limit }));
        assert_eq!(
            Connection::from_json(&implied)
                .unwrap()
                .rate_limit
                .unwrap()
                .limit,
            5
        );
        let missing = validate(
            &with(serde_json::json!({ "configure_rate_limits": true })),
            SystemTime::now(),
        );
        assert!(
            missing
                .problems
                .iter()
                .any(|p| p.field == "/rate_limit/limit"),
            "{:?}",
            missing.problems
        );
        let token = |configure: bool| {
            serde_json::json!({ "auth": {
                "type": "token", "token": { "secret": "t" }, "configure_refresh": configure,
                "refresh": { "relative_uri": "/oauth/token" }
            }})
        };
        let refresh_of = |text: String| match Connection::from_json(&text).unwrap().auth {
            crate::config::Auth::Token(token) => token.refresh,
            other => panic!("{other:?}"),
        };
        assert_eq!(refresh_of(with(token(false))), None);
        assert!(refresh_of(with(token(true))).is_some());
    }

    #[test]
    fn tls_ca_certificates_without_a_certificate_are_refused_at_their_field() {
        let text = config_with(
            serde_json::json!({}),
            serde_json::json!({ "tls_ca_certificates": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" }),
        );
        let report = validate(&text, SystemTime::now());
        let problem = report
            .problems
            .iter()
            .find(|p| p.field == "/partner/tls_ca_certificates")
            .expect("a problem at the field");
        assert_eq!(problem.severity, Severity::Error);
        assert!(
            problem.message().contains("no certificate"),
            "{}",
            problem.message()
        );
        assert!(report.checked.is_none());
    }

    #[test]
    fn a_tls_ca_bundle_with_comments_between_certificates_is_accepted() {
        let ca = crate::crypto::rustcrypto::generate_station_key(
            "CA",
            SystemTime::now() - Duration::from_secs(3600),
            Duration::from_secs(365 * 86400),
        )
        .unwrap()
        .certificate_pem;
        let bundle = format!("subject=CN=CA\n{ca}\n# second\n{ca}");
        assert_eq!(Cert::all_from_pem(&bundle).unwrap().len(), 2);
        let text = config_with(
            serde_json::json!({ "tls_client_key": "acme-tls" }),
            serde_json::json!({ "tls_ca_certificates": bundle }),
        );
        let report = validate(&text, SystemTime::now());
        assert!(report.checked.is_some(), "{:?}", report.problems);
    }
}

#[cfg(test)]
mod schema_file {
    /// The schema checked in under `schemas/` is the one the types generate.
    /// After changing the configuration types, refresh it with
    /// `UPDATE_SCHEMA=1 cargo test -p as2-connector schema_file`.
    #[test]
    fn checked_in_schema_matches_the_generated_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/connection.schema.json"
        );
        let generated = format!("{}\n", crate::config::schema_json());
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap();
        assert!(
            checked_in == generated,
            "schemas/connection.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p as2-connector schema_file`"
        );
    }

    use super::known_properties;
    use serde_json::Value;

    /// The schema node at a JSON Forms scope such as `#/properties/a/properties/b`.
    fn at_scope(root: &Value, scope: &str) -> Option<Value> {
        let path = scope.strip_prefix("#/properties/")?;
        let mut node = root.clone();
        for name in path.split("/properties/") {
            node = known_properties(&node, root)?.get(name)?.clone();
        }
        Some(node)
    }

    fn scopes(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(object) => {
                if let Some(Value::String(scope)) = object.get("scope") {
                    out.push(scope.clone());
                }
                object.values().for_each(|child| scopes(child, out));
            }
            Value::Array(items) => items.iter().for_each(|child| scopes(child, out)),
            _ => {}
        }
    }

    /// Every field a person fills in, as a scope: objects are opened, a
    /// secret is filled in through its `value`, lists are one field.
    fn form_fields(node: &Value, root: &Value, scope: &str, out: &mut Vec<String>) {
        let Some(properties) = known_properties(node, root) else {
            out.push(scope.to_string());
            return;
        };
        if properties.contains_key("secret") && properties.contains_key("value") {
            out.push(format!("{scope}/properties/value"));
            return;
        }
        for (name, child) in &properties {
            let child_scope = if scope.is_empty() {
                format!("#/properties/{name}")
            } else {
                format!("{scope}/properties/{name}")
            };
            form_fields(child, root, &child_scope, out);
        }
    }

    #[test]
    fn the_ui_schema_places_every_field_and_names_only_real_ones() {
        let schema: Value = serde_json::from_str(&crate::config::schema_json()).unwrap();
        let ui: Value = serde_json::from_str(crate::config::UI_SCHEMA).unwrap();
        let mut used = Vec::new();
        scopes(&ui, &mut used);
        for scope in &used {
            assert!(
                at_scope(&schema, scope).is_some(),
                "the UI schema names {scope}, which the schema does not have"
            );
        }
        let mut fields = Vec::new();
        form_fields(&schema, &schema, "", &mut fields);
        let missing: Vec<&String> = fields.iter().filter(|f| !used.contains(f)).collect();
        assert!(
            missing.is_empty(),
            "fields the form does not show: {missing:#?}"
        );
    }
}
