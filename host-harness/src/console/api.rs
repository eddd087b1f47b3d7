//! The console's HTTP API and its page. Every answer is JSON except the
//! page, its script and style, and a downloaded document; every error is
//! an [`ApiError`] with a stable code.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use as2_connector::config::Connection;

use super::store::{ConnectionStore, keep_stored_secrets, write_only_view};
use super::{ApiError, Console, json_response};
use crate::connector::{Content, SendDocument};
use crate::describe::{
    describe, disposition_text, error_code, message_json, problem_json, sent_json, signature_text,
    time_text, verdict_text,
};
use crate::endpoint_info::EndpointInfo;
use crate::runtime::{CallError, ConnectorError, api};

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// Largest JSON body (a connection form with its certificates).
const MAX_JSON: usize = 1 << 20;

/// Answers one request.
pub(super) async fn route(
    console: &Console,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (parts, body) = request.into_parts();
    check_host(console, &parts)?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        check_origin_and_token(console, &parts)?;
    }
    let path = parts.uri.path().to_string();
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = parts.uri.query().unwrap_or_default().to_string();
    match (&parts.method, segments.as_slice()) {
        (&Method::GET, [""]) => Ok(page(console)),
        (&Method::GET, ["console.js"]) => Ok(asset(SCRIPT, "text/javascript; charset=utf-8")),
        (&Method::GET, ["console.css"]) => Ok(asset(STYLE, "text/css; charset=utf-8")),
        (&Method::GET, ["favicon.ico"]) => Ok(asset("", "image/x-icon")),
        (&Method::GET, ["api", "schema"]) => schema(console).await,
        (&Method::GET, ["api", "connections"]) => {
            let summaries = console.store.summaries()?;
            Ok(json_response(StatusCode::OK, &json!(summaries)))
        }
        (&Method::POST, ["api", "connections"]) => {
            let form = read_form(console, &parts, body).await?;
            save(console, None, form).await
        }
        (&Method::POST, ["api", "validate"]) => {
            let form = read_form(console, &parts, body).await?;
            let id = form.get("id").and_then(Value::as_str).map(str::to_string);
            let config = form.get("config").cloned().unwrap_or(Value::Null);
            let stored = match &id {
                Some(id) => console.store.load(id)?,
                None => None,
            };
            let mut config = config;
            keep_stored_secrets(&mut config, stored.as_deref());
            let problems = problems(console, &config, id.as_deref()).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "problems": problems }),
            ))
        }
        (&Method::GET, ["api", "connections", id]) => {
            let saved = saved(console, id)?;
            let view = write_only_view(&saved)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "id": id, "config": view }),
            ))
        }
        (&Method::PUT, ["api", "connections", id]) => {
            saved(console, id)?;
            let form = read_form(console, &parts, body).await?;
            save(console, Some(id), form).await
        }
        (&Method::POST, ["api", "connections", id, "test"]) => test(console, id).await,
        (&Method::GET, ["api", "connections", id, "messages"]) => {
            messages(console, id, &query).await
        }
        (&Method::GET, ["api", "connections", id, "messages", message_id]) => {
            lookup(console, id, message_id).await
        }
        (&Method::GET, ["api", "connections", id, "messages", message_id, "document"]) => {
            document(console, id, message_id).await
        }
        (&Method::POST, ["api", "connections", id, "send"]) => {
            send(console, id, &query, &parts, body).await
        }
        (_, ["api", ..]) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no such console API: {} {path}", parts.method),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no page {path}"),
        )),
    }
}

/// Only requests addressed to the console's own host name: a web page
/// elsewhere that resolves its own name to 127.0.0.1 is refused.
fn check_host(console: &Console, parts: &Parts) -> Result<(), ApiError> {
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if console.answers_host(host) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "WRONG_HOST",
        format!(
            "the console answers only requests for {}",
            console.hosts.join(", ")
        ),
    ))
}

/// A request that changes anything comes from the console's own page: its
/// origin, and the token the page was served with.
fn check_origin_and_token(console: &Console, parts: &Parts) -> Result<(), ApiError> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
    };
    // The Host was checked to be the console's own: the page's origin is it.
    let origin = header("origin");
    let same_origin = origin.eq_ignore_ascii_case(&format!("http://{}", header("host")));
    if !same_origin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN_ORIGIN",
            format!(
                "a request that changes something must come from the console's own page (Origin {:?})",
                origin
            ),
        ));
    }
    let token = header("x-console-token");
    if !bool::from(token.as_bytes().ct_eq(console.token.as_bytes())) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "BAD_TOKEN",
            "the console token is missing or stale: reload the page",
        ));
    }
    Ok(())
}

