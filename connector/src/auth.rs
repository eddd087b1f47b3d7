//! HTTP authentication towards the partner: Basic (RFC 7617), tokens in a
//! header (RFC 6750) or a URL parameter, telling a refusal from other
//! failures, and the request that refreshes a token. No IO: secrets come in
//! through `reveal`, requests go out as values.

use base64::Engine as _;

use crate::config::{
    Auth, FailureRule, RefreshMediaType, RefreshMethod, TokenLocation, TokenRefresh,
};
use crate::error::Error;
use crate::headers::Headers;

/// Looks up a secret by name in the host's secret store.
pub type Reveal<'a> = dyn FnMut(&str) -> Result<String, Error> + 'a;

/// The URL and header fields of a request, with the credentials applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The URL, with the token parameter when it travels there.
    pub url: String,
    /// Header fields to add.
    pub headers: Headers,
}

/// Checks the credentials of a request to our endpoint against the
/// connection's `station.basic_auth` (RFC 7617): before anything of the
/// message is read. No configured credentials: every request passes.
pub fn check_inbound(
    basic: Option<&crate::config::InboundBasicAuth>,
    authorization: Option<&str>,
    reveal: &mut Reveal<'_>,
) -> Result<(), Error> {
    let Some(basic) = basic else {
        return Ok(());
    };
    let refused = |why: &str| {
        Error::AuthRefused(format!(
            "{why}; this endpoint asks for HTTP Basic credentials"
        ))
    };
    let given = authorization.ok_or_else(|| refused("no Authorization header"))?;
    let (scheme, encoded) = given
        .trim()
        .split_once(' ')
        .ok_or_else(|| refused("an Authorization header that is not Basic"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(refused("an Authorization header that is not Basic"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| refused("Basic credentials that are not base64"))?;
    let password = reveal(basic.password.name("/station/basic_auth/password")?)?;
    let expected = format!("{}:{password}", basic.username);
    if constant_time_eq(&decoded, expected.as_bytes()) {
        Ok(())
    } else {
        Err(refused("wrong user name or password"))
    }
}

/// Compares without an early exit, so timing does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        difference |= usize::from(byte ^ b.get(i).copied().unwrap_or(0));
    }
    difference == 0
}

/// Applies `auth` to a request for `url`. The caller adds `headers` to its own.
pub fn authorize(auth: &Auth, url: &str, reveal: &mut Reveal<'_>) -> Result<Authorized, Error> {
    let mut authorized = Authorized {
        url: url.to_string(),
        headers: Headers::new(),
    };
    match auth {
        Auth::None => {}
        Auth::Basic(basic) => {
            let password = reveal(basic.password.name("/auth/password")?)?;
            let pair = format!("{}:{password}", basic.username);
            authorized.headers.push(
                "Authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            );
        }
        Auth::Token(token) => {
            let value = reveal(token.token.name("/auth/token")?)?;
            match token.location {
                TokenLocation::Header => {
                    let field = if token.scheme.trim().is_empty() {
                        value
                    } else {
                        format!("{} {value}", token.scheme.trim())
                    };
                    authorized.headers.push(token.header_name.clone(), field);
                }
                TokenLocation::Url => {
                    authorized.url = with_query_parameter(url, &token.parameter_name, &value);
                }
                TokenLocation::Body => {
                    return Err(Error::config(
                        "/auth/location",
                        "an AS2 message body is the signed and encrypted S/MIME entity and cannot carry a token; use header or url",
                    ));
                }
            }
        }
    }
    Ok(authorized)
}

/// The status code that means refused credentials when none is configured.
pub const DEFAULT_AUTH_FAILURE_STATUS: u16 = 401;

/// Whether a response matches a refusal `rule`: its status code (or
/// `default_status`), or one of its values at its JSON pointer of a JSON body.
pub fn matches_failure(rule: &FailureRule, default_status: u16, status: u16, body: &[u8]) -> bool {
    if status == rule.status_code.unwrap_or(default_status) {
        return true;
    }
    let Some(path) = &rule.path else {
        return false;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    match json.pointer(path) {
        Some(serde_json::Value::String(found)) => rule.values.iter().any(|v| v == found),
        Some(other) => {
            let found = other.to_string();
            rule.values.contains(&found)
        }
        None => false,
    }
}

/// Whether a response says the credentials were refused, by the configured
/// rule; never when no authentication is configured.
pub fn is_refusal(failure: Option<&FailureRule>, status: u16, body: &[u8]) -> bool {
    failure.is_some_and(|rule| matches_failure(rule, DEFAULT_AUTH_FAILURE_STATUS, status, body))
}

/// An HTTP request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST`, `PUT` or `GET`.
    pub method: &'static str,
    /// The URL.
    pub url: String,
    /// Header fields.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

/// The request for a new token (RFC 6749 §6 shape): sent to `relative_uri`
/// on the partner URL's scheme and host.
pub fn refresh_request(
    refresh: &TokenRefresh,
    partner_url: &str,
    reveal: &mut Reveal<'_>,
) -> Result<Request, Error> {
    let origin = origin(partner_url)
        .ok_or_else(|| Error::config("/partner/url", "the partner URL has no host"))?;
    let path = if refresh.relative_uri.starts_with('/') {
        refresh.relative_uri.clone()
    } else {
        format!("/{}", refresh.relative_uri)
    };
    let mut url = format!("{origin}{path}");
    let refresh_token = refresh
        .refresh_token
        .as_ref()
        .map(|secret| reveal(secret.name("/auth/refresh/refresh_token")?))
        .transpose()?;
    let mut headers = Headers::new();
    for field in &refresh.headers {
        headers.push(field.name.clone(), field.value.clone());
    }
    let mut body = Vec::new();
    let method = match refresh.method {
        RefreshMethod::Post => "POST",
        RefreshMethod::Put => "PUT",
        RefreshMethod::Get => "GET",
    };
    if refresh.method == RefreshMethod::Get {
        if let Some(token) = &refresh_token {
            url = with_query_parameter(&url, "refresh_token", token);
        }
    } else {
        match refresh.media_type {
            RefreshMediaType::Json => {
                headers.push("Content-Type", "application/json");
                let mut object = serde_json::json!({ "grant_type": "refresh_token" });
                if let Some(token) = &refresh_token {
                    object["refresh_token"] = serde_json::Value::String(token.clone());
                }
                body = object.to_string().into_bytes();
            }
            RefreshMediaType::Form => {
                headers.push("Content-Type", "application/x-www-form-urlencoded");
                let mut form = String::from("grant_type=refresh_token");
                if let Some(token) = &refresh_token {
                    form.push_str("&refresh_token=");
                    form.push_str(&percent_encode(token));
                }
                body = form.into_bytes();
            }
        }
    }
    Ok(Request {
        method,
        url,
        headers,
        body,
    })
}

/// The new token in a refresh response: the string at `token_path`.
pub fn token_from_response(token_path: &str, status: u16, body: &[u8]) -> Result<String, Error> {
    if !(200..300).contains(&status) {
        return Err(Error::AuthRefused(format!(
            "the token refresh request was answered HTTP {status}"
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::AuthRefused(format!("the token refresh response is not JSON: {e}")))?;
    match json.pointer(token_path) {
        Some(serde_json::Value::String(token)) if !token.is_empty() => Ok(token.clone()),
        _ => Err(Error::AuthRefused(format!(
            "the token refresh response has no token at {token_path}"
        ))),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let host_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    (host_end > scheme_end).then(|| &url[..host_end])
}

fn with_query_parameter(url: &str, name: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}{}={}",
        percent_encode(name),
        percent_encode(value)
    )
}

/// RFC 3986 §2.1 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_basic_credentials_are_checked_exactly() {
        let basic = crate::config::InboundBasicAuth {
            username: "acme".into(),
            password: crate::config::SecretRef::named("in"),
        };
        let mut reveal = |name: &str| -> Result<String, Error> {
            assert_eq!(name, "in");
            Ok("s3cret".into())
        };
        let header = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        assert!(check_inbound(None, None, &mut reveal).is_ok());
        assert!(check_inbound(Some(&basic), Some(&header("acme:s3cret")), &mut reveal).is_ok());
        assert!(
            check_inbound(
                Some(&basic),
                Some(&format!("basic {}", &header("acme:s3cret")[6..])),
                &mut reveal
            )
            .is_ok()
        );
        for wrong in [
            None,
            Some(header("acme:s3cret!")),
            Some(header("acme:s3cre")),
            Some(header("ACME:s3cret")),
            Some("Bearer abc".to_string()),
            Some("Basic %%%".to_string()),
            Some("Basic".to_string()),
        ] {
            let refused = check_inbound(Some(&basic), wrong.as_deref(), &mut reveal).unwrap_err();
            assert!(matches!(refused, Error::AuthRefused(_)), "{wrong:?}");
            assert!(!refused.to_string().contains("s3cret"), "{refused}");
        }
    }
    use crate::config::{BasicAuth, SecretRef, TokenAuth};

    fn secret(name: &str) -> SecretRef {
        SecretRef::named(name)
    }

    fn token(location: TokenLocation) -> Auth {
        Auth::Token(TokenAuth {
            token: secret("t"),
            location,
            header_name: "Authorization".into(),
            scheme: "Bearer".into(),
            parameter_name: "access_token".into(),
            configure_refresh: None,
            refresh: None,
            fail: FailureRule::default(),
        })
    }

    fn reveal(name: &str) -> Result<String, Error> {
        Ok(match name {
            "p" => "pa:ss word".into(),
            "t" => "tok/en+1".into(),
            "r" => "refresh me".into(),
            other => return Err(Error::config("/auth", format!("no secret {other}"))),
        })
    }

    #[test]
    fn basic_credentials_follow_rfc_7617() {
        let auth = Auth::Basic(BasicAuth {
            username: "acme".into(),
            password: secret("p"),
            fail: FailureRule::default(),
        });
        let authorized = authorize(&auth, "https://x.example/as2", &mut reveal).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("acme:pa:ss word");
        assert_eq!(
            authorized.headers.get("Authorization"),
            Some(format!("Basic {expected}").as_str())
        );
        assert_eq!(authorized.url, "https://x.example/as2");
    }

    #[test]
    fn tokens_go_in_a_header_or_an_encoded_url_parameter_never_the_body() {
        let header =
            authorize(&token(TokenLocation::Header), "https://x/as2", &mut reveal).unwrap();
        assert_eq!(header.headers.get("authorization"), Some("Bearer tok/en+1"));
        let url = authorize(&token(TokenLocation::Url), "https://x/as2?a=1", &mut reveal).unwrap();
        assert_eq!(url.url, "https://x/as2?a=1&access_token=tok%2Fen%2B1");
        assert!(url.headers.iter().next().is_none());
        let body =
            authorize(&token(TokenLocation::Body), "https://x/as2", &mut reveal).unwrap_err();
        assert_eq!(body.field(), Some("/auth/location"));
    }

    #[test]
    fn refusals_are_told_by_status_or_by_a_value_at_a_json_pointer() {
        let failure = FailureRule {
            status_code: Some(403),
            path: Some("/error/code".into()),
            values: vec!["expired".into(), "invalid".into()],
        };
        assert!(is_refusal(Some(&failure), 403, b""));
        assert!(!is_refusal(Some(&failure), 401, b""));
        assert!(is_refusal(
            Some(&failure),
            200,
            br#"{"error":{"code":"expired"}}"#
        ));
        assert!(!is_refusal(
            Some(&failure),
            200,
            br#"{"error":{"code":"other"}}"#
        ));
        assert!(!is_refusal(Some(&failure), 200, b"not json"));
        assert!(!is_refusal(None, 401, b""));
    }

    #[test]
    fn refresh_requests_go_to_the_partners_host_and_the_token_is_read_at_its_pointer() {
        let refresh = TokenRefresh {
            refresh_token: Some(secret("r")),
            relative_uri: "oauth/token".into(),
            media_type: RefreshMediaType::Form,
            method: RefreshMethod::Post,
            token_path: "/data/token".into(),
            headers: vec![crate::config::HeaderField {
                name: "X-Client".into(),
                value: "acme".into(),
            }],
        };
        let request = refresh_request(
            &refresh,
            "https://as2.globex.example:8443/as2?x=1",
            &mut reveal,
        )
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "https://as2.globex.example:8443/oauth/token");
        assert_eq!(request.headers.get("X-Client"), Some("acme"));
        assert_eq!(
            request.body,
            b"grant_type=refresh_token&refresh_token=refresh%20me"
        );
        assert_eq!(
            token_from_response("/data/token", 200, br#"{"data":{"token":"new"}}"#).unwrap(),
            "new"
        );
        assert!(token_from_response("/data/token", 200, br#"{"data":{}}"#).is_err());
        assert!(token_from_response("/data/token", 500, b"").is_err());
    }
}