fn page(console: &Console) -> Response<Full<Bytes>> {
    let html = PAGE.replace("{{TOKEN}}", &console.token);
    let mut response = asset_owned(html, "text/html; charset=utf-8");
    response.headers_mut().insert(
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'"
            .parse()
            .expect("a header value"),
    );
    response
}

fn asset(text: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    response.headers_mut().insert(
        "content-type",
        content_type.parse().expect("a header value"),
    );
    response
}

fn asset_owned(text: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        content_type.parse().expect("a header value"),
    );
    headers.insert("cache-control", "no-store".parse().expect("a header value"));
    headers.insert("x-frame-options", "DENY".parse().expect("a header value"));
    response
}

/// A body of at most `limit` bytes; a larger one is refused before it is read.
async fn read_body(parts: &Parts, body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!(
                "the request is larger than the console takes ({} MiB)",
                limit >> 20
            ),
        )
    };
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("reading the request: {e}"),
        )),
    }
}

/// A JSON object body.
async fn read_form(_console: &Console, parts: &Parts, body: Incoming) -> Result<Value, ApiError> {
    let bytes = read_body(parts, body, MAX_JSON).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_JSON",
            "the request is JSON but not an object",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_JSON",
            format!("the request is not JSON: {e}"),
        )),
    }
}

fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let bad = || ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", "a malformed URL");
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The query parameter `name`, decoded.
fn query_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return percent_decode(&value.replace('+', " ")).map(Some);
        }
    }
    Ok(None)
}

/// Runs a component call off the async threads.
async fn call<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from(anyhow::anyhow!("a console task stopped: {e}")))
}

fn component_failed(error: CallError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "COMPONENT_FAILED",
        error.to_string(),
    )
}

fn connector_error(error: &ConnectorError) -> ApiError {
    let mut api_error = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "CONNECTOR_ERROR",
        describe(error),
    );
    api_error.problems = Some(json!({ "code": error_code(error), "field": error.field }));
    api_error
}

/// The saved configuration `id`, or NOT_FOUND.
fn saved(console: &Console, id: &str) -> Result<String, ApiError> {
    console.store.load(id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no connection {id:?}"),
        )
    })
}

async fn schema(console: &Console) -> Result<Response<Full<Bytes>>, ApiError> {
    let connector = console.connector.clone();
    let (schema, ui) = call(move || {
        Ok::<_, CallError>((connector.config_schema()?, connector.config_ui_schema()?))
    })
    .await?
    .map_err(component_failed)?;
    let schema = match EndpointInfo::load(&console.connector.station.data_dir) {
        Some(info) => info.fill_schema(&schema),
        None => schema,
    };
    let schema: Value = serde_json::from_str(&schema).map_err(anyhow::Error::from)?;
    let ui: Value = serde_json::from_str(&ui).map_err(anyhow::Error::from)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "schema": schema, "uischema": ui }),
    ))
}

/// Every problem of the form `config` at once: the component's
/// `validate-config` over what it may see, and the host's own check of a
/// pasted private key (which never enters the component). `id` is the
/// connection being edited, `None` for a new one.
async fn problems(
    console: &Console,
    config: &Value,
    id: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let mut host_problems = Vec::new();
    let mut seen = config.clone();
    let pasted_key = config
        .pointer("/station/private_key_pem/value")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(key) = &pasted_key {
        match config
            .pointer("/station/certificate")
            .and_then(Value::as_str)
        {
            Some(certificate) if !certificate.trim().is_empty() => {
                if let Err(e) = crate::keystore::check_pair(key, certificate) {
                    host_problems.push(problem(
                        "error",
                        "INVALID_KEY",
                        "/station/private_key_pem/value",
                        &format!("{e:#}"),
                    ));
                }
            }
            _ => host_problems.push(problem(
                "error",
                "INVALID_CONFIG",
                "/station/certificate",
                "paste the certificate that goes with the private key",
            )),
        }
        if let Some(station) = seen.get_mut("station").and_then(Value::as_object_mut) {
            station.remove("private_key_pem");
            let named = station
                .get("private_key")
                .and_then(Value::as_str)
                .is_some_and(|name| !name.trim().is_empty());
            if !named {
                station.insert("private_key".into(), "pasted-key".into());
            }
        }
    }
    // Typed secrets stay here: the component sees a stand-in name.
    let locked = console.connector.station.secrets.is_locked();
    for pointer in typed_secrets(&seen) {
        if let Some(slot) = seen.pointer_mut(&pointer) {
            *slot = json!({ "secret": "typed-in" });
        }
        if locked {
            host_problems.push(problem(
                "error",
                "SECRETS_LOCKED",
                &format!("{pointer}/value"),
                "the secret store has no master key, so this cannot be kept: start the console with AS2_MASTER_KEY set (`as2-harness secrets new-master-key` makes one)",
            ));
        }
    }
    if let Some(name) = config.get("name").and_then(Value::as_str) {
        let new_id = ConnectionStore::id_for(name);
        if Some(new_id.as_str()) != id && console.store.exists(&new_id) {
            host_problems.push(problem(
                "error",
                "NAME_TAKEN",
                "/name",
                &format!("a connection named like this exists ({new_id}): choose another name, or open that one"),
            ));
        }
    }
    let connector = console.connector.clone();
    let text = seen.to_string();
    let found = call(move || connector.validate_config(&text))
        .await?
        .map_err(component_failed)?;
    let mut all: Vec<Value> = found
        .iter()
        .filter(|p| !(pasted_key.is_some() && p.field == "/station/private_key"))
        .map(problem_json)
        .collect();
    all.extend(host_problems);
    Ok(all)
}

/// The JSON pointers of the secrets typed into `form`, found by their
/// shape (a `SecretRef` holding a `value`), so a form that does not parse
/// yet is covered too.
fn typed_secrets(form: &Value) -> Vec<String> {
    fn walk(node: &Value, at: &str, out: &mut Vec<String>) {
        let Some(object) = node.as_object() else {
            return;
        };
        let secret_shaped = object.get("value").is_some_and(Value::is_string)
            && object.keys().all(|key| key == "value" || key == "secret");
        if secret_shaped {
            out.push(at.to_string());
            return;
        }
        for (key, child) in object {
            walk(child, &format!("{at}/{key}"), out);
        }
    }
    let mut out = Vec::new();
    walk(form, "", &mut out);
    out
}

fn problem(severity: &str, code: &str, field: &str, message: &str) -> Value {
    json!({ "severity": severity, "code": code, "field": field, "message": message })
}

/// Saves the form `{ "config": … }` as a new connection (`id` None) or
/// over `id`: every problem first (nothing is written while one is an
/// error), then secrets into the stores, then the file.
async fn save(
    console: &Console,
    id: Option<&str>,
    form: Value,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut config = form.get("config").cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_JSON",
            "the request has no \"config\" member",
        )
    })?;
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let new_id = ConnectionStore::id_for(&name);
    let stored = match id {
        Some(id) => console.store.load(id)?,
        None => None,
    };
    if Some(new_id.as_str()) != id && console.store.exists(&new_id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NAME_TAKEN",
            format!("a connection named {name:?} exists: choose another name, or open that one"),
        ));
    }
    keep_stored_secrets(&mut config, stored.as_deref());
    let problems = problems(console, &config, id).await?;
    if problems.iter().any(|p| p["severity"] == "error") {
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_CONFIG",
            "the connection has errors: nothing was saved",
        );
        error.problems = Some(json!(problems));
        return Err(error);
    }
    let station = &console.connector.station;
    let (saved, moved) =
        crate::connections::save(&config.to_string(), &station.secrets, &station.keys).map_err(
            |e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "NOT_SAVED",
                    format!("{e:#}"),
                )
            },
        )?;
    let saved = match EndpointInfo::load(&station.data_dir) {
        Some(info) => {
            let mut value: Value = serde_json::from_str(&saved).map_err(anyhow::Error::from)?;
            info.fill_config(&mut value);
            serde_json::to_string_pretty(&value).map_err(anyhow::Error::from)?
        }
        None => saved,
    };
    console.store.write(&new_id, &saved)?;
    if let Some(old) = id.filter(|old| *old != new_id) {
        std::fs::remove_file(console.store.path(old))
            .map_err(|e| anyhow::anyhow!("removing the connection's old file: {e}"))?;
    }
    console.reload_routes();
    tracing::info!(connection = %new_id, secrets = moved.len(), "console saved a connection");
    Ok(json_response(
        if id.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        &json!({ "id": new_id, "stored": moved, "problems": problems }),
    ))
}

async fn test(console: &Console, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let config = saved(console, id)?;
    let connector = console.connector.clone();
    let test = call(move || connector.test_connection(&config))
        .await?
        .map_err(component_failed)?;
    let checks: Vec<Value> = test
        .checks
        .iter()
        .map(|c| json!({ "name": c.name, "passed": c.passed, "detail": c.detail }))
        .collect();
    let warnings: Vec<Value> = test.warnings.iter().map(problem_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "verdict": verdict_text(test.verdict), "summary": test.summary, "checks": checks, "warnings": warnings }),
    ))
}

/// The messages of connection `id`, newest first; `direction=in|out`.
async fn messages(
    console: &Console,
    id: &str,
    query: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let config = saved(console, id)?;
    let direction = match query_param(query, "direction")?.as_deref() {
        Some("in") => Some(api::Direction::Inbound),
        Some("out") => Some(api::Direction::Outbound),
        None | Some("") => None,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("direction is in or out, not {other:?}"),
            ));
        }
    };
    let filter = api::MessageFilter {
        direction,
        state: None,
        since: None,
        until: None,
        limit: 200,
    };
    let connector = console.connector.clone();
    let statuses = call(move || connector.list_messages(&config, &filter))
        .await?
        .map_err(component_failed)?
        .map_err(|e| connector_error(&e))?;
    let inbox = console.inbox.clone();
    let lines = call(move || messages_json(&statuses, &inbox)).await?;
    Ok(json_response(StatusCode::OK, &json!(lines)))
}

/// The list's lines: each message as `messages` prints it, with the size
/// of its stored document and its time for people (store reads: call it
/// off the async threads).
fn messages_json(statuses: &[api::MessageStatus], inbox: &crate::inbox::Inbox) -> Vec<Value> {
    statuses
        .iter()
        .map(|status| {
            let mut line = message_json(status, inbox);
            let size = line["stored_at"]
                .as_str()
                .and_then(|path| std::fs::metadata(path).ok())
                .map(|m| m.len());
            line["size"] = json!(size);
            line["created_text"] = json!(time_text(status.created, false));
            // Where the document is on this machine is the host's business.
            line.as_object_mut().map(|o| o.remove("stored_at"));
            line["downloadable"] = json!(size.is_some());
            line
        })
        .collect()
}

/// A message's full status: state, every attempt, the MDN, the MIC check.
async fn lookup(
    console: &Console,
    id: &str,
    message_id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let config = saved(console, id)?;
    let message_id = if message_id.starts_with('<') {
        message_id.to_string()
    } else {
        format!("<{message_id}>")
    };
    let connector = console.connector.clone();
    let status = call(move || connector.lookup_message(&config, &message_id))
        .await?
        .map_err(component_failed)?
        .map_err(|e| {
            let mut error = connector_error(&e);
            if error_code(&e) == "NOT_FOUND" {
                error.status = StatusCode::NOT_FOUND;
                error.code = "NOT_FOUND";
            }
            error
        })?;
    let inbox = console.inbox.clone();
    let (status, mut line) = call(move || {
        let line = message_json(&status, &inbox);
        (status, line)
    })
    .await?;
    line.as_object_mut().map(|o| o.remove("stored_at"));
    line["created_text"] = json!(time_text(status.created, false));
    line["history"] = status
        .history
        .iter()
        .map(|a| json!({ "number": a.number, "started": time_text(a.started, false), "outcome": a.outcome }))
        .collect();
    if let Some(mdn) = &status.mdn {
        line["mdn"]["signature_text"] = json!(signature_text(mdn.signature));
        line["mdn"]["disposition_text"] = json!(disposition_text(&mdn.disposition));
        line["mdn"]["warnings"] = json!(mdn.warnings);
        line["mic_matched"] = json!(
            mdn.received_mic
                .as_ref()
                .map(|m| m.digest == status.mic.digest && m.algorithm == status.mic.algorithm)
        );
    }
    Ok(json_response(StatusCode::OK, &line))
}

/// The received document of `message_id`, as it was stored.
async fn document(
    console: &Console,
    id: &str,
    message_id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let config = saved(console, id)?;
    let partner = Connection::from_json(&config)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .partner
        .as2_id;
    let inbox = console.inbox.clone();
    let message_id = message_id.to_string();
    let path = call(move || inbox.stored_path(&partner, &message_id))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no stored document for this message",
            )
        })?;
    let read = path.clone();
    let bytes = call(move || std::fs::read(read))
        .await?
        .map_err(|e| anyhow::anyhow!("reading the stored document: {e}"))?;
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        "application/octet-stream".parse().expect("a header value"),
    );
    headers.insert(
        "content-disposition",
        format!("attachment; filename=\"{name}\"")
            .parse()
            .map_err(|_| anyhow::anyhow!("a file name"))?,
    );
    headers.insert(
        "x-content-type-options",
        "nosniff".parse().expect("a header value"),
    );
    Ok(response)
}

/// Sends the request body as one document: `?name=FILE&type=MIME`.
async fn send(
    console: &Console,
    id: &str,
    query: &str,
    parts: &Parts,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let config = saved(console, id)?;
    let file_name = query_param(query, "name")?.filter(|n| !n.is_empty());
    let content_type = query_param(query, "type")?
        .filter(|t| !t.is_empty() && t.contains('/'))
        .unwrap_or_else(|| "application/edi-x12".into());
    let bytes = read_body(parts, body, console.max_upload).await?;
    let document = SendDocument {
        file_name: file_name.clone(),
        content_type,
        content: Content::Bytes(bytes.to_vec()),
    };
    let connector = console.connector.clone();
    let mut outcomes = call(move || connector.send(&config, vec![document]))
        .await?
        .map_err(component_failed)?
        .map_err(|e| connector_error(&e))?;
    if outcomes.is_empty() {
        return Err(anyhow::anyhow!("the connector returned no result").into());
    }
    let outcome = outcomes.remove(0).map_err(|e| connector_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &sent_json(file_name.as_deref(), &outcome),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every property name of the connection schema, at any depth.
    fn property_names(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(object) => {
                if let Some(Value::Object(properties)) = object.get("properties") {
                    out.extend(properties.keys().cloned());
                }
                object.values().for_each(|child| property_names(child, out));
            }
            Value::Array(items) => items.iter().for_each(|child| property_names(child, out)),
            _ => {}
        }
    }

    #[test]
    fn the_page_names_no_configuration_field() {
        let schema: Value = serde_json::from_str(&as2_connector::config::schema_json()).unwrap();
        let mut names = Vec::new();
        property_names(&schema, &mut names);
        // Words JavaScript, HTML and JSON Forms use themselves (an input's
        // `type: "password"`, the `format: "password"` option), and the
        // secret's two members (the convention for write-only fields).
        let generic = [
            "type", "name", "value", "secret", "url", "path", "method", "headers", "password",
        ];
        // The form's part of the script; the views after it read the API's
        // own answers (a message's `partner`, its `mdn`).
        let form_part = SCRIPT
            .split("// -------------------------------------------------- connections and views")
            .next()
            .unwrap();
        let named: Vec<&String> = names
            .iter()
            .filter(|name| !generic.contains(&name.as_str()))
            .filter(|name| {
                let quoted = [
                    format!("\"{name}\""),
                    format!("'{name}'"),
                    format!("/{name}"),
                    format!(".{name}"),
                ];
                quoted.iter().any(|form| form_part.contains(form.as_str()))
            })
            .collect();
        assert!(
            named.is_empty(),
            "console.js names configuration fields: {named:?}"
        );
        assert!(names.len() > 40, "{names:?}");
        assert!(form_part.len() * 2 > SCRIPT.len(), "the marker moved");
    }

    #[test]
    fn typed_secrets_are_found_by_their_shape_not_in_lists() {
        let form = json!({
            "auth": { "type": "basic", "password": { "value": "p" },
                      "refresh": { "refresh_token": { "value": "r" }, "headers": [{ "name": "n", "value": "v" }] } },
            "station": { "basic_auth": { "password": { "secret": "kept" } } }
        });
        assert_eq!(
            typed_secrets(&form),
            ["/auth/password", "/auth/refresh/refresh_token"]
        );
    }

    #[test]
    fn url_segments_and_query_parameters_are_decoded() {
        assert_eq!(percent_decode("%3Cid%40ACME%3E").unwrap(), "<id@ACME>");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%").is_err());
        assert_eq!(
            query_param("a=1&name=po%204711.x12", "name")
                .unwrap()
                .as_deref(),
            Some("po 4711.x12")
        );
        assert_eq!(query_param("a=1", "name").unwrap(), None);
    }
}
